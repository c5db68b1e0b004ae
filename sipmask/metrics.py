"""Prometheus metrics: read at scrape time from the counters the engine, the SIP layer and the
transport already keep, so the hot path does no metrics work at all.

Theory of operation:

- `SipmaskCollector` is a prometheus-client custom collector. Each scrape reads
  `B2BUA.stats`, `TransactionLayer.stats`, the endpoint's error counters and its UDP
  listeners' counters, and turns them into metric families. Nothing is incremented twice.
- The one measurement the stats objects cannot give is the store's latency: `TimedStore`
  wraps the store handed to the engine and times `lookup` (the one store call per new call)
  into a histogram. Every other method goes straight to the store.
- Pool sizes come from `store.get_pool`, refreshed by `refresh_pools` (at start, after a
  reload, every `POOL_REFRESH` seconds), never on the scrape itself.
- `metrics_app` is a small aiohttp app serving `/metrics` from a private registry (several
  processes in one interpreter, as in tests, never clash over the global one).

Privacy: label values are outcome words, transports and pool names; pool names pass through
`mask_numbers_in` so even a pool named after a number shows no number.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

from .privacy import mask_numbers_in
from .store import StoreError

if TYPE_CHECKING:
    from aiohttp import web

    from .b2bua import B2BUA
    from .store import SessionStore
    from .transport.endpoint import SipEndpoint

__all__ = [
    "LOOKUP_BUCKETS",
    "POOL_REFRESH",
    "Metrics",
    "SipmaskCollector",
    "TimedStore",
    "metrics_app",
]

log = logging.getLogger("sipmask.metrics")

LOOKUP_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                  0.25, 0.5, 1.0, 2.5)
"""Seconds: the memory store answers in microseconds, Redis in well under a millisecond."""
POOL_REFRESH = 30.0
"""Seconds between two reads of the pools' sizes."""


class TimedStore:
    """The store with `lookup` timed into `histogram`; every other attribute is the store's.
    Errors are timed too and counted in `errors`."""

    def __init__(self, store: SessionStore, histogram: Histogram) -> None:
        self._store = store
        self._histogram = histogram
        self.errors = 0

    async def lookup(self, dialled: str, caller: str, *, now: float | None = None) -> Any:
        start = time.perf_counter()
        try:
            return await self._store.lookup(dialled, caller, now=now)
        except StoreError:
            self.errors += 1
            raise
        finally:
            self._histogram.observe(time.perf_counter() - start)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


