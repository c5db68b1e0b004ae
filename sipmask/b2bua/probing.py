"""Trunk probing: OPTIONS to each destination every `probe_interval`; one that does not
answer is tried last by new calls until it answers again.
"""

from __future__ import annotations

import asyncio

from .._core import Request
from ..sip.transaction import client_key
from .call import Side, new_branch
from .core import (
    CallControl,
    log,
)
from .routing import Target, TrunkState


class TrunkProbing(CallControl):
    """Active health checks of trunk destinations."""

    _probes: list[asyncio.Future[None]]

    def start_probing(self) -> None:
        """Probe each trunk destination with OPTIONS every `probe_interval` seconds; one that
        does not answer is tried last by new calls until it answers again (RFC 3263 §4.3
        leaves the choice among destinations to the client)."""
        for trunk in self.router.trunks:
            if trunk.config.probe_interval > 0 and trunk.destinations:
                self._probes.append(asyncio.ensure_future(self._probe_loop(trunk)))

    async def _probe_loop(self, trunk: TrunkState) -> None:
        while True:
            try:
                targets = await self.router.targets(trunk.name, None)
                await asyncio.gather(*(self.probe(target) for target in targets))
            except OSError as exc:
                log.warning("trunk %s: probe failed: %s", trunk.name, exc)
            await asyncio.sleep(trunk.config.probe_interval)

    async def probe(self, target: Target) -> bool:
        """Send one OPTIONS to `target`; any response means it is up. Returns whether it
        answered, and marks it down or up for call routing."""
        leg = self._make_leg(Side.CALLEE, target.address, target.transport, self._new_call_id(),
                             "sipmask")
        local = self._local(target.transport, target.address)
        uri = f"sip:{target.uri_host}"
        options = Request("OPTIONS", uri, [
            ("Via", f"{leg.via};branch={new_branch()}"),
            ("Max-Forwards", "70"),
            ("From", f"<sip:sipmask@{local}>;tag={leg.local_tag}"),
            ("To", f"<{uri}>"),
            ("Call-ID", leg.call_id),
            ("CSeq", "1 OPTIONS"),
            *self._ua_header,
        ])
        key = client_key(options)
        waiter: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._message_waiters[key] = waiter
        try:
            self._send(None, leg, options)
            self._drain()
            status = await asyncio.wait_for(waiter, 64 * self.config.sip.timers.t1 + 1)
        except (asyncio.TimeoutError, OSError):
            status = 0
        finally:
            self._message_waiters.pop(key, None)
        loop = asyncio.get_running_loop()
        if status:
            if self._down.pop(target.address, None) is not None:
                log.info("destination %s:%s is up", target.transport, target.uri_host)
            return True
        if target.address not in self._down:
            log.warning("destination %s:%s does not answer OPTIONS", target.transport,
                        target.uri_host)
        self._down[target.address] = loop.time() + 10 * 365 * 86400.0  # until it answers
        return False
