"""Server transactions (RFC 3261 §17.2, RFC 6026 §8.5-8.7) on a fake clock."""

import gc

import pytest
from helpers import T1, T4, UAC, answer, drain, fire_until, make_request, parsed, wire

import sipmask
from sipmask.sip.events import (
    AckReceived,
    RequestReceived,
    TransactionTerminated,
    TransactionTimedOut,
)
from sipmask.sip.layer import TransactionLayer
from sipmask.sip.timers import Timer
from sipmask.sip.transaction import ServerInviteState, ServerNonInviteState


@pytest.fixture
def layer():
    return TransactionLayer(tag_factory=lambda: "layer-tag")


def receive(layer, request, now=0.0, *, reliable=False):
    """Deliver `request` and return the key and the request the TU sees."""
    layer.receive_datagram(wire(request), UAC, now, reliable=reliable)
    (event,) = [e for e in drain(layer) if isinstance(e, RequestReceived)]
    return event.key, event.request


def statuses(layer, now):
    return [m.status for m in parsed(layer.datagrams_to_send(now))]


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


def test_invite_gets_100_trying_at_once_and_reaches_the_tu_once():
    layer = TransactionLayer()
    invite = wire(make_request("INVITE"))
    layer.receive_datagram(invite, UAC, 0.0)
    (trying,) = parsed(layer.datagrams_to_send(0.0))
    assert trying.status == 100 and trying.to_tag is None  # RFC 3261 §17.2.1, §8.2.6.1
    events = drain(layer)
    assert [type(e) for e in events] == [RequestReceived]
    assert events[0].source == UAC and events[0].request.method == "INVITE"
    layer.receive_datagram(invite, UAC, 0.5)  # retransmission: 100 again, no new event
    assert statuses(layer, 0.5) == [100]
    assert drain(layer) == []
    # No RFC timer in Proceeding: only the bound on a TU that never answers.
    assert layer.get_timer() == layer.invite_answer_timeout


def test_retransmitted_invite_gets_the_last_provisional(layer):
    key, request = receive(layer, make_request("INVITE"))
    layer.datagrams_to_send(0.0)
    layer.send_response(key, answer(request, 180), 0.1)
    assert statuses(layer, 0.1) == [180]
    layer.receive_datagram(wire(make_request("INVITE")), UAC, 0.5)
    assert statuses(layer, 0.5) == [180]
    assert layer.stats.retransmissions == 1


def test_non_2xx_final_retransmitted_by_timer_g_until_timer_h(layer):
    key, request = receive(layer, make_request("INVITE"))
    layer.datagrams_to_send(0.0)
    layer.send_response(key, answer(request, 486), 0.0)
    assert statuses(layer, 0.0) == [486]
    assert layer.state(key) is ServerInviteState.COMPLETED
    fired = fire_until(layer, 100.0)
    # RFC 3261 §17.2.1: G = T1 doubling to T2 (0.5, 1.5, 3.5, 7.5, then every 4 s); H = 64*T1
    assert fired == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5, 32.0]
    assert statuses(layer, 32.0) == [486] * 10
    assert drain(layer) == [TransactionTimedOut(key, Timer.H), TransactionTerminated(key)]


def test_retransmitted_invite_in_completed_gets_the_final_again(layer):
    key, request = receive(layer, make_request("INVITE"))
    layer.send_response(key, answer(request, 404), 0.0)
    layer.datagrams_to_send(0.0)
    layer.receive_datagram(wire(make_request("INVITE")), UAC, 0.2)
    assert statuses(layer, 0.2) == [404]
    assert drain(layer) == []


def test_ack_for_non_2xx_confirms_then_timer_i(layer):
    key, request = receive(layer, make_request("INVITE"))
    final = answer(request, 486)
    layer.send_response(key, final, 0.0)
    layer.datagrams_to_send(0.0)
    ack = make_request("ACK", to_tag="uas-tag")  # same branch as the INVITE (§17.1.1.3)
    layer.receive_datagram(wire(ack), UAC, 0.7)
    assert layer.state(key) is ServerInviteState.CONFIRMED
    layer.receive_datagram(wire(ack), UAC, 0.9)  # ACK retransmission absorbed
    assert drain(layer) == []  # the ACK for a non-2xx never reaches the TU
    assert layer.get_timer() == 0.7 + T4  # Timer I = T4; G and H stopped
    assert fire_until(layer, 100.0) == [5.7]
    assert layer.datagrams_to_send(100.0) == []  # G fired at 0.5 only, before the ACK
    assert drain(layer) == [TransactionTerminated(key)]


