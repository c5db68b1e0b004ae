"""The shared core of the call engine: its state, sending on a leg (through the media
hook, in order), the call timers (a deadline heap, `timers.py`), building legs, and ending
calls (failure to the caller, BYE on answered legs, forgetting them).

Sans-IO: nothing here touches a socket, the loop or a clock. Sends, CANCELs, media and store
work are appended to `actions` (`actions.py`) for the shell (`shell.py`) to perform; `now`
is set by the shell before each event. The other parts of the engine (`call_setup.py`,
`relay.py`, `session_timers.py`, `records.py`, `probing.py`, `chat.py`, `overload.py`)
extend `CallControl`; `engine.py` puts them together as `B2BUA`.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from .._core import Request, Response, SdpOrigin
from ..errors import LocalProtocolError, ParseError
from ..sip.dialog import Dialog
from ..sip.events import (
    Address,
    RequestReceived,
    TransactionKey,
)
from ..sip.responses import make_response
from ..sip.transaction import client_key
from ..sip.validate import stateless_tag
from ..store import SessionStore
from ..store.events import EventPublisher
from ..store.model import Interaction
from ..transport.endpoint import format_hostport
from . import numbers
from .actions import (
    Action,
    CancelInvite,
    EndMedia,
    GiveUpInvite,
    PumpMedia,
    SendRequest,
    SendResponse,
)
from .call import Call, Leg, Phase, Side, new_branch, new_token
from .hooks import PlatformHooks
from .media import MediaHook
from .routing import Router, TrunkState
from .settings import B2buaSettings
from .table import CallEvent, Default, default
from .timers import CallTimers, Owner, TimerOwner

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


class Waiter(Protocol):
    """Where the final status of an OPTIONS or MESSAGE sipmask sent goes (a future)."""

    def done(self) -> bool: ...

    def set_result(self, result: int, /) -> None: ...


class CallControl:
    """State and helpers every part of the engine uses."""

    # State, set by `B2BUA.__init__` (engine.py) and shared by the parts of the engine.
    config: B2buaSettings
    store: SessionStore
    events: EventPublisher | None
    hooks: PlatformHooks | None
    media: MediaHook | None
    clock: Callable[[], float]
    """Wall-clock seconds for call records (injected; call timers run on `now`)."""
    now: float
    """The time of the event being handled (the shell sets it before each one)."""
    actions: list[Action]
    """The outbox: what the shell performs after the event (`actions.py`)."""
    local_address: Callable[[str, Address], Address]
    """sipmask's address for a transport towards a peer (the endpoint's listeners; raises
    LookupError when there is none)."""
    stats: EngineStats
    draining: bool
    overloaded: bool
    router: Router
    allow: tuple[str, ...]
    reject_unknown: bool
    calls: set[Call]
    timers: CallTimers
    _new_call_id: Callable[[], str]
    _message_waiters: dict[TransactionKey, Waiter]
    _by_server: dict[TransactionKey, Call]
    _by_client: dict[TransactionKey, Call]
    _by_leg: dict[tuple[str, str], tuple[Call, Leg]]
    _down: dict[Address, float]
    _records: list[Interaction]
    _own: Owner
    _handlers: dict[tuple[Phase, CallEvent], Callable[..., None]]
    """The state table (`table.py`) with its handlers bound."""
    _pool_numbers: frozenset[str]
    _ua_header: list[tuple[str, str]]
    _server_header: list[tuple[str, str]]

    # Provided by the parts above this one (engine.py, records.py).

    def _on_timeout(self, key: TransactionKey, *, transport_error: bool = False) -> None:
        raise NotImplementedError

    def _record(self, call: Call) -> None:
        raise NotImplementedError

    def _drain(self) -> None:
        """Perform the outbox now (the shell's; for the async parts, chat and probing)."""
        raise NotImplementedError

    def _respond(self, key: TransactionKey, response: Response) -> None:
        for name, value in self._server_header:
            response.add_header(name, value)
        self.actions.append(SendResponse(key, response))

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
        self.actions.append(SendRequest(leg, request, key))
        return key

    def _deliver(self, call: Call, leg: Leg, message: Request | Response, kind: str | None,
                 send: Callable[[], object]) -> None:
        """Send `message` on `leg` through the media hook (when there is one and the message
        carries SDP of `kind`), keeping the call's messages in order."""
        if self.media is None or (not call.outbox and (kind is None or not message.body)):
            send()
            return
        if call.outbox is None:
            call.outbox = deque()
        call.outbox.append((message, leg.side.value, kind if message.body else None, send))
        if not call.pumping:
            call.pumping = True
            self.actions.append(PumpMedia(call))

    def _media_refused(self, call: Call) -> None:
        """The media hook refused an offer or answer of the call: it ends."""
        if call.phase is Phase.ANSWERED:
            self._hang_up(call, None, "failed", cause="media")
        else:
            self._fail(call, 503, "failed", "media")

    def _later(self, call: Call, name: str, delay: float, callback: Callable[[], None]) -> None:
        self.timers.arm(call, name, self._now() + delay, callback)

    def _timer_failed(self, owner: TimerOwner, name: str) -> None:
        log.exception("call %s: timer %s failed", getattr(owner, "id", "-"), name)

    def _now(self) -> float:
        """The time call logic sees: that of the event being handled."""
        return self.now

    def _local(self, transport: str, peer: Address) -> str:
        """sipmask's host:port as the peer should see it (advertised address)."""
        return format_hostport(self.local_address(transport, peer))

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
            origin=SdpOrigin(self.local_address(transport, peer).host),
            via=via,
            contact=contact,
        )

    def _a_dialog(self, call: Call) -> Dialog | None:
        if call.a.dialog is None:
            try:
                call.a.dialog = Dialog.from_uas(
                    call.caller_invite,
                    call.a.local_tag,
                    call.a.contact,
                    via=call.a.via,
                    new_branch=new_branch,
                )
            except (ParseError, LocalProtocolError):
                return None
        return call.a.dialog

    def _retransmit_2xx(self, call: Call, leg: Leg, key: TransactionKey, response: Response
                        ) -> None:
        """RFC 6026 §8.1 / RFC 3261 §13.3.1.4: over UDP the 2xx to an INVITE is re-sent at
        T1, 2*T1... up to T2 until its ACK; without an ACK after 64*T1 the call ends."""
        if leg.transport != "udp":
            return
        t1 = self.config.sip.timers.t1
        cseq = response.cseq.number if response.cseq else 0
        name = f"2xx-{leg.side.value}-{cseq}"
        self._later(call, name, t1,
                    lambda: self._resend_2xx(call, leg, key, response, name, cseq, t1, t1))

    def _resend_2xx(self, call: Call, leg: Leg, key: TransactionKey, response: Response,
                    name: str, cseq: int, interval: float, elapsed: float) -> None:
        dialog = leg.dialog
        if dialog is None or dialog.awaiting_ack != cseq or call.ended:
            return
        timers = self.config.sip.timers
        if elapsed >= 64 * timers.t1:
            self._hang_up(call, None, "failed", reason="SIP;cause=408", cause="no-ack")
            return
        self._respond(key, response)
        interval = min(2 * interval, timers.t2)
        self._later(call, name, interval, lambda: self._resend_2xx(
            call, leg, key, response, name, cseq, interval, elapsed + interval))

    def call_event(self, call: Call, event: CallEvent, *args: Any) -> None:
        """Feed the call one event: the state table's handler for (phase, event), or the
        event's default outcome (`table.py`)."""
        handler = self._handlers.get((call.phase, event))
        if handler is not None:
            handler(call, *args)
        elif default(call.phase, event) is Default.TEAR_DOWN:
            self._hang_up(call, None, "failed", reason="SIP;cause=500",
                          cause=f"unexpected {event.value}")

    def _shut_down(self, call: Call) -> None:
        self._hang_up(call, None, "shutdown", reason="SIP;cause=503")

    def _ring_timeout(self, call: Call) -> None:
        self._give_up(call, 480, "no-answer", "ring")

    def _timer_c(self, call: Call) -> None:
        self._give_up(call, 408, "no-answer", "timer-c")

    def _call_limit(self, call: Call) -> None:
        self._hang_up(call, None, "completed", reason="Q.850;cause=102", cause="time-limit")

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
            key, actions = call.b_key, self.actions
            actions.append(CancelInvite(key))  # nothing when it already ended
            # RFC 3261 §9.1: a callee that rang and then goes silent would hold the INVITE
            # transaction for ever (Proceeding has no timer): 64*T1 after the CANCEL it is
            # given up (an answered or ended one is left alone). An engine timer: the call
            # ends before that.
            self.timers.arm(self._own, f"give-up {key.branch}",
                            self._now() + 64 * self.config.sip.timers.t1,
                            lambda: actions.append(GiveUpInvite(key)))
        if not call.a_final_sent:
            call.a_final_sent = True
            headers = [("Reason", reason)] if reason else []
            if status == 503 and self.config.sip.retry_after:
                headers.append(("Retry-After", str(self.config.sip.retry_after)))
            dialog = call.a.dialog
            if dialog is not None:
                response = dialog.create_response(call.caller_invite, status, headers=headers)
            else:
                response = make_response(call.caller_invite, status, to_tag=call.a.local_tag,
                                         headers=headers)
            self._respond(call.caller_key, response)
        call.status, call.cause = outcome, cause
        self._finish(call)

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
        self.timers.cancel_all(call)
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
        call.outbox = None
        self.timers.arm(call, "forget", self._now() + FORGET_AFTER, lambda: self._forget(call))
        self._record(call)
        if self.media is not None and call.media_context is not None:
            self.actions.append(EndMedia(call.media_context))

    def _forget(self, call: Call) -> None:
        for leg in (call.a, call.b):
            if leg is not None:
                self._by_leg.pop((leg.call_id, leg.local_tag), None)
        if call.a_key is not None:
            self._by_server.pop(call.a_key, None)
        for key in call.client_keys:
            if self._by_client.get(key) is call:
                del self._by_client[key]


    def _identities(self, event: RequestReceived, trunk: TrunkState) -> tuple[str, str] | None:
        request = event.request
        dialled = numbers.dialled_number(request, trunk.rules)
        caller = numbers.caller_identity(
            request, trunk.rules, trusted=trunk.config.trusted_identity
        )
        if dialled is None or caller is None:
            return None
        return dialled, caller

def host_of(hostport: str) -> str:
    """The host of `host:port` (`[v6]:port` too), for a TLS certificate check."""
    if hostport.startswith("["):
        return hostport[1:].split("]", 1)[0]
    return hostport.rsplit(":", 1)[0] if hostport.count(":") == 1 else hostport


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
