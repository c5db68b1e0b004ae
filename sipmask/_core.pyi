"""Type stubs for the Cython core: the contract the rest of sipmask type-checks against.

Everything here parses, inspects, rewrites and serialises SIP messages (RFC 3261) and SDP
(RFC 4566). It does no I/O, no logging and keeps no global state.
"""

from collections.abc import Iterable, Sequence
from typing import Self

from typing_extensions import disjoint_base

from .errors import ParseError as ParseError

DEFAULT_MAX_SIZE: int
"""Largest message `parse` accepts by default (bytes)."""
DEFAULT_MAX_HEADERS: int
"""Most header fields `parse` accepts by default."""

def parse(
    data: bytes | bytearray | memoryview,
    *,
    max_size: int = ...,
    max_headers: int = ...,
) -> Request | Response:
    """Parse one SIP message from a datagram (or a frame cut by `StreamFramer`).

    Content-Length is honoured as RFC 3261 §18.3 says for datagrams: octets past it are
    discarded, a Content-Length larger than the octets present is an error, and a missing
    Content-Length means the body runs to the end of the data.

    Raises:
        ParseError: the message is malformed, too large or has too many header fields.
            Whatever could be salvaged (Via, From, To, Call-ID, CSeq) is on the exception.
    """

@disjoint_base
class Message:
    """A parsed or built SIP message. Header values are `str` decoded from UTF-8 with
    `surrogateescape`, so every byte survives a round trip."""

    version: str
    """The SIP-Version of the start line, e.g. 'SIP/2.0' (other versions parse; the SIP
    layer answers them 505)."""
    body: bytes
    """The message body; setting it makes `bytes(msg)` write a matching Content-Length."""

    @property
    def is_request(self) -> bool: ...
    def header(self, name: str) -> str | None:
        """First value of header `name` (any case, compact forms resolved), unfolded, or None.

        For headers whose grammar is a comma-separated list (Via, Contact, Route...), this is
        the first element of the first field."""
    def headers(self, name: str) -> list[str]:
        """All values of header `name`, in order; list-valued headers are split on commas that
        are outside quotes, angle brackets and escapes. Other headers (From, Call-ID,
        WWW-Authenticate...) give one value per field."""
    def count(self, name: str) -> int:
        """Number of header *fields* (lines) named `name`."""
    def header_items(self) -> list[tuple[str, str]]:
        """Every header field as (name as on the wire, unfolded value), in order."""
    def set_header(self, name: str, value: str) -> None:
        """Replace every field named `name` by one field with `value`, at the place of the
        first; append it when absent."""
    def add_header(self, name: str, value: str, *, first: bool = False) -> None:
        """Add a field: at the end, or before all other header fields when `first`
        (as a proxy pushes a Via)."""
    def remove_header(self, name: str) -> int:
        """Remove every field named `name`; return how many were removed."""
    def remove_first(self, name: str) -> bool:
        """Remove the first *value* of `name` (a Via popped by a response), keeping the rest
        of a comma-joined field. Returns whether one was removed."""
    def copy_headers(self, source: Message, names: Iterable[str]) -> int:
        """Append every field of `source` whose name is in `names` (any case, compact forms),
        in `source`'s order, keeping its wire bytes: the masking allow-list, so only these
        cross to the other leg. Returns how many fields were copied."""
    def copy(self) -> Self: ...
    def __bytes__(self) -> bytes:
        """Serialise. Untouched fields keep their wire bytes; Content-Length is always
        written and always equals len(body)."""
    def __eq__(self, other: object, /) -> bool:
        """Same start line, same header fields (names compared case-insensitively with compact
        forms expanded, values unfolded) in the same order, same body."""

    # Typed accessors. Via, From, To, Call-ID, CSeq, Max-Forwards and Content-Length are
    # validated by `parse`, so their accessors cannot fail on a parsed message.
    @property
    def call_id(self) -> str | None: ...
    @property
    def cseq(self) -> CSeq | None: ...
    @property
    def via(self) -> list[Via]: ...
    @property
    def top_via(self) -> Via | None: ...
    @property
    def from_(self) -> NameAddr | None: ...
    @property
    def to(self) -> NameAddr | None: ...
    @property
    def from_tag(self) -> str | None: ...
    @property
    def to_tag(self) -> str | None: ...
    @property
    def contact(self) -> list[NameAddr]:
        """Contact values; `Contact: *` gives an empty list (see `header('contact')`).

        Raises:
            ParseError: a Contact value is malformed (Contact is not checked by `parse`).
        """
    @property
    def max_forwards(self) -> int | None: ...
    @property
    def content_type(self) -> str | None:
        """Media type of the body, lower-cased, without parameters ('application/sdp')."""

