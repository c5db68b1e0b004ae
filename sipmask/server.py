"""The composition root: `serve(config)` opens the store, the API, the metrics listener and
the SIP endpoint of one sipmask process and runs them until told to stop.

Theory of operation:

- Start, in order: the store (`[store]`: memory, journaled under `data_dir`, or Redis), the
  pools of the config file applied to it (`set_pool`; the API refuses writes to them), the
  provisioning API (aiohttp on `[api] listen`, with `/readyz`), the Prometheus listener
  (`[metrics] listen` when enabled), then the SIP listeners (`[sip] listen`). A failure at
  any step closes what was opened and raises (a port in use is an `OSError`).
- Run: `ready()` is called once everything listens. `store.expire()` runs every
  `EXPIRE_INTERVAL` seconds; every `POOL_CHECK_INTERVAL` seconds the config's pools are
  re-applied if the store lost them (Redis restarted empty or flushed), and /readyz answers
  503 until they are back.
- Signals (installed only when `serve` runs on the main thread): SIGHUP re-reads the config
  file; an invalid file is logged and changes nothing; a valid one is applied: pools
  (`set_pool`: numbers dropped are drained by the store), the engine (`B2BUA.reload`:
  trunks, ACLs, limits, masking, call policy, for new calls) and the listeners' source
  networks. Listener addresses, the API, the store and the metrics listener are not changed
  by a reload (a change is logged). SIGTERM drains: new INVITEs get 503, the calls in progress
  may go on for `[process] drain_grace` seconds, then the process stops; a second SIGTERM
  stops at once. SIGINT (and `stop`) stops at once.
- Stop: the call engine first (calls still up get a BYE while the listeners can still send
  it), then the SIP listeners, the metrics listener, the API, and the store.
- SIP: the masking B2BUA (`sipmask.b2bua`) is the endpoint's event callback. A request from
  outside every trunk's `inbound` networks is dropped by the listeners (`unknown_source =
  "drop"`; the trunks' outbound IP destinations are let through, their answers are needed)
  or answered 403 (`"reject"`).

Privacy: log lines name methods, statuses and addresses, never a number; `configure_logging`
masks each record by field type (`privacy.masked_record`: ids whole, numbers in every written
form masked) unless `[logging] show_numbers` is true. Metric labels carry no number.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO, cast

from .b2bua import B2BUA
from .config import Config, ConfigError, LoggingConfig, load_config, parse_destination
from .privacy import masked_record
from .sip.events import Address
from .sip.layer import TransactionLayer
from .store import SessionStore, StoreError
from .store.base import missing_pools, restore_pools
from .store.events import EventPublisher
from .transport import runtime
from .transport.endpoint import SipEndpoint, parse_hostport
from .transport.stream import server_context
from .webhooks import WebhookSender

if TYPE_CHECKING:
    from aiohttp import web

    from .b2bua.media import MediaHook
    from .metrics import Metrics
    from .node import Children, WorkerSetup

__all__ = [
    "DRAIN_POLL",
    "EXPIRE_INTERVAL",
    "configure_logging",
    "open_store",
    "outbound_networks",
    "serve",
    "set_source_networks",
    "source_networks",
]

log = logging.getLogger("sipmask.server")

EXPIRE_INTERVAL = 5.0
"""Seconds between two runs of the store's housekeeping (`expire`)."""
DRAIN_POLL = 0.1
"""Seconds between two looks at the calls in progress while draining."""
READY_STORE_BOUND = 2.0
"""Seconds /readyz waits for the store before calling it unavailable."""
POOL_CHECK_INTERVAL = 1.0
"""Seconds between two checks that the store still has the config's pools."""
_EVERYWHERE = ("0.0.0.0/0", "::/0")

Listening = Callable[[str, Address], None]


# --- logging -----------------------------------------------------------------------------------


