"""SIPp (Debian package `sip-tester`) against the test responder, as a real peer would talk to
sipmask: OPTIONS keep-alives, a basic INVITE/ACK/BYE call, the same call with 10 % of the
packets lost both ways (retransmissions of INVITE and BYE by SIPp, of the 200 by the
responder until the ACK), and the call over one TCP connection. The responder runs as its own
process (`python -m sipmask.transport.responder`) on 127.0.0.1 and a port of its choosing."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

SIPP = shutil.which("sipp")
SCENARIOS = Path(__file__).parent.parent / "e2e" / "sipp"
CALLS = 20

pytestmark = pytest.mark.skipif(
    SIPP is None, reason="sipp not on PATH (apt-get install sip-tester)"
)


@contextmanager
def responder(listen: str) -> Iterator[int]:
    """Start the responder on `listen` (port 0) and yield the port it bound."""
    process = subprocess.Popen(
        [sys.executable, "-m", "sipmask.transport.responder", "--listen", listen],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        port = None
        for line in process.stdout:
            words = line.split()
            if words and words[0] == "listening":
                port = int(words[3])
            if words == ["ready"]:
                break
        assert port is not None, "the responder did not start"
        yield port
    finally:
        process.terminate()
        _, errors = process.communicate(timeout=10)
        # The responder must stop cleanly and never log an error (a failed callback, a
        # traceback from the loop).
        assert process.returncode == 0, errors
        assert "Traceback" not in errors and "ERROR" not in errors, errors


def run_sipp(tmp_path: Path, port: int, scenario: str, *options: str) -> dict[str, str]:
    stats = tmp_path / "stats.csv"
    errors = tmp_path / "errors.log"
    assert SIPP is not None
    command = [
        SIPP,
        f"127.0.0.1:{port}",
        "-sf",
        str(SCENARIOS / scenario),
        "-i",
        "127.0.0.1",
        "-m",
        str(CALLS),
        "-r",
        "10",
        "-timeout",
        "20s",
        "-timeout_error",
        "-nostdin",
        "-trace_stat",
        "-stf",
        str(stats),
        "-trace_err",
        "-error_file",
        str(errors),
        *options,
    ]
    result = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
    )
    log = errors.read_text(errors="replace")[-4000:] if errors.exists() else ""
    assert result.returncode == 0, f"sipp exited {result.returncode}\n{result.stderr}\n{log}"
    with stats.open(newline="") as handle:
        rows = list(csv.reader(handle, delimiter=";"))
    return dict(zip(rows[0], rows[-1], strict=False))


SIPP_CASES = [
    pytest.param("udp", "options.xml", (), id="udp-options"),
    pytest.param("udp", "invite_uac.xml", (), id="udp-invite"),
    pytest.param("udp", "invite_uac.xml", ("-lost", "10"), id="udp-invite-lost10"),
    pytest.param("tcp", "options.xml", ("-t", "t1"), id="tcp-options"),
    pytest.param("tcp", "invite_uac.xml", ("-t", "t1"), id="tcp-invite"),
]


@pytest.mark.parametrize(("transport", "scenario", "options"), SIPP_CASES)
def test_sipp_scenario(tmp_path, transport, scenario, options):
    with responder(f"{transport}:127.0.0.1:0") as port:
        stats = run_sipp(tmp_path, port, scenario, *options)
    assert int(stats["SuccessfulCall(C)"]) == CALLS
    assert int(stats["FailedCall(C)"]) == 0
