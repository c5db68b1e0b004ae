"""Dialogs (RFC 3261 §12): the state two user agents share between a call's requests.

Theory of operation: a `Dialog` is made on the UAC side from the request sent and a response
with a To tag (`from_uac`: 101-199 early, 2xx confirmed, §12.1.2), or on the UAS side from the
request received and sipmask's tag (`from_uas`, §12.1.1). It builds in-dialog requests with
the route set and loose/strict routing of §12.2.1.1 (`create_request`), the ACK for a 2xx
(`create_ack`, §13.2.2.4), kept so that each retransmitted 2xx gets it again (RFC 6026 §7.2),
and UAS responses (`create_response`); it checks received requests (`receive_request`: CSeq
order, target refresh, glare, BYE, §12.2.2, §14) and follows responses to its own requests
(`receive_response`: early -> confirmed, route set recomputed, target refresh, §12.2.1.2).
Forking gives several dialogs per INVITE, one per To tag: `DialogSet` keys them by `DialogId`.
Nothing here sends or reads a clock; branches and randomness come from injected functions.
See docs/sip-dialogs.md.
"""

from __future__ import annotations

import enum
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from .._core import URI, NameAddr, Request, Response, parse, parse_name_addr, parse_uri
from ..errors import LocalProtocolError, ParseError
from .responses import make_response

MAX_FORWARDS = 70
MAX_CSEQ = 2**32 - 1  # RFC 3261 §8.1.1.5: a 32-bit unsigned integer
MAGIC_COOKIE = "z9hG4bK"  # RFC 3261 §8.1.1.7
TARGET_REFRESH = frozenset({"INVITE", "UPDATE"})  # RFC 3261 §12.2, RFC 3311 §5.1
# URI parameters that may not appear in a Request-URI (RFC 3261 §19.1.1, table 1).
NOT_IN_REQUEST_URI = frozenset({"method"})
# Credentials an ACK for a 2xx repeats from its INVITE (RFC 3261 §13.2.2.4).
CREDENTIALS = ("Authorization", "Proxy-Authorization")


class DialogState(enum.Enum):
    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


@dataclass(frozen=True, slots=True)
class DialogId:
    """RFC 3261 §12: Call-ID, local tag and remote tag. The remote tag is None for an RFC
    2543 peer that sends no From tag (§12.1.1)."""

    call_id: str
    local_tag: str
    remote_tag: str | None


def uac_dialog_id(response: Response) -> DialogId | None:
    """The id of the dialog a response to our request belongs to (From tag is ours)."""
    if response.call_id is None or response.from_tag is None:
        return None
    return DialogId(response.call_id, response.from_tag, response.to_tag)


def uas_dialog_id(request: Request) -> DialogId | None:
    """The id of the dialog a received in-dialog request belongs to (To tag is ours)."""
    if request.call_id is None or request.to_tag is None:
        return None
    return DialogId(request.call_id, request.to_tag, request.from_tag)