class _Formatter(logging.Formatter):
    """One line per record, JSON or text, numbers masked unless `show_numbers`."""

    def __init__(self, fmt: str, show_numbers: bool) -> None:
        super().__init__("%(asctime)sZ %(levelname)s %(name)s: %(message)s")
        self.converter = time.gmtime  # UTC
        self.json = fmt == "json"
        self.show_numbers = show_numbers

    def format(self, record: logging.LogRecord) -> str:
        if not self.show_numbers:
            record = masked_record(record)  # by field type: ids whole, numbers masked
        if self.json:
            entry = {
                "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%SZ"),
                "level": record.levelname.lower(),
                "logger": record.name,
                "message": record.getMessage(),
            }
            fields = getattr(record, "fields", None)  # `extra={"fields": {...}}`: ids, outcome
            if isinstance(fields, dict):
                for key, value in fields.items():
                    entry.setdefault(key, value)
            if record.exc_info:
                entry["exception"] = self.formatException(record.exc_info)
            elif record.exc_text:  # masked by masked_record
                entry["exception"] = record.exc_text
            text = json.dumps(entry, ensure_ascii=False)
        else:
            text = super().format(record).replace("\n", "\n    ")  # continuation lines
        return text


def configure_logging(settings: LoggingConfig, stream: TextIO | None = None) -> None:
    """Send every log record to `stream` (stderr), one line each (a traceback indented under
    its line in text format), at `settings.level`, numbers masked."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(_Formatter(settings.format, settings.show_numbers))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.level.upper())


# --- the store ---------------------------------------------------------------------------------


async def open_store(config: Config, *, spool_name: str = "records.spool") -> SessionStore:
    """The store of `[store]`, with the `[[pools]]` of the config applied (numbers and
    reserved). Raises StoreError (a pool number owned by a pool the API created, Redis
    not answering) after closing the store. On Redis, call records wait in
    `data_dir/spool_name` while Redis is down (in memory without a data_dir)."""
    settings = config.store
    store: SessionStore
    if settings.backend == "redis":
        from .store.redis import RedisStore, RedisTarget

        # A single server, a Redis Cluster (redis_url is a seed node) or a Sentinel service.
        target = RedisTarget(
            settings.redis_url, settings.redis_mode, settings.sentinels,
            settings.sentinel_service,
        )
        spool = f"{settings.data_dir}/{spool_name}" if settings.data_dir else None
        redis = RedisStore(target, spool_path=spool)
        try:
            await redis.ping()  # fail at start, not on the first call
        except BaseException:
            await redis.close()
            raise
        store = redis
    else:
        from .store import MemoryStore

        store = MemoryStore(settings.data_dir or None)
    try:
        for pool in config.pools:
            await store.set_pool(pool.name, pool.numbers, pool.reserved)
    except BaseException:
        await store.close()
        raise
    return store


def _raise_if_cancelled() -> None:
    """redis-py (8.x) can swallow a task's cancellation in the middle of a command; a loop
    that goes on regardless would hold the shutdown forever."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def _keep_pools(process: _Process) -> None:
    """Re-apply the config's pools when the store lost them; /readyz is 503 meanwhile."""
    while True:
        _raise_if_cancelled()
        await asyncio.sleep(POOL_CHECK_INTERVAL)
        if process.store is None:
            continue
        try:
            restored = await restore_pools(process.store, process.config.pools)
        except StoreError as exc:
            log.debug("config pools not checked: %s", exc)
            continue
        except Exception:
            log.exception("config pools not checked")
            continue
        if restored:
            log.warning("the store had lost %d config pool(s); re-applied: %s",
                        len(restored), ", ".join(restored))


async def _housekeeping(store: SessionStore) -> None:
    while True:
        _raise_if_cancelled()
        await asyncio.sleep(EXPIRE_INTERVAL)
        try:
            closed = await store.expire(now=time.time())
        except StoreError as exc:
            log.warning("store housekeeping failed: %s", exc)
            continue
        except Exception:
            # A bug here must not end housekeeping for the life of the process (STYLE.md §4).
            log.exception("store housekeeping failed")
            continue
        if closed:
            log.info("expired %d session(s)", closed)


def outbound_networks(config: Config) -> list[str]:
    """The trunks' outbound destinations written as IP literals: the callee side of a call
    answers from them, so the listeners must let them through."""
    found = []
    for trunk in config.trunks:
        for text in trunk.outbound:
            try:
                host = parse_destination(text, trunk.transport).host
                ipaddress.ip_address(host)
            except ValueError:
                continue  # a name: its addresses must be in the trunk's inbound networks
            found.append(host)
    return found


# --- reload, drain, readiness --------------------------------------------------------------


def source_networks(config: Config) -> list[str]:
    """What the listeners let through: everything in "reject" mode (the engine answers 403),
    else the trunks' inbound networks and their outbound IP destinations."""
    if config.sip.unknown_source == "reject":
        return list(_EVERYWHERE)
    return [net for trunk in config.trunks for net in trunk.inbound] + outbound_networks(config)