class SipmaskCollector(Collector):
    """Everything but the histogram, read from the live stats objects at scrape time."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        m = self.metrics
        engine: Any = m.engine
        endpoint: Any = m.endpoint
        if m.worker_stats_dir is not None:  # a supervisor: the workers' counters, summed
            engine, endpoint = aggregate(read_snapshots(m.worker_stats_dir))
        if engine is not None:
            stats = engine.stats
            yield _gauge("sipmask_calls_active", "Calls in progress.", stats.calls_active)
            yield _counter("sipmask_calls_started", "New calls taken (INVITEs admitted).",
                           stats.calls_started)
            yield _counter("sipmask_calls_answered", "Calls answered by the callee.",
                           stats.calls_answered)
            yield _counter("sipmask_calls_rejected",
                           "INVITEs refused before a callee was tried (no identity, no "
                           "binding, trunk limits, draining).", stats.calls_rejected)
            ended = CounterMetricFamily("sipmask_calls", "Ended calls by outcome.",
                                        labels=["outcome"])
            for outcome, count in sorted(stats.outcomes.items()):
                ended.add_metric([mask_numbers_in(outcome)], count)
            yield ended
            yield _counter("sipmask_messages_relayed", "MESSAGE requests relayed.",
                           stats.messages_relayed)
            yield _gauge("sipmask_draining", "1 while draining after SIGTERM.",
                         1 if engine.draining else 0)
            yield _gauge("sipmask_overloaded", "1 while the loop lag refuses new calls.",
                         1 if engine.overloaded else 0)
        if endpoint is not None:
            layer = endpoint.layer.stats
            yield _counter("sipmask_sip_overload_refused",
                           "New INVITEs refused because max_transactions were in progress.",
                           layer.refused)
            yield _gauge("sipmask_sip_transactions_in_flight",
                         "Transactions held (in progress and lingering).", layer.in_flight)
            yield _gauge("sipmask_sip_transactions_in_progress",
                         "Transactions without a final response yet.", layer.in_progress)
            yield _counter("sipmask_sip_retransmissions", "Datagrams re-sent by transactions.",
                           layer.retransmissions)
            yield _counter("sipmask_sip_parse_errors", "Messages the parser rejected.",
                           layer.parse_errors)
            yield _counter("sipmask_sip_dropped",
                           "Input thrown away (stray responses, garbage, filtered sources).",
                           layer.dropped)
            yield _counter("sipmask_sip_callback_errors",
                           "Events the call engine failed on (bugs).", endpoint.callback_errors)
            yield _counter("sipmask_sip_internal_errors",
                           "Messages or timers the SIP layer failed on (bugs).",
                           endpoint.internal_errors)
            yield _counter("sipmask_sip_unroutable",
                           "Messages with no socket to leave on.", endpoint.unroutable)
            yield _counter("sipmask_sip_tu_errors",
                           "Requests the call engine failed on, answered 500 by the layer.",
                           layer.tu_errors)
            yield _counter("sipmask_sip_unanswered",
                           "Server transactions freed because nothing answered them in time.",
                           layer.unanswered)
            tcp = endpoint.tcp
            yield _gauge("sipmask_tcp_connections_open", "TCP/TLS connections open.",
                         tcp.open_connections)
            yield _gauge("sipmask_tcp_buffered_bytes",
                         "Octets of unfinished TCP/TLS messages held.", tcp.buffered)
            yield _counter("sipmask_tcp_connections_refused",
                           "TCP/TLS connections refused: max_connections or "
                           "max_connections_per_source open.", tcp.stats.refused_connections)
            yield _counter("sipmask_tcp_closed_over_buffered",
                           "TCP/TLS connections closed at the buffered-bytes cap.",
                           tcp.stats.over_buffered)
            yield _counter("sipmask_tcp_closed_slow",
                           "TCP/TLS connections closed: a message took longer than "
                           "tcp_message_timeout.", tcp.stats.slow_messages)
            received = CounterMetricFamily("sipmask_udp_datagrams_received",
                                           "Datagrams accepted by the UDP listeners.",
                                           labels=["listener"])
            sent = CounterMetricFamily("sipmask_udp_datagrams_sent",
                                       "Datagrams sent by the UDP listeners.",
                                       labels=["listener"])
            refused = CounterMetricFamily("sipmask_udp_source_refused",
                                          "Datagrams dropped: source outside the allowed "
                                          "networks.", labels=["listener"])
            for listener in endpoint.udp:
                name = f"{listener.local.host}:{listener.local.port}" if listener.local else "-"
                received.add_metric([name], listener.stats.received)
                sent.add_metric([name], listener.stats.sent)
                refused.add_metric([name], listener.stats.refused_source)
            yield received
            yield sent
            yield refused
        if m.store is not None:
            yield _counter("sipmask_store_lookup_errors", "Binding lookups that failed.",
                           m.store.errors)
        pools = GaugeMetricFamily("sipmask_pool_numbers",
                                  "Virtual numbers per pool: assignable, reserved, draining, "
                                  "and in_use (by at least one open session).",
                                  labels=["pool", "state"])
        for name, sizes in sorted(m.pool_sizes.items()):
            for state, count in sizes.items():
                pools.add_metric([mask_numbers_in(name), state], count)
        yield pools
        if endpoint is not None:
            responses = CounterMetricFamily("sipmask_sip_responses",
                                            "SIP responses sent by the call engine, by status.",
                                            labels=["code"])
            for code, count in sorted(endpoint.responses_sent.items()):
                responses.add_metric([str(code)], count)
            yield responses
        reloads = CounterMetricFamily("sipmask_config_reloads",
                                      "SIGHUP reloads by result (applied, rejected).",
                                      labels=["result"])
        for result, count in sorted(m.reloads.items()):
            reloads.add_metric([result], count)
        yield reloads
        yield from media_families(m)


# --- media anchoring (docs/media.md): the hook's own flat counters and gauges ---------------

MEDIA_HELP = {
    "media_offers": "SDP offers sent through rtpengine.",
    "media_answers": "SDP answers sent through rtpengine.",
    "media_calls_anchored": "Calls whose first offer rtpengine took.",
    "media_calls_direct": "Calls left unanchored (no rtpengine, on_failure = direct).",
    "media_calls_refused": "Calls ended because no rtpengine took them (on_failure = reject).",
    "media_failures": "ng commands that failed (timeout, error, no instance up).",
    "media_recordings": "Calls whose recording rtpengine started.",
    "media_announcements": "Announcements rtpengine started playing to a caller.",
    "media_ng_requests": "ng requests sent.",
    "media_ng_errors": "ng error replies.",
    "media_ng_timeouts": "ng requests without a reply after the retries.",
    "media_ng_unavailable": "ng commands with no rtpengine instance up.",
    "media_calls_anchored_now": "Calls held in rtpengine now.",
    "media_rtpengine_up": "rtpengine instances up (answering pings).",
    "media_rtpengine_down": "rtpengine instances marked down.",
}
"""Help text per snapshot key (without `_total`); a key not listed gets a generic one."""


def media_snapshot(engine: Any) -> dict[str, int]:
    """The media hook's metrics (`Anchoring.snapshot`), or {} without a hook that has any."""
    take = getattr(getattr(engine, "media", None), "snapshot", None)
    return dict(take()) if callable(take) else {}


