"""The event stream: a bounded queue drained into a Redis Stream (real redis-server), a JSONL
file, or nowhere; a spool while Redis is down, replayed in order when it is back."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from store_helpers import REDIS_SERVER, RedisServer, free_port

from sipmask.store.events import (
    Event,
    EventPublisher,
    JsonlSink,
    RedisStreamSink,
    stream_key,
)

BOUND = 30.0  # seconds: keeps a broken test from hanging; measures nothing


def prefix() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


async def stream_seqs(url: str, key: str) -> list[int]:
    client = aioredis.Redis.from_url(url, decode_responses=True)
    try:
        rows = await client.xrange(key)
    finally:
        await client.aclose()
    return [json.loads(fields["data"])["seq"] for _, fields in rows]


def first_occurrences(seqs: list[int]) -> list[int]:
    """Delivery is at least once: a batch cut by the outage may come twice."""
    seen: set[int] = set()
    return [s for s in seqs if not (s in seen or seen.add(s))]  # type: ignore[func-returns-value]


@pytest.fixture
def persistent_redis() -> Iterator[RedisServer]:
    """A redis-server of this test only (it gets killed), with an fsync'ed append-only file so
    what it acknowledged survives the kill."""
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (Debian package redis-server)")
    server = RedisServer(persist=True)
    server.start()
    try:
        yield server
    finally:
        server.cleanup()


def test_stream_key_has_a_hash_tag() -> None:
    assert stream_key() == "sipmask:{events}:stream"
    assert stream_key("x") == "x:{events}:stream"


def test_events_reach_the_redis_stream_in_order(redis_server: RedisServer) -> None:
    async def run() -> None:
        key = stream_key(prefix())
        publisher = EventPublisher(RedisStreamSink(redis_server.url, key=key))
        await publisher.start()
        for seq in range(1000):
            publisher.publish("call.ended", {"seq": seq})
        await asyncio.wait_for(publisher.close(), BOUND)
        assert await stream_seqs(redis_server.url, key) == list(range(1000))
        assert publisher.stats.written == 1000 and publisher.stats.dropped_full == 0
        client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
        try:
            [(_, fields)] = await client.xrevrange(key, count=1)
        finally:
            await client.aclose()
        assert fields["kind"] == "call.ended" and fields["id"] and float(fields["ts"]) > 0

    asyncio.run(run())


def test_stream_is_trimmed_approximately(redis_server: RedisServer) -> None:
    async def run() -> None:
        key = stream_key(prefix())
        publisher = EventPublisher(RedisStreamSink(redis_server.url, key=key, maxlen=100))
        await publisher.start()
        for seq in range(3000):
            publisher.publish("session.created", {"seq": seq})
        await asyncio.wait_for(publisher.close(), BOUND)
        seqs = await stream_seqs(redis_server.url, key)
        # MAXLEN ~ trims whole radix-tree nodes: about 100 kept, never the newest dropped.
        assert 100 <= len(seqs) < 3000 and seqs[-1] == 2999

    asyncio.run(run())


def test_redis_killed_mid_stream_loses_nothing_and_keeps_order(
    persistent_redis: RedisServer, tmp_path: Path
) -> None:
    server = persistent_redis

    async def run() -> None:
        key = stream_key(prefix())
        spool = tmp_path / "events.spool"
        publisher = EventPublisher(
            RedisStreamSink(server.url, key=key, timeout=0.5), spool_path=spool,
            retry_interval=0.05,
        )
        await publisher.start()
        seq = 0
        for _ in range(300):
            publisher.publish("call.ended", {"seq": seq})
            seq += 1
        await asyncio.wait_for(publisher.flush(), BOUND)
        # Kill it while events keep coming.
        for _ in range(100):
            publisher.publish("call.ended", {"seq": seq})
            seq += 1
        server.stop()
        for _ in range(400):
            publisher.publish("call.ended", {"seq": seq})
            seq += 1
            if seq % 50 == 0:
                await asyncio.sleep(0)
        await asyncio.wait_for(publisher.flush(), BOUND)
        assert publisher.stats.spooled > 0 and spool.exists()  # the outage path ran
        assert publisher.stats.dropped_full == 0
        server.start()
        for _ in range(200):
            publisher.publish("call.ended", {"seq": seq})
            seq += 1
        await asyncio.wait_for(publisher.close(), BOUND)
        assert publisher.stats.replayed > 0 and not spool.exists()
        seqs = await stream_seqs(server.url, key)
        assert first_occurrences(seqs) == list(range(seq))

    asyncio.run(run())


def test_spool_left_by_a_stopped_process_is_replayed_first(
    persistent_redis: RedisServer, tmp_path: Path
) -> None:
    server = persistent_redis

    async def run() -> None:
        key = stream_key(prefix())
        spool = tmp_path / "events.spool"
        server.stop()
        first = EventPublisher(RedisStreamSink(server.url, key=key, timeout=0.5),
                               spool_path=spool, retry_interval=0.05)
        await first.start()
        for seq in range(50):
            first.publish("call.ended", {"seq": seq})
        await asyncio.wait_for(first.close(timeout=2), BOUND)
        assert spool.exists()  # Redis never came back while it ran: all on disk
        assert len(spool.read_bytes().splitlines()) == 50

        server.start()
        second = EventPublisher(RedisStreamSink(server.url, key=key), spool_path=spool)
        second.publish("call.ended", {"seq": 50})  # before start: still after the spool
        await second.start()
        second.publish("call.ended", {"seq": 51})
        await asyncio.wait_for(second.close(), BOUND)
        assert await stream_seqs(server.url, key) == list(range(52))
        assert not spool.exists()

    asyncio.run(run())


def test_dead_redis_without_spool_holds_events_in_memory() -> None:
    async def run() -> None:
        url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
        publisher = EventPublisher(RedisStreamSink(url, timeout=0.2), maxsize=10,
                                   retry_interval=0.05)
        await publisher.start()
        for seq in range(15):
            publisher.publish("call.ended", {"seq": seq})  # never blocks, never raises
        await asyncio.wait_for(publisher.flush(), BOUND)
        assert publisher.queued == 10 and publisher.stats.dropped_full == 5
        assert publisher.stats.sink_errors > 0 and publisher.stats.written == 0
        await asyncio.wait_for(publisher.close(timeout=0.5), BOUND)

    asyncio.run(run())


def test_memory_store_events_go_to_jsonl(tmp_path: Path) -> None:
    async def run() -> None:
        publisher = EventPublisher.for_store("memory", data_dir=tmp_path)
        assert isinstance(publisher.sink, JsonlSink)
        await publisher.start()
        publisher.publish("session.created", {"session_id": "default.a", "seq": 0})
        publisher.publish("session.closed", {"session_id": "default.a", "seq": 1})
        await asyncio.wait_for(publisher.close(), BOUND)
        lines = (tmp_path / "events.jsonl").read_text().splitlines()
        events = [json.loads(line) for line in lines]
        assert [e["kind"] for e in events] == ["session.created", "session.closed"]
        assert [e["data"]["seq"] for e in events] == [0, 1]
        assert len({e["id"] for e in events}) == 2

    asyncio.run(run())


def test_no_data_dir_drops_with_a_counter_and_still_feeds_subscribers() -> None:
    async def run() -> None:
        seen: list[Event] = []
        publisher = EventPublisher.for_store("memory", data_dir="", subscribers=[seen.append])
        assert publisher.sink is None
        await publisher.start()
        publisher.publish("session.created", {"seq": 0})
        await publisher.close()
        assert publisher.stats.dropped_no_sink == 1 and publisher.queued == 0
        assert [e.kind for e in seen] == ["session.created"]

    asyncio.run(run())


def test_full_queue_drops_the_oldest(tmp_path: Path) -> None:
    async def run() -> None:
        publisher = EventPublisher(JsonlSink(tmp_path / "e.jsonl"), maxsize=5)
        for seq in range(8):  # before start: nothing drains yet
            publisher.publish("call.ended", {"seq": seq})
        assert publisher.queued == 5 and publisher.stats.dropped_full == 3
        await publisher.start()
        await asyncio.wait_for(publisher.close(), BOUND)
        lines = (tmp_path / "e.jsonl").read_text().splitlines()
        assert [json.loads(line)["data"]["seq"] for line in lines] == [3, 4, 5, 6, 7]

    asyncio.run(run())


def test_a_failing_subscriber_or_bad_data_never_raises(tmp_path: Path) -> None:
    def broken(event: Event) -> None:
        raise RuntimeError("subscriber bug")

    publisher = EventPublisher(JsonlSink(tmp_path / "e.jsonl"), subscribers=[broken])
    publisher.publish("call.ended", {"seq": 0})
    publisher.publish("call.ended", {"bad": object()})  # not JSON: dropped, logged
    assert publisher.stats.subscriber_errors == 1 and publisher.queued == 1


def test_for_store_redis(redis_server: RedisServer, tmp_path: Path) -> None:
    async def run() -> None:
        p = prefix()
        publisher = EventPublisher.for_store("redis", redis_url=redis_server.url,
                                             data_dir=tmp_path, prefix=p)
        assert isinstance(publisher.sink, RedisStreamSink)
        assert publisher.spool_path == tmp_path / "events.spool"
        await publisher.start()
        publisher.publish("session.created", {"seq": 7})
        await asyncio.wait_for(publisher.close(), BOUND)
        assert await stream_seqs(redis_server.url, stream_key(p)) == [7]

    asyncio.run(run())
