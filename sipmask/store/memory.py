"""The embedded session store: one process, state in dicts, an append-only journal on disk.

This is the default backend (`[store] backend = "memory"`): no dependency, one worker only
(with several workers the store must be Redis). Every method runs without awaiting, so each
is atomic on the event loop. With a data directory every change is journaled and replayed on
start, so a restart keeps open sessions (issue 4).
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence

from msgspec.structs import replace

from ..privacy import mask_numbers_in
from .base import (
    DEFAULT_CLOSED_RETENTION,
    DEFAULT_STICKY_TTL,
    MAX_INTERACTIONS,
    PreparedParticipant,
    new_session_id,
    pick_number,
    pool_of_session,
    prepare_pool,
    prepare_spec,
    yield_every,
)
from .errors import (
    InvalidParticipant,
    NumberUnavailable,
    PoolExhausted,
    PoolInUse,
    SessionNotFound,
    StoreUnavailable,
    UnknownPool,
)
from .journal import (
    Event,
    InteractionSaved,
    Journal,
    PoolDeleted,
    PoolSaved,
    PoolUsage,
    SessionSaved,
)
from .model import (
    Binding,
    ExpiryMode,
    Interaction,
    Participant,
    Pool,
    Session,
    SessionSpec,
    SessionStatus,
    binding_for,
    ms,
)
from .numbers import geo_of, participant_key

MAX_INTERACTIONS_KEPT = 20_000
"""Call records the memory store keeps over all sessions together (about 500 octets each,
so about 10 MB), besides `MAX_INTERACTIONS` per session; the oldest go first. The event
stream keeps every record."""


class _PoolState:
    """A pool plus its allocation memory."""

    __slots__ = ("pool", "free", "last_used", "sticky", "geo")

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.free = frozenset(pool.numbers)
        self.last_used: dict[str, int] = {}
        self.sticky: dict[str, tuple[str, str, int]] = {}
        # (country, area) of each assignable number, filled by set_pool (in chunks) or on
        # first use: phonenumbers costs ~16 us a number, too much per session created.
        self.geo: dict[str, tuple[str, str]] = {}


def _pair(a: str, b: str) -> tuple[str, bool]:
    """Canonical name of a pair of keys, and whether `a` comes first in it."""
    return (f"{a}\n{b}", True) if a <= b else (f"{b}\n{a}", False)


class MemoryStore:
    """The embedded SessionStore.

    Args:
        data_dir: directory of the journal; None keeps everything in memory only (tests).
        clock: epoch seconds, for methods called without `now`.
        closed_retention: seconds a closed session stays readable.
        sticky_ttl: seconds a pair remembers its numbers.
        fsync: fsync each journal append.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        *,
        clock: Callable[[], float] = time.time,
        closed_retention: float = DEFAULT_CLOSED_RETENTION,
        sticky_ttl: float = DEFAULT_STICKY_TTL,
        fsync: bool = False,
    ) -> None:
        self._clock = clock
        self._retention_ms = ms(closed_retention)
        self._sticky_ms = ms(sticky_ttl)
        self._pools: dict[str, _PoolState] = {}
        self._owner: dict[str, str] = {}  # number -> pool (assignable, reserved, draining)
        self._sessions: dict[str, Session] = {}
        self._open: dict[str, dict[str, str]] = {}  # participant key -> {number: session id}
        self._interactions: dict[str, list[Interaction]] = {}
        # Every kept record's session, oldest first: the bound over all sessions together.
        self._record_order: deque[str] = deque()
        self._journal = Journal(data_dir, fsync=fsync) if data_dir is not None else None
        if self._journal is not None:
            for event in self._journal.replay():
                self._apply(event)
            now_ms = ms(clock())
            self._drop_closed(now_ms)
            self._journal.rewrite(self._snapshot(now_ms))

    # -- state changes: every change is an event, applied live and on replay --------------

    def _commit(self, event: Event) -> None:
        # Write ahead: a change the journal could not keep is not made.
        if self._journal is not None:
            try:
                self._journal.append(event)
            except OSError as exc:
                raise StoreUnavailable(f"journal {self._journal.path}: {exc}") from exc
        self._apply(event)

    def _apply(self, event: Event) -> None:
        if isinstance(event, SessionSaved):
            self._apply_session(event.session)
        elif isinstance(event, InteractionSaved):
            records = self._interactions.setdefault(event.interaction.session_id, [])
            records.append(event.interaction)
            self._record_order.append(event.interaction.session_id)
            del records[:-MAX_INTERACTIONS]
            self._forget_oldest_records()
        elif isinstance(event, PoolSaved):
            state = self._pools.get(event.pool.name)
            if state is None:
                state = self._pools[event.pool.name] = _PoolState(event.pool)
            for number in self._numbers_of(state.pool):
                if self._owner.get(number) == state.pool.name:
                    del self._owner[number]
            state.pool = event.pool
            state.free = frozenset(event.pool.numbers)
            # Only auto-assignable numbers have an LRU position (as in Redis's `lru` zset).
            state.last_used = {n: t for n, t in state.last_used.items() if n in state.free}
            state.geo = {n: g for n, g in state.geo.items() if n in state.free}
            for number in self._numbers_of(event.pool):
                self._owner[number] = event.pool.name
        elif isinstance(event, PoolDeleted):
            state = self._pools.pop(event.name)
            for number in self._numbers_of(state.pool):
                self._owner.pop(number, None)
        else:  # PoolUsage
            state = self._pools[event.name]
            state.last_used = dict(event.last_used)
            state.sticky = dict(event.sticky)

    def _apply_session(self, session: Session) -> None:
        old = self._sessions.get(session.id)
        self._sessions[session.id] = session
        closed = session.status is SessionStatus.CLOSED
        if old is None and not closed:
            first, second = session.participants
            for part in session.participants:
                self._open.setdefault(part.key, {})[part.proxy_identifier] = session.id
            state = self._pools.get(session.pool)
            if state is not None:
                at = ms(session.created_at)
                for part in session.participants:
                    number = part.proxy_identifier
                    if number in state.free:
                        state.last_used[number] = max(state.last_used.get(number, 0), at)
                name, a_first = _pair(first.key, second.key)
                a, b = first.proxy_identifier, second.proxy_identifier
                state.sticky[name] = (a, b, at) if a_first else (b, a, at)
        elif closed and old is not None and old.status is not SessionStatus.CLOSED:
            for part in session.participants:
                numbers = self._open.get(part.key)
                if numbers and numbers.get(part.proxy_identifier) == session.id:
                    del numbers[part.proxy_identifier]
                    if not numbers:
                        del self._open[part.key]

    @staticmethod
    def _numbers_of(pool: Pool) -> Iterator[str]:
        yield from pool.numbers
        yield from pool.reserved
        yield from pool.draining

    def _snapshot(self, now_ms: int) -> Iterator[Event]:
        """Events that rebuild the live state (compaction)."""
        for state in self._pools.values():
            yield PoolSaved(state.pool)
        for session in self._sessions.values():
            yield SessionSaved(session)
            for record in self._interactions.get(session.id, ()):
                yield InteractionSaved(record)
        for name, state in self._pools.items():
            sticky = {k: v for k, v in state.sticky.items() if v[2] + self._sticky_ms > now_ms}
            yield PoolUsage(name, state.last_used, sticky)

    def _forget_oldest_records(self) -> None:
        """Keep at most MAX_INTERACTIONS_KEPT records over all sessions (about 500 octets
        each): the oldest go first. Without this bound memory grew with every call, since
        the per-session bound alone multiplies by the number of sessions. An entry whose
        record went already (per-session bound, session dropped) just leaves the queue."""
        order = self._record_order
        while len(order) > MAX_INTERACTIONS_KEPT:
            records = self._interactions.get(order.popleft())
            if records:
                del records[0]

    def _drop_closed(self, now_ms: int) -> None:
        """Forget closed sessions past their retention."""
        for session in list(self._sessions.values()):
            closed_at = session.closed_at
            if closed_at is not None and ms(closed_at) + self._retention_ms <= now_ms:
                del self._sessions[session.id]
                self._interactions.pop(session.id, None)

    def _now(self, now: float | None) -> float:
        return ms(self._clock() if now is None else now) / 1000

    # -- pools -------------------------------------------------------------------------------

    def _state(self, name: str) -> _PoolState:
        state = self._pools.get(name)
        if state is None:
            raise UnknownPool(name)
        return state

    async def ensure_pool(self, name: str) -> Pool:
        """See SessionStore.ensure_pool."""
        if name not in self._pools:
            await prepare_pool(name, (), ())
            self._commit(PoolSaved(Pool(name)))
        return self._pools[name].pool

    async def set_pool(
        self, name: str, numbers: Iterable[str], reserved: Iterable[str] = ()
    ) -> Pool:
        """See SessionStore.set_pool."""
        free, kept = await prepare_pool(name, numbers, reserved)
        for number in (*free, *kept):
            owner = self._owner.get(number)
            if owner is not None and owner != name:
                raise NumberUnavailable(f"{mask_numbers_in(number)} belongs to pool {owner!r}")
            # Exclusive both ways (issue 13): a party of an open session is no pool number.
            if number in self._open and owner is None:
                raise NumberUnavailable(
                    f"{mask_numbers_in(number)} is a participant of an open session"
                )
        old = self._pools[name].pool if name in self._pools else Pool(name)
        in_use = self._in_use(name)
        wanted = set(free) | set(kept)
        draining = sorted(n for n in self._numbers_of(old) if n not in wanted and n in in_use)
        pool = Pool(name, tuple(free), tuple(kept), tuple(draining))
        geo = {}
        for count, number in enumerate(free, 1):
            geo[number] = geo_of(number)
            await yield_every(count)
        self._commit(PoolSaved(pool))
        self._pools[name].geo = geo
        return pool

    async def get_pool(self, name: str) -> Pool:
        """See SessionStore.get_pool."""
        return self._state(name).pool

    async def pool_usage(self, name: str) -> int:
        """See SessionStore.pool_usage (a scan of the open sessions: metrics only)."""
        self._state(name)
        return len(self._in_use(name))

    async def list_pools(self) -> list[str]:
        """See SessionStore.list_pools."""
        return sorted(self._pools)

    async def delete_pool(self, name: str) -> None:
        """See SessionStore.delete_pool."""
        self._state(name)
        if any(
            s.pool == name and s.status is not SessionStatus.CLOSED
            for s in self._sessions.values()
        ):
            raise PoolInUse(f"pool {name!r} has open sessions")
        self._commit(PoolDeleted(name))

    def _in_use(self, pool: str) -> set[str]:
        return {
            part.proxy_identifier
            for s in self._sessions.values()
            if s.pool == pool and s.status is not SessionStatus.CLOSED
            for part in s.participants
        }

    # -- sessions ----------------------------------------------------------------------------

    def _used_by(self, key: str, now: float) -> set[str]:
        """Numbers a participant holds in open sessions, closing the expired ones first (the
        same pruning the Redis scripts do)."""
        for sid in list(self._open.get(key, {}).values()):
            session = self._sessions[sid]
            if session.expires_at <= now:
                self._close(session, "expired", now)
        return set(self._open.get(key, {}))

    def _allocate(
        self,
        state: _PoolState,
        part: PreparedParticipant,
        used: set[str],
        sticky: str | None,
        touched: dict[str, int],
    ) -> str:
        pool = state.pool
        if part.pin is not None:
            if part.pin not in state.free and part.pin not in pool.reserved:
                raise NumberUnavailable(f"{part.pin} is not a number of pool {pool.name!r}")
            if part.pin in used:
                raise NumberUnavailable(
                    f"{mask_numbers_in(part.key)} already has {part.pin} in an open session"
                )
            return part.pin
        if len(state.geo) != len(pool.numbers):  # replayed from the journal
            state.geo = {n: geo_of(n) for n in pool.numbers}
        number = pick_number(
            ((touched.get(n) or state.last_used.get(n, 0), n) for n in pool.numbers),
            used,
            state.geo,
            part.geo,
            sticky,
            sticky in state.free if sticky is not None else False,
        )
        if number is None:
            raise PoolExhausted(pool.name, part.key)
        return number

    async def create_session(self, spec: SessionSpec, *, now: float | None = None) -> Session:
        """See SessionStore.create_session."""
        first, second = prepare_spec(spec)
        t = self._now(now)
        state = self._state(spec.pool)
        for part in (first, second):
            # A participant that is a pool number would call into sipmask itself (issue 4).
            if part.key in self._owner:
                raise InvalidParticipant(
                    f"{mask_numbers_in(part.key)} is a virtual number of a pool"
                )
        name, a_first = _pair(first.key, second.key)
        remembered = state.sticky.get(name)
        if remembered is not None and ms(t) - remembered[2] >= self._sticky_ms:
            remembered = None
        sticky_a = sticky_b = None
        if remembered is not None:
            sticky_a, sticky_b = remembered[:2] if a_first else remembered[1::-1]
        number_a = self._allocate(state, first, self._used_by(first.key, t), sticky_a, {})
        # The first number is now the most recently used one when the second is picked.
        number_b = self._allocate(
            state, second, self._used_by(second.key, t), sticky_b, {number_a: ms(t)}
        )
        session = Session(
            id=new_session_id(spec.pool),
            pool=spec.pool,
            participants=(
                Participant(first.identifier, first.key, number_a, first.route),
                Participant(second.identifier, second.key, number_b, second.route),
            ),
            created_at=t,
            expires_at=t + spec.ttl,
            ttl=spec.ttl,
            expiry=spec.expiry,
            call_time_limit=spec.call_time_limit,
            ring_timeout=spec.ring_timeout,
            metadata=spec.metadata,
            record=spec.record,
            announcement=spec.announcement,
        )
        self._commit(SessionSaved(session))
        return session

    def _session(self, session_id: str) -> Session:
        pool_of_session(session_id)
        session = self._sessions.get(session_id)
        if session is None:
            raise SessionNotFound(session_id)
        return session

    async def get_session(self, session_id: str) -> Session:
        """See SessionStore.get_session."""
        return self._session(session_id)

    async def list_sessions(
        self, *, participant: str | None = None, pool: str | None = None
    ) -> list[Session]:
        """See SessionStore.list_sessions."""
        if pool is not None:
            self._state(pool)
        if participant is not None:
            ids = self._open.get(participant_key(participant), {}).values()
            found = [self._sessions[sid] for sid in ids]
        else:
            found = [s for s in self._sessions.values() if s.status is not SessionStatus.CLOSED]
        if pool is not None:
            found = [s for s in found if s.pool == pool]
        return sorted(found, key=lambda s: (s.created_at, s.id))

    def _close(self, session: Session, reason: str, now: float) -> Session:
        closed = replace(session, status=SessionStatus.CLOSED, closed_reason=reason, closed_at=now)
        self._commit(SessionSaved(closed))
        return closed

    async def close_session(
        self, session_id: str, *, reason: str = "closed", now: float | None = None
    ) -> Session:
        """See SessionStore.close_session."""
        session = self._session(session_id)
        if session.status is SessionStatus.CLOSED:
            return session
        return self._close(session, reason, self._now(now))

    async def lookup(
        self, dialled: str, caller: str, *, now: float | None = None
    ) -> Binding | None:
        """See SessionStore.lookup."""
        sid = self._open.get(caller, {}).get(dialled)
        if sid is None:
            return None
        session = self._sessions[sid]
        t = self._now(now)
        if session.expires_at <= t:
            self._close(session, "expired", t)
            return None
        changes: dict[str, object] = {}
        if session.expiry is ExpiryMode.SLIDING:
            changes["expires_at"] = t + session.ttl
        if session.status is SessionStatus.OPEN:
            changes["status"] = SessionStatus.IN_PROGRESS
        if changes:
            session = replace(session, **changes)
            self._commit(SessionSaved(session))
        return binding_for(session, dialled, caller)

    async def record_interaction(self, interaction: Interaction) -> None:
        """See SessionStore.record_interaction."""
        self._session(interaction.session_id)
        self._commit(InteractionSaved(interaction))

    async def record_interactions(self, interactions: Sequence[Interaction]) -> int:
        """See SessionStore.record_interactions."""
        kept = 0
        for interaction in interactions:
            try:
                await self.record_interaction(interaction)
            except SessionNotFound:
                continue
            kept += 1
        return kept

    async def list_interactions(self, session_id: str) -> list[Interaction]:
        """See SessionStore.list_interactions."""
        self._session(session_id)
        return list(self._interactions.get(session_id, ()))

    async def expire(self, *, now: float | None = None) -> int:
        """See SessionStore.expire."""
        t = self._now(now)
        self._drop_closed(ms(t))
        count = 0
        for session in list(self._sessions.values()):
            if session.status is not SessionStatus.CLOSED and session.expires_at <= t:
                self._close(session, "expired", t)
                count += 1
        for name, state in self._pools.items():
            if state.pool.draining:
                in_use = self._in_use(name)
                keep = tuple(n for n in state.pool.draining if n in in_use)
                if keep != state.pool.draining:
                    self._commit(PoolSaved(replace(state.pool, draining=keep)))
        return count

    async def close(self) -> None:
        """See SessionStore.close."""
        if self._journal is not None:
            self._journal.close()

