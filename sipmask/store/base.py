"""The session store contract (issue 4): one Protocol, two backends (`memory`, `redis`).

Both backends implement the same allocation rule, so the contract tests can assert exact
numbers:

1. a participant's virtual number is unique among that participant's open sessions; numbers
   are reused freely across participants;
2. a pinned number (`ParticipantSpec.proxy_identifier`, reserved numbers allowed) is used as
   given, or the creation fails with NumberUnavailable;
3. else the number this pair had last time (sticky), if still assignable and free;
4. else the best geo-match (same country and area code, then same country), ties going to
   the least recently assigned number (then the lowest number);
5. reserved and draining numbers are never auto-assigned; no free number is PoolExhausted.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterable, Sequence
from typing import Protocol

import msgspec

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
from .model import (
    MAX_METADATA_BYTES,
    Binding,
    Interaction,
    Pool,
    Session,
    SessionSpec,
    metadata_size,
)
from .numbers import (
    check_identifier,
    check_pool_name,
    check_route,
    geo_of,
    geo_score,
    normalise_number,
)

__all__ = [
    "InvalidParticipant",
    "InvalidPool",
    "InvalidSession",
    "NumberUnavailable",
    "PoolExhausted",
    "PoolInUse",
    "PreparedParticipant",
    "SessionNotFound",
    "SessionStore",
    "StoreError",
    "StoreUnavailable",
    "UnknownPool",
    "pick_number",
    "pool_of_session",
    "prepare_pool",
    "prepare_spec",
    "missing_pools",
    "restore_pools",
]

#: How long a closed session stays readable (`get_session`, interactions), in seconds.
DEFAULT_CLOSED_RETENTION = 24 * 3600
#: How long a pair remembers its numbers for the sticky preference, in seconds.
DEFAULT_STICKY_TTL = 30 * 24 * 3600
#: Call records kept per session in the store (the event stream keeps them all).
MAX_INTERACTIONS = 1000
#: Numbers handled between two yields to the event loop in a pool update (issue 13: one
#: update of 55,000 numbers stalled the SIP calls on the same loop for 3 s).
POOL_CHUNK = 250


async def yield_every(count: int) -> None:
    """Let the event loop run other tasks (the call path) once per `POOL_CHUNK` items."""
    if count and count % POOL_CHUNK == 0:
        await asyncio.sleep(0)


class SessionStore(Protocol):
    """Sessions, pools and bindings. Every method may raise StoreUnavailable.

    Methods that depend on time take `now` (epoch seconds); None reads the store's clock.
    """

    async def ensure_pool(self, name: str) -> Pool:
        """Create an empty pool if there is none of that name; return the pool."""
        ...

    async def set_pool(
        self, name: str, numbers: Iterable[str], reserved: Iterable[str] = ()
    ) -> Pool:
        """Create or replace a pool's numbers. Numbers dropped while in use are drained, never
        yanked from open sessions. Raises InvalidPool, NumberUnavailable (owned by another
        pool)."""
        ...

    async def get_pool(self, name: str) -> Pool:
        """Return a pool. Raises UnknownPool."""
        ...

    async def list_pools(self) -> list[str]:
        """Return the names of all pools, sorted."""
        ...

    async def pool_usage(self, name: str) -> int:
        """How many of a pool's numbers open sessions use now (for utilisation metrics).
        Raises UnknownPool."""
        ...

    async def delete_pool(self, name: str) -> None:
        """Delete a pool with no open session. Raises UnknownPool, PoolInUse."""
        ...

    async def create_session(self, spec: SessionSpec, *, now: float | None = None) -> Session:
        """Allocate numbers and open a session, atomically.

        Raises:
            UnknownPool, InvalidParticipant, InvalidSession, NumberUnavailable, PoolExhausted.
        """
        ...

    async def get_session(self, session_id: str) -> Session:
        """Return a session, open or closed (closed ones until their retention ends).
        Raises SessionNotFound."""
        ...

    async def list_sessions(
        self, *, participant: str | None = None, pool: str | None = None
    ) -> list[Session]:
        """Return open sessions (of a participant identifier, of a pool, or all), oldest
        first. Raises InvalidParticipant, UnknownPool."""
        ...

    async def close_session(
        self, session_id: str, *, reason: str = "closed", now: float | None = None
    ) -> Session:
        """Close a session: its bindings are gone at once. Closing a closed session returns
        it unchanged. Raises SessionNotFound."""
        ...

    async def lookup(
        self, dialled: str, caller: str, *, now: float | None = None
    ) -> Binding | None:
        """The call-time lookup: `(dialled virtual number, caller's normalised key)` -> the
        binding, or None. One round trip on Redis; renews a sliding expiry; marks the session
        in-progress."""
        ...

    async def record_interaction(self, interaction: Interaction) -> None:
        """Keep a call record with its session. Raises SessionNotFound."""
        ...

    async def record_interactions(self, interactions: Sequence[Interaction]) -> int:
        """Keep several call records at once (one round trip on Redis: the call path writes
        its records in batches). Records of sessions that are gone are skipped; returns how
        many were kept."""
        ...

    async def list_interactions(self, session_id: str) -> list[Interaction]:
        """Return a session's call records, oldest first. Raises SessionNotFound."""
        ...

    async def expire(self, *, now: float | None = None) -> int:
        """Housekeeping, to run every few seconds: close sessions past `expires_at`, drop
        closed ones past their retention, release drained numbers. Returns how many sessions
        it closed."""
        ...

    async def close(self) -> None:
        """Release files and connections."""
        ...


