"""No input can wedge the API (issue 13, defect 4), run against both stores: a big pool update
yields to the event loop, an undecodable bearer token is a 401, bodies are bounded in size
(413) and depth (422), identifiers and routes are checked against a plain grammar at
creation, pool numbers and participants exclude each other both ways, and a request that
fails validation changes nothing."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import phonenumbers
import pytest
from api_helpers import ALICE, BOB, FakeClock, RedisServer, V, serve, session_body, with_api

import sipmask.store.base as store_base
from sipmask.api.app import json_depth_exceeds
from sipmask.store import MemoryStore, SessionStore

#: Valid Bengaluru numbers, far from the test pool's.
BIG_POOL = [f"+9180{41000000 + i}" for i in range(6000)]


class LoopTicks:
    """Counts calls of a patched function between two turns of the event loop: the largest
    such run is how much work ran without letting the SIP calls in (no clock involved)."""

    def __init__(self) -> None:
        self.calls = 0
        self.longest_run = 0
        self._at_last_tick = 0
        self._task: asyncio.Task[None] | None = None

    def count(self, fn: Any) -> Any:
        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            self.longest_run = max(self.longest_run, self.calls - self._at_last_tick)
            return fn(*args, **kwargs)

        return counted

    async def _tick(self) -> None:
        while True:
            self._at_last_tick = self.calls
            await asyncio.sleep(0)

    def __enter__(self) -> LoopTicks:
        self._task = asyncio.get_running_loop().create_task(self._tick())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


def raw_request(port: int, head: bytes) -> bytes:
    """Send one raw HTTP/1.1 request (bytes aiohttp's client would not send) and return the
    answer's status line."""

    async def send() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(head)
        await writer.drain()
        line = await reader.readline()
        writer.close()
        return line

    return asyncio.run(send())


class _Hardening:
    async def open_store(self, clock: FakeClock) -> SessionStore:
        raise NotImplementedError

    @with_api
    async def test_big_pool_update_yields_to_the_loop(
        self, client: Any, store: SessionStore, clock: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        ticks = LoopTicks()
        # Every number goes through phonenumbers at the edge and normalise_number in the store.
        monkeypatch.setattr(
            phonenumbers, "is_valid_number", ticks.count(phonenumbers.is_valid_number)
        )
        monkeypatch.setattr(
            store_base, "normalise_number", ticks.count(store_base.normalise_number)
        )
        with ticks:
            resp = await client.put("/v1/pools/big", json={"numbers": BIG_POOL})
        assert resp.status == 200
        assert len((await resp.json())["numbers"]) == len(BIG_POOL)
        assert ticks.calls >= 2 * len(BIG_POOL)
        # Before the fix all 12,000 calls ran in one turn of the loop.
        assert ticks.longest_run <= 2 * store_base.POOL_CHUNK

    @with_api
    async def test_a_pool_number_cannot_be_a_participant_and_vice_versa(
        self, client: Any, store: SessionStore, clock: Any
    ) -> None:
        resp = await client.post("/v1/sessions", json=session_body(ALICE, V[0]))
        assert resp.status == 422  # a pool number as a participant: refused, as before
        resp = await client.post("/v1/sessions", json=session_body(ALICE, BOB))
        assert resp.status == 201
        # ALICE is a participant of an open session: no pool may take her number.
        resp = await client.put("/v1/pools/other", json={"numbers": [V[8], ALICE]})
        assert resp.status == 409
        assert (await resp.json())["type"] == "urn:sipmask:problem:number-unavailable"
        assert (await client.get("/v1/pools/other")).status == 404  # nothing was made
        resp = await client.put("/v1/pools/default", json={"numbers": [*V[:4], BOB]})
        assert resp.status == 409
        assert (await store.get_pool("default")).numbers == tuple(V[:4])
        # And a number that is no participant can still be added.
        resp = await client.put("/v1/pools/other", json={"numbers": [V[8]]})
        assert resp.status == 200

    @with_api
    async def test_a_failing_pool_update_changes_nothing(
        self, client: Any, store: SessionStore, clock: Any
    ) -> None:
        before = await store.get_pool("default")
        body = {"numbers": [*BIG_POOL[:1500], "+91-98765-432101"]}
        resp = await client.put("/v1/pools/default", json=body)
        assert resp.status == 422
        assert (await resp.json())["field"] == "$.numbers[1500]"
        assert await store.get_pool("default") == before
        resp = await client.put("/v1/pools/fresh", json=body)
        assert resp.status == 422
        assert await store.list_pools() == ["default"]
        # A number owned elsewhere, after 1,500 new ones: none of them is kept.
        await client.put("/v1/pools/other", json={"numbers": [V[9]]})
        resp = await client.put("/v1/pools/fresh", json={"numbers": [*BIG_POOL[:1500], V[9]]})
        assert resp.status == 409
        resp = await client.put("/v1/pools/third", json={"numbers": BIG_POOL[:1500]})
        assert resp.status == 200  # not owned by "fresh"

    @with_api
    async def test_identifiers_and_routes_are_plain(
        self, client: Any, store: SessionStore, clock: Any
    ) -> None:
        bad_identifiers = [
            "sip:alice%3Bmaddr=6.6.6.6%3Btransport=tcp@example.com",
            "sip:alice@example.com;maddr=6.6.6.6",
            "sip:alice@example.com?Route=%3Csip:evil%3E",
            "sip:alice@example.com;lr",
            "sip:al ice@example.com",
            "sip:alice@exa_mple.com",
            "sip:alice@[::1",
            "sip:alice@example.com:0",
            "sip:alice@example.com;transport=sctp",
        ]
        for identifier in bad_identifiers:
            resp = await client.post("/v1/sessions", json=session_body(ALICE, identifier))
            assert resp.status == 422, identifier
            problem = await resp.json()
            assert problem["type"] == "urn:sipmask:problem:invalid-participant", identifier
            assert problem["field"] == "$.participants[1].identifier"
        bad_routes = [
            "sip:gw.example.net;maddr=6.6.6.6",
            "sip:gw.example.net?X-Evil=1",
            "sip:%61@gw.example.net",
            "sip:gw.example.net;transport=sctp",
            "sip:gw.example.net;user=phone",
            "no spaces",
            "sip:",
        ]
        for route in bad_routes:
            body = session_body()
            body["participants"][0]["route"] = route
            resp = await client.post("/v1/sessions", json=body)
            assert resp.status == 422, route
            problem = await resp.json()
            assert problem["type"] == "urn:sipmask:problem:invalid-route", route
            assert problem["field"] == "$.participants[0].route"
        assert await store.list_sessions() == []
        good = {
            "trunk-a": "trunk-a",
            "SIP:GW.Example.NET:5080;Transport=TCP;lr": "sip:gw.example.net:5080;lr;transport=tcp",
            "sip:+918045671299@[2001:db8::1]": "sip:+918045671299@[2001:db8::1]",
            "pbx.example.com": "sip:pbx.example.com",
        }
        for given, canonical in good.items():
            body = session_body("sip:bob@pbx.example.com;transport=tls", ALICE)
            body["participants"][0]["route"] = given
            resp = await client.post("/v1/sessions", json=body)
            assert resp.status == 201, given
            session = await resp.json()
            assert session["participants"][0]["route"] == canonical
            await client.delete(f"/v1/sessions/{session['id']}")


class TestMemoryHardening(_Hardening):
    async def open_store(self, clock: FakeClock) -> SessionStore:
        return MemoryStore(clock=clock)


class TestRedisHardening(_Hardening):
    @pytest.fixture(autouse=True)
    def _server(self, redis_server: RedisServer) -> None:
        self.server = redis_server

    async def open_store(self, clock: FakeClock) -> SessionStore:
        from sipmask.store.redis import RedisStore

        return RedisStore(self.server.url, prefix=f"t{uuid.uuid4().hex[:12]}", clock=clock)


def test_undecodable_bearer_token_is_401() -> None:
    async def main() -> None:
        store = MemoryStore()
        async with serve(store, FakeClock(), auth=None) as client:
            port = client.server.port
            status = await asyncio.to_thread(
                raw_request, port,
                b"GET /v1/pools HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\xc3\r\n"
                b"Connection: close\r\n\r\n",
            )
            assert status.startswith(b"HTTP/1.1 401"), status

    asyncio.run(main())


@with_api(app_kwargs={"max_body_bytes": 64 * 1024})
async def test_a_body_over_the_cap_is_413(client: Any, store: SessionStore, clock: Any) -> None:
    numbers = [f"+9180{41000000 + i}" for i in range(5000)]  # ~80 KB
    resp = await client.put("/v1/pools/big", json={"numbers": numbers})
    assert resp.status == 413
    assert (await resp.json())["type"] == "urn:sipmask:problem:body-too-large"
    assert await store.list_pools() == ["default"]
    resp = await client.put("/v1/pools/big", json={"numbers": numbers[:100]})
    assert resp.status == 200


@pytest.mark.parametrize("depth", [33, 1000, 100_000])
@with_api
async def test_deep_json_is_422(
    client: Any, store: SessionStore, clock: Any, depth: int
) -> None:
    nested = "[" * depth + "]" * depth
    raw = '{"participants": [{"identifier": "%s"}, {"identifier": "%s"}], "metadata": {"a": %s}}'
    resp = await client.post(
        "/v1/sessions", data=raw % (ALICE, BOB, nested),
        headers={"Content-Type": "application/json"},
    )
    assert resp.status == 422
    problem = await resp.json()
    assert problem["type"] == "urn:sipmask:problem:invalid-body"
    assert problem["field"] == "$"
    assert await store.list_sessions() == []


@with_api(app_kwargs={"max_json_depth": 4})
async def test_the_depth_cap_is_the_configured_one(
    client: Any, store: SessionStore, clock: Any
) -> None:
    # The body, its metadata object and two more levels: 4.
    resp = await client.post("/v1/sessions", json=session_body(metadata={"a": {"b": [1]}}))
    assert resp.status == 201
    resp = await client.post(
        "/v1/sessions",
        json=session_body("+919812345679", BOB, metadata={"a": {"b": [[1]]}}),
    )
    assert resp.status == 422


@pytest.mark.parametrize(
    ("text", "limit", "deeper"),
    [
        (b"{}", 1, False),
        (b"[[]]", 1, True),
        (b"[[]]", 2, False),
        (b'{"a": "[[[[[[", "b": [1, {"c": "]]]\\"[["}]}', 3, False),
        (b'{"a": "[[[[[[", "b": [1, {"c": "]]]\\"[["}]}', 2, True),
        (b"[" * 50, 10, True),
        (b"]]][[[", 10, False),  # malformed: left to the decoder
        (b"[[[" + b"[]" * 5, 3, True),  # unclosed, but 4 deep
    ],
)
def test_json_depth_exceeds(text: bytes, limit: int, deeper: bool) -> None:
    assert json_depth_exceeds(text, limit) is deeper
