"""The call's state table (`b2bua/table.py`): every (phase, event) pair has a defined
outcome, the docs show the table the code runs, and no sequence of events leaves a leg
without an end once every timer has run."""

from __future__ import annotations

import re
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from sansio import SDP, Driver, of

from sipmask._core import Request, Response
from sipmask.b2bua.actions import Action, GiveUpInvite, SendRequest, SendResponse
from sipmask.b2bua.call import Phase
from sipmask.b2bua.engine import CallEngine
from sipmask.b2bua.table import DEFAULTS, TABLE, CallEvent, Default, markdown, outcome

DOCS = Path(__file__).parents[2] / "docs" / "b2bua.md"


def test_every_pair_has_a_defined_outcome() -> None:
    assert set(DEFAULTS) == set(CallEvent)
    for phase in Phase:
        for event in CallEvent:
            result = outcome(phase, event)
            if (phase, event) in TABLE:
                assert callable(getattr(CallEngine, result)), result
            else:
                assert result in {d.value for d in Default}


def test_no_handler_runs_for_an_ended_call_but_those_that_end_its_transactions() -> None:
    ended = {event for (phase, event) in TABLE if phase is Phase.ENDED}
    assert ended <= {CallEvent.B_PROVISIONAL, CallEvent.B_ANSWERED, CallEvent.B_FAILED,
                     CallEvent.B_TIMED_OUT}


def test_the_docs_show_the_table_the_code_runs() -> None:
    text = DOCS.read_text()
    found = re.search(r"<!-- call-table:begin -->\n(.*?)<!-- call-table:end -->", text, re.S)
    assert found is not None, "docs/b2bua.md lacks the generated call table"
    assert found.group(1) == markdown(), (
        "docs/b2bua.md's call table differs from b2bua/table.py: paste markdown() there")


def test_an_unexpected_pair_tears_both_legs_down() -> None:
    d = Driver()
    call, invite = d.start(body=SDP)
    d.answer(invite, 200, body=SDP)
    ok = [a.response for a in of(SendResponse, d.sent) if a.response.status == 200][0]
    d.ack(ok)
    d.engine.now = d.now
    d.engine.call_event(call, CallEvent.SHUTDOWN)
    actions = d.take()
    assert sorted(a.leg.side.value for a in of(SendRequest, actions)) == ["callee", "caller"]
    assert call.ended


# --- the property: whatever happens, every leg ends -------------------------------------

STEPS = st.lists(st.sampled_from([
    "b100rel", "b180", "b200", "b486", "b503", "b-timeout", "b-terminated", "cancel", "ack",
    "bye-a", "bye-b", "advance", "advance-far", "shutdown",
]), max_size=12)


class Peers:
    """What the caller and the callees said and were told, to check every leg's end."""

    def __init__(self, d: Driver) -> None:
        self.d = d
        self.finals: set[object] = set()  # B INVITE keys with a final answer or timeout
        self.b_ok: list[tuple[Request, Response]] = []  # (INVITE, 200) answered on B
        self.a_bye = False
        self.b_bye = False

    def invites(self) -> list[SendRequest]:
        return [a for a in of(SendRequest, self.d.sent) if a.request.method == "INVITE"]

    def a_answers(self) -> list[int]:
        key = self.d.a_key
        return [a.response.status for a in of(SendResponse, self.d.sent) if a.key == key]

    def step(self, name: str) -> None:
        d = self.d
        invites = self.invites()
        invite = invites[-1] if invites else None
        call = next(iter(d.engine.calls), None)
        if name.startswith("b") and name[1:4].isdigit() or name == "b100rel":
            if invite is None or invite.key in self.finals or self.given_up(invite):
                return  # the layer drops answers to a transaction that ended (§18.1.2)
            status = 180 if name == "b100rel" else int(name[1:4])
            if status >= 200:
                self.finals.add(invite.key)
            d.answer(invite, status, body=SDP if status == 200 else b"")
            if status == 200:
                self.b_ok.append((invite.request, d.last_callee_response))
        elif name == "b-timeout" and invite is not None and invite.key not in self.finals \
                and not self.given_up(invite):
            self.finals.add(invite.key)
            d.timed_out(invite.key)
        elif name == "b-terminated" and invite is not None and invite.key in self.finals:
            d.terminated(invite.key)
        elif name == "cancel" and call is not None and not any(
                s >= 200 for s in self.a_answers()):
            d.cancel(call)
        elif name == "ack" and 200 in self.a_answers():
            d.ack(self.a_ok())
        elif name == "bye-a" and 200 in self.a_answers() and not self.a_bye:
            self.a_bye = True
            d.bye_from_caller(self.a_ok())
        elif name == "bye-b" and self.b_ok and not self.b_bye:
            self.b_bye = True
            request, response = self.b_ok[0]
            d.bye_from_callee(request, response)
        elif name == "advance":
            d.advance(1.0)
        elif name == "advance-far":
            d.advance(100.0)
        elif name == "shutdown" and call is not None:
            d.engine.now = d.now
            d.engine.call_event(call, CallEvent.SHUTDOWN)
            d.take()

    def given_up(self, invite: SendRequest) -> bool:
        return GiveUpInvite(invite.key) in self.d.sent

    def a_ok(self) -> Response:
        key = self.d.a_key
        return [a.response for a in of(SendResponse, self.d.sent)
                if a.key == key and a.response.status == 200][0]


def sent_on(actions: list[Action], side: str, method: str) -> bool:
    return any(a.leg.side.value == side and a.request.method == method
               for a in of(SendRequest, actions))


@settings(max_examples=500, deadline=None)
@given(STEPS)
def test_no_event_sequence_leaves_a_leg_without_an_end(steps: list[str]) -> None:
    d = Driver(calls="max_duration = 3600")  # else an answered call is rightly held for ever
    call, _ = d.start(body=SDP)
    peers = Peers(d)
    for name in steps:
        peers.step(name)
    d.run_out()
    for key in (a.key for a in peers.invites()):  # the INVITE transactions end at last
        if key not in peers.finals:
            d.terminated(key)
    assert not d.engine.calls, "a call is still in flight"
    assert call.ended
    # The caller's INVITE got its final response; an answered caller leg got a BYE (or
    # sent one).
    assert any(status >= 200 for status in peers.a_answers())
    if 200 in peers.a_answers():
        assert peers.a_bye or sent_on(d.sent, "caller", "BYE")
    # Every INVITE to a callee got a final answer, timed out, or was given up after its
    # CANCEL; an answered callee leg got a BYE (or sent one).
    for invite in peers.invites():
        assert invite.key in peers.finals or GiveUpInvite(invite.key) in d.sent
    if peers.b_ok:
        assert peers.b_bye or sent_on(d.sent, "callee", "BYE")
