"""MESSAGE outside a dialog (RFC 3428): bound and masked like a call, relayed to the other
party, its final status answered back.
"""

from __future__ import annotations

import asyncio

from .._core import Request
from ..sip.events import RequestReceived
from ..sip.transaction import client_key
from ..store import StoreError
from .call import Side, new_branch
from .core import (
    CallControl,
    map_failure,
)
from .masking import (
    BodyRefused,
    crossing_body,
)
from .routing import TrunkState


class Chat(CallControl):
    """Pager-mode messages."""

    async def _new_message(self, event: RequestReceived, trunk: TrunkState) -> None:
        request = event.request
        identities = self._identities(event, trunk)
        if identities is None:
            self._reject(event, self.config.calls.reject_status)
            return
        dialled, caller = identities
        try:
            binding = await self.store.lookup(dialled, caller)
        except StoreError:
            self._reject(event, 500)
            return
        if binding is None:
            self._reject(event, self.config.calls.reject_status)
            return
        try:
            targets = await self.router.targets(binding.callee.route, trunk)
        except (ValueError, OSError):
            targets = []
        if not targets:
            self._reject(event, 480)
            return
        target = targets[0]
        leg = self._make_leg(Side.CALLEE, target.address, target.transport, self._new_call_id(),
                             binding.caller_id)
        try:
            body = crossing_body(request, "MESSAGE", leg.origin)
        except BodyRefused as refused:
            self._reject(event, 415, [("Accept", ", ".join(refused.accept))])
            return
        callee = binding.callee.key
        user = callee.split("@", 1)[0]
        uri = target.fixed_uri or f"sip:{user}@{target.uri_host}"
        local_host = self._local(target.transport, target.address)
        message = Request("MESSAGE", uri, [
            ("Via", f"{leg.via};branch={new_branch()}"),
            ("Max-Forwards", str(max(min(request.max_forwards or 70, 70) - 1, 1))),
            ("From", f"<sip:{binding.caller_id}@{local_host}>;tag={leg.local_tag}"),
            ("To", f"<{uri.split(';', 1)[0]}>"),
            ("Call-ID", leg.call_id),
            ("CSeq", "1 MESSAGE"),
            *self._ua_header,
            *body.headers(),
        ], body.data)
        waiter: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._message_waiters[client_key(message)] = waiter
        self._send(None, leg, message)
        self._drain()
        try:
            status = await asyncio.wait_for(waiter, 64 * self.config.sip.timers.t1 + 1)
        except asyncio.TimeoutError:
            status = 0
        finally:
            self._message_waiters.pop(client_key(message), None)
        status = status or 408
        self.stats.messages_relayed += 1
        self._reject(event, map_failure(status) if status >= 300 else status)