def set_source_networks(endpoint: SipEndpoint, networks: list[str]) -> None:
    """Replace the listeners' source ACL in place: new TCP connections are judged by the
    endpoint's table, UDP datagrams by each listener (whose cached verdicts are dropped)."""
    endpoint.set_allowed(networks)


# (what a reload cannot change, how to read it): a change is logged, applied at restart.
_AT_RESTART: tuple[tuple[str, Callable[[Config], object]], ...] = (
    ("sip.listen", lambda c: c.sip.listen),
    ("sip.advertise", lambda c: c.sip.advertise),
    ("sip.tls_cert", lambda c: (c.sip.tls_cert, c.sip.tls_key)),
    ("sip.timers", lambda c: c.sip.timers),
    ("sip.max_message_size", lambda c: c.sip.max_message_size),
    ("sip.max_transactions", lambda c: (c.sip.max_transactions, c.sip.overload_status,
                                        c.sip.retry_after, c.sip.max_transactions_per_source,
                                        c.sip.answer_timeout, c.sip.invite_answer_timeout)),
    ("sip.tcp_idle_timeout", lambda c: (c.sip.tcp_idle_timeout, c.sip.max_connections,
                                        c.sip.max_connections_per_source,
                                        c.sip.tcp_message_timeout, c.sip.tcp_max_buffered,
                                        c.sip.tcp_close_timeout)),
    ("api", lambda c: c.api),
    ("metrics", lambda c: c.metrics),
    ("store", lambda c: c.store),
    ("logging.format", lambda c: (c.logging.format, c.logging.show_numbers)),
    ("process.workers", lambda c: c.process.workers),
)


class _Process:
    """What SIGHUP, SIGTERM and /readyz act on, once everything is open."""

    def __init__(self, config: Config, path: str | None, stop: asyncio.Event) -> None:
        self.started = config
        self.config = config
        self.path = path
        self.stop = stop
        self.store: SessionStore | None = None
        self.engine: B2BUA | None = None
        self.endpoint: SipEndpoint | None = None
        self.metrics: Metrics | None = None
        self.listening = False
        self.draining = False
        self._reloading: asyncio.Task[None] | None = None
        self._reload_again = False
        self._drain: asyncio.Task[None] | None = None
        self.children: Children | None = None

    # --- SIGHUP ---

    def request_reload(self) -> None:
        """SIGHUP: reload now, or once more after the reload in progress."""
        if self._reloading is not None and not self._reloading.done():
            self._reload_again = True
            return
        self._reloading = asyncio.ensure_future(self._reload_loop())

    async def _reload_loop(self) -> None:
        while True:
            self._reload_again = False
            try:
                await self.reload()
            except Exception:
                log.exception("reload failed")
            if not self._reload_again:
                return

    def _count(self, result: str) -> None:
        if self.metrics is not None:
            self.metrics.reloads[result] = self.metrics.reloads.get(result, 0) + 1

    async def reload(self) -> bool:
        """Re-read the file; apply pools, trunks, ACLs, limits, masking and call policy.
        An invalid file changes nothing. Returns whether the new file was applied."""
        if self.path is None:
            log.warning("reload: running on the embedded default, no file to re-read")
            return False
        supervising = self.children is not None  # pools only: SIP is in the workers
        if self.store is None or (not supervising and (self.engine is None
                                                       or self.endpoint is None)):
            log.warning("reload: not started yet; ignored")
            return False
        try:
            new = load_config(self.path)
        except ConfigError as exc:
            log.error("reload rejected, the running config is kept: %s: %d error(s)",
                      self.path, len(exc.errors))
            for line in exc.errors:
                log.error("reload rejected: %s", line)
            self._count("rejected")
            return False
        except OSError as exc:
            log.error("reload rejected, the running config is kept: %s: cannot read: %s",
                      self.path, exc.strerror or exc)
            self._count("rejected")
            return False
        try:
            for pool in new.pools:
                await self.store.set_pool(pool.name, pool.numbers, pool.reserved)
        except StoreError as exc:
            # Pools applied before the failing one stay applied; nothing else changes.
            log.error("reload rejected, trunks and policy kept: pools: %s", exc)
            self._count("rejected")
            return False
        for key, read in _AT_RESTART:
            if read(new) != read(self.started):
                log.warning("reload: %s changed; it applies at the next restart", key)
        if self.engine is not None and self.endpoint is not None:
            self.engine.reload(new)
            set_source_networks(self.endpoint, source_networks(new))
        logging.getLogger().setLevel(new.logging.level.upper())
        self.config = new
        self._count("applied")
        if self.metrics is not None:
            await self.metrics.refresh_pools(self.store, [p.name for p in new.pools])
        log.info("reloaded %s: %s", self.path, new.summary())
        return True

    # --- SIGTERM ---

    def request_drain(self) -> None:
        """SIGTERM: drain, then stop; a second SIGTERM stops at once."""
        if self._drain is not None:
            log.info("second SIGTERM: stopping now")
            self.stop.set()
            return
        self._drain = asyncio.ensure_future(self.drain())

    async def drain(self) -> None:
        """New INVITEs get 503; wait for the calls in progress to end, up to
        `[process] drain_grace` seconds; then stop (what is left gets a BYE)."""
        self.draining = True
        engine = self.engine
        if engine is None:  # SIGTERM during start-up: nothing to drain
            self.stop.set()
            return
        grace = self.config.process.drain_grace
        engine.drain()
        log.info("draining: %d call(s) in progress, up to %.0f s", len(engine.calls), grace)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while engine.calls and loop.time() < deadline and not self.stop.is_set():
            await asyncio.sleep(DRAIN_POLL)
        if engine.calls:
            log.info("drain grace over: %d call(s) left, ending them", len(engine.calls))
        else:
            log.info("drained: no call in progress")
        self.stop.set()

    async def close(self) -> None:
        for task in (self._reloading, self._drain):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    # --- /readyz ---

    async def readyz(self, request: web.Request) -> web.Response:
        """200 when the store answers and the SIP listeners are open; 503 otherwise (also
        while draining, so a load balancer stops sending)."""
        from aiohttp import web

        reason = None
        if self.draining or self.stop.is_set():
            reason = "draining"
        elif not self.listening:
            reason = "starting"
        elif self.store is not None:
            try:
                missing = await asyncio.wait_for(
                    missing_pools(self.store, [p.name for p in self.config.pools]),
                    READY_STORE_BOUND,
                )
            except (StoreError, asyncio.TimeoutError, OSError):
                reason = "store unavailable"
            else:
                if missing:  # the store lost its data: not ready until they are back
                    reason = "restoring pools"
        if reason is not None:
            return web.json_response({"status": reason}, status=503,
                                     headers={"Retry-After": "5"})
        return web.json_response({"status": "ok"})


