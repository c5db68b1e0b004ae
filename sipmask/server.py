"""The composition root: `serve(config)` opens the store, the API and the SIP endpoint of one
sipmask process and runs them until told to stop.

Theory of operation:

- Start, in order: the store (`[store]`: memory, journaled under `data_dir`, or Redis), the
  pools of the config file applied to it (`set_pool`; the API refuses writes to them), the
  provisioning API (aiohttp on `[api] listen`), then the SIP listeners (`[sip] listen`). A
  failure at any step closes what was opened and raises (a port in use is an `OSError`).
- Run: `ready()` is called once everything listens. `store.expire()` runs every
  `EXPIRE_INTERVAL` seconds. The process stops when `stop` is set or on SIGTERM/SIGINT
  (handlers are installed only when `serve` runs on the main thread).
- Stop: SIP listeners first (no new traffic), then the call engine (calls still up get a
  BYE), then the API, then the store. Draining calls on SIGTERM is issue 7.
- SIP: the masking B2BUA (`sipmask.b2bua`) is the endpoint's event callback. A request from
  outside every trunk's `inbound` networks is dropped by the listeners (`unknown_source =
  "drop"`; the trunks' outbound IP destinations are let through, their answers are needed)
  or answered 403 (`"reject"`).

Privacy: log lines name methods, statuses and addresses, never a number; `configure_logging`
masks every number-like run in whatever reaches the log (`mask_numbers_in`) unless
`[logging] show_numbers` is true.
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
from typing import TextIO

from .b2bua import B2BUA
from .config import Config, LoggingConfig, parse_destination
from .privacy import mask_numbers_in
from .sip.events import Address
from .sip.layer import TransactionLayer
from .store import SessionStore, StoreError
from .transport.endpoint import SipEndpoint, parse_hostport
from .transport.stream import server_context

__all__ = [
    "EXPIRE_INTERVAL",
    "outbound_networks",
    "configure_logging",
    "open_store",
    "serve",
]

log = logging.getLogger("sipmask.server")

"""Methods served (the Allow of 405/501 and of the OPTIONS answer)."""
EXPIRE_INTERVAL = 5.0
"""Seconds between two runs of the store's housekeeping (`expire`)."""
REFUSAL_LOG_INTERVAL = 60.0
"""Seconds between two log lines about refused INVITEs."""
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
        if self.json:
            entry = {
                "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%SZ"),
                "level": record.levelname.lower(),
                "logger": record.name,
                "message": record.getMessage(),
            }
            if record.exc_info:
                entry["exception"] = self.formatException(record.exc_info)
            text = json.dumps(entry, ensure_ascii=False)
        else:
            text = super().format(record).replace("\n", "\n    ")  # continuation lines
        return text if self.show_numbers else mask_numbers_in(text)


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


async def open_store(config: Config) -> SessionStore:
    """The store of `[store]`, with the `[[pools]]` of the config applied (numbers and
    reserved). Raises StoreError (a pool number owned by a pool the API created, Redis
    not answering) after closing the store."""
    settings = config.store
    store: SessionStore
    if settings.backend == "redis":
        from .store.redis import RedisStore

        redis = RedisStore(settings.redis_url)
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


async def _housekeeping(store: SessionStore) -> None:
    while True:
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


# --- serve -------------------------------------------------------------------------------------


async def serve(
    config: Config,
    *,
    ready: Callable[[], None] | None = None,
    stop: asyncio.Event | None = None,
    listening: Listening | None = None,
) -> None:
    """Run one sipmask process on `config` until `stop` is set or SIGTERM/SIGINT arrives.

    Args:
        config: a checked configuration (`load_config` / `default_config`).
        ready: called once the store is open and the API and every SIP listener listen.
        stop: set it to stop (a fresh event when None).
        listening: called with (`udp`/`tcp`/`tls`/`api`, bound address) for each listener,
            before `ready` (port 0 in the config becomes the port picked).

    Raises:
        OSError: a listener could not bind. StoreError: the store could not be opened or
        the config's pools applied. Everything opened is closed first.
    """
    from aiohttp import web

    from .api import MaskingAccessLogger, make_app

    stop = stop if stop is not None else asyncio.Event()
    loop = asyncio.get_running_loop()
    sip = config.sip
    trunk_networks = [net for trunk in config.trunks for net in trunk.inbound]
    reject = sip.unknown_source == "reject"

    signals: list[signal.Signals] = []
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, stop.set)
                signals.append(signum)

    async with contextlib.AsyncExitStack() as stack:
        for signum in signals:
            stack.callback(loop.remove_signal_handler, signum)

        store = await open_store(config)
        stack.push_async_callback(store.close)
        log.info(
            "store %s open, %d pool(s) from the config", config.store.backend, len(config.pools)
        )

        app = make_app(store, tokens=config.api.tokens, readonly_pools=config.readonly_pools)
        runner = web.AppRunner(
            app,
            access_log_class=MaskingAccessLogger,
            access_log=logging.getLogger("sipmask.api.access"),
            handle_signals=False,
        )
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        api = parse_hostport(config.api.listen)
        site = web.TCPSite(runner, api.host, api.port)
        await site.start()
        for sockname in runner.addresses:
            bound = Address(str(sockname[0]), int(sockname[1]))
            log.info("API listening on http://%s:%d", bound.host, bound.port)
            if listening is not None:
                listening("api", bound)

        engine = B2BUA(config, store)
        stack.push_async_callback(engine.close)
        layer = TransactionLayer(
            sip.timers,
            max_transactions=sip.max_transactions,
            overload_status=sip.overload_status,
            overload_retry_after=sip.retry_after or None,
        )
        endpoint = SipEndpoint(
            engine.handle,
            layer=layer,
            allowed=_EVERYWHERE if reject else trunk_networks + outbound_networks(config),
            max_datagram=sip.max_message_size,
            max_message=sip.max_message_size,
            idle_timeout=sip.tcp_idle_timeout,
        )
        engine.attach(endpoint)
        stack.push_async_callback(endpoint.close)  # closed first: no new SIP traffic
        if not trunk_networks:
            log.warning(
                "no trunk has inbound networks: every SIP request will be %s",
                "rejected" if reject else "dropped",
            )
        for spec in sip.listen_specs():
            context = None
            if spec.transport == "tls":
                assert sip.tls_cert is not None
                context = server_context(sip.tls_cert, sip.tls_key)
            bound = await endpoint.listen(spec, ssl_context=context)
            log.info("SIP listening on %s:%s:%d", spec.transport, bound.host, bound.port)
            if listening is not None:
                listening(spec.transport, bound)

        engine.start_probing()
        housekeeping = loop.create_task(_housekeeping(store))

        async def _cancel_housekeeping() -> None:
            housekeeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await housekeeping

        stack.push_async_callback(_cancel_housekeeping)

        log.info("ready")
        if ready is not None:
            ready()
        await stop.wait()
        stats = engine.stats
        log.info(
            "stopping: %d call(s) started, %d answered, %d active, %d rejected",
            stats.calls_started,
            stats.calls_answered,
            stats.calls_active,
            stats.calls_rejected,
        )
    log.info("stopped")
