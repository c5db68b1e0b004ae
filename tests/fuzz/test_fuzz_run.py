"""A bounded fuzz of a running `sipmask run` (issue 13): fuzzed datagrams over UDP from the
trunk's address and from an outside one (reject mode), fuzzed byte streams over TCP, then a
liveness call through the process (scripted caller and callee on UDP) and /metrics showing
no transaction in progress and no call left. A few seconds in CI; `SIPMASK_FUZZ_SCALE=N`
sends N times more. The process is started as tests/e2e/test_run.py starts it."""

from __future__ import annotations

import json
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from corpus import SCALE, SDP, generated, mutate, template

import sipmask

START_BOUND = 15.0
SETTLE_BOUND = 30.0
RECV_BOUND = 3.0  # safety bounds, not timings
TOKEN = "fuzz-token"
CALLER, CALLEE = "+919876543210", "+919812345678"
POOL = ("+918000000001", "+918000000002")


def config(callee_port: int) -> str:
    return f"""\
[sip]
listen = ["udp:127.0.0.1:0", "tcp:127.0.0.1:0"]
unknown_source = "reject"
max_transactions = 200
[sip.timers]
t1 = 0.05
t2 = 0.4
t4 = 0.5
[api]
listen = "127.0.0.1:0"
tokens = ["{TOKEN}"]
[metrics]
listen = "127.0.0.1:0"
[store]
backend = "memory"
data_dir = ""
[[pools]]
name = "default"
numbers = {json.dumps(list(POOL))}
[[trunks]]
name = "carrier"
inbound = ["127.0.0.1/32"]
outbound = ["udp:127.0.0.1:{callee_port}"]
[trunks.number_rules]
country_code = "91"
[logging]
level = "warning"
"""


class Running:
    def __init__(self, directory: Path, text: str) -> None:
        path = directory / "sipmask.toml"
        path.write_text(text)
        self.stderr = directory / "stderr.log"
        with self.stderr.open("w") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "sipmask", "run", "-c", str(path)], cwd=directory,
                stdout=subprocess.PIPE, stderr=err, text=True)
        self.ports: dict[str, int] = {}
        ready = threading.Event()
        self._reader = threading.Thread(target=self._read, args=(ready,), daemon=True)
        self._reader.start()
        if not ready.wait(START_BOUND):
            self.process.kill()
            pytest.fail(f"not ready: {self.stderr.read_text()}")

    def _read(self, ready: threading.Event) -> None:
        assert self.process.stdout is not None
        with self.process.stdout:
            for line in self.process.stdout:
                words = line.split()
                if len(words) == 4 and words[0] == "listening":
                    self.ports[words[1]] = int(words[3])
                if words == ["ready"]:
                    ready.set()

    def metric(self, name: str) -> float:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ports['metrics']}/metrics",
                                    timeout=RECV_BOUND) as answer:
            text = answer.read().decode()
        found = re.search(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M)
        assert found, name
        return float(found.group(1))

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        status = self.process.wait(timeout=START_BOUND)
        self._reader.join(START_BOUND)  # it closes stdout at EOF
        return status


@pytest.fixture
def callee() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(RECV_BOUND)
    yield sock
    sock.close()


