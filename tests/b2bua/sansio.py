"""Drive the call logic (`CallEngine`) without sockets, a loop or a clock: events in, with
`now` set by the test, actions out. Peers are plain functions that build the messages a
caller or callee would send."""

from __future__ import annotations

import functools
import itertools
from typing import Any, TypeVar

from sipmask._core import Request, Response
from sipmask.b2bua.actions import Action, SendRequest, SendResponse
from sipmask.b2bua.call import Call
from sipmask.b2bua.engine import CallEngine
from sipmask.b2bua.routing import Target
from sipmask.b2bua.table import CallEvent
from sipmask.config import Config, parse_config
from sipmask.sip.events import (
    AckReceived,
    Address,
    CancelReceived,
    RequestReceived,
    ResponseReceived,
    TransactionKey,
    TransactionTerminated,
    TransactionTimedOut,
)
from sipmask.sip.responses import make_response
from sipmask.sip.timers import Timer
from sipmask.sip.transaction import server_key
from sipmask.store import MemoryStore
from sipmask.store.model import Binding, Participant

CALLER = "+919876543210"
CALLEE = "+919812345678"
V1, V2 = "+918000000001", "+918000000002"
CALLER_AT = Address("10.0.0.9", 5060)
CALLEES = (Address("10.0.0.2", 5060), Address("10.0.0.3", 5060))
SIPMASK = Address("10.0.0.1", 5060)
RING = 30.0

_numbers = itertools.count(1)
A = TypeVar("A", bound=Action)


@functools.lru_cache(maxsize=8)
def config(extra: str = "", calls: str = "") -> Config:
    return parse_config(f"""
[sip]
listen = ["udp:10.0.0.1:5060"]
[sip.timers]
t1 = 0.5
[calls]
ring_timeout = {int(RING)}
{calls}
[store]
backend = "memory"
data_dir = ""
[[pools]]
name = "default"
numbers = ["{V1}", "{V2}"]
[[trunks]]
name = "carrier"
inbound = ["10.0.0.0/8"]
outbound = ["udp:10.0.0.2:5060", "udp:10.0.0.3:5060"]
[trunks.number_rules]
country_code = "91"
{extra}
""")


BINDING = Binding(
    session_id="default.s1",
    caller=Participant(CALLER, CALLER, V1),
    callee=Participant(CALLEE, CALLEE, V2),
    call_time_limit=None,
    ring_timeout=None,
    expires_at=0.0,
)
TARGETS = [Target(address, "udp", f"{address.host}:{address.port}") for address in CALLEES]


