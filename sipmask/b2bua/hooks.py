"""What the call logic asks the platform (`webhooks.py` answers over HTTP): the hooks are
injected into the engine as a `PlatformHooks`, so the b2bua layer imports nothing above it.
The out-of-session decisions are defined here, where they are acted on; `webhooks.py`
decodes them from the platform's JSON.
"""

from __future__ import annotations

from typing import Annotated, Any, Protocol

import msgspec
from msgspec import Meta

from ..store.model import ExpiryMode, ParticipantSpec, SessionSpec


class Reject(msgspec.Struct, frozen=True, tag_field="action", tag="reject"):
    """Refuse the call (with `[calls] reject_status`)."""


class Fallback(msgspec.Struct, frozen=True, tag_field="action", tag="fallback"):
    """Send the call to `uri` (an IVR, an agent) instead."""

    uri: Annotated[str, Meta(pattern=r"^[sS][iI][pP][sS]?:.+", max_length=256)]


class CreateSession(msgspec.Struct, frozen=True, tag_field="action", tag="create-session",
                    forbid_unknown_fields=True):
    """Open a session on the spot (the body of `POST /v1/sessions`), then route the call
    through it."""

    participants: tuple[ParticipantSpec, ParticipantSpec]
    pool: str = "default"
    ttl: Annotated[int, Meta(ge=1, le=30 * 24 * 3600)] = 3600
    expiry: ExpiryMode = ExpiryMode.ABSOLUTE
    call_time_limit: Annotated[int, Meta(ge=1, le=30 * 24 * 3600)] | None = None
    ring_timeout: Annotated[int, Meta(ge=1, le=600)] | None = None
    metadata: dict[str, Any] = {}

    def spec(self) -> SessionSpec:
        """The SessionSpec to give `SessionStore.create_session`."""
        return SessionSpec(
            participants=self.participants, pool=self.pool, ttl=self.ttl, expiry=self.expiry,
            call_time_limit=self.call_time_limit, ring_timeout=self.ring_timeout,
            metadata=self.metadata,
        )


Decision = Reject | Fallback | CreateSession


class PlatformHooks(Protocol):
    """The platform's synchronous hooks on the call path."""

    @property
    def intercept_enabled(self) -> bool: ...

    @property
    def out_of_session_enabled(self) -> bool: ...

    async def intercept(self, session_id: str, caller_key: str, callee_key: str) -> bool:
        """Whether a call of an open session may go ahead."""
        ...

    async def out_of_session(self, dialled: str, caller_key: str) -> Decision:
        """What to do with a call without a binding."""
        ...
