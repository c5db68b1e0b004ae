"""Webhooks to the platform (issue 4): events POSTed in the background, and the two synchronous
hooks a call may ask.

- Events: `WebhookSender.submit(event)` is an `EventPublisher` subscriber. It only enqueues
  (bounded; the oldest event is dropped when full); workers POST each event as JSON to
  `[webhooks] url`, retried with exponential backoff on a 5xx, 429, timeout or connection
  error, a bounded number of times. The call path never waits for them.
- `intercept(session_id, caller, callee) -> bool`: may the call of an open session go ahead?
- `out_of_session(dialled, caller) -> Decision`: a call with no binding: `Reject`,
  `Fallback(uri)` or `CreateSession(...)`.
  Both wait at most `timeout_ms`; on any failure they answer the configured default.

Every request is signed: `X-Sipmask-Signature: sha256=<hex HMAC-SHA256(secret, body)>`, with
`X-Sipmask-Timestamp` (epoch seconds; the body carries the same `ts`, so it is signed too).
Receivers check it with `verify_signature`. Real numbers are sent (it is the platform's data)
but never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import msgspec

from .b2bua.hooks import CreateSession, Decision, Fallback, Reject
from .config import WebhooksConfig
from .store.events import Event

__all__ = [
    "CreateSession",
    "Decision",
    "Fallback",
    "Reject",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "WebhookSender",
    "WebhookStats",
    "sign",
    "verify_signature",
]

logger = logging.getLogger("sipmask.webhooks")

SIGNATURE_HEADER = "X-Sipmask-Signature"
TIMESTAMP_HEADER = "X-Sipmask-Timestamp"
EVENT_HEADER = "X-Sipmask-Event"
DELIVERY_HEADER = "X-Sipmask-Delivery"
MAX_BACKOFF = 30.0
_MAX_ANSWER = 64 * 1024  # bytes of a hook's answer read at most


def sign(secret: str, body: bytes) -> str:
    """The signature header value of `body`."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(secret: str, body: bytes, header: str | None) -> bool:
    """Whether `header` is the signature of `body` (constant-time comparison)."""
    return header is not None and hmac.compare_digest(sign(secret, body), header)


# --- out-of-session decisions ------------------------------------------------------------------


_decision_decoder = msgspec.json.Decoder(Decision)


class _InterceptAnswer(msgspec.Struct, frozen=True):
    allow: bool


_intercept_decoder = msgspec.json.Decoder(_InterceptAnswer)


# --- the sender --------------------------------------------------------------------------------


@dataclass
class WebhookStats:
    """Counters (for metrics and tests)."""

    delivered: int = 0
    failed: int = 0
    """Events given up on: attempts exhausted, or a 4xx answer."""
    retried: int = 0
    dropped_full: int = 0
    hook_failures: int = 0
    """Intercept/out-of-session calls that fell back to the default."""


