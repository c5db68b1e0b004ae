"""Client transactions (RFC 3261 §17.1, RFC 6026 §8.4) on a fake clock."""

import gc

import pytest
from helpers import T1, T2, T4, UAS, answer, drain, fire_until, make_request, parsed, wire

import sipmask
from sipmask.sip.events import (
    ResponseReceived,
    TransactionTerminated,
    TransactionTimedOut,
)
from sipmask.sip.layer import TransactionLayer
from sipmask.sip.timers import Timer, TimerConfig
from sipmask.sip.transaction import ClientInviteState, ClientNonInviteState


@pytest.fixture
def layer():
    return TransactionLayer()


@pytest.fixture
def invite():
    return make_request("INVITE")


def send(layer, request, *, reliable=False, now=0.0):
    key = layer.send_request(request, UAS, now, reliable=reliable)
    first = layer.datagrams_to_send(now)
    assert [data for data, _ in first] == [wire(request)]
    assert first[0][1] == UAS
    return key


def messages_held(transaction):
    """Every parsed SIP message reachable from `transaction` through its own attributes and
    the containers in them (not through the layer it points back to)."""
    found, seen, todo = [], set(), list(gc.get_referents(transaction))
    while todo:
        obj = todo.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, sipmask.Message):
            found.append(obj)
        elif isinstance(obj, tuple | list | dict | set | frozenset):
            todo.extend(gc.get_referents(obj))
    return found


# --- INVITE -------------------------------------------------------------------------------


def test_invite_client_timer_a_doubles_then_timer_b_times_out(layer, invite):
    key = send(layer, invite)
    assert layer.get_timer() == T1  # RFC 3261 §17.1.1.2: Timer A = T1
    fired = fire_until(layer, 64 * T1)
    # A doubles with no cap: 0.5, 1.5, 3.5, 7.5, 15.5, 31.5; B = 64*T1 = 32 ends it.
    assert fired == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5, 32.0]
    retransmissions = layer.datagrams_to_send(32.0)
    assert [data for data, _ in retransmissions] == [wire(invite)] * 6
    assert layer.stats.retransmissions == 6
    assert drain(layer) == [TransactionTimedOut(key, Timer.B), TransactionTerminated(key)]
    assert layer.get_timer() is None and layer.state(key) is None


def test_invite_client_over_tcp_never_retransmits(layer, invite):
    key = send(layer, invite, reliable=True)
    assert layer.get_timer() == 64 * T1  # only Timer B
    assert fire_until(layer, 100.0) == [32.0]
    assert layer.datagrams_to_send(32.0) == []
    assert drain(layer) == [TransactionTimedOut(key, Timer.B), TransactionTerminated(key)]


def test_timers_follow_the_configured_t1():
    layer = TransactionLayer(TimerConfig(t1=0.1, t2=1.0))
    send(layer, make_request("INVITE"))
    # A: 0.1, 0.3, 0.7, 1.5, 3.1, 6.3; B = 64*T1 = 6.4
    assert fire_until(layer, 100.0) == pytest.approx([0.1, 0.3, 0.7, 1.5, 3.1, 6.3, 6.4])


def test_provisional_moves_to_proceeding_and_stops_retransmitting(layer, invite):
    key = send(layer, invite)
    trying = answer(invite, 100)
    layer.receive_message(trying, UAS, 0.2)
    assert layer.state(key) is ClientInviteState.PROCEEDING
    assert drain(layer) == [ResponseReceived(key, trying, False)]
    assert layer.get_timer() is None  # A and B stop; Timer C is the TU's
    assert fire_until(layer, 100.0) == [] and layer.datagrams_to_send(100.0) == []


def test_identical_provisional_is_absorbed_a_new_one_passes(layer, invite):
    key = send(layer, invite)
    ringing = answer(invite, 180)
    layer.receive_datagram(wire(ringing), UAS, 0.1)
    layer.receive_datagram(wire(ringing), UAS, 0.2)
    progress = answer(invite, 183)
    layer.receive_datagram(wire(progress), UAS, 0.3)
    events = drain(layer)
    assert [(type(e), e.response.status) for e in events] == [
        (ResponseReceived, 180),
        (ResponseReceived, 183),
    ]
    assert all(e.key == key for e in events)


@pytest.mark.parametrize("status", [300, 404, 486, 503, 603], ids=lambda s: f"final-{s}")
def test_non_2xx_final_sends_the_ack_inside_the_transaction(layer, status):
    invite = make_request("INVITE")
    invite.add_header("Route", "<sip:proxy.example;lr>")
    key = send(layer, invite)
    layer.receive_message(answer(invite, 100), UAS, 0.1)
    rejection = answer(invite, status)
    layer.receive_datagram(wire(rejection), UAS, 0.2)
    (ack,) = parsed(layer.datagrams_to_send(0.2))
    # RFC 3261 §17.1.1.3: the INVITE's Request-URI, Call-ID, From, top Via and Route, the
    # CSeq number with method ACK, and the To of the response (with its tag).
    assert ack.method == "ACK" and ack.uri == invite.uri
    assert ack.headers("via") == invite.headers("via")[:1]
    assert ack.top_via.branch == invite.top_via.branch
    assert ack.call_id == invite.call_id and ack.header("from") == invite.header("from")
    assert ack.to_tag == "uas-tag"
    assert (ack.cseq.number, ack.cseq.method) == (1, "ACK")
    assert ack.headers("route") == ["<sip:proxy.example;lr>"]
    assert layer.state(key) is ClientInviteState.COMPLETED
    assert [type(e) for e in drain(layer)] == [ResponseReceived, ResponseReceived]


