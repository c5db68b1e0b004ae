"""The four transaction state machines of RFC 3261 §17, with RFC 6026's Accepted state.

Theory of operation
-------------------
A transaction is one request and every response to it (plus, for an INVITE answered with a
non-2xx, the ACK). There are four machines: client/server × INVITE/non-INVITE. Each one is an
`Enum` of states and a transition table `{(state, Input): next state}`; a pair missing from a
table means "absorb this input in this state" (a duplicate, or a late message). The tables
are the whole protocol; the methods beside them only do what a transition requires: hand a
message to the transport, pass one up to the TU, arm or disarm a timer.

The machines do no I/O and read no clock. They talk to the `TransactionLayer` through the
small `Context` protocol: `transmit` queues bytes for an address, `emit` queues an event for
the TU, `arm` sets a deadline on the layer's single heap, `settled` tells it the transaction
left its in-progress states, and `terminate` forgets the transaction. Every input carries
`now`.

In progress vs. lingering: a transaction is *in progress* until its final response is sent
(server) or received (client): Calling/Trying/Proceeding. The layer's overload bound counts
only those. After that it only lingers to absorb retransmissions (Completed, Confirmed,
Accepted: up to 32 s on UDP), thousands of them at a time under load, so on leaving the
in-progress states (`_settle`) a machine drops every parsed message it holds and keeps just
what absorbing needs: its key, destination, reliable flag, timers, and the bytes it may have
to send again (a server's last non-2xx final response, a client INVITE's ACK) or the To tags
it has seen (client INVITE, Accepted), or the To tag CANCEL matching reads (server INVITE).

Retransmission happens only on unreliable transports (Timers A, E, G); on reliable ones the
"linger" timers D, I, J, K are zero, so those states are left at once. Duplicates stop here:
a retransmitted request makes a server transaction re-send its last response, a
retransmitted non-2xx final makes the client INVITE transaction re-send its ACK. The one
exception (RFC 6026): 2xx responses to an INVITE belong to the dialog. The server INVITE
transaction moves to Accepted on a 2xx from the TU and lets the TU retransmit it (Timer L);
the client INVITE transaction moves to Accepted on the first 2xx and passes every later 2xx
up (Timer M), so the dialog can re-send its ACK.

Client INVITE (§17.1.1, RFC 6026 §8.4)::

    Calling --1xx--> Proceeding --300-699 / send ACK--> Completed --D--> Terminated
    Calling|Proceeding --2xx--> Accepted --M--> Terminated
    Calling --B--> Terminated (timed out)

Client non-INVITE (§17.1.2)::

    Trying --1xx--> Proceeding --final--> Completed --K--> Terminated
    Trying|Proceeding --F--> Terminated (timed out)

Server INVITE (§17.2.1, RFC 6026 §8.5-8.7)::

    Proceeding --300-699--> Completed --ACK--> Confirmed --I--> Terminated
    Proceeding --2xx--> Accepted --L--> Terminated
    Completed --H--> Terminated (timed out)

Server non-INVITE (§17.2.2)::

    Trying --1xx--> Proceeding --final--> Completed --J--> Terminated
"""

from __future__ import annotations

from enum import Enum, auto
from typing import Protocol

from .._core import Request, Response
from .events import (
    Address,
    ResponseReceived,
    Role,
    SipEvent,
    TransactionKey,
    TransactionTimedOut,
)
from .timers import Timer, TimerConfig

MAGIC_COOKIE = "z9hG4bK"  # RFC 3261 §8.1.1.7


class Input(Enum):
    """What a machine reacts to: messages (classified by status) and its timers."""

    REQUEST = auto()  # a (retransmitted) request, server side
    ACK = auto()  # an ACK matching a server INVITE transaction
    PROVISIONAL = auto()  # 1xx (received, or from the TU)
    SUCCESS = auto()  # 2xx
    FAILURE = auto()  # 300-699
    TIMER_A = auto()
    TIMER_B = auto()
    TIMER_D = auto()
    TIMER_E = auto()
    TIMER_F = auto()
    TIMER_G = auto()
    TIMER_H = auto()
    TIMER_I = auto()
    TIMER_J = auto()
    TIMER_K = auto()
    TIMER_L = auto()
    TIMER_M = auto()
    TIMER_ANSWER = auto()  # handled by the layer (no transition in any table)


