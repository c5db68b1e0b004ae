"""What may cross from one leg to the other: headers through an allow-list, bodies through
the core's SDP rebuild, nothing else (DESIGN.md, the masking rule).

Theory of operation: a message the B2BUA sends on one leg is *built* (by `sip.dialog` and the
call), never copied from the other leg. The only things taken from the other leg are:

- the headers named in `[masking] allow_headers`. Those whose grammar sipmask knows are
  rebuilt from their meaningful parts only, so free text or extra parameters cannot carry a
  number across: Supported (filtered to what sipmask supports), Session-Expires and Min-SE
  (delta-seconds and `refresher`), Reason (protocol and numeric cause). Any other allowed
  header is copied as the operator asked; identity-bearing headers are refused by the config.
- the body, by method: SDP is rebuilt by the leg's `SdpOrigin` (o= username `-`, sipmask's
  address and session id, `s=-`, no i= u= e= p= k=, only allowed attributes); the SDP part of a
  multipart body is the only part kept; INFO and MESSAGE carry the few types their allow-list
  names; every other body is dropped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from .._core import Message, SdpOrigin, find_sdp
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

BODY_TYPES: dict[str, frozenset[str]] = {
    "INFO": frozenset({"application/dtmf-relay", "application/dtmf"}),
    "MESSAGE": frozenset({"text/plain"}),
}
"""Non-SDP body types that cross, by method; all others are dropped (or refused, 415)."""
SDP_METHODS = frozenset({"INVITE", "UPDATE", "ACK", "PRACK"})

MAX_SESSION_INTERVAL = 86_400
"""Largest Session-Expires / Min-SE that crosses (RFC 4028 sets no bound; a day is plenty)."""
_DELTA = re.compile(r"\s*([0-9]{1,10})\s*(?:;(.*))?$")
_REFRESHER = re.compile(r"(?:^|;)\s*refresher\s*=\s*(uac|uas)\s*(?:;|$)", re.IGNORECASE)
_REASON = re.compile(r"\s*(SIP|Q\.850)\s*;(?:.*;)?\s*cause\s*=\s*([0-9]{1,5})\b", re.IGNORECASE)


def supported_tags(message: Message) -> list[str]:
    """Option tags of the message's Supported that sipmask supports, in order, once each."""
    tags: list[str] = []
    for value in message.headers("supported"):
        tag = value.strip().lower()
        if tag in SIPMASK_SUPPORTED and tag not in tags:
            tags.append(tag)
    return tags


def session_expires(message: Message, name: str = "session-expires") -> tuple[int, str | None]:
    """(delta-seconds, refresher or None) of Session-Expires (RFC 4028 §4); (0, None) when
    absent or unreadable."""
    value = message.header(name)
    if value is None:
        return 0, None
    match = _DELTA.match(value)
    if match is None or int(match.group(1)) > MAX_SESSION_INTERVAL:
        return 0, None  # an absurd interval could be a number in disguise
    refresher = None
    if match.group(2):
        found = _REFRESHER.search(match.group(2))
        refresher = found.group(1).lower() if found else None
    return int(match.group(1)), refresher


def reason_value(message: Message) -> str | None:
    """The first Reason header rebuilt as `SIP;cause=486` or `Q.850;cause=16`: protocol and
    numeric cause only (RFC 3326), since free text can carry anything."""
    for value in message.headers("reason"):
        match = _REASON.match(value)
        if match is not None:
            protocol = "SIP" if match.group(1).upper() == "SIP" else "Q.850"
            return f"{protocol};cause={int(match.group(2))}"
    return None


def crossing_headers(source: Message, allow: Iterable[str]) -> list[tuple[str, str]]:
    """The allow-listed headers of `source` as they may appear on the other leg (see the
    module docstring). Content-Type is not among them: the body's type is set with the
    body."""
    fields: list[tuple[str, str]] = []
    for name in allow:
        lowered = name.lower()
        if lowered in ("content-type", "c"):
            continue
        if lowered in ("supported", "k"):
            tags = supported_tags(source)
            if tags:
                fields.append(("Supported", ", ".join(tags)))
        elif lowered in ("session-expires", "x"):
            delta, refresher = session_expires(source)
            if delta:
                suffix = f";refresher={refresher}" if refresher else ""
                fields.append(("Session-Expires", f"{delta}{suffix}"))
        elif lowered == "min-se":
            delta, _ = session_expires(source, "min-se")
            if delta:
                fields.append(("Min-SE", str(delta)))
        elif lowered == "reason":
            reason = reason_value(source)
            if reason is not None:
                fields.append(("Reason", reason))
        else:
            fields += [(name, value) for value in source.headers(name)]
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
    """The body is of a type that may not cross for this method (answer 415 with Accept)."""

    def __init__(self, accept: Iterable[str]) -> None:
        super().__init__("body type not allowed")
        self.accept = sorted(accept)


def crossing_body(message: Message, method: str, origin: SdpOrigin) -> Body:
    """The body of `message` (a request of `method`, or a response to one) as it may be sent
    on the leg whose o= state is `origin`.

    Raises:
        BodyRefused: an INFO or MESSAGE body of a type its allow-list does not name.
        ParseError: an SDP body that does not parse (answer 400 / 488).
    """
    body = message.body
    if not body:
        return NO_BODY
    content_type = message.content_type
    allowed = BODY_TYPES.get(method)
    if allowed is not None:
        if content_type in allowed:
            return Body(_plain_type(message), body)
        raise BodyRefused(allowed)
    if method in SDP_METHODS:
        sdp = find_sdp(message.header("content-type"), body)
        if sdp is not None:
            return Body(SDP, origin.rebuild(sdp))
    return NO_BODY


def _plain_type(message: Message) -> str:
    """The Content-Type rebuilt as `type/subtype` plus a `charset` token, nothing else."""
    content_type = message.content_type or "text/plain"
    raw = message.header("content-type") or ""
    match = re.search(r";\s*charset\s*=\s*\"?([A-Za-z0-9._-]{1,40})", raw, re.IGNORECASE)
    return f"{content_type};charset={match.group(1)}" if match else content_type


def has_sdp(message: Message) -> bool:
    """Whether the message carries an SDP body (alone or as a multipart part)."""
    if not message.body:
        return False
    try:
        return find_sdp(message.header("content-type"), message.body) is not None
    except ParseError:
        return False

