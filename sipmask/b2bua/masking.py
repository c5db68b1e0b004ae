"""What may cross from one leg to the other: each value rebuilt from its grammar, nothing
copied (DESIGN.md, the masking rule; issue 11).

Theory of operation: a message the B2BUA sends on one leg is *built* (by `sip.dialog` and the
call), never copied from the other leg. What is taken from the other leg is parsed into typed
parts, checked against a grammar and a range, and written anew, so that no free text, no
unknown parameter and no value wide enough to hold a number crosses:

- headers named in `[masking] allow_headers` that sipmask has a grammar for: Supported and
  Require (the option tags sipmask knows), Reason (protocol SIP or Q.850, the cause mapped
  onto a small set of real values, no text). Session-Expires and Min-SE are per leg: sipmask
  runs the session timer of each leg itself, so a leg gets sipmask's own values
  (`leg_session_timer`, `own_session_timer`), never the other leg's. An allowed header
  without a grammar here does not cross. Content-Type is written with the body: the
  type/subtype sipmask rebuilt, no parameters but a fixed `charset=UTF-8` on text.
- bodies, by method: SDP is rebuilt by the leg's `SdpOrigin` (the core's grammar rebuild,
  docs/core.md); the SDP part of a multipart body is the only part kept; INFO carries DTMF
  (`application/dtmf-relay`: `Signal=` and `Duration=` only; `application/dtmf`: one key),
  MESSAGE carries `text/plain` (the chat text is the users' own and crosses by design). Any
  other body is refused with 415 and Accept.

What the two ends need as they are while media is not anchored (media addresses and ports,
SRTP keys, DTLS fingerprints) and the chat text are the residual channels: docs/b2bua.md.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from .._core import Message, Request, SdpOrigin, find_sdp
from ..errors import ParseError

SIPMASK_METHODS = (
    "INVITE",
    "ACK",
    "BYE",
    "CANCEL",
    "OPTIONS",
    "PRACK",
    "UPDATE",
    "INFO",
    "MESSAGE",
)
"""The Allow sipmask sends on every leg (REFER is refused: transfer is a later feature)."""
SIPMASK_SUPPORTED = frozenset({"100rel", "timer"})
"""Option tags sipmask understands on a leg it builds (RFC 3262 PRACK, RFC 4028)."""
SDP = "application/sdp"
DTMF_RELAY = "application/dtmf-relay"
DTMF = "application/dtmf"
TEXT = "text/plain"

BODY_TYPES: dict[str, frozenset[str]] = {
    "INFO": frozenset({DTMF_RELAY, DTMF}),
    "MESSAGE": frozenset({TEXT}),
}
"""Non-SDP body types that cross, by method; all others are refused (415)."""
SDP_METHODS = frozenset({"INVITE", "UPDATE", "ACK", "PRACK"})
SESSION_TIMER_METHODS = frozenset({"INVITE", "UPDATE"})
"""Requests that refresh a session (RFC 4028 §7, §9)."""

MAX_SESSION_INTERVAL = 86_400
"""Largest Session-Expires sipmask takes (RFC 4028 sets no bound; a day is plenty)."""
_DELTA = re.compile(r"\s*([0-9]{1,10})\s*(?:;(.*))?$")
_REFRESHER = re.compile(r"(?:^|;)\s*refresher\s*=\s*(uac|uas)\s*(?:;|$)", re.IGNORECASE)
_REASON = re.compile(r"\s*(SIP|Q\.850)\s*;(?:.*;)?\s*cause\s*=\s*([0-9]{1,3})\s*(?:;|$)",
                     re.IGNORECASE)

SIP_CAUSES = frozenset({200, 404, 408, 410, 480, 486, 487, 488, 500, 503, 600, 603})
"""SIP statuses a Reason may carry across (RFC 3326); any other maps onto its class."""
Q850_CAUSES = frozenset({16, 17, 18, 19, 21, 27, 31, 34, 38, 41, 47, 102, 127})
"""Q.850 causes a Reason may carry across; any other maps onto the end of its class."""
DTMF_KEYS = frozenset("0123456789*#ABCD")
"""The keys of a DTMF body (RFC 4733 events 0-15)."""
MAX_DTMF_DURATION = 10_000
"""Longest `Duration=` of a dtmf-relay body, in milliseconds."""
TEXT_CHARSETS = frozenset({"utf-8", "us-ascii", "iso-8859-1"})
"""Charsets of a MESSAGE text sipmask reads (it is sent on as UTF-8)."""
_CHARSET = re.compile(r";\s*charset\s*=\s*\"?([A-Za-z0-9._-]{1,40})", re.IGNORECASE)


def _option_tags(message: Message, name: str) -> list[str]:
    """Option tags of the message's `name` header that sipmask supports, in order, once
    each."""
    tags: list[str] = []
    for value in message.headers(name):
        tag = value.strip().lower()
        if tag in SIPMASK_SUPPORTED and tag not in tags:
            tags.append(tag)
    return tags


def supported_tags(message: Message) -> list[str]:
    """Option tags of the message's Supported that sipmask supports, in order, once each."""
    return _option_tags(message, "supported")


