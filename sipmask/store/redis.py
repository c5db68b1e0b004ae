"""The shared session store on Redis (redis-py asyncio, hiredis parser when installed).

Several sipmask workers and nodes share one Redis: a single server, a Redis Cluster, or the
master of a Sentinel service (`RedisTarget`). Keys come from `keys.py` and carry the pool's
name as hash tag, so the Lua scripts of `scripts.py` (allocation, lookup, close, expiry) each
run atomically on one Redis Cluster slot. The call path makes one round trip per new call
(`lookup`), after resolving the dialled number's pool from a local cache.

Outage behaviour (issue 4): short socket timeouts and a single quick retry make every method
fail fast with StoreUnavailable while Redis is down; the connection pool reconnects by itself
on the next call once Redis is back, and scripts are loaded again if Redis lost them. Call
records written meanwhile are spooled (`spool.py`) and replayed, oldest first, once Redis
answers again (issue 13).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal, cast

import msgspec
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import SSLConnection, parse_url
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import ClusterDownError, RedisClusterException, SlotNotCoveredError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..privacy import mask_numbers_in
from . import scripts
from .base import (
    DEFAULT_CLOSED_RETENTION,
    DEFAULT_STICKY_TTL,
    MAX_INTERACTIONS,
    POOL_CHUNK,
    new_session_id,
    pool_of_session,
    prepare_pool,
    prepare_spec,
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
from .keys import Keys
from .model import (
    Binding,
    ExpiryMode,
    Interaction,
    Participant,
    Pool,
    Session,
    SessionSpec,
    SessionStatus,
    ms,
)
from .numbers import check_pool_name, geo_of, participant_key
from .spool import DEFAULT_MEMORY_SPOOL, RecordSpool

log = logging.getLogger("sipmask.store")

_EXPIRE_BATCH = 500
#: Seconds between two attempts to replay spooled call records while Redis is down.
REPLAY_INTERVAL = 1.0
_DIRECTORY_REFRESH = 1.0  # seconds between reloads of the number directory on a miss
_SESSION_FIELDS = (
    "doc", "a_key", "a_num", "b_key", "b_num", "status", "expires_at", "closed_reason",
    "closed_at",
)


class _SessionDoc(msgspec.Struct, array_like=True, frozen=True):
    """The parts of a session that never change, stored as one compact JSON array."""

    a_identifier: str
    a_route: str | None
    b_identifier: str
    b_route: str | None
    created_at: float
    ttl: int
    expiry: ExpiryMode
    call_time_limit: int | None
    ring_timeout: int | None
    metadata: dict[str, Any]
    record: bool = False
    """Last, with a default: documents written before it decode as not recorded."""
    announcement: str | None = None


_doc_decoder = msgspec.json.Decoder(_SessionDoc)
_interaction_decoder = msgspec.json.Decoder(Interaction)
_encode = msgspec.json.encode


RedisMode = Literal["single", "cluster", "sentinel"]
Client = aioredis.Redis | RedisCluster
"""What the store and the event sink talk to; both speak the same commands, scripts and
(single-slot) pipelines."""


@dataclass(frozen=True)
class RedisTarget:
    """Where the Redis of the store is (`[store]` redis_mode, redis_url, sentinels,
    sentinel_service).

    - `single`: `url` is the server.
    - `cluster`: `url` is one seed node of a Redis Cluster; the others are discovered
      (`CLUSTER SLOTS`) and followed through MOVED/ASK. The database must be 0.
    - `sentinel`: the master of `service` is asked from `sentinels` ("host:port") and asked
      again after a failover; `url` supplies only the database, credentials and TLS
      (`rediss://`), its host and port are not used.
    """

    url: str = "redis://127.0.0.1:6379/0"
    mode: RedisMode = "single"
    sentinels: tuple[str, ...] = ()
    service: str = "mymaster"

    def connect(
        self,
        *,
        socket_timeout: float,
        connect_timeout: float,
        retries: int,
        max_connections: int | None = None,
        decode_responses: bool = True,
    ) -> tuple[Client, Callable[[], Awaitable[None]]]:
        """A client with fail-fast timeouts and `retries` quick retries (redis-py's defaults
        retry for seconds, too long for a call waiting on its lookup), and the coroutine
        function that closes it and whatever it opened."""
        # Every client: a connection that breaks is retried `retries` times within ~50 ms.
        retry = Retry(ExponentialBackoff(cap=0.05, base=0.01), retries)
        common: dict[str, Any] = {
            "decode_responses": decode_responses,
            "socket_timeout": socket_timeout,
            "socket_connect_timeout": connect_timeout,
        }
        if self.mode == "cluster":
            # The cluster client counts its retries (each one refreshes the slot map from the
            # nodes it knows) but does not back off between them; connections of its nodes
            # do not retry on their own.
            try:
                cluster = _Cluster.from_url(
                    self.url, retry=retry, max_connections=max_connections or 100, **common
                )
            except RedisClusterException as exc:
                raise ValueError(f"redis cluster: {exc}") from exc
            return cluster, cluster.aclose
        if self.mode == "sentinel":
            if not self.sentinels:
                raise ValueError("redis_mode sentinel needs at least one sentinel")
            options: dict[str, Any] = dict(parse_url(self.url))
            if "path" in options:
                raise ValueError("redis_mode sentinel needs a redis:// or rediss:// URL")
            for name in ("host", "port"):
                options.pop(name, None)
            if options.pop("connection_class", None) is SSLConnection:
                options["ssl"] = True
            sentinel = Sentinel(  # type: ignore[no-untyped-call]
                [_split_hostport(text) for text in self.sentinels],
                # Sentinels are asked once per new connection: same fail-fast rule.
                sentinel_kwargs={
                    "socket_timeout": socket_timeout,
                    "socket_connect_timeout": connect_timeout,
                    "retry": Retry(NoBackoff(), 0),
                },
            )
            # Options written in the URL's query win, as with a URL given to redis-py.
            master = sentinel.master_for(
                self.service,
                **{**common, "retry": retry, "max_connections": max_connections, **options},
            )

            async def close() -> None:
                await master.aclose()
                for node in sentinel.sentinels:
                    await node.aclose()

            return master, close
        single = aioredis.Redis.from_url(
            self.url, retry=retry, max_connections=max_connections, **common
        )
        return single, single.aclose


class _Cluster(RedisCluster):
    """RedisCluster that learns the slot map before a command is sent, not inside its retry
    loop: with redis-py 8.1, commands started together on a client that has not learnt it
    yet (a fresh one, or one that lost a node) can fail with `AttributeError: 'NoneType'
    object has no attribute 'writelines'` (seen with 60 at once on a fresh client)."""

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        if self._initialize:
            await self.initialize()
        return await super().execute_command(*args, **kwargs)


def _split_hostport(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"not host:port: {text!r}")
    return host.removeprefix("[").removesuffix("]"), int(port)


_UNREACHABLE = (
    RedisConnectionError, RedisTimeoutError, OSError, ClusterDownError, SlotNotCoveredError
)


@asynccontextmanager
async def _available() -> AsyncIterator[None]:
    """Turn "Redis cannot be reached" into StoreUnavailable (sentinels without a master
    raise a ConnectionError; a cluster with no node answering, a RedisClusterException caused
    by one)."""
    try:
        yield
    except _UNREACHABLE as exc:
        raise StoreUnavailable(f"redis: {exc}") from exc
    except RedisClusterException as exc:
        if isinstance(exc.__cause__, _UNREACHABLE):
            raise StoreUnavailable(f"redis: {exc}") from exc
        raise


class RedisStore:
    """The Redis SessionStore.

    Args:
        url: `redis://host:port/db` (or `rediss://`, `unix://`) of a single server, or a
            RedisTarget (a Redis Cluster, or a Sentinel service).
        prefix: namespace of the keys.
        clock: epoch seconds, for methods called without `now`.
        closed_retention: seconds a closed session stays readable.
        sticky_ttl: seconds a pair remembers its numbers.
        socket_timeout: seconds to wait for an answer before giving up.
        connect_timeout: seconds to wait for a connection.
        retries: quick retries of a failed command (redis-py's default backs off for seconds,
            too long for a call waiting on its lookup).
        max_connections: size of the connection pool.
        spool_path: where call records wait while Redis is down (fsynced JSON lines); None
            keeps them in memory, at most `max_spooled`.
        max_spooled: bound of the in-memory spool.
    """

    def __init__(
        self,
        url: str | RedisTarget = "redis://localhost:6379/0",
        *,
        prefix: str = "sipmask",
        clock: Callable[[], float] = time.time,
        closed_retention: float = DEFAULT_CLOSED_RETENTION,
        sticky_ttl: float = DEFAULT_STICKY_TTL,
        socket_timeout: float = 0.5,
        connect_timeout: float = 0.5,
        retries: int = 1,
        max_connections: int | None = None,
        spool_path: str | os.PathLike[str] | None = None,
        max_spooled: int = DEFAULT_MEMORY_SPOOL,
    ) -> None:
        self._keys = Keys(prefix)
        self.spool = RecordSpool(spool_path, max_memory=max_spooled)
        self._replayer: asyncio.Task[None] | None = None
        self._clock = clock
        self._retention_ms = ms(closed_retention)
        self._sticky_ms = ms(sticky_ttl)
        target = url if isinstance(url, RedisTarget) else RedisTarget(url)
        self._mode = target.mode
        self._redis: Any
        self._redis, self._aclose = target.connect(
            socket_timeout=socket_timeout,
            connect_timeout=connect_timeout,
            retries=retries,
            max_connections=max_connections,
        )
        register = self._redis.register_script
        self._create = register(scripts.CREATE)
        self._lookup = register(scripts.LOOKUP)
        self._close = register(scripts.CLOSE)
        self._expire = register(scripts.EXPIRE)
        self._set_numbers = register(scripts.SET_NUMBERS)
        self._drop_numbers = register(scripts.DROP_NUMBERS)
        self._set_meta = register(scripts.SET_META)
        self._delete_pool = register(scripts.DELETE_POOL)
        self._record = register(scripts.RECORD)
        self._claim = register(scripts.CLAIM)
        self._release = register(scripts.RELEASE)
        self._pool_state = register(scripts.POOL_STATE)
        self._interactions_of = register(scripts.INTERACTIONS_OF)
        self._pool_of: dict[str, str] = {}  # virtual number -> pool, for lookups
        self._directory_loaded = -_DIRECTORY_REFRESH

    def _now_ms(self, now: float | None) -> int:
        return ms(self._clock() if now is None else now)

    async def ping(self) -> bool:
        """Whether Redis answers (for health checks). Raises StoreUnavailable."""
        self._replay_later()  # a spool left by an earlier run
        async with _available():
            return bool(await self._redis.ping())

    # -- pools -------------------------------------------------------------------------------

    async def ensure_pool(self, name: str) -> Pool:
        """See SessionStore.ensure_pool."""
        await prepare_pool(name, (), ())
        async with _available():
            exists = await self._redis.exists(self._keys.meta(name))
        if exists:
            return await self.get_pool(name)
        return await self.set_pool(name, ())

    async def set_pool(
        self, name: str, numbers: Iterable[str], reserved: Iterable[str] = ()
    ) -> Pool:
        """See SessionStore.set_pool. In chunks of `POOL_CHUNK` numbers, each a script of its
        own (issue 13): the numbers wanted first, then those dropped (drained if in use), then
        the pool's meta, which makes a new pool exist. Each number is in the pool or not at
        every moment; the pool as a whole changes over the steps, not at once."""
        free, kept = await prepare_pool(name, numbers, reserved)
        k = self._keys
        meta, prefix = k.meta(name), k.pool(name)
        async with _available():
            await self._claim_numbers(name, [*free, *kept])
            # Its own step: the directory and the pool names are two slots in a cluster.
            await self._redis.sadd(k.pools, name)
            for kind, given in (("free", free), ("reserved", kept)):
                for start in range(0, len(given), POOL_CHUNK):
                    args = [prefix, kind]
                    for n in given[start : start + POOL_CHUNK]:
                        args += (n, "|".join(geo_of(n)))
                    await self._set_numbers(keys=[meta], args=args)
            _, old_free, old_kept, _ = await self._pool_state(keys=[meta], args=[prefix])
            wanted = set(free) | set(kept)
            dropped = [n for n in (*old_free, *old_kept) if n not in wanted]
            released: list[str] = []
            for start in range(0, len(dropped), POOL_CHUNK):
                released += await self._drop_numbers(
                    keys=[meta], args=[prefix, *dropped[start : start + POOL_CHUNK]]
                )
            await self._set_meta(keys=[meta], args=[prefix, self._now_ms(None), name])
            for start in range(0, len(released), POOL_CHUNK):
                await self._release(
                    keys=[k.directory], args=[name, *released[start : start + POOL_CHUNK]]
                )
            for number in released:
                self._pool_of.pop(number, None)
            for number in (*free, *kept):
                self._pool_of[number] = name
        return await self.get_pool(name)

    async def _claim_numbers(self, name: str, numbers: list[str]) -> None:
        """Make the directory name `name` the owner of `numbers`, in chunks of `POOL_CHUNK`
        (a script over 55,000 numbers holds Redis, and the loop, too long); first refuse a
        number another pool owns or that is a participant of an open session (issue 13:
        exclusive both ways). A claim that fails half-way gives back what it took.

        Raises:
            NumberUnavailable.
        """
        k = self._keys
        new: list[str] = []
        for start in range(0, len(numbers), POOL_CHUNK):
            chunk = numbers[start : start + POOL_CHUNK]
            owners = await self._redis.hmget(k.directory, chunk)
            for number, owner in zip(chunk, owners):
                if owner is None:
                    new.append(number)
                elif owner != name:
                    raise NumberUnavailable(
                        f"{mask_numbers_in(number)} belongs to pool {owner!r}"
                    )
        pools = sorted(cast(set[str], await self._redis.smembers(k.pools)))
        for start in range(0, len(new) * len(pools), POOL_CHUNK):
            async with self._redis.pipeline(transaction=False) as pipe:
                pairs = [
                    (new[i // len(pools)], pools[i % len(pools)])
                    for i in range(start, min(start + POOL_CHUNK, len(new) * len(pools)))
                ]
                for number, pool in pairs:
                    pipe.exists(k.participant(pool, number))
                found = await pipe.execute()
            if any(found):
                raise NumberUnavailable("a number is a participant of an open session")
        taken: list[str] = []
        try:
            for start in range(0, len(numbers), POOL_CHUNK):
                chunk = numbers[start : start + POOL_CHUNK]
                claimed = await self._claim(keys=[k.directory], args=[name, *chunk])
                if claimed[0] == "taken":
                    raise NumberUnavailable(
                        f"{mask_numbers_in(claimed[1])} belongs to pool {claimed[2]!r}"
                    )
                taken += chunk
        except BaseException:
            fresh = set(new)
            given_back = [n for n in taken if n in fresh]
            for start in range(0, len(given_back), POOL_CHUNK):
                with contextlib.suppress(Exception):
                    await self._release(
                        keys=[k.directory], args=[name, *given_back[start : start + POOL_CHUNK]]
                    )
            raise

    async def pool_usage(self, name: str) -> int:
        """See SessionStore.pool_usage: the size of the pool's `use` hash (one slot)."""
        await self.get_pool(name)  # UnknownPool
        async with _available():
            return int(await self._redis.hlen(self._keys.use(name)))

    async def get_pool(self, name: str) -> Pool:
        """See SessionStore.get_pool."""
        try:
            check_pool_name(name)
        except ValueError:
            raise UnknownPool(name) from None
        k = self._keys
        async with _available():
            exists, free, kept, draining = await self._pool_state(
                keys=[k.meta(name)], args=[k.pool(name)]
            )
        if not exists:
            raise UnknownPool(name)
        return Pool(name, tuple(sorted(free)), tuple(sorted(kept)), tuple(sorted(draining)))

    async def list_pools(self) -> list[str]:
        """See SessionStore.list_pools."""
        async with _available():
            return sorted(cast(set[str], await self._redis.smembers(self._keys.pools)))

    async def delete_pool(self, name: str) -> None:
        """See SessionStore.delete_pool."""
        try:
            check_pool_name(name)
        except ValueError:
            raise UnknownPool(name) from None
        k = self._keys
        async with _available():
            result = await self._delete_pool(keys=[k.meta(name)], args=[k.pool(name)])
            if result[0] == "unknown-pool":
                raise UnknownPool(name)
            if result[0] == "in-use":
                raise PoolInUse(f"pool {name!r} has open sessions")
            await self._release(keys=[k.directory], args=[name, *result[1:]])
            await self._redis.srem(k.pools, name)
        for number in result[1:]:
            self._pool_of.pop(number, None)

    # -- sessions ----------------------------------------------------------------------------

    async def create_session(self, spec: SessionSpec, *, now: float | None = None) -> Session:
        """See SessionStore.create_session."""
        first, second = prepare_spec(spec)
        now_ms = self._now_ms(now)
        pool, k = spec.pool, self._keys
        sid = new_session_id(pool)
        a_first = first.key <= second.key
        low, high = (first.key, second.key) if a_first else (second.key, first.key)
        doc = _SessionDoc(
            first.identifier, first.route, second.identifier, second.route, now_ms / 1000,
            spec.ttl, spec.expiry, spec.call_time_limit, spec.ring_timeout, spec.metadata,
            spec.record, spec.announcement,
        )
        async with _available():
            # A participant that is a number of any pool would call into sipmask (issue 4);
            # the script checks its own pool again atomically.
            owners = await self._redis.hmget(self._keys.directory, [first.key, second.key])
            for key, owner in zip((first.key, second.key), owners):
                if owner is not None:
                    raise InvalidParticipant(
                        f"{mask_numbers_in(key)} is a virtual number of pool {owner!r}"
                    )
            result = await self._create(
                keys=[
                    k.meta(pool),
                    k.participant(pool, first.key),
                    k.participant(pool, second.key),
                    k.pair(pool, low, high),
                    k.session(pool, sid),
                ],
                args=[
                    k.pool(pool), sid, now_ms, self._retention_ms, self._sticky_ms,
                    spec.ttl * 1000, spec.expiry.value, _encode(doc),
                    first.key, first.pin or "", *geo_of(first.key),
                    second.key, second.pin or "", *geo_of(second.key),
                    "1" if a_first else "0",
                ],
            )
        code = result[0]
        if code == "unknown-pool":
            raise UnknownPool(pool)
        if code == "pool-number":
            raise InvalidParticipant(f"{result[1]} is a virtual number of pool {pool!r}")
        if code == "exhausted":
            raise PoolExhausted(pool, result[1])
        if code == "not-in-pool":
            raise NumberUnavailable(f"{result[2]} is not a number of pool {pool!r}")
        if code == "pin-in-use":
            raise NumberUnavailable(f"{result[1]} already has {result[2]} in an open session")
        number_a, number_b = result[1], result[2]
        return _session(
            pool, sid, doc, first.key, number_a, second.key, number_b,
            SessionStatus.OPEN, now_ms + spec.ttl * 1000, None, None,
        )

    async def get_session(self, session_id: str) -> Session:
        """See SessionStore.get_session."""
        pool = pool_of_session(session_id)
        async with _available():
            fields = await self._redis.hmget(
                self._keys.session(pool, session_id), _SESSION_FIELDS
            )
        if fields[0] is None:
            raise SessionNotFound(session_id)
        return _from_fields(pool, session_id, cast(list[str | None], fields))

    async def _get_many(self, pool: str, ids: Iterable[str]) -> list[Session]:
        async with self._redis.pipeline(transaction=False) as pipe:
            wanted = list(ids)
            for sid in wanted:
                pipe.hmget(self._keys.session(pool, sid), _SESSION_FIELDS)
            rows = await pipe.execute()
        return [_from_fields(pool, sid, row) for sid, row in zip(wanted, rows) if row[0]]

    async def list_sessions(
        self, *, participant: str | None = None, pool: str | None = None
    ) -> list[Session]:
        """See SessionStore.list_sessions."""
        k = self._keys
        key = participant_key(participant) if participant is not None else None
        async with _available():
            if pool is not None:
                try:
                    check_pool_name(pool)
                except ValueError:
                    raise UnknownPool(pool) from None
                if not await self._redis.exists(k.meta(pool)):
                    raise UnknownPool(pool)
                pools = [pool]
            else:
                pools = sorted(cast(set[str], await self._redis.smembers(k.pools)))
            found: list[Session] = []
            for name in pools:
                ids: Iterable[str]
                if key is not None:
                    by_number = await self._redis.hgetall(k.participant(name, key))
                    ids = cast(dict[str, str], by_number).values()
                else:
                    ids = cast(list[str], await self._redis.zrange(k.sessions(name), 0, -1))
                found += await self._get_many(name, ids)
        found = [s for s in found if s.status is not SessionStatus.CLOSED]
        return sorted(found, key=lambda s: (s.created_at, s.id))

    async def close_session(
        self, session_id: str, *, reason: str = "closed", now: float | None = None
    ) -> Session:
        """See SessionStore.close_session."""
        pool = pool_of_session(session_id)
        k = self._keys
        async with _available():
            done = await self._close(
                keys=[k.session(pool, session_id)],
                args=[k.pool(pool), session_id, reason, self._now_ms(now), self._retention_ms],
            )
        if not done:
            raise SessionNotFound(session_id)
        return await self.get_session(session_id)

    async def _resolve(self, number: str) -> str | None:
        """The pool of a virtual number, from the local copy of the directory. A number not
        in it reloads the copy, at most once a second (numbers that are no pool's, dialled
        in a loop, cost no more than that)."""
        pool = self._pool_of.get(number)
        if pool is None and time.monotonic() - self._directory_loaded >= _DIRECTORY_REFRESH:
            await self._load_directory()
            pool = self._pool_of.get(number)
        return pool

    async def _load_directory(self) -> None:
        self._pool_of = cast(dict[str, str], await self._redis.hgetall(self._keys.directory))
        self._directory_loaded = time.monotonic()

    async def lookup(
        self, dialled: str, caller: str, *, now: float | None = None
    ) -> Binding | None:
        """See SessionStore.lookup."""
        k = self._keys
        async with _available():
            pool = await self._resolve(dialled)
            if pool is None:
                return None
            found = await self._lookup(
                keys=[k.participant(pool, caller)],
                args=[k.pool(pool), dialled, self._now_ms(now), self._retention_ms],
            )
        if not found:
            return None
        sid, raw, a_key, a_num, b_key, b_num, _status, expires = found
        doc = _doc_decoder.decode(raw)
        first = Participant(doc.a_identifier, a_key, a_num, doc.a_route)
        second = Participant(doc.b_identifier, b_key, b_num, doc.b_route)
        me, other = (first, second) if a_key == caller else (second, first)
        return Binding(
            session_id=sid,
            caller=me,
            callee=other,
            call_time_limit=doc.call_time_limit,
            ring_timeout=doc.ring_timeout,
            expires_at=int(expires) / 1000,
            record=doc.record,
            announcement=doc.announcement,
        )

    async def record_interaction(self, interaction: Interaction) -> None:
        """See SessionStore.record_interaction."""
        sid = interaction.session_id
        pool = pool_of_session(sid)
        k = self._keys
        async with _available():
            kept = await self._record(
                keys=[k.session(pool, sid), k.interactions(pool, sid)],
                args=[k.pool(pool), _encode(interaction), MAX_INTERACTIONS],
            )
        if not kept:
            raise SessionNotFound(sid)

    async def record_interactions(self, interactions: Sequence[Interaction]) -> int:
        """See SessionStore.record_interactions: one pipeline of the record script, not a
        transaction (each record touches its own session's slot).

        While Redis is down the records are spooled and count as kept; they are written,
        after the ones spooled before them, once Redis answers (issue 13). Raises
        StoreUnavailable only when the spool cannot keep them either."""
        if not interactions:
            return 0
        if self.spool.pending and not await self.replay_spool():
            return self._spool(interactions)
        try:
            return await self._write_records(interactions)
        except StoreUnavailable:
            return self._spool(interactions)

    def _spool(self, interactions: Sequence[Interaction]) -> int:
        try:
            self.spool.add(interactions)
        except OSError as exc:
            raise StoreUnavailable(f"redis down and record spool failed: {exc}") from exc
        self._replay_later()
        return len(interactions)

    async def replay_spool(self) -> bool:
        """Write the spooled call records, oldest first; True once none is left. Records of
        sessions gone meanwhile are skipped."""
        while self.spool.pending:
            batch = self.spool.peek()
            if not batch:
                return not self.spool.pending
            try:
                kept = await self._write_records(batch)
            except StoreUnavailable:
                return False
            self.spool.done(len(batch))
            if kept < len(batch):
                log.info("%d spooled call record(s) of sessions already gone", len(batch) - kept)
        log.info("call record spool replayed: %d record(s) in all", self.spool.replayed)
        return True

    def _replay_later(self) -> None:
        """Keep trying the replay every REPLAY_INTERVAL seconds until the spool is empty,
        also when no call ends meanwhile."""
        if self._replayer is not None or not self.spool.pending:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._replayer = loop.create_task(self._replay_loop(), name="sipmask-record-spool")

    async def _replay_loop(self) -> None:
        try:
            while self.spool.pending:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    # redis-py can swallow a cancellation mid-command: close() waits on us.
                    raise asyncio.CancelledError
                await asyncio.sleep(REPLAY_INTERVAL)
                try:
                    await self.replay_spool()
                except Exception:
                    log.exception("call record replay failed")
        finally:
            self._replayer = None

    async def _write_records(self, interactions: Sequence[Interaction]) -> int:
        k = self._keys
        async with _available():
            if self._mode == "cluster":  # a cluster pipeline of scripts: one call per record
                results = await asyncio.gather(*(
                    self._record(
                        keys=[k.session(pool_of_session(i.session_id), i.session_id),
                              k.interactions(pool_of_session(i.session_id), i.session_id)],
                        args=[k.pool(pool_of_session(i.session_id)), _encode(i),
                              MAX_INTERACTIONS],
                    )
                    for i in interactions
                ))
            else:
                # `async with`: a pipeline that failed is reset, its connection given back.
                async with self._redis.pipeline(transaction=False) as pipe:
                    for i in interactions:
                        pool = pool_of_session(i.session_id)
                        await self._record(
                            keys=[k.session(pool, i.session_id),
                                  k.interactions(pool, i.session_id)],
                            args=[k.pool(pool), _encode(i), MAX_INTERACTIONS],
                            client=pipe,
                        )
                    results = await pipe.execute()
        return sum(1 for kept in results if kept)

    async def list_interactions(self, session_id: str) -> list[Interaction]:
        """See SessionStore.list_interactions."""
        pool = pool_of_session(session_id)
        k = self._keys
        async with _available():
            exists, rows = await self._interactions_of(
                keys=[k.session(pool, session_id), k.interactions(pool, session_id)]
            )
        if not exists:
            raise SessionNotFound(session_id)
        # A replayed spool may repeat a record (at least once): the first copy stands.
        records: dict[str, Interaction] = {}
        for row in rows:
            record = _interaction_decoder.decode(row)
            records.setdefault(record.id, record)
        return list(records.values())

    async def expire(self, *, now: float | None = None) -> int:
        """See SessionStore.expire. Also refreshes the cache of the number directory."""
        now_ms = self._now_ms(now)
        k = self._keys
        total = 0
        async with _available():
            for name in cast(set[str], await self._redis.smembers(k.pools)):
                while True:
                    closed, seen, released = await self._expire(
                        keys=[k.sessions(name)],
                        args=[k.pool(name), now_ms, self._retention_ms, _EXPIRE_BATCH],
                    )
                    total += closed
                    if released:
                        await self._release(keys=[k.directory], args=[name, *released])
                    if seen < _EXPIRE_BATCH:
                        break
            await self._load_directory()
        return total

    async def close(self) -> None:
        """See SessionStore.close. A file spool stays for the next start; records spooled in
        memory are lost (logged)."""
        if self._replayer is not None:
            self._replayer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._replayer
        if self.spool.path is None and self.spool.held_in_memory:
            log.error("%d spooled call record(s) lost at close (no spool file)",
                      self.spool.held_in_memory)
        await self._aclose()


