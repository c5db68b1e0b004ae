"""`/v1/pools` in detail over the memory store: validation, config pools read-only, numbers
owned by another pool, bad names."""

from __future__ import annotations

from typing import Any

import pytest
from api_helpers import ALICE, V, session_body, with_api

from sipmask.api import PROBLEM_JSON
from sipmask.store import SessionStore, UnknownPool


@with_api
async def test_get_pool(client: Any, store: SessionStore, clock: Any) -> None:
    resp = await client.get("/v1/pools/default")
    assert resp.status == 200
    assert await resp.json() == {
        "name": "default", "numbers": V[:4], "reserved": [], "draining": []
    }


@with_api
async def test_put_normalises_numbers(client: Any, store: SessionStore, clock: Any) -> None:
    resp = await client.put(
        "/v1/pools/city", json={"numbers": ["+91 80 4567 1207", "tel:+918045671206"]}
    )
    assert resp.status == 200
    assert (await resp.json())["numbers"] == [V[6], V[7]]
    assert (await store.get_pool("city")).numbers == (V[6], V[7])


INVALID_POOLS = {
    "numbers-missing": ({"reserved": []}, 422, "invalid-body", "$.numbers"),
    "numbers-not-list": ({"numbers": V[5]}, 422, "invalid-body", "$.numbers"),
    "number-not-string": ({"numbers": [V[5], 918045671206]}, 422, "invalid-body", "$.numbers[1]"),
    "number-not-e164": ({"numbers": [V[5], "8045671206"]}, 422, "invalid-number", "$.numbers[1]"),
    "number-invalid": ({"numbers": ["+9100001234567"]}, 422, "invalid-number", "$.numbers[0]"),
    "reserved-invalid": (
        {"numbers": [V[5]], "reserved": ["x"]}, 422, "invalid-number", "$.reserved[0]",
    ),
    "both-free-and-reserved": (
        {"numbers": [V[5]], "reserved": [V[5]]}, 422, "invalid-pool", None,
    ),
    "unknown-field": ({"numbers": [], "draining": []}, 422, "invalid-body", "$"),
    "owned-by-another-pool": ({"numbers": [V[0]]}, 409, "number-unavailable", None),
}


@pytest.mark.parametrize(
    ("body", "status", "kind", "field"), INVALID_POOLS.values(), ids=INVALID_POOLS.keys()
)
@with_api
async def test_invalid_put(
    client: Any, store: SessionStore, clock: Any, body: Any, status: int, kind: str,
    field: str | None,
) -> None:
    resp = await client.put("/v1/pools/new", json=body)
    assert resp.status == status
    problem = await resp.json(content_type=PROBLEM_JSON)
    assert problem["type"] == f"urn:sipmask:problem:{kind}"
    assert problem.get("field") == field
    assert await store.list_pools() == ["default"]  # nothing created
    with pytest.raises(UnknownPool):
        await store.get_pool("new")


@with_api(readonly_pools={"default"})
async def test_config_pools_are_read_only(client: Any, store: SessionStore, clock: Any) -> None:
    for method, body in [("PUT", {"numbers": V[:2]}), ("DELETE", None)]:
        resp = await client.request(method, "/v1/pools/default", json=body)
        assert resp.status == 409
        problem = await resp.json(content_type=PROBLEM_JSON)
        assert problem["type"] == "urn:sipmask:problem:pool-readonly"
        assert problem["parameter"] == "name"
    assert (await store.get_pool("default")).numbers == tuple(V[:4])
    resp = await client.get("/v1/pools/default")
    assert resp.status == 200
    resp = await client.get("/v1/pools")
    assert await resp.json() == {"pools": ["default"], "readonly": ["default"]}
    # Sessions in a read-only pool are fine.
    resp = await client.post("/v1/sessions", json=session_body())
    assert resp.status == 201


@pytest.mark.parametrize(
    ("method", "status"), [("GET", 404), ("DELETE", 404), ("PUT", 422)], ids=str
)
@with_api
async def test_bad_pool_name(
    client: Any, store: SessionStore, clock: Any, method: str, status: int
) -> None:
    name = "x" * 65
    body: dict[str, list[str]] | None = {"numbers": []} if method == "PUT" else None
    resp = await client.request(method, f"/v1/pools/{name}", json=body)
    assert resp.status == status
    assert (await resp.json(content_type=PROBLEM_JSON))["parameter"] == "name"
    assert await store.list_pools() == ["default"]


@pytest.mark.parametrize("method", ["GET", "DELETE"])
@with_api
async def test_unknown_pool(client: Any, store: SessionStore, clock: Any, method: str) -> None:
    resp = await client.request(method, "/v1/pools/nope")
    assert resp.status == 404
    problem = await resp.json(content_type=PROBLEM_JSON)
    assert problem["type"] == "urn:sipmask:problem:pool-not-found"


@with_api
async def test_pool_number_cannot_become_participant(
    client: Any, store: SessionStore, clock: Any
) -> None:
    await client.put("/v1/pools/extra", json={"numbers": [V[9]]})
    resp = await client.post("/v1/sessions", json=session_body(ALICE, V[9]))
    assert resp.status == 422
    assert (await resp.json())["type"] == "urn:sipmask:problem:invalid-participant"
