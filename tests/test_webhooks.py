"""Webhooks against a real aiohttp server on 127.0.0.1: signed events (signature verified by
the receiver), retries after a 500, give-up on a 4xx, and the synchronous hooks with their
defaults on a timeout, an error or a nonsense answer."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import msgspec
from aiohttp import web
from aiohttp.test_utils import TestServer

from sipmask.config import WebhooksConfig, parse_config
from sipmask.store.events import EventPublisher
from sipmask.webhooks import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    CreateSession,
    Fallback,
    Reject,
    WebhookSender,
    sign,
    verify_signature,
)

SECRET = "hook-secret"
ALICE, BOB = "+919876543210", "+919812345678"
BOUND = 30.0  # seconds: keeps a broken test from hanging; measures nothing


class Receiver:
    """The platform's side: records what arrives, after checking the signature."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.bad_signatures = 0
        self.attempts: dict[str, int] = {}
        self.got = asyncio.Event()
        self.answer: Callable[[dict[str, Any]], Awaitable[web.StreamResponse]] | None = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if not verify_signature(SECRET, body, request.headers.get(SIGNATURE_HEADER)):
            self.bad_signatures += 1
            return web.Response(status=401)
        assert request.headers[TIMESTAMP_HEADER].isdigit()
        data = json.loads(body)
        path = request.path
        self.attempts[path] = self.attempts.get(path, 0) + 1
        if path == "/flaky" and self.attempts[path] <= 2:
            return web.Response(status=500)
        if path == "/gone":
            return web.Response(status=410)
        if path == "/slow":
            await asyncio.sleep(5)
        if self.answer is not None and path.startswith("/hook"):
            return await self.answer(data)
        self.events.append(data)
        self.got.set()
        return web.Response(status=204)


@asynccontextmanager
async def receiving() -> AsyncIterator[tuple[Receiver, str]]:
    receiver = Receiver()
    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", receiver.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield receiver, f"http://127.0.0.1:{server.port}"
    finally:
        await server.close()


def config(**values: Any) -> WebhooksConfig:
    return WebhooksConfig(secret=SECRET, **values)


async def wait_events(receiver: Receiver, count: int) -> None:
    async def until() -> None:
        while len(receiver.events) < count:
            receiver.got.clear()
            await receiver.got.wait()

    await asyncio.wait_for(until(), BOUND)


def test_signature_is_hmac_sha256_of_the_body() -> None:
    body = b'{"kind":"session.created"}'
    expected = "sha256=" + __import__("hmac").new(
        SECRET.encode(), body, "sha256").hexdigest()
    assert sign(SECRET, body) == expected
    assert verify_signature(SECRET, body, expected)
    assert not verify_signature(SECRET, body + b" ", expected)
    assert not verify_signature("other", body, expected)
    assert not verify_signature(SECRET, body, None)


def test_events_from_the_publisher_are_posted_signed() -> None:
    async def run() -> None:
        async with receiving() as (receiver, base):
            sender = WebhookSender(config(url=f"{base}/events"), workers=1)
            publisher = EventPublisher(None, subscribers=[sender.submit])
            await sender.start()
            await publisher.start()
            publisher.publish("session.created", {"session_id": "default.a"})
            publisher.publish("call.ended", {"session_id": "default.a", "status": "completed"})
            await wait_events(receiver, 2)
            await publisher.close()
            await sender.close()
            assert receiver.bad_signatures == 0
            assert [e["kind"] for e in receiver.events] == ["session.created", "call.ended"]
            assert receiver.events[1]["data"]["status"] == "completed"
            assert receiver.events[0]["id"] != receiver.events[1]["id"]
            assert sender.stats.delivered == 2

    asyncio.run(run())


