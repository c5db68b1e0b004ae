"""A Redis outage and a Redis that comes back empty (issue 13, defect 6), with a real
redis-server that is killed, flushed and restarted:

- call records written while Redis is down are spooled (a file, or memory) and replayed,
  oldest first, once it is back, also by the next process when this one stopped meanwhile;
- after Redis loses its data, `serve` re-applies the config's pools, and /readyz answers 503
  until they are back.
"""

from __future__ import annotations

import asyncio
import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from store_helpers import REDIS_SERVER, T0, FakeClock, RedisServer

import sipmask.server as server_module
from sipmask.config import parse_config
from sipmask.server import serve
from sipmask.store import Interaction, ParticipantSpec, SessionSpec
from sipmask.store.redis import RedisStore

pytestmark = pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed")

V = ["+918045671201", "+918045671202"]
ALICE, BOB = "+919876543210", "+919812345678"
BOUND = 10.0  # seconds a background step may take before the test fails (never asserted)


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    """A redis-server of this test only, with an append-only file (it gets killed)."""
    server = RedisServer(persist=True)
    server.start()
    try:
        yield server
    finally:
        server.cleanup()


def record(session_id: str, n: int) -> Interaction:
    return Interaction(
        id=f"call-{n}", session_id=session_id, caller=ALICE, callee=BOB, dialled=V[0],
        presented=V[1], started_at=T0 + n, answered_at=None, ended_at=T0 + n + 1,
        status="no-answer", cause=None,
    )


async def until(predicate: Any, what: str) -> None:
    """Wait for a background step, bounded (the bound fails the test, it measures nothing)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BOUND
    while not await predicate():
        if loop.time() > deadline:
            pytest.fail(f"not within {BOUND} s: {what}")
        await asyncio.sleep(0.05)


async def open_session(store: RedisStore) -> str:
    await store.set_pool("p", V)
    session = await store.create_session(
        SessionSpec((ParticipantSpec(ALICE), ParticipantSpec(BOB)), pool="p"), now=T0
    )
    return session.id


@pytest.mark.parametrize("on_disk", [True, False], ids=["file", "memory"])
def test_call_records_written_while_redis_is_down_are_replayed(
    redis: RedisServer, tmp_path: Path, on_disk: bool
) -> None:
    spool = tmp_path / "records.spool" if on_disk else None

    async def main() -> None:
        store = RedisStore(redis.url, clock=FakeClock(), spool_path=spool)
        try:
            sid = await open_session(store)
            await store.record_interactions([record(sid, 0)])
            redis.stop()
            # Two batches end while Redis is down: kept, not lost.
            assert await store.record_interactions([record(sid, 1), record(sid, 2)]) == 2
            assert await store.record_interactions([record(sid, 3)]) == 1
            assert store.spool.pending
            if spool is not None:
                assert len(spool.read_bytes().splitlines()) == 3
            redis.start()
            # Replayed by the store's own retry, with no new call ending.
            await until(lambda: _done(store), "the spool replayed")
            await store.record_interactions([record(sid, 4)])
            ids = [r.id for r in await store.list_interactions(sid)]
            assert ids == [f"call-{n}" for n in range(5)]  # in order, each once
            if spool is not None:
                assert not spool.exists()
        finally:
            await store.close()

    asyncio.run(main())


async def _done(store: RedisStore) -> bool:
    return not store.spool.pending


def test_a_spool_left_by_a_stopped_process_is_replayed_by_the_next(
    redis: RedisServer, tmp_path: Path
) -> None:
    spool = tmp_path / "records.spool"

    async def main() -> None:
        store = RedisStore(redis.url, clock=FakeClock(), spool_path=spool)
        sid = await open_session(store)
        redis.stop()
        assert await store.record_interactions([record(sid, 1)]) == 1
        await store.close()  # the process stops while Redis is still down
        assert spool.exists()
        redis.start()
        store = RedisStore(redis.url, clock=FakeClock(), spool_path=spool)
        try:
            await store.ping()  # what `open_store` does first
            await until(lambda: _done(store), "the spool replayed")
            assert [r.id for r in await store.list_interactions(sid)] == ["call-1"]
        finally:
            await store.close()

    asyncio.run(main())


def test_a_replayed_record_is_listed_once(redis: RedisServer, tmp_path: Path) -> None:
    async def main() -> None:
        store = RedisStore(redis.url, clock=FakeClock(), spool_path=tmp_path / "s")
        try:
            sid = await open_session(store)
            await store.record_interactions([record(sid, 1)])
            store.spool.add([record(sid, 1)])  # written, then failed before it was known
            assert await store.replay_spool()
            assert [r.id for r in await store.list_interactions(sid)] == ["call-1"]
        finally:
            await store.close()

    asyncio.run(main())


# -- the config's pools after Redis lost its data -------------------------------------------


def _config(url: str, tmp_path: Path) -> str:
    return f"""
