"""The transaction layer as a whole: routing of responses (RFC 3261 §18.2.2, RFC 3581), the
error boundary, overload refusal, CANCEL (§9) and UAC/UAS round trips."""

import hypothesis.strategies as st
import msgspec
import pytest
from helpers import (
    T1,
    UAC,
    UAS,
    UacUasPair,
    answer,
    drain,
    fire_until,
    make_request,
    parsed,
    wire,
)
from hypothesis import given, settings

import sipmask
from sipmask.sip.events import (
    Address,
    CancelReceived,
    RequestReceived,
    ResponseReceived,
    TransactionTerminated,
    TransactionTimedOut,
)
from sipmask.sip.layer import HEAP_COMPACT_MIN, TransactionLayer
from sipmask.sip.timers import Timer, TimerConfig
from sipmask.sip.transaction import ClientInviteState

NAT = Address("198.51.100.7", 40123)


@pytest.fixture
def layer():
    return TransactionLayer(tag_factory=lambda: "layer-tag")


def answer_first(layer, now=0.0, status=200):
    """Answer the first RequestReceived with `status`; return what goes out."""
    (event,) = [e for e in drain(layer) if isinstance(e, RequestReceived)]
    layer.datagrams_to_send(now)
    layer.send_response(event.key, answer(event.request, status), now)
    return layer.datagrams_to_send(now), event


# --- response routing ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("via_host", "via_port", "params", "reliable", "dest", "stamped"),
    [
        ("192.0.2.1", 5060, "", False, Address("198.51.100.7", 5060), ";received=198.51.100.7"),
        ("uac.example", None, "", False, Address("198.51.100.7", 5060), ";received="),
        ("198.51.100.7", 5080, "", False, Address("198.51.100.7", 5080), ""),
        ("192.0.2.1", 5060, ";rport", False, NAT, ";rport=40123"),
        # A maddr is not honoured without the TU's policy (no reflection): symmetric answer.
        ("192.0.2.1", 5060, ";maddr=203.0.113.9", False, NAT, ""),
        ("192.0.2.1", 5060, "", True, NAT, ";received=198.51.100.7"),
    ],
    ids=["received", "name-default-port", "same-host", "rport", "maddr", "tcp-connection"],
)
def test_responses_go_where_via_received_and_rport_say(
    layer, via_host, via_port, params, reliable, dest, stamped
):
    request = make_request("OPTIONS", via_host=via_host, via_port=via_port, via_params=params)
    layer.receive_datagram(wire(request), NAT, 0.0, reliable=reliable)
    ((data, to),), event = answer_first(layer)
    assert to == dest
    assert stamped in sipmask.parse(data).header("via")
    assert stamped in event.request.header("via")  # the TU sees the stamped Via


# --- the error boundary --------------------------------------------------------------------


def test_malformed_request_is_answered_400_to_its_source(layer):
    broken = wire(make_request("INVITE", via_params=";rport")).replace(
        b"Max-Forwards: 70", b"Max-Forwards: seventy"
    )
    layer.receive_datagram(broken, NAT, 0.0)
    ((data, dest),) = layer.datagrams_to_send(0.0)
    response = sipmask.parse(data)
    assert response.status == 400 and response.to_tag == "layer-tag"
    assert dest == NAT  # rport on the salvaged Via
    assert layer.stats.parse_errors == 1 and layer.stats.in_flight == 0
    assert drain(layer) == []


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00\xff garbage \r\n\r\n",
        b"SIP/2.0 200 OK\r\nVia: broken\r\n\r\n",
        b"ACK sip:x SIP/2.0\r\nMax-Forwards: many\r\n\r\n",
        wire(make_request("INVITE")).replace(b"<sip:+9198", b"<sip:+\x01198"),
        wire(make_request("INVITE")).replace(b"Via: SIP/2.0/UDP", b"Via: SIP/2.0/UDP;;"),
    ],
    ids=[
        "empty",
        "binary",
        "malformed-response",
        "malformed-ack",
        "request-with-malformed-from",  # a 400 copying it would be malformed too
        "request-with-malformed-via",  # no route for an answer
    ],
)
def test_unanswerable_input_is_dropped_and_counted(layer, data):
    layer.receive_datagram(data, NAT, 0.0)
    assert layer.datagrams_to_send(0.0) == [] and drain(layer) == []
    assert layer.stats.parse_errors == 1 and layer.stats.dropped == 1