def _session(
    pool: str,
    sid: str,
    doc: _SessionDoc,
    a_key: str,
    a_num: str,
    b_key: str,
    b_num: str,
    status: SessionStatus,
    expires_ms: int,
    closed_reason: str | None,
    closed_ms: int | None,
) -> Session:
    return Session(
        id=sid,
        pool=pool,
        participants=(
            Participant(doc.a_identifier, a_key, a_num, doc.a_route),
            Participant(doc.b_identifier, b_key, b_num, doc.b_route),
        ),
        created_at=doc.created_at,
        expires_at=expires_ms / 1000,
        ttl=doc.ttl,
        expiry=doc.expiry,
        status=status,
        call_time_limit=doc.call_time_limit,
        ring_timeout=doc.ring_timeout,
        closed_reason=closed_reason,
        closed_at=closed_ms / 1000 if closed_ms is not None else None,
        metadata=doc.metadata,
        record=doc.record,
        announcement=doc.announcement,
    )


def _from_fields(pool: str, sid: str, fields: list[str | None]) -> Session:
    raw, a_key, a_num, b_key, b_num, status, expires, reason, closed = fields
    assert raw is not None and a_key and a_num and b_key and b_num and status and expires
    return _session(
        pool, sid, _doc_decoder.decode(raw), a_key, a_num, b_key, b_num,
        SessionStatus(status), int(expires), reason, int(closed) if closed else None,
    )
