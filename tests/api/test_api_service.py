"""Bearer-token auth, `/healthz`, `/openapi.json` (valid, matching the routes and the
answers), plain HTTP errors as problems, store outages, and privacy of logs."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from api_helpers import ALICE, BOB, CAROL, TOKEN, FakeClock, V, serve, session_body, with_api

from sipmask.api import PROBLEM_JSON, MaskingAccessLogger, build_openapi, make_app
from sipmask.store import MemoryStore, SessionStore, StoreUnavailable

ROUTES = [
    ("POST", "/v1/sessions"),
    ("GET", "/v1/sessions"),
    ("GET", "/v1/sessions/default.x"),
    ("DELETE", "/v1/sessions/default.x"),
    ("GET", "/v1/sessions/default.x/interactions"),
    ("GET", "/v1/pools"),
    ("GET", "/v1/pools/default"),
    ("PUT", "/v1/pools/default"),
    ("DELETE", "/v1/pools/default"),
    ("GET", "/v1/nowhere"),
]

# Authorization header values that must be refused (None: no header at all).
BAD_AUTH = {
    "no-header": None,
    "wrong-token": "Bearer nope",
    "token-prefix": f"Bearer {TOKEN[:-1]}",
    "token-longer": f"Bearer {TOKEN}x",
    "wrong-scheme": f"Basic {TOKEN}",
    "no-token": "Bearer",
    "bare-token": TOKEN,
}


@pytest.mark.parametrize("header", BAD_AUTH.values(), ids=BAD_AUTH.keys())
@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
@with_api(auth=None)
async def test_refused_without_valid_token(
    client: Any, store: SessionStore, clock: Any, header: str | None, method: str, path: str
) -> None:
    headers = {"Authorization": header} if header is not None else {}
    body = session_body() if method == "POST" else {"numbers": []} if method == "PUT" else None
    resp = await client.request(method, path, json=body, headers=headers)
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"].startswith('Bearer realm="sipmask"')
    problem = await resp.json(content_type=PROBLEM_JSON)
    assert problem["status"] == 401 and problem["type"] == "urn:sipmask:problem:unauthorized"
    assert await store.list_sessions() == []
    assert (await store.get_pool("default")).numbers == tuple(V[:4])


@with_api(auth=None)
async def test_invalid_token_challenge(client: Any, store: SessionStore, clock: Any) -> None:
    # RFC 6750 §3.1: invalid_token when a token was given, no error code when none was.
    resp = await client.get("/v1/pools", headers={"Authorization": "Bearer nope"})
    assert resp.headers["WWW-Authenticate"] == 'Bearer realm="sipmask", error="invalid_token"'
    resp = await client.get("/v1/pools")
    assert resp.headers["WWW-Authenticate"] == 'Bearer realm="sipmask"'


@with_api(tokens=("first-token", TOKEN), auth=None)
async def test_any_configured_token_works(client: Any, store: SessionStore, clock: Any) -> None:
    for token in ("first-token", TOKEN):
        resp = await client.get("/v1/pools", headers={"Authorization": f"bearer {token}"})
        assert resp.status == 200


@with_api(tokens=())
async def test_no_tokens_refuses_all(client: Any, store: SessionStore, clock: Any) -> None:
    resp = await client.get("/v1/pools")
    assert resp.status == 401
    resp = await client.get("/healthz")
    assert resp.status == 200


@pytest.mark.parametrize("token", ["", " padded"], ids=["empty", "padded"])
def test_bad_configured_token(token: str) -> None:
    with pytest.raises(ValueError):
        make_app(MemoryStore(), tokens=[TOKEN, token])


@with_api(auth=None)
async def test_public_endpoints(client: Any, store: SessionStore, clock: Any) -> None:
    resp = await client.get("/healthz")
    assert resp.status == 200 and await resp.json() == {"status": "ok"}
    resp = await client.get("/openapi.json")
    assert resp.status == 200 and resp.content_type == "application/json"
    assert await resp.json() == build_openapi()


@with_api
async def test_http_errors_are_problems(client: Any, store: SessionStore, clock: Any) -> None:
    resp = await client.get("/v1/nowhere")
    assert resp.status == 404
    problem = await resp.json(content_type=PROBLEM_JSON)
    assert problem == {"type": "about:blank", "title": "Not Found", "status": 404}
    resp = await client.patch("/v1/sessions/default.x", json={})
    assert resp.status == 405
    assert set(resp.headers["Allow"].split(",")) == {"GET", "DELETE"}
    assert (await resp.json(content_type=PROBLEM_JSON))["status"] == 405


def test_openapi_document() -> None:
    document = build_openapi()
    assert document["openapi"] == "3.1.0"
    assert set(document["paths"]) == {
        "/v1/sessions", "/v1/sessions/{id}", "/v1/sessions/{id}/interactions", "/v1/pools",
        "/v1/pools/{name}", "/healthz", "/openapi.json",
    }
    schemas = document["components"]["schemas"]
    for name in ("CreateSession", "ParticipantIn", "Session", "Participant", "Pool",
                 "PoolIn", "Interaction", "Problem", "ExpiryMode", "SessionStatus"):
        assert name in schemas
    assert schemas["CreateSession"]["required"] == ["participants"]
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert document["paths"]["/healthz"]["get"]["security"] == []


def test_openapi_document_validates() -> None:
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(build_openapi())


def test_openapi_matches_routes() -> None:
    app = make_app(MemoryStore(), tokens=[TOKEN])
    served = {
        (route.method.lower(), route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None
    }
    documented = {
        (method, path)
        for path, item in build_openapi()["paths"].items()
        for method in item
        if method != "parameters"
    }
    assert served == documented


@with_api
async def test_answers_match_their_schemas(client: Any, store: SessionStore, clock: Any) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    document = build_openapi()

    def check(instance: Any, name: str) -> None:
        schema = {"$ref": f"#/components/schemas/{name}", "components": document["components"]}
        jsonschema.Draft202012Validator(schema).validate(instance)

    resp = await client.post("/v1/sessions", json=session_body(metadata={"a": [1]}))
    session = await resp.json()
    check(session, "Session")
    check(await (await client.get("/v1/sessions")).json(), "SessionList")
    check(await (await client.delete(f"/v1/sessions/{session['id']}")).json(), "Session")
    check(
        await (await client.get(f"/v1/sessions/{session['id']}/interactions")).json(),
        "InteractionList",
    )
    check(await (await client.get("/v1/pools/default")).json(), "Pool")
    check(await (await client.get("/v1/pools")).json(), "PoolList")
    check(await (await client.get("/healthz")).json(), "Health")
    problem = await (await client.post("/v1/sessions", json={"ttl": 1})).json(
        content_type=PROBLEM_JSON
    )
    check(problem, "Problem")
    check(session_body(ttl=60, expiry="sliding"), "CreateSession")
    with pytest.raises(jsonschema.ValidationError):
        check({"participants": [{"identifier": ALICE}]}, "CreateSession")


class FlakyStore(MemoryStore):
    """A memory store whose session and pool reads raise `fail` while it is set."""

    fail: Exception | None = None

    async def create_session(self, *args: Any, **kwargs: Any) -> Any:
        if self.fail is not None:
            raise self.fail
        return await super().create_session(*args, **kwargs)

    async def list_pools(self) -> list[str]:
        if self.fail is not None:
            raise self.fail
        return await super().list_pools()


def _run_flaky(body: Any) -> None:
    import asyncio

    async def main() -> None:
        clock = FakeClock()
        store = FlakyStore(clock=clock)
        await store.set_pool("default", V[:4])
        async with serve(store, clock) as client:
            await body(client, store)

    asyncio.run(main())


def test_store_unavailable_is_503() -> None:
    async def body(client: Any, store: FlakyStore) -> None:
        store.fail = StoreUnavailable(f"redis down while creating for {ALICE}")
        resp = await client.post("/v1/sessions", json=session_body())
        assert resp.status == 503
        assert resp.headers["Retry-After"] == "2"
        problem = await resp.json(content_type=PROBLEM_JSON)
        assert problem["type"] == "urn:sipmask:problem:store-unavailable"
        assert ALICE not in await resp.text()
        resp = await client.get("/healthz")
        assert resp.status == 503 and resp.headers["Retry-After"] == "2"
        store.fail = None
        resp = await client.post("/v1/sessions", json=session_body())
        assert resp.status == 201

    _run_flaky(body)


def test_internal_error_is_500_and_masked(caplog: pytest.LogCaptureFixture) -> None:
    async def body(client: Any, store: FlakyStore) -> None:
        store.fail = RuntimeError(f"bug handling {ALICE}")
        with caplog.at_level(logging.ERROR, logger="sipmask.api"):
            resp = await client.post("/v1/sessions", json=session_body())
        assert resp.status == 500
        problem = await resp.json(content_type=PROBLEM_JSON)
        assert problem == {"type": "about:blank", "title": "Internal Server Error", "status": 500}
        assert "internal error" in caplog.text and "RuntimeError" in caplog.text
        assert "+91******3210" in caplog.text

    _run_flaky(body)
    assert "9876543210" not in caplog.text


@with_api(access_log_class=MaskingAccessLogger)
async def test_logs_carry_no_real_number(
    client: Any, store: SessionStore, clock: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        await client.put("/v1/pools/tiny", json={"numbers": [V[8]]})
        await client.post("/v1/sessions", json=session_body(ALICE, BOB, pool="tiny"))
        await client.post("/v1/sessions", json=session_body(ALICE, CAROL, pool="tiny"))
        await client.post("/v1/sessions", json=session_body(ALICE, ALICE))
        await client.get("/v1/sessions", params={"participant": ALICE})
        resp = await client.get(f"/v1/sessions?participant={ALICE}")  # "+" not encoded
        assert len((await resp.json())["sessions"]) == 1
        await client.get("/v1/sessions", params={"participant": "sip:alice@example.com"})
    access = [r.getMessage() for r in caplog.records if r.name == "aiohttp.access"]
    assert len(access) == 7
    assert "GET /v1/sessions?participant=%2B91******3210" in access[4]
    assert "sessions created" not in caplog.text
    for number in (ALICE, BOB, CAROL):
        assert number[3:] not in caplog.text


@with_api
async def test_document_examples_are_accepted(
    client: Any, store: SessionStore, clock: Any
) -> None:
    from sipmask.api.openapi import POOL_EXAMPLE, SESSION_EXAMPLE

    resp = await client.put("/v1/pools/default", json=POOL_EXAMPLE)
    assert resp.status == 200
    resp = await client.post("/v1/sessions", json=SESSION_EXAMPLE)
    assert resp.status == 201
