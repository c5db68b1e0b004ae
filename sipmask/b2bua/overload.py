"""Overload: the event loop's lag and the sockets' drops decide when new INVITEs are shed
(statelessly, by the transaction layer) and when they are taken again.
"""

from __future__ import annotations

import asyncio
from collections import deque

from ..transport.endpoint import SipEndpoint
from .core import (
    LAG_WINDOW,
    CallControl,
    log,
)


class OverloadWatch(CallControl):
    """The lag monitor."""

    endpoint: SipEndpoint | None
    _lag_watch: asyncio.Future[None] | None

    def start_overload_monitor(self, interval: float = 0.02) -> None:
        """Watch the event loop's lag (how late a short sleep wakes up, smoothed): beyond
        `[sip] overload_lag` the process is saturated and new INVITEs are refused before any
        work is spent on them (RFC 7339's idea: shed early, keep goodput), until the lag is
        back under half of it."""
        limit = self.config.sip.overload_lag
        if limit > 0 and self._lag_watch is None:
            self._lag_watch = asyncio.ensure_future(self._watch_lag(interval))

    async def _watch_lag(self, interval: float) -> None:
        # Saturation shows in two places: every wake-up of the loop is late, or the backlog
        # sits in the kernel's socket buffers (filling, then dropping), where the loop cannot
        # see it. One garbage-collection pause makes one late wake-up: the least lag of the
        # last few samples decides, not their average.
        loop = asyncio.get_running_loop()
        lags: deque[float] = deque(maxlen=LAG_WINDOW)
        drops_seen: deque[bool] = deque(maxlen=LAG_WINDOW)
        last_drops = self._socket_drops()
        while True:
            start = loop.time()
            await asyncio.sleep(interval)
            lags.append(max(loop.time() - start - interval, 0.0))
            drops = self._socket_drops()
            drops_seen.append(drops > last_drops)
            last_drops = drops
            if len(lags) < LAG_WINDOW:
                continue
            least = min(lags)
            dropping = sum(drops_seen) >= LAG_WINDOW // 2
            limit = self.config.sip.overload_lag
            if limit <= 0:
                continue
            if not self.overloaded and (least > limit or dropping):
                self._set_overloaded(True)
                log.warning("overloaded (loop %.0f ms late%s): refusing new calls",
                            least * 1000, ", socket buffers dropping" if dropping else "")
            elif self.overloaded and least < limit / 2 and not any(drops_seen):
                self._set_overloaded(False)
                log.info("overload over: taking new calls again")

    def _set_overloaded(self, overloaded: bool) -> None:
        # The layer refuses new INVITEs itself while overloaded: statelessly, before any
        # transaction, 100 Trying or parse of the rest by the engine.
        self.overloaded = overloaded
        if self.endpoint is not None:
            self.endpoint.layer.shed_invites = overloaded

    def _socket_drops(self) -> int:
        total = 0
        if self.endpoint is not None:
            for listener in self.endpoint.udp:
                state = listener.queue_state()
                if state is not None:
                    total += state[2]
        return total