def media_families(m: Metrics) -> Iterator[Metric]:
    """`sipmask_media_*`: `*_total` keys are counters, the others gauges (calls anchored
    now, instances up and down); a supervisor sums its workers'."""
    if m.worker_stats_dir is not None:
        values: dict[str, int] = {}
        for snap in read_snapshots(m.worker_stats_dir):
            for key, value in snap.get("media", {}).items():
                values[key] = values.get(key, 0) + value
    else:
        values = media_snapshot(m.engine)
    for key, value in sorted(values.items()):
        if key.endswith("_total"):
            name = key.removesuffix("_total")
            yield _counter(f"sipmask_{name}", MEDIA_HELP.get(name, "Media counter."), value)
        else:
            yield _gauge(f"sipmask_{key}", MEDIA_HELP.get(key, "Media gauge."), value)


# --- several workers: each writes its counters to a file, the supervisor sums them ----------

SNAPSHOT_INTERVAL = 1.0
"""Seconds between two snapshots a worker writes (the staleness of a supervisor's scrape)."""


def snapshot(engine: B2BUA, endpoint: SipEndpoint) -> dict[str, Any]:
    """What the collector reads of one worker, as plain JSON data."""
    return {
        "engine": {**dataclasses.asdict(engine.stats), "draining": engine.draining,
                   "overloaded": engine.overloaded},
        "layer": dataclasses.asdict(endpoint.layer.stats),
        "endpoint": {
            "callback_errors": endpoint.callback_errors,
            "internal_errors": endpoint.internal_errors,
            "unroutable": endpoint.unroutable,
            "responses_sent": {str(k): v for k, v in endpoint.responses_sent.items()},
        },
        "tcp": {
            "open_connections": endpoint.tcp.open_connections,
            "buffered": endpoint.tcp.buffered,
            **{key: getattr(endpoint.tcp.stats, key) for key in _TCP_COUNTERS},
        },
        "udp": [
            {"listener": f"{u.local.host}:{u.local.port}" if u.local else "-",
             "received": u.stats.received, "sent": u.stats.sent,
             "refused_source": u.stats.refused_source}
            for u in endpoint.udp
        ],
        "media": media_snapshot(engine),
    }


async def publish_snapshots(engine: B2BUA, endpoint: SipEndpoint, path: Path) -> None:
    """A worker's task: rewrite `path` with its counters every `SNAPSHOT_INTERVAL` (atomic
    rename, so the supervisor never reads half a file)."""
    temporary = path.with_suffix(".tmp")
    while True:
        try:
            temporary.write_text(json.dumps(snapshot(engine, endpoint)))
            os.replace(temporary, path)
        except OSError as exc:
            log.debug("worker counters not written: %s", exc)
        await asyncio.sleep(SNAPSHOT_INTERVAL)


_TCP_COUNTERS = ("refused_connections", "over_buffered", "slow_messages")


def read_snapshots(directory: Path) -> list[dict[str, Any]]:
    found = []
    for path in sorted(directory.glob("worker-*.json")):
        try:
            found.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue  # a worker gone or mid-start: skipped this scrape
    return found


