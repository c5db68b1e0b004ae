"""A UAC and a UAS transaction layer over a hostile network, explored by hypothesis.

The network holds every datagram in flight; rules deliver one (in any order), drop one,
duplicate one, or advance the clock. The UAS TU answers requests when a rule says so, the
UAC TU acknowledges 2xx responses. Invariants: the UAS TU sees each request once; each
client transaction ends in at most one final outcome (a final response or a timeout), and in
exactly one once the network settles; no deadline is in the past after `handle_timer`.
"""

from collections import Counter

import hypothesis.strategies as st
from helpers import UAC, UAS, answer, make_request
from hypothesis import HealthCheck, event, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

import sipmask
from sipmask.sip.events import (
    CancelReceived,
    RequestReceived,
    ResponseReceived,
    TransactionKey,
    TransactionTimedOut,
)
from sipmask.sip.layer import TransactionLayer
from sipmask.sip.timers import Timer
from sipmask.sip.transaction import ClientInviteState

# The network loses a datagram that has not arrived within MAX_DELAY. RFC 3261 assumes a
# bounded lifetime (T4); the bound here is below T1 because a request retransmitted just
# before Timer F/B and delivered after the server's Timer J/L/I has run out would legally
# open a new server transaction (§17.2.2), and so reach the TU a second time.
MAX_DELAY = 0.4


def note(label: str) -> None:
    event(label)  # hypothesis statistics: shows which paths the examples reached


