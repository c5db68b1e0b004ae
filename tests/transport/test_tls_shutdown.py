"""SIGTERM with an idle TLS connection open (issue 13, defect 5): `sipmask run` must exit
once the drain is over, not wait for the peer's TLS close_notify (30 s in asyncio). The
process is started as tests/e2e/test_run.py starts it; a blocking TLS client in a thread
completes its handshake and then never reads."""

from __future__ import annotations

import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

START_BOUND = 15.0
STOP_BOUND = 10.0  # safety bound: below asyncio's 30 s TLS shutdown wait, above grace + 2 s

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl command")


def test_sigterm_with_an_idle_tls_connection_exits_after_the_drain(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext",
         "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    (tmp_path / "sipmask.toml").write_text(f"""\
[sip]
listen = ["udp:127.0.0.1:0", "tls:127.0.0.1:0"]
tls_cert = "{cert}"
tls_key = "{key}"
[api]
listen = "127.0.0.1:0"
tokens = ["t"]
[metrics]
enabled = false
[store]
backend = "memory"
data_dir = ""
[[trunks]]
name = "carrier"
inbound = ["127.0.0.1/32"]
[process]
drain_grace = 0.5
""")
    process = subprocess.Popen(
        [sys.executable, "-m", "sipmask", "run", "-c", str(tmp_path / "sipmask.toml")],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    ports: dict[str, int] = {}
    release = threading.Event()
    try:
        deadline = time.monotonic() + START_BOUND
        for line in process.stdout:
            words = line.split()
            if len(words) == 4 and words[0] == "listening":
                ports[words[1]] = int(words[3])
            if words == ["ready"] or time.monotonic() > deadline:
                break
        assert "tls" in ports, ports
        handshaken = threading.Event()

        def mute_peer() -> None:
            context = ssl.create_default_context(cafile=str(cert))
            with socket.create_connection(("127.0.0.1", ports["tls"])) as raw:
                with context.wrap_socket(raw, server_hostname="127.0.0.1"):
                    handshaken.set()
                    release.wait(60)  # never reads: never answers the close_notify

        thread = threading.Thread(target=mute_peer, daemon=True)
        thread.start()
        assert handshaken.wait(START_BOUND)
        time.sleep(0.2)  # let the server finish its side of the handshake
        began = time.monotonic()
        process.send_signal(signal.SIGTERM)
        try:
            status = process.wait(timeout=STOP_BOUND)
        except subprocess.TimeoutExpired:
            pytest.fail("sipmask run did not exit on SIGTERM with an idle TLS peer")
        took = time.monotonic() - began
        assert status == 0
        print(f"exited {took:.2f} s after SIGTERM (drain_grace 0.5 s)")  # a figure, not a test
    finally:
        release.set()
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
