"""Logs never print a planted number, in any written form, and always print ids whole
(issue 11: mask by field type, not by a regex over the whole line)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import pytest
from b2bua_helpers import CALLER, answered_call, in_dialog, rig
from test_leak_e2e import written_forms

from sipmask.config import LoggingConfig
from sipmask.privacy import LogId, mask_numbers_in, mask_structure, mask_value, masked_record
from sipmask.server import configure_logging

NATIONAL = CALLER[3:]
# Forms a log line may carry a number in (BCD and base64 are not recognisable as numbers in
# free text; they never reach a log line as a number-bearing field either).
LOG_FORMS = written_forms(CALLER)[:-2]
CALL_IDS = ["3f1234567ab0", "a98765432101", "0123456789abcdef0123456789abcdef",
            "default.98765432101234567890Ab", "12345678901234ab"]


def digits_of(text: str) -> str:
    return "".join(c for c in text.replace("%3", "") if c.isdigit())


@pytest.mark.parametrize("form", LOG_FORMS)
def test_every_written_form_is_masked_in_free_text(form: str) -> None:
    masked = mask_numbers_in(f"GET /v1/sessions?participant=tel%3A{form}&x={form}; {form}.")
    assert NATIONAL not in digits_of(masked)
    assert NATIONAL[:6] not in digits_of(masked)


@pytest.mark.parametrize("text", ["10.0.0.1:5060", "192.168.100.200", "took 1800 s",
                                  "status 486, 12 call(s)", "+91 123"])
def test_what_is_not_a_number_is_left_alone(text: str) -> None:
    assert mask_numbers_in(text) == text


@pytest.mark.parametrize("call_id", CALL_IDS)
def test_ids_are_never_masked(call_id: str) -> None:
    assert mask_value(call_id) == call_id
    assert mask_value(LogId("9876543210")) == "9876543210"
    assert mask_value(5060) == 5060
    assert mask_value("919876543210") != "919876543210"  # all decimal: may be a number


@pytest.fixture
def log_stream(request: pytest.FixtureRequest) -> Iterator[io.StringIO]:
    stream = io.StringIO()
    fmt, show = request.param
    configure_logging(LoggingConfig(format=fmt, show_numbers=show), stream)
    yield stream
    logging.getLogger().handlers.clear()


@pytest.mark.parametrize("log_stream", [("json", False), ("text", False)], indirect=True)
@pytest.mark.parametrize("call_id", CALL_IDS)
def test_log_lines_mask_numbers_and_keep_call_ids(log_stream: io.StringIO, call_id: str
                                                  ) -> None:
    log = logging.getLogger("sipmask.test")
    for form in LOG_FORMS:
        log.warning("call %s: lookup failed for %s: %s", call_id, form,
                    ValueError(f"not a valid E.164 number: '{form}'"),
                    extra={"fields": {"call_id": call_id, "caller": form, "duration": 1.5}})
    try:
        raise RuntimeError(f"boom {CALLER}")
    except RuntimeError:
        log.exception("call %s failed", call_id)
    out = log_stream.getvalue()
    for line in out.splitlines():
        assert NATIONAL[:6] not in digits_of(line.replace(call_id, "")), line
    assert out.count(call_id) >= len(LOG_FORMS) + 1  # whole, in every message
    if out.startswith("{"):
        assert out.count(call_id) >= 2 * len(LOG_FORMS) + 1  # and in every call_id field
        entries = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        assert all(e["call_id"] == call_id for e in entries[:-1])
        assert entries[0]["duration"] == 1.5


@pytest.mark.parametrize("log_stream", [("json", True)], indirect=True)
def test_operators_may_opt_in_to_full_numbers(log_stream: io.StringIO) -> None:
    logging.getLogger("sipmask.test").info("caller %s", CALLER)
    assert CALLER in log_stream.getvalue()


def test_masked_record_survives_odd_records() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "%(n)s called", None, None)
    record.args = {"n": CALLER}
    assert CALLER not in masked_record(record).getMessage()
    bad = logging.LogRecord("x", logging.INFO, __file__, 1, "%d %s", (CALLER,), None)
    assert NATIONAL not in masked_record(bad).getMessage()


@pytest.mark.parametrize("log_stream", [("json", False)], indirect=True)
def test_a_call_with_planted_numbers_logs_none_and_its_call_id_whole(log_stream: io.StringIO
                                                                     ) -> None:
    async def main() -> None:
        async with rig() as r:
            invite, ok, _, _ = await answered_call(r, invite_headers=[
                ("Reason", f"SIP;cause={NATIONAL[:5]}"), ("X-Caller", CALLER)])
            in_dialog(r.caller, invite, ok, "BYE", 2, r.sipmask,
                      headers=[("Reason", f"Q.850;cause={NATIONAL[5:]}")])
            b_bye = await r.callee.request("BYE")
            r.callee.answer(b_bye, 200)
            for _ in range(100):  # the call record line comes when the call is forgotten
                if "call.ended" in log_stream.getvalue():
                    break
                await asyncio.sleep(0.02)

    asyncio.run(main())
    out = log_stream.getvalue()
    ended = [json.loads(line) for line in out.splitlines() if "call.ended" in line]
    assert ended, out
    call_id = ended[0]["call_id"]
    assert call_id in ended[0]["message"]  # printed whole, so the line joins to the record
    assert NATIONAL[:6] not in digits_of(out.replace(call_id, ""))


def test_documents_are_masked_by_field() -> None:
    record = {"id": "98765432101", "session_id": "default.123", "caller": CALLER,
              "participants": [{"number": f"tel:{CALLER}", "caller_id": CALLER}],
              "duration": 12.5, "cause": f"486 from +91-{NATIONAL[:5]}-{NATIONAL[5:]}"}
    masked = mask_structure(record)
    assert isinstance(masked, dict)
    assert masked["id"] == "98765432101" and masked["session_id"] == "default.123"
    assert masked["participants"][0]["caller_id"] != CALLER  # a number, not an id
    assert masked["duration"] == 12.5
    text = json.dumps({k: v for k, v in masked.items() if k != "participants"})
    assert NATIONAL[:6] not in digits_of(text.replace("98765432101", ""))
    assert NATIONAL not in masked["participants"][0]["number"]