TIMER_INPUT = {timer: Input[f"TIMER_{timer.value}"] for timer in Timer}


def classify(status: int) -> Input:
    if status < 200:
        return Input.PROVISIONAL
    if status < 300:
        return Input.SUCCESS
    return Input.FAILURE


class ClientInviteState(Enum):
    CALLING = auto()
    PROCEEDING = auto()
    COMPLETED = auto()
    ACCEPTED = auto()  # RFC 6026 §8.4
    TERMINATED = auto()


class ClientNonInviteState(Enum):
    TRYING = auto()
    PROCEEDING = auto()
    COMPLETED = auto()
    TERMINATED = auto()


class ServerInviteState(Enum):
    PROCEEDING = auto()
    COMPLETED = auto()
    CONFIRMED = auto()
    ACCEPTED = auto()  # RFC 6026 §8.6
    TERMINATED = auto()


class ServerNonInviteState(Enum):
    TRYING = auto()
    PROCEEDING = auto()
    COMPLETED = auto()
    TERMINATED = auto()


_CI = ClientInviteState
_CN = ClientNonInviteState
_SI = ServerInviteState
_SN = ServerNonInviteState

# RFC 3261 Figure 5, with RFC 6026 Figure 3 (Accepted).
CLIENT_INVITE: dict[tuple[ClientInviteState, Input], ClientInviteState] = {
    (_CI.CALLING, Input.TIMER_A): _CI.CALLING,  # retransmit, A doubles
    (_CI.CALLING, Input.TIMER_B): _CI.TERMINATED,  # timeout
    (_CI.CALLING, Input.PROVISIONAL): _CI.PROCEEDING,
    (_CI.CALLING, Input.SUCCESS): _CI.ACCEPTED,
    (_CI.CALLING, Input.FAILURE): _CI.COMPLETED,  # send ACK
    (_CI.PROCEEDING, Input.PROVISIONAL): _CI.PROCEEDING,
    (_CI.PROCEEDING, Input.SUCCESS): _CI.ACCEPTED,
    (_CI.PROCEEDING, Input.FAILURE): _CI.COMPLETED,  # send ACK
    (_CI.COMPLETED, Input.FAILURE): _CI.COMPLETED,  # re-send ACK, absorb
    (_CI.COMPLETED, Input.TIMER_D): _CI.TERMINATED,
    (_CI.ACCEPTED, Input.SUCCESS): _CI.ACCEPTED,  # pass every 2xx up
    (_CI.ACCEPTED, Input.TIMER_M): _CI.TERMINATED,
}

# RFC 3261 Figure 6.
CLIENT_NON_INVITE: dict[tuple[ClientNonInviteState, Input], ClientNonInviteState] = {
    (_CN.TRYING, Input.TIMER_E): _CN.TRYING,  # retransmit, E = min(2E, T2)
    (_CN.TRYING, Input.TIMER_F): _CN.TERMINATED,  # timeout
    (_CN.TRYING, Input.PROVISIONAL): _CN.PROCEEDING,
    (_CN.TRYING, Input.SUCCESS): _CN.COMPLETED,
    (_CN.TRYING, Input.FAILURE): _CN.COMPLETED,
    (_CN.PROCEEDING, Input.TIMER_E): _CN.PROCEEDING,  # retransmit every T2
    (_CN.PROCEEDING, Input.TIMER_F): _CN.TERMINATED,  # timeout
    (_CN.PROCEEDING, Input.PROVISIONAL): _CN.PROCEEDING,
    (_CN.PROCEEDING, Input.SUCCESS): _CN.COMPLETED,
    (_CN.PROCEEDING, Input.FAILURE): _CN.COMPLETED,
    (_CN.COMPLETED, Input.TIMER_K): _CN.TERMINATED,
}