def test_stray_response_is_dropped(layer):
    layer.receive_datagram(wire(answer(make_request("OPTIONS"), 200)), UAS, 0.0)
    assert drain(layer) == [] and layer.stats.dropped == 1


# --- overload ------------------------------------------------------------------------------


def test_new_invites_beyond_the_bound_are_refused_503_and_nothing_else_degrades():
    layer = TransactionLayer(max_transactions=1, tag_factory=lambda: "t")
    layer.receive_datagram(wire(make_request("INVITE", branch="z9hG4bK1")), UAC, 0.0)
    layer.datagrams_to_send(0.0)
    drain(layer)
    layer.receive_datagram(wire(make_request("INVITE", branch="z9hG4bK2")), UAC, 0.1)
    ((data, dest),) = layer.datagrams_to_send(0.1)
    refusal = sipmask.parse(data)
    assert (refusal.status, refusal.header("retry-after")) == (503, "5") and dest == UAC
    assert drain(layer) == [] and layer.stats.refused == 1
    # other requests and our own client transactions still work
    layer.receive_datagram(wire(make_request("BYE", branch="z9hG4bK3")), UAC, 0.2)
    assert [type(e) for e in drain(layer)] == [RequestReceived]
    layer.send_request(make_request("OPTIONS", branch="z9hG4bK4"), UAS, 0.3)
    assert layer.stats.in_flight == 3


def test_lingering_transactions_do_not_count_against_the_bound():
    """Completed/Accepted transactions only absorb retransmissions (up to 32 s on UDP): a
    steady call rate must not fill the bound with them (issue 3)."""
    layer = TransactionLayer(max_transactions=3, tag_factory=lambda: "t")
    for n, status in enumerate((486, 200, 603)):  # Completed, Accepted, Completed
        layer.receive_datagram(wire(make_request("INVITE", branch=f"z9hG4bKi{n}")), UAC, 0.0)
        (event,) = drain(layer)
        layer.send_response(event.key, answer(event.request, status), 0.0)
    layer.receive_datagram(wire(make_request("OPTIONS", branch="z9hG4bKo")), UAC, 0.0)
    (event,) = drain(layer)
    layer.send_response(event.key, answer(event.request, 200), 0.0)  # Completed, Timer J
    bye = make_request("BYE", branch="z9hG4bKbye")
    layer.send_request(bye, UAS, 0.0)
    layer.receive_datagram(wire(answer(bye, 200)), UAS, 0.1)  # Completed, Timer K
    drain(layer)
    assert (layer.stats.in_flight, layer.stats.in_progress) == (5, 0)
    layer.datagrams_to_send(0.1)
    layer.receive_datagram(wire(make_request("INVITE", branch="z9hG4bKnew")), UAC, 1.0)
    assert [type(e) for e in drain(layer)] == [RequestReceived]
    assert [m.status for m in parsed(layer.datagrams_to_send(1.0))] == [100]
    assert layer.stats.refused == 0
    assert (layer.stats.in_flight, layer.stats.in_progress) == (6, 1)


def test_in_progress_transactions_of_both_sides_fill_the_bound():
    layer = TransactionLayer(max_transactions=2, tag_factory=lambda: "t")
    invite = make_request("INVITE", branch="z9hG4bKout")
    layer.send_request(invite, UAS, 0.0)  # ours, Calling
    layer.receive_datagram(wire(make_request("OPTIONS", branch="z9hG4bKin")), UAC, 0.0)  # Trying
    drain(layer)
    layer.datagrams_to_send(0.0)
    new = wire(make_request("INVITE", branch="z9hG4bKnew"))
    layer.receive_datagram(new, UAC, 0.1)
    (refusal,) = parsed(layer.datagrams_to_send(0.1))
    assert refusal.status == 503 and drain(layer) == [] and layer.stats.refused == 1
    layer.receive_datagram(wire(answer(invite, 486)), UAS, 0.2)  # ours is Completed now
    drain(layer)
    layer.datagrams_to_send(0.2)
    layer.receive_datagram(new, UAC, 0.3)  # the client's retransmission: room now
    assert [type(e) for e in drain(layer)] == [RequestReceived]
    assert (layer.stats.in_flight, layer.stats.in_progress, layer.stats.refused) == (3, 2, 1)


