"""A finished call leaves no cyclic garbage: everything it held is freed by reference
counting. The garbage-collection pacer (`runtime.gc_pacer`, which freezes what is alive every
second) relies on this, so it is checked here with the collector switched off."""

from __future__ import annotations

import asyncio
import gc

import pytest
from b2bua_helpers import ack_for, in_dialog, rig, sdp

import sipmask.b2bua.core as engine_module

CALLS = 20


def test_finished_calls_leave_no_cyclic_garbage(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine_module, "FORGET_AFTER", 0.1)

    async def main() -> int:
        async with rig() as r:
            gc.collect()
            gc.disable()
            try:
                for n in range(CALLS):
                    invite = r.invite(call_id=f"garbage-{n}@test")
                    b_invite = await r.callee.request("INVITE")
                    r.callee.answer(b_invite, 200, body=sdp(owner="bob"))
                    await r.callee.request("ACK")
                    ok = await r.caller.response(200, method="INVITE")
                    ack_for(r.caller, invite, ok, r.sipmask)
                    assert invite.cseq is not None
                    in_dialog(r.caller, invite, ok, "BYE", invite.cseq.number + 1, r.sipmask)
                    bye = await r.callee.request("BYE")
                    r.callee.answer(bye, 200)
                    await r.caller.response(200, method="BYE")
                # Transactions linger 64*T1 = 3.2 s in the rig; then everything is gone.
                for _ in range(100):
                    if r.endpoint.layer.stats.in_flight == 0 and not r.engine.calls:
                        break
                    await asyncio.sleep(0.1)
                await asyncio.sleep(0.3)
                assert r.endpoint.layer.stats.in_flight == 0
                r.caller.raw.clear()
                r.callee.raw.clear()
                return gc.collect()
            finally:
                gc.enable()

    unreachable = asyncio.run(main())
    # A few objects of the test's own coroutine frames are fine; per call there must be none.
    assert unreachable < CALLS, f"{unreachable} unreachable objects after {CALLS} calls"