# RFC 3261 Figure 7, with RFC 6026 Figure 5 (Accepted). Responses come from the TU.
SERVER_INVITE: dict[tuple[ServerInviteState, Input], ServerInviteState] = {
    (_SI.PROCEEDING, Input.REQUEST): _SI.PROCEEDING,  # re-send last provisional
    (_SI.PROCEEDING, Input.PROVISIONAL): _SI.PROCEEDING,
    (_SI.PROCEEDING, Input.SUCCESS): _SI.ACCEPTED,  # start L; the TU retransmits the 2xx
    (_SI.PROCEEDING, Input.FAILURE): _SI.COMPLETED,  # start G (unreliable) and H
    (_SI.COMPLETED, Input.REQUEST): _SI.COMPLETED,  # re-send the final response
    (_SI.COMPLETED, Input.TIMER_G): _SI.COMPLETED,  # re-send, G = min(2G, T2)
    (_SI.COMPLETED, Input.ACK): _SI.CONFIRMED,  # start I
    (_SI.COMPLETED, Input.TIMER_H): _SI.TERMINATED,  # timeout: no ACK
    (_SI.CONFIRMED, Input.ACK): _SI.CONFIRMED,  # absorb
    (_SI.CONFIRMED, Input.TIMER_I): _SI.TERMINATED,
    (_SI.ACCEPTED, Input.REQUEST): _SI.ACCEPTED,  # absorb the INVITE (RFC 6026 §8.6)
    (_SI.ACCEPTED, Input.SUCCESS): _SI.ACCEPTED,  # a 2xx (retransmission) from the TU
    (_SI.ACCEPTED, Input.ACK): _SI.ACCEPTED,  # passed to the TU
    (_SI.ACCEPTED, Input.TIMER_L): _SI.TERMINATED,
}

# RFC 3261 Figure 8.
SERVER_NON_INVITE: dict[tuple[ServerNonInviteState, Input], ServerNonInviteState] = {
    (_SN.TRYING, Input.REQUEST): _SN.TRYING,  # absorb: nothing to re-send yet
    (_SN.TRYING, Input.PROVISIONAL): _SN.PROCEEDING,
    (_SN.TRYING, Input.SUCCESS): _SN.COMPLETED,
    (_SN.TRYING, Input.FAILURE): _SN.COMPLETED,
    (_SN.PROCEEDING, Input.REQUEST): _SN.PROCEEDING,  # re-send last provisional
    (_SN.PROCEEDING, Input.PROVISIONAL): _SN.PROCEEDING,
    (_SN.PROCEEDING, Input.SUCCESS): _SN.COMPLETED,
    (_SN.PROCEEDING, Input.FAILURE): _SN.COMPLETED,
    (_SN.COMPLETED, Input.REQUEST): _SN.COMPLETED,  # re-send the final response
    (_SN.COMPLETED, Input.TIMER_J): _SN.TERMINATED,
}


class Context(Protocol):
    """What a machine needs from the layer that owns it."""

    timers: TimerConfig

    def transmit(self, data: bytes, dest: Address, *, retransmission: bool = False) -> None: ...
    def emit(self, event: SipEvent) -> None: ...
    def arm(self, transaction: Transaction, timer: Timer, deadline: float) -> None: ...
    def settled(self, transaction: Transaction) -> None: ...
    def terminate(self, transaction: Transaction) -> None: ...


