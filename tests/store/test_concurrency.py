"""Concurrent allocation against one Redis (issue 4): several processes, each with many
creations in flight on its own connections, never give a participant the same virtual number
twice, and pool exhaustion is answered cleanly (only to participants that really hold every
number)."""

from __future__ import annotations

import asyncio
import multiprocessing
import random
import uuid
from collections import Counter, defaultdict
from typing import Any

from store_helpers import RedisServer

from sipmask.store import ParticipantSpec, PoolExhausted, SessionSpec

PROCESSES = 4
PER_PROCESS = 250
IN_FLIGHT = 50  # creations awaiting Redis at once, per process
PEOPLE = [f"+9199000{i:05d}" for i in range(24)]
NUMBERS = [f"+9180456712{i:02d}" for i in range(30)]


async def _create_many(url: str, prefix: str, seed: int) -> tuple[int, list[str]]:
    from sipmask.store.redis import RedisStore

    rng = random.Random(seed)
    store = RedisStore(url, prefix=prefix, socket_timeout=10, connect_timeout=10)
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def one() -> str | None:
        a, b = rng.sample(PEOPLE, 2)
        request = SessionSpec(participants=(ParticipantSpec(a), ParticipantSpec(b)), ttl=3600)
        async with gate:
            try:
                await store.create_session(request)
            except PoolExhausted as exc:
                return exc.participant
        return None

    try:
        outcomes = await asyncio.gather(*(one() for _ in range(PER_PROCESS)))
    finally:
        await store.close()
    exhausted = [who for who in outcomes if who is not None]
    return PER_PROCESS - len(exhausted), exhausted


def _worker(url: str, prefix: str, seed: int, barrier: Any, results: Any) -> None:
    barrier.wait()  # all processes start creating together
    results.put(asyncio.run(_create_many(url, prefix, seed)))


def test_concurrent_creations_never_clash(redis_server: RedisServer) -> None:
    from sipmask.store.redis import RedisStore

    prefix = f"t{uuid.uuid4().hex[:12]}"

    async def setup() -> None:
        store = RedisStore(redis_server.url, prefix=prefix)
        try:
            await store.set_pool("default", NUMBERS)
        finally:
            await store.close()

    asyncio.run(setup())

    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES)
    results = ctx.Queue()
    workers = [
        ctx.Process(target=_worker, args=(redis_server.url, prefix, seed, barrier, results))
        for seed in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    try:
        outcomes = [results.get(timeout=300) for _ in workers]
    finally:
        for worker in workers:
            worker.join(timeout=60)
        results.close()
        results.join_thread()
    assert [worker.exitcode for worker in workers] == [0] * PROCESSES

    created = sum(ok for ok, _ in outcomes)
    exhausted = {who for _, refused in outcomes for who in refused}

    async def check() -> None:
        store = RedisStore(redis_server.url, prefix=prefix)
        try:
            sessions = await store.list_sessions()
            assert len(sessions) == created
            held: dict[str, list[str]] = defaultdict(list)
            for session in sessions:
                for part in session.participants:
                    held[part.key].append(part.proxy_identifier)
                    binding = await store.lookup(part.proxy_identifier, part.key)
                    assert binding is not None and binding.session_id == session.id
            for person, numbers in held.items():
                repeated = [n for n, c in Counter(numbers).items() if c > 1]
                assert repeated == [], f"{person} holds {repeated} twice"
            # Exhaustion only for those who hold every number of the pool.
            for person in exhausted:
                assert sorted(held[person]) == NUMBERS
        finally:
            await store.close()

    asyncio.run(check())
    # The load really contended: some creations succeeded and some met a full pool.
    assert created > len(NUMBERS) and exhausted
