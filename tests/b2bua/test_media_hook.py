"""The offer/answer hook: an async media anchor sees every SDP once per leg, may rewrite it,
may take its time, and the call's messages still leave in order."""

from __future__ import annotations

import asyncio

from b2bua_helpers import ack_for, in_dialog, rig, sdp

from sipmask._core import Response, parse_sdp
from sipmask.b2bua.media import MediaContext


class SlowAnchor:
    """Moves every media port up by 1000 and the address to 127.0.0.9, slowly."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        self.ended: list[str] = []

    async def _anchor(self, kind: str, leg: str, body: bytes) -> bytes:
        self.seen.append((kind, leg))
        await asyncio.sleep(0.05)  # an rtpengine round trip, exaggerated
        description = parse_sdp(body)
        port = description.media[0].port
        return body.replace(f"m=audio {port} ".encode(), f"m=audio {port + 1000} ".encode()
                            ).replace(b"IN IP4 127.0.0.1", b"IN IP4 127.0.0.9")

    async def offer(self, call: MediaContext, leg: str, sdp: bytes) -> bytes:
        return await self._anchor("offer", leg, sdp)

    async def answer(self, call: MediaContext, leg: str, sdp: bytes) -> bytes:
        return await self._anchor("answer", leg, sdp)

    async def end(self, call: MediaContext) -> None:
        self.ended.append(call.call_id)

    def recording(self, call: MediaContext) -> str | None:
        return None


def test_async_anchor_rewrites_each_leg_and_keeps_order() -> None:
    async def main() -> None:
        anchor = SlowAnchor()
        async with rig(media=anchor) as r:
            invite = r.invite()
            b_invite = await r.callee.request("INVITE")
            offer = parse_sdp(b_invite.body)
            assert offer.media[0].port == 50170 and offer.connection == "IN IP4 127.0.0.9"
            r.callee.answer(b_invite, 183, body=sdp(owner="bob", port=50000))
            r.callee.answer(b_invite, 200, body=sdp(owner="bob", port=50000))
            await r.callee.request("ACK")
            statuses: list[int] = []
            last = None
            while 200 not in statuses:
                message = await r.caller.next()
                if isinstance(message, Response):
                    statuses.append(message.status)
                    last = message
            assert last is not None
            assert statuses.index(183) < statuses.index(200)  # order kept despite the wait
            assert parse_sdp(last.body).media[0].port == 51000
            ack_for(r.caller, invite, last, r.sipmask)
            in_dialog(r.caller, invite, last, "BYE", 2, r.sipmask)
            await r.callee.request("BYE")
            await asyncio.sleep(0.05)
            assert anchor.seen == [("offer", "callee"), ("answer", "caller"),
                                   ("answer", "caller")]
            assert len(anchor.ended) == 1

    asyncio.run(main())