def session_expires(message: Message, name: str = "session-expires") -> tuple[int, str | None]:
    """(delta-seconds, refresher or None) of Session-Expires (RFC 4028 §4); (0, None) when
    absent or unreadable. What a leg asks for itself: it never crosses to the other leg."""
    value = message.header(name)
    if value is None:
        return 0, None
    match = _DELTA.match(value)
    if match is None or int(match.group(1)) > MAX_SESSION_INTERVAL:
        return 0, None
    refresher = None
    if match.group(2):
        found = _REFRESHER.search(match.group(2))
        refresher = found.group(1).lower() if found else None
    return int(match.group(1)), refresher


def leg_session_timer(method: str, interval: int, we_refresh: bool) -> list[tuple[str, str]]:
    """Session-Expires of a refresh request sipmask relays onto a leg: that leg's own
    interval and refresher (RFC 4028 §7.4), not those of the leg it came from."""
    if method not in SESSION_TIMER_METHODS or not interval:
        return []
    return [("Session-Expires", f"{interval};refresher={'uac' if we_refresh else 'uas'}")]


def own_session_timer(request: Request) -> list[tuple[str, str]]:
    """Session-Expires of sipmask's 2xx to a refresh request: the interval and refresher
    the request asked for on its own leg, echoed (RFC 4028 §9), never the other leg's."""
    if request.method not in SESSION_TIMER_METHODS:
        return []
    interval, refresher = session_expires(request)
    if not interval:
        return []
    return [("Session-Expires", f"{interval};refresher={refresher or 'uac'}")]


