"""The asyncio shell around the sans-IO call logic (`engine.CallEngine`).

The call logic is fed events with `now` and appends actions (`actions.py`) to its outbox;
this module is where they happen. `handle` (the endpoint's event callback) sets `now`,
dispatches the event and drains the outbox: sends and CANCELs go to the endpoint, and what
needs waiting for runs in a task here: the binding lookup per new call (with the platform's
hooks and DNS), connections to open before a send, the media hook, record writes. Their
results come back into the logic through `_feed`, which drains again. The call timers are a
deadline heap in the logic (`timers.py`); this shell keeps the one loop timer armed for its
earliest deadline. Trunk probes (`probing.py`), out-of-dialog MESSAGE (`chat.py`) and the
lag watch (`overload.py`) are asyncio end to end and live beside it.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable, Coroutine
from typing import Any

import msgspec

from .._core import Request
from ..errors import LocalProtocolError, SipError
from ..sip.events import RequestReceived, SipEvent, TransactionKey
from ..store import SessionStore, StoreError
from ..store.events import EventPublisher
from ..store.model import Binding, Interaction
from ..transport.endpoint import SipEndpoint, format_hostport
from ..transport.stream import client_context
from .actions import (
    Abandon,
    Action,
    CancelInvite,
    EndMedia,
    GiveUpInvite,
    Publish,
    PumpMedia,
    RelayMessage,
    RouteCall,
    SaveRecords,
    SendRequest,
    SendResponse,
)
from .call import Call, Leg
from .chat import Chat
from .core import log
from .dns import SipResolver
from .engine import CallEngine
from .hooks import CreateSession, Fallback, PlatformHooks
from .media import MediaHook, MediaRefused, media_context
from .overload import OverloadWatch
from .probing import TrunkProbing
from .routing import TrunkState
from .settings import B2buaSettings
from .table import CallEvent

__all__ = ["B2BUA"]


class B2BUA(CallEngine, Chat, TrunkProbing, OverloadWatch):
    """The call engine on an endpoint. Use `handle` as the endpoint's event callback.

    Args: as `CallEngine`, and
        monotonic: the clock of call timers (by default the loop's); flow tests give one
            they move forward instead of sleeping.
    """

    def __init__(
        self,
        config: B2buaSettings,
        store: SessionStore,
        *,
        clock: Callable[[], float] = time.time,
        media: MediaHook | None = None,
        call_ids: Callable[[], str] | None = None,
        events: EventPublisher | None = None,
        hooks: PlatformHooks | None = None,
        resolver: SipResolver | None = None,
        monotonic: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(config, store, clock=clock, media=media, call_ids=call_ids,
                         events=events, hooks=hooks, resolver=resolver)
        self.monotonic = monotonic
        self.endpoint: SipEndpoint | None = None
        self._probes: list[asyncio.Future[None]] = []
        self._lag_watch: asyncio.Future[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._tls_client: ssl.SSLContext | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._timer_deadline: float | None = None
        """The call-timer deadline the loop timer is armed for."""
        self._draining_actions = False

    @property
    def _ep(self) -> SipEndpoint:
        assert self.endpoint is not None
        return self.endpoint

    def _use(self, endpoint: SipEndpoint) -> None:
        self.endpoint = endpoint
        self.local_address = endpoint.local_address

    def attach(self, endpoint: SipEndpoint) -> None:
        """Use `endpoint` to send (before any event arrives: probes start at once) and install
        the source policy on its layer: in "drop" mode a request from outside every trunk's
        inbound networks (a trunk's outbound address, which the listeners let through for its
        answers) is dropped before the layer answers anything."""
        self._use(endpoint)
        if not self.reject_unknown:
            endpoint.layer.request_filter = self.accepts_request
        # A Via maddr is honoured only when it names the same trunk (RFC 3261 §18.2.2).
        endpoint.layer.maddr_allowed = lambda target, source: (
            self.router.trunk_for(target) is self.router.trunk_for(source) is not None)

    def reload(self, config: B2buaSettings) -> None:
        for probe in self._probes:
            probe.cancel()
        self._probes.clear()
        super().reload(config)
        self._tls_client = None  # tls_ca may have changed
        if self.endpoint is not None:
            self.endpoint.layer.request_filter = (
                None if self.reject_unknown else self.accepts_request
            )
            self.start_probing()

    async def close(self) -> None:
        """End every call (BYE on answered legs) and wait for record writes."""
        for probe in self._probes:
            probe.cancel()
        if self._lag_watch is not None:
            self._lag_watch.cancel()
        self._enter()
        for call in list(self.calls):
            self.call_event(call, CallEvent.SHUTDOWN)
        self._flush_records()
        self._drain()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = self._timer_at = self._timer_deadline = None
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2.0)

    # --- events in, actions out ------------------------------------------------------------

    def handle(self, endpoint: SipEndpoint, event: SipEvent) -> None:
        if endpoint is not self.endpoint:
            self._use(endpoint)
        self.now = self.monotonic() if self.monotonic is not None else endpoint.loop.time()
        self.dispatch(event)
        self._drain()

    def time_now(self) -> float:
        """The call timers' clock: `monotonic` when given (flow tests move it), else the
        loop's."""
        if self.monotonic is not None:
            return self.monotonic()
        return asyncio.get_running_loop().time()

    def _enter(self) -> None:
        self.now = self.time_now()

    def _feed(self, logic: Callable[..., object], *args: Any) -> None:
        """Run a piece of call logic with what a task learnt, then perform its actions."""
        self._enter()
        logic(*args)
        self._drain()

    def _tell(self, call: Call, event: CallEvent, *args: Any) -> None:
        """Feed the call an event a task learnt (`table.py`), then perform its actions."""
        self._feed(self.call_event, call, event, *args)

    def _drain(self) -> None:
        """Perform the outbox in order. Re-entrant calls (an endpoint event delivered while
        a send services the layer) return at once: the outer loop picks up their actions."""
        if self._draining_actions:
            return
        self._draining_actions = True
        actions = self.actions
        try:
            i = 0
            while i < len(actions):
                try:
                    self._perform(actions[i])
                except Exception:  # one call's bug must not stop the others' actions
                    log.exception("action %s failed", type(actions[i]).__name__)
                i += 1
        finally:
            actions.clear()  # the list itself stays: timer closures append to it
            self._draining_actions = False
        deadline = self.timers.next_deadline()
        # Most events arm nothing earlier than the loop timer already waits for: skip the
        # clock reads then (on the loop's clock only: a test's clock jumps ahead of it).
        if deadline is not None and (self._timer_deadline is None or self.monotonic is not None
                                     or deadline < self._timer_deadline):
            self._wake(deadline)

    def _perform(self, action: Action) -> None:
        if isinstance(action, SendResponse):
            try:
                self._ep.send_response(action.key, action.response)
            except LocalProtocolError:
                pass  # the transaction ended meanwhile (a CANCEL or timeout won)
        elif isinstance(action, SendRequest):
            leg, request, key = action
            try:
                sent = self._ep.send_request_now(request, leg.peer, transport=leg.transport)
            except LocalProtocolError as exc:  # a bug of ours, not the peer's: this call only
                log.error("call: %s not sent: %s", request.method, exc)
                return
            if sent is None:  # a connection must be opened first
                self._spawn(self._send_later(key, leg, request))
        elif isinstance(action, CancelInvite):
            try:
                self._ep.layer.send_cancel(action.key, self._ep.now())
            except LocalProtocolError:
                pass  # the INVITE transaction already ended
        elif isinstance(action, GiveUpInvite):
            self._ep.layer.give_up(action.key)
        elif isinstance(action, Abandon):
            self._ep.layer.abandon(action.key)
        elif isinstance(action, RouteCall):
            self._spawn(self._route(action.call))
        elif isinstance(action, PumpMedia):
            self._spawn(self._pump(action.call))
        elif isinstance(action, EndMedia):
            if self.media is not None:
                self._spawn(self.media.end(action.context))
        elif isinstance(action, SaveRecords):
            self._spawn(self._save(action.records))
        elif isinstance(action, Publish):
            if self.events is not None:
                self.events.publish(action.name, msgspec.to_builtins(action.record))
        elif isinstance(action, RelayMessage):
            self._spawn(self._relay_message(action.event, action.trunk))

    # --- the one loop timer ----------------------------------------------------------------

    def _wake(self, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        at = deadline - (self.time_now() - loop.time())  # the loop's time of that deadline
        if self._timer_at is not None and self._timer_at <= at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at, self._timer_deadline = at, deadline
        self._timer = loop.call_at(at, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = self._timer_at = self._timer_deadline = None
        self.run_timers(self.time_now())

    def run_timers(self, now: float) -> None:
        """Fire every call timer due at `now` (the loop timer calls this; a flow test
        after moving its clock forward)."""
        self.now = now
        self.timers.fire(now)
        self._drain()

    # --- tasks -----------------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, object]) -> None:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("call task failed: %r", task.exception())

    async def _send_later(self, key: TransactionKey, leg: Leg, request: Request) -> None:
        try:
            context = self._client_context() if leg.transport == "tls" else None
            await self._ep.send_request(request, leg.peer, transport=leg.transport,
                                        ssl_context=context, server_hostname=leg.server_name)
        except (OSError, ValueError) as exc:
            # RFC 3261 §8.1.3.1: a transport error (refused, TLS handshake or certificate,
            # unreadable CA file) counts as a 503 from the next hop: failover, or the call
            # fails (a BYE'd call ends).
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            log.info("%s to %s:%s failed: %s", request.method, leg.transport,
                     format_hostport(leg.peer), reason)
            if request.method != "ACK":
                self._feed(lambda: self._on_timeout(key, transport_error=True))

    def _client_context(self) -> ssl.SSLContext:
        """The TLS client context for `tls:` destinations, made on first use (reading the
        trusted certificates costs milliseconds)."""
        if self._tls_client is None:
            self._tls_client = client_context(self.config.sip.tls_ca)
        return self._tls_client

    async def _pump(self, call: Call) -> None:
        assert self.media is not None
        try:
            while call.outbox:
                message, leg, kind, send = call.outbox[0]
                if kind is not None:
                    hook = self.media.offer if kind == "offer" else self.media.answer
                    if call.media_context is None:
                        call.media_context = media_context(call, self.router, self.config)
                    try:
                        message.body = await hook(call.media_context, leg, message.body)
                    except MediaRefused:
                        self._tell(call, CallEvent.MEDIA_REFUSED)
                        return
                    except Exception:
                        log.exception("call %s: media hook failed; SDP sent as rebuilt", call.id)
                if call.outbox is None:
                    return  # the call ended meanwhile
                call.outbox.popleft()
                self._feed(send)
        finally:
            call.pumping = False

    async def _relay_message(self, event: RequestReceived, trunk: TrunkState) -> None:
        try:
            await self._new_message(event, trunk)
        finally:
            self._drain()  # its answer

    async def _save(self, records: list[Interaction]) -> None:
        try:
            kept = await self.store.record_interactions(records)
        except (StoreError, SipError) as exc:
            log.warning("%d call record(s) not kept: %s", len(records), exc)
            return
        if kept < len(records):
            log.info("%d call record(s) of sessions already gone", len(records) - kept)

    # --- routing a new call: the store, the platform's hooks, DNS ---------------------------

    async def _route(self, call: Call) -> None:
        try:
            binding = await self.store.lookup(call.dialled, call.caller)
        except StoreError as exc:
            log.warning("call %s: binding lookup failed: %s", call.id, exc,
                        extra={"fields": {"event": "call.store_error", "call_id": call.id}})
            # The configured refusal (503 with Retry-After by default: carriers fail over).
            self._tell(call, CallEvent.ROUTE_FAILED, self.config.sip.overload_status,
                       "failed", "store")
            return
        if call.ended:
            return  # cancelled while looking up
        if binding is None:
            await self._no_binding(call)
            return
        call.binding = binding  # for its record, should it end during the hook
        hooks = self.hooks
        if hooks is not None and hooks.intercept_enabled:
            allowed = await hooks.intercept(binding.session_id, binding.caller.key,
                                            binding.callee.key)
            if call.ended:
                return
            if not allowed:
                self._tell(call, CallEvent.REFUSED, self.config.calls.reject_status, "intercept")
                return
        await self._route_bound(call, binding)

    async def _route_bound(self, call: Call, binding: Binding) -> None:
        callee = binding.callee
        if callee.key in self._pool_numbers:  # a virtual number would loop back
            self._tell(call, CallEvent.ROUTE_FAILED, 482, "refused", "loop")
            return
        try:
            targets = await self.router.targets(callee.route, call.trunk)
        except (ValueError, OSError) as exc:
            log.warning("call %s: no route for the callee: %s", call.id, exc)
            self._tell(call, CallEvent.ROUTE_FAILED, 500, "failed", "route")
            return
        self._tell(call, CallEvent.ROUTED, binding, targets)

    async def _no_binding(self, call: Call) -> None:
        calls = self.config.calls
        hooks = self.hooks
        if hooks is not None and hooks.out_of_session_enabled:
            decision = await hooks.out_of_session(call.dialled, call.caller)
            if call.ended:
                return
            if isinstance(decision, CreateSession):
                binding = None
                try:
                    await self.store.create_session(decision.spec())
                    binding = await self.store.lookup(call.dialled, call.caller)
                except StoreError as exc:
                    log.warning("call %s: out-of-session session not made: %s", call.id, exc)
                if binding is not None and not call.ended:
                    call.binding = binding
                    await self._route_bound(call, binding)
                    return
            elif isinstance(decision, Fallback):
                await self._to_uri(call, decision.uri)
                return
            self._tell(call, CallEvent.REFUSED, calls.reject_status, "out-of-session")
            return
        if calls.no_binding == "fallback" and calls.fallback:
            await self._to_uri(call, calls.fallback)
            return
        self._tell(call, CallEvent.REFUSED, calls.reject_status, "no-binding")

    async def _to_uri(self, call: Call, uri: str) -> None:
        """Send a call without a binding to a fixed URI (an IVR, an agent)."""
        try:
            targets = await self.router.uri_targets(uri)
        except (ValueError, OSError):
            targets = []
        self._tell(call, CallEvent.ROUTED, None, targets)

