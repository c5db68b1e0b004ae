"""Session and call events off the call path (issue 4): `EventPublisher.publish()` is a sync
call that never blocks and never raises; a background task drains a bounded in-memory queue
into a sink.

Sinks: a Redis Stream (`XADD ... MAXLEN ~ n`, key `<prefix>:{events}:stream`, one hash tag so
the stream lives on one Cluster slot) for the Redis store; a JSONL file under the memory
store's data_dir; or none (events counted and dropped). While the sink fails (Redis down),
events go to an append-only spool file and are replayed, oldest first, before anything newer
once the sink is back: call records are billing data. Delivery is at least once: an outage in
the middle of a write can repeat a batch, so each event carries a unique `id` to deduplicate.

Each event is also handed to the subscribers (e.g. `WebhookSender.submit`), synchronously in
`publish()`, so they must only enqueue.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

import msgspec

if TYPE_CHECKING:
    from .redis import RedisTarget

__all__ = [
    "DEFAULT_MAXLEN",
    "DEFAULT_QUEUE_SIZE",
    "Event",
    "EventPublisher",
    "EventSink",
    "EventStats",
    "JsonlSink",
    "RedisStreamSink",
    "stream_key",
]

logger = logging.getLogger("sipmask.events")

DEFAULT_QUEUE_SIZE = 10_000
"""Events held in memory before the oldest are dropped."""
DEFAULT_MAXLEN = 1_000_000
"""Approximate length the Redis Stream is trimmed to (`MAXLEN ~`)."""
_BATCH = 256
_SPOOL_NAME = "events.spool"


class Event(msgspec.Struct, frozen=True):
    """One event. `id` is unique (process start + sequence) so consumers can deduplicate the
    rare repeat after an outage; `ts` is epoch seconds at publish."""

    id: str
    kind: str
    ts: float
    data: dict[str, Any]


_encode = msgspec.json.encode
_decode_event = msgspec.json.Decoder(Event)


def stream_key(prefix: str = "sipmask") -> str:
    """The Redis Stream of events: the `{events}` hash tag keeps it (and any key added beside
    it) on one Redis Cluster slot."""
    return f"{prefix}:{{events}}:stream"


class EventSink(Protocol):
    """Where the drained events go. `write` raises when they could not be kept."""

    async def write(self, events: Sequence[bytes]) -> None: ...

    async def close(self) -> None: ...


class RedisStreamSink:
    """XADD each event (fields `id`, `kind`, `ts`, `data`) to a Redis Stream, a batch per
    MULTI/EXEC so a batch is kept whole or not at all.

    Args:
        url: the store's Redis URL, or its RedisTarget (a Cluster: the stream key's hash tag
            keeps each MULTI/EXEC on one slot; a Sentinel service). A client of its own:
            event writes never wait behind the call path's lookups in one connection pool.
        key: the stream (see `stream_key`).
        maxlen: approximate trim length.
        timeout: socket and connect timeout; a dead Redis fails fast and the batch is spooled.
    """

    def __init__(
        self,
        url: str | RedisTarget,
        *,
        key: str | None = None,
        maxlen: int = DEFAULT_MAXLEN,
        timeout: float = 1.0,
    ) -> None:
        from .redis import RedisTarget

        self.key = key or stream_key()
        self.maxlen = maxlen
        target = url if isinstance(url, RedisTarget) else RedisTarget(url)
        # No retry: a failed batch is spooled and tried again by the publisher.
        self._redis: Any
        self._redis, self._aclose = target.connect(
            socket_timeout=timeout, connect_timeout=timeout, retries=0,
            decode_responses=False,
        )

    async def write(self, events: Sequence[bytes]) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            for raw in events:
                event = _decode_event.decode(raw)
                pipe.xadd(
                    self.key,
                    {
                        "id": event.id,
                        "kind": event.kind,
                        "ts": repr(event.ts),
                        "data": _encode(event.data),
                    },
                    maxlen=self.maxlen,
                    approximate=True,
                )
            await pipe.execute()

    async def close(self) -> None:
        await self._aclose()


class JsonlSink:
    """Append each event as one JSON line to a file (the memory store's `events.jsonl`)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def _append(self, events: Sequence[bytes]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab") as f:
            f.write(b"".join(raw + b"\n" for raw in events))
            f.flush()

    async def write(self, events: Sequence[bytes]) -> None:
        await asyncio.to_thread(self._append, events)

    async def close(self) -> None:
        return None


@dataclass
class EventStats:
    """Counters (for metrics and tests)."""

    published: int = 0
    written: int = 0
    """Events the sink kept (replayed ones included)."""
    dropped_full: int = 0
    """Oldest events dropped because the queue was full."""
    dropped_no_sink: int = 0
    """Events dropped because there is nowhere to keep them (memory store without data_dir)."""
    spooled: int = 0
    """Events written to the spool file while the sink failed."""
    replayed: int = 0
    """Spooled events delivered once the sink was back."""
    sink_errors: int = 0
    subscriber_errors: int = 0


class EventPublisher:
    """The bounded queue, its drain task, the spool and the subscribers.

    Args:
        sink: where events go; None drops them (counted in `stats.dropped_no_sink`).
        spool_path: file that holds events while the sink fails; None keeps them in the
            queue instead (bounded: the oldest are dropped when it fills).
        maxsize: queue bound.
        subscribers: called with each Event inside `publish()`; must not block.
        retry_interval: seconds between attempts to reach a failed sink.
        clock: epoch seconds for `Event.ts`.
    """

    def __init__(
        self,
        sink: EventSink | None,
        *,
        spool_path: str | os.PathLike[str] | None = None,
        maxsize: int = DEFAULT_QUEUE_SIZE,
        subscribers: Iterable[Callable[[Event], None]] = (),
        retry_interval: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.sink = sink
        self.spool_path = Path(spool_path) if spool_path is not None else None
        self.maxsize = maxsize
        self.subscribers = list(subscribers)
        self.retry_interval = retry_interval
        self.stats = EventStats()
        self._clock = clock
        self._queue: deque[bytes] = deque()
        self._prefix = f"{int(time.time() * 1000):x}-{os.getpid():x}-"
        self._seq = itertools.count()
        self._spool_offset = 0  # bytes of the spool file already replayed
        self._wake: asyncio.Event | None = None
        self._idle: asyncio.Event | None = None
        self._stop: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._sink_down = False

    @classmethod
    def for_store(
        cls,
        backend: str,
        *,
        redis_url: str | RedisTarget | None = None,
        data_dir: str | os.PathLike[str] | None = None,
        prefix: str = "sipmask",
        redis_mode: str = "single",
        sentinels: Sequence[str] = (),
        sentinel_service: str = "mymaster",
        **kwargs: Any,
    ) -> EventPublisher:
        """The publisher of a store, from `[store]`: a Redis Stream (spooled under `data_dir`,
        if any) for `redis`, `data_dir/events.jsonl` for `memory`, nothing without data_dir.
        `redis_mode`, `sentinels` and `sentinel_service` are those of `[store]` (see
        RedisTarget), used when `redis_url` is a URL."""
        directory = Path(data_dir) if data_dir else None
        if backend == "redis":
            if redis_url is None:
                raise ValueError("the redis backend needs redis_url")
            if isinstance(redis_url, str):
                from .redis import RedisTarget

                redis_url = RedisTarget(
                    redis_url, cast(Any, redis_mode), tuple(sentinels), sentinel_service
                )
            spool = directory / _SPOOL_NAME if directory is not None else None
            return cls(RedisStreamSink(redis_url, key=stream_key(prefix)), spool_path=spool,
                       **kwargs)
        if directory is None:
            return cls(None, **kwargs)
        return cls(JsonlSink(directory / "events.jsonl"), **kwargs)

    # -- the call path ----------------------------------------------------------------------

    def publish(self, kind: str, data: dict[str, Any]) -> None:
        """Queue an event and hand it to the subscribers. Never blocks, never raises: a full
        queue drops its oldest event."""
        try:
            event = Event(f"{self._prefix}{next(self._seq)}", kind, self._clock(), data)
            raw = _encode(event)
        except (TypeError, ValueError, OverflowError):
            logger.exception("event %s not encodable; dropped", kind)
            return
        self.stats.published += 1
        if self.sink is None:
            self.stats.dropped_no_sink += 1
        else:
            if len(self._queue) >= self.maxsize:
                self._queue.popleft()
                self.stats.dropped_full += 1
            self._queue.append(raw)
            if self._wake is not None:
                self._wake.set()
        for subscriber in self.subscribers:
            try:
                subscriber(event)
            except Exception:
                self.stats.subscriber_errors += 1
                logger.exception("event subscriber failed on %s", kind)

    @property
    def queued(self) -> int:
        """Events waiting in memory."""
        return len(self._queue)

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the drain task (in the running loop). A spool left by an earlier run is
        replayed first."""
        if self._task is not None or self.sink is None:
            return
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._stop = asyncio.Event()
        self._wake.set()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="sipmask-events")

    async def flush(self) -> None:
        """Wait until the events queued so far have left the memory queue (kept by the sink,
        or spooled); returns early while a failed sink without a spool holds them."""
        while self._task is not None and not self._task.done() and self._queue:
            assert self._idle is not None and self._wake is not None
            self._idle.clear()
            self._wake.set()
            await self._idle.wait()
            if self._sink_down and self.spool_path is None:
                return

    async def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued and spooled (up to `timeout` seconds), spool what could not
        be delivered, stop, close the sink."""
        self._closing = True
        if self._task is not None:
            assert self._wake is not None and self._stop is not None
            self._wake.set()
            self._stop.set()
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            self._task = None
        if self._queue:
            if self.spool_path is not None:
                with contextlib.suppress(OSError):
                    self._spool(list(self._queue))
                    self._queue.clear()
            if self._queue:
                logger.warning("%d events not delivered at close", len(self._queue))
        if self.sink is not None:
            with contextlib.suppress(Exception):
                await self.sink.close()

    # -- the drain task ---------------------------------------------------------------------

    def _spool_pending(self) -> bool:
        if self.spool_path is None:
            return False
        try:
            return self.spool_path.stat().st_size > self._spool_offset
        except FileNotFoundError:
            return False

    def _spool(self, events: Sequence[bytes]) -> None:
        assert self.spool_path is not None
        self.spool_path.parent.mkdir(parents=True, exist_ok=True)
        with self.spool_path.open("ab") as f:
            f.write(b"".join(raw + b"\n" for raw in events))
            f.flush()
            os.fsync(f.fileno())  # billing data: on disk before it leaves memory
        self.stats.spooled += len(events)

    def _spool_queue(self) -> None:
        """Move the whole queue to the end of the spool (it is newer than the spool)."""
        if not self._queue:
            return
        events = list(self._queue)
        try:
            self._spool(events)
        except OSError as exc:
            logger.error("cannot spool events to %s: %s", self.spool_path, exc)
            return
        self._queue.clear()

    def _read_spool(self) -> tuple[list[bytes], int]:
        """Up to a batch of spooled events after the replay offset, and the offset after
        them."""
        assert self.spool_path is not None
        events: list[bytes] = []
        with self.spool_path.open("rb") as f:
            f.seek(self._spool_offset)
            offset = self._spool_offset
            for line in f:
                if not line.endswith(b"\n"):
                    break  # a torn last line (crash while spooling): not an event yet
                offset += len(line)
                if line.strip():
                    events.append(line.rstrip(b"\n"))
                if len(events) >= _BATCH:
                    break
        return events, offset

    async def _replay_spool(self) -> bool:
        """Deliver the spool in order; True once it is all delivered (and removed)."""
        assert self.sink is not None and self.spool_path is not None
        while True:
            try:
                events, offset = self._read_spool()
            except OSError as exc:
                logger.error("cannot read the event spool %s: %s", self.spool_path, exc)
                return False
            if not events:
                break
            try:
                await self.sink.write(events)
            except Exception as exc:
                self._sink_failed(exc)
                return False
            self._spool_offset = offset
            self.stats.written += len(events)
            self.stats.replayed += len(events)
        # Everything replayed; new events are spooled only after this (one task does both).
        try:
            self.spool_path.unlink()
        except OSError as exc:
            logger.error("cannot remove the replayed event spool: %s", exc)
            return False
        self._spool_offset = 0
        logger.info("event spool replayed")
        return True

    def _sink_failed(self, exc: BaseException) -> None:
        self.stats.sink_errors += 1
        if not self._sink_down:
            logger.warning("event sink unavailable (%s); %s", type(exc).__name__,
                           "spooling to disk" if self.spool_path else "holding in memory")
        self._sink_down = True

    async def _pause(self) -> None:
        """Wait for the retry interval (new events do not cut it short; close() does)."""
        assert self._stop is not None and self._idle is not None
        self._idle.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), self.retry_interval)

    async def _run(self) -> None:
        assert self._wake is not None and self._idle is not None and self.sink is not None
        while True:
            if self._spool_pending():
                # The spool is older than the queue: spool the queue too, replay from disk.
                self._spool_queue()
                self._idle.set()
                if await self._replay_spool():
                    self._sink_down = False
                    continue
                if self._closing:
                    return
                await self._pause()
                continue
            if not self._queue:
                self._idle.set()
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = [self._queue[i] for i in range(min(_BATCH, len(self._queue)))]
            try:
                await self.sink.write(batch)
            except Exception as exc:
                self._sink_failed(exc)
                if self.spool_path is not None:
                    self._spool_queue()  # the batch is still at the queue's head
                    self._idle.set()
                    if self._spool_pending():
                        continue
                if self._closing:
                    return
                await self._pause()
                continue
            # Only now leave the queue (publish() may have dropped some of them meanwhile).
            for raw in batch:
                if self._queue and self._queue[0] is raw:
                    self._queue.popleft()
            self.stats.written += len(batch)
            if self._sink_down:
                logger.info("event sink back")
                self._sink_down = False
