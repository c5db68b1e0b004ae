"""The masking B2BUA: call control on top of the transaction layer, policy from the config,
bindings from the store (issue 5).

Theory of operation:

- Sans-IO: `CallEngine` is fed the transaction layer's events (`dispatch`) with `now` set,
  and appends actions (`actions.py`: send, CANCEL, route, media, records) to its outbox; the
  asyncio shell (`shell.B2BUA`, the endpoint's event callback) performs them after each
  event and feeds back what its tasks learn (the one binding lookup per new call, DNS, a
  connection, the media hook). Call-level events go through the state table (`table.py`).
  Timers that belong to calls (ring timeout, Timer C, call-time limit, 2xx retransmission,
  session timers, the INVITE given up after its CANCEL) are deadlines in one heap
  (`timers.py`, no clock of its own); the shell keeps one loop timer for the earliest.
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

Files: `core.py` (state, sending, ending a call, the table's dispatcher), `call_setup.py`
(the INVITE on both legs, forking, failover), `relay.py` (in-dialog requests),
`session_timers.py` (RFC 4028), `records.py`, `table.py`, `actions.py`, `hooks.py`; this
module puts the call logic together and dispatches the layer's events. `shell.py` runs it
on an endpoint, with `probing.py`, `chat.py` and `overload.py` beside it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .._core import Request, Response
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
from ..sip.validate import options_response, stateless_answer
from ..store import SessionStore
from ..store.events import EventPublisher
from ..store.model import Interaction
from .actions import Abandon, Action, RelayMessage
from .call import Call, Leg, Side, new_token
from .call_setup import CallSetup
from .core import (
    ACCEPTED_TYPES,
    DESTINATION_DOWN_FOR,
    REQUIRE_SUPPORTED,
    EngineStats,
    Waiter,
    map_failure,
)
from .hooks import PlatformHooks
from .masking import SIPMASK_METHODS
from .media import MediaHook
from .records import CallRecords
from .relay import DialogRelay
from .routing import Router
from .settings import B2buaSettings
from .table import TABLE, CallEvent
from .timers import CallTimers, Owner

if TYPE_CHECKING:
    from .dns import SipResolver

__all__ = ["CallEngine", "EngineStats", "map_failure"]


class CallEngine(CallSetup, DialogRelay, CallRecords):
    """The call logic, sans-IO: fed events (`dispatch`) with `now` set, it appends actions
    to `actions`. `shell.B2BUA` runs it on an endpoint.

    Args:
        config: its settings (`settings.B2buaSettings`: trunks, masking, calls, media,
            timers; the checked `Config` is one).
        store: where bindings are looked up and call records kept.
        clock: wall-clock seconds for call records (call timers run on `now`); by default
            `now` itself (the shell gives `time.time`).
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
        config: B2buaSettings,
        store: SessionStore,
        *,
        clock: Callable[[], float] | None = None,
        media: MediaHook | None = None,
        call_ids: Callable[[], str] | None = None,
        events: EventPublisher | None = None,
        hooks: PlatformHooks | None = None,
        resolver: SipResolver | None = None,
    ) -> None:
        self.store = store
        self.events = events
        self.hooks = hooks
        self.resolver: SipResolver | None = resolver
        self.media = media
        self._new_call_id = call_ids or (lambda: new_token(16))
        self.clock = clock or (lambda: self.now)  # the shell gives the wall clock
        self.stats = EngineStats()
        self.draining = False
        self.overloaded = False
        self._message_waiters: dict[TransactionKey, Waiter] = {}
        self.now = 0.0
        self.actions: list[Action] = []
        self._apply(config)
        self.calls: set[Call] = set()
        self._by_server: dict[TransactionKey, Call] = {}
        self._by_client: dict[TransactionKey, Call] = {}
        self._by_leg: dict[tuple[str, str], tuple[Call, Leg]] = {}
        self._down: dict[Address, float] = {}
        self._records: list[Interaction] = []
        # Call timers: a deadline heap; the shell keeps one loop timer armed for it.
        self.timers = CallTimers(on_error=self._timer_failed)
        self._own = Owner()
        self._handlers = {pair: getattr(self, name) for pair, name in TABLE.items()}

    def _apply(self, config: B2buaSettings) -> None:
        self.config = config
        # The resolver's cache outlives reloads (the first Router makes it by default).
        self.router = Router(config, resolver=self.resolver)
        self.resolver = self.router.resolver
        self.allow = config.masking.allow_headers
        self._pool_numbers = frozenset(n for pool in config.pools for n in pool.numbers)
        self.reject_unknown = config.sip.unknown_source == "reject"
        agent = config.masking.user_agent
        self._ua_header = [("User-Agent", agent)] if agent else []
        self._server_header = [("Server", agent)] if agent else []

    def reload(self, config: B2buaSettings) -> None:
        """Take a new (checked) configuration: trunks, ACLs, limits, masking policy and call
        timers apply to new calls; calls in progress keep the trunk they started on. The
        listeners and timers T1/T2/T4 are not changed by a reload."""
        old = {trunk.name: trunk.active_calls for trunk in self.router.trunks}
        self._apply(config)
        for trunk in self.router.trunks:
            trunk.active_calls = old.get(trunk.name, 0)

    def drain(self) -> None:
        """Stop taking calls: new INVITEs get 503 with Retry-After (so carriers fail over);
        calls in progress go on."""
        self.draining = True

    def dispatch(self, event: SipEvent) -> None:
        """Handle one event of the transaction layer at `now`."""
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
                self.call_event(call, CallEvent.CANCELLED)
        elif isinstance(event, TransactionTimedOut):
            self._on_timeout(event.key)
        elif isinstance(event, TransactionTerminated):
            self._forget_transaction(event.key)

    def _forget_transaction(self, key: TransactionKey) -> None:
        """A transaction ended. Once both INVITE transactions of an answered call are over,
        the parsed INVITEs go (a held call keeps its dialogs, not the messages that made
        them: nothing answers or retries them any more)."""
        call = self._by_server.pop(key, None)
        if call is not None and key == call.a_key and call.a_final_sent:
            call.a_invite = call.a_key = None
        call = self._by_client.pop(key, None)
        if call is not None and key in call.client_keys:
            call.client_keys.remove(key)
        if call is not None and key == call.b_key and call.b is not None and (
            call.b.dialog is not None or call.ended
        ):
            call.b_invite = call.b_key = None
            call.targets = []

    def accepts_request(self, request: Request, source: Address) -> bool:
        return self.router.trunk_for(source) is not None

    def _new_request(self, event: RequestReceived) -> None:
        request = event.request
        trunk = self.router.trunk_for(event.source)
        if trunk is None:
            # Only a trunk's outbound address gets here in "drop" mode (the listeners drop
            # strangers): it may answer calls, not place them.
            if self.reject_unknown:
                self._reject(event, 403)
            else:
                self.actions.append(Abandon(event.key))
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
            self.actions.append(RelayMessage(event, trunk))
        else:  # BYE, INFO, UPDATE, PRACK outside any dialog (RFC 3261 §12.2.2)
            self._reject(event, 481)

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
        # PRACK, UPDATE refreshes, BYE we originated: an answer to a refresh re-arms its
        # timer (a 4xx such as 405 still shows the peer is there); 408/481 end the call.
        if response.cseq and response.cseq.method == "UPDATE" and response.status >= 200:
            leg = self._leg_of_response(call, response)
            if leg is None:
                return
            if response.status in (408, 481):
                self._hang_up(call, None, "completed", reason="SIP;cause=408",
                              cause=f"refresh-{response.status}")
            else:
                self._schedule_refresh(call, leg)

    def _b_timed_out(self, call: Call, transport_error: bool) -> None:
        """The callee's INVITE got no answer (Timer B) or could not be sent at all."""
        if call.a_final_sent or call.ended:
            self._finish(call)
            return
        if call.b is not None:
            self._down[call.b.peer] = self._now() + DESTINATION_DOWN_FOR
        if call.target_index + 1 < len(call.targets) and not call.saw_provisional:
            call.target_index += 1
            self._start_b(call)
        elif transport_error:  # the destination could not be reached at all: failed
            self._fail(call, map_failure(503), "failed", "transport")
        else:
            self._fail(call, 408, "no-answer", "timer-b")

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

    def _on_timeout(self, key: TransactionKey, *, transport_error: bool = False) -> None:
        waiter = self._message_waiters.get(key)
        if waiter is not None and not waiter.done():
            waiter.set_result(0)  # no answer at all
        call = self._by_client.get(key)
        if call is None:
            return
        if key == call.b_key:
            self.call_event(call, CallEvent.B_TIMED_OUT, transport_error)
            return
        relay = call.relays.pop(key, None)
        if relay is not None:
            self._answer_relay(relay, 408)
        elif key.method == "BYE":
            self._finish(call)
