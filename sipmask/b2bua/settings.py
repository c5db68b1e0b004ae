"""The settings the b2bua layer runs on, owned by this layer (DESIGN.md: layers point down).

The `[[trunks]]`, `[masking]`, `[calls]` and `[media]` sections are b2bua policy: their typed
Structs live here and `sipmask.config` composes them into its `Config` (and re-exports them),
so the checks and key paths of the config stay where they are. The engine takes its settings
as `B2buaSettings`, a Protocol naming only what it reads; the checked `Config` is one.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Annotated, Literal, Protocol

import msgspec
from msgspec import Meta

from ..sip.timers import TimerConfig

Name = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
"""Pool, trunk and prompt names: 1-64 of `A-Z a-z 0-9 _ -` (pool names become Redis hash
tags)."""
_Digits = Annotated[str, Meta(pattern=r"^[0-9]{1,4}$")]
_CountryCode = Annotated[str, Meta(pattern=r"^[1-9][0-9]{0,2}$")]
_Concurrency = Annotated[int, Meta(ge=1, le=10_000_000)]
_Rate = Annotated[float, Meta(gt=0.0, le=1_000_000.0)]
_ProbeSeconds = Annotated[float, Meta(ge=0.0, le=3_600.0)]
_Transport = Literal["udp", "tcp", "tls"]

DEFAULT_ALLOW_HEADERS: tuple[str, ...] = (
    "Content-Type",
    "Supported",
    "Session-Expires",
    "Min-SE",
    "Reason",
)
"""Headers that cross from one leg to the other by default: what call setup needs (issue 5).
Reason is rebuilt from its protocol and cause only by the B2BUA."""

_HOSTNAME = re.compile(
    r"(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?"
)


class NumberRules(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`[trunks.number_rules]`: how the trunk writes numbers, to normalise them to E.164."""

    country_code: _CountryCode | None = None
    """Country calling code for national numbers (`91`); without it a national number from
    this trunk cannot be normalised."""
    national_prefix: Annotated[str, Meta(pattern=r"^[0-9]{0,4}$")] = "0"
    """Trunk prefix of national numbers (`0` in `09876543210`)."""
    international_prefix: _Digits = "00"
    """International call prefix (`00` in `0044...`); `+` is always understood."""


class Digest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`[trunks.digest]`: credentials to answer the carrier's 401/407 challenges."""

    username: Annotated[str, Meta(min_length=1, max_length=256)]
    password: Annotated[str, Meta(min_length=1, max_length=256)]
    realm: str | None = None
    """Answer only challenges for this realm (any realm when absent)."""