class Transaction:
    """State and timers shared by the four machines."""

    __slots__ = (
        "key",
        "request",
        "dest",
        "reliable",
        "in_progress",
        "timers",
        "intervals",
        "_ctx",
        "_wire",
    )

    def __init__(
        self, ctx: Context, key: TransactionKey, request: Request, dest: Address, reliable: bool
    ) -> None:
        self._ctx = ctx
        self.key = key
        # The parsed request: only while in progress (a client INVITE builds its ACK and
        # CANCEL from it); None once settled, so a lingering transaction holds no message.
        self.request: Request | None = request
        self.dest = dest
        self.reliable = reliable
        self.in_progress = True  # no final response yet; the layer counts these (overload)
        self.timers: dict[Timer, int] = {}  # armed timer -> token of its entry in the layer's heap
        self.intervals: dict[Timer, float] = {}  # current interval of A, E and G
        self._wire: bytes | None = None  # the message retransmissions re-send

    @property
    def terminated(self) -> bool:
        raise NotImplementedError

    def finish(self) -> None:
        """Enter Terminated (the layer calls this when it forgets the transaction)."""
        raise NotImplementedError

    def on_timer(self, timer: Timer, now: float) -> None:
        raise NotImplementedError

    def _start(self, timer: Timer, now: float) -> None:
        duration = self._ctx.timers.initial(timer, reliable=self.reliable)
        if timer is Timer.A or timer is Timer.E or timer is Timer.G:
            # Only these double. Left empty, the dict stays untracked by the garbage
            # collector: one object fewer to walk per lingering non-INVITE server transaction.
            self.intervals[timer] = duration
        self._ctx.arm(self, timer, now + duration)

    def _restart(self, timer: Timer, now: float) -> None:
        """Re-arm a retransmission timer with its next interval (doubled, maybe capped)."""
        interval = self._ctx.timers.next_interval(timer, self.intervals[timer])
        self.intervals[timer] = interval
        self._ctx.arm(self, timer, now + interval)

    def _stop(self, *timers: Timer) -> None:
        for timer in timers:
            self.timers.pop(timer, None)  # the heap entry goes stale and is skipped

    def _settle(self) -> None:
        """Leave the in-progress states (a final response went out or came in): the layer
        stops counting this transaction against its bound, and the parsed request goes, since
        what is left is absorbing retransmissions, which needs only bytes and tags."""
        self._ctx.settled(self)
        self.request = None

    def _send(self, data: bytes) -> None:
        self._wire = data
        self._ctx.transmit(data, self.dest)

    def _resend(self) -> None:
        if self._wire is not None:
            self._ctx.transmit(self._wire, self.dest, retransmission=True)

    def _linger(self, timer: Timer, now: float) -> bool:
        """Start a D/I/J/K wait; on a reliable transport it is zero: terminate now."""
        if self.reliable:
            self._ctx.terminate(self)
            return False
        self._start(timer, now)
        return True


# --- client side --------------------------------------------------------------------------


