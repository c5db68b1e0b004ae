"""The masking B2BUA: call control on top of the transaction layer, policy from the config,
bindings from the store (issue 5).

Theory of operation:

- The engine is the `SipEndpoint`'s event callback. Every event is handled synchronously
  except the one `await` per new call or chat message: the binding lookup in the store, run in
  a task. Timers that belong to calls (ring timeout, Timer C, call-time limit, 2xx
  retransmission, session timers) are loop handles owned by the call.
- A new INVITE from a trunk: the layer has already sent 100 Trying. The dialled virtual number
  and the caller's identity are read with the trunk's number rules (`numbers.py`); the binding
  `(dialled, caller)` names the other party and the virtual number to present. The B leg is
  *built*: fresh Call-ID, tags and branch, sipmask's Via and Contact, From = the virtual
  number the callee knows, To = the callee, Max-Forwards one less than received, the
  allow-listed headers (`masking.py`) and the SDP rebuilt through the core. Nothing else of the
  A leg crosses, and the same holds for every response and in-dialog request in both
  directions.
- Responses from B: 18x are relayed on A's single early dialog (forks of B map onto it, RFC
  3261 §13.2.2.4); a reliable 18x is PRACKed on B (100rel ends at sipmask); the first 2xx is
  ACKed on B and relayed on A, where sipmask retransmits it until A's ACK (RFC 6026); a second
  2xx from another fork is ACKed and BYEd. Failures are relayed with their status mapped (503
  never crosses, RFC 3261 §16.7; 3xx would reveal a Contact and becomes 480); 408, 5xx and
  503 move to the trunk's next destination when no provisional beyond 100 was seen.
- CANCEL on A cancels B and answers 487; when B answers while the CANCEL crosses, that 2xx is
  ACKed and BYEd. BYE on either leg is answered there and sent on the other. In-dialog
  requests (re-INVITE, UPDATE, INFO, MESSAGE, OPTIONS...) are relayed and their final
  responses relayed back; REFER is refused by the method list (405).
- MESSAGE outside a dialog (RFC 3428) is bound and masked like a call; its text crosses.
- Every call ends with a record (`Interaction`) in the store and one log line, numbers masked.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import msgspec

from .._core import Request, Response, SdpOrigin
from ..config import Config
from ..errors import LocalProtocolError, ParseError, SipError
from ..privacy import mask_party
from ..sip.dialog import Dialog
from ..sip.events import (
    AckReceived,
    Address,
    CancelReceived,
    RequestReceived,
    ResponseReceived,
    SipEvent,
    TransactionKey,
    TransactionTerminated,
    TransactionTimedOut,
)
from ..sip.responses import make_response
from ..sip.transaction import client_key
from ..sip.validate import options_response, stateless_answer, stateless_tag
from ..store import SessionStore, StoreError
from ..store.events import EventPublisher
from ..store.model import Binding, Interaction
from ..transport.endpoint import SipEndpoint, format_hostport
from ..webhooks import CreateSession, Fallback, WebhookSender
from . import numbers
from .call import Call, Leg, Phase, Relay, Side, new_branch, new_token
from .digest import DigestError, authorization, parse_challenge
from .dns import SipResolver
from .masking import (
    SIPMASK_METHODS,
    BodyRefused,
    crossing_body,
    crossing_headers,
    has_sdp,
    reason_value,
    session_expires,
    supported_tags,
)
from .media import MediaHook
from .routing import Router, Target, TrunkState

log = logging.getLogger("sipmask.b2bua")

ACCEPTED_TYPES = ("application/sdp", "multipart/mixed", "application/dtmf-relay",
                  "application/dtmf", "text/plain")
REQUIRE_SUPPORTED = ("timer",)
"""Option tags a caller may Require: 100rel is answered 420 (sipmask sends no reliable
provisionals on the caller leg; it PRACKs a callee's)."""
FAILOVER_STATUSES = frozenset({408, 500, 502, 503, 504})
LAG_WINDOW = 8
"""Samples of loop lag (one per 20 ms) whose least must exceed `overload_lag`."""
RECORD_BATCH_DELAY = 0.05
"""Seconds call records wait to be written together."""
FORGET_AFTER = 8.0
"""Seconds an ended call stays findable by its legs' ids."""
DESTINATION_DOWN_FOR = 30.0
"""Seconds a destination that timed out is skipped by later calls (passive health)."""
STATUS_OUTCOME = {486: "busy", 600: "busy", 487: "cancelled", 480: "no-answer", 408: "no-answer"}


@dataclass(slots=True)
class EngineStats:
    """Counters for metrics; the engine only ever increments them (but `calls_active`)."""

    calls_started: int = 0
    calls_answered: int = 0
    calls_active: int = 0
    calls_rejected: int = 0
    """INVITEs refused before a B leg was tried (no identity, no binding, limits, draining)."""
    messages_relayed: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    """Ended calls by outcome: completed, busy, no-answer, cancelled, failed, refused."""


class B2BUA:
    """The call engine. Use `handle` as the endpoint's event callback.

    Args:
        config: the checked configuration (trunks, masking, calls, timers).
        store: where bindings are looked up and call records kept.
        clock: wall-clock seconds for call records (the loop's clock drives timers).
        media: the offer/answer hook (`media.py`); None sends SDP as rebuilt.
        call_ids: makes the Call-IDs of legs sipmask creates (with several workers, ones this
            worker owns: `CallIdRouter.mint`); random hex by default.
        events: where call records go as `call.ended` events (the store's event stream and
            the webhooks), besides the store's interactions.
        hooks: the platform's synchronous hooks: intercept (may block a call of an open
            session) and out-of-session (decides for a caller without a binding).
        resolver: RFC 3263 server location for destinations written as names (the system's
            DNS servers by default).
    """

    def __init__(
        self,
        config: Config,
        store: SessionStore,
        *,
        clock: Callable[[], float] = time.time,
        media: MediaHook | None = None,
        call_ids: Callable[[], str] | None = None,
        events: EventPublisher | None = None,
        hooks: WebhookSender | None = None,
        resolver: SipResolver | None = None,
    ) -> None:
        self.store = store
        self.events = events
        self.hooks = hooks
        self.resolver = resolver or SipResolver()
        self.media = media
        self._new_call_id = call_ids or (lambda: new_token(16))
        self.clock = clock
        self.stats = EngineStats()
        self.draining = False
        self.overloaded = False
        self._message_waiters: dict[TransactionKey, asyncio.Future[int]] = {}
        self._probes: list[asyncio.Future[None]] = []
        self._lag_watch: asyncio.Future[None] | None = None
        self._apply(config)
        self.endpoint: SipEndpoint | None = None
        self.calls: set[Call] = set()
        self._by_server: dict[TransactionKey, Call] = {}
        self._by_client: dict[TransactionKey, Call] = {}
        self._by_leg: dict[tuple[str, str], tuple[Call, Leg]] = {}
        self._down: dict[Address, float] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._records: list[Interaction] = []

    def _apply(self, config: Config) -> None:
        self.config = config
        self.router = Router(config, resolver=self.resolver)  # its cache outlives reloads
        self.allow = config.masking.allow_headers
        self._pool_numbers = frozenset(n for pool in config.pools for n in pool.numbers)
        self.reject_unknown = config.sip.unknown_source == "reject"
        agent = config.masking.user_agent
        self._ua_header = [("User-Agent", agent)] if agent else []
        self._server_header = [("Server", agent)] if agent else []

    def reload(self, config: Config) -> None:
        """Take a new (checked) configuration: trunks, ACLs, limits, masking policy and call
        timers apply to new calls; calls in progress keep the trunk they started on. The
        listeners and timers T1/T2/T4 are not changed by a reload."""
        old = {trunk.name: trunk.active_calls for trunk in self.router.trunks}
        for probe in self._probes:
            probe.cancel()
        self._probes.clear()
        self._apply(config)
        for trunk in self.router.trunks:
            trunk.active_calls = old.get(trunk.name, 0)
        if self.endpoint is not None:
            self.endpoint.layer.request_filter = (
                None if self.reject_unknown else self.accepts_request
            )
            self.start_probing()

    def drain(self) -> None:
        """Stop taking calls: new INVITEs get 503 with Retry-After (so carriers fail over);
        calls in progress go on."""
        self.draining = True

    # --- the endpoint callback -----------------------------------------------------------------

    def handle(self, endpoint: SipEndpoint, event: SipEvent) -> None:
        self.endpoint = endpoint
        if isinstance(event, RequestReceived):
            if event.request.to_tag is None:
                self._new_request(event)
            else:
                self._in_dialog(event)
        elif isinstance(event, ResponseReceived):
            self._on_response(event)
        elif isinstance(event, AckReceived):
            self._on_ack(event)
        elif isinstance(event, CancelReceived):
            call = self._by_server.get(event.invite_key)
            if call is not None:
                self._caller_cancelled(call)
        elif isinstance(event, TransactionTimedOut):
            self._on_timeout(event.key)
        elif isinstance(event, TransactionTerminated):
            self._by_server.pop(event.key, None)
            self._by_client.pop(event.key, None)

    def attach(self, endpoint: SipEndpoint) -> None:
        """Use `endpoint` to send (before any event arrives: probes start at once) and install
        the source policy on its layer: in "drop" mode a request from outside every trunk's
        inbound networks (a trunk's outbound address, which the listeners let through for its
        answers) is dropped before the layer answers anything."""
        self.endpoint = endpoint
        if not self.reject_unknown:
            endpoint.layer.request_filter = self.accepts_request
        # A Via maddr is honoured only when it names the same trunk (RFC 3261 §18.2.2).
        endpoint.layer.maddr_allowed = lambda target, source: (
            self.router.trunk_for(target) is self.router.trunk_for(source) is not None)

    def accepts_request(self, request: Request, source: Address) -> bool:
        return self.router.trunk_for(source) is not None

    def start_overload_monitor(self, interval: float = 0.02) -> None:
        """Watch the event loop's lag (how late a short sleep wakes up, smoothed): beyond
        `[sip] overload_lag` the process is saturated and new INVITEs are refused before any
        work is spent on them (RFC 7339's idea: shed early, keep goodput), until the lag is
        back under half of it."""
        limit = self.config.sip.overload_lag
        if limit > 0 and self._lag_watch is None:
            self._lag_watch = asyncio.ensure_future(self._watch_lag(interval))

    async def _watch_lag(self, interval: float) -> None:
        # Saturation shows in two places: every wake-up of the loop is late, or the backlog
        # sits in the kernel's socket buffers (filling, then dropping), where the loop cannot
        # see it. One garbage-collection pause makes one late wake-up: the least lag of the
        # last few samples decides, not their average.
        loop = asyncio.get_running_loop()
        lags: deque[float] = deque(maxlen=LAG_WINDOW)
        drops_seen: deque[bool] = deque(maxlen=LAG_WINDOW)
        last_drops = self._socket_drops()
        while True:
            start = loop.time()
            await asyncio.sleep(interval)
            lags.append(max(loop.time() - start - interval, 0.0))
            drops = self._socket_drops()
            drops_seen.append(drops > last_drops)
            last_drops = drops
            if len(lags) < LAG_WINDOW:
                continue
            least = min(lags)
            dropping = sum(drops_seen) >= LAG_WINDOW // 2
            limit = self.config.sip.overload_lag
            if limit <= 0:
                continue
            if not self.overloaded and (least > limit or dropping):
                self._set_overloaded(True)
                log.warning("overloaded (loop %.0f ms late%s): refusing new calls",
                            least * 1000, ", socket buffers dropping" if dropping else "")
            elif self.overloaded and least < limit / 2 and not any(drops_seen):
                self._set_overloaded(False)
                log.info("overload over: taking new calls again")

    def _set_overloaded(self, overloaded: bool) -> None:
        # The layer refuses new INVITEs itself while overloaded: statelessly, before any
        # transaction, 100 Trying or parse of the rest by the engine.
        self.overloaded = overloaded
        if self.endpoint is not None:
            self.endpoint.layer.shed_invites = overloaded

    def _socket_drops(self) -> int:
        total = 0
        if self.endpoint is not None:
            for listener in self.endpoint.udp:
                state = listener.queue_state()
                if state is not None:
                    total += state[2]
        return total

    def start_probing(self) -> None:
        """Probe each trunk destination with OPTIONS every `probe_interval` seconds; one that
        does not answer is tried last by new calls until it answers again (RFC 3263 §4.3
        leaves the choice among destinations to the client)."""
        for trunk in self.router.trunks:
            if trunk.config.probe_interval > 0 and trunk.destinations:
                self._probes.append(asyncio.ensure_future(self._probe_loop(trunk)))

    async def _probe_loop(self, trunk: TrunkState) -> None:
        while True:
            try:
                targets = await self.router.targets(trunk.name, None)
                await asyncio.gather(*(self.probe(target) for target in targets))
            except OSError as exc:
                log.warning("trunk %s: probe failed: %s", trunk.name, exc)
            await asyncio.sleep(trunk.config.probe_interval)

    async def probe(self, target: Target) -> bool:
        """Send one OPTIONS to `target`; any response means it is up. Returns whether it
        answered, and marks it down or up for call routing."""
        leg = self._make_leg(Side.CALLEE, target.address, target.transport, self._new_call_id(),
                             "sipmask")
        local = self._local(target.transport, target.address)
        uri = f"sip:{target.uri_host}"
        options = Request("OPTIONS", uri, [
            ("Via", f"{leg.via};branch={new_branch()}"),
            ("Max-Forwards", "70"),
            ("From", f"<sip:sipmask@{local}>;tag={leg.local_tag}"),
            ("To", f"<{uri}>"),
            ("Call-ID", leg.call_id),
            ("CSeq", "1 OPTIONS"),
            *self._ua_header,
        ])
        key = client_key(options)
        waiter: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._message_waiters[key] = waiter
        try:
            self._send(None, leg, options)
            status = await asyncio.wait_for(waiter, 64 * self.config.sip.timers.t1 + 1)
        except (asyncio.TimeoutError, OSError):
            status = 0
        finally:
            self._message_waiters.pop(key, None)
        loop = asyncio.get_running_loop()
        if status:
            if self._down.pop(target.address, None) is not None:
                log.info("destination %s:%s is up", target.transport, target.uri_host)
            return True
        if target.address not in self._down:
            log.warning("destination %s:%s does not answer OPTIONS", target.transport,
                        target.uri_host)
        self._down[target.address] = loop.time() + 10 * 365 * 86400.0  # until it answers
        return False

    async def close(self) -> None:
        """End every call (BYE on answered legs) and wait for record writes."""
        for probe in self._probes:
            probe.cancel()
        if self._lag_watch is not None:
            self._lag_watch.cancel()
        for call in list(self.calls):
            self._hang_up(call, None, "shutdown", reason="SIP;cause=503")
        self._flush_records()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2.0)

    # --- helpers to send -------------------------------------------------------------------------

    @property
    def _ep(self) -> SipEndpoint:
        assert self.endpoint is not None
        return self.endpoint

    def _respond(self, key: TransactionKey, response: Response) -> bool:
        for name, value in self._server_header:
            response.add_header(name, value)
        try:
            self._ep.send_response(key, response)
            return True
        except LocalProtocolError:
            return False  # the transaction ended meanwhile (a CANCEL or timeout won)

    def _reject(self, event: RequestReceived, status: int, headers: list[tuple[str, str]] | None
                = None) -> None:
        request = event.request
        tag = stateless_tag(request)
        self._respond(event.key, make_response(request, status, to_tag=tag, headers=headers or []))

    def _send(self, call: Call | None, leg: Leg, request: Request) -> TransactionKey:
        """Send a request on a leg (ACK included); index its transaction to the call."""
        key = client_key(request)
        if call is not None and request.method != "ACK":
            self._by_client[key] = call
            call.client_keys.append(key)
        try:
            sent = self._ep.send_request_now(request, leg.peer, transport=leg.transport)
        except LocalProtocolError as exc:  # a bug of ours, not the peer's: this call only
            log.error("call: %s not sent: %s", request.method, exc)
            return key
        if sent is None:  # a connection must be opened first
            self._spawn(self._send_now(key, leg, request))
        return key

    async def _send_now(self, key: TransactionKey, leg: Leg, request: Request) -> None:
        try:
            await self._ep.send_request(request, leg.peer, transport=leg.transport)
        except OSError as exc:
            # RFC 3261 §8.1.3.1: a transport error counts as a 503 from the next hop, here a
            # timeout of the transaction (failover, or 408 / a BYE'd call).
            log.info("%s to %s:%s failed: %s", request.method, leg.transport,
                     format_hostport(leg.peer), exc.strerror or type(exc).__name__)
            if request.method != "ACK":
                self._on_timeout(key)

    def _spawn(self, coro: Coroutine[Any, Any, object]) -> None:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("call task failed: %r", task.exception())

    def _deliver(self, call: Call, leg: Leg, message: Request | Response, kind: str | None,
                 send: Callable[[], object]) -> None:
        """Send `message` on `leg` through the media hook (when there is one and the message
        carries SDP of `kind`), keeping the call's messages in order."""
        if self.media is None or (not call.outbox and (kind is None or not message.body)):
            send()
            return
        call.outbox.append((message, leg.side.value, kind if message.body else None, send))
        if not call.pumping:
            call.pumping = True
            self._spawn(self._pump(call))

    async def _pump(self, call: Call) -> None:
        assert self.media is not None
        try:
            while call.outbox:
                message, leg, kind, send = call.outbox[0]
                if kind is not None:
                    hook = self.media.offer if kind == "offer" else self.media.answer
                    try:
                        message.body = await hook(call.id, leg, message.body)
                    except Exception:
                        log.exception("call %s: media hook failed; SDP sent as rebuilt", call.id)
                call.outbox.popleft()
                send()
        finally:
            call.pumping = False

    def _later(self, call: Call, name: str, delay: float, callback: Callable[[], None]) -> None:
        call.cancel_timer(name)
        loop = asyncio.get_running_loop()

        def fire() -> None:
            call.timers.pop(name, None)
            try:
                callback()
            except Exception:
                log.exception("call %s: timer %s failed", call.id, name)

        call.timers[name] = loop.call_later(delay, fire)

    def _local(self, transport: str, peer: Address) -> str:
        """sipmask's host:port as the peer should see it (advertised address)."""
        return format_hostport(self._ep.local_address(transport, peer))

    def _via_and_contact(self, transport: str, peer: Address, user: str) -> tuple[str, str]:
        """sipmask's Via template and Contact on a leg (raises LookupError: no listener)."""
        hostport = self._local(transport, peer)
        suffix = "" if transport == "udp" else f";transport={transport}"
        return f"SIP/2.0/{transport.upper()} {hostport};rport", f"<sip:{user}@{hostport}{suffix}>"

    def _make_leg(self, side: Side, peer: Address, transport: str, call_id: str, user: str
                  ) -> Leg:
        via, contact = self._via_and_contact(transport, peer, user)
        return Leg(
            side=side,
            peer=peer,
            transport=transport,
            call_id=call_id,
            local_tag=new_token(),
            origin=SdpOrigin(self._ep.local_address(transport, peer).host),
            via=via,
            contact=contact,
        )

    # --- new requests ----------------------------------------------------------------------------

    def _new_request(self, event: RequestReceived) -> None:
        request = event.request
        trunk = self.router.trunk_for(event.source)
        if trunk is None:
            # Only a trunk's outbound address gets here in "drop" mode (the listeners drop
            # strangers): it may answer calls, not place them.
            if self.reject_unknown:
                self._reject(event, 403)
            else:
                self._ep.layer.abandon(event.key)
            return
        answer = stateless_answer(
            request,
            methods=SIPMASK_METHODS,
            supported=REQUIRE_SUPPORTED,
            accepted_types=ACCEPTED_TYPES,
        )
        if answer is not None:
            if request.method == "OPTIONS":
                answer = options_response(
                    request, SIPMASK_METHODS, ("application/sdp",), REQUIRE_SUPPORTED
                )
            self._respond(event.key, answer)
            return
        method = request.method
        if method == "INVITE":
            self._new_call(event, trunk)
        elif method == "MESSAGE":
            self._spawn(self._new_message(event, trunk))
        else:  # BYE, INFO, UPDATE, PRACK outside any dialog (RFC 3261 §12.2.2)
            self._reject(event, 481)

    def _identities(self, event: RequestReceived, trunk: TrunkState) -> tuple[str, str] | None:
        request = event.request
        dialled = numbers.dialled_number(request, trunk.rules)
        caller = numbers.caller_identity(
            request, trunk.rules, trusted=trunk.config.trusted_identity
        )
        if dialled is None or caller is None:
            return None
        return dialled, caller

    def _new_call(self, event: RequestReceived, trunk: TrunkState) -> None:
        request = event.request
        if (request.max_forwards if request.max_forwards is not None else 70) <= 1:
            self._reject(event, 483)  # the B leg would carry Max-Forwards 0 (RFC 3261 §16.6)
            return
        identities = self._identities(event, trunk)
        if identities is None:
            self.stats.calls_rejected += 1
            self._reject(event, self.config.calls.reject_status)
            return
        loop = asyncio.get_running_loop()
        if self.draining or not trunk.admit(loop.time()):
            self.stats.calls_rejected += 1
            retry = self.config.sip.retry_after
            self._reject(event, 503, [("Retry-After", str(retry))] if retry else [])
            return
        dialled, caller = identities
        transport = (request.top_via.transport.lower() if request.top_via else "udp")
        transport = transport if transport in ("udp", "tcp", "tls") else "udp"
        assert request.call_id is not None
        try:
            a = self._make_leg(Side.CALLER, event.source, transport, request.call_id, dialled)
        except LookupError:  # its Via names a transport sipmask has no listener for
            self._reject(event, 400)
            return
        a.peer = event.source  # requests to the caller go where it sent from (NAT-safe)
        call = Call(
            id=new_token(6),
            trunk=trunk,
            a_invite=request,
            a_key=event.key,
            a=a,
            dialled=dialled,
            caller=caller,
            started_at=self.clock(),
        )
        call.late_offer = not has_sdp(request)
        trunk.active_calls += 1
        call.counted = True
        self.calls.add(call)
        self.stats.calls_started += 1
        self.stats.calls_active += 1
        self._by_server[event.key] = call
        self._by_leg[(a.call_id, a.local_tag)] = (call, a)
        self._spawn(self._route(call))

    async def _route(self, call: Call) -> None:
        try:
            binding = await self.store.lookup(call.dialled, call.caller)
        except StoreError as exc:
            log.warning("call %s: binding lookup failed: %s", call.id, exc,
                        extra={"fields": {"event": "call.store_error", "call_id": call.id}})
            # The configured refusal (503 with Retry-After by default: carriers fail over).
            self._fail(call, self.config.sip.overload_status, "failed", "store")
            return
        if call.ended:
            return  # cancelled while looking up
        if binding is None:
            await self._no_binding(call)
            return
        call.binding = binding
        hooks = self.hooks
        if hooks is not None and hooks.intercept_enabled:
            allowed = await hooks.intercept(binding.session_id, binding.caller.key,
                                            binding.callee.key)
            if call.ended:
                return
            if not allowed:
                self.stats.calls_rejected += 1
                self._fail(call, self.config.calls.reject_status, "refused", "intercept")
                return
        await self._route_bound(call, binding)

    async def _route_bound(self, call: Call, binding: Binding) -> None:
        callee = binding.callee
        if callee.key in self._pool_numbers:
            self._fail(call, 482, "refused", "loop")  # a virtual number would loop back
            return
        try:
            call.targets = await self.router.targets(callee.route, call.trunk)
        except (ValueError, OSError) as exc:
            log.warning("call %s: no route for the callee: %s", call.id, exc)
            self._fail(call, 500, "failed", "route")
            return
        if call.ended:
            return
        call.targets = self._live_first(call.targets)
        if not call.targets:
            self._fail(call, 480, "failed", "no-route")
            return
        self._arm_ringing(call, binding)
        self._start_b(call)

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
            if not call.ended:
                self.stats.calls_rejected += 1
                self._fail(call, calls.reject_status, "refused", "out-of-session")
            return
        if calls.no_binding == "fallback" and calls.fallback:
            await self._to_uri(call, calls.fallback)
            return
        self.stats.calls_rejected += 1
        self._fail(call, calls.reject_status, "refused", "no-binding")

    async def _to_uri(self, call: Call, uri: str) -> None:
        """Send a call without a binding to a fixed URI (an IVR, an agent)."""
        try:
            call.targets = await self.router.uri_targets(uri)
        except (ValueError, OSError):
            call.targets = []
        if call.ended:
            return
        if not call.targets:
            self._fail(call, 480, "failed", "no-route")
            return
        self._arm_ringing(call, None)
        self._start_b(call)

    def _live_first(self, targets: list[Target]) -> list[Target]:
        now = asyncio.get_running_loop().time()
        live = [t for t in targets if self._down.get(t.address, 0.0) <= now]
        return live + [t for t in targets if t not in live]

    def _arm_ringing(self, call: Call, binding: Binding | None) -> None:
        calls = self.config.calls
        ring = (binding.ring_timeout if binding and binding.ring_timeout else calls.ring_timeout)
        self._later(call, "ring", ring, lambda: self._give_up(call, 480, "no-answer", "ring"))
        self._later(call, "timer_c", calls.timer_c,
                    lambda: self._give_up(call, 408, "no-answer", "timer-c"))

    # --- the B leg ----------------------------------------------------------------------------

    def _presented(self, call: Call) -> str:
        return call.binding.caller_id if call.binding is not None else call.dialled

    def _start_b(self, call: Call) -> None:
        try:
            self._start_b_on(call, call.targets[call.target_index])
        except LookupError:  # no listener of that transport to send from
            log.warning("call %s: no %s listener for %s", call.id,
                        call.targets[call.target_index].transport,
                        call.targets[call.target_index].uri_host)
            if call.target_index + 1 < len(call.targets):
                call.target_index += 1
                self._start_b(call)
            else:
                self._fail(call, 500, "failed", "no-transport")

    def _start_b_on(self, call: Call, target: Target) -> None:
        presented = self._presented(call)
        if call.b is None:
            call.b = self._make_leg(Side.CALLEE, target.address, target.transport,
                                    self._new_call_id(), presented)
            self._by_leg[(call.b.call_id, call.b.local_tag)] = (call, call.b)
        else:  # failover: same Call-ID and tag, the next destination's transport
            via, contact = self._via_and_contact(target.transport, target.address, presented)
            call.b.peer, call.b.transport = target.address, target.transport
            call.b.via, call.b.contact = via, contact
        b = call.b
        invite = self._build_b_invite(call, target, presented)
        if invite is None:
            return
        call.b_invite = invite
        call.phase = Phase.CALLING
        call.saw_provisional = False
        call.b_key = client_key(invite)
        self._deliver(call, b, invite, "offer", lambda: self._send(call, b, invite))

    def _build_b_invite(self, call: Call, target: Target, presented: str) -> Request | None:
        b = call.b
        assert b is not None
        a_invite = call.a_invite
        callee = call.binding.callee.key if call.binding is not None else None
        if target.fixed_uri is not None:
            uri = target.fixed_uri
        else:
            suffix = "" if target.transport == "udp" else f";transport={target.transport}"
            user = callee if callee is not None and "@" not in callee else (
                callee.split("@", 1)[0] if callee else call.dialled)
            phone = ";user=phone" if user.startswith("+") else ""
            uri = f"sip:{user}@{target.uri_host}{suffix}{phone}"
        to_uri = uri.split(";", 1)[0] if target.fixed_uri is None else uri
        local_host = self._local(target.transport, target.address)
        display = self.config.masking.display_name
        from_value = (f'"{display}" ' if display else "") + f"<sip:{presented}@{local_host}>"
        try:
            body = crossing_body(a_invite, "INVITE", b.origin)
        except (BodyRefused, ParseError):
            self._fail(call, 488, "failed", "sdp")
            return None
        # Never more than 70 (RFC 3261 §8.1.1.6): a huge value could carry digits across.
        mf = min(a_invite.max_forwards if a_invite.max_forwards is not None else 70, 70)
        cseq = 1 if call.b_invite is None else (call.b_invite.cseq.number + 1)  # type: ignore[union-attr]
        fields = [
            ("Via", f"{b.via};branch={new_branch()}"),
            ("Max-Forwards", str(mf - 1)),
            ("From", f"{from_value};tag={b.local_tag}"),
            ("To", f"<{to_uri}>"),
            ("Call-ID", b.call_id),
            ("CSeq", f"{cseq} INVITE"),
            ("Contact", b.contact),
            ("Allow", ", ".join(SIPMASK_METHODS)),
        ]
        crossing = [h for h in crossing_headers(a_invite, self.allow) if h[0] != "Supported"]
        supported = set(supported_tags(a_invite)) | {"100rel", "timer"}
        fields.append(("Supported", ", ".join(sorted(supported))))
        if not any(name == "Session-Expires" for name, _ in crossing):
            crossing.append(("Session-Expires", str(self.config.calls.session_expires)))
        fields += crossing
        trunk = self.router.by_name.get(target.trunk or "")
        if trunk is not None and trunk.config.assert_identity:
            fields.append(("P-Asserted-Identity", f"<sip:{presented}@{local_host};user=phone>"))
        fields += self._ua_header
        fields += call.auth_headers
        fields += body.headers()
        return Request("INVITE", uri, fields, body.data)

    def _on_response(self, event: ResponseReceived) -> None:
        key = event.key
        response = event.response
        waiter = self._message_waiters.get(key)
        if waiter is not None:
            if response.status >= 200 and not waiter.done():
                waiter.set_result(response.status)
            return
        call = self._by_client.get(key)
        if call is None:
            if event.retransmission:  # a 2xx after the INVITE transaction ended
                self._resend_ack(response)
            return
        if key == call.b_key:
            self._b_invite_response(call, response, event.retransmission)
            return
        relay = call.relays.get(key)
        if relay is not None:
            self._relayed_response(call, key, relay, response, event.retransmission)
            return
        # PRACK, UPDATE refreshes, BYE we originated: a 2xx to a refresh re-arms its timer.
        if (response.cseq and response.cseq.method == "UPDATE" and 200 <= response.status < 300):
            leg = self._leg_of_response(call, response)
            if leg is not None:
                self._schedule_refresh(call, leg)

    def _leg_of_response(self, call: Call, response: Response) -> Leg | None:
        entry = self._by_leg.get((response.call_id or "", response.from_tag or ""))
        return entry[1] if entry is not None and entry[0] is call else None

    def _resend_ack(self, response: Response) -> None:
        entry = self._by_leg.get((response.call_id or "", response.from_tag or ""))
        if entry is None:
            return
        call, leg = entry
        dialog = call.b_dialogs.for_response(response) if leg.side is Side.CALLEE else leg.dialog
        if dialog is not None:
            ack = dialog.ack_for_retransmitted_2xx(response)
            if ack is not None:
                self._send(None, leg, ack)

    def _b_invite_response(self, call: Call, response: Response, retransmission: bool) -> None:
        status = response.status
        b = call.b
        assert b is not None and call.b_invite is not None
        if status == 100:
            return
        dialog = None
        if status < 300:
            try:
                dialog = call.b_dialogs.receive_response(
                    call.b_invite, response, new_branch=new_branch, via=b.via
                )
            except (ParseError, LocalProtocolError):
                dialog = None
        if status < 200:
            self._b_provisional(call, response, dialog)
        elif status < 300:
            self._b_answered(call, response, dialog, retransmission)
        else:
            self._b_failed(call, response)

    def _b_provisional(self, call: Call, response: Response, dialog: Dialog | None) -> None:
        call.saw_provisional = True
        if not call.ended and call.phase is Phase.CALLING:
            self._later(call, "timer_c", self.config.calls.timer_c,
                        lambda: self._give_up(call, 408, "no-answer", "timer-c"))
        rseq = response.header("rseq")
        if dialog is not None and rseq is not None and "100rel" in [
            t.strip().lower() for t in response.headers("require")
        ]:
            cseq = response.cseq
            assert cseq is not None
            prack = dialog.create_request(
                "PRACK", headers=[("RAck", f"{rseq.strip()} {cseq.number} INVITE")]
            )
            assert call.b is not None
            self._send(call, call.b, prack)
        if call.a_final_sent or call.ended:
            return
        status = response.status if response.status in (180, 181, 182, 183) else 183
        try:
            body = crossing_body(response, "INVITE", call.a.origin)
        except (BodyRefused, ParseError):
            body = crossing_body(Response(status, ""), "INVITE", call.a.origin)
        a_dialog = self._a_dialog(call)
        if a_dialog is None:
            return
        relayed = a_dialog.create_response(
            call.a_invite, status, headers=body.headers(), body=body.data
        )
        kind = "offer" if call.late_offer else "answer"
        self._deliver(call, call.a, relayed, kind, lambda: self._respond(call.a_key, relayed))

    def _a_dialog(self, call: Call) -> Dialog | None:
        if call.a.dialog is None:
            try:
                call.a.dialog = Dialog.from_uas(
                    call.a_invite,
                    call.a.local_tag,
                    call.a.contact,
                    via=call.a.via,
                    new_branch=new_branch,
                )
            except (ParseError, LocalProtocolError):
                return None
        return call.a.dialog

    def _b_answered(
        self, call: Call, response: Response, dialog: Dialog | None, retransmission: bool
    ) -> None:
        b = call.b
        assert b is not None
        if dialog is None:
            return
        answered = b.dialog
        if retransmission or answered is dialog:
            ack = dialog.ack_for_retransmitted_2xx(response)
            if ack is not None:
                self._send(None, b, ack)
            return
        if answered is not None or call.ended or call.a_final_sent:
            # A second fork answered, or the caller is gone (CANCEL crossed the 200): ACK it
            # and end it at once (RFC 3261 §13.2.2.4, §9.1).
            if dialog.is_terminated:  # an early dialog ended when the first fork answered
                assert call.b_invite is not None
                try:
                    dialog = Dialog.from_uac(call.b_invite, response, new_branch=new_branch,
                                             via=b.via)
                except (ParseError, LocalProtocolError):
                    return
            self._send(None, b, dialog.create_ack(response))
            self._send(None, b, dialog.create_request("BYE"))
            dialog.terminate()
            return
        b.dialog = dialog
        call.b_dialogs.terminate_early(dialog.id.call_id, dialog.id.local_tag)
        dialog.confirm()
        if call.late_offer:
            call.deferred_ack = (dialog, response)  # the ACK carries the caller's answer
        else:
            self._send(None, b, dialog.create_ack(response))
        a_dialog = self._a_dialog(call)
        if a_dialog is None:
            self._hang_up(call, None, "failed")
            return
        try:
            body = crossing_body(response, "INVITE", call.a.origin)
        except (BodyRefused, ParseError):
            self._hang_up(call, None, "failed", reason="SIP;cause=488")
            return
        headers = body.headers() + [("Allow", ", ".join(SIPMASK_METHODS))]
        headers += self._timer_headers_for_a(call)
        final = a_dialog.create_response(call.a_invite, 200, headers=headers, body=body.data)
        call.a_final_sent = True
        call.phase = Phase.ANSWERED
        call.answered_at = self.clock()
        self.stats.calls_answered += 1
        call.cancel_timer("ring")
        call.cancel_timer("timer_c")

        def send_final() -> None:
            self._respond(call.a_key, final)
            self._retransmit_2xx(call, call.a, call.a_key, final)

        self._deliver(call, call.a, final, "offer" if call.late_offer else "answer", send_final)
        limit = call.binding.call_time_limit if call.binding else None
        limit = limit or self.config.calls.max_duration
        if limit:
            self._later(call, "limit", limit, lambda: self._hang_up(
                call, None, "completed", reason="Q.850;cause=102", cause="time-limit"))
        self._session_timer_from_2xx(call, b, response)

    def _b_failed(self, call: Call, response: Response) -> None:
        status = response.status
        if call.ended or call.a_final_sent:
            if not call.ended and call.b is not None and call.b.dialog is None:
                self._finish(call)
            return
        if status in (401, 407) and self._answer_challenge(call, response):
            return
        if (
            status in FAILOVER_STATUSES
            and not call.saw_provisional
            and call.target_index + 1 < len(call.targets)
        ):
            call.target_index += 1
            self._start_b(call)
            return
        mapped = map_failure(status)
        outcome = STATUS_OUTCOME.get(mapped, "failed")
        reason = reason_value(response)
        self._fail(call, mapped, outcome, str(status), reason=reason)

    def _answer_challenge(self, call: Call, response: Response) -> bool:
        """Retry the B leg INVITE with credentials when its trunk has some (once per call)."""
        target = call.targets[call.target_index] if call.targets else None
        trunk = self.router.by_name.get(target.trunk or "") if target is not None else None
        credentials = trunk.config.digest if trunk is not None else None
        if credentials is None or call.auth_tried or call.b_invite is None:
            return False
        proxy = response.status == 407
        challenge = response.header("proxy-authenticate" if proxy else "www-authenticate")
        if challenge is None:
            return False
        try:
            if credentials.realm is not None and (
                parse_challenge(challenge)["realm"] != credentials.realm
            ):
                return False
            value = authorization(challenge, "INVITE", call.b_invite.uri,
                                  credentials.username, credentials.password)
        except DigestError as exc:
            log.warning("call %s: cannot answer the %s challenge: %s", call.id,
                        trunk.name if trunk else "-", exc)
            return False
        call.auth_tried = True
        call.auth_headers = [("Proxy-Authorization" if proxy else "Authorization", value)]
        self._start_b(call)
        return True

    def _on_timeout(self, key: TransactionKey) -> None:
        waiter = self._message_waiters.get(key)
        if waiter is not None and not waiter.done():
            waiter.set_result(0)  # no answer at all
        call = self._by_client.get(key)
        if call is None:
            return
        if key == call.b_key:
            if call.b is not None:
                self._down[call.b.peer] = asyncio.get_running_loop().time() + DESTINATION_DOWN_FOR
            if call.a_final_sent or call.ended:
                self._finish(call)
            elif call.target_index + 1 < len(call.targets) and not call.saw_provisional:
                call.target_index += 1
                self._start_b(call)
            else:
                self._fail(call, 408, "no-answer", "timer-b")
            return
        relay = call.relays.pop(key, None)
        if relay is not None:
            self._answer_relay(relay, 408)
        elif key.method == "BYE":
            self._finish(call)

    # --- the caller's side -------------------------------------------------------------------

    def _caller_cancelled(self, call: Call) -> None:
        if call.a_final_sent:
            return
        self._fail(call, 487, "cancelled", "cancel")

    def _give_up(self, call: Call, status: int, outcome: str, cause: str) -> None:
        """Ring timeout or Timer C: cancel B, answer A."""
        if call.a_final_sent or call.ended:
            return
        self._fail(call, status, outcome, cause)

    def _fail(self, call: Call, status: int, outcome: str, cause: str,
              reason: str | None = None) -> None:
        """Answer the caller's INVITE with a failure, cancel the B leg, end the call."""
        if call.b_key is not None and not call.ended:
            try:
                self._ep.layer.send_cancel(call.b_key, self._ep.now())
            except LocalProtocolError:
                pass  # the INVITE transaction already ended
        if not call.a_final_sent:
            call.a_final_sent = True
            headers = [("Reason", reason)] if reason else []
            if status == 503 and self.config.sip.retry_after:
                headers.append(("Retry-After", str(self.config.sip.retry_after)))
            dialog = call.a.dialog
            if dialog is not None:
                response = dialog.create_response(call.a_invite, status, headers=headers)
            else:
                response = make_response(call.a_invite, status, to_tag=call.a.local_tag,
                                         headers=headers)
            self._respond(call.a_key, response)
        call.status, call.cause = outcome, cause
        self._finish(call)

    # --- in-dialog requests ------------------------------------------------------------------

    def _in_dialog(self, event: RequestReceived) -> None:
        request = event.request
        answer = stateless_answer(request, methods=SIPMASK_METHODS,
                                  supported=REQUIRE_SUPPORTED, accepted_types=ACCEPTED_TYPES)
        entry = self._by_leg.get((request.call_id or "", request.to_tag or ""))
        if entry is None:
            self._respond(event.key, answer or make_response(request, 481))
            return
        call, leg = entry
        if answer is not None and request.method != "OPTIONS":
            self._respond(event.key, answer)
            return
        dialog = leg.dialog
        if leg.side is Side.CALLEE and dialog is None:
            dialog = call.b_dialogs.for_request(request)
        if dialog is None:
            self._respond(event.key, make_response(request, 481))
            return
        verdict = dialog.receive_request(request)
        if verdict is not None:
            self._respond(event.key, verdict)
            return
        method = request.method
        if method == "BYE":
            self._respond(event.key, dialog.create_response(request, 200))
            if call.phase is Phase.ANSWERED:
                self._hang_up(call, leg, "completed", reason=reason_value(request),
                              cause=f"bye-{leg.side.value}")
            elif leg.side is Side.CALLER:
                self._fail(call, 487, "cancelled", "bye-caller")
            return
        if method == "OPTIONS":
            self._respond(event.key, dialog.create_response(
                request, 200, headers=[("Allow", ", ".join(SIPMASK_METHODS))]))
            return
        if method == "PRACK":
            # sipmask sends no reliable provisionals, so nothing to acknowledge (RFC 3262 §3).
            self._respond(event.key, dialog.create_response(request, 481))
            return
        if method in ("INVITE", "UPDATE"):
            self._touch_refresh(call, leg)
        self._relay(call, leg, event, dialog)

    def _relay(self, call: Call, leg: Leg, event: RequestReceived, dialog: Dialog) -> None:
        request = event.request
        method = request.method
        other = call.other(leg)
        target = other.dialog if other is not None else None
        if other is None or target is None or call.phase is not Phase.ANSWERED:
            # In an early dialog there is nothing to relay to yet (UPDATE/INFO before 200).
            self._respond(event.key, dialog.create_response(request, 491 if method in (
                "INVITE", "UPDATE") else 481))
            return
        try:
            body = crossing_body(request, method, other.origin)
        except BodyRefused as refused:
            self._respond(event.key, dialog.create_response(
                request, 415, headers=[("Accept", ", ".join(refused.accept))]))
            return
        except ParseError:
            self._respond(event.key, dialog.create_response(request, 400, "Bad Request (SDP)"))
            return
        headers = crossing_headers(request, self.allow) + self._ua_header + body.headers()
        try:
            sent = target.create_request(method, headers=headers, body=body.data)
        except LocalProtocolError:
            self._respond(event.key, dialog.create_response(
                request, 491 if method == "INVITE" else 500))
            return
        key = client_key(sent)
        call.relays[key] = Relay(leg, event.key, request, sent)
        kind = "offer" if method in ("INVITE", "UPDATE") else "answer"
        self._deliver(call, other, sent, kind, lambda: self._send(call, other, sent))

    def _relayed_response(self, call: Call, key: TransactionKey, relay: Relay,
                          response: Response, retransmission: bool) -> None:
        other = call.other(relay.source)
        assert other is not None and other.dialog is not None
        status = response.status
        method = relay.sent.method
        if status < 200:
            return  # provisionals of relayed requests stay on their leg
        if method == "INVITE" and status < 300:
            other.dialog.receive_response(response)
            if retransmission:
                ack = other.dialog.ack_for_retransmitted_2xx(response)
                if ack is not None:
                    self._send(None, other, ack)
                return
            if has_sdp(relay.request) or not has_sdp(response):
                self._send(None, other, other.dialog.create_ack(response))
            else:
                call.deferred_ack = (other.dialog, response)
        else:
            other.dialog.receive_response(response)
        call.relays.pop(key, None)
        self._answer_relay(relay, status, response)
        if status in (408, 481) and call.phase is Phase.ANSWERED:
            self._hang_up(call, other, "completed", cause=f"{status}-{other.side.value}")

    def _answer_relay(self, relay: Relay, status: int, response: Response | None = None) -> None:
        source = relay.source
        dialog = source.dialog
        call = self._by_leg.get((source.call_id, source.local_tag))
        if dialog is None or call is None:
            return
        method = relay.request.method
        headers: list[tuple[str, str]] = []
        data = b""
        if response is not None:
            try:
                body = crossing_body(response, method, source.origin)
            except (BodyRefused, ParseError):
                body = crossing_body(Response(status, ""), method, source.origin)
            headers = crossing_headers(response, self.allow) + body.headers()
            data = body.data
        status = map_failure(status) if status >= 300 else status
        answer = dialog.create_response(relay.request, status, headers=headers, body=data)

        def send() -> None:
            if self._respond(relay.server_key, answer) and method == "INVITE" and (
                200 <= status < 300
            ):
                self._retransmit_2xx(call[0], source, relay.server_key, answer)

        kind = "answer" if has_sdp(relay.request) else "offer"
        self._deliver(call[0], source, answer, kind, send)

    def _on_ack(self, event: AckReceived) -> None:
        request = event.request
        entry = self._by_leg.get((request.call_id or "", request.to_tag or ""))
        if entry is None:
            return
        call, leg = entry
        dialog = leg.dialog
        if dialog is None:
            return
        dialog.receive_request(request)
        pending = call.deferred_ack
        other = call.other(leg)
        if pending is not None and other is not None:
            call.deferred_ack = None
            target_dialog, response = pending
            try:
                body = crossing_body(request, "ACK", other.origin)
            except (BodyRefused, ParseError):
                body = crossing_body(Response(200, ""), "ACK", other.origin)
            ack = target_dialog.create_ack(response, headers=body.headers(), body=body.data)
            self._deliver(call, other, ack, "answer", lambda: self._send(None, other, ack))

    # --- 2xx retransmission (RFC 6026) and session timers (RFC 4028) -------------------------

    def _retransmit_2xx(self, call: Call, leg: Leg, key: TransactionKey, response: Response
                        ) -> None:
        """RFC 6026 §8.1 / RFC 3261 §13.3.1.4: over UDP the 2xx to an INVITE is re-sent at
        T1, 2*T1... up to T2 until its ACK; without an ACK after 64*T1 the call ends."""
        if leg.transport != "udp":
            return
        t1 = self.config.sip.timers.t1
        cseq = response.cseq.number if response.cseq else 0
        name = f"2xx-{leg.side.value}-{cseq}"
        call.timers[name] = asyncio.get_running_loop().call_later(
            t1, self._resend_2xx, call, leg, key, response, name, cseq, t1, t1)

    def _resend_2xx(self, call: Call, leg: Leg, key: TransactionKey, response: Response,
                    name: str, cseq: int, interval: float, elapsed: float) -> None:
        call.timers.pop(name, None)
        dialog = leg.dialog
        if dialog is None or dialog.awaiting_ack != cseq or call.ended:
            return
        timers = self.config.sip.timers
        if elapsed >= 64 * timers.t1:
            self._hang_up(call, None, "failed", reason="SIP;cause=408", cause="no-ack")
            return
        if not self._respond(key, response):
            return
        interval = min(2 * interval, timers.t2)
        call.timers[name] = asyncio.get_running_loop().call_later(
            interval, self._resend_2xx, call, leg, key, response, name, cseq, interval,
            elapsed + interval)

    def _timer_headers_for_a(self, call: Call) -> list[tuple[str, str]]:
        """Session-Expires in the 200 to the caller: its own interval, the caller refreshes
        (RFC 4028 §9); sipmask only watches that refreshes come."""
        interval, _ = session_expires(call.a_invite)
        if not interval:
            return []
        call.a.session_interval = interval
        call.a.we_refresh = False
        self._touch_refresh(call, call.a)
        headers = [("Session-Expires", f"{interval};refresher=uac")]
        if "timer" in supported_tags(call.a_invite):
            headers.append(("Require", "timer"))
        return headers

    def _session_timer_from_2xx(self, call: Call, leg: Leg, response: Response) -> None:
        interval, refresher = session_expires(response)
        if not interval:
            return
        leg.session_interval = interval
        leg.we_refresh = refresher == "uac"
        if leg.we_refresh:
            self._schedule_refresh(call, leg)
        else:
            self._touch_refresh(call, leg)

    def _schedule_refresh(self, call: Call, leg: Leg) -> None:
        if not leg.session_interval or not leg.we_refresh:
            return

        def refresh() -> None:
            if leg.dialog is None or call.ended:
                return
            try:
                update = leg.dialog.create_request("UPDATE", headers=[
                    ("Session-Expires", f"{leg.session_interval};refresher=uac"),
                    ("Supported", "timer")])
            except LocalProtocolError:
                return
            self._send(call, leg, update)
            self._touch_refresh(call, leg, expect_only=True)

        self._later(call, f"refresh-{leg.side.value}", leg.session_interval / 2, refresh)

    def _touch_refresh(self, call: Call, leg: Leg, expect_only: bool = False) -> None:
        """A refresh arrived (or was sent): the session lives another interval; a session
        with no refresh in time is stale and torn down (RFC 4028 §10)."""
        if not leg.session_interval:
            return
        grace = min(32.0, leg.session_interval / 3)
        self._later(call, f"expire-{leg.side.value}", leg.session_interval + grace,
                    lambda: self._hang_up(call, None, "completed", reason="SIP;cause=408",
                                          cause="session-expired"))

    # --- ending --------------------------------------------------------------------------------

    def _hang_up(self, call: Call, by: Leg | None, outcome: str, *, reason: str | None = None,
                 cause: str | None = None) -> None:
        """BYE every answered leg but `by` (which hung up), then end the call."""
        if call.ended:
            return
        if call.phase is not Phase.ANSWERED:
            self._fail(call, 480 if by is None else 487, outcome, cause or "hangup")
            return
        headers = [("Reason", reason)] if reason else []
        for leg in (call.a, call.b):
            if leg is None or leg is by or leg.dialog is None or leg.dialog.is_terminated:
                continue
            try:
                bye = leg.dialog.create_request("BYE", headers=headers + self._ua_header)
            except LocalProtocolError:
                continue
            self._send(call, leg, bye)
            leg.dialog.terminate()
        call.status = outcome if call.answered_at is None else "completed"
        call.cause = cause or (f"bye-{by.side.value}" if by is not None else outcome)
        self._finish(call)

    def _finish(self, call: Call) -> None:
        if call.ended:
            return
        call.phase = Phase.ENDED
        call.ended_at = self.clock()
        call.cancel_timers()
        self.calls.discard(call)
        self.stats.calls_active -= 1
        self.stats.outcomes[call.status] = self.stats.outcomes.get(call.status, 0) + 1
        if call.counted:
            call.trunk.active_calls -= 1
        # Keep the legs findable a little longer (late BYE answers, a retransmitted 2xx to
        # ACK again), but not for long: an ended call holds its messages, and at thousands
        # of calls per second 32 s of them is hundreds of MB. The transaction layer absorbs
        # retransmissions on its own.
        call.relays.clear()
        call.outbox.clear()
        loop = asyncio.get_running_loop()
        loop.call_later(FORGET_AFTER, self._forget, call)
        self._record(call)
        if self.media is not None:
            self._spawn(self.media.end(call.id))

    def _forget(self, call: Call) -> None:
        for leg in (call.a, call.b):
            if leg is not None:
                self._by_leg.pop((leg.call_id, leg.local_tag), None)
        self._by_server.pop(call.a_key, None)
        for key in call.client_keys:
            if self._by_client.get(key) is call:
                del self._by_client[key]

    def _record(self, call: Call) -> None:
        binding = call.binding
        duration = (
            (call.ended_at or 0.0) - call.answered_at if call.answered_at is not None else 0.0
        )
        log.info(
            "call %s %s: caller %s dialled %s, callee %s, cause %s, %.1f s answered",
            call.id,
            call.status,
            mask_party(call.caller),
            call.dialled,
            mask_party(binding.callee.key) if binding else "-",
            call.cause or "-",
            duration,
            extra={"fields": {
                "event": "call.ended",
                "call_id": call.id,
                "session_id": binding.session_id if binding else None,
                "outcome": call.status,
                "cause": call.cause,
                "duration": round(duration, 3),
            }},
        )
        if binding is None:
            return
        record = Interaction(
            id=call.id,
            session_id=binding.session_id,
            caller=binding.caller.key,
            callee=binding.callee.key,
            dialled=call.dialled,
            presented=binding.caller_id,
            started_at=call.started_at,
            answered_at=call.answered_at,
            ended_at=call.ended_at,
            status=call.status,
            cause=call.cause,
        )
        self._queue_record(record)
        if self.events is not None:
            self.events.publish("call.ended", msgspec.to_builtins(record))

    def _queue_record(self, record: Interaction) -> None:
        """Records are written in batches (one store round trip per `RECORD_BATCH_DELAY`,
        not one per call): on Redis a write per call cost a third of the call rate."""
        self._records.append(record)
        if len(self._records) == 1:
            asyncio.get_running_loop().call_later(RECORD_BATCH_DELAY, self._flush_records)

    def _flush_records(self) -> None:
        batch, self._records = self._records, []
        if batch:
            self._spawn(self._save(batch))

    async def _save(self, records: list[Interaction]) -> None:
        try:
            kept = await self.store.record_interactions(records)
        except (StoreError, SipError) as exc:
            log.warning("%d call record(s) not kept: %s", len(records), exc)
            return
        if kept < len(records):
            log.info("%d call record(s) of sessions already gone", len(records) - kept)

    # --- chat (RFC 3428) -----------------------------------------------------------------------

    async def _new_message(self, event: RequestReceived, trunk: TrunkState) -> None:
        request = event.request
        identities = self._identities(event, trunk)
        if identities is None:
            self._reject(event, self.config.calls.reject_status)
            return
        dialled, caller = identities
        try:
            binding = await self.store.lookup(dialled, caller)
        except StoreError:
            self._reject(event, 500)
            return
        if binding is None:
            self._reject(event, self.config.calls.reject_status)
            return
        try:
            targets = await self.router.targets(binding.callee.route, trunk)
        except (ValueError, OSError):
            targets = []
        if not targets:
            self._reject(event, 480)
            return
        target = targets[0]
        leg = self._make_leg(Side.CALLEE, target.address, target.transport, self._new_call_id(),
                             binding.caller_id)
        try:
            body = crossing_body(request, "MESSAGE", leg.origin)
        except BodyRefused as refused:
            self._reject(event, 415, [("Accept", ", ".join(refused.accept))])
            return
        callee = binding.callee.key
        user = callee.split("@", 1)[0]
        uri = target.fixed_uri or f"sip:{user}@{target.uri_host}"
        local_host = self._local(target.transport, target.address)
        message = Request("MESSAGE", uri, [
            ("Via", f"{leg.via};branch={new_branch()}"),
            ("Max-Forwards", str(max(min(request.max_forwards or 70, 70) - 1, 1))),
            ("From", f"<sip:{binding.caller_id}@{local_host}>;tag={leg.local_tag}"),
            ("To", f"<{uri.split(';', 1)[0]}>"),
            ("Call-ID", leg.call_id),
            ("CSeq", "1 MESSAGE"),
            *self._ua_header,
            *body.headers(),
        ], body.data)
        waiter: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._message_waiters[client_key(message)] = waiter
        self._send(None, leg, message)
        try:
            status = await asyncio.wait_for(waiter, 64 * self.config.sip.timers.t1 + 1)
        except asyncio.TimeoutError:
            status = 0
        finally:
            self._message_waiters.pop(client_key(message), None)
        status = status or 408
        self.stats.messages_relayed += 1
        self._reject(event, map_failure(status) if status >= 300 else status)


def map_failure(status: int) -> int:
    """The status relayed to the other leg for a failure (RFC 3261 §16.7: a 503 would make
    the caller's carrier take sipmask out of service; a 3xx would reveal a Contact; a
    challenge or an extension problem concerns sipmask's own leg)."""
    if status == 503:
        return 500
    if 300 <= status < 400:
        return 480
    if status in (401, 407, 420, 421, 422, 423, 494):
        return 500
    return status