def test_a_wrong_secret_is_refused_by_the_receiver() -> None:
    async def run() -> None:
        async with receiving() as (receiver, base):
            hooks = WebhooksConfig(url=f"{base}/events", secret="not-the-secret", retries=0)
            sender = WebhookSender(hooks)
            await sender.start()
            publisher = EventPublisher(None, subscribers=[sender.submit])
            publisher.publish("session.created", {})
            await sender.close()
            assert receiver.bad_signatures == 1 and receiver.events == []
            assert sender.stats.failed == 1  # 401: not retried

    asyncio.run(run())


def test_retried_with_backoff_after_a_500() -> None:
    async def run() -> None:
        async with receiving() as (receiver, base):
            sender = WebhookSender(config(url=f"{base}/flaky", retries=3), backoff=0.01)
            await sender.start()
            publisher = EventPublisher(None, subscribers=[sender.submit])
            publisher.publish("call.ended", {"seq": 1})
            await wait_events(receiver, 1)
            await sender.close()
            assert receiver.attempts["/flaky"] == 3  # two 500s, then delivered
            assert (sender.stats.retried, sender.stats.delivered) == (2, 1)

    asyncio.run(run())


def test_attempts_are_bounded_and_4xx_is_not_retried() -> None:
    async def run() -> None:
        async with receiving() as (receiver, base):
            sender = WebhookSender(config(url=f"{base}/flaky", retries=1), backoff=0.01)
            await sender.start()
            sender_gone = WebhookSender(config(url=f"{base}/gone", retries=5), backoff=0.01)
            await sender_gone.start()
            publisher = EventPublisher(None, subscribers=[sender.submit, sender_gone.submit])
            publisher.publish("call.ended", {"seq": 1})
            await sender.close(timeout=BOUND)
            await sender_gone.close(timeout=BOUND)
            assert receiver.attempts["/flaky"] == 2 and sender.stats.failed == 1
            assert receiver.attempts["/gone"] == 1 and sender_gone.stats.failed == 1
            assert receiver.events == []

    asyncio.run(run())


def test_submit_never_blocks_and_drops_the_oldest_when_full() -> None:
    async def run() -> None:
        sender = WebhookSender(config(url="http://127.0.0.1:9/x"), maxsize=3)
        publisher = EventPublisher(None, subscribers=[sender.submit])
        for seq in range(5):  # not started: nothing is sent
            publisher.publish("call.ended", {"seq": seq})
        assert [e.data["seq"] for e in sender._queue] == [2, 3, 4]
        assert sender.stats.dropped_full == 2
        await sender.close()

    asyncio.run(run())


def test_intercept_allow_block_and_defaults() -> None:
    async def run() -> None:
        async with receiving() as (receiver, base):
            seen: list[dict[str, Any]] = []

            async def answer(data: dict[str, Any]) -> web.StreamResponse:
                seen.append(data)
                return web.json_response({"allow": data["caller"] != ALICE})

            receiver.answer = answer
            sender = WebhookSender(config(intercept_url=f"{base}/hook"))
            assert await sender.intercept("default.a", ALICE, BOB) is False
            assert await sender.intercept("default.a", BOB, ALICE) is True
            assert seen[0]["hook"] == "intercept" and seen[0]["session_id"] == "default.a"
            assert seen[0]["callee"] == BOB and seen[0]["ts"] > 0

            # Timeout, error status and nonsense answers: the configured default.
            for on_failure, expected in (("allow", True), ("block", False)):
                for path in ("/slow", "/gone"):
                    hooks = config(intercept_url=f"{base}{path}", timeout_ms=100,
                                   intercept_on_failure=on_failure)
                    sender2 = WebhookSender(hooks)
                    got = await asyncio.wait_for(sender2.intercept("d.a", ALICE, BOB), BOUND)
                    assert got is expected and sender2.stats.hook_failures == 1
                    await sender2.close()

            async def nonsense(data: dict[str, Any]) -> web.StreamResponse:
                return web.json_response({"maybe": 1})

            receiver.answer = nonsense
            assert await sender.intercept("default.a", ALICE, BOB) is True
            assert sender.stats.hook_failures == 1
            await sender.close()
            # No hook configured: allowed, nothing sent.
            assert await WebhookSender(config()).intercept("d.a", ALICE, BOB) is True

    asyncio.run(run())