@dataclass(eq=False, kw_only=True)
class Dialog:
    """One dialog's state (RFC 3261 §12) and the messages built from it.

    Attributes:
        id: the `DialogId`.
        state: early, confirmed or terminated.
        local_cseq: CSeq number of the last request sent (None: none yet, UAS side).
        remote_cseq: CSeq number of the last request received (None: none yet).
        local_uri, remote_uri: the From/To name-addr without tag (display name kept).
        remote_target: the peer's Contact URI (None until a message brings one).
        route_set: URIs of the route set, in the order requests use them.
        secure: the dialog was made over TLS with a sips Request-URI (§12.1).
        contact: sipmask's own Contact value for this dialog.
    """

    id: DialogId
    state: DialogState
    local_uri: NameAddr
    remote_uri: NameAddr
    remote_target: str | None
    route_set: list[str]
    contact: str | None
    via: str
    new_branch: Callable[[], str] = field(repr=False)
    is_uac: bool
    local_cseq: int | None = None
    remote_cseq: int | None = None
    secure: bool = False
    retry_after: Callable[[], int] | None = field(default=None, repr=False)
    # INVITE transactions in progress in each direction (§14.1).
    invite_sent: Request | None = field(default=None, init=False, repr=False)
    invite_received: int | None = field(default=None, init=False)
    # UAS side: CSeq number of the INVITE whose 2xx awaits its ACK (RFC 6026 §8.1).
    awaiting_ack: int | None = field(default=None, init=False)
    # The INVITEs sent (for the ACK's credentials) and the ACKs sent, by CSeq number.
    _invites: dict[int, Request] = field(default_factory=dict, init=False, repr=False)
    # ACKs as bytes: a held call keeps them for its whole life, a parsed copy is rebuilt only
    # when a 2xx is retransmitted (rare).
    _acks: dict[int, bytes] = field(default_factory=dict, init=False, repr=False)
    _record_route: list[str] = field(default_factory=list, init=False, repr=False)

    # -- creation ---------------------------------------------------------------------------

    @classmethod
    def from_uac(
        cls,
        request: Request,
        response: Response,
        *,
        new_branch: Callable[[], str],
        via: str | None = None,
        tls: bool = False,
        retry_after: Callable[[], int] | None = None,
    ) -> Dialog:
        """The dialog a response with a To tag makes for a request we sent (§12.1.2).

        Args:
            request: the INVITE (or other dialog-creating request) as sent.
            response: a 101-199 (early dialog) or 2xx (confirmed) carrying a To tag.
            new_branch: gives a fresh Via branch starting with z9hG4bK.
            via: Via value of later requests, without branch; default: the request's top
                Via with its branch removed.
            tls: the request went over TLS (the dialog is secure with a sips Request-URI).

        Raises:
            LocalProtocolError: the response cannot make a dialog (100, final non-2xx, no
                To tag, not for this request).
            ParseError: a Contact or Record-Route value of the response is malformed.
        """
        if not (101 <= response.status <= 299) or response.to_tag is None:
            raise LocalProtocolError("only a 101-299 response with a To tag makes a dialog")
        if request.call_id != response.call_id or request.from_tag != response.from_tag:
            raise LocalProtocolError("response does not belong to this request")
        if request.call_id is None or request.from_tag is None or request.cseq is None:
            raise LocalProtocolError("request lacks Call-ID, From tag or CSeq")
        from_, to = request.from_, response.to
        assert from_ is not None and to is not None
        dialog = cls(
            id=DialogId(request.call_id, request.from_tag, response.to_tag),
            state=DialogState.CONFIRMED if response.status >= 200 else DialogState.EARLY,
            local_uri=_without_tag(from_),
            remote_uri=_without_tag(to),
            remote_target=_target(response),
            # §12.1.2: the Record-Route URIs of the response, in reverse order.
            route_set=_route_uris(response)[::-1],
            contact=request.header("contact"),
            via=via if via is not None else _via_template(request),
            new_branch=new_branch,
            local_cseq=request.cseq.number,
            secure=tls and request.parsed_uri.scheme == "sips",
            is_uac=True,
            retry_after=retry_after,
        )
        if request.method == "INVITE":
            dialog._invites[request.cseq.number] = request
            if response.status < 200:
                dialog.invite_sent = request
        return dialog

    @classmethod
    def from_uas(
        cls,
        request: Request,
        local_tag: str,
        contact: str,
        *,
        via: str,
        new_branch: Callable[[], str],
        tls: bool = False,
        retry_after: Callable[[], int] | None = None,
    ) -> Dialog:
        """The dialog sipmask makes by answering `request` with To tag `local_tag` (§12.1.1).
        It is early until `create_response` makes a 2xx.

        Args:
            request: the INVITE (or other dialog-creating request) received.
            local_tag: sipmask's To tag.
            contact: sipmask's Contact value ('<sip:sipmask@192.0.2.10:5060>').
            via: Via value of later requests, without branch ('SIP/2.0/UDP host:port;rport').
            new_branch: gives a fresh Via branch starting with z9hG4bK.
            tls: the request arrived over TLS.

        Raises:
            LocalProtocolError: the request already has a To tag or lacks Call-ID/CSeq.
            ParseError: a Contact or Record-Route value is malformed (answer 400).
        """
        if request.to_tag is not None:
            raise LocalProtocolError("an in-dialog request does not make a new dialog")
        if request.call_id is None or request.cseq is None:
            raise LocalProtocolError("request lacks Call-ID or CSeq")
        from_, to = request.from_, request.to
        assert from_ is not None and to is not None
        record_route = request.headers("record-route")
        dialog = cls(
            id=DialogId(request.call_id, local_tag, request.from_tag),
            state=DialogState.EARLY,
            local_uri=_without_tag(to),
            remote_uri=_without_tag(from_),
            remote_target=_target(request),
            # §12.1.1: the Record-Route URIs of the request, in order.
            route_set=_route_uris(request),
            contact=contact,
            via=via,
            new_branch=new_branch,
            remote_cseq=request.cseq.number,
            secure=tls and request.parsed_uri.scheme == "sips",
            is_uac=False,
            retry_after=retry_after,
        )
        dialog._record_route = record_route
        if request.method == "INVITE":
            dialog.invite_received = request.cseq.number
        return dialog

    # -- requests we send -------------------------------------------------------------------

    def create_request(
        self, method: str, *, headers: Iterable[tuple[str, str]] = (), body: bytes = b""
    ) -> Request:
        """A request inside the dialog (§12.2.1.1): BYE, re-INVITE, UPDATE, INFO, PRACK,
        OPTIONS... `headers` are appended (Content-Type, RAck, Reason...).

        Raises:
            LocalProtocolError: ACK or CANCEL (use `create_ack`; a CANCEL is built from the
                request it cancels, §9.1), a terminated dialog, a BYE from the callee or an
                INVITE in an early dialog (§15, §14.1), an INVITE while another is in
                progress (§14.1), no remote target, or a CSeq overflow.
        """
        if method in ("ACK", "CANCEL"):
            raise LocalProtocolError(f"{method} is not built by create_request")
        if self.state is DialogState.TERMINATED:
            raise LocalProtocolError("dialog is terminated")
        if self.state is DialogState.EARLY:
            if method == "INVITE":
                raise LocalProtocolError("no re-INVITE in an early dialog")
            if method == "BYE" and not self.is_uac:
                raise LocalProtocolError("the callee must not send BYE in an early dialog (§15)")
        if method == "INVITE" and (
            self.invite_sent is not None or self.invite_received is not None
        ):
            raise LocalProtocolError("an INVITE is already in progress in this dialog (§14.1)")
        # §12.2.1.1: one above the last; an empty local CSeq starts at 1 (< 2**31, §8.1.1.5).
        number = 1 if self.local_cseq is None else self.local_cseq + 1
        if number > MAX_CSEQ:
            raise LocalProtocolError("local CSeq overflow")
        self.local_cseq = number
        request = self._build(method, number, headers, body)
        if method == "INVITE":
            self.invite_sent = request
            self._invites[number] = request
        return request

    def create_ack(
        self,
        response: Response,
        *,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> Request:
        """The ACK for a 2xx to an INVITE of this dialog (§13.2.2.4): built as any in-dialog
        request, but with the INVITE's CSeq number and its credentials; a fresh branch (the
        ACK for a 2xx is a transaction of its own). Kept for `ack_for_retransmitted_2xx`.
        Call `receive_response` with the 2xx first, so the route set and target are those of
        the 2xx.

        Raises:
            LocalProtocolError: not a 2xx to INVITE.
        """
        cseq = response.cseq
        if cseq is None or cseq.method != "INVITE" or not 200 <= response.status <= 299:
            raise LocalProtocolError("an ACK is created only for a 2xx to INVITE")
        # The INVITE is needed only for this ACK's credentials: let it go (memory per call).
        invite = self._invites.pop(cseq.number, None)
        fields = list(headers)
        if invite is not None:
            fields = [(n, v) for n in CREDENTIALS for v in invite.headers(n)] + fields
        ack = self._build("ACK", cseq.number, fields, body)
        self._acks[cseq.number] = bytes(ack)
        return ack

    def ack_for_retransmitted_2xx(self, response: Response) -> Request | None:
        """The ACK already sent for this 2xx's INVITE (RFC 3261 §13.2.2.4, RFC 6026 §7.2: each
        retransmission of the 2xx is answered with the same ACK), or None."""
        cseq = response.cseq
        if cseq is None or cseq.method != "INVITE" or not 200 <= response.status <= 299:
            return None
        ack = self._acks.get(cseq.number)
        if ack is None:
            return None
        message = parse(ack)
        assert isinstance(message, Request)
        return message

    def _build(
        self, method: str, number: int, headers: Iterable[tuple[str, str]], body: bytes
    ) -> Request:
        if self.remote_target is None:
            raise LocalProtocolError("dialog has no remote target yet (no Contact received)")
        branch = self.new_branch()
        if not branch.startswith(MAGIC_COOKIE):
            raise LocalProtocolError("new_branch() must return a branch starting z9hG4bK")
        uri, routes = self.request_uri_and_route()
        fields = [
            ("Via", f"{self.via};branch={branch}"),
            ("Max-Forwards", str(MAX_FORWARDS)),
        ]
        if routes:
            fields.append(("Route", ", ".join(f"<{route}>" for route in routes)))
        fields += [
            ("From", str(_with_tag(self.local_uri, self.id.local_tag))),
            ("To", str(_with_tag(self.remote_uri, self.id.remote_tag))),
            ("Call-ID", self.id.call_id),
            ("CSeq", f"{number} {method}"),
        ]
        # §12.2.1.1: a Contact in target refresh requests (and ACK need none).
        if method in TARGET_REFRESH and self.contact is not None:
            fields.append(("Contact", self.contact))
        fields += headers
        return Request(method, uri, fields, body)

    def request_uri_and_route(self) -> tuple[str, list[str]]:
        """Request-URI and Route URIs of the next request (§12.2.1.1).

        Empty route set: the remote target, no Route. First route with `lr` (loose router):
        the remote target, Route = the route set. Otherwise (strict router): the first
        route, without the parameters a Request-URI cannot carry, and Route = the rest of
        the route set followed by the remote target."""
        assert self.remote_target is not None
        target = _request_uri(self.remote_target)
        if not self.route_set:
            return target, []
        first = parse_uri(self.route_set[0])
        if "lr" in first.params:
            return target, list(self.route_set)
        return _request_uri(self.route_set[0]), [*self.route_set[1:], self.remote_target]

    # -- requests we receive ----------------------------------------------------------------

    def receive_request(self, request: Request) -> Response | None:
        """Check a request received inside the dialog (§12.2.2) and update the dialog.

        Returns:
            None when the request may be processed; else the response to send: 481 (not this
            dialog, or terminated), 500 (CSeq lower than the last, §12.2.2; or an INVITE
            overlapping one in progress, with Retry-After, §14.2), 491 (INVITE glare,
            §14.2), 400 (malformed Contact in a target refresh). An ACK is never answered.
        """
        method = request.method
        if uas_dialog_id(request) != self.id or self.state is DialogState.TERMINATED:
            return None if method == "ACK" else make_response(request, 481)
        cseq = request.cseq
        assert cseq is not None
        if method == "ACK":
            if cseq.number == self.awaiting_ack:
                self.awaiting_ack = None
            return None
        if method == "CANCEL":
            return None  # matched to its INVITE by the transaction layer (§9.2)
        if self.remote_cseq is not None and cseq.number < self.remote_cseq:
            return make_response(request, 500, "Server Internal Error (CSeq out of order)")
        if method == "INVITE":
            if self.invite_sent is not None:  # §14.2: glare
                return make_response(request, 491)
            if self.invite_received is not None and self.invite_received < cseq.number:
                return make_response(
                    request, 500, headers=[("Retry-After", str(self._retry_after_value()))]
                )
        self.remote_cseq = cseq.number
        if method in TARGET_REFRESH:
            try:
                target = _target(request)
            except ParseError:
                return make_response(request, 400, "Bad Request (malformed Contact)")
            if target is not None:
                self.remote_target = target
        if method == "INVITE":
            self.invite_received = cseq.number
        elif method == "BYE":
            self.state = DialogState.TERMINATED  # §15.1.2
        return None

    def _retry_after_value(self) -> int:
        """§14.2: Retry-After chosen at random in 0..10 s (from the injected function; else
        derived from the Call-ID, so it is stable and spread over calls)."""
        if self.retry_after is not None:
            return self.retry_after()
        return zlib.crc32(self.id.call_id.encode("utf-8", "surrogateescape")) % 11

    def create_response(
        self,
        request: Request,
        status: int,
        reason: str | None = None,
        *,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> Response:
        """A response to a request of this dialog (UAS side), with the dialog's To tag. 1xx
        and 2xx to the dialog-creating request copy its Record-Route (§12.1.1); 101-299 to
        INVITE/UPDATE carry the Contact (§12.1.1, §12.2.2). A 2xx to the initial INVITE
        confirms the dialog, a final non-2xx to it ends the early dialog (§12.3); a final
        response to INVITE ends that INVITE's transaction for glare purposes (§14)."""
        fields: list[tuple[str, str]] = []
        method = request.method
        cseq = request.cseq
        creating = request.to_tag is None
        if creating and status > 100 and status < 300:
            fields += [("Record-Route", value) for value in self._record_route]
        if method in TARGET_REFRESH and 101 <= status <= 299 and self.contact is not None:
            fields.append(("Contact", self.contact))
        fields += headers
        response = make_response(
            request, status, reason, to_tag=self.id.local_tag, headers=fields, body=body
        )
        if method == "INVITE" and status >= 200 and cseq is not None:
            if self.invite_received == cseq.number:
                self.invite_received = None
            if status < 300:
                self.awaiting_ack = cseq.number
        if creating and status >= 200:
            if status < 300:
                if self.state is DialogState.EARLY:
                    self.state = DialogState.CONFIRMED
            elif self.state is DialogState.EARLY:
                self.state = DialogState.TERMINATED
        return response

    # -- responses we receive ---------------------------------------------------------------

    def receive_response(self, response: Response) -> None:
        """Follow a response to a request this dialog sent (§12.2.1.2, §13.2.2.4)."""
        cseq = response.cseq
        if cseq is None or self.state is DialogState.TERMINATED:
            return
        method, status = cseq.method, response.status
        if method == "INVITE" and status >= 200:
            sent = self.invite_sent
            if sent is not None and sent.cseq is not None and sent.cseq.number == cseq.number:
                self.invite_sent = None
        if 200 <= status <= 299:
            if self.state is DialogState.EARLY and method == "INVITE":
                # §13.2.2.4: confirmed, and only the route set is recomputed from the 2xx.
                self.state = DialogState.CONFIRMED
                self._safe_routes(response)
            if method in TARGET_REFRESH:
                self._safe_target(response)  # §12.2.1.2
            if method == "BYE":
                self.state = DialogState.TERMINATED
        elif 101 <= status <= 199 and self.state is DialogState.EARLY and method == "INVITE":
            self._safe_target(response)
        elif status >= 300:
            if self.state is DialogState.EARLY and method == "INVITE":
                self.state = DialogState.TERMINATED  # §12.3: the early dialog ends
            elif status in (481, 408) or method == "BYE":
                self.state = DialogState.TERMINATED  # §12.2.1.2, §15.1.1

    def _safe_target(self, response: Response) -> None:
        try:
            target = _target(response)
        except ParseError:
            return  # a malformed Contact keeps the old target
        if target is not None:
            self.remote_target = target

    def _safe_routes(self, response: Response) -> None:
        try:
            self.route_set = _route_uris(response)[::-1]
        except ParseError:
            return

    # -- state ------------------------------------------------------------------------------

    def confirm(self) -> None:
        """Mark the dialog confirmed (a 2xx sent or received by other means)."""
        if self.state is DialogState.EARLY:
            self.state = DialogState.CONFIRMED

    def terminate(self) -> None:
        """End the dialog (BYE sent and timed out, Timer C, a local decision)."""
        self.state = DialogState.TERMINATED

    @property
    def is_early(self) -> bool:
        return self.state is DialogState.EARLY

    @property
    def is_confirmed(self) -> bool:
        return self.state is DialogState.CONFIRMED

    @property
    def is_terminated(self) -> bool:
        return self.state is DialogState.TERMINATED


class DialogSet:
    """Dialogs by `DialogId`: the early dialogs that forking makes out of one INVITE (one per
    To tag, §12.1.2, §13.2.2.4) and the confirmed ones, side by side."""

    def __init__(self) -> None:
        self._dialogs: dict[DialogId, Dialog] = {}

    def __len__(self) -> int:
        return len(self._dialogs)

    def __iter__(self) -> Iterator[Dialog]:
        return iter(list(self._dialogs.values()))

    def __contains__(self, key: object) -> bool:
        return key in self._dialogs

    def get(self, key: DialogId) -> Dialog | None:
        return self._dialogs.get(key)

    def add(self, dialog: Dialog) -> None:
        if dialog.id in self._dialogs:
            raise LocalProtocolError(f"dialog {dialog.id} exists already")
        self._dialogs[dialog.id] = dialog

    def remove(self, key: DialogId) -> Dialog | None:
        return self._dialogs.pop(key, None)

    def for_request(self, request: Request) -> Dialog | None:
        """The dialog a received in-dialog request belongs to (its To tag is ours)."""
        key = uas_dialog_id(request)
        return None if key is None else self._dialogs.get(key)

    def for_response(self, response: Response) -> Dialog | None:
        """The dialog a response to our request belongs to (its From tag is ours)."""
        key = uac_dialog_id(response)
        return None if key is None else self._dialogs.get(key)

    def receive_response(
        self,
        request: Request,
        response: Response,
        *,
        new_branch: Callable[[], str],
        via: str | None = None,
        tls: bool = False,
    ) -> Dialog | None:
        """Follow a response to a request sent outside a dialog (an initial INVITE): a
        101-299 with a To tag updates the dialog of that tag, or makes a new one (forking);
        a final non-2xx ends every early dialog of the request (§12.3). Returns the dialog
        the response belongs to, if any."""
        key = uac_dialog_id(response)
        if key is None:
            return None
        if response.status >= 300:
            self.terminate_early(key.call_id, key.local_tag)
            return self._dialogs.get(key)
        dialog = self._dialogs.get(key)
        if dialog is not None:
            dialog.receive_response(response)
            return dialog
        if response.status <= 100 or key.remote_tag is None:
            return None
        dialog = Dialog.from_uac(request, response, new_branch=new_branch, via=via, tls=tls)
        self._dialogs[dialog.id] = dialog
        return dialog

    def early(self, call_id: str, local_tag: str) -> list[Dialog]:
        """The early dialogs of one INVITE (same Call-ID and local tag)."""
        return [
            d
            for d in self._dialogs.values()
            if d.is_early and d.id.call_id == call_id and d.id.local_tag == local_tag
        ]

    def terminate_early(self, call_id: str, local_tag: str) -> list[Dialog]:
        """End the early dialogs of one INVITE (§13.2.2.4: 64*T1 after the first 2xx, those
        not confirmed end) and return them."""
        ended = self.early(call_id, local_tag)
        for dialog in ended:
            dialog.terminate()
        return ended

    def prune(self) -> list[Dialog]:
        """Remove and return the terminated dialogs."""
        gone = [d for d in self._dialogs.values() if d.is_terminated]
        for dialog in gone:
            del self._dialogs[dialog.id]
        return gone


# -- helpers -------------------------------------------------------------------------------


def _without_tag(name_addr: NameAddr) -> NameAddr:
    """The name-addr kept as local/remote URI: display name and URI, no header parameters."""
    return NameAddr(name_addr.uri, name_addr.display_name)


def _with_tag(name_addr: NameAddr, tag: str | None) -> NameAddr:
    if tag is None:
        return name_addr
    return NameAddr(name_addr.uri, name_addr.display_name, {"tag": tag})


def _target(message: Request | Response) -> str | None:
    """The URI of the first Contact (the remote target), or None without one.

    Raises: ParseError for a malformed Contact."""
    contacts = message.contact
    return str(contacts[0].uri) if contacts else None


def _route_uris(message: Request | Response) -> list[str]:
    """The URIs of Record-Route, in order, URI parameters kept, header parameters dropped
    (§12.1.1). Raises: ParseError."""
    return [str(parse_name_addr(value).uri) for value in message.headers("record-route")]


def _request_uri(text: str) -> str:
    """`text` as a Request-URI: without URI headers and the parameters a Request-URI cannot
    carry (§19.1.1, table 1)."""
    uri = parse_uri(text)
    if not uri.headers and not NOT_IN_REQUEST_URI.intersection(uri.params):
        return text
    params = {k: v for k, v in uri.params.items() if k not in NOT_IN_REQUEST_URI}
    return str(URI(uri.scheme, uri.user, uri.host, uri.port, params, password=uri.password))


def _via_template(request: Request) -> str:
    """The request's top Via value without its branch."""
    via = request.top_via
    if via is None:
        raise LocalProtocolError("request has no Via")
    text = str(via)
    parts = [p for p in text.split(";") if not p.strip().lower().startswith("branch=")]
    return ";".join(parts)
