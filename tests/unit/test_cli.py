"""The command line and the process runtime."""

import asyncio
import io
import subprocess
import sys
from pathlib import Path

import pytest

from sipmask import cli, samples
from sipmask.privacy import mask_number, mask_numbers_in
from sipmask.transport import runtime

VECTORS = Path(__file__).parent.parent / "vectors"


def test_selfcheck_passes_and_prints_no_real_number():
    out = io.StringIO()
    assert cli.selfcheck(out) == 0
    text = out.getvalue()
    assert "real number absent" in text
    assert samples.REAL_CALLER not in text
    assert mask_number(samples.REAL_CALLER) in text


def test_selfcheck_command_runs_as_a_module():
    done = subprocess.run([sys.executable, "-m", "sipmask", "selfcheck"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "core self-check" in done.stdout
    assert samples.REAL_CALLER not in done.stdout


def test_parse_command_masks_numbers_unless_asked(tmp_path, capsys):
    path = tmp_path / "invite.sip"
    path.write_bytes(samples.INVITE)
    assert cli.main(["parse", str(path)]) == 0
    masked = capsys.readouterr().out
    assert '"method": "INVITE"' in masked
    assert "8045671234" not in masked and "+91******1234" in masked
    assert cli.main(["parse", str(path), "--show-numbers"]) == 0
    assert "+918045671234" in capsys.readouterr().out


def test_parse_command_reports_a_malformed_message(capsys):
    assert cli.main(["parse", str(VECTORS / "rfc4475" / "mismatch01.dat")]) == 1
    assert '"status_code": 400' in capsys.readouterr().out


def test_version(capsys):
    assert cli.main(["version"]) == 0
    assert capsys.readouterr().out.startswith("sipmask ")


@pytest.mark.parametrize(
    ("number", "masked"),
    [("+919876543210", "+91******3210"), ("+14155550123", "+14*****0123"), ("12345", "***45")],
)
def test_mask_number(number, masked):
    assert mask_number(number) == masked


def test_mask_numbers_in_text_keeps_short_digit_runs():
    assert mask_numbers_in("sip:+919876543210@h:5060;x=12") == "sip:+91******3210@h:5060;x=12"


def test_runtime_uses_uvloop_when_installed():
    pytest.importorskip("uvloop")
    assert runtime.loop_name() == "uvloop"


def test_runtime_falls_back_to_asyncio_without_uvloop(monkeypatch):
    monkeypatch.setitem(sys.modules, "uvloop", None)  # makes `import uvloop` fail
    assert runtime.loop_name() == "asyncio"

    async def answer():
        return type(asyncio.get_running_loop()).__module__

    assert runtime.run(answer()).startswith("asyncio")


def test_mask_party_hides_the_user_part() -> None:
    from sipmask.privacy import mask_party

    assert mask_party("+919876543210") == "+91******3210"
    assert mask_party("alice@pbx.example") == "a****@pbx.example"
    assert mask_party("+919876543210@gw.example") == "+91******3210@gw.example"
    assert mask_party("a@h") == "a*@h"


def test_json_log_lines_carry_call_fields_and_stay_masked() -> None:
    import io
    import json
    import logging

    from sipmask.config import LoggingConfig
    from sipmask.server import configure_logging

    stream = io.StringIO()
    configure_logging(LoggingConfig(format="json"), stream)
    logging.getLogger("sipmask.b2bua").info(
        "call %s completed: caller %s", "c0ffee", "+919876543210",
        extra={"fields": {"call_id": "c0ffee", "session_id": "default.abc", "outcome": "busy"}},
    )
    entry = json.loads(stream.getvalue().splitlines()[-1])
    assert entry["call_id"] == "c0ffee" and entry["session_id"] == "default.abc"
    assert entry["outcome"] == "busy"
    assert "9876543210" not in stream.getvalue()
    logging.getLogger().handlers.clear()