def test_out_of_session_decisions_and_defaults() -> None:
    async def run() -> None:
        async with receiving() as (receiver, base):
            answers: list[Any] = [
                {"action": "reject"},
                {"action": "fallback", "uri": "sip:ivr@192.0.2.10"},
                {"action": "create-session", "participants": [
                    {"identifier": ALICE}, {"identifier": BOB}], "ttl": 600, "pool": "rides"},
                {"action": "fallback", "uri": "tel:+15550100"},  # not a SIP URI
                {"action": "explode"},
            ]
            seen: list[dict[str, Any]] = []

            async def answer(data: dict[str, Any]) -> web.StreamResponse:
                seen.append(data)
                return web.json_response(answers.pop(0))

            receiver.answer = answer
            sender = WebhookSender(config(out_of_session_url=f"{base}/hook",
                                          out_of_session_on_failure="sip:default@192.0.2.9"))
            assert await sender.out_of_session("+918045671200", ALICE) == Reject()
            assert seen[0] == {"hook": "out_of_session", "dialled": "+918045671200",
                               "caller": ALICE, "ts": seen[0]["ts"]}
            assert await sender.out_of_session("+918045671200", ALICE) == Fallback(
                "sip:ivr@192.0.2.10")
            created = await sender.out_of_session("+918045671200", ALICE)
            assert isinstance(created, CreateSession)
            spec = created.spec()
            assert (spec.pool, spec.ttl) == ("rides", 600)
            assert [p.identifier for p in spec.participants] == [ALICE, BOB]
            default = Fallback("sip:default@192.0.2.9")
            assert await sender.out_of_session("+918045671200", ALICE) == default
            assert await sender.out_of_session("+918045671200", ALICE) == default
            assert sender.stats.hook_failures == 2
            await sender.close()

            slow = WebhookSender(config(out_of_session_url=f"{base}/slow", timeout_ms=100))
            assert await asyncio.wait_for(slow.out_of_session("+918045671200", ALICE),
                                          BOUND) == Reject()
            await slow.close()
            # Nothing listening: the default, fast.
            dead = WebhookSender(config(out_of_session_url="http://127.0.0.1:9/x"))
            assert await asyncio.wait_for(dead.out_of_session("+918045671200", ALICE),
                                          BOUND) == Reject()
            await dead.close()

    asyncio.run(run())


def test_config_section() -> None:
    hooks = parse_config(
        '[webhooks]\nurl = "https://p.example/e"\nsecret = "s"\ntimeout_ms = 300\n'
        'out_of_session_on_failure = "sip:ivr@192.0.2.1"\n', env={}
    ).webhooks
    assert (hooks.url, hooks.timeout_ms, hooks.retries) == ("https://p.example/e", 300, 5)
    assert msgspec.structs.replace(hooks, secret="x").secret == "x"

    def errors(text: str) -> list[str]:
        try:
            parse_config(text, env={})
        except ValueError as exc:
            return exc.errors  # type: ignore[attr-defined,no-any-return]
        return []

    assert errors('[webhooks]\nurl = "https://p.example/e"\n') == [
        "webhooks.secret: required when a webhook URL is set (requests are signed)"]
    assert errors('[webhooks]\nintercept_url = "ftp://x"\nsecret = "s"\n') == [
        "webhooks.intercept_url: must be an http:// or https:// URL"]
    assert errors('[webhooks]\nout_of_session_on_failure = "tel:+1"\n') == [
        'webhooks.out_of_session_on_failure: "reject" or a sip: or sips: URI']
    assert errors("[webhooks]\ntimeout_ms = 5\n")[0].startswith("webhooks.timeout_ms:")
