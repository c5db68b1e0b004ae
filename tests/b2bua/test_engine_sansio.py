"""The call logic without IO: a call driven purely by events and `now`, asserting on the
actions it emits (`b2bua/actions.py`); no sockets, no loop, no clock."""

from __future__ import annotations

from sansio import RING, SDP, TARGETS, Driver, methods, of, statuses

from sipmask.b2bua.actions import (
    CancelInvite,
    GiveUpInvite,
    RouteCall,
    SaveRecords,
    SendRequest,
    SendResponse,
)


def test_a_new_invite_asks_the_shell_to_route_it_and_sends_nothing() -> None:
    d = Driver()
    actions = d.feed(d.invite())
    assert [type(a) for a in actions] == [RouteCall]
    assert actions[0].call is d.call()  # type: ignore[union-attr]


def test_basic_call_from_invite_to_bye() -> None:
    d = Driver()
    call, invite = d.start(body=SDP)
    assert invite.request.method == "INVITE" and invite.leg.peer == TARGETS[0].address
    assert statuses(d.answer(invite, 180)) == [180]
    answered = d.answer(invite, 200, body=SDP)
    assert methods(answered) == ["ACK"]  # the callee's 200 is ACKed on B...
    (ok,) = [a.response for a in of(SendResponse, answered)]  # ...and relayed on A
    assert ok.status == 200 and ok.body
    assert d.ack(ok) == []
    assert call.answered_at is not None
    bye = d.bye_from_caller(ok)
    assert statuses(bye) == [200] and methods(bye) == ["BYE"]
    assert call.ended and call.status == "completed"
    d.run_out()
    assert of(SaveRecords, d.sent)  # the record is written once its batch is due
    assert not d.engine.calls


def test_cancel_from_the_caller_cancels_the_callee_and_answers_487() -> None:
    d = Driver()
    call, invite = d.start()
    d.answer(invite, 180)
    actions = d.cancel(call)
    assert of(CancelInvite, actions) == [CancelInvite(invite.key)]
    assert 487 in statuses(actions)
    assert call.ended and call.status == "cancelled"
    # RFC 3261 §9.1: a callee silent after the CANCEL has its INVITE given up at 64*T1.
    given_up = d.advance(64 * 0.5)
    assert of(GiveUpInvite, given_up) == [GiveUpInvite(invite.key)]


def test_ring_timeout_cancels_the_callee_and_answers_480() -> None:
    d = Driver()
    call, invite = d.start()
    d.answer(invite, 180)
    assert d.advance(RING - 1) == []
    actions = d.advance(1)
    assert of(CancelInvite, actions) == [CancelInvite(invite.key)]
    assert statuses(actions) == [480]
    assert call.status == "no-answer" and call.cause == "ring"


def test_a_silent_first_destination_fails_over_to_the_second() -> None:
    d = Driver()
    call, invite = d.start()
    actions = d.timed_out(invite.key)  # Timer B: no answer at all
    (second,) = of(SendRequest, actions)
    assert second.request.method == "INVITE" and second.leg.peer == TARGETS[1].address
    assert statuses(actions) == []  # the caller hears nothing of it
    assert statuses(d.answer(second, 503)) == [500]  # 503 never crosses (RFC 3261 §16.7)
    assert call.ended and call.status == "failed"
