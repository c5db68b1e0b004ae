"""Smoke test of the SIP load benchmark (`benchmarks/sip/load.py --smoke`): one short, slow step
per SIPp case and a few thousand datagrams per raw server, so the harness keeps working. It
checks what was measured (every call answered, every datagram echoed), never how fast. Without
`sipp` the SIPp cases skip and the raw datagram runs are still checked."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

LOAD = Path(__file__).parent / "sip" / "load.py"

needs_sipp = pytest.mark.skipif(
    shutil.which("sipp") is None, reason="sipp not on PATH (apt-get install sip-tester)"
)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench-sip") / "bench-sip.json"
    result = subprocess.run(
        [sys.executable, str(LOAD), "--smoke", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return json.loads(out.read_text()), result.stdout


@needs_sipp
@pytest.mark.parametrize("case", ["options-udp", "invite-udp", "options-tcp"])
def test_sipp_case_answered(report, case):
    data, _ = report
    (ladder,) = [lad for lad in data["ladders"] if lad["case"] == case]
    (step,) = ladder["steps"]
    assert step["sipp_exit"] == 0, step
    assert step["successful"] == step["calls"] > 0, step
    assert step["failed"] == 0, step
    assert ladder["server_exit"] == 0, ladder["server_stderr_tail"]
    assert "Traceback" not in ladder["server_stderr_tail"], ladder["server_stderr_tail"]
    assert ladder["server_gc_pauses"] is not None  # the server reported on its way out


@pytest.mark.parametrize("server", ["echo", "listener", "stack"])
def test_raw_server_answered(report, server):
    data, _ = report
    (row,) = [r for r in data["raw"] if r["server"] == server]
    assert row["sent"] == 2000, row
    assert row["received"] + row["lost"] == row["sent"], row
    assert row["received"] > 0, row


def test_markdown_table_printed(report):
    data, stdout = report
    assert "| raw server | best datagrams/s |" in stdout
    if shutil.which("sipp") is not None:
        assert "| case | offered /s |" in stdout
    assert data["loop"] in ("uvloop", "asyncio")