[sip]
listen = ["udp:127.0.0.1:0"]
[api]
listen = "127.0.0.1:0"
tokens = ["t0ken"]
[metrics]
enabled = false
[store]
backend = "redis"
redis_url = "{url}"
data_dir = "{tmp_path}"
[[pools]]
name = "cfg"
numbers = {json.dumps(V)}
[[trunks]]
name = "carrier"
inbound = ["127.0.0.1/32"]
"""


def _get(port: int, path: str) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", headers={"Authorization": "Bearer t0ken"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _flushall(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"FLUSHALL\r\n")
        assert sock.recv(64).startswith(b"+OK")


@pytest.mark.parametrize("how", ["flushed", "restarted-empty"])
def test_config_pools_come_back_and_readyz_waits_for_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    redis = RedisServer()  # no persistence: a restart loses everything
    redis.start()
    try:
        _run_pools_test(redis, tmp_path, monkeypatch, how)
    finally:
        redis.cleanup()


def _run_pools_test(
    redis: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    config = parse_config(_config(redis.url, tmp_path))
    checks = asyncio.Queue[None]()
    real_restore = getattr(server_module, "restore_pools", None)

    async def restore(*args: Any) -> list[str]:
        # The pool check runs only when the test lets it: readiness is seen before and after.
        await checks.get()
        assert real_restore is not None
        result: list[str] = await real_restore(*args)
        return result

    monkeypatch.setattr(server_module, "restore_pools", restore, raising=False)
    monkeypatch.setattr(server_module, "POOL_CHECK_INTERVAL", 0.01, raising=False)

    async def main() -> None:
        stop = asyncio.Event()
        ports: dict[str, int] = {}
        ready = asyncio.Event()
        task = asyncio.get_running_loop().create_task(serve(
            config, stop=stop, ready=ready.set,
            listening=lambda kind, address: ports.__setitem__(kind, address.port),
        ))
        try:
            await asyncio.wait_for(ready.wait(), BOUND)
            api = ports["api"]
            assert await asyncio.to_thread(_get, api, "/readyz") == (200, {"status": "ok"})
            if how == "flushed":
                await asyncio.to_thread(_flushall, redis.port)
            else:
                await asyncio.to_thread(redis.restart)
            status, body = await asyncio.to_thread(_get, api, "/readyz")
            assert (status, body) == (503, {"status": "restoring pools"})
            status, _ = await asyncio.to_thread(_get, api, "/v1/pools/cfg")
            assert status == 404
            checks.put_nowait(None)  # one pool check: it re-applies the pool

            async def pool_back() -> bool:
                return (await asyncio.to_thread(_get, api, "/v1/pools/cfg"))[0] == 200

            await until(pool_back, "the config pool re-applied")
            status, pool = await asyncio.to_thread(_get, api, "/v1/pools/cfg")
            assert pool["numbers"] == V
            assert await asyncio.to_thread(_get, api, "/readyz") == (200, {"status": "ok"})
            resp = await asyncio.to_thread(_get, api, "/v1/pools")
            assert resp[1]["readonly"] == ["cfg"]
        finally:
            for _ in range(10):
                checks.put_nowait(None)
            stop.set()
            await asyncio.wait_for(task, BOUND)

    asyncio.run(main())



def test_a_full_memory_spool_drops_the_oldest_and_replays_the_rest() -> None:
    from sipmask.store.spool import RecordSpool

    spool = RecordSpool(None, max_memory=3)
    spool.add([record("p.x", n) for n in range(2)])
    batch = spool.peek()
    assert [r.id for r in batch] == ["call-0", "call-1"]
    spool.add([record("p.x", n) for n in range(2, 5)])  # while the batch is being written
    assert spool.dropped == 2
    spool.done(len(batch))  # the batch's records were the ones dropped: nothing else goes
    assert [r.id for r in spool.peek()] == ["call-2", "call-3", "call-4"]