class PreparedParticipant(msgspec.Struct, frozen=True):
    """A validated participant of a session to create (shared by both backends)."""

    identifier: str
    key: str
    pin: str | None
    route: str | None
    geo: tuple[str, str]


def prepare_spec(spec: SessionSpec) -> tuple[PreparedParticipant, PreparedParticipant]:
    """Check a session request and normalise its participants.

    Structs built in Python skip msgspec's decode-time constraints, so the bounds are checked
    here again; the API decodes with them too.

    Raises:
        InvalidSession, InvalidParticipant, UnknownPool (bad pool name).
    """
    try:
        check_pool_name(spec.pool)
    except ValueError as exc:
        raise UnknownPool(str(exc)) from None
    try:
        # Round-trip through msgspec to apply the Meta bounds of SessionSpec.
        msgspec.convert(msgspec.to_builtins(spec), SessionSpec)
    except msgspec.ValidationError as exc:
        raise InvalidSession(str(exc)) from None
    if metadata_size(spec.metadata) > MAX_METADATA_BYTES:
        raise InvalidSession(f"metadata is larger than {MAX_METADATA_BYTES} bytes")
    prepared = []
    for part in spec.participants:
        # Identifiers and routes reach the B leg's Request-URI: plain parts only (issue 13).
        key = check_identifier(part.identifier)
        route = None
        if part.route is not None:
            try:
                route = check_route(part.route)
            except ValueError as exc:
                raise InvalidParticipant(f"route: {exc}") from None
        pin = None
        if part.proxy_identifier is not None:
            try:
                pin = normalise_number(part.proxy_identifier)
            except ValueError:
                raise NumberUnavailable("a pinned number is E.164") from None
        prepared.append(PreparedParticipant(part.identifier, key, pin, route, geo_of(key)))
    first, second = prepared
    if first.key == second.key:
        raise InvalidSession("the two participants are the same party")
    return first, second


async def prepare_pool(
    name: str, numbers: Iterable[str], reserved: Iterable[str]
) -> tuple[list[str], list[str]]:
    """Check and normalise a pool definition, yielding to the loop every `POOL_CHUNK`
    numbers; return sorted (numbers, reserved).

    Raises:
        InvalidPool.
    """
    try:
        check_pool_name(name)
    except ValueError as exc:
        raise InvalidPool(str(exc)) from None
    free_set: set[str] = set()
    kept_set: set[str] = set()
    count = 0
    for given, into in ((numbers, free_set), (reserved, kept_set)):
        for number in given:
            try:
                into.add(normalise_number(number))
            except ValueError:
                raise InvalidPool("a pool's numbers are E.164") from None
            count += 1
            await yield_every(count)
    if free_set & kept_set:
        raise InvalidPool("a number is either assignable or reserved, not both")
    return sorted(free_set), sorted(kept_set)


class PoolDefinition(Protocol):
    """A pool as the config file declares it (`config.PoolConfig`)."""

    @property
    def name(self) -> str: ...

    @property
    def numbers(self) -> Sequence[str]: ...

    @property
    def reserved(self) -> Sequence[str]: ...


async def missing_pools(store: SessionStore, names: Iterable[str]) -> list[str]:
    """Which of the pools named are not in the store. Raises StoreUnavailable."""
    present = set(await store.list_pools())
    return [name for name in names if name not in present]


async def restore_pools(store: SessionStore, pools: Sequence[PoolDefinition]) -> list[str]:
    """Re-apply the config file's pools that the store lost (a Redis restarted without its
    data, or flushed; issue 13): the names re-applied. Pools still there are not touched
    (a reload applies changes to them). Raises StoreError."""
    missing = await missing_pools(store, [pool.name for pool in pools])
    wanted = set(missing)
    for pool in pools:
        if pool.name in wanted:
            await store.set_pool(pool.name, pool.numbers, pool.reserved)
    return missing


def new_session_id(pool: str) -> str:
    """`<pool>.<22 random url-safe characters>`: unguessable, and it names its pool."""
    return f"{pool}.{secrets.token_urlsafe(16)}"


def pool_of_session(session_id: str) -> str:
    """The pool part of a session id. Raises SessionNotFound for a malformed id."""
    pool, dot, token = session_id.partition(".")
    if not dot or not token:
        raise SessionNotFound(session_id)
    try:
        return check_pool_name(pool)
    except ValueError:
        raise SessionNotFound(session_id) from None


def pick_number(
    assignable: Iterable[tuple[int, str]],
    used: set[str],
    geo: dict[str, tuple[str, str]],
    participant_geo: tuple[str, str],
    sticky: str | None,
    sticky_ok: bool,
) -> str | None:
    """The automatic part of the allocation rule (steps 3-4), for the memory backend; the
    Redis backend runs the same steps in Lua.

    Args:
        assignable: `(last assigned ms, number)` of the auto-assignable numbers.
        used: numbers this participant already has in open sessions.
        geo: `(country, area)` of each number.
        participant_geo: `(country, area)` of the participant.
        sticky: the number this pair had last time, or None.
        sticky_ok: whether the sticky number is still assignable.

    Returns:
        The number, or None if none is free.
    """
    if sticky is not None and sticky_ok and sticky not in used:
        return sticky
    best: str | None = None
    best_score = -1
    for _, number in sorted(assignable):
        if number in used:
            continue
        score = geo_score(participant_geo, geo.get(number, ("", "")))
        if score > best_score:
            best, best_score = number, score
            if score == 2:
                break
    return best
