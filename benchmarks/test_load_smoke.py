"""Smoke test of the masked-call load harness (`python -m benchmarks.load --smoke`): one short,
slow step per system (SIPp direct, sipmask on the memory store and, with redis-server, on
Redis) and a few held calls, so the harness never rots. It checks that the harness ran and
reported what it measured (calls answered, the JSON keys, the tables), never how fast."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    shutil.which("sipp") is None, reason="sipp not on PATH (apt-get install sip-tester)"
)

STEP_KEYS = {
    "system", "phase", "offered_rate", "calls", "successful", "failed", "retransmissions",
    "retrans_pct", "setup_p50_ms", "setup_p99_ms", "system_cpu_pct", "cpu_ms_per_call",
    "system_rss_mib", "sipp_cpu_pct", "clean", "verdict",
}  # fmt: skip


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench-load") / "load.json"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.load", "--smoke", "--no-chart", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,  # a bound so a broken harness fails instead of hanging
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return json.loads(out.read_text()), result.stdout, out


def test_report_keys(report):
    data, _, _ = report
    for key in ("date", "machine", "pinning", "systems", "max", "ratios", "hold", "skipped"):
        assert key in data, key
    assert set(data["systems"]) >= {"direct", "sipmask-memory"}, data["skipped"]


@pytest.mark.parametrize("system", ["direct", "sipmask-memory", "sipmask-redis"])
def test_calls_went_through(report, system):
    data, _, _ = report
    if system == "sipmask-redis" and shutil.which("redis-server") is None:
        pytest.skip("redis-server not on PATH")
    entry = data["systems"][system]
    (step,) = entry["steps"]
    assert STEP_KEYS <= set(step), STEP_KEYS - set(step)
    assert step["successful"] > 0, step
    assert data["max"][system]["max_cps"] >= 0
    if system.startswith("sipmask"):
        assert entry["exit"] == 0, entry.get("log_tail")
        assert not entry["traceback"], entry.get("log_tail")


def test_held_calls_measured(report):
    data, _, _ = report
    (hold,) = data["hold"]
    assert hold["system"] == "sipmask-memory"
    assert "error" not in hold, hold
    assert hold["calls_up"] > 0, hold
    assert "kib_per_call" in hold


def test_markdown_written_and_printed(report):
    _, stdout, out = report
    table = out.with_suffix(".md").read_text()
    assert "| system | max clean calls/s |" in table
    assert "| system | max clean calls/s |" in stdout
    assert "[search] sipmask-memory" in stdout  # the progress line