class UacUasNetwork(RuleBasedStateMachine):
    reliable = False  # UDP; the subclass below runs TCP (where "drop" is a lost connection)

    def __init__(self) -> None:
        super().__init__()
        tags = iter(range(1_000_000))
        self.uac = TransactionLayer(tag_factory=lambda: f"c{next(tags)}")
        self.uas = TransactionLayer(tag_factory=lambda: f"s{next(tags)}")
        self.now = 0.0
        self.in_flight: list[tuple[str, bytes, float]] = []  # (receiver, datagram, sent at)
        self.requests = 0
        self.client_keys: list[TransactionKey] = []
        self.cancel_keys: list[TransactionKey] = []  # outcome optional: may never be sent
        self.outcomes: Counter[TransactionKey] = Counter()
        self.seen_by_uas: Counter[str] = Counter()  # branch -> RequestReceived count
        self.reached_uas: set[str] = set()  # branches with a request delivered to the UAS
        self.unanswered: dict[TransactionKey, sipmask.Request] = {}

    # --- plumbing ----------------------------------------------------------------------

    def collect(self) -> None:
        """Move what the layers queued onto the network and run the TUs, until quiet (the
        UAC TU's ACK for a 2xx queues more)."""
        busy = True
        while busy:
            busy = False
            for data, dest in self.uac.datagrams_to_send(self.now):
                assert dest == UAS
                self.in_flight.append(("uas", data, self.now))
            for data, dest in self.uas.datagrams_to_send(self.now):
                assert dest == UAC  # responses routed by the top Via
                self.in_flight.append(("uac", data, self.now))
            while (event := self.uas.next_event()) is not None:
                if isinstance(event, RequestReceived):
                    self.seen_by_uas[event.key.branch] += 1
                    self.unanswered[event.key] = event.request
                elif isinstance(event, CancelReceived):
                    note("CANCEL reached the UAS TU")
                    assert event.invite_key in self.unanswered  # only before the final
                    request = self.unanswered.pop(event.invite_key)
                    self.uas.send_response(event.invite_key, answer(request, 487), self.now)
                    busy = True
                elif isinstance(event, TransactionTimedOut) and event.timer is Timer.ANSWER:
                    # The layer's bound on a TU that never answers (issue 13) came first.
                    note("the layer gave up on an unanswered request")
                    self.unanswered.pop(event.key, None)
            while (event := self.uac.next_event()) is not None:
                if isinstance(event, TransactionTimedOut):
                    note(f"Timer {event.timer.value} timed out {event.key.method}")
                    self.outcomes[event.key] += 1
                if not isinstance(event, ResponseReceived) or event.response.status < 200:
                    continue
                if not event.retransmission:
                    self.outcomes[event.key] += 1
                if event.key.method == "INVITE" and event.response.status < 300:
                    # the UAC core's ACK for a 2xx (RFC 3261 §13.2.2.4): no transaction
                    ack = make_request(
                        "ACK", branch=f"{event.key.branch}ack", to_tag=event.response.to_tag
                    )
                    self.uac.send_request(ack, UAS, self.now)
                    busy = True

    def deliver_datagram(self, receiver: str, data: bytes) -> None:
        if receiver == "uas":
            message = sipmask.parse(data)
            if message.method != "ACK":
                self.reached_uas.add(message.top_via.branch)
            self.uas.receive_datagram(data, UAC, self.now, reliable=self.reliable)
        else:
            self.uac.receive_datagram(data, UAS, self.now, reliable=self.reliable)
        self.collect()

    # --- rules -------------------------------------------------------------------------

    @rule(method=st.sampled_from(["INVITE", "INVITE", "OPTIONS"]))
    def send_request(self, method: str) -> None:
        if self.requests >= 4:
            return
        self.requests += 1
        n = self.requests
        transport = "TCP" if self.reliable else "UDP"
        request = make_request(
            method, branch=f"z9hG4bK{n}", call_id=f"call{n}", transport=transport
        )
        self.client_keys.append(
            self.uac.send_request(request, UAS, self.now, reliable=self.reliable)
        )
        self.collect()

    @rule(index=st.integers(min_value=0))
    def deliver(self, index: int) -> None:
        if not self.in_flight:
            return
        receiver, data, _ = self.in_flight.pop(index % len(self.in_flight))
        self.deliver_datagram(receiver, data)

    @rule(index=st.integers(min_value=0))
    def drop(self, index: int) -> None:
        if not self.in_flight:
            return
        self.in_flight.pop(index % len(self.in_flight))

    @rule(index=st.integers(min_value=0))
    def duplicate(self, index: int) -> None:
        if not self.in_flight or self.reliable:
            return  # a stream never duplicates (and a TCP sender never retransmits)
        self.in_flight.append(self.in_flight[index % len(self.in_flight)])

    @rule(step=st.sampled_from([0.1, 0.1, 0.5, 0.5, 1.0, 4.0, 16.0, 33.0]))
    def advance(self, step: float) -> None:
        """Run the clock as the runtime does: to each deadline in turn, the network losing
        what outlives MAX_DELAY on the way."""
        until = self.now + step
        while True:
            deadlines = [d for d in (self.uac.get_timer(), self.uas.get_timer()) if d is not None]
            if not deadlines or min(deadlines) > until:
                break
            self.now = max(self.now, min(deadlines))
            self.expire()
            for layer in (self.uac, self.uas):
                layer.handle_timer(self.now)
                deadline = layer.get_timer()
                assert deadline is None or deadline > self.now  # nothing left in the past
            self.collect()
        self.now = until
        self.expire()

    def expire(self) -> None:
        self.in_flight = [f for f in self.in_flight if self.now - f[2] <= MAX_DELAY]

    @rule(index=st.integers(min_value=0))
    def uac_cancels(self, index: int) -> None:
        invites = [k for k in self.client_keys if k.method == "INVITE"]
        if not invites:
            return
        key = invites[index % len(invites)]
        if self.uac.state(key) is None:
            return  # terminated: nothing to cancel
        cancel_key = self.uac.send_cancel(key, self.now)
        if cancel_key not in self.cancel_keys:
            self.cancel_keys.append(cancel_key)
        self.collect()

    @rule(index=st.integers(min_value=0), status=st.sampled_from([180, 200, 486, 603]))
    def uas_answers(self, index: int, status: int) -> None:
        if not self.unanswered:
            return
        keys = sorted(self.unanswered, key=lambda k: k.branch)
        key = keys[index % len(keys)]
        request = self.unanswered[key]
        if status < 200 and key.method != "INVITE":
            status = 200
        self.uas.send_response(key, answer(request, status), self.now)
        if status >= 200:
            del self.unanswered[key]
        self.collect()

    # --- invariants --------------------------------------------------------------------

    @invariant()
    def uas_tu_sees_each_request_at_most_once(self) -> None:
        assert all(count == 1 for count in self.seen_by_uas.values()), self.seen_by_uas

    @invariant()
    def at_most_one_final_outcome(self) -> None:
        assert all(count <= 1 for count in self.outcomes.values()), self.outcomes

    def teardown(self) -> None:
        # Settle: the TU answers what is left, the network stops losing, time runs out.
        for _ in range(40):
            for key, request in list(self.unanswered.items()):
                self.uas.send_response(key, answer(request, 486), self.now)
            self.unanswered.clear()
            self.collect()
            while self.in_flight:
                receiver, data, _ = self.in_flight.pop(0)
                self.deliver_datagram(receiver, data)
            self.advance(16.0)
        assert not self.in_flight
        for branch in self.reached_uas:
            assert self.seen_by_uas[branch] == 1, branch  # seen exactly once
        for key in self.client_keys:
            if self.outcomes[key] == 1:
                continue
            # The one legal way to end without an outcome: an INVITE left in Proceeding by a
            # UAS that gave up (Timer H or L) while every final it sent was lost. RFC 3261
            # has no transaction timer there; Timer C of the TU (the b2bua) ends it.
            note("INVITE left in Proceeding for the TU's Timer C")
            assert self.outcomes[key] == 0, key
            assert self.uac.state(key) is ClientInviteState.PROCEEDING, key
            assert self.uas.stats.in_flight == 0
        assert self.uac.stats.in_flight == sum(
            self.uac.state(k) is ClientInviteState.PROCEEDING for k in self.client_keys
        )


UacUasNetwork.TestCase.settings = settings(
    max_examples=200,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestUacUasNetwork = UacUasNetwork.TestCase


class UacUasOverTcp(UacUasNetwork):
    reliable = True


UacUasOverTcp.TestCase.settings = UacUasNetwork.TestCase.settings
TestUacUasOverTcp = UacUasOverTcp.TestCase