def aggregate(snapshots: list[dict[str, Any]]) -> tuple[Any, Any]:
    """Objects shaped like an engine and an endpoint whose counters are the workers' sums
    (gauges too: calls active, transactions held; a flag is set when any worker's is)."""
    if not snapshots:
        return None, None
    stats: dict[str, Any] = {}
    flags = {"draining": False, "overloaded": False}
    layer: dict[str, int] = {}
    ends: dict[str, int] = {}
    responses: dict[int, int] = {}
    udp: dict[str, dict[str, int]] = {}
    tcp = dict.fromkeys(("open_connections", "buffered", *_TCP_COUNTERS), 0)
    for snap in snapshots:
        for key, value in snap.get("tcp", {}).items():
            if key in tcp:
                tcp[key] += value
        for key, value in snap["engine"].items():
            if key in flags:
                flags[key] = flags[key] or bool(value)
            elif isinstance(value, dict):
                merged = stats.setdefault(key, {})
                for outcome, count in value.items():
                    merged[outcome] = merged.get(outcome, 0) + count
            else:
                stats[key] = stats.get(key, 0) + value
        for key, value in snap["layer"].items():
            layer[key] = layer.get(key, 0) + value
        for key, value in snap["endpoint"].items():
            if key == "responses_sent":
                for code, count in value.items():
                    responses[int(code)] = responses.get(int(code), 0) + count
            else:
                ends[key] = ends.get(key, 0) + value
        for row in snap["udp"]:
            total = udp.setdefault(row["listener"], {"received": 0, "sent": 0,
                                                     "refused_source": 0})
            for key in total:
                total[key] += row[key]
    engine = SimpleNamespace(stats=SimpleNamespace(**stats), **flags)
    listeners = []
    for name, counts in udp.items():
        host, _, port = name.rpartition(":")
        listeners.append(SimpleNamespace(local=SimpleNamespace(host=host, port=port),
                                         stats=SimpleNamespace(**counts)))
    tcp_stats = SimpleNamespace(**{key: tcp[key] for key in _TCP_COUNTERS})
    endpoint = SimpleNamespace(layer=SimpleNamespace(stats=SimpleNamespace(**layer)),
                               udp=listeners, responses_sent=responses,
                               tcp=SimpleNamespace(open_connections=tcp["open_connections"],
                                                   buffered=tcp["buffered"], stats=tcp_stats),
                               **ends)
    return engine, endpoint


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


class Metrics:
    """The registry of one process and the objects its collector reads."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.lookup_seconds = Histogram(
            "sipmask_store_lookup_seconds",
            "Latency of the binding lookup (one per new call), seconds.",
            buckets=LOOKUP_BUCKETS,
            registry=self.registry,
        )
        self.engine: B2BUA | None = None
        self.endpoint: SipEndpoint | None = None
        self.worker_stats_dir: Path | None = None
        """With several workers: where each writes its counters (`publish_snapshots`)."""
        self.store: TimedStore | None = None
        self.pool_sizes: dict[str, dict[str, int]] = {}
        self.reloads: dict[str, int] = {"applied": 0, "rejected": 0}
        self.registry.register(SipmaskCollector(self))

    def timed(self, store: SessionStore) -> TimedStore:
        """The store wrapped for the engine, its lookups timed."""
        self.store = TimedStore(store, self.lookup_seconds)
        return self.store

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    async def refresh_pools(self, store: SessionStore, names: Iterable[str]) -> None:
        """Read the sizes of `names` from the store (a pool gone is forgotten)."""
        sizes: dict[str, dict[str, int]] = {}
        for name in names:
            try:
                pool = await store.get_pool(name)
            except StoreError as exc:
                log.debug("pool %s: size not read: %s", name, exc)
                continue
            sizes[name] = {
                "assignable": len(pool.numbers),
                "reserved": len(pool.reserved),
                "draining": len(pool.draining),
            }
            try:
                sizes[name]["in_use"] = await store.pool_usage(name)
            except StoreError as exc:
                log.debug("pool %s: usage not read: %s", name, exc)
        self.pool_sizes = sizes

    async def refresh_pools_forever(
        self, store: SessionStore, names: Callable[[], Iterable[str]]
    ) -> None:
        while True:
            try:
                await self.refresh_pools(store, list(names()))
            except Exception:
                log.exception("pool sizes not read")
            await asyncio.sleep(POOL_REFRESH)


def metrics_app(metrics: Metrics) -> web.Application:
    """`GET /metrics` in the Prometheus text format; no token (scrapers expect none)."""
    from aiohttp import web

    async def scrape(request: web.Request) -> web.Response:
        return web.Response(body=metrics.exposition(), headers={
            "Content-Type": CONTENT_TYPE_LATEST,
        })

    app = web.Application()
    app.router.add_get("/metrics", scrape)
    return app