def test_invite_server_over_tcp(layer):
    key, request = receive(layer, make_request("INVITE", transport="TCP"), reliable=True)
    layer.send_response(key, answer(request, 486), 0.0)
    assert statuses(layer, 0.0) == [100, 486]
    assert layer.get_timer() == 64 * T1  # H only: no Timer G on TCP
    layer.receive_datagram(wire(make_request("ACK", transport="TCP")), UAC, 1.0, reliable=True)
    assert drain(layer) == [TransactionTerminated(key)]  # Timer I = 0
    assert layer.get_timer() is None


def test_2xx_moves_to_accepted_timer_l(layer):
    key, request = receive(layer, make_request("INVITE"))
    ok = answer(request, 200)
    layer.send_response(key, ok, 1.0)
    assert layer.state(key) is ServerInviteState.ACCEPTED
    assert statuses(layer, 1.0) == [100, 200]
    assert layer.get_timer() == 1.0 + 64 * T1  # RFC 6026 Timer L
    # RFC 6026 §8.6: a retransmitted INVITE is absorbed, the TU retransmits the 2xx itself
    layer.receive_datagram(wire(make_request("INVITE")), UAC, 1.5)
    assert layer.datagrams_to_send(1.5) == []
    layer.send_response(key, ok, 1.5)
    layer.send_response(key, ok, 2.5)
    assert statuses(layer, 2.5) == [200, 200]
    assert fire_until(layer, 100.0) == [33.0]
    assert drain(layer) == [TransactionTerminated(key)]


def test_ack_for_2xx_with_a_new_branch_matches_no_transaction(layer):
    key, request = receive(layer, make_request("INVITE"))
    layer.send_response(key, answer(request, 200), 0.0)
    ack = make_request("ACK", branch="z9hG4bKack2xx", to_tag="uas-tag")
    layer.receive_datagram(wire(ack), UAC, 0.1)
    (event,) = drain(layer)
    assert type(event) is AckReceived and event.key is None and event.source == UAC
    assert layer.state(key) is ServerInviteState.ACCEPTED


def test_ack_matching_the_accepted_invite_goes_to_the_tu(layer):
    key, request = receive(layer, make_request("INVITE"))
    layer.send_response(key, answer(request, 200), 0.0)
    ack = make_request("ACK", to_tag="uas-tag")  # same branch (RFC 6026 §8.6)
    layer.receive_datagram(wire(ack), UAC, 0.1)
    layer.receive_datagram(wire(ack), UAC, 0.2)
    events = drain(layer)
    assert [(type(e), e.key) for e in events] == [(AckReceived, key), (AckReceived, key)]


def test_final_after_final_is_a_local_error(layer):
    key, request = receive(layer, make_request("INVITE"))
    layer.send_response(key, answer(request, 200), 0.0)
    with pytest.raises(sipmask.LocalProtocolError):
        layer.send_response(key, answer(request, 487), 0.1)
    with pytest.raises(sipmask.LocalProtocolError):
        layer.send_response(key, answer(request, 180), 0.1)


def test_send_response_on_an_unknown_key_is_a_local_error(layer):
    key, request = receive(layer, make_request("OPTIONS"))
    layer.send_response(key, answer(request, 200), 0.0)
    fire_until(layer, 100.0)
    with pytest.raises(sipmask.LocalProtocolError):
        layer.send_response(key, answer(request, 200), 100.0)


# --- non-INVITE -----------------------------------------------------------------------------


def test_non_invite_trying_absorbs_retransmissions(layer):
    options = wire(make_request("OPTIONS"))
    layer.receive_datagram(options, UAC, 0.0)
    layer.receive_datagram(options, UAC, 0.5)
    assert [type(e) for e in drain(layer)] == [RequestReceived]
    assert layer.datagrams_to_send(0.5) == []  # no 100 for non-INVITE, nothing to resend


def test_non_invite_completed_resends_the_final_then_timer_j(layer):
    key, request = receive(layer, make_request("OPTIONS"))
    layer.send_response(key, answer(request, 200), 1.0)
    assert layer.state(key) is ServerNonInviteState.COMPLETED
    layer.receive_datagram(wire(make_request("OPTIONS")), UAC, 2.0)
    assert statuses(layer, 2.0) == [200, 200]
    assert layer.get_timer() == 1.0 + 64 * T1  # Timer J = 64*T1 on UDP
    assert fire_until(layer, 100.0) == [33.0]
    assert drain(layer) == [TransactionTerminated(key)]


def test_non_invite_proceeding_resends_the_provisional(layer):
    key, request = receive(layer, make_request("REGISTER"))
    layer.send_response(key, answer(request, 100), 0.0)
    assert layer.state(key) is ServerNonInviteState.PROCEEDING
    layer.receive_datagram(wire(make_request("REGISTER")), UAC, 0.5)
    assert statuses(layer, 0.5) == [100, 100]


