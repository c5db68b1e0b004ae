"""A Redis outage with calls up (issue 4): the call in progress goes on, new calls get the
configured refusal at once (503 with Retry-After: carriers fail over), and once Redis is back
new calls are bridged again without a restart. Real redis-server, killed and restarted."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest
from b2bua_helpers import answered_call, in_dialog, rig

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "store"))
from store_helpers import REDIS_SERVER, RedisServer  # noqa: E402

from sipmask.store.redis import RedisStore  # noqa: E402

pytestmark = pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed")


def test_calls_survive_a_redis_outage_and_new_ones_are_refused_fast() -> None:
    server = RedisServer(persist=True)
    server.start()
    try:
        async def main() -> None:
            store = RedisStore(server.url)
            async with rig(store=store) as r:
                invite, ok, _, _ = await answered_call(r)
                server.stop()  # Redis goes away with a call up
                started = time.monotonic()
                r.invite()
                refused = await r.caller.response(503, method="INVITE")
                assert time.monotonic() - started < 3.0  # fail fast, not redis-py's ~4 s
                assert refused.header("retry-after") == "5"
                in_dialog(r.caller, invite, ok, "BYE", 2, r.sipmask)
                await r.callee.request("BYE")  # the call in progress was not disturbed
                server.start()  # back, with its data (append-only file)
                for _ in range(25):  # redis-py reconnects by itself on a later call
                    r.invite()
                    try:
                        b_invite = await r.callee.request("INVITE", bound=1.0)
                        break
                    except TimeoutError:
                        assert (await r.caller.response(503, method="INVITE")).status == 503
                else:
                    pytest.fail("no call got through after Redis came back")
                assert b_invite.method == "INVITE"

        asyncio.run(main())
    finally:
        server.cleanup()
