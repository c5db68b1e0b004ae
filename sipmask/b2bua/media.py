"""The offer/answer hook: where media anchoring (rtpengine's ng protocol) plugs in.

Every SDP body the B2BUA sends has already been rebuilt through the core's allow-list
(`masking.py`); before it leaves, it passes through the `MediaHook`, once per leg: `offer` for
an SDP offer (an INVITE, re-INVITE or UPDATE body, or a 2xx/18x body when the request had
none), `answer` for an SDP answer. The hook may rewrite addresses and ports (anchoring) and
may take its time (it is async); the engine keeps the messages of one call in order while it
waits. `end` is called once when the call ends. The default is no hook at all: bodies go
out as rebuilt, with no task and no await on the hot path.

A hook that cannot anchor a call and must not let its media flow directly raises
`MediaRefused`: the engine answers the caller 503 (before the call is answered) or hangs up.
"""

from __future__ import annotations

from typing import Literal, Protocol

SdpKind = Literal["offer", "answer"]


class MediaRefused(Exception):
    """The hook refuses to send this body: end the call (503 when not yet answered)."""


class MediaHook(Protocol):
    async def offer(self, call_id: str, leg: str, sdp: bytes) -> bytes:
        """An SDP offer about to be sent on `leg` ('caller' or 'callee') of call `call_id`;
        return the body to send."""
        ...

    async def answer(self, call_id: str, leg: str, sdp: bytes) -> bytes:
        """An SDP answer about to be sent on `leg`; return the body to send."""
        ...

    async def end(self, call_id: str) -> None:
        """The call ended: release what was anchored for it."""
        ...


class Passthrough:
    """A hook that changes nothing (for tests and as a template)."""

    async def offer(self, call_id: str, leg: str, sdp: bytes) -> bytes:
        return sdp

    async def answer(self, call_id: str, leg: str, sdp: bytes) -> bytes:
        return sdp

    async def end(self, call_id: str) -> None:
        return None