# --- serve -------------------------------------------------------------------------------------


async def serve(
    config: Config,
    *,
    config_path: str | None = None,
    ready: Callable[[], None] | None = None,
    stop: asyncio.Event | None = None,
    listening: Listening | None = None,
    worker: WorkerSetup | None = None,
    children: Children | None = None,
) -> None:
    """Run one sipmask process on `config` until `stop` is set, SIGINT arrives, or SIGTERM
    has drained the calls.

    With several workers (`supervisor.py`) the same function plays two roles: `worker` runs
    SIP only (the call engine on the node's shared sockets, Call-IDs routed between workers);
    `children` is the supervising process, which runs the API, metrics and housekeeping, no
    SIP, and passes SIGTERM, SIGHUP and SIGINT on to its workers.

    Args:
        config: a checked configuration (`load_config` / `default_config`).
        config_path: the file `config` came from: SIGHUP re-reads it (None: the embedded
            default, SIGHUP only logs).
        ready: called once the store is open and the API and every SIP listener listen.
        stop: set it to stop at once (a fresh event when None).
        listening: called with (`udp`/`tcp`/`tls`/`api`/`metrics`, bound address) for each
            listener, before `ready` (port 0 in the config becomes the port picked).

    Raises:
        OSError: a listener could not bind. StoreError: the store could not be opened or
        the config's pools applied. Everything opened is closed first.
    """
    from .api import make_app

    stop = stop if stop is not None else asyncio.Event()
    loop = asyncio.get_running_loop()
    process = _Process(config, config_path, stop)
    process.children = children

    signals: list[signal.Signals] = []
    if threading.current_thread() is threading.main_thread():
        handlers: dict[signal.Signals, Callable[[], None]] = {
            signal.SIGTERM: process.request_drain,
            signal.SIGINT: stop.set,
            signal.SIGHUP: process.request_reload,
        }
        if children is not None:

            def interrupt() -> None:
                children.forward(signal.SIGINT)
                stop.set()

            def hang_up() -> None:
                children.forward(signal.SIGHUP)
                process.request_reload()

            handlers = {
                signal.SIGTERM: lambda: children.forward(signal.SIGTERM),
                signal.SIGINT: interrupt,
                signal.SIGHUP: hang_up,
            }
        for signum, handler in handlers.items():
            with contextlib.suppress(NotImplementedError, RuntimeError, AttributeError):
                loop.add_signal_handler(signum, handler)
                signals.append(signum)

    async with contextlib.AsyncExitStack() as stack:
        for signum in signals:
            stack.callback(loop.remove_signal_handler, signum)
        stack.push_async_callback(process.close)

        store = await open_store(
            config,
            spool_name=f"records-{worker.index}.spool" if worker is not None
            else "records.spool",
        )
        stack.push_async_callback(store.close)
        process.store = store
        log.info(
            "store %s open, %d pool(s) from the config", config.store.backend, len(config.pools)
        )

        hooks = WebhookSender(config.webhooks)
        await hooks.start()
        stack.push_async_callback(hooks.close)
        events = EventPublisher.for_store(
            config.store.backend,
            redis_url=config.store.redis_url,
            redis_mode=config.store.redis_mode,
            sentinels=config.store.sentinels,
            sentinel_service=config.store.sentinel_service,
            data_dir=config.store.data_dir or None,
            subscribers=[hooks.submit] if config.webhooks.url else [],
        )
        await events.start()
        stack.push_async_callback(events.close)  # flushed before the store closes

        metrics = None
        engine_store = store
        if worker is None:  # the API, metrics and housekeeping run once per node
            app = make_app(store, tokens=config.api.tokens,
                           readonly_pools=config.readonly_pools, events=events,
                           max_body_bytes=config.api.max_body_bytes,
                           max_json_depth=config.api.max_json_depth,
                           accepting=lambda: not process.draining)
            app.router.add_get("/readyz", process.readyz, allow_head=False)
            await _start_site(stack, app, config.api.listen, "api", listening, access_log=True)
            if config.metrics.enabled:
                from .metrics import Metrics, metrics_app

                metrics = process.metrics = Metrics()
                engine_store = cast(SessionStore, metrics.timed(store))
                await _start_site(stack, metrics_app(metrics), config.metrics.listen, "metrics",
                                  listening, access_log=False)

        engine = None
        if children is None:
            engine, endpoint = await _start_sip(stack, config, engine_store, events, hooks,
                                                worker, listening)
            process.engine, process.endpoint = engine, endpoint
            if metrics is not None:
                metrics.engine, metrics.endpoint = engine, endpoint
            engine.start_probing()
            engine.start_overload_monitor()

        background = [loop.create_task(runtime.gc_pacer())]
        if worker is None:
            background.append(loop.create_task(_housekeeping(store)))
            background.append(loop.create_task(_keep_pools(process)))
        if metrics is not None:
            background.append(loop.create_task(metrics.refresh_pools_forever(
                store, lambda: [pool.name for pool in process.config.pools]
            )))
        if children is not None:
            background.append(loop.create_task(children.supervise(stop)))
            if metrics is not None:
                metrics.worker_stats_dir = children.stats_dir
        if worker is not None and engine is not None and process.endpoint is not None:
            from .metrics import publish_snapshots

            background.append(loop.create_task(
                publish_snapshots(engine, process.endpoint, worker.stats_file)))

        async def _cancel_background() -> None:
            for task in background:
                task.cancel()
            for task in background:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

        stack.push_async_callback(_cancel_background)
        stack.push_async_callback(process.close)  # first on the way out: no reload mid-close

        if children is not None:
            await children.wait_ready()
        runtime.tune_gc()
        process.listening = True
        if ready is not None:
            ready()  # `sipmask run` prints it: one line per start-up event, not two
        else:
            log.info("ready")
        if worker is not None:
            worker.report_ready()
        await stop.wait()
        process.listening = False
        if engine is not None:
            stats = engine.stats
            log.info(
                "stopping: %d call(s) started, %d answered, %d active, %d rejected",
                stats.calls_started,
                stats.calls_answered,
                stats.calls_active,
                stats.calls_rejected,
            )
    log.info("stopped")


