"""Call timers without a clock: one deadline heap for every call of a worker.

The transaction layer keeps its timers the same way (`sip/layer.py`): a timer is a deadline
in a heap, fed `now` from outside; the asyncio shell (`engine.py`) keeps one
`loop.call_at` armed for the earliest deadline and calls `fire(now)` when it is due. Tests
call `fire` with a made-up `now` instead of sleeping.

A timer belongs to an owner (a call, or the engine for its own) and has a name there:
arming a name again replaces it, and `cancel_all` drops an owner's timers at once. A
cancelled entry stays in the heap, stale, until its deadline pops it or, once stale entries
are the majority, the heap is rebuilt without them: a call's Timer C (181 s) is cancelled
at its answer, and its entry must not keep the ended call alive for minutes.
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
        on_error: called (inside the `except`) when an action raises: one call's bug must
            not stop the others' timers. None lets the exception through.
    """

    def __init__(self, wake: Callable[[float], None] | None = None,
                 on_error: Callable[[TimerOwner, str], None] | None = None) -> None:
        self._on_error = on_error
        self._heap: list[tuple[float, int, TimerOwner, str, Callable[[], None]]] = []
        self._tokens = itertools.count()
        self._wake = wake
        self._stale = 0

    def __len__(self) -> int:
        return len(self._heap)

    def arm(self, owner: TimerOwner, name: str, deadline: float,
            action: Callable[[], None]) -> None:
        """Run `action` at `deadline` unless `owner`'s timer `name` is re-armed or cancelled."""
        token = next(self._tokens)
        if name in owner.timers:
            self._dropped(1)
        owner.timers[name] = token
        earliest = self._heap[0][0] if self._heap else None
        heapq.heappush(self._heap, (deadline, token, owner, name, action))
        if self._wake is not None and (earliest is None or deadline < earliest):
            self._wake(deadline)

    def cancel(self, owner: TimerOwner, name: str) -> None:
        if owner.timers.pop(name, None) is not None:
            self._dropped(1)

    def cancel_all(self, owner: TimerOwner) -> None:
        if owner.timers:
            count = len(owner.timers)
            owner.timers.clear()
            self._dropped(count)

    def _dropped(self, count: int) -> None:
        self._stale += count
        if self._stale > 64 and 2 * self._stale > len(self._heap):
            self._heap = [e for e in self._heap if e[2].timers.get(e[3]) == e[1]]
            heapq.heapify(self._heap)
            self._stale = 0

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
            self._stale = max(self._stale - 1, 0)
        return None

    def fire(self, now: float) -> int:
        """Run every action due at `now`, earliest first (one an action arms for `now` or
        before runs too). Returns how many ran."""
        ran = 0
        # self._heap, not a local: an action that cancels timers may rebuild the heap.
        while self._heap and self._heap[0][0] <= now:
            _, token, owner, name, action = heapq.heappop(self._heap)
            if owner.timers.get(name) != token:
                self._stale = max(self._stale - 1, 0)
                continue
            del owner.timers[name]
            try:
                action()
            except Exception:
                if self._on_error is None:
                    raise
                self._on_error(owner, name)
            ran += 1
        return ran


class Owner:
    """A timer owner of its own (the engine's timers that belong to no call)."""

    __slots__ = ("timers",)

    def __init__(self) -> None:
        self.timers: dict[str, int] = {}
