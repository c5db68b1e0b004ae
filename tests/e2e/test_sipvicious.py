"""A scanner outside every trunk learns nothing (issue 5, trunks and access): sipvicious'
svmap (fingerprinting) and svwar (extension enumeration) run from 127.0.0.1 against a real
`sipmask run` whose only trunk accepts 127.0.0.2."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from test_run import config_text, start

SVMAP = shutil.which("sipvicious_svmap") or str(
    Path(__file__).resolve().parents[2] / ".venv" / "bin" / "sipvicious_svmap")
SVWAR = SVMAP.replace("svmap", "svwar")

pytestmark = pytest.mark.skipif(
    not Path(SVMAP).exists(), reason="sipvicious is not installed (pip install sipvicious)"
)


def scan(tool: str, port: int, *args: str) -> str:
    result = subprocess.run(
        [tool, "127.0.0.1", "-p", str(port), *args],
        capture_output=True, text=True, timeout=60, check=False,
    )
    return result.stdout + result.stderr


@pytest.mark.parametrize("mode", ["drop", "reject"])
def test_scanner_learns_nothing(tmp_path: Path, mode: str) -> None:
    sip_extra = f'unknown_source = "{mode}"'
    handle = start(tmp_path, config=config_text(inbound="127.0.0.2/32", sip_extra=sip_extra))
    try:
        port = handle.ports["udp"]
        fingerprint = scan(SVMAP, port)
        extensions = scan(SVWAR, port, "-e", "100-120")
    finally:
        assert handle.stop() == 0
    assert "sipmask" not in (fingerprint + extensions).lower()
    if mode == "drop":
        assert "found nothing" in fingerprint  # not even the existence of a SIP server
    else:
        assert "unknown" in fingerprint  # a 403 without Server or User-Agent
    assert "found nothing" in extensions  # no extension list either way