@disjoint_base
class Request(Message):
    method: str
    uri: str
    """The Request-URI as on the wire; assign to rewrite the start line."""
    def __init__(
        self,
        method: str,
        uri: str,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        *,
        version: str = "SIP/2.0",
    ) -> None: ...
    @property
    def parsed_uri(self) -> URI:
        """The Request-URI parsed (validated by `parse` for sip, sips and tel)."""

@disjoint_base
class Response(Message):
    status: int
    reason: str
    def __init__(
        self,
        status: int,
        reason: str,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        *,
        version: str = "SIP/2.0",
    ) -> None: ...

@disjoint_base
class CSeq:
    number: int
    method: str
    def __init__(self, number: int, method: str) -> None: ...

@disjoint_base
class URI:
    """A sip:, sips: or tel: URI (RFC 3261 §19.1, RFC 3966); any other scheme keeps its text
    in `opaque`. Components are kept as written (escapes included); `unescape` decodes them."""

    scheme: str
    """Lower-cased scheme: 'sip', 'sips', 'tel' or another."""
    user: str | None
    """sip/sips user part, or the tel: number."""
    password: str | None
    host: str | None
    """Host as written; IPv6 references keep their brackets ('[2001:db8::1]')."""
    port: int | None
    params: dict[str, str | None]
    """URI parameters, names lower-cased, in order; a flag parameter (';lr') maps to None."""
    headers: dict[str, str]
    opaque: str | None
    """Everything after 'scheme:' for other schemes."""
    def __init__(
        self,
        scheme: str,
        user: str | None = None,
        host: str | None = None,
        port: int | None = None,
        params: dict[str, str | None] | None = None,
        headers: dict[str, str] | None = None,
        *,
        password: str | None = None,
        opaque: str | None = None,
    ) -> None: ...
    def __str__(self) -> str: ...
    def __eq__(self, other: object, /) -> bool: ...

def parse_uri(text: str) -> URI:
    """Raises: ParseError"""

def unescape(text: str) -> str:
    """Decode %HH escapes (RFC 3261 §19.1.2); invalid escapes are kept as written."""

@disjoint_base
class NameAddr:
    """name-addr / addr-spec with header parameters (From, To, Contact, Route, PAI...)."""

    display_name: str | None
    """Display name without quotes and quoted-pair escapes, or None."""
    uri: URI
    params: dict[str, str | None]
    def __init__(
        self,
        uri: URI,
        display_name: str | None = None,
        params: dict[str, str | None] | None = None,
    ) -> None: ...
    @property
    def tag(self) -> str | None: ...
    def __str__(self) -> str:
        """Always the name-addr form (`"name" <uri>;params`)."""

def parse_name_addr(text: str) -> NameAddr:
    """Raises: ParseError"""

@disjoint_base
class Via:
    protocol: str
    """'SIP/2.0'"""
    transport: str
    """Upper-cased: 'UDP', 'TCP', 'TLS', 'SCTP', 'WS'... (unknown ones are kept)."""
    host: str
    port: int | None
    params: dict[str, str | None]
    def __init__(
        self,
        transport: str,
        host: str,
        port: int | None = None,
        params: dict[str, str | None] | None = None,
    ) -> None: ...
    @property
    def branch(self) -> str | None: ...
    @property
    def received(self) -> str | None: ...
    @property
    def rport(self) -> int | None:
        """The rport value a server filled in, else None."""
    @property
    def has_rport(self) -> bool:
        """rport is present, with or without a value (RFC 3581)."""
    def __str__(self) -> str: ...

def parse_via(text: str) -> list[Via]:
    """Parse one Via header field value (which may hold several comma-separated vias).

    Raises: ParseError"""

