"""`sipmask check-config FILE`: exit 0 and one summary line, or every error and exit 2."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sipmask import cli

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "config" / "sipmask.toml"

BROKEN = """\
[sip]
listen = ["udp:127.0.0.1:5060", "sctp:127.0.0.1:5060"]
[[trunks]]
name = "carrier-a"
inbound = ["127.0.0.1/32"]
[[trunks]]
name = "carrier-b"
inbound = ["not-a-net"]
outbound = ["udp:127.0.0.1:5080"]
colour = "blue"
"""
BROKEN_PATHS = ["sip.listen[1]", "trunks[1].colour", "trunks[1].inbound[0]"]


@pytest.fixture(autouse=True)
def no_secret_env(monkeypatch):
    monkeypatch.delenv("SIPMASK_API_TOKEN", raising=False)
    monkeypatch.delenv("SIPMASK_REDIS_URL", raising=False)


def test_valid_file_exits_0_with_one_summary_line(capsys):
    assert cli.main(["check-config", str(SAMPLE)]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"{SAMPLE}: OK")
    assert "1 trunk(s)" in lines[0] and "1 pool(s)" in lines[0]
    assert captured.err == ""


def test_invalid_file_prints_every_error_with_its_path_and_exits_2(tmp_path, capsys):
    path = tmp_path / "broken.toml"
    path.write_text(BROKEN)
    assert cli.main(["check-config", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert lines[0] == f"{path}: 3 error(s)"
    assert sorted(line.strip().split(":", 1)[0] for line in lines[1:]) == BROKEN_PATHS
    assert "trunks[1].inbound[0]: not an IP network" in captured.err


def test_missing_file_exits_2(tmp_path, capsys):
    path = tmp_path / "absent.toml"
    assert cli.main(["check-config", str(path)]) == 2
    assert f"{path}: cannot read" in capsys.readouterr().err


def test_bad_toml_syntax_exits_2(tmp_path, capsys):
    path = tmp_path / "syntax.toml"
    path.write_text("[sip\n")
    assert cli.main(["check-config", str(path)]) == 2
    assert "not valid TOML" in capsys.readouterr().err


def test_environment_secret_is_checked_too(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SIPMASK_REDIS_URL", "mysql://root:pw@db")
    assert cli.main(["check-config", str(SAMPLE)]) == 2
    err = capsys.readouterr().err
    assert "SIPMASK_REDIS_URL: must start with redis://" in err
    assert "pw@db" not in err


def run_module(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIPMASK_")}
    return subprocess.run([sys.executable, "-m", "sipmask", *args], capture_output=True,
                          text=True, timeout=120, env=env, cwd=ROOT)


def test_module_check_config_valid_exits_0():
    done = run_module("check-config", str(SAMPLE))
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 1
    assert "OK" in done.stdout


def test_module_check_config_invalid_exits_2(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text(BROKEN)
    done = run_module("check-config", str(path))
    assert done.returncode == 2
    for key in BROKEN_PATHS:
        assert f"  {key}: " in done.stderr, done.stderr


def test_check_config_needs_a_file(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["check-config"])
    assert info.value.code == 2