def test_non_invite_over_tcp_terminates_on_the_final(layer):
    key, request = receive(layer, make_request("BYE", transport="TCP"), reliable=True)
    layer.send_response(key, answer(request, 200), 0.0)
    assert drain(layer) == [TransactionTerminated(key)]  # Timer J = 0
    assert layer.get_timer() is None and layer.stats.in_flight == 0


def test_same_branch_other_sent_by_is_another_transaction(layer):
    receive(layer, make_request("OPTIONS", via_host="192.0.2.1"))
    receive(layer, make_request("OPTIONS", via_host="192.0.2.9"))
    assert layer.stats.in_flight == 2


def test_same_branch_other_method_is_another_transaction(layer):
    receive(layer, make_request("INVITE"))
    receive(layer, make_request("OPTIONS"))
    assert layer.stats.in_flight == 2


# --- what a lingering transaction keeps (issue 3) -------------------------------------------


@pytest.mark.parametrize(
    ("method", "status", "state", "resent"),
    [
        ("OPTIONS", 200, ServerNonInviteState.COMPLETED, True),
        ("INVITE", 486, ServerInviteState.COMPLETED, True),
        ("INVITE", 200, ServerInviteState.ACCEPTED, False),  # RFC 6026 §8.6: absorbed
    ],
    ids=["non-invite-completed", "invite-completed", "invite-accepted"],
)
def test_settled_server_transaction_keeps_bytes_not_messages(layer, method, status, state, resent):
    """Up to 32 s of lingering transactions at thousands of calls/s: each must not pin the
    parsed request and responses (~3 KB and many objects for the collector to walk)."""
    key, request = receive(layer, make_request(method))
    transaction = layer._transactions[key]
    assert messages_held(transaction)  # in progress: the request (the ACK/CANCEL source)
    layer.send_response(key, answer(request, status), 0.0)
    (final,) = [data for data, _ in layer.datagrams_to_send(0.0)][-1:]
    assert layer.state(key) is state and not transaction.in_progress
    assert messages_held(transaction) == []
    layer.receive_datagram(wire(make_request(method)), UAC, 0.2)  # a retransmitted request
    assert [data for data, _ in layer.datagrams_to_send(0.2)] == ([final] if resent else [])
    assert drain(layer) == []


def test_accepted_invite_still_matches_cancel_and_ack_without_its_request(layer):
    key, request = receive(layer, make_request("INVITE"))
    layer.send_response(key, answer(request, 200, to_tag="tag-2xx"), 0.0)
    layer.datagrams_to_send(0.0)
    layer.receive_datagram(wire(make_request("CANCEL")), UAC, 0.1)
    (ok,) = parsed(layer.datagrams_to_send(0.1))
    assert (ok.status, ok.to_tag) == (200, "tag-2xx")  # §9.2: the INVITE's tag, no 487 asked
    assert drain(layer) == []
    layer.receive_datagram(wire(make_request("ACK", to_tag="tag-2xx")), UAC, 0.2)
    assert [(type(e), e.key) for e in drain(layer)] == [(AckReceived, key)]


# --- RFC 2543 peers (no z9hG4bK cookie) ------------------------------------------------------


@pytest.mark.parametrize("branch", ["", "oldbranch1"], ids=["no-branch", "branch-without-cookie"])
def test_rfc2543_invite_retransmission_and_ack_matching(layer, branch):
    invite = make_request("INVITE", branch=branch)
    key, request = receive(layer, invite)
    layer.datagrams_to_send(0.0)
    layer.receive_datagram(wire(invite), UAC, 0.5)  # same fields: the same transaction
    assert drain(layer) == [] and statuses(layer, 0.5) == [100]
    layer.send_response(key, answer(request, 486, to_tag="t2543"), 1.0)
    # §17.2.3: the ACK matches when its To tag is the one of the response sent
    other = make_request("ACK", branch=branch, to_tag="not-ours")
    layer.receive_datagram(wire(other), UAC, 1.1)
    assert [type(e) for e in drain(layer)] == [AckReceived]
    assert layer.state(key) is ServerInviteState.COMPLETED
    layer.receive_datagram(wire(make_request("ACK", branch=branch, to_tag="t2543")), UAC, 1.2)
    assert drain(layer) == []
    assert layer.state(key) is ServerInviteState.CONFIRMED


def test_rfc2543_requests_differing_in_cseq_are_distinct(layer):
    receive(layer, make_request("OPTIONS", branch="", cseq=1))
    receive(layer, make_request("OPTIONS", branch="", cseq=2))
    assert layer.stats.in_flight == 2