IN_PROGRESS = {"CALLING", "TRYING", "PROCEEDING"}

_op = st.one_of(
    st.tuples(st.just("in"), st.sampled_from(["INVITE", "OPTIONS", "CANCEL"]), st.integers(0, 4)),
    st.tuples(st.just("answer"), st.integers(0, 20), st.sampled_from([100, 180, 200, 486])),
    st.tuples(st.just("ack"), st.integers(0, 20)),
    st.tuples(st.just("out"), st.sampled_from(["INVITE", "OPTIONS"]), st.integers(0, 4)),
    st.tuples(st.just("reply"), st.integers(0, 20), st.sampled_from([100, 180, 200, 486])),
    st.tuples(st.just("cancel"), st.integers(0, 20)),
    st.tuples(st.just("advance"), st.sampled_from([0.5, 5.0, 40.0])),
)


def _check_in_progress(layer):
    """The O(1) gauge against a scan of the states (the oracle)."""
    held = list(layer._transactions.values())
    assert layer.stats.in_flight == len(held)
    assert layer.stats.in_progress == sum(t.state.name in IN_PROGRESS for t in held)
    for transaction in held:
        assert transaction.in_progress == (transaction.state.name in IN_PROGRESS)
        if not transaction.in_progress:
            assert transaction.request is None  # settled: the parsed request is gone


@settings(max_examples=200, deadline=None)
@given(ops=st.lists(_op, max_size=30), reliable=st.booleans())
def test_in_progress_gauge_follows_every_state_change(ops, reliable):
    layer = TransactionLayer(max_transactions=3, tag_factory=lambda: "t")
    now = 0.0
    served: list[RequestReceived] = []
    sent = []
    for op in ops:
        kind = op[0]
        if kind == "in":
            request = make_request(op[1], branch=f"z9hG4bKs{op[2]}", to_tag=None)
            layer.receive_datagram(wire(request), UAC, now, reliable=reliable)
        elif kind == "answer" and served:
            event = served[op[1] % len(served)]
            try:
                layer.send_response(event.key, answer(event.request, op[2]), now)
            except sipmask.LocalProtocolError:
                pass  # gone, or a response its state does not allow
        elif kind == "ack" and served:
            branch = served[op[1] % len(served)].key.branch
            ack = make_request("ACK", branch=branch, to_tag="uas-tag")
            layer.receive_datagram(wire(ack), UAC, now, reliable=reliable)
        elif kind == "out":
            try:
                request = make_request(op[1], branch=f"z9hG4bKc{op[2]}")
                sent.append((layer.send_request(request, UAS, now, reliable=reliable), request))
            except sipmask.LocalProtocolError:
                pass  # branch in use
        elif kind == "reply" and sent:
            _, request = sent[op[1] % len(sent)]
            layer.receive_datagram(wire(answer(request, op[2])), UAS, now, reliable=reliable)
        elif kind == "cancel" and sent:
            key, _ = sent[op[1] % len(sent)]
            try:
                layer.send_cancel(key, now)
            except sipmask.LocalProtocolError:
                pass  # not an INVITE, or gone
        elif kind == "advance":
            now += op[1]
            fire_until(layer, now)
        served += [e for e in drain(layer) if isinstance(e, RequestReceived)]
        layer.datagrams_to_send(now)
        _check_in_progress(layer)
    # Settle everything still waiting for a final response, then let every timer run out.
    for event in served:
        if layer.state(event.key) is not None and layer.state(event.key).name in IN_PROGRESS:
            layer.send_response(event.key, answer(event.request, 500), now)
    for key, request in sent:
        if key.method == "INVITE":
            layer.receive_datagram(wire(answer(request, 500)), UAS, now, reliable=reliable)
    _check_in_progress(layer)
    fire_until(layer, now + 1000.0)
    assert (layer.stats.in_progress, layer.stats.in_flight) == (0, 0)