def test_retransmitted_final_resends_the_ack_and_is_absorbed(layer, invite):
    key = send(layer, invite)
    busy = wire(answer(invite, 486))
    layer.receive_datagram(busy, UAS, 0.1)
    first_ack = layer.datagrams_to_send(0.1)
    assert drain(layer) == [ResponseReceived(key, sipmask.parse(busy), False)]
    layer.receive_datagram(busy, UAS, 2.0)
    assert layer.datagrams_to_send(2.0) == first_ack
    assert drain(layer) == []
    assert layer.get_timer() == 0.1 + 32.0  # Timer D: 32 s on UDP
    assert fire_until(layer, 100.0) == [32.1]
    assert drain(layer) == [TransactionTerminated(key)]


def test_non_2xx_final_over_tcp_terminates_at_once(layer, invite):
    key = send(layer, invite, reliable=True)
    layer.receive_datagram(wire(answer(invite, 486)), UAS, 0.1)
    assert len(layer.datagrams_to_send(0.1)) == 1  # the ACK
    assert [type(e) for e in drain(layer)] == [ResponseReceived, TransactionTerminated]
    assert layer.state(key) is None and layer.get_timer() is None  # Timer D = 0


def test_2xx_moves_to_accepted_and_every_2xx_goes_up(layer, invite):
    key = send(layer, invite)
    ok = answer(invite, 200)
    layer.receive_datagram(wire(ok), UAS, 1.0)
    assert layer.state(key) is ClientInviteState.ACCEPTED
    assert layer.datagrams_to_send(1.0) == []  # the ACK for a 2xx is the dialog's
    assert layer.get_timer() == 1.0 + 64 * T1  # RFC 6026 Timer M
    layer.receive_datagram(wire(ok), UAS, 2.0)
    layer.receive_datagram(wire(ok), UAS, 4.0)
    forked = answer(invite, 200, to_tag="other-branch")
    layer.receive_datagram(wire(forked), UAS, 5.0)
    events = drain(layer)
    assert [e.retransmission for e in events] == [False, True, True, False]
    assert [e.response.to_tag for e in events][-1] == "other-branch"
    assert fire_until(layer, 100.0) == [33.0]
    assert drain(layer) == [TransactionTerminated(key)]


def test_2xx_after_accepted_timer_m_still_reaches_the_dialog(layer, invite):
    key = send(layer, invite)
    ok = wire(answer(invite, 200))
    layer.receive_datagram(ok, UAS, 0.1)
    fire_until(layer, 100.0)
    drain(layer)
    layer.receive_datagram(ok, UAS, 40.0)
    assert drain(layer) == [ResponseReceived(key, sipmask.parse(ok), True)]


def test_provisional_after_final_is_absorbed(layer, invite):
    send(layer, invite)
    layer.receive_datagram(wire(answer(invite, 486)), UAS, 0.1)
    drain(layer)
    layer.receive_datagram(wire(answer(invite, 180)), UAS, 0.2)
    layer.receive_datagram(wire(answer(invite, 200)), UAS, 0.3)
    assert drain(layer) == []


def test_response_with_other_cseq_method_does_not_match(layer, invite):
    send(layer, invite)
    stray = answer(make_request("BYE"), 200)
    layer.receive_datagram(wire(stray), UAS, 0.1)
    assert drain(layer) == [] and layer.stats.dropped == 1


def test_send_request_needs_the_magic_cookie(layer):
    with pytest.raises(sipmask.LocalProtocolError):
        layer.send_request(make_request("INVITE", branch="old-style"), UAS, 0.0)


def test_send_request_refuses_a_branch_in_use(layer, invite):
    send(layer, invite)
    with pytest.raises(sipmask.LocalProtocolError):
        layer.send_request(make_request("INVITE"), UAS, 0.0)


def test_ack_for_2xx_is_sent_without_a_transaction(layer):
    ack = make_request("ACK", branch="z9hG4bKack", to_tag="uas-tag")
    layer.send_request(ack, UAS, 0.0)
    assert layer.datagrams_to_send(0.0) == [(wire(ack), UAS)]
    assert layer.get_timer() is None and layer.stats.in_flight == 0


# --- non-INVITE -----------------------------------------------------------------------------


