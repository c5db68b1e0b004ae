"""Measure (not a test): the longest stall of the event loop while the in-process API serves
one `PUT /v1/pools/big` of 55,000 numbers, on the memory store and on a throwaway Redis.

    PYTHONPATH=. .venv/bin/python tests/api/pool_stall.py

A task sleeping 1 ms in a loop notes the longest gap; the client's body is encoded before
the clock starts, so the gap is the server's work (issue 13: 3.1 s before the fix)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "store"))

from api_helpers import serve  # noqa: E402
from store_helpers import FakeClock, RedisServer  # noqa: E402

from sipmask.store import MemoryStore, SessionStore  # noqa: E402

NUMBERS = [f"+9180{40000000 + i}" for i in range(55000)]
BODY = json.dumps({"numbers": NUMBERS}).encode()


async def measure(store: SessionStore, label: str) -> None:
    async with serve(store, FakeClock()) as client:
        worst = 0.0
        done = False

        async def ticker() -> None:
            nonlocal worst
            loop = asyncio.get_running_loop()
            last = loop.time()
            while not done:
                await asyncio.sleep(0.001)
                now = loop.time()
                worst = max(worst, now - last - 0.001)
                last = now

        task = asyncio.create_task(ticker())
        started = time.perf_counter()
        resp = await client.put(
            "/v1/pools/big", data=BODY, headers={"Content-Type": "application/json"}
        )
        took = time.perf_counter() - started
        done = True
        await task
        print(f"{label}: {resp.status}, request {took:.2f} s, "
              f"longest loop stall {worst * 1000:.0f} ms")


async def main() -> None:
    await measure(MemoryStore(), "memory")
    server = RedisServer()
    server.start()
    try:
        from sipmask.store.redis import RedisStore

        store = RedisStore(server.url)
        await measure(store, "redis")
        await store.close()
    finally:
        server.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