def test_refusal_status_is_configurable():
    layer = TransactionLayer(max_transactions=0, overload_status=480, overload_retry_after=None)
    layer.receive_datagram(wire(make_request("INVITE")), UAC, 0.0)
    (refusal,) = parsed(layer.datagrams_to_send(0.0))
    assert refusal.status == 480 and refusal.header("retry-after") is None


# --- CANCEL, server side (RFC 3261 §9.2) ---------------------------------------------------


def test_cancel_before_the_final_gets_200_and_reaches_the_tu(layer):
    layer.receive_datagram(wire(make_request("INVITE")), UAC, 0.0)
    (invite_event,) = drain(layer)
    layer.datagrams_to_send(0.0)
    cancel = wire(make_request("CANCEL"))
    layer.receive_datagram(cancel, UAC, 1.0)
    (ok,) = parsed(layer.datagrams_to_send(1.0))
    assert (ok.status, ok.cseq.method) == (200, "CANCEL")
    (event,) = drain(layer)
    assert type(event) is CancelReceived and event.invite_key == invite_event.key
    layer.receive_datagram(cancel, UAC, 1.2)  # retransmitted CANCEL: 200 again
    assert [m.status for m in parsed(layer.datagrams_to_send(1.2))] == [200]
    assert drain(layer) == []
    layer.send_response(invite_event.key, answer(invite_event.request, 487), 1.5)
    (terminated,) = parsed(layer.datagrams_to_send(1.5))
    assert terminated.status == 487


def test_cancel_200_reuses_the_to_tag_of_the_ringing(layer):
    layer.receive_datagram(wire(make_request("INVITE")), UAC, 0.0)
    answer_first(layer, status=180)
    layer.receive_datagram(wire(make_request("CANCEL")), UAC, 1.0)
    (ok,) = parsed(layer.datagrams_to_send(1.0))
    assert ok.status == 200 and ok.to_tag == "uas-tag"  # RFC 3261 §9.2: SHOULD be the same


def test_cancel_after_the_final_gets_200_and_changes_nothing(layer):
    layer.receive_datagram(wire(make_request("INVITE")), UAC, 0.0)
    _, invite_event = answer_first(layer, status=200)
    layer.receive_datagram(wire(make_request("CANCEL")), UAC, 1.0)
    (ok,) = parsed(layer.datagrams_to_send(1.0))
    assert ok.status == 200 and ok.to_tag == "uas-tag"
    assert drain(layer) == []
    assert layer.state(invite_event.key) is not None


def test_cancel_matching_nothing_gets_481(layer):
    layer.receive_datagram(wire(make_request("CANCEL")), UAC, 0.0)
    (response,) = parsed(layer.datagrams_to_send(0.0))
    assert response.status == 481 and drain(layer) == []


# --- CANCEL, client side (RFC 3261 §9.1) ---------------------------------------------------


def test_cancel_waits_for_a_provisional(layer):
    invite = make_request("INVITE")
    invite.add_header("Route", "<sip:proxy.example;lr>")
    invite_key = layer.send_request(invite, UAS, 0.0)
    layer.datagrams_to_send(0.0)
    cancel_key = layer.send_cancel(invite_key, 0.1)
    assert layer.send_cancel(invite_key, 0.15) == cancel_key  # idempotent
    assert layer.datagrams_to_send(0.1) == []
    layer.receive_datagram(wire(answer(invite, 180)), UAS, 0.2)
    ((data, dest),) = layer.datagrams_to_send(0.2)
    cancel = sipmask.parse(data)
    assert dest == UAS and cancel.method == "CANCEL" and cancel.uri == invite.uri
    assert cancel.headers("via") == invite.headers("via")[:1]
    for name in ("from", "to", "call-id", "route"):
        assert cancel.headers(name) == invite.headers(name)
    assert (cancel.cseq.number, cancel.cseq.method) == (1, "CANCEL")
    assert cancel_key.method == "CANCEL" and cancel_key.branch == invite_key.branch
    layer.receive_datagram(wire(answer(cancel, 200)), UAS, 0.3)
    layer.receive_datagram(wire(answer(invite, 487)), UAS, 0.4)
    events = [(type(e), e.key.method) for e in drain(layer)]
    assert events == [
        (ResponseReceived, "INVITE"),
        (ResponseReceived, "CANCEL"),
        (ResponseReceived, "INVITE"),
    ]


