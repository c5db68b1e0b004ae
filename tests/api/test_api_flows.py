"""The key flows of the provisioning API, run against both stores: `TestMemoryFlows` and
`TestRedisFlows` (a real redis-server, see conftest.py). Over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from api_helpers import (
    ALICE,
    BOB,
    CAROL,
    REDIS_SERVER,
    FakeClock,
    RedisServer,
    V,
    serve,
    session_body,
    with_api,
)

from sipmask.api import PROBLEM_JSON
from sipmask.store import (
    Interaction,
    MemoryStore,
    ParticipantSpec,
    SessionSpec,
    SessionStore,
)


def numbers(session: dict[str, Any]) -> list[str]:
    return [p["proxy_identifier"] for p in session["participants"]]


class _Flows:
    """What the API does over any store. Subclasses provide `open_store(clock)`."""

    async def open_store(self, clock: FakeClock) -> SessionStore:
        raise NotImplementedError

    @with_api
    async def test_session_lifecycle(self, client: Any, store: SessionStore, clock: Any) -> None:
        resp = await client.post("/v1/sessions", json=session_body(ttl=600))
        assert resp.status == 201
        session = await resp.json()
        assert resp.headers["Location"] == f"/v1/sessions/{session['id']}"
        assert session["status"] == "open"
        assert session["pool"] == "default"
        assert session["expires_at"] == clock.now + 600
        assert [p["identifier"] for p in session["participants"]] == [ALICE, BOB]
        v_alice, v_bob = numbers(session)
        assert {v_alice, v_bob} <= set(V[:4]) and v_alice != v_bob

        resp = await client.get(f"/v1/sessions/{session['id']}")
        assert resp.status == 200
        assert await resp.json() == session

        resp = await client.get("/v1/sessions", params={"participant": ALICE})
        assert resp.status == 200
        assert [s["id"] for s in (await resp.json())["sessions"]] == [session["id"]]

        # The binding the call path reads: Alice dials her number, Bob sees his.
        binding = await store.lookup(v_alice, ALICE)
        assert binding is not None and binding.callee.key == BOB and binding.caller_id == v_bob

        resp = await client.delete(f"/v1/sessions/{session['id']}")
        assert resp.status == 200
        closed = await resp.json()
        assert closed["status"] == "closed" and closed["closed_reason"] == "closed"
        assert closed["closed_at"] == clock.now
        assert await store.lookup(v_alice, ALICE) is None  # bindings gone at once

        resp = await client.get("/v1/sessions", params={"participant": ALICE})
        assert (await resp.json())["sessions"] == []
        resp = await client.delete(f"/v1/sessions/{session['id']}")  # idempotent
        assert resp.status == 200 and await resp.json() == closed

    @with_api
    async def test_interactions(self, client: Any, store: SessionStore, clock: Any) -> None:
        resp = await client.post("/v1/sessions", json=session_body())
        session = await resp.json()
        v_alice, v_bob = numbers(session)
        record = Interaction(
            id="call-1", session_id=session["id"], caller=ALICE, callee=BOB,
            dialled=v_alice, presented=v_bob, started_at=clock.now, status="no-answer",
            cause="480",
        )
        resp = await client.get(f"/v1/sessions/{session['id']}/interactions")
        assert resp.status == 200 and await resp.json() == {"interactions": []}
        await store.record_interaction(record)
        resp = await client.get(f"/v1/sessions/{session['id']}/interactions")
        [got] = (await resp.json())["interactions"]
        assert got["id"] == "call-1" and got["status"] == "no-answer" and got["cause"] == "480"

    @with_api
    async def test_unknown_session(self, client: Any, store: SessionStore, clock: Any) -> None:
        for method, path in [
            ("GET", "/v1/sessions/default.nope"),
            ("DELETE", "/v1/sessions/default.nope"),
            ("GET", "/v1/sessions/default.nope/interactions"),
            ("GET", "/v1/sessions/no-dot"),
        ]:
            resp = await client.request(method, path)
            assert resp.status == 404, (method, path)
            assert resp.content_type == PROBLEM_JSON
            problem = await resp.json()
            assert problem["type"] == "urn:sipmask:problem:session-not-found"
            assert problem["status"] == 404

    @with_api
    async def test_pool_lifecycle(self, client: Any, store: SessionStore, clock: Any) -> None:
        resp = await client.put("/v1/pools/api", json={"numbers": V[4:6], "reserved": [V[6]]})
        assert resp.status == 200
        assert await resp.json() == {
            "name": "api", "numbers": V[4:6], "reserved": [V[6]], "draining": []
        }
        resp = await client.get("/v1/pools")
        assert await resp.json() == {"pools": ["api", "default"], "readonly": []}

        body = session_body(pool="api")
        body["participants"][0]["proxy_identifier"] = V[6]  # a reserved number, pinned
        resp = await client.post("/v1/sessions", json=body)
        assert resp.status == 201
        session = await resp.json()
        v_alice, v_bob = numbers(session)
        assert v_alice == V[6] and v_bob in V[4:6]

        # Dropping a number in use drains it: it keeps working for the open session.
        resp = await client.put("/v1/pools/api", json={"numbers": [V[7]]})
        assert resp.status == 200
        pool = await resp.json()
        assert pool["numbers"] == [V[7]] and set(pool["draining"]) == {V[6], v_bob}
        assert await store.lookup(v_alice, ALICE) is not None

        resp = await client.delete("/v1/pools/api")
        assert resp.status == 409
        assert (await resp.json())["type"] == "urn:sipmask:problem:pool-in-use"

        await client.delete(f"/v1/sessions/{session['id']}")
        await store.expire()
        resp = await client.get("/v1/pools/api")
        assert (await resp.json())["draining"] == []
        resp = await client.delete("/v1/pools/api")
        assert resp.status == 204
        resp = await client.get("/v1/pools/api")
        assert resp.status == 404
        assert (await resp.json())["type"] == "urn:sipmask:problem:pool-not-found"

    @with_api
    async def test_pool_exhausted(self, client: Any, store: SessionStore, clock: Any) -> None:
        await client.put("/v1/pools/tiny", json={"numbers": [V[8]]})
        resp = await client.post("/v1/sessions", json=session_body(ALICE, BOB, pool="tiny"))
        assert resp.status == 201
        resp = await client.post("/v1/sessions", json=session_body(ALICE, CAROL, pool="tiny"))
        assert resp.status == 409
        problem = await resp.json()
        assert problem["type"] == "urn:sipmask:problem:pool-exhausted"
        # The rule, not the values (issue 11): no number, not even masked.
        assert problem["detail"] == (
            "every assignable number of the pool is already used by this participant"
        )
        assert ALICE[-4:] not in await resp.text()
        resp = await client.get("/v1/sessions", params={"pool": "tiny"})
        assert len((await resp.json())["sessions"]) == 1

    @with_api
    async def test_rejected_creation_changes_nothing(
        self, client: Any, store: SessionStore, clock: Any
    ) -> None:
        pool_before = await store.get_pool("default")
        bad = [
            {"participants": [{"identifier": ALICE}]},
            session_body(ALICE, "+91"),
            session_body(ALICE, BOB, ttl=0),
            session_body(ALICE, ALICE),
            session_body(ALICE, V[0]),  # a pool number would loop
            session_body(ALICE, BOB, pool="nope"),
            session_body(ALICE, BOB, metadata={"blob": "x" * 5000}),
        ]
        for body in bad:
            resp = await client.post("/v1/sessions", json=body)
            assert resp.status == 422, body
        assert await store.list_sessions() == []
        assert await store.get_pool("default") == pool_before
        # The numbers a fresh store gives this pair: the failures touched no LRU time.
        fresh = MemoryStore(clock=clock)
        await fresh.set_pool("default", V[:4])
        expected = await fresh.create_session(
            SessionSpec(participants=(ParticipantSpec(CAROL), ParticipantSpec(BOB)))
        )
        await fresh.close()
        resp = await client.post("/v1/sessions", json=session_body(CAROL, BOB))
        assert resp.status == 201
        assert numbers(await resp.json()) == [p.proxy_identifier for p in expected.participants]

    @with_api
    async def test_health(self, client: Any, store: SessionStore, clock: Any) -> None:
        resp = await client.get("/healthz", headers={"Authorization": ""})
        assert resp.status == 200 and await resp.json() == {"status": "ok"}


class TestMemoryFlows(_Flows):
    async def open_store(self, clock: FakeClock) -> SessionStore:
        return MemoryStore(clock=clock)


class TestRedisFlows(_Flows):
    @pytest.fixture(autouse=True)
    def _server(self, redis_server: RedisServer) -> None:
        self.server = redis_server

    async def open_store(self, clock: FakeClock) -> SessionStore:
        from sipmask.store.redis import RedisStore

        # A fresh key prefix per test: no test sees another's keys.
        return RedisStore(self.server.url, prefix=f"t{uuid.uuid4().hex[:12]}", clock=clock)


@pytest.fixture
def persistent_redis() -> Iterator[RedisServer]:
    """A redis-server of this test only (it gets killed), with an append-only file so its
    data survives the restart."""
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (Debian package redis-server)")
    server = RedisServer(persist=True)
    server.start()
    try:
        yield server
    finally:
        server.cleanup()


def test_redis_outage_answers_503_and_recovers(persistent_redis: RedisServer) -> None:
    """While Redis is down every store call answers 503 with Retry-After (and /healthz says
    unavailable); once it is back, the same app serves again without a restart."""
    from sipmask.store.redis import RedisStore

    async def main() -> None:
        clock = FakeClock()
        store = RedisStore(persistent_redis.url, clock=clock)
        try:
            await store.set_pool("default", V[:4])
            async with serve(store, clock) as client:
                resp = await client.post("/v1/sessions", json=session_body())
                assert resp.status == 201
                session = await resp.json()

                persistent_redis.stop()
                for method, path, body in [
                    ("POST", "/v1/sessions", session_body(ALICE, CAROL)),
                    ("GET", f"/v1/sessions/{session['id']}", None),
                    ("GET", "/v1/pools/default", None),
                ]:
                    resp = await client.request(method, path, json=body)
                    assert resp.status == 503, path
                    assert resp.headers["Retry-After"].isdigit()
                    problem = await resp.json()
                    assert problem["type"] == "urn:sipmask:problem:store-unavailable"
                resp = await client.get("/healthz")
                assert resp.status == 503 and await resp.json() == {"status": "unavailable"}

                persistent_redis.start()
                resp = await client.get("/healthz")
                assert resp.status == 200
                resp = await client.get(f"/v1/sessions/{session['id']}")
                assert resp.status == 200 and await resp.json() == session
                resp = await client.post("/v1/sessions", json=session_body(ALICE, CAROL))
                assert resp.status == 201
        finally:
            await store.close()

    asyncio.run(main())
