"""`/v1/sessions` in detail over the memory store: validation with field paths, error
mapping, list filters, and privacy of error details."""

from __future__ import annotations

from typing import Any

import pytest
from api_helpers import ALICE, BOB, CAROL, V, session_body, with_api

from sipmask.api import PROBLEM_JSON
from sipmask.store import SessionStore


def _with(**changes: Any) -> dict[str, Any]:
    return session_body(**changes)


def _participant(i: int, **fields: Any) -> dict[str, Any]:
    body = session_body()
    body["participants"][i].update(fields)
    return body


# (body, status, problem type, field)
INVALID_BODIES = {
    "no-participants": ({"ttl": 60}, 422, "invalid-body", "$.participants"),
    # a prompt is named, never a path: the API does not choose what rtpengine reads
    "announcement-path": (
        _with(announcement="/var/spool/rtpengine/pcaps/x.pcap"), 422, "invalid-body",
        "$.announcement",
    ),
    "one-participant": (
        {"participants": [{"identifier": ALICE}]}, 422, "invalid-body", "$.participants",
    ),
    "three-participants": (
        {"participants": [{"identifier": n} for n in (ALICE, BOB, CAROL)]},
        422, "invalid-body", "$.participants",
    ),
    "identifier-not-string": (
        _participant(0, identifier=919876543210), 422, "invalid-body",
        "$.participants[0].identifier",
    ),
    "identifier-missing": (
        {"participants": [{"identifier": ALICE}, {"route": "trunk"}]}, 422, "invalid-body",
        "$.participants[1].identifier",
    ),
    "identifier-empty": (
        _participant(1, identifier=""), 422, "invalid-body", "$.participants[1].identifier",
    ),
    "identifier-letters": (
        _participant(1, identifier="bob"), 422, "invalid-number",
        "$.participants[1].identifier",
    ),
    "identifier-not-e164": (
        _participant(0, identifier="9876543210"), 422, "invalid-number",
        "$.participants[0].identifier",
    ),
    "identifier-invalid-for-country": (
        # Well-formed E.164, but no such Indian number (phonenumbers says invalid).
        _participant(1, identifier="+9100001234567"), 422, "invalid-number",
        "$.participants[1].identifier",
    ),
    "sip-uri-without-user": (
        _participant(1, identifier="sip:@example.com"), 422, "invalid-participant",
        "$.participants[1].identifier",
    ),
    "proxy-identifier-invalid": (
        _participant(0, proxy_identifier="12345"), 422, "invalid-number",
        "$.participants[0].proxy_identifier",
    ),
    "unknown-participant-field": (
        _participant(0, nickname="al"), 422, "invalid-body", "$.participants[0]",
    ),
    "unknown-field": (_with(colour="red"), 422, "invalid-body", "$"),
    "ttl-zero": (_with(ttl=0), 422, "invalid-body", "$.ttl"),
    "ttl-over-30-days": (_with(ttl=30 * 86400 + 1), 422, "invalid-body", "$.ttl"),
    "ttl-string": (_with(ttl="600"), 422, "invalid-body", "$.ttl"),
    "expiry-unknown": (_with(expiry="forever"), 422, "invalid-body", "$.expiry"),
    "call-time-limit-negative": (
        _with(call_time_limit=-1), 422, "invalid-body", "$.call_time_limit",
    ),
    "ring-timeout-too-long": (_with(ring_timeout=601), 422, "invalid-body", "$.ring_timeout"),
    "metadata-not-object": (_with(metadata=[1, 2]), 422, "invalid-body", "$.metadata"),
    "metadata-too-large": (
        _with(metadata={"blob": "x" * 4100}), 422, "invalid-body", "$.metadata",
    ),
    "pool-name-bad": (_with(pool="no/slash"), 422, "invalid-body", "$.pool"),
    "pool-unknown": (_with(pool="nope"), 422, "pool-not-found", "$.pool"),
    "same-party-twice": (
        session_body(ALICE, "tel:+91 98765-43210"), 422, "invalid-session", "$.participants",
    ),
    "participant-is-a-pool-number": (
        session_body(ALICE, V[0]), 422, "invalid-participant", "$.participants",
    ),
    "body-not-an-object": ([1, 2], 422, "invalid-body", "$"),
    "pinned-number-not-in-pool": (
        _participant(0, proxy_identifier=V[9]), 409, "number-unavailable", None,
    ),
}


@pytest.mark.parametrize(
    ("body", "status", "kind", "field"), INVALID_BODIES.values(), ids=INVALID_BODIES.keys()
)
@with_api
async def test_invalid_creation(
    client: Any, store: SessionStore, clock: Any, body: Any, status: int, kind: str,
    field: str | None,
) -> None:
    pool_before = await store.get_pool("default")
    resp = await client.post("/v1/sessions", json=body)
    assert resp.status == status
    assert resp.content_type == PROBLEM_JSON
    problem = await resp.json()
    assert problem["type"] == f"urn:sipmask:problem:{kind}"
    assert problem["status"] == status
    assert problem["title"]
    assert problem.get("field") == field
    # No state changed, and no full real number in the error.
    assert await store.list_sessions() == []
    assert await store.get_pool("default") == pool_before
    text = await resp.text()
    for number in (ALICE, BOB, CAROL, "9876543210", "919876543210"):
        assert number not in text


@pytest.mark.parametrize(
    "raw", [b"", b"{", b"not json", b'{"participants": [}'], ids=["empty", "open", "text", "bad"]
)
@with_api
async def test_malformed_json(client: Any, store: SessionStore, clock: Any, raw: bytes) -> None:
    resp = await client.post(
        "/v1/sessions", data=raw, headers={"Content-Type": "application/json"}
    )
    assert resp.status == 400
    problem = await resp.json(content_type=PROBLEM_JSON)
    assert problem["type"] == "urn:sipmask:problem:malformed-json"
    assert await store.list_sessions() == []


