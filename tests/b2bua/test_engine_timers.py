"""The call timers' deadline heap (`b2bua/timers.py`), sans-IO: fed `now`, no clock."""

from __future__ import annotations

import gc
import weakref

from sipmask.b2bua.timers import CallTimers, Owner


def test_timers_fire_in_deadline_order_and_only_once() -> None:
    timers, owner, fired = CallTimers(), Owner(), []
    timers.arm(owner, "b", 2.0, lambda: fired.append("b"))
    timers.arm(owner, "a", 1.0, lambda: fired.append("a"))
    assert timers.next_deadline() == 1.0
    assert timers.fire(0.5) == 0 and fired == []
    assert timers.fire(2.0) == 2 and fired == ["a", "b"]
    assert timers.fire(10.0) == 0 and timers.next_deadline() is None


def test_rearming_a_name_replaces_it_and_cancel_forgets_it() -> None:
    timers, owner, fired = CallTimers(), Owner(), []
    timers.arm(owner, "ring", 1.0, lambda: fired.append("first"))
    timers.arm(owner, "ring", 3.0, lambda: fired.append("second"))
    timers.arm(owner, "limit", 2.0, lambda: fired.append("limit"))
    timers.cancel(owner, "limit")
    assert timers.next_deadline() == 3.0  # the stale entries on top are skipped
    timers.fire(5.0)
    assert fired == ["second"]


def test_wake_is_called_when_the_earliest_deadline_moves_earlier() -> None:
    woken: list[float] = []
    timers, owner = CallTimers(wake=woken.append), Owner()
    timers.arm(owner, "a", 5.0, lambda: None)
    timers.arm(owner, "b", 7.0, lambda: None)
    timers.arm(owner, "c", 1.0, lambda: None)
    assert woken == [5.0, 1.0]


def test_an_action_may_arm_a_timer_due_at_once() -> None:
    timers, owner, fired = CallTimers(), Owner(), []

    def first() -> None:
        fired.append("first")
        timers.arm(owner, "second", 1.0, lambda: fired.append("second"))

    timers.arm(owner, "first", 1.0, first)
    timers.fire(1.0)
    assert fired == ["first", "second"]


class Call:
    """A timer owner that can be weakly referenced, as a real call can."""

    def __init__(self) -> None:
        self.timers: dict[str, int] = {}


def test_cancelled_entries_do_not_keep_their_owners_alive() -> None:
    timers = CallTimers()
    keeper = Owner()
    timers.arm(keeper, "forget", 1.0, lambda: None)
    refs = []
    for _ in range(200):  # calls answered: each Timer C cancelled long before it is due
        owner = Call()
        timers.arm(owner, "timer_c", 181.0, lambda owner=owner: None)  # type: ignore[misc]
        refs.append(weakref.ref(owner))
        timers.cancel_all(owner)
        del owner
    gc.collect()
    assert sum(ref() is not None for ref in refs) <= 64
    assert len(timers) < 100 and timers.next_deadline() == 1.0


def test_an_action_that_cancels_many_timers_while_firing_is_safe() -> None:
    timers, fired = CallTimers(), []
    owners = [Owner() for _ in range(300)]
    for owner in owners:
        timers.arm(owner, "late", 100.0, lambda: fired.append("late"))

    def cancel_them() -> None:
        for owner in owners:
            timers.cancel_all(owner)  # rebuilds the heap in the middle of `fire`
        fired.append("cancelled")

    timers.arm(Owner(), "now", 1.0, cancel_them)
    keeper = Owner()
    timers.arm(keeper, "next", 2.0, lambda: fired.append("next"))
    timers.fire(200.0)
    assert fired == ["cancelled", "next"]


def test_a_failing_action_is_reported_and_the_others_still_fire() -> None:
    failed: list[str] = []
    timers = CallTimers(on_error=lambda owner, name: failed.append(name))
    owner, fired = Owner(), []

    def broken() -> None:
        raise RuntimeError("a bug in one call")

    timers.arm(owner, "broken", 1.0, broken)
    timers.arm(owner, "fine", 2.0, lambda: fired.append("fine"))
    timers.fire(3.0)
    assert failed == ["broken"] and fired == ["fine"]
