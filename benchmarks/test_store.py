"""Store benchmarks (issue 4): binding lookups per second and their p99 latency for the memory
and Redis backends, and sessions created per second through the API.

Each round runs a batch of awaited calls on one event loop (a loop turn per call would price
asyncio, not the store); per-call latencies of every round are kept for p50/p99, reported in
`extra_info`. Redis is a throwaway redis-server on a free port (tests/store/store_helpers.py).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "store"))

from store_helpers import REDIS_SERVER, RedisServer  # noqa: E402

from sipmask.store import MemoryStore, ParticipantSpec, SessionSpec  # noqa: E402

POOL = [f"+9180456712{i:02d}" for i in range(20)]
SESSIONS = 1000  # open sessions the lookups search among
BATCH = 200  # calls per round


def party(i: int) -> str:
    return f"+9198{i:08d}"  # Indian mobiles: valid for phonenumbers


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed")
    server = RedisServer()
    server.start()
    try:
        yield server.url
    finally:
        server.cleanup()


def percentiles(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "p50_us": round(statistics.median(ordered) * 1e6, 1),
        "p99_us": round(ordered[int(len(ordered) * 0.99) - 1] * 1e6, 1),
    }


def bench_lookups(benchmark: Any, store: Any, backend: str) -> None:
    loop = asyncio.new_event_loop()
    latencies: list[float] = []
    try:
        loop.run_until_complete(store.set_pool("default", POOL))
        keys: list[tuple[str, str]] = []
        for i in range(SESSIONS):
            session = loop.run_until_complete(store.create_session(SessionSpec(
                participants=(ParticipantSpec(party(2 * i)), ParticipantSpec(party(2 * i + 1))),
                ttl=86_400)))
            first = session.participants[0]
            keys.append((first.proxy_identifier, first.key))
        start = [0]

        async def batch() -> None:
            clock = time.perf_counter
            for n in range(BATCH):
                dialled, caller = keys[(start[0] + n) % len(keys)]
                t = clock()
                binding = await store.lookup(dialled, caller)
                latencies.append(clock() - t)
                assert binding is not None
            start[0] += BATCH

        benchmark.group = "store:lookup"
        benchmark.extra_info.update(impl=backend, case="lookup", batch=BATCH)
        benchmark.pedantic(lambda: loop.run_until_complete(batch()), rounds=20, iterations=1,
                           warmup_rounds=1)
        stats = getattr(benchmark, "stats", None)
        if stats:
            benchmark.extra_info["per_second"] = round(BATCH / stats.stats.median)
        benchmark.extra_info.update(percentiles(latencies))
        loop.run_until_complete(store.close())
    finally:
        loop.close()


def test_lookup_memory(benchmark: Any) -> None:
    bench_lookups(benchmark, MemoryStore(), "memory")


def test_lookup_redis(benchmark: Any, redis_url: str) -> None:
    from sipmask.store.redis import RedisStore

    bench_lookups(benchmark, RedisStore(redis_url, prefix=f"b{uuid.uuid4().hex[:8]}"), "redis")


def bench_api_creates(benchmark: Any, store: Any, backend: str) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from sipmask.api import make_app

    loop = asyncio.new_event_loop()
    latencies: list[float] = []
    counter = [0]
    token = "bench"

    async def setup() -> TestClient[Any, Any]:
        await store.set_pool("default", POOL)
        server = TestServer(make_app(store, tokens=[token]), host="127.0.0.1")
        client = TestClient(server, headers={"Authorization": f"Bearer {token}"})
        await client.start_server()
        return client

    try:
        client = loop.run_until_complete(setup())

        async def batch() -> None:
            for _ in range(BATCH // 4):
                i = counter[0]
                counter[0] += 1
                body = {"participants": [{"identifier": party(10_000_000 + 2 * i)},
                                         {"identifier": party(10_000_000 + 2 * i + 1)}]}
                t = time.perf_counter()
                resp = await client.post("/v1/sessions", json=body)
                await resp.read()
                latencies.append(time.perf_counter() - t)
                assert resp.status == 201

        benchmark.group = "api:create"
        benchmark.extra_info.update(impl=backend, case="create", batch=BATCH // 4)
        benchmark.pedantic(lambda: loop.run_until_complete(batch()), rounds=10, iterations=1,
                           warmup_rounds=1)
        stats = getattr(benchmark, "stats", None)
        if stats:
            benchmark.extra_info["per_second"] = round(BATCH // 4 / stats.stats.median)
        benchmark.extra_info.update(percentiles(latencies))
        loop.run_until_complete(client.close())
        loop.run_until_complete(store.close())
    finally:
        loop.close()


def test_api_create_memory(benchmark: Any) -> None:
    bench_api_creates(benchmark, MemoryStore(), "memory")


def test_api_create_redis(benchmark: Any, redis_url: str) -> None:
    from sipmask.store.redis import RedisStore

    bench_api_creates(benchmark, RedisStore(redis_url, prefix=f"b{uuid.uuid4().hex[:8]}"),
                      "redis")
