"""Every call-timer path on a made-up clock: the messages cross real loopback sockets, but the
call timers (ring timeout, Timer C, the INVITE given up after CANCEL, 2xx retransmission,
session refresh and expiry, call-time limit) fire when the test says, through
`B2BUA.run_timers(now)`, never by sleeping; nothing here asserts on elapsed time."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from b2bua_helpers import Rig, ack_for, answered_call, in_dialog, records_of, rig, sdp

from sipmask._core import Response
from sipmask.b2bua.call import Call
from sipmask.sip.layer import build_cancel
from sipmask.sip.responses import make_response
from sipmask.sip.transaction import client_key


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(test())  # type: ignore[arg-type]


class Clock:
    """The call timers' clock: the loop's, plus however far the test moved it."""

    def __init__(self) -> None:
        self.ahead = 0.0

    def __call__(self) -> float:
        return asyncio.get_running_loop().time() + self.ahead


class StoppedClock(Clock):
    """A clock stopped at the loop's time when made: it moves only as far as the test moves
    it, so the gaps a test measures between timers are exact however slow the machine is."""

    def __init__(self) -> None:
        super().__init__()
        self.base = asyncio.get_running_loop().time()

    def __call__(self) -> float:
        return self.base + self.ahead


def advance(r: Rig, seconds: float) -> None:
    """Move the call clock `seconds` forward and fire what is due."""
    clock = r.engine.monotonic
    if not isinstance(clock, Clock):
        clock = r.engine.monotonic = Clock()
    clock.ahead += seconds
    r.engine.run_timers(clock())


def fire_next(r: Rig) -> float:
    """Move the call clock to the next call timer's deadline and fire it; returns how far."""
    deadline = r.engine.timers.next_deadline()
    assert deadline is not None
    step = deadline - r.engine.time_now()
    advance(r, max(step, 0.0))
    return step


def the_call(r: Rig) -> Call:
    (call,) = r.engine.calls
    return call


def test_ring_timeout_cancels_the_callee_and_answers_480() -> None:
    async def main() -> None:
        async with rig(ring_timeout=30) as r:
            r.invite()
            b_invite = await r.callee.request("INVITE")
            r.callee.answer(b_invite, 180)
            await r.caller.response(180)
            advance(r, 29)
            assert r.engine.calls  # not yet
            advance(r, 30)
            assert (await r.caller.response()).status == 480
            cancel = await r.callee.request("CANCEL")
            assert cancel.call_id == b_invite.call_id
            r.callee.answer(cancel, 200)
            r.callee.answer(b_invite, 487)
            (record,) = await records_of(r)
            assert (record.status, record.cause) == ("no-answer", "ring")

    run(main)


def test_timer_c_gives_up_a_callee_that_rings_for_ever() -> None:
    async def main() -> None:
        async with rig(ring_timeout=600) as r:
            timer_c = r.engine.config.calls.timer_c
            r.invite()
            b_invite = await r.callee.request("INVITE")
            r.callee.answer(b_invite, 180)
            await r.caller.response(180)
            advance(r, timer_c - 10)
            r.callee.answer(b_invite, 183)  # a provisional restarts Timer C (RFC 3261 §16.6)
            await r.caller.response(183)
            advance(r, timer_c - 1)
            assert r.engine.calls
            advance(r, timer_c + 1)
            assert (await r.caller.response()).status == 408
            await r.callee.request("CANCEL")
            (record,) = await records_of(r)
            assert (record.status, record.cause) == ("no-answer", "timer-c")

    run(main)


def test_invite_is_given_up_64_t1_after_its_cancel() -> None:
    async def main() -> None:
        async with rig() as r:
            t1 = r.engine.config.sip.timers.t1
            invite = r.invite()
            b_invite = await r.callee.request("INVITE")
            r.callee.answer(b_invite, 180)
            await r.caller.response(180)
            r.caller.send(build_cancel(invite), r.sipmask)
            await r.caller.response(487)
            cancel = await r.callee.request("CANCEL")
            r.callee.send(make_response(cancel, 200, to_tag=r.callee.tag), r.sipmask)
            await r.callee.silence(0.05)  # the CANCEL's 200 is in
            key = client_key(b_invite)
            advance(r, 64 * t1 - 10 * t1)
            assert r.endpoint.layer.state(key) is not None  # still waiting for the 487
            advance(r, 10 * t1)
            assert r.endpoint.layer.state(key) is None
            assert r.endpoint.layer.stats.in_progress == 0

    run(main)


def test_2xx_is_retransmitted_doubling_up_to_t2_until_the_ack() -> None:
    async def main() -> None:
        async with rig() as r:
            timers = r.engine.config.sip.timers
            r.engine.monotonic = StoppedClock()  # before the 2xx timer is armed
            invite = r.invite()
            b_invite = await r.callee.request("INVITE")
            r.callee.answer(b_invite, 200, body=sdp(owner="bob"))
            first = await r.caller.response(200, method="INVITE")
            gaps = []
            for _ in range(5):
                gaps.append(round(fire_next(r), 3))
                again = await r.caller.response(200, method="INVITE")
                assert bytes(again) == bytes(first)
            t1, t2 = timers.t1, timers.t2
            assert gaps == [round(min(t1 * 2**i, t2), 3) for i in range(5)]
            ack_for(r.caller, invite, first, r.sipmask)
            await r.callee.silence(0.05)  # the ACK is in
            assert not any(name.startswith("2xx") for name in the_call(r).timers)
            advance(r, 64 * t1)
            assert not [m for m in await r.caller.silence(0.05) if isinstance(m, Response)]

    run(main)