class Driver:
    """One `CallEngine`, its outbox, and a made-up `now`."""

    def __init__(self, extra: str = "", calls: str = "") -> None:
        self.engine = CallEngine(config(extra, calls), MemoryStore(None))
        self.engine.local_address = lambda transport, peer: SIPMASK
        self.now = 0.0
        self.sent: list[Action] = []

    def feed(self, event: Any) -> list[Action]:
        self.engine.now = self.now
        self.engine.dispatch(event)
        return self.take()

    def take(self) -> list[Action]:
        actions = list(self.engine.actions)
        self.engine.actions.clear()
        self.sent += actions
        return actions

    def advance(self, seconds: float) -> list[Action]:
        """Move `now` forward and fire the call timers due."""
        self.now += seconds
        self.engine.now = self.now
        self.engine.timers.fire(self.now)
        return self.take()

    def run_out(self) -> list[Action]:
        """Fire every call timer there is, however far ahead."""
        actions: list[Action] = []
        while (deadline := self.engine.timers.next_deadline()) is not None:
            actions += self.advance(max(deadline - self.now, 0.0))
        return actions

    # --- the caller -----------------------------------------------------------------------

    def invite(self, body: bytes = b"") -> RequestReceived:
        n = next(_numbers)
        fields = [
            ("Via", f"SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bK{n}a;rport"),
            ("Max-Forwards", "70"),
            ("From", f"<sip:{CALLER}@10.0.0.9>;tag=alice{n}"),
            ("To", f"<sip:{V1}@10.0.0.1>"),
            ("Call-ID", f"a{n}@10.0.0.9"),
            ("CSeq", "1 INVITE"),
            ("Contact", "<sip:alice@10.0.0.9:5060>"),
        ]
        if body:
            fields.append(("Content-Type", "application/sdp"))
        request = Request("INVITE", f"sip:{V1}@10.0.0.1", fields, body)
        self.caller_invite = request
        key = server_key(request)
        assert key is not None
        self.a_key = key
        return RequestReceived(key, request, CALLER_AT)

    def call(self) -> Call:
        (call,) = self.engine.calls
        return call

    def start(self, body: bytes = b"") -> tuple[Call, SendRequest]:
        """A new call routed to TARGETS: its INVITE to the first callee."""
        self.feed(self.invite(body))
        call = self.call()
        (invite,) = of(SendRequest, self.route(call))
        return call, invite

    def route(self, call: Call) -> list[Action]:
        self.engine.now = self.now
        self.engine.call_event(call, CallEvent.ROUTED, BINDING, list(TARGETS))
        return self.take()

    def cancel(self, call: Call) -> list[Action]:
        invite = call.caller_invite
        return self.feed(CancelReceived(call.caller_key, invite, CALLER_AT))

    def ack(self, ok: Response) -> list[Action]:
        request = in_dialog(self.caller_invite, ok, "ACK", 1)
        return self.feed(AckReceived(request, CALLER_AT))

    def bye_from_caller(self, ok: Response, cseq: int = 2) -> list[Action]:
        request = in_dialog(self.caller_invite, ok, "BYE", cseq)
        key = server_key(request)
        assert key is not None
        return self.feed(RequestReceived(key, request, CALLER_AT))

    # --- the callee -----------------------------------------------------------------------

    def answer(self, invite: SendRequest, status: int, *, body: bytes = b"",
               retransmission: bool = False) -> list[Action]:
        response = callee_response(invite.request, status, body=body)
        self.last_callee_response = response
        return self.feed(ResponseReceived(invite.key, response, retransmission))

    def bye_from_callee(self, invite: Request, ok: Response, cseq: int = 1) -> list[Action]:
        request = callee_in_dialog(invite, ok, "BYE", cseq)
        key = server_key(request)
        assert key is not None
        return self.feed(RequestReceived(key, request, CALLEES[0]))

    def timed_out(self, key: TransactionKey) -> list[Action]:
        return self.feed(TransactionTimedOut(key, Timer.B))

    def terminated(self, key: TransactionKey) -> list[Action]:
        return self.feed(TransactionTerminated(key))


SDP = (b"v=0\r\no=peer 1 1 IN IP4 10.0.0.2\r\ns=-\r\nc=IN IP4 10.0.0.2\r\nt=0 0\r\n"
       b"m=audio 50000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")


def callee_response(request: Request, status: int, *, body: bytes = b"") -> Response:
    headers = [("Contact", "<sip:bob@10.0.0.2:5060>")] if status < 300 and status > 100 else []
    if body:
        headers.append(("Content-Type", "application/sdp"))
    return make_response(request, status, to_tag="bob" if status > 100 else None,
                         headers=headers, body=body)


def in_dialog(invite: Request, answer: Response, method: str, cseq: int) -> Request:
    """A request from the caller inside the dialog its INVITE and sipmask's `answer` made."""
    from_, to = invite.header("from"), answer.header("to")
    assert from_ is not None and to is not None
    contact = answer.contact[0].uri
    return Request(method, str(contact), [
        ("Via", f"SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bK{next(_numbers)}d;rport"),
        ("Max-Forwards", "70"),
        ("From", from_),
        ("To", to),
        ("Call-ID", invite.call_id or ""),
        ("CSeq", f"{cseq} {method}"),
    ])


def callee_in_dialog(invite: Request, ok: Response, method: str, cseq: int) -> Request:
    """A request from the callee inside the dialog sipmask's `invite` and its `ok` made."""
    from_, to = ok.header("to"), invite.header("from")
    assert from_ is not None and to is not None
    contact = invite.contact[0].uri
    return Request(method, str(contact), [
        ("Via", f"SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bK{next(_numbers)}b;rport"),
        ("Max-Forwards", "70"),
        ("From", from_),
        ("To", to),
        ("Call-ID", invite.call_id or ""),
        ("CSeq", f"{cseq} {method}"),
    ])


def of(kind: type[A], actions: list[Action]) -> list[A]:
    return [action for action in actions if isinstance(action, kind)]


def statuses(actions: list[Action]) -> list[int]:
    return [a.response.status for a in of(SendResponse, actions)]


def methods(actions: list[Action]) -> list[str]:
    return [a.request.method for a in of(SendRequest, actions)]