@disjoint_base
class StreamFramer:
    """Cuts a TCP/TLS byte stream into messages (RFC 3261 §18.3): each message needs a
    Content-Length; CRLFs between messages (RFC 5626 keep-alives) are skipped."""

    def __init__(self, max_size: int = ...) -> None: ...
    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """Append `data`; return every message now complete, in order.

        Raises:
            ParseError: the stream cannot be framed (no or bad Content-Length, a message
                over `max_size`); the connection must be closed.
        """
    @property
    def buffered(self) -> int:
        """Octets held for an incomplete message."""
    @property
    def keepalives(self) -> int:
        """How many CRLF keep-alive pings (a lone CRLFCRLF) were seen; the transport
        answers each with CRLF (RFC 5626 §4.4.1)."""

# --- SDP (RFC 4566 / RFC 3264) ---------------------------------------------------------

@disjoint_base
class MediaDescription:
    media: str
    port: int
    port_count: int | None
    proto: str
    formats: list[str]
    connection: str | None
    """The c= line's value ('IN IP4 192.0.2.1') or None."""
    bandwidths: list[str]
    attributes: list[tuple[str, str | None]]

@disjoint_base
class SessionDescription:
    origin: str
    """The o= line's value."""
    session_name: str
    connection: str | None
    bandwidths: list[str]
    times: list[str]
    attributes: list[tuple[str, str | None]]
    media: list[MediaDescription]

def parse_sdp(body: bytes) -> SessionDescription:
    """Raises: ParseError"""

DEFAULT_SDP_ATTRIBUTES: frozenset[str]
"""The media and session attributes calls need (rtpmap, fmtp, ptime, direction...)."""

def rebuild_sdp(
    body: bytes,
    *,
    origin_address: str,
    session_id: int,
    version: int,
    connection_address: str | None = None,
    media_ports: Sequence[int] | None = None,
    attributes: frozenset[str] = ...,
) -> bytes:
    """Rebuild an SDP body from its grammar: only v o s c t m b lines and the allowed
    attributes survive (so i= u= e= p= k= z= r= and unknown a= never cross), and each is
    rebuilt from parsed, ranged parts (docs/core.md): c= an IP literal, m= assigned static
    or rtpmapped dynamic payload types, rtpmap known codecs at their real rates, fmtp known
    parameters in range, b= AS/CT/TIAS. o= becomes `- <session_id> <version> IN IP4|IP6
    <origin_address>`, s= becomes `-`. When given, `connection_address` replaces every c=
    address and `media_ports[i]` the port of the i-th m= line (media anchoring).

    Raises: ParseError"""

MAX_PAIRED_MEDIA: int
"""m= lines a paired leg renumbers; a description with more is refused (bounds the state)."""

@disjoint_base
class PayloadTypes:
    """The dynamic payload type numbers (96-127) of two paired legs, per m= line (held by
    `SdpOrigin.pair`; nothing to call from Python)."""

@disjoint_base
class SdpOrigin:
    """The SDP state of one leg: o= (RFC 3264 §8: the session id is fixed for the leg and the
    version goes up by one only when the rebuilt description differs from the last one) and,
    once paired, the renumbering of dynamic payload types."""

    session_id: int
    version: int
    def __init__(self, address: str, session_id: int | None = None) -> None: ...
    def pair(self, other: SdpOrigin) -> None:
        """Share a fresh payload type map with the other leg's origin of the same call: each
        then renumbers the dynamic payload types (96-127) of what it rebuilds from 96 upward,
        per m= line, and maps back the numbers of an answer to those of the offer its leg
        received."""
    def rebuild(
        self,
        body: bytes,
        *,
        connection_address: str | None = None,
        media_ports: Sequence[int] | None = None,
        attributes: frozenset[str] = ...,
    ) -> bytes:
        """Raises: ParseError"""

@disjoint_base
class BodyPart:
    headers: list[tuple[str, str]]
    body: bytes
    @property
    def content_type(self) -> str | None: ...

def split_multipart(content_type: str, body: bytes) -> list[BodyPart]:
    """Split a multipart/* body (RFC 2046) on the boundary named in `content_type`.

    Raises: ParseError"""

def find_sdp(content_type: str | None, body: bytes) -> bytes | None:
    """The application/sdp body of a message: the body itself, or the SDP part of a
    multipart body; None when there is none."""