def test_non_invite_timer_e_caps_at_t2_then_timer_f(layer):
    options = make_request("OPTIONS")
    key = send(layer, options)
    fired = fire_until(layer, 64 * T1)
    # RFC 3261 §17.1.2.2: E = T1, doubled up to T2: 0.5, 1.5, 3.5, 7.5 then every 4 s.
    assert fired == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5, 32.0]
    assert len(layer.datagrams_to_send(32.0)) == 10
    assert drain(layer) == [TransactionTimedOut(key, Timer.F), TransactionTerminated(key)]


def test_non_invite_in_proceeding_retransmits_every_t2(layer):
    options = make_request("OPTIONS")
    key = send(layer, options)
    layer.receive_message(answer(options, 100), UAS, 0.1)
    assert layer.state(key) is ClientNonInviteState.PROCEEDING
    fired = fire_until(layer, 64 * T1)
    # the E armed in Trying fires at 0.5, then every T2 (§17.1.2.2), F at 32
    assert fired == [0.5, 4.5, 8.5, 12.5, 16.5, 20.5, 24.5, 28.5, 32.0]
    assert [type(e) for e in drain(layer)] == [
        ResponseReceived,
        TransactionTimedOut,
        TransactionTerminated,
    ]


def test_non_invite_over_tcp_never_retransmits(layer):
    key = send(layer, make_request("OPTIONS"), reliable=True)
    assert fire_until(layer, 100.0) == [32.0]
    assert layer.datagrams_to_send(100.0) == []
    assert drain(layer) == [TransactionTimedOut(key, Timer.F), TransactionTerminated(key)]


def test_non_invite_final_then_timer_k_absorbs_retransmissions(layer):
    bye = make_request("BYE", to_tag="uas-tag")
    key = send(layer, bye)
    ok = wire(answer(bye, 200))
    layer.receive_datagram(ok, UAS, 1.0)
    assert layer.state(key) is ClientNonInviteState.COMPLETED
    layer.receive_datagram(ok, UAS, 2.0)
    assert drain(layer) == [ResponseReceived(key, sipmask.parse(ok), False)]
    assert layer.get_timer() == 1.0 + T4  # Timer K = T4 on UDP
    assert fire_until(layer, 100.0) == [6.0]
    assert layer.datagrams_to_send(100.0) == []  # E stopped in Completed
    assert drain(layer) == [TransactionTerminated(key)]


def test_non_invite_final_over_tcp_terminates_at_once(layer):
    bye = make_request("BYE", to_tag="uas-tag")
    key = send(layer, bye, reliable=True)
    layer.receive_datagram(wire(answer(bye, 200)), UAS, 1.0)
    assert [type(e) for e in drain(layer)] == [ResponseReceived, TransactionTerminated]
    assert layer.state(key) is None and layer.get_timer() is None


def test_get_timer_is_the_earliest_over_all_transactions(layer):
    send(layer, make_request("OPTIONS", branch="z9hG4bKa"), now=0.0)
    send(layer, make_request("INVITE", branch="z9hG4bKb"), now=0.3, reliable=True)
    send(layer, make_request("INVITE", branch="z9hG4bKc"), now=0.2)
    assert layer.get_timer() == 0.5
    layer.handle_timer(0.5)
    assert layer.get_timer() == 0.7  # the INVITE at 0.2: A = T1
    assert layer.stats.in_flight == 3
    assert T2 == layer.timers.t2


# --- what a lingering transaction keeps (issue 3) -------------------------------------------


@pytest.mark.parametrize(
    ("method", "status", "state"),
    [
        ("INVITE", 486, ClientInviteState.COMPLETED),  # keeps the ACK's bytes
        ("INVITE", 200, ClientInviteState.ACCEPTED),  # keeps the To tags seen
        ("BYE", 200, ClientNonInviteState.COMPLETED),
    ],
    ids=["invite-completed", "invite-accepted", "non-invite-completed"],
)
def test_settled_client_transaction_keeps_bytes_not_messages(layer, method, status, state):
    request = make_request(method, to_tag="uas-tag" if method == "BYE" else None)
    key = send(layer, request)
    transaction = layer._transactions[key]
    layer.receive_datagram(wire(answer(request, 180 if method == "INVITE" else 100)), UAS, 0.1)
    assert messages_held(transaction)  # the request (and, for an INVITE, the last 1xx)
    final = wire(answer(request, status))
    layer.receive_datagram(final, UAS, 0.2)
    first = layer.datagrams_to_send(0.2)  # the ACK for a 486, else nothing
    assert layer.state(key) is state and not transaction.in_progress
    assert messages_held(transaction) == []
    drain(layer)
    layer.receive_datagram(final, UAS, 1.0)  # a retransmitted final
    assert layer.datagrams_to_send(1.0) == first
    events = drain(layer)
    if state is ClientInviteState.ACCEPTED:  # every 2xx goes up, flagged (RFC 6026 §8.4)
        assert [e.retransmission for e in events] == [True]
    else:
        assert events == []