async def _start_sip(
    stack: contextlib.AsyncExitStack,
    config: Config,
    store: SessionStore,
    events: EventPublisher,
    hooks: WebhookSender,
    worker: WorkerSetup | None,
    listening: Listening | None,
) -> tuple[B2BUA, SipEndpoint]:
    """The call engine and the SIP endpoint with its listeners (on the node's shared sockets
    for a worker)."""
    sip = config.sip
    router = worker.router() if worker is not None else None
    media = await _start_media(stack, config)
    engine = B2BUA(config, store, events=events, hooks=hooks, media=media,
                   call_ids=router.mint if router is not None else None)
    layer = TransactionLayer(
        sip.timers,
        max_transactions=sip.max_transactions,
        overload_status=sip.overload_status,
        overload_retry_after=sip.retry_after or None,
        max_transactions_per_source=sip.max_transactions_per_source,
        answer_timeout=sip.answer_timeout,
        invite_answer_timeout=sip.invite_answer_timeout,
    )
    endpoint = SipEndpoint(
        engine.handle,
        layer=layer,
        allowed=source_networks(config),
        max_datagram=sip.max_message_size,
        max_message=sip.max_message_size,
        idle_timeout=sip.tcp_idle_timeout,
        max_connections=sip.max_connections,
        max_connections_per_source=sip.max_connections_per_source,
        message_timeout=sip.tcp_message_timeout,
        max_buffered=sip.tcp_max_buffered,
        close_timeout=sip.tcp_close_timeout,
        router=router,
    )
    engine.attach(endpoint)
    # Closed in reverse: the engine first (calls still up get their BYE while the
    # listeners can still send it), then the listeners.
    stack.push_async_callback(endpoint.close)
    stack.push_async_callback(engine.close)
    if not any(trunk.inbound for trunk in config.trunks):
        log.warning(
            "no trunk has inbound networks: every SIP request will be %s",
            "rejected" if sip.unknown_source == "reject" else "dropped",
        )
    for index, spec in enumerate(sip.listen_specs()):
        context = None
        if spec.transport == "tls":
            assert sip.tls_cert is not None
            context = server_context(sip.tls_cert, sip.tls_key)
        sock = worker.sockets[index] if worker is not None else None
        bound = await endpoint.listen(spec, ssl_context=context, sock=sock)
        if worker is None:  # the supervisor announced the shared sockets already
            if listening is not None:  # printed by `sipmask run`: not logged a second time
                listening(spec.transport, bound)
            else:
                log.info("SIP listening on %s:%s:%d", spec.transport, bound.host, bound.port)
    endpoint.start_mailbox()
    return engine, endpoint