class ClientInviteTransaction(Transaction):
    __slots__ = ("state", "cancelled", "_ack", "_seen_2xx", "_last_provisional")

    def __init__(
        self, ctx: Context, key: TransactionKey, request: Request, dest: Address, reliable: bool
    ) -> None:
        super().__init__(ctx, key, request, dest, reliable)
        self.state = _CI.CALLING
        self.cancelled = False  # send_cancel was called: one CANCEL per INVITE (§9.1)
        self._ack: bytes | None = None
        self._seen_2xx: set[str | None] = set()
        self._last_provisional: Response | None = None

    @property
    def terminated(self) -> bool:
        return self.state is _CI.TERMINATED

    def finish(self) -> None:
        self.state = _CI.TERMINATED

    @property
    def had_provisional(self) -> bool:
        return self.state is _CI.PROCEEDING

    @property
    def final_received(self) -> bool:
        return self.state in (_CI.COMPLETED, _CI.ACCEPTED, _CI.TERMINATED)

    def start(self, now: float) -> None:
        assert self.request is not None  # set until settled
        self._send(bytes(self.request))
        if not self.reliable:
            self._start(Timer.A, now)  # RFC 3261 §17.1.1.2: A = T1, unreliable only
        self._start(Timer.B, now)  # B = 64*T1

    def on_response(self, response: Response, now: float) -> None:
        kind = classify(response.status)
        state = self.state
        new = CLIENT_INVITE.get((state, kind))
        if new is None:
            return  # e.g. a 1xx after the final response: absorbed
        self.state = new
        if kind is Input.PROVISIONAL:
            self._stop(Timer.A, Timer.B)  # §17.1.1.2: no retransmission in Proceeding
            if self._last_provisional is not None and response == self._last_provisional:
                return  # an identical 1xx: a retransmission, absorbed
            self._last_provisional = response
            self._ctx.emit(ResponseReceived(self.key, response, False))
        elif kind is Input.SUCCESS:
            if state is not _CI.ACCEPTED:
                self._stop(Timer.A, Timer.B)
                self._start(Timer.M, now)  # RFC 6026 §8.4: M = 64*T1
                self._settle()
            tag = response.to_tag
            retransmission = tag in self._seen_2xx
            self._seen_2xx.add(tag)
            # RFC 6026 §8.4: every 2xx goes up, so the dialog re-sends its ACK.
            self._ctx.emit(ResponseReceived(self.key, response, retransmission))
        elif state is _CI.COMPLETED:
            if self._ack is not None:  # §17.1.1.2: re-send the ACK, absorb the response
                self._ctx.transmit(self._ack, self.dest, retransmission=True)
        else:
            self._stop(Timer.A, Timer.B)
            assert self.request is not None  # still in progress: not settled yet
            self._ack = bytes(build_ack(self.request, response))
            self._ctx.transmit(self._ack, self.dest)
            self._ctx.emit(ResponseReceived(self.key, response, False))
            self._settle()
            self._linger(Timer.D, now)

    def _settle(self) -> None:
        """Keep the ACK bytes (Completed) and the seen To tags (Accepted); the INVITE's
        bytes (Timer A is stopped) and the last 1xx go."""
        super()._settle()
        self._wire = None
        self._last_provisional = None

    def on_timer(self, timer: Timer, now: float) -> None:
        new = CLIENT_INVITE.get((self.state, TIMER_INPUT[timer]))
        if new is None:
            return
        self.state = new
        if timer is Timer.A:
            self._resend()
            self._restart(Timer.A, now)
        elif timer is Timer.B:
            self._ctx.emit(TransactionTimedOut(self.key, timer))
            self._ctx.terminate(self)
        else:  # D or M
            self._ctx.terminate(self)


class ClientNonInviteTransaction(Transaction):
    __slots__ = ("state",)

    def __init__(
        self, ctx: Context, key: TransactionKey, request: Request, dest: Address, reliable: bool
    ) -> None:
        super().__init__(ctx, key, request, dest, reliable)
        self.state = _CN.TRYING

    @property
    def terminated(self) -> bool:
        return self.state is _CN.TERMINATED

    def finish(self) -> None:
        self.state = _CN.TERMINATED

    def start(self, now: float) -> None:
        assert self.request is not None  # set until settled
        self._send(bytes(self.request))
        if not self.reliable:
            self._start(Timer.E, now)  # RFC 3261 §17.1.2.2: E = T1, unreliable only
        self._start(Timer.F, now)  # F = 64*T1

    def on_response(self, response: Response, now: float) -> None:
        kind = classify(response.status)
        new = CLIENT_NON_INVITE.get((self.state, kind))
        if new is None:
            return  # a response retransmission in Completed: absorbed
        self.state = new
        self._ctx.emit(ResponseReceived(self.key, response, False))
        if new is _CN.COMPLETED:
            self._stop(Timer.E, Timer.F)
            self._settle()
            self._linger(Timer.K, now)  # K = T4 unreliable, 0 reliable

    def _settle(self) -> None:
        super()._settle()
        self._wire = None  # Timer E is stopped: the request is never re-sent

    def on_timer(self, timer: Timer, now: float) -> None:
        new = CLIENT_NON_INVITE.get((self.state, TIMER_INPUT[timer]))
        if new is None:
            return
        state, self.state = self.state, new
        if timer is Timer.E:
            self._resend()
            if state is _CN.PROCEEDING:  # §17.1.2.2: in Proceeding, retransmit every T2
                self.intervals[Timer.E] = self._ctx.timers.t2
                self._ctx.arm(self, Timer.E, now + self._ctx.timers.t2)
            else:
                self._restart(Timer.E, now)
        elif timer is Timer.F:
            self._ctx.emit(TransactionTimedOut(self.key, timer))
            self._ctx.terminate(self)
        else:  # K
            self._ctx.terminate(self)


