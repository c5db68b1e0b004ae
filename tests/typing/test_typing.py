"""The `.pyi` stub is the contract the rest of sipmask type-checks against: check it against
the compiled module (mypy's stubtest) and against typed use (mypy --strict)."""

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mypy")
HERE = Path(__file__).parent


def run_mypy(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True,
                          timeout=300, cwd=HERE.parent.parent)


def test_stub_matches_the_compiled_core():
    done = run_mypy("mypy.stubtest", "sipmask._core",
                    "--allowlist", str(HERE / "stubtest-allowlist.txt"))
    assert done.returncode == 0, done.stdout + done.stderr


def test_typed_use_of_the_public_api_checks_strict():
    done = run_mypy("mypy", "--strict", "--no-incremental", str(HERE / "usage.py"))
    assert done.returncode == 0, done.stdout + done.stderr