async def _start_media(stack: contextlib.AsyncExitStack, config: Config) -> MediaHook | None:
    """The media hook of `[media]`: rtpengine anchoring, or None (media flows directly).
    Closed after the engine (pushed first), so the engine's last calls still get deleted."""
    media = config.media
    if media.backend != "rtpengine":
        return None
    from .b2bua.anchoring import Anchoring
    from .media.ng import NgClient

    instances = []
    for instance in media.rtpengine:
        address = parse_hostport(instance.address)
        instances.append((address.host, address.port, instance.weight))
    client = NgClient(instances, timeout=media.timeout_ms / 1000, retries=media.retries,
                      ping_interval=media.ping_interval)
    await client.start()
    stack.push_async_callback(client.close)
    log.info("media anchored through %d rtpengine instance(s), on failure: %s",
             len(instances), media.on_failure)
    return Anchoring(client, media)


async def _start_site(
    stack: contextlib.AsyncExitStack,
    app: web.Application,
    listen: str,
    kind: str,
    listening: Listening | None,
    *,
    access_log: bool,
) -> None:
    """Serve `app` on `listen` (host:port); report each bound address as `kind`."""
    from aiohttp import web

    from .api import MaskingAccessLogger

    runner = web.AppRunner(
        app,
        access_log_class=MaskingAccessLogger,
        access_log=logging.getLogger(f"sipmask.{kind}.access") if access_log else None,
        handle_signals=False,
    )
    await runner.setup()
    stack.push_async_callback(runner.cleanup)
    address = parse_hostport(listen)
    site = web.TCPSite(runner, address.host, address.port)
    await site.start()
    for sockname in runner.addresses:
        bound = Address(str(sockname[0]), int(sockname[1]))
        if listening is not None:  # printed by `sipmask run`: not logged a second time
            listening(kind, bound)
        else:
            log.info("%s listening on http://%s:%d", kind.upper() if kind == "api" else kind,
                     bound.host, bound.port)