def test_2xx_never_acked_ends_the_call_after_64_t1() -> None:
    async def main() -> None:
        async with rig() as r:
            t1 = r.engine.config.sip.timers.t1
            r.invite()
            b_invite = await r.callee.request("INVITE")
            r.callee.answer(b_invite, 200, body=sdp(owner="bob"))
            await r.caller.response(200, method="INVITE")
            elapsed = 0.0
            while r.engine.calls and elapsed < 64 * t1 + 1:
                elapsed += fire_next(r)
            assert not r.engine.calls
            bye = await r.callee.request("BYE")
            assert bye.header("reason") == "SIP;cause=408"
            (record,) = await records_of(r)
            assert record.cause == "no-ack"

    run(main)


def test_sipmask_refreshes_the_callee_when_it_is_the_refresher() -> None:
    async def main() -> None:
        async with rig() as r:
            await answered_call(r, answer_headers=[("Session-Expires", "600;refresher=uac"),
                                                   ("Require", "timer")])
            advance(r, 299)
            assert not await r.callee.silence(0.05)
            advance(r, 301)
            update = await r.callee.request("UPDATE")
            assert update.header("session-expires") == "600;refresher=uac"
            r.callee.answer(update, 200)
            await asyncio.sleep(0.05)
            assert r.engine.timers.armed(the_call(r), "refresh-callee")  # the next one

    run(main)


def test_sipmask_refreshes_the_caller_that_asked_for_refresher_uas() -> None:
    async def main() -> None:
        async with rig() as r:
            _, ok, _, _ = await answered_call(r, invite_headers=[
                ("Session-Expires", "600;refresher=uas"), ("Supported", "timer")])
            assert ok.header("session-expires") == "600;refresher=uas"
            advance(r, 301)
            update = await r.caller.request("UPDATE")
            r.caller.answer(update, 200)
            await asyncio.sleep(0.05)
            advance(r, 601)  # refreshed: the session lives on (and is refreshed again)
            assert r.engine.calls
            assert (await r.caller.request("UPDATE")).method == "UPDATE"

    run(main)


def test_caller_that_stops_refreshing_is_torn_down() -> None:
    async def main() -> None:
        async with rig() as r:
            _, ok, _, _ = await answered_call(
                r, invite_headers=[("Session-Expires", "600"), ("Supported", "timer")])
            assert ok.header("session-expires") == "600;refresher=uac"
            assert ok.header("require") == "timer"
            advance(r, 600)
            assert r.engine.calls  # the grace (RFC 4028 §10) is not over
            advance(r, 600 + 32 + 1)
            bye_a = await r.caller.request("BYE")
            bye_b = await r.callee.request("BYE")
            assert bye_a.header("reason") == bye_b.header("reason") == "SIP;cause=408"

    run(main)


def test_422_is_retried_and_the_retry_is_answered() -> None:
    async def main() -> None:
        async with rig() as r:
            r.invite()
            first = await r.callee.request("INVITE")
            r.callee.answer(first, 422, headers=[("Min-SE", "3600")])
            second = await r.callee.request("INVITE")
            assert second.header("min-se") == "3600"
            r.callee.answer(second, 200, body=sdp(owner="bob"),
                            headers=[("Session-Expires", "3600;refresher=uac")])
            await r.callee.request("ACK")
            assert (await r.caller.response(200, method="INVITE")).status == 200
            advance(r, 1801)
            assert (await r.callee.request("UPDATE")).method == "UPDATE"

    run(main)


def test_call_time_limit_hangs_up_both_legs_with_a_reason() -> None:
    async def main() -> None:
        async with rig(call_time_limit=120) as r:
            await answered_call(r)
            advance(r, 119)
            assert r.engine.calls
            advance(r, 121)
            a_bye = await r.caller.request("BYE")
            b_bye = await r.callee.request("BYE")
            assert a_bye.header("reason") == b_bye.header("reason") == "Q.850;cause=102"
            r.caller.answer(a_bye, 200)
            r.callee.answer(b_bye, 200)
            (record,) = await records_of(r)
            assert record.cause == "time-limit"

    run(main)


def test_an_ended_call_is_forgotten_by_its_timer() -> None:
    async def main() -> None:
        async with rig() as r:
            invite, ok, _, _ = await answered_call(r)
            call = the_call(r)
            in_dialog(r.caller, invite, ok, "BYE", 2, r.sipmask)
            await r.caller.response(200, method="BYE")
            r.callee.answer(await r.callee.request("BYE"), 200)
            assert (call.a.call_id, call.a.local_tag) in r.engine._by_leg
            advance(r, 9)
            assert (call.a.call_id, call.a.local_tag) not in r.engine._by_leg

    run(main)



def test_a_held_call_keeps_no_parsed_invite_once_its_transactions_end() -> None:
    async def main() -> None:
        async with rig() as r:
            await answered_call(r)
            call = the_call(r)
            assert call.a_invite is not None  # the INVITE transactions still absorb retries
            for _ in range(100):  # they linger 64*T1 (3.2 s in the rig); bounded
                if r.endpoint.layer.stats.in_flight == 0:
                    break
                await asyncio.sleep(0.05)
            assert r.endpoint.layer.stats.in_flight == 0
            await asyncio.sleep(0)
            assert call.a_invite is None and call.b_invite is None
            assert call.a_key is None and call.b_key is None and not call.client_keys
            assert call.outbox is None

    run(main)
