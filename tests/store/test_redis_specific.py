"""What only the Redis backend has: the key layout for Redis Cluster, the one-round-trip
lookup, key TTLs, lost scripts, and outages (a dead Redis fails fast, and the same store
works again once Redis is back)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest
import redis.asyncio as aioredis
from store_helpers import REDIS_SERVER, FakeClock, RedisServer, free_port

from sipmask.store import Interaction, ParticipantSpec, SessionSpec, StoreUnavailable
from sipmask.store import redis as redis_backend
from sipmask.store.redis import RedisStore

V = [f"+9180456712{i:02d}" for i in range(10)]
ALICE, BOB, CAROL, DAVE = "+919876543210", "+919812345678", "+919900000001", "+919900000002"

# A dead Redis must answer within this bound: far under redis-py's default retries (10
# retries, backoff capped at 1 s), far over our own (one retry, 50 ms cap). It guards against
# a hang; it measures nothing.
FAIL_FAST_BOUND = 3.0


def spec(a: str, b: str, pool: str = "default", ttl: int = 3600) -> SessionSpec:
    return SessionSpec(participants=(ParticipantSpec(a), ParticipantSpec(b)), pool=pool, ttl=ttl)


def hash_tag(key: str) -> str:
    """The part of a key Redis Cluster hashes (cluster spec, "hash tags")."""
    start = key.find("{")
    if start >= 0:
        end = key.find("}", start + 1)
        if end > start + 1:
            return key[start + 1 : end]
    return key


@asynccontextmanager
async def opened(url: str, clock: FakeClock, **options: float) -> AsyncIterator[RedisStore]:
    store = RedisStore(url, prefix=f"t{uuid.uuid4().hex[:12]}", clock=clock, **options)  # type: ignore[arg-type]
    try:
        yield store
    finally:
        await store.close()


@asynccontextmanager
async def raw_client(url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(url, decode_responses=True)
    try:
        yield client
    finally:
        await client.aclose()


def test_every_pool_key_carries_the_pool_tag(redis_server: RedisServer) -> None:
    async def run() -> None:
        clock = FakeClock()
        async with opened(redis_server.url, clock) as store, raw_client(redis_server.url) as raw:
            await store.set_pool("alpha", V[:3], reserved=[V[9]])
            await store.set_pool("beta", V[3:6])
            s1 = await store.create_session(spec(ALICE, "sip:bob@example.com", "alpha"))
            await store.create_session(spec(CAROL, DAVE, "beta"))
            await store.lookup(V[0], ALICE)
            await store.record_interaction(
                Interaction(
                    id="c", session_id=s1.id, caller=ALICE, callee="bob@example.com",
                    dialled=V[0], presented=V[1], started_at=clock(),
                )
            )
            await store.set_pool("beta", V[4:6])  # V3 drains
            prefix = store._keys.prefix
            keys = [k async for k in raw.scan_iter(match=f"{prefix}:*")]
            kinds: dict[str, set[str]] = {}
            for key in keys:
                tag = hash_tag(key)
                rest = key.removeprefix(f"{prefix}:{{{tag}}}:")
                kinds.setdefault(tag, set()).add(key if tag == key else rest.split(":", 1)[0])
            # Only the pool directory lives outside the pools' slots.
            assert kinds.pop(f"{prefix}:pools") == {f"{prefix}:pools"}
            assert kinds.pop(f"{prefix}:numbers") == {f"{prefix}:numbers"}
            assert sorted(kinds) == ["alpha", "beta"]
            assert kinds["alpha"] == {
                "meta", "lru", "reserved", "geo", "use", "sessions", "s", "p", "pair", "i"
            }
            assert kinds["beta"] == {
                "meta", "lru", "draining", "geo", "use", "sessions", "s", "p", "pair"
            }

    asyncio.run(run())


def test_lookup_is_one_round_trip(redis_server: RedisServer) -> None:
    async def run() -> None:
        async with opened(redis_server.url, FakeClock()) as store, raw_client(
            redis_server.url
        ) as raw:
            await store.set_pool("default", V[:2])
            await store.create_session(spec(ALICE, BOB))
            assert await store.lookup(V[0], ALICE) is not None  # loads script and pool cache
            sent: list[object] = []
            execute = store._redis.execute_command

            async def counting(*args: object, **options: object) -> object:
                sent.append(args[0])
                return await execute(*args, **options)

            store._redis.execute_command = counting  # type: ignore[method-assign]
            await raw.config_resetstat()
            binding = await store.lookup(V[1], BOB)
            stats = await raw.info("commandstats")
            assert binding is not None and binding.callee.key == ALICE
            assert sent == ["EVALSHA"]
            # The server saw one script call (what runs inside it is counted apart).
            assert stats["cmdstat_evalsha"]["calls"] == 1

    asyncio.run(run())


def test_key_ttls(redis_server: RedisServer) -> None:
    async def run() -> None:
        async with opened(redis_server.url, FakeClock(), closed_retention=600) as store, \
                raw_client(redis_server.url) as raw:
            await store.set_pool("default", V[:2])
            session = await store.create_session(spec(ALICE, BOB, ttl=60))
            k = store._keys
            life = (60 + 600) * 1000
            assert 0 < await raw.pttl(k.session("default", session.id)) <= life
            assert 0 < await raw.pttl(k.participant("default", ALICE)) <= life
            assert 0 < await raw.pttl(k.pair("default", BOB, ALICE)) <= 30 * 86400 * 1000
            for key in (k.meta("default"), k.lru("default"), k.sessions("default")):
                assert await raw.pttl(key) == -1  # the pool lives until deleted
            await store.close_session(session.id)
            assert 0 < await raw.pttl(k.session("default", session.id)) <= 600 * 1000

    asyncio.run(run())


def test_scripts_reload_after_flush(redis_server: RedisServer) -> None:
    async def run() -> None:
        async with opened(redis_server.url, FakeClock()) as store, raw_client(
            redis_server.url
        ) as raw:
            await store.set_pool("default", V[:2])
            await store.create_session(spec(ALICE, BOB))
            await raw.script_flush()  # as after a Redis restart or failover
            assert await store.lookup(V[0], ALICE) is not None

    asyncio.run(run())


def test_expire_works_in_batches(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis_backend, "_EXPIRE_BATCH", 7)

    async def run() -> None:
        clock = FakeClock()
        async with opened(redis_server.url, clock) as store:
            await store.set_pool("default", V[:1])
            for i in range(30):
                a, b = f"+9199000001{i:02d}", f"+9199000002{i:02d}"
                await store.create_session(spec(a, b, ttl=60))
            assert await store.expire(now=clock() + 60) == 30
            assert await store.list_sessions() == []

    asyncio.run(run())


def test_dead_redis_fails_fast() -> None:
    async def run() -> None:
        url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
        async with opened(url, FakeClock()) as store:
            for call in (
                store.lookup(V[0], ALICE),
                store.create_session(spec(ALICE, BOB)),
                store.get_session("default.x"),
                store.expire(),
            ):
                with pytest.raises(StoreUnavailable):
                    await asyncio.wait_for(call, FAIL_FAST_BOUND)

    asyncio.run(run())


@pytest.fixture
def persistent_redis() -> Iterator[RedisServer]:
    """A redis-server of this test only (it gets killed), with an append-only file so its
    data survives the restart."""
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (Debian package redis-server)")
    server = RedisServer(persist=True)
    server.start()
    try:
        yield server
    finally:
        server.cleanup()


def test_kill_and_restart(persistent_redis: RedisServer) -> None:
    server = persistent_redis

    async def run() -> None:
        async with opened(server.url, FakeClock()) as store:
            await store.set_pool("default", V[:4])
            session = await store.create_session(spec(ALICE, BOB))
            assert await store.lookup(V[0], ALICE) is not None

            server.stop()
            # Down: every call fails fast, none hangs, the process lives on.
            for _ in range(3):
                with pytest.raises(StoreUnavailable):
                    await asyncio.wait_for(store.lookup(V[0], ALICE), FAIL_FAST_BOUND)
            with pytest.raises(StoreUnavailable):
                await asyncio.wait_for(store.create_session(spec(CAROL, DAVE)), FAIL_FAST_BOUND)

            server.start()
            # Back: the same store reconnects by itself (and reloads its scripts).
            binding = await store.lookup(V[0], ALICE)
            assert binding is not None and binding.session_id == session.id
            other = await store.create_session(spec(CAROL, DAVE))
            assert (await store.get_session(other.id)).id == other.id

    asyncio.run(run())
