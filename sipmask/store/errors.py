"""Errors of the session store (issue 4). Each maps to one API answer later: the store raises
them, the HTTP layer turns them into problem details (RFC 9457)."""

from __future__ import annotations


class StoreError(Exception):
    """Base class of the session store's errors."""


class StoreUnavailable(StoreError):
    """The backend cannot be reached (Redis down or too slow). Raised fast; retry later."""


class UnknownPool(StoreError, LookupError):
    """No pool of that name."""


class SessionNotFound(StoreError, LookupError):
    """No session of that id (never created, or dropped after its retention)."""


class InvalidParticipant(StoreError, ValueError):
    """A participant identifier that is not E.164 or a SIP URI, or that is a pool number
    (calling it would loop back into sipmask)."""


class InvalidSession(StoreError, ValueError):
    """A session request that breaks a rule: ttl, limits, metadata size, same party twice."""


class InvalidPool(StoreError, ValueError):
    """A pool definition that breaks a rule: bad name, bad number, number both free and
    reserved."""


class PoolExhausted(StoreError):
    """Every auto-assignable number of the pool is already used by this participant.

    Attributes:
        pool: the pool's name.
        participant: the participant's normalised key.
    """

    def __init__(self, pool: str, participant: str) -> None:
        super().__init__(f"pool {pool!r} has no free number for participant {participant!r}")
        self.pool = pool
        self.participant = participant


class NumberUnavailable(StoreError):
    """A number that cannot be used as asked: a pinned number not in the pool or already used
    by that participant, or a pool number that another pool owns."""


class PoolInUse(StoreError):
    """A pool that still has open sessions cannot be deleted."""
