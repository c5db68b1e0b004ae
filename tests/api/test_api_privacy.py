"""A number planted in every written form, wherever a request carries input (path, query
string, body values, unknown field names), never shows in the access log or in an API error,
in any form (issue 11, item 4): the log writes route templates and query parameter names,
errors name the field and the rule."""

from __future__ import annotations

import json
import logging
import re
from typing import Any
from urllib.parse import quote, unquote

import pytest
from api_helpers import ALICE, BOB, V, serve, session_body
from store_helpers import FakeClock

from sipmask.api import MaskingAccessLogger
from sipmask.store import MemoryStore

#: The planted number, +91 98765 43210 (an Indian mobile), in the forms people, carriers and
#: attackers write it.
FORMS = [
    "+919876543210",
    "+91-98765-43210",
    "+91 98765 43210",
    "+91.98765.43210",
    "+91(98765)43210",
    "%2B919876543210",
    "%2B91%2098765%2043210",
    "tel:+91-98765-43210",
    "919876543210",
    "09876543210",
    "9876543210",
    "98765-43210",
    "+91-98765-432101",  # one digit too many: still the number
]
# Any run of 6 of its digits, after percent-decoding and dropping every non-digit.
_RUNS = {"9876543210"[i : i + 6] for i in range(5)}


def leaks(text: str) -> bool:
    digits = re.sub(r"[^0-9]", "", unquote(unquote(text)))
    return any(run in digits for run in _RUNS)


def test_leak_detector_sees_every_form() -> None:
    for form in FORMS:
        assert leaks(f"x {form} y"), form
        assert leaks(json.dumps({"detail": form})), form
    assert not leaks('127.0.0.1 "GET /v1/sessions/{id}?participant" 404 0.001s')


def _requests() -> list[tuple[str, str, Any]]:
    """(method, URL, JSON body or None) planting each form everywhere input goes."""
    out: list[tuple[str, str, Any]] = []
    for form in FORMS:
        q = quote(form, safe="%")
        out += [
            ("GET", f"/v1/sessions/{q}", None),
            ("GET", f"/v1/sessions/default.{q}", None),
            ("DELETE", f"/v1/sessions/default.{q}", None),
            ("GET", f"/v1/sessions/default.{q}/interactions", None),
            ("GET", f"/v1/pools/{q}", None),
            ("DELETE", f"/v1/pools/{q}", None),
            ("PUT", f"/v1/pools/{q}", {"numbers": [form]}),
            ("GET", f"/v1/{q}", None),
            ("GET", f"/v1/sessions?participant={q}", None),
            ("GET", f"/v1/sessions?participant={form}", None),  # not encoded at all
            ("GET", f"/v1/sessions?pool={q}", None),
            ("GET", f"/v1/sessions?{q}=1", None),
            ("GET", f"/v1/pools?{q}", None),
            ("POST", "/v1/sessions", session_body(ALICE, form + "x")),
            ("POST", "/v1/sessions", session_body("sip:" + form + ";maddr=1.2.3.4@h", BOB)),
            ("POST", "/v1/sessions", {**session_body(), "pool": form}),
            ("POST", "/v1/sessions", {**session_body(), "expiry": form}),
            ("POST", "/v1/sessions", {**session_body(), "ttl": form}),
            ("POST", "/v1/sessions", {**session_body(), form: 1}),
            ("POST", "/v1/sessions", {**session_body(), f"x{form}": 1}),
            ("POST", "/v1/sessions", {
                "participants": [{"identifier": ALICE, form: 1}, {"identifier": BOB}]
            }),
            ("POST", "/v1/sessions", {
                "participants": [{"identifier": ALICE, "proxy_identifier": form},
                                 {"identifier": BOB}]
            }),
            ("POST", "/v1/sessions", {
                "participants": [{"identifier": ALICE, "route": f"sip:{form}@h?X=1"},
                                 {"identifier": BOB}]
            }),
            ("POST", "/v1/sessions", {
                "participants": [{"identifier": ALICE}, {"identifier": BOB}],
                "metadata": form,
            }),
            ("PUT", "/v1/pools/api", {"numbers": [V[5], form]}),
            ("PUT", "/v1/pools/api", {"numbers": [V[5]], "reserved": [form + "0"]}),
            ("PUT", "/v1/pools/api", {"numbers": [V[5]], f"{form}": []}),
            ("PUT", "/v1/pools/api", {"numbers": form}),
        ]
    # A real participant that then may not become a pool number.
    out.append(("PUT", "/v1/pools/other", {"numbers": ["+919876543210"]}))
    return out


@pytest.mark.parametrize("raw_json", [False, True], ids=["json", "text"])
def test_planted_number_never_in_access_log_or_errors(
    caplog: pytest.LogCaptureFixture, raw_json: bool
) -> None:
    import asyncio

    async def main() -> list[tuple[str, str, int, str]]:
        clock = FakeClock()
        store = MemoryStore(clock=clock)
        await store.set_pool("default", V[:4])
        answers = []
        async with serve(store, clock, access_log_class=MaskingAccessLogger) as client:
            resp = await client.post("/v1/sessions", json=session_body("+919876543210", BOB))
            assert resp.status == 201
            for method, url, body in _requests():
                kwargs: dict[str, Any] = {}
                if body is not None:
                    if raw_json:
                        kwargs = {"data": json.dumps(body),
                                  "headers": {"Content-Type": "application/json"}}
                    else:
                        kwargs = {"json": body}
                resp = await client.request(method, url, **kwargs)
                answers.append((method, url, resp.status, await resp.text()))
        await store.close()
        return answers

    with caplog.at_level(logging.INFO, logger="aiohttp.access"):
        answers = asyncio.run(main())
    access = [r.getMessage() for r in caplog.records if r.name == "aiohttp.access"]
    assert len(access) == len(answers) + 1
    for line in access:
        assert not leaks(line), line
    errors = [a for a in answers if a[2] >= 400]
    # Answers that succeed return the caller's own data (a list of sessions, a pool named
    # by digits); every planted value in a body is refused.
    planted_bodies = [a for a in answers if a[1] in ("/v1/sessions", "/v1/pools/api")]
    assert planted_bodies and all(a[2] in (409, 422) for a in planted_bodies)
    assert answers[-1][2] == 409  # a participant's number is no pool number
    assert len(errors) > len(answers) // 2
    for method, url, status, text in errors:
        assert not leaks(text), (method, url, status, text)
        problem = json.loads(text)
        assert problem["status"] == status