class WebhookSender:
    """Event delivery and the synchronous hooks, for one `[webhooks]` config.

    Args:
        config: the `[webhooks]` section.
        maxsize: events held before the oldest are dropped.
        workers: concurrent event deliveries (events may arrive out of order; each has
            `id` and `ts`).
        backoff: first retry delay in seconds, doubled each attempt, capped at MAX_BACKOFF.
        clock: epoch seconds for the timestamp header.
    """

    def __init__(
        self,
        config: WebhooksConfig,
        *,
        maxsize: int = 10_000,
        workers: int = 4,
        backoff: float = 0.5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.maxsize = maxsize
        self.workers = workers
        self.backoff = backoff
        self.stats = WebhookStats()
        self._clock = clock
        self._queue: deque[Event] = deque()
        self._wake: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None
        self._busy = 0  # events being delivered
        self._closing = False

    @property
    def intercept_enabled(self) -> bool:
        return self.config.intercept_url is not None

    @property
    def out_of_session_enabled(self) -> bool:
        return self.config.out_of_session_url is not None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers={"Content-Type": "application/json", "User-Agent": "sipmask"},
            )
        return self._session

    def _headers(self, body: bytes, ts: float) -> dict[str, str]:
        return {
            SIGNATURE_HEADER: sign(self.config.secret, body),
            TIMESTAMP_HEADER: str(int(ts)),
        }

    # -- events -----------------------------------------------------------------------------

    def submit(self, event: Event) -> None:
        """Queue an event for delivery (an EventPublisher subscriber): never blocks."""
        if self.config.url is None or self._closing:
            return
        if len(self._queue) >= self.maxsize:
            self._queue.popleft()
            self.stats.dropped_full += 1
        self._queue.append(event)
        if self._wake is not None:
            self._wake.set()

    async def start(self) -> None:
        """Start the delivery workers (in the running loop)."""
        if self._tasks or self.config.url is None:
            return
        self._wake = asyncio.Event()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._worker(), name=f"sipmask-webhook-{i}")
            for i in range(self.workers)
        ]

    async def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued for up to `timeout` seconds, then stop."""
        self._closing = True
        if self._tasks:
            assert self._wake is not None
            self._wake.set()
            _, pending = await asyncio.wait(self._tasks, timeout=timeout)
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self._tasks = []
        if self._queue:
            logger.warning("%d webhook events not delivered at close", len(self._queue))
        if self._session is not None:
            await self._session.close()

    async def _worker(self) -> None:
        assert self._wake is not None
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wake.clear()  # no await since the check: no wake-up is lost
                await self._wake.wait()
                continue
            event = self._queue.popleft()
            self._busy += 1
            try:
                await self._deliver(event)
            finally:
                self._busy -= 1

    async def _deliver(self, event: Event) -> bool:
        """POST one event, retrying; True when the receiver answered 2xx."""
        assert self.config.url is not None
        body = msgspec.json.encode(event)
        timeout = aiohttp.ClientTimeout(total=self.config.event_timeout_ms / 1000)
        delay = self.backoff
        attempts = 1 + self.config.retries
        for attempt in range(attempts):
            headers = self._headers(body, self._clock())
            headers[EVENT_HEADER] = event.kind
            headers[DELIVERY_HEADER] = event.id
            retry = True
            problem = ""
            try:
                async with self._client().post(
                    self.config.url, data=body, headers=headers, timeout=timeout
                ) as resp:
                    if 200 <= resp.status < 300:
                        self.stats.delivered += 1
                        return True
                    problem = f"HTTP {resp.status}"
                    retry = resp.status >= 500 or resp.status in (408, 429)
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                problem = type(exc).__name__
            if not retry or attempt + 1 == attempts:
                self.stats.failed += 1
                logger.warning("webhook %s (%s) not delivered after %d attempt(s): %s",
                               event.kind, event.id, attempt + 1, problem)
                return False
            self.stats.retried += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF)
        return False  # pragma: no cover (the loop returns)

    # -- synchronous hooks ------------------------------------------------------------------

    async def _ask(self, url: str, payload: dict[str, Any]) -> bytes | None:
        """POST a signed hook request; the answer's body on a 2xx within the timeout, else
        None."""
        ts = self._clock()
        body = msgspec.json.encode({"ts": ts, **payload})
        timeout = aiohttp.ClientTimeout(total=self.config.timeout_ms / 1000)
        try:
            async with asyncio.timeout(self.config.timeout_ms / 1000):
                async with self._client().post(
                    url, data=body, headers=self._headers(body, ts), timeout=timeout
                ) as resp:
                    if not 200 <= resp.status < 300:
                        logger.warning("hook %s answered HTTP %d", payload["hook"], resp.status)
                        return None
                    return await resp.content.read(_MAX_ANSWER)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            logger.warning("hook %s failed: %s", payload["hook"], type(exc).__name__)
            return None

    async def intercept(self, session_id: str, caller_key: str, callee_key: str) -> bool:
        """Whether the call of `caller_key` to `callee_key` in an open session may proceed.
        The hook answers `{"allow": true|false}`; no hook configured: True."""
        url = self.config.intercept_url
        if url is None:
            return True
        answer = await self._ask(url, {
            "hook": "intercept", "session_id": session_id, "caller": caller_key,
            "callee": callee_key,
        })
        if answer is not None:
            try:
                return _intercept_decoder.decode(answer).allow
            except msgspec.DecodeError:
                logger.warning("hook intercept: answer not {\"allow\": bool}")
        self.stats.hook_failures += 1
        return self.config.intercept_on_failure == "allow"

    def _default_decision(self) -> Decision:
        fallback = self.config.out_of_session_on_failure
        return Reject() if fallback == "reject" else Fallback(fallback)

    async def out_of_session(self, dialled: str, caller_key: str) -> Decision:
        """What to do with a call to `dialled` from `caller_key` that has no binding. The
        hook answers `{"action": "reject"}`, `{"action": "fallback", "uri": "sip:..."}` or
        `{"action": "create-session", "participants": [...], ...}`; no hook configured: the
        configured default."""
        url = self.config.out_of_session_url
        if url is None:
            return self._default_decision()
        answer = await self._ask(url, {
            "hook": "out_of_session", "dialled": dialled, "caller": caller_key,
        })
        if answer is not None:
            try:
                decision: Decision = _decision_decoder.decode(answer)
                return decision
            except msgspec.DecodeError as exc:
                # The message may echo a number from the answer: log its kind only.
                logger.warning("hook out_of_session: answer not a decision (%s)",
                               type(exc).__name__)
        self.stats.hook_failures += 1
        return self._default_decision()
