"""Sessions, pools and bindings (issue 4): the `SessionStore` contract and its two backends,
`MemoryStore` (embedded default, journaled to disk) and `RedisStore` (shared by nodes).

The store sits beside `sip` in the layers of DESIGN.md: it imports nothing from the SIP
layers, and the B2BUA reads bindings through `SessionStore.lookup`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import SessionStore
from .errors import (
    InvalidParticipant,
    InvalidPool,
    InvalidSession,
    NumberUnavailable,
    PoolExhausted,
    PoolInUse,
    SessionNotFound,
    StoreError,
    StoreUnavailable,
    UnknownPool,
)
from .memory import MemoryStore
from .model import (
    Binding,
    ExpiryMode,
    Interaction,
    Participant,
    ParticipantSpec,
    Pool,
    Session,
    SessionSpec,
    SessionStatus,
)
from .numbers import normalise_number, participant_key

if TYPE_CHECKING:
    from .redis import RedisStore

__all__ = [
    "Binding",
    "ExpiryMode",
    "Interaction",
    "InvalidParticipant",
    "InvalidPool",
    "InvalidSession",
    "MemoryStore",
    "NumberUnavailable",
    "Participant",
    "ParticipantSpec",
    "Pool",
    "PoolExhausted",
    "PoolInUse",
    "RedisStore",
    "Session",
    "SessionNotFound",
    "SessionSpec",
    "SessionStatus",
    "SessionStore",
    "StoreError",
    "StoreUnavailable",
    "UnknownPool",
    "normalise_number",
    "participant_key",
]


def __getattr__(name: str) -> Any:
    # redis-py is imported only by those who use the Redis backend.
    if name == "RedisStore":
        from .redis import RedisStore

        return RedisStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