def test_cancel_after_a_final_is_never_sent(layer):
    invite = make_request("INVITE")
    invite_key = layer.send_request(invite, UAS, 0.0)
    cancel_key = layer.send_cancel(invite_key, 0.1)
    layer.receive_datagram(wire(answer(invite, 200)), UAS, 0.2)
    assert layer.datagrams_to_send(0.2) == [(wire(invite), UAS)]
    assert drain(layer)[-1] == TransactionTerminated(cancel_key)
    assert layer.send_cancel(invite_key, 0.3) == cancel_key
    assert drain(layer) == []  # the one CANCEL of this INVITE is already accounted for
    assert layer.datagrams_to_send(0.3) == []


@pytest.mark.parametrize("status", [486, 200])
def test_cancel_first_asked_after_a_final_is_terminated_at_once(layer, status):
    invite = make_request("INVITE")
    invite_key = layer.send_request(invite, UAS, 0.0)
    layer.receive_datagram(wire(answer(invite, status)), UAS, 0.1)  # settled: INVITE dropped
    drain(layer)
    layer.datagrams_to_send(0.1)
    cancel_key = layer.send_cancel(invite_key, 0.2)
    assert (cancel_key.branch, cancel_key.method) == (invite_key.branch, "CANCEL")
    assert drain(layer) == [TransactionTerminated(cancel_key)]
    assert layer.datagrams_to_send(0.2) == []


def test_pending_cancel_is_dropped_when_timer_b_fires(layer):
    invite_key = layer.send_request(make_request("INVITE"), UAS, 0.0)
    cancel_key = layer.send_cancel(invite_key, 0.1)
    fire_until(layer, 100.0)
    assert drain(layer) == [
        TransactionTimedOut(invite_key, Timer.B),
        TransactionTerminated(invite_key),
        TransactionTerminated(cancel_key),
    ]
    assert all(b"CANCEL" not in data for data, _ in layer.datagrams_to_send(100.0))


def test_one_cancel_per_invite_even_after_it_timed_out(layer):
    invite = make_request("INVITE")
    invite_key = layer.send_request(invite, UAS, 0.0)
    layer.receive_datagram(wire(answer(invite, 100)), UAS, 0.1)
    cancel_key = layer.send_cancel(invite_key, 0.2)
    fire_until(layer, 40.0)  # the CANCEL is never answered: Timer F
    assert TransactionTimedOut(cancel_key, Timer.F) in drain(layer)
    layer.datagrams_to_send(40.0)
    assert layer.send_cancel(invite_key, 40.0) == cancel_key
    assert layer.datagrams_to_send(40.0) == [] and layer.state(cancel_key) is None


def test_send_cancel_needs_an_invite_client_transaction(layer):
    key = layer.send_request(make_request("OPTIONS"), UAS, 0.0)
    with pytest.raises(sipmask.LocalProtocolError):
        layer.send_cancel(key, 0.0)


# --- round trips through a UAC/UAS pair -----------------------------------------------------


def uas_answers(pair, status):
    (event,) = [e for e in pair.uas_events if isinstance(e, RequestReceived)]
    pair.uas.send_response(event.key, answer(event.request, status), pair.now)
    pair.flush()
    return event