def udp_socket(host: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    sock.settimeout(RECV_BOUND)
    return sock


def answer_to(request: sipmask.Request, status: int, port: int, body: bytes = b"") -> bytes:
    from sipmask.sip.responses import make_response
    fields = [("Contact", f"<sip:callee@127.0.0.1:{port}>")]
    if body:
        fields.append(("Content-Type", "application/sdp"))
    return bytes(make_response(request, status, to_tag="callee1", headers=fields, body=body))


def refuse_invites(sock: socket.socket, stop: threading.Event) -> None:
    """The callee during the fuzz: 486 to every INVITE, ACKs and the rest absorbed."""
    sock.settimeout(0.1)
    while not stop.is_set():
        try:
            data, addr = sock.recvfrom(65535)
        except TimeoutError:
            continue
        message = sipmask.parse(data)
        if isinstance(message, sipmask.Request) and message.method == "INVITE":
            sock.sendto(answer_to(message, 486, sock.getsockname()[1]), addr)


def liveness_call(run: Running, callee: socket.socket, virtual: str) -> None:
    """CALLER dials its virtual number; the callee answers 200; ACK; BYE; 200."""
    caller = udp_socket("127.0.0.1")
    try:
        port, there = caller.getsockname()[1], ("127.0.0.1", run.ports["udp"])
        invite = template("INVITE", port=port, user=virtual, branch="z9hG4bKlive1",
                          call_id="liveness", body=SDP)
        invite = invite.replace(b"+919876543210", CALLER.encode())
        caller.sendto(invite, there)
        callee.settimeout(RECV_BOUND)
        while True:
            data, addr = callee.recvfrom(65535)
            b_invite = sipmask.parse(data)
            if isinstance(b_invite, sipmask.Request) and b_invite.method == "INVITE":
                break
        callee.sendto(answer_to(b_invite, 200, callee.getsockname()[1], SDP), addr)
        while True:
            ok = sipmask.parse(caller.recvfrom(65535)[0])
            if isinstance(ok, sipmask.Response) and ok.status >= 200:
                break
        assert ok.status == 200, ok.status
        to = ok.header("to") or ""
        for method, branch in (("ACK", "z9hG4bKlive2"), ("BYE", "z9hG4bKlive3")):
            request = template(method, port=port, user=virtual, branch=branch,
                               call_id="liveness").replace(
                b"+919876543210", CALLER.encode()).replace(
                f"To: <sip:{virtual}@127.0.0.1>".encode(), f"To: {to}".encode())
            request = request.replace(f"CSeq: 1 {method}".encode(),
                                      f"CSeq: {1 if method == 'ACK' else 2} {method}".encode())
            caller.sendto(request, there)
        while True:  # the callee gets the BYE and answers it; the caller its 200
            data, addr = callee.recvfrom(65535)
            bye = sipmask.parse(data)
            if isinstance(bye, sipmask.Request) and bye.method == "BYE":
                callee.sendto(answer_to(bye, 200, callee.getsockname()[1]), addr)
                break
        while True:
            done = sipmask.parse(caller.recvfrom(65535)[0])
            if isinstance(done, sipmask.Response) and done.cseq and done.cseq.method == "BYE":
                break
        assert done.status == 200
    finally:
        caller.close()


def test_fuzzed_udp_and_tcp_then_a_call_completes(tmp_path: Path, callee: socket.socket) -> None:
    run = Running(tmp_path, config(callee.getsockname()[1]))
    stop = threading.Event()
    refuser = threading.Thread(target=refuse_invites, args=(callee, stop), daemon=True)
    try:
        body = json.dumps({"participants": [{"identifier": CALLER},
                                            {"identifier": CALLEE}]}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{run.ports['api']}/v1/sessions", data=body, method="POST",
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=RECV_BOUND) as answer:
            session = json.loads(answer.read())
        virtual = session["participants"][0]["proxy_identifier"]
        refuser.start()
        rng = random.Random(13)
        trunk, outsider = udp_socket("127.0.0.1"), udp_socket("127.0.0.2")
        there = ("127.0.0.1", run.ports["udp"])
        try:
            for n in range(1_000 * SCALE):
                sock = outsider if n % 5 == 0 else trunk
                user = virtual if rng.random() < 0.3 else "+918999999999"
                sock.sendto(generated(rng, port=sock.getsockname()[1], user=user), there)
                if n % 50 == 0:
                    time.sleep(0.005)  # a fuzz, not a flood: the kernel buffer keeps up
        finally:
            trunk.close()
            outsider.close()
        for n in range(50 * SCALE):  # TCP: fuzzed streams, some cut mid-message
            with socket.create_connection(("127.0.0.1", run.ports["tcp"]), RECV_BOUND) as tcp:
                data = b"".join(mutate(generated(rng), rng) for _ in range(rng.randrange(1, 4)))
                try:
                    tcp.sendall(data)
                except OSError:
                    pass  # closed on us: what a bad stream deserves
        deadline = time.monotonic() + SETTLE_BOUND
        while (run.metric("sipmask_sip_transactions_in_progress")
               or run.metric("sipmask_calls_active")):
            assert time.monotonic() < deadline, "transactions or calls left after the fuzz"
            time.sleep(0.1)
        stop.set()
        refuser.join(RECV_BOUND)
        figures = {name: run.metric(name) for name in (
            "sipmask_udp_datagrams_received_total", "sipmask_sip_parse_errors_total",
            "sipmask_sip_dropped_total", "sipmask_calls_started_total",
            "sipmask_sip_tu_errors_total", "sipmask_tcp_connections_refused_total")}
        print(f"after the fuzz: {figures}")  # figures for the record, not assertions
        liveness_call(run, callee, virtual)
        assert run.metric("sipmask_sip_internal_errors_total") == 0
    finally:
        stop.set()
        status = run.stop()
    log = (tmp_path / "stderr.log").read_text()
    assert status == 0, log[-3000:]
    assert "Traceback" not in log, log[-3000:]
