"""Data model of masking sessions (issue 4), as msgspec Structs.

A *pool* is a named set of virtual numbers. A *session* binds exactly two participants, each
given a virtual number (its `proxy_identifier`, Twilio Proxy's word) from the session's pool.
P1 dials V1 -> sipmask calls P2 from V2, and back (DESIGN.md, the masking rule). A *binding*
is the answer of the call-time lookup `(dialled number, caller) -> session, other party`.

All times are seconds since the epoch, kept to the millisecond (Redis stores milliseconds).
"""

from __future__ import annotations

import enum
from typing import Annotated, Any

import msgspec
from msgspec import Meta, Struct

#: Largest encoded size of a session's opaque metadata, in bytes (JSON).
MAX_METADATA_BYTES = 4096
#: Longest session ttl: 30 days.
MAX_TTL = 30 * 24 * 3600

Seconds = Annotated[int, Meta(ge=1, le=MAX_TTL)]
PromptName = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
"""A `[media.announcements]` name (never a path: the API does not choose files)."""


class ExpiryMode(enum.Enum):
    """How `expires_at` moves: fixed at creation, or renewed by each call (lookup)."""

    ABSOLUTE = "absolute"
    SLIDING = "sliding"


class SessionStatus(enum.Enum):
    """Twilio Proxy's session states: open until a first call, then in-progress."""

    OPEN = "open"
    IN_PROGRESS = "in-progress"
    CLOSED = "closed"


class Pool(Struct, frozen=True, forbid_unknown_fields=True):
    """A named set of virtual numbers (E.164).

    Attributes:
        name: 1-64 of `A-Z a-z 0-9 _ -` (it is the Redis hash tag).
        numbers: auto-assignable numbers, sorted.
        reserved: numbers never auto-assigned, only pinned at session creation.
        draining: numbers removed from the pool while open sessions still use them; they keep
            working for those sessions and are released when the last one closes.
    """

    name: str
    numbers: tuple[str, ...] = ()
    reserved: tuple[str, ...] = ()
    draining: tuple[str, ...] = ()


class ParticipantSpec(Struct, frozen=True, forbid_unknown_fields=True):
    """One participant of a session to create.

    Attributes:
        identifier: E.164 number or SIP URI.
        proxy_identifier: a number of the pool to pin (reserved numbers may be pinned), or None
            to let the allocation rule pick one.
        route: where to reach this participant (a trunk name or URI), passed through to the
            call path; None for the default routing.
    """

    identifier: str
    proxy_identifier: str | None = None
    route: str | None = None


class SessionSpec(Struct, frozen=True, forbid_unknown_fields=True):
    """A session to create (the body of `POST /v1/sessions`, issue 4).

    Attributes:
        participants: exactly two.
        pool: the pool to take numbers from.
        ttl: seconds until expiry.
        expiry: absolute (fixed) or sliding (each call renews `ttl`).
        call_time_limit: longest call in seconds, per call (not the session's total).
        ring_timeout: seconds to ring the other party before giving up.
        metadata: opaque JSON object, at most MAX_METADATA_BYTES encoded.
        record: record the session's calls (with media anchored: docs/media.md).
        announcement: the name of a `[media.announcements]` prompt played to the caller of
            the session's calls before the bridge (instead of the pool's), or None.
    """

    participants: tuple[ParticipantSpec, ParticipantSpec]
    pool: str = "default"
    ttl: Seconds = 3600
    expiry: ExpiryMode = ExpiryMode.ABSOLUTE
    call_time_limit: Seconds | None = None
    ring_timeout: Annotated[int, Meta(ge=1, le=600)] | None = None
    metadata: dict[str, Any] = {}
    record: bool = False
    announcement: PromptName | None = None


class Participant(Struct, frozen=True):
    """A participant of a session.

    Attributes:
        identifier: as given at creation.
        key: the normalised key the call path matches (`+919876543210`, `alice@example.com`).
        proxy_identifier: the virtual number assigned to this participant: they dial it to
            reach the other party, and calls from the other party show it.
        route: where to reach them, if given.
    """

    identifier: str
    key: str
    proxy_identifier: str
    route: str | None = None