class MediaSide(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How rtpengine presents media towards one side of the call."""

    interface: Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.-]{1,64}$")] | None = None
    """rtpengine interface name (`--interface=NAME/IP`) facing this side: the ng `direction`
    pair is built from the two sides' names (multi-homed hosts)."""
    transport_protocol: Literal["RTP/AVP", "RTP/SAVP", "RTP/AVPF", "RTP/SAVPF",
                                "UDP/TLS/RTP/SAVP", "UDP/TLS/RTP/SAVPF"] | None = None
    """The media profile this side is offered (SRTP terminated per leg); None: as offered."""
    address_family: Literal["IP4", "IP6"] | None = None
    """The address family this side gets (IPv4 <-> IPv6 bridging); None: as offered."""
    ice: Literal["remove", "force", "default"] = "remove"
    flags: tuple[Annotated[str, Meta(min_length=1, max_length=64)], ...] = ()
    """Extra ng `flags` for offers and answers sent to this side."""


class TrunkConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`[[trunks]]`: a carrier peer."""

    name: Name
    inbound: tuple[str, ...] = ()
    """Source networks accepted from this trunk (`203.0.113.0/24`, `::1/128`, or one
    address)."""
    outbound: tuple[str, ...] = ()
    """Destinations in failover order: `[transport:]host[:port]`, host an IP literal or a
    name (resolved per RFC 3263 when it has no port)."""
    transport: _Transport = "udp"
    """Transport of outbound destinations that name none."""
    digest: Digest | None = None
    trusted_identity: bool = False
    """Take the caller from P-Asserted-Identity (RFC 3325) when this trunk sends it."""
    assert_identity: bool = False
    """Send P-Asserted-Identity carrying the virtual number on calls to this trunk."""
    number_rules: NumberRules = NumberRules()
    max_calls: _Concurrency | None = None
    """Concurrent calls through this trunk; no limit when absent."""
    calls_per_second: _Rate | None = None
    """New calls per second through this trunk; no limit when absent."""
    probe_interval: _ProbeSeconds = 30.0
    """Seconds between OPTIONS probes of each outbound destination; 0 turns probing off."""
    record: bool = False
    """With media anchored: record the calls coming from or going to this trunk
    (docs/media.md)."""
    media: MediaSide | None = None
    """With media anchored: how rtpengine presents media towards this trunk, replacing
    `[media.caller]` or `[media.callee]` for the side this trunk is on."""


class MaskingConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`[masking]`: what may cross from one leg to the other."""

    allow_headers: tuple[str, ...] = DEFAULT_ALLOW_HEADERS
    """Headers copied across; identity-bearing and B2BUA-built headers are refused."""
    display_name: Annotated[str, Meta(max_length=64)] = ""
    """Display name of the From on the built leg ("" for none)."""
    user_agent: Annotated[str, Meta(max_length=128)] = ""
    """Server/User-Agent value sipmask sends; "" sends none (no fingerprint)."""


class CallsConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`[calls]`: call control (issue 5)."""

    ring_timeout: Annotated[int, Meta(ge=1, le=600)] = 60
    """Seconds the callee may ring when the session sets no ring timeout; then the B leg is
    cancelled and the caller gets 480."""
    timer_c: Annotated[int, Meta(ge=1, le=3_600)] = 181
    """RFC 3261 Timer C: seconds without a provisional response before the B leg is
    cancelled and the caller gets 408 (restarted by each provisional; §16.6 asks a proxy for
    more than 3 minutes)."""
    max_duration: Annotated[int, Meta(ge=1, le=86_400)] | None = None
    """Longest call in seconds when the session sets no call-time limit; none when absent."""
    no_binding: Literal["reject", "fallback"] = "reject"
    """A call with no session binding: rejected with `reject_status`, or sent to `fallback`."""
    reject_status: Literal[403, 404, 480, 603] = 404
    """Status for an unknown caller or number (404 reveals nothing about the number)."""
    fallback: str | None = None
    """SIP URI calls without a binding go to when `no_binding = "fallback"` (an IVR)."""
    session_expires: Annotated[int, Meta(ge=90, le=86_400)] = 1800
    """Session interval (RFC 4028) proposed on a B leg when the caller proposed none."""


class RtpengineInstance(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One rtpengine's ng control listener."""

    address: str
    """ip:port of its ng UDP port (`listen-ng`)."""
    weight: Annotated[int, Meta(ge=1, le=1_000)] = 1
    """Share of new calls (calls go to the lowest calls/weight)."""


class MediaConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Media anchoring (docs/media.md)."""

    backend: Literal["none", "rtpengine"] = "none"
    rtpengine: tuple[RtpengineInstance, ...] = ()
    timeout_ms: Annotated[int, Meta(ge=10, le=10_000)] = 1_000
    """Wait for an ng reply before retransmitting."""
    retries: Annotated[int, Meta(ge=0, le=10)] = 2
    ping_interval: Annotated[float, Meta(ge=0.0, le=3_600.0)] = 5.0
    """Seconds between pings of each instance (a down one comes back on a pong); 0: never."""
    on_failure: Literal["reject", "direct"] = "reject"
    """No rtpengine answers a new call's offer: 503 it, or let media flow directly."""
    caller: MediaSide = MediaSide()
    callee: MediaSide = MediaSide()
    rtcp: Literal["drop", "regenerate", "relay"] = "drop"
    """What a party's RTCP (SDES CNAME, BYE reason: identities) does (docs/media.md):
    "regenerate": rtpengine replaces it by its own reports (compounds without SR/RR still
    cross); "drop": regenerate, and each side is told to send its RTCP to a discard port;
    "relay": passed on as sent."""
    flags: tuple[Annotated[str, Meta(min_length=1, max_length=64)], ...] = ()
    """Extra ng `flags` on every offer and answer."""
    announcements: dict[Name, Annotated[str, Meta(min_length=1, max_length=4096)]] = {}
    """Prompts by name: a file path on the rtpengine host (a WAV, or anything its ffmpeg
    reads). Pools and sessions name one; nothing else reaches rtpengine's `play media`."""
    record: bool = False
    """Record every anchored call (rtpengine's `start recording` after the first answer,
    files under its `--recording-dir` named after the call id; a session's or a trunk's
    `record` does the same for their calls)."""


class SipSettings(Protocol):
    """What the engine reads of `[sip]` (the listeners are the server's)."""

    @property
    def timers(self) -> TimerConfig: ...
    @property
    def retry_after(self) -> int: ...
    @property
    def overload_status(self) -> int: ...
    @property
    def overload_lag(self) -> float: ...
    @property
    def tls_ca(self) -> str | None: ...
    @property
    def unknown_source(self) -> Literal["drop", "reject"]: ...


class PoolSettings(Protocol):
    """What the engine reads of a `[[pools]]` entry."""

    @property
    def name(self) -> str: ...
    @property
    def numbers(self) -> tuple[str, ...]: ...
    @property
    def announcement(self) -> str | None: ...


class B2buaSettings(Protocol):
    """The settings the engine takes (`B2BUA(settings, ...)`, `reload(settings)`): the checked
    `sipmask.config.Config` is one."""

    @property
    def sip(self) -> SipSettings: ...
    @property
    def pools(self) -> tuple[PoolSettings, ...]: ...
    @property
    def trunks(self) -> tuple[TrunkConfig, ...]: ...
    @property
    def masking(self) -> MaskingConfig: ...
    @property
    def calls(self) -> CallsConfig: ...
    @property
    def media(self) -> MediaConfig: ...


@dataclass(frozen=True, slots=True)
class Destination:
    """One outbound destination of a trunk. `port` None: resolve per RFC 3263 (SRV, then
    A/AAAA on the transport's default port)."""

    transport: str
    host: str
    port: int | None = None


def parse_destination(text: str, default_transport: str = "udp") -> Destination:
    """`udp:198.51.100.7:5060`, `tcp:[2001:db8::1]:5060`, `sip.carrier.example` ->
    Destination. Raises ValueError with the reason."""
    transport = default_transport
    rest = text.strip()
    head, sep, tail = rest.partition(":")
    if sep and head.lower() in ("udp", "tcp", "tls"):
        transport, rest = head.lower(), tail
    host, port = split_host_port(rest)
    return Destination(transport, host, port)


def split_host_port(text: str) -> tuple[str, int | None]:
    """`host`, `host:port`, `[v6]`, `[v6]:port`, or a bare IPv6 literal -> (host, port)."""
    if text.startswith("["):
        host, close, rest = text[1:].partition("]")
        if not close:
            raise ValueError("unclosed '[' in an IPv6 address")
        ipaddress.IPv6Address(host)
        if not rest:
            return host, None
        if not rest.startswith(":"):
            raise ValueError("expected ':port' after ']'")
        return host, _port(rest[1:])
    if text.count(":") > 1:  # a bare IPv6 literal, no port
        ipaddress.IPv6Address(text)
        return text, None
    host, sep, port = text.partition(":")
    if not _is_host(host):
        raise ValueError(f"not a host name or IP address: {host!r}")
    return host, (_port(port) if sep else None)


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) <= 65535:
        raise ValueError(f"port must be 1-65535, got {text!r}")
    return int(text)


def _is_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return bool(host) and _HOSTNAME.fullmatch(host) is not None and not host.isdigit()
    return True
