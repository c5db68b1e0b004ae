"""Call timers without a clock: one deadline heap for every call of a worker.

The transaction layer keeps its timers the same way (`sip/layer.py`): a timer is a deadline
in a heap, fed `now` from outside; the asyncio shell (`engine.py`) keeps one
`loop.call_at` armed for the earliest deadline and calls `fire(now)` when it is due. Tests
call `fire` with a made-up `now` instead of sleeping.

A timer belongs to an owner (a call, or the engine for its own) and has a name there:
arming a name again replaces it, and `cancel_all` drops an owner's timers at once (a
cancelled entry stays in the heap, stale, until its deadline pops it).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from typing import Protocol


class TimerOwner(Protocol):
    timers: dict[str, int]
    """Armed timer name -> token of its heap entry (stale entries have another token)."""


class CallTimers:
    """Deadlines of all calls.

    Args:
        wake: called with the new earliest deadline when an arm makes it earlier (the shell
            re-arms its one loop timer there).
    """

    def __init__(self, wake: Callable[[float], None] | None = None) -> None:
        self._heap: list[tuple[float, int, TimerOwner, str, Callable[[], None]]] = []
        self._tokens = itertools.count()
        self._wake = wake

    def __len__(self) -> int:
        return len(self._heap)

    def arm(self, owner: TimerOwner, name: str, deadline: float,
            action: Callable[[], None]) -> None:
        """Run `action` at `deadline` unless `owner`'s timer `name` is re-armed or cancelled."""
        token = next(self._tokens)
        owner.timers[name] = token
        earliest = self._heap[0][0] if self._heap else None
        heapq.heappush(self._heap, (deadline, token, owner, name, action))
        if self._wake is not None and (earliest is None or deadline < earliest):
            self._wake(deadline)

    @staticmethod
    def cancel(owner: TimerOwner, name: str) -> None:
        owner.timers.pop(name, None)

    @staticmethod
    def cancel_all(owner: TimerOwner) -> None:
        owner.timers.clear()

    @staticmethod
    def armed(owner: TimerOwner, name: str) -> bool:
        return name in owner.timers

    def next_deadline(self) -> float | None:
        """The earliest live deadline, or None (stale entries on top are dropped)."""
        heap = self._heap
        while heap:
            _, token, owner, name, _ = heap[0]
            if owner.timers.get(name) == token:
                return heap[0][0]
            heapq.heappop(heap)
        return None

    def fire(self, now: float) -> int:
        """Run every action due at `now`, earliest first (one an action arms for `now` or
        before runs too). Returns how many ran."""
        heap = self._heap
        ran = 0
        while heap and heap[0][0] <= now:
            _, token, owner, name, action = heapq.heappop(heap)
            if owner.timers.get(name) != token:
                continue
            del owner.timers[name]
            action()
            ran += 1
        return ran


class Owner:
    """A timer owner of its own (the engine's timers that belong to no call)."""

    __slots__ = ("timers",)

    def __init__(self) -> None:
        self.timers: dict[str, int] = {}