def test_invite_rejected_round_trip():
    pair = UacUasPair()
    key = pair.uac.send_request(make_request("INVITE"), UAS, pair.now)
    pair.flush()
    uas_answers(pair, 486)
    assert [m.status for m in pair.sent_by("uas")] == [100, 486]
    assert [m.method for m in pair.sent_by("uac")] == ["INVITE", "ACK"]
    pair.advance(100.0)
    assert [type(e) for e in pair.uac_events] == [
        ResponseReceived,
        ResponseReceived,
        TransactionTerminated,
    ]
    assert pair.uac_events[-1].key == key
    assert [type(e) for e in pair.uas_events] == [RequestReceived, TransactionTerminated]


def test_lost_final_is_retransmitted_by_timer_g_and_acked():
    pair = UacUasPair(loss_pattern={2})  # 0 INVITE, 1 100 Trying, 2 the first 486
    key = pair.uac.send_request(make_request("INVITE"), UAS, pair.now)
    pair.flush()
    uas_answers(pair, 486)
    assert [m.method for m in pair.sent_by("uac")] == ["INVITE"]
    pair.advance(T1)  # Timer G re-sends the 486, the UAC acknowledges it
    assert [m.method for m in pair.sent_by("uac")] == ["INVITE", "ACK"]
    pair.advance(100.0)
    assert [type(e) for e in pair.uas_events] == [RequestReceived, TransactionTerminated]
    assert [(type(e), e.key) for e in pair.uac_events][-1] == (TransactionTerminated, key)
    assert pair.uas.stats.retransmissions == 1


def test_lost_2xx_is_retransmitted_by_the_tu_and_each_copy_goes_up():
    pair = UacUasPair(loss_pattern={2})  # 0 INVITE, 1 100 Trying, 2 the first 200
    key = pair.uac.send_request(make_request("INVITE"), UAS, pair.now)
    pair.flush()
    event = uas_answers(pair, 200)
    assert pair.uac.state(key) is ClientInviteState.PROCEEDING
    ok = answer(event.request, 200)
    for at in (T1, 3 * T1):  # the dialog's 2xx retransmission (RFC 3261 §13.3.1.4)
        pair.advance(at)
        pair.uas.send_response(event.key, ok, pair.now)
        pair.flush()
    responses = [e for e in pair.uac_events if isinstance(e, ResponseReceived)]
    assert [(e.response.status, e.retransmission) for e in responses] == [
        (100, False),
        (200, False),
        (200, True),
    ]
    assert pair.uac.state(key) is ClientInviteState.ACCEPTED


def test_duplicated_datagrams_reach_each_tu_once():
    pair = UacUasPair()
    pair.uac.send_request(make_request("OPTIONS"), UAS, pair.now)
    ((data, _),) = pair.uac.datagrams_to_send(pair.now)
    for _ in range(3):
        pair.uas.receive_datagram(data, UAC, pair.now)
    pair.flush()
    event = uas_answers(pair, 200)
    (reply,) = [s.data for s in pair.log if s.sender == "uas"]
    for _ in range(3):
        pair.uac.receive_datagram(reply, UAS, pair.now)
    pair._collect()
    assert [type(e) for e in pair.uas_events] == [RequestReceived]
    assert [type(e) for e in pair.uac_events] == [ResponseReceived]
    assert event.request.method == "OPTIONS"


def test_tcp_round_trip_sends_nothing_twice():
    pair = UacUasPair(reliable=True)
    pair.uac.send_request(make_request("INVITE", transport="TCP"), UAS, pair.now, reliable=True)
    pair.flush()
    pair.advance(10.0)
    uas_answers(pair, 603)
    pair.advance(100.0)
    assert [s.data.split(b"\r\n")[0] for s in pair.log] == [
        b"INVITE sip:+918045671234@192.0.2.2 SIP/2.0",
        b"SIP/2.0 100 Trying",
        b"SIP/2.0 603 Decline",
        b"ACK sip:+918045671234@192.0.2.2 SIP/2.0",
    ]
    assert pair.uac.stats.in_flight == pair.uas.stats.in_flight == 0


# --- the error boundary under fuzzing (h11's invariant: handled, never raised) ---------------

