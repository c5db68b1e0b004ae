"""The engine, layer and endpoint in this process (tests/b2bua/b2bua_helpers.py: loopback UDP,
a memory store, scripted peers) fed fuzzed datagrams from a trunk address and from an
outside one: afterwards no transaction is in progress, no call is left, and a real call
still completes (issue 13). `SIPMASK_FUZZ_SCALE` multiplies the number of datagrams."""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "b2bua"))

from b2bua_helpers import Peer, Rig, answered_call, rig  # noqa: E402
from corpus import SCALE, generated  # noqa: E402

from sipmask._core import Request  # noqa: E402

DATAGRAMS = 300 * SCALE
BOUND = 30.0  # safety bound on settling (Timer B/H at T1 = 50 ms are 3.2 s); not a timing


async def refuse_every_invite(peer: Peer) -> None:
    """The callee side of fuzzed calls: 486 to each INVITE, so they end at once."""
    while True:
        message, _, _ = await peer.inbox.get()
        if isinstance(message, Request) and message.method == "INVITE":
            peer.answer(message, 486)


async def settled(r: Rig) -> None:
    async def wait() -> None:
        while r.endpoint.layer.stats.in_progress or r.engine.calls:
            await asyncio.sleep(0.05)
    await asyncio.wait_for(wait(), BOUND)


def test_fuzzed_datagrams_leave_no_transaction_or_call_and_a_call_still_completes() -> None:
    async def main() -> None:
        async with rig(sip_extra='unknown_source = "reject"') as r:
            outsider = await Peer().start("127.0.0.2")
            rng = random.Random(2026)
            refuser = asyncio.ensure_future(refuse_every_invite(r.callee))
            try:
                for n in range(DATAGRAMS):
                    peer = outsider if n % 4 == 0 else r.caller
                    user = r.v1 if rng.random() < 0.5 else "+918999999999"
                    peer.send(generated(rng, port=peer.address.port, user=user), r.sipmask)
                    if n % 20 == 0:
                        await asyncio.sleep(0.01)  # let the loop breathe (not a flood test)
                await settled(r)
            finally:
                refuser.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await refuser
                outsider.close()
            assert r.endpoint.internal_errors == 0
            while not r.caller.inbox.empty():
                r.caller.inbox.get_nowait()
            while not r.callee.inbox.empty():
                r.callee.inbox.get_nowait()
            await answered_call(r)
    asyncio.run(main())