def request_like(invite: Request, method: str, *, to: str | None = None) -> Request:
    """A CANCEL or non-2xx ACK built from the INVITE it refers to (RFC 3261 §9.1 and
    §17.1.1.3 share the rule): same Request-URI, top Via (same branch), Max-Forwards, From,
    Call-ID, CSeq number and Route set; To is the INVITE's unless `to` is given."""
    fields: list[tuple[str, str]] = []
    top_via = invite.header("via")
    if top_via is not None:
        fields.append(("Via", top_via))
    max_forwards = invite.header("max-forwards")
    fields.append(("Max-Forwards", max_forwards if max_forwards is not None else "70"))
    for name, value in (
        ("From", invite.header("from")),
        ("To", to if to is not None else invite.header("to")),
        ("Call-ID", invite.call_id),
    ):
        if value is not None:
            fields.append((name, value))
    cseq = invite.cseq
    if cseq is not None:
        fields.append(("CSeq", f"{cseq.number} {method}"))
    fields.extend(("Route", route) for route in invite.headers("route"))
    return Request(method, invite.uri, fields)


def build_ack(invite: Request, response: Response) -> Request:
    """The ACK for a non-2xx final response (RFC 3261 §17.1.1.3): like the INVITE, with the
    response's To (and its tag)."""
    return request_like(invite, "ACK", to=response.header("to"))


# --- server side --------------------------------------------------------------------------


class ServerInviteTransaction(Transaction):
    __slots__ = ("state", "to_tag")

    def __init__(
        self, ctx: Context, key: TransactionKey, request: Request, dest: Address, reliable: bool
    ) -> None:
        super().__init__(ctx, key, request, dest, reliable)
        self.state = _SI.PROCEEDING
        self.to_tag: str | None = None  # tag of the last response sent with one

    @property
    def terminated(self) -> bool:
        return self.state is _SI.TERMINATED

    def finish(self) -> None:
        self.state = _SI.TERMINATED

    @property
    def final_sent(self) -> bool:
        return self.state is not _SI.PROCEEDING

    def on_request(self, now: float) -> None:
        if SERVER_INVITE.get((self.state, Input.REQUEST)) is None:
            return
        if self.state is not _SI.ACCEPTED:  # RFC 6026 §8.6: absorbed in Accepted
            self._resend()

    def on_ack(self, now: float) -> bool:
        """An ACK matched this transaction; True when it is for a 2xx (goes to the TU)."""
        state = self.state
        new = SERVER_INVITE.get((state, Input.ACK))
        if new is None:
            return False
        self.state = new
        if state is _SI.COMPLETED:
            self._stop(Timer.G, Timer.H)
            self._linger(Timer.I, now)  # I = T4 unreliable, 0 reliable
        return state is _SI.ACCEPTED

    def on_response(self, response: Response, now: float) -> bool:
        """A response from the TU; False when the state does not allow it."""
        kind = classify(response.status)
        state = self.state
        new = SERVER_INVITE.get((state, kind))
        if new is None:
            return False
        self.state = new
        tag = response.to_tag
        if tag is not None:
            self.to_tag = tag  # the 200 to a CANCEL reuses it (§9.2); 2543 ACKs match it
        if kind is Input.PROVISIONAL:
            self._send(bytes(response))
            return True
        if kind is Input.SUCCESS:
            # RFC 6026 §8.6: Accepted absorbs a retransmitted INVITE and the TU re-sends its
            # 2xx itself: nothing is kept to send again.
            self._wire = None
            self._ctx.transmit(bytes(response), self.dest)
            if state is _SI.PROCEEDING:
                self._start(Timer.L, now)  # RFC 6026 §8.7: L = 64*T1
                self._settle()
        else:
            self._send(bytes(response))  # kept for Timer G and retransmitted INVITEs
            if not self.reliable:
                self._start(Timer.G, now)  # RFC 3261 §17.2.1: G = T1, unreliable only
            self._start(Timer.H, now)  # H = 64*T1
            self._settle()
        return True

    def on_timer(self, timer: Timer, now: float) -> None:
        new = SERVER_INVITE.get((self.state, TIMER_INPUT[timer]))
        if new is None:
            return
        self.state = new
        if timer is Timer.G:
            self._resend()
            self._restart(Timer.G, now)
        elif timer is Timer.H:
            self._ctx.emit(TransactionTimedOut(self.key, timer))
            self._ctx.terminate(self)
        else:  # I or L
            self._ctx.terminate(self)


