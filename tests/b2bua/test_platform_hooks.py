"""The engine and the platform: call records as `call.ended` events, the intercept hook that
may block a call, and the out-of-session hook for a caller without a binding. The hooks are
answered by a real aiohttp server on loopback."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web
from b2bua_helpers import CALLEE, CALLER, answered_call, in_dialog, rig

from sipmask.config import WebhooksConfig
from sipmask.store.events import EventPublisher
from sipmask.webhooks import WebhookSender

Answer = Callable[[dict[str, Any]], dict[str, Any]]


@asynccontextmanager
async def hook_server(answer: Answer) -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    asked: list[dict[str, Any]] = []

    async def handle(request: web.Request) -> web.Response:
        body = await request.json()
        asked.append(body)
        return web.json_response(answer(body))

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/hook", asked
    finally:
        await runner.cleanup()


def test_call_record_is_published_as_call_ended() -> None:
    async def main() -> None:
        seen: list[Any] = []
        events = EventPublisher.for_store("memory", data_dir=None, subscribers=[seen.append])
        await events.start()
        try:
            async with rig(events=events) as r:
                invite, ok, _, _ = await answered_call(r)
                in_dialog(r.caller, invite, ok, "BYE", 2, r.sipmask)
                await r.callee.request("BYE")
                await asyncio.sleep(0.1)
        finally:
            await events.close()
        ended = [e for e in seen if getattr(e, "kind", None) == "call.ended"]
        assert len(ended) == 1
        data = ended[0].data
        assert data["status"] == "completed" and data["caller"] == CALLER
        assert data["callee"] == CALLEE and data["cause"] == "bye-caller"

    asyncio.run(main())


def test_intercept_hook_blocks_a_call_of_an_open_session() -> None:
    async def main() -> None:
        async with hook_server(lambda body: {"allow": False}) as (url, asked):
            hooks = WebhookSender(WebhooksConfig(intercept_url=url))
            await hooks.start()
            try:
                async with rig(hooks=hooks) as r:
                    r.invite()
                    final = await r.caller.response()
                    assert final.status == 404
                    assert not await r.callee.silence(0.2)
            finally:
                await hooks.close()
        assert asked and asked[0]["hook"] == "intercept" and asked[0]["caller"] == CALLER

    asyncio.run(main())


def test_out_of_session_hook_creates_a_session_on_the_spot() -> None:
    async def main() -> None:
        def answer(body: dict[str, Any]) -> dict[str, Any]:
            return {"action": "create-session", "participants": [
                {"identifier": CALLER, "proxy_identifier": body["dialled"]},
                {"identifier": CALLEE}]}

        async with hook_server(answer) as (url, asked):
            hooks = WebhookSender(WebhooksConfig(out_of_session_url=url))
            await hooks.start()
            try:
                async with rig(session=False, hooks=hooks) as r:
                    r.invite(dialled="+918000000001")
                    b_invite = await r.callee.request("INVITE")
                    assert b_invite.parsed_uri.user == CALLEE
                    assert b_invite.from_ is not None
                    assert b_invite.from_.uri.user == "+918000000002"
            finally:
                await hooks.close()
        assert json.dumps(asked[0]).count(CALLER) == 1

    asyncio.run(main())


def test_out_of_session_hook_fallback_uri() -> None:
    async def main() -> None:
        async with rig(session=False) as r:
            port = r.callee.address.port
            async with hook_server(lambda body: {"action": "fallback",
                                                 "uri": f"sip:agent@127.0.0.1:{port}"}) as (
                    url, _):
                hooks = WebhookSender(WebhooksConfig(out_of_session_url=url))
                await hooks.start()
                r.engine.hooks = hooks
                try:
                    r.invite(dialled="+918000000001")
                    b_invite = await r.callee.request("INVITE")
                    assert b_invite.parsed_uri.user == "agent"
                finally:
                    await hooks.close()

    asyncio.run(main())


def test_api_publishes_session_events() -> None:
    async def main() -> None:
        from aiohttp.test_utils import TestClient, TestServer

        from sipmask.api import make_app
        from sipmask.store import MemoryStore

        seen: list[Any] = []
        events = EventPublisher.for_store("memory", data_dir=None, subscribers=[seen.append])
        await events.start()
        store = MemoryStore(None)
        await store.set_pool("default", ["+918000000001", "+918000000002"])
        app = make_app(store, tokens=["t"], events=events)
        async with TestClient(TestServer(app)) as client:
            headers = {"Authorization": "Bearer t"}
            created = await client.post("/v1/sessions", headers=headers, json={
                "participants": [{"identifier": CALLER}, {"identifier": CALLEE}]})
            session_id = (await created.json())["id"]
            await client.delete(f"/v1/sessions/{session_id}", headers=headers)
        await events.close()
        await store.close()
        kinds = [(e.kind, e.data["id"]) for e in seen]
        assert kinds == [("session.created", session_id), ("session.closed", session_id)]

    asyncio.run(main())