VALID = [
    wire(make_request("INVITE", via_params=";rport")),
    wire(make_request("CANCEL")),
    wire(make_request("ACK", to_tag="x")),
    wire(answer(make_request("INVITE"), 180)),
]


@settings(max_examples=300, deadline=None)
@given(
    base=st.sampled_from(VALID),
    edits=st.lists(st.tuples(st.integers(min_value=0), st.binary(max_size=4)), max_size=4),
    reliable=st.booleans(),
)
def test_mutated_datagrams_never_raise(base, edits, reliable):
    layer = TransactionLayer()
    layer.send_request(make_request("INVITE"), UAS, 0.0)  # something for responses to hit
    data = bytearray(base)
    for position, replacement in edits:
        position %= len(data)
        data[position : position + len(replacement)] = replacement
    layer.receive_datagram(bytes(data), NAT, 1.0, reliable=reliable)
    layer.receive_datagram(bytes(data), NAT, 1.5, reliable=reliable)  # and its duplicate
    for payload, dest in layer.datagrams_to_send(1.5):
        assert isinstance(sipmask.parse(payload), sipmask.Message)
        assert isinstance(dest, Address)
    fire_until(layer, 100.0)


@given(data=st.binary(max_size=300))
def test_random_bytes_never_raise(data):
    layer = TransactionLayer()
    layer.receive_datagram(data, NAT, 0.0)
    assert layer.stats.parse_errors + layer.stats.dropped + layer.stats.in_flight >= 0


# --- configuration --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [{"t1": 0}, {"t1": -1.0}, {"t2": 100.0}, {"t1": 2.0, "t2": 1.0}, {"timer_d": 5.0}, {"t5": 1}],
    ids=["t1-zero", "t1-negative", "t2-huge", "t2-below-t1", "timer-d-below-32", "unknown"],
)
def test_timer_config_rejects_out_of_bounds(fields):
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert(fields, TimerConfig)


def test_timer_config_defaults_are_the_rfcs():
    assert TimerConfig() == msgspec.convert({}, TimerConfig)
    assert (TimerConfig().t1, TimerConfig().t2, TimerConfig().t4) == (0.5, 4.0, 5.0)


def test_abandoned_server_transaction_is_forgotten_unanswered(layer):
    request = make_request("OPTIONS")
    layer.receive_datagram(wire(request), NAT, 0.0)
    received = layer.next_event()
    assert isinstance(received, RequestReceived)
    layer.abandon(received.key)
    assert layer.state(received.key) is None
    assert layer.stats.in_progress == 0 and layer.stats.in_flight == 0
    assert isinstance(layer.next_event(), TransactionTerminated)
    assert layer.datagrams_to_send(0.0) == []  # nothing was answered
    layer.receive_datagram(wire(request), NAT, 1.0)  # a retransmission is a new request
    assert isinstance(layer.next_event(), RequestReceived)


def test_deadline_heap_stays_bounded_by_its_live_timers():
    """Answering an INVITE stops its Timer ANSWER (15 minutes), whose heap entry used to stay
    until that deadline: ~300 octets a call for 15 minutes (the soak's RSS growth, issue 13).
    The heap is rebuilt from its live entries when it doubles."""
    layer = TransactionLayer(tag_factory=lambda: "t")
    calls, rate = 20_000, 100.0  # 200 s of INVITEs answered 200 (each lingers 32 s, Timer L)
    for n in range(calls):
        now = n / rate
        layer.receive_datagram(wire(make_request("INVITE", branch=f"z9hG4bKs{n}")), UAC, now)
        (event,) = [e for e in drain(layer) if isinstance(e, RequestReceived)]
        layer.send_response(event.key, answer(event.request, 200), now)
        fire_until(layer, now)
        drain(layer)
        layer.datagrams_to_send(now)
    live = sum(len(t.timers) for t in layer._transactions.values())
    assert live <= 2 * 32 * rate  # Timer L of the last 32 s only
    assert layer.deadlines <= max(HEAP_COMPACT_MIN, 2 * 2 * live)