class ServerNonInviteTransaction(Transaction):
    __slots__ = ("state",)

    def __init__(
        self, ctx: Context, key: TransactionKey, request: Request, dest: Address, reliable: bool
    ) -> None:
        super().__init__(ctx, key, request, dest, reliable)
        self.state = _SN.TRYING

    @property
    def terminated(self) -> bool:
        return self.state is _SN.TERMINATED

    def finish(self) -> None:
        self.state = _SN.TERMINATED

    @property
    def final_sent(self) -> bool:
        return self.state is _SN.COMPLETED

    def on_request(self, now: float) -> None:
        if SERVER_NON_INVITE.get((self.state, Input.REQUEST)) is not None:
            self._resend()  # nothing sent yet in Trying: absorbed

    def on_response(self, response: Response, now: float) -> bool:
        kind = classify(response.status)
        new = SERVER_NON_INVITE.get((self.state, kind))
        if new is None:
            return False
        self.state = new
        self._send(bytes(response))  # kept: a retransmitted request gets it again
        if new is _SN.COMPLETED:
            self._settle()
            self._linger(Timer.J, now)  # J = 64*T1 unreliable, 0 reliable
        return True

    def on_timer(self, timer: Timer, now: float) -> None:
        new = SERVER_NON_INVITE.get((self.state, TIMER_INPUT[timer]))
        if new is not None:
            self.state = new
            self._ctx.terminate(self)


def client_key(request: Request) -> TransactionKey:
    """Key of the client transaction a request creates (its own top Via branch)."""
    via = request.top_via
    branch = via.branch if via is not None else None
    method = request.method
    return TransactionKey(Role.CLIENT, branch or "", "", method)


def response_key(response: Response) -> TransactionKey | None:
    """The client transaction a response belongs to (RFC 3261 §17.1.3): the top Via branch
    and the CSeq method."""
    via = response.top_via
    cseq = response.cseq
    if via is None or cseq is None or not via.branch:
        return None
    return TransactionKey(Role.CLIENT, via.branch, "", cseq.method)


def server_key(request: Request, method: str | None = None) -> TransactionKey | None:
    """The server transaction a request belongs to (RFC 3261 §17.2.3).

    `method` overrides the request's method (ACK and CANCEL look up the INVITE). With the
    magic cookie: top Via branch, sent-by and method. Without it (RFC 2543): Request-URI,
    From tag, Call-ID, CSeq number and top Via. The To tag is left out of the key: an ACK
    carries the tag of the final response, which the caller compares (§17.2.3)."""
    via = request.top_via
    if via is None:
        return None
    port = via.port if via.port is not None else (5061 if via.transport == "TLS" else 5060)
    sent_by = f"{via.host.lower()}:{port}"
    method = method or request.method
    branch = via.branch
    if branch is not None and branch.startswith(MAGIC_COOKIE):
        return TransactionKey(Role.SERVER, branch, sent_by, method)
    cseq = request.cseq
    fallback = "|".join(
        (
            "rfc2543",
            request.uri,
            request.from_tag or "",
            request.call_id or "",
            str(cseq.number) if cseq is not None else "",
            str(via),
        )
    )
    return TransactionKey(Role.SERVER, fallback, sent_by, method)