class Session(Struct, frozen=True):
    """A masking session.

    Attributes:
        id: `<pool>.<random>`; the pool part routes the id to its Redis slot.
        pool: the pool the numbers come from.
        participants: exactly two.
        created_at, expires_at: epoch seconds.
        ttl: seconds; sliding expiry renews `expires_at` to `now + ttl` on each call.
        expiry: absolute or sliding.
        call_time_limit: longest call in seconds, per call.
        ring_timeout: seconds to ring the other party.
        status: open, in-progress (after a first call) or closed.
        closed_reason: why it closed (`closed` by the API, `expired`), or None.
        closed_at: when it closed, or None.
        metadata: opaque JSON object from the creator.
        record: the session's calls are recorded (with media anchored).
        announcement: the prompt played to the caller of its calls, by name, or None.
    """

    id: str
    pool: str
    participants: tuple[Participant, Participant]
    created_at: float
    expires_at: float
    ttl: int
    expiry: ExpiryMode
    status: SessionStatus = SessionStatus.OPEN
    call_time_limit: int | None = None
    ring_timeout: int | None = None
    closed_reason: str | None = None
    closed_at: float | None = None
    metadata: dict[str, Any] = {}
    record: bool = False
    announcement: str | None = None


class Binding(Struct, frozen=True):
    """The answer of the call-time lookup `(dialled virtual number, caller)`.

    The B leg goes to `callee` (via `callee.route` if set), presenting
    `callee.proxy_identifier` as the caller ID, so the callee can call back the same number.

    Attributes:
        session_id: the session the call belongs to.
        caller: the participant who dialled (`caller.proxy_identifier` is the dialled number).
        callee: the other participant: who to call, and from which virtual number.
        call_time_limit: longest call in seconds, or None.
        ring_timeout: seconds to ring the callee, or None.
        expires_at: the session's expiry after this lookup (renewed if sliding).
        record: the session's calls are recorded.
        announcement: the session's prompt name, or None.
    """

    session_id: str
    caller: Participant
    callee: Participant
    call_time_limit: int | None
    ring_timeout: int | None
    expires_at: float
    record: bool = False
    announcement: str | None = None

    @property
    def caller_id(self) -> str:
        """The number to present to the callee (their own virtual number)."""
        return self.callee.proxy_identifier

    @property
    def route(self) -> str | None:
        """Where to send the B leg, if the session says."""
        return self.callee.route


class Interaction(Struct, frozen=True):
    """One call of a session (Twilio Proxy's interaction), kept as a call record.

    Attributes:
        id: the call's id (unique per call, e.g. the A leg's Call-ID hash).
        session_id: the session.
        caller, callee: normalised keys of the two participants.
        dialled: the virtual number the caller dialled.
        presented: the virtual number shown to the callee.
        started_at: when the call arrived.
        answered_at, ended_at: when it was answered and ended, None if not (yet).
        status: outcome, e.g. `completed`, `no-answer`, `busy`, `failed`, `refused`.
        cause: SIP status or hangup cause, if any.
        recording: the reference of the call's recording (rtpengine's call id, which names
            its recording files: docs/media.md), or None when it was not recorded.
    """

    id: str
    session_id: str
    caller: str
    callee: str
    dialled: str
    presented: str
    started_at: float
    answered_at: float | None = None
    ended_at: float | None = None
    status: str = "completed"
    cause: str | None = None
    recording: str | None = None


def binding_for(session: Session, dialled: str, caller: str) -> Binding | None:
    """Return the binding of a session for `(dialled, caller)`, or None if neither
    participant is that caller with that number."""
    first, second = session.participants
    if first.key == caller and first.proxy_identifier == dialled:
        me, other = first, second
    elif second.key == caller and second.proxy_identifier == dialled:
        me, other = second, first
    else:
        return None
    return Binding(
        session_id=session.id,
        caller=me,
        callee=other,
        call_time_limit=session.call_time_limit,
        ring_timeout=session.ring_timeout,
        expires_at=session.expires_at,
        record=session.record,
        announcement=session.announcement,
    )


def ms(seconds: float) -> int:
    """Epoch seconds to integer milliseconds (the resolution both backends keep)."""
    return round(seconds * 1000)


def metadata_size(metadata: dict[str, Any]) -> int:
    """Encoded JSON size of a metadata object, in bytes."""
    return len(msgspec.json.encode(metadata))