@with_api
async def test_create_with_every_field(client: Any, store: SessionStore, clock: Any) -> None:
    await store.set_pool("default", V[:4], reserved=[V[5]])
    body = {
        "participants": [
            {"identifier": "+91 98765 43210", "proxy_identifier": V[5], "route": "trunk-a"},
            {"identifier": "sip:Bob@Example.COM:5061;transport=tls"},
        ],
        "pool": "default",
        "ttl": 7200,
        "expiry": "sliding",
        "call_time_limit": 900,
        "ring_timeout": 30,
        "metadata": {"order": "A-17", "tags": ["x", 1]},
        "record": True,
        "announcement": "notice",
    }
    resp = await client.post("/v1/sessions", json=body)
    assert resp.status == 201
    session = await resp.json()
    alice, bob = session["participants"]
    assert alice == {
        "identifier": "+91 98765 43210", "key": ALICE, "proxy_identifier": V[5],
        "route": "trunk-a",
    }
    assert bob["identifier"] == "sip:Bob@Example.COM:5061;transport=tls"
    assert bob["key"] == "Bob@example.com" and bob["proxy_identifier"] in V[:4]
    assert session["ttl"] == 7200 and session["expiry"] == "sliding"
    assert session["expires_at"] == clock.now + 7200 and session["created_at"] == clock.now
    assert session["call_time_limit"] == 900 and session["ring_timeout"] == 30
    assert session["metadata"] == {"order": "A-17", "tags": ["x", 1]}
    assert session["id"].startswith("default.")
    assert session["record"] is True and session["announcement"] == "notice"
    assert (await store.get_session(session["id"])).record


@with_api
async def test_defaults(client: Any, store: SessionStore, clock: Any) -> None:
    resp = await client.post("/v1/sessions", json=session_body())
    session = await resp.json()
    assert session["ttl"] == 3600 and session["expiry"] == "absolute"
    assert session["call_time_limit"] is None and session["metadata"] == {}
    assert session["record"] is False


@with_api
async def test_list_filters(client: Any, store: SessionStore, clock: Any) -> None:
    await store.set_pool("other", V[6:8])
    ids = []
    for a, b, pool in [(ALICE, BOB, "default"), (ALICE, CAROL, "other"), (BOB, CAROL, "default")]:
        resp = await client.post("/v1/sessions", json=session_body(a, b, pool=pool))
        ids.append((await resp.json())["id"])
        clock.advance(1)

    async def listed(**params: str) -> list[str]:
        resp = await client.get("/v1/sessions", params=params)
        assert resp.status == 200
        return [s["id"] for s in (await resp.json())["sessions"]]

    assert await listed() == ids
    assert await listed(participant=ALICE) == ids[:2]
    assert await listed(participant="tel:+91-98765-43210") == ids[:2]
    assert await listed(pool="other") == [ids[1]]
    assert await listed(participant=CAROL, pool="default") == [ids[2]]
    assert await listed(participant="+919000000009") == []
    await client.delete(f"/v1/sessions/{ids[0]}")
    assert await listed(participant=ALICE) == [ids[1]]


@pytest.mark.parametrize(
    ("params", "status", "kind", "parameter"),
    [
        ({"participant": "nobody"}, 400, "invalid-parameter", "participant"),
        ({"pool": "no/such"}, 400, "invalid-parameter", "pool"),
        ({"pool": "nope"}, 404, "pool-not-found", "pool"),
    ],
    ids=["participant-not-a-number", "pool-bad-name", "pool-unknown"],
)
@with_api
async def test_list_bad_parameter(
    client: Any, store: SessionStore, clock: Any, params: dict[str, str], status: int,
    kind: str, parameter: str,
) -> None:
    resp = await client.get("/v1/sessions", params=params)
    assert resp.status == status
    problem = await resp.json(content_type=PROBLEM_JSON)
    assert problem["type"] == f"urn:sipmask:problem:{kind}"
    assert problem["parameter"] == parameter


@with_api
async def test_closed_session_stays_readable(
    client: Any, store: SessionStore, clock: Any
) -> None:
    resp = await client.post("/v1/sessions", json=session_body())
    sid = (await resp.json())["id"]
    clock.advance(30)
    await client.delete(f"/v1/sessions/{sid}")
    resp = await client.get(f"/v1/sessions/{sid}")
    session = await resp.json()
    assert session["status"] == "closed" and session["closed_at"] == clock.now


@with_api
async def test_expired_session_closed_by_housekeeping(
    client: Any, store: SessionStore, clock: Any
) -> None:
    resp = await client.post("/v1/sessions", json=session_body(ttl=60))
    sid = (await resp.json())["id"]
    clock.advance(61)
    assert await store.expire() == 1
    resp = await client.get(f"/v1/sessions/{sid}")
    session = await resp.json()
    assert session["status"] == "closed" and session["closed_reason"] == "expired"
    resp = await client.get("/v1/sessions", params={"participant": ALICE})
    assert (await resp.json())["sessions"] == []


@with_api
async def test_pinned_number_taken(client: Any, store: SessionStore, clock: Any) -> None:
    resp = await client.post("/v1/sessions", json=_participant(0, proxy_identifier=V[2]))
    assert resp.status == 201
    resp = await client.post(
        "/v1/sessions",
        json={"participants": [{"identifier": ALICE, "proxy_identifier": V[2]},
                               {"identifier": CAROL}]},
    )
    assert resp.status == 409
    assert (await resp.json())["type"] == "urn:sipmask:problem:number-unavailable"
    assert len(await store.list_sessions()) == 1