def _sip_cause(cause: int) -> int | None:
    if cause in SIP_CAUSES:
        return cause
    if not 200 <= cause <= 699:
        return None
    return {2: 200, 3: 480, 4: 480, 5: 500, 6: 603}[cause // 100]


def _q850_cause(cause: int) -> int | None:
    if cause in Q850_CAUSES:
        return cause
    if not 1 <= cause <= 127:
        return None
    return 31 if cause <= 31 else 47 if cause <= 47 else 127  # ends of the Q.850 classes


def reason_value(message: Message) -> str | None:
    """The first readable Reason header rebuilt as `SIP;cause=486` or `Q.850;cause=16`: the
    protocol and a cause from a small set of real values (RFC 3326), no text."""
    for value in message.headers("reason"):
        match = _REASON.match(value)
        if match is None:
            continue
        if match.group(1).upper() == "SIP":
            protocol, cause = "SIP", _sip_cause(int(match.group(2)))
        else:
            protocol, cause = "Q.850", _q850_cause(int(match.group(2)))
        if cause is not None:
            return f"{protocol};cause={cause}"
    return None


def crossing_headers(source: Message, allow: Iterable[str]) -> list[tuple[str, str]]:
    """The allow-listed headers of `source` as they may appear on the other leg (see the
    module docstring). Content-Type is set with the body, Session-Expires and Min-SE are
    the leg's own (`leg_session_timer`), and headers without a grammar do not cross."""
    fields: list[tuple[str, str]] = []
    for name in allow:
        lowered = name.lower()
        if lowered in ("supported", "k", "require"):
            tags = _option_tags(source, lowered)
            if tags:
                fields.append(("Require" if lowered == "require" else "Supported",
                               ", ".join(tags)))
        elif lowered == "reason":
            reason = reason_value(source)
            if reason is not None:
                fields.append(("Reason", reason))
    return fields


@dataclass(frozen=True, slots=True)
class Body:
    """A body as it may cross: its type and bytes (both empty for none)."""

    content_type: str = ""
    data: bytes = b""

    def headers(self) -> list[tuple[str, str]]:
        return [("Content-Type", self.content_type)] if self.data else []


NO_BODY = Body()


class BodyRefused(Exception):
    """The body is of a type that may not cross for this method, or one sipmask cannot read
    (answer 415 with Accept)."""

    def __init__(self, accept: Iterable[str]) -> None:
        super().__init__("body type not allowed")
        self.accept = sorted(accept)


def dtmf_relay_body(body: bytes) -> bytes | None:
    """An `application/dtmf-relay` body rebuilt: `Signal=` one key of 0-9 * # A-D and an
    optional `Duration=` of 1-10000 ms, nothing else; None when it has no valid Signal."""
    signal = duration = None
    for line in body.decode("ascii", "replace").splitlines():
        key, eq, value = line.partition("=")
        key, value = key.strip().lower(), value.strip().upper()
        if not eq:
            continue
        if key == "signal" and signal is None:
            if len(value) != 1 or value not in DTMF_KEYS:
                return None
            signal = value
        elif key == "duration" and duration is None:
            if not (value.isascii() and value.isdigit() and len(value) <= 5
                    and 1 <= int(value) <= MAX_DTMF_DURATION):
                return None
            duration = int(value)
    if signal is None:
        return None
    return (f"Signal={signal}\r\n" + (f"Duration={duration}\r\n" if duration else "")).encode()


def dtmf_body(body: bytes) -> bytes | None:
    """An `application/dtmf` body rebuilt: one key of 0-9 * # A-D; None otherwise."""
    key = body.strip().decode("ascii", "replace").upper()
    return key.encode() if len(key) == 1 and key in DTMF_KEYS else None


def text_body(message: Message) -> bytes | None:
    """A `text/plain` MESSAGE body read in its charset and sent on as UTF-8. The text is the
    users' own and crosses by design (docs/b2bua.md, residual channels)."""
    match = _CHARSET.search(message.header("content-type") or "")
    charset = match.group(1).lower() if match else "utf-8"
    if charset not in TEXT_CHARSETS:
        return None
    try:
        return message.body.decode(charset).encode("utf-8")
    except UnicodeDecodeError:
        return None


def _rebuilt_body(message: Message, content_type: str | None) -> Body | None:
    """A non-SDP body rebuilt from the grammar of its type, or None."""
    if content_type == DTMF_RELAY:
        data = dtmf_relay_body(message.body)
    elif content_type == DTMF:
        data = dtmf_body(message.body)
    elif content_type == TEXT:
        data = text_body(message)
        if data is not None:
            return Body("text/plain;charset=UTF-8", data)
    else:
        data = None
    return Body(content_type, data) if data is not None and content_type else None


def crossing_body(message: Message, method: str, origin: SdpOrigin) -> Body:
    """The body of `message` (a request of `method`, or a response to one) rebuilt as it may
    be sent on the leg whose SDP state is `origin`.

    Raises:
        BodyRefused: a body of a type this method does not carry, or that does not read as
            its type (INFO DTMF, MESSAGE text; SDP methods take only SDP).
        ParseError: an SDP body that does not parse (answer 400 / 488).
    """
    body = message.body
    if not body:
        return NO_BODY
    content_type = message.content_type
    allowed = BODY_TYPES.get(method)
    if allowed is not None:
        rebuilt = _rebuilt_body(message, content_type) if content_type in allowed else None
        if rebuilt is None:
            raise BodyRefused(allowed)
        return rebuilt
    if method in SDP_METHODS:
        sdp = find_sdp(message.header("content-type"), body)
        if sdp is not None:
            return Body(SDP, origin.rebuild(sdp))
        raise BodyRefused([SDP])
    return NO_BODY


def has_sdp(message: Message) -> bool:
    """Whether the message carries an SDP body (alone or as a multipart part)."""
    if not message.body:
        return False
    try:
        return find_sdp(message.header("content-type"), message.body) is not None
    except ParseError:
        return False

