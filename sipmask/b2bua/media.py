"""The offer/answer hook: where media anchoring (rtpengine's ng protocol) plugs in.

Every SDP body the B2BUA sends has already been rebuilt through the core's allow-list
(`masking.py`); before it leaves, it passes through the `MediaHook`, once per leg: `offer` for
an SDP offer (an INVITE, re-INVITE or UPDATE body, or a 2xx/18x body when the request had
none), `answer` for an SDP answer. The hook may rewrite addresses and ports (anchoring) and
may take its time (it is async); the engine keeps the messages of one call in order while it
waits. `end` is called once when the call ends. The default is no hook at all: bodies go
out as rebuilt, with no task and no await on the hot path.

Each call is described to the hook by a `MediaContext`, made by the engine once per call (at
the call's first SDP through the hook) and passed to every method.

A hook that cannot anchor a call and must not let its media flow directly raises
`MediaRefused`: the engine answers the caller 503 (before the call is answered) or hangs up.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from .call import Call
    from .routing import Router
    from .settings import B2buaSettings, MediaSide

SdpKind = Literal["offer", "answer"]

log = logging.getLogger(__name__)


class MediaRefused(Exception):
    """The hook refuses to send this body: end the call (503 when not yet answered)."""


@dataclass(frozen=True, slots=True)
class MediaContext:
    """What the hook knows of a call; made once per call, never changed.

    Attributes:
        call_id: the engine's call id (never a peer's Call-ID).
        session_id: the masking session, or None (a call without one never reaches the hook
            today; kept optional for hooks used elsewhere).
        caller_trunk: the trunk the call came in on.
        callee_trunk: the trunk of the B leg's first destination, or None when the session
            routes the callee to a URI.
        record: the session or either trunk asks for the call to be recorded.
        announcement: a prompt (a file on the media server) to play to the caller before
            the parties are bridged, or None.
        caller_media, callee_media: the trunks' `media` settings (None: `[media.caller]`,
            `[media.callee]`).
    """

    call_id: str
    session_id: str | None = None
    caller_trunk: str | None = None
    callee_trunk: str | None = None
    record: bool = False
    announcement: str | None = None
    caller_media: MediaSide | None = None
    callee_media: MediaSide | None = None


def media_context(call: Call, router: Router, config: B2buaSettings) -> MediaContext:
    """The context of `call` as the engine knows it at its first SDP: recorded when the
    session, the caller's trunk or the callee's trunk says so; the announcement (a file path)
    named by the session, else by its pool's `[[pools]]` entry."""
    binding = call.binding
    target = call.targets[call.target_index] if call.target_index < len(call.targets) else None
    callee_trunk = router.by_name.get(target.trunk or "") if target is not None else None
    pool = binding.session_id.partition(".")[0] if binding is not None else None
    name = binding.announcement if binding is not None else None
    if name is None:
        name = next((p.announcement for p in config.pools if p.name == pool), None)
    announcement = config.media.announcements.get(name) if name is not None else None
    if name is not None and announcement is None:
        log.warning("call %s: no prompt named %r in [media.announcements]", call.id, name)
    return MediaContext(
        call_id=call.id,
        session_id=binding.session_id if binding is not None else None,
        caller_trunk=call.trunk.name,
        callee_trunk=callee_trunk.name if callee_trunk is not None else None,
        record=bool((binding is not None and binding.record) or call.trunk.config.record
                    or (callee_trunk is not None and callee_trunk.config.record)),
        announcement=announcement,
        caller_media=call.trunk.config.media,
        callee_media=callee_trunk.config.media if callee_trunk is not None else None,
    )


class MediaHook(Protocol):
    async def offer(self, call: MediaContext, leg: str, sdp: bytes) -> bytes:
        """An SDP offer about to be sent on `leg` ('caller' or 'callee') of `call`;
        return the body to send."""
        ...

    async def answer(self, call: MediaContext, leg: str, sdp: bytes) -> bytes:
        """An SDP answer about to be sent on `leg`; return the body to send."""
        ...

    async def end(self, call: MediaContext) -> None:
        """The call ended: release what was anchored for it."""
        ...

    def recording(self, call: MediaContext) -> str | None:
        """The reference of the call's recording (for its call record), or None."""
        ...


class Passthrough:
    """A hook that changes nothing (for tests and as a template)."""

    async def offer(self, call: MediaContext, leg: str, sdp: bytes) -> bytes:
        return sdp

    async def answer(self, call: MediaContext, leg: str, sdp: bytes) -> bytes:
        return sdp

    async def end(self, call: MediaContext) -> None:
        return None

    def recording(self, call: MediaContext) -> str | None:
        return None
