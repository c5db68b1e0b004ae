"""`sipmask run` as an operator starts it: a real process (`python -m sipmask run -c FILE`) on
127.0.0.1 with ports of its choosing (port 0 in the config; it prints `listening <kind> <host>
<port>` per listener, then `ready`). Over real sockets: OPTIONS keep-alives, INVITE and MESSAGE
without a session refused with 404, the other methods' verdicts, the API, SIGTERM, bad
configurations, and the embedded default. No output may carry a real number in full."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import sipmask
from sipmask.config import parse_config
from sipmask.server import serve
from sipmask.store import MemoryStore

# Safety bounds so a broken test fails instead of hanging; never assertions on time.
START_BOUND = 15.0
STOP_BOUND = 10.0
RECV_BOUND = 3.0

TOKEN = "e2e-token"
CALLER = "+919876543210"  # real numbers: must never show in full in the process's output
CALLEE = "+919812345678"
POOL_NUMBERS = ("+918000000001", "+918000000002")
SIPP = shutil.which("sipp")
SCENARIOS = Path(__file__).parent / "sipp"

CONFIG = f"""\
[sip]
listen = ["udp:127.0.0.1:0", "tcp:127.0.0.1:0"]
{{sip_extra}}

[api]
listen = "127.0.0.1:0"
tokens = ["{TOKEN}"]

[metrics]
listen = "127.0.0.1:0"

[store]
backend = "memory"
data_dir = "data"

[[pools]]
name = "default"
numbers = {json.dumps(list(POOL_NUMBERS))}

[[trunks]]
name = "carrier-a"
inbound = ["{{inbound}}"]

[logging]
level = "info"
format = "{{log_format}}"
"""


def config_text(
    *, inbound: str = "127.0.0.1/32", sip_extra: str = "", log_format: str = "json"
) -> str:
    return CONFIG.format(inbound=inbound, sip_extra=sip_extra, log_format=log_format)


def clean_env() -> dict[str, str]:
    """The environment without the secret overrides (they would replace the file's)."""
    env = dict(os.environ)
    env.pop("SIPMASK_API_TOKEN", None)
    env.pop("SIPMASK_REDIS_URL", None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass
class Sipmask:
    """A running `sipmask run` process and what it printed."""

    process: subprocess.Popen[str]
    stderr_path: Path
    lines: queue.Queue[str | None] = field(default_factory=queue.Queue)
    stdout: list[str] = field(default_factory=list)
    ports: dict[str, int] = field(default_factory=dict)

    def _pump(self) -> None:
        assert self.process.stdout is not None
        with self.process.stdout:
            for line in self.process.stdout:
                self.lines.put(line)
        self.lines.put(None)

    def wait_ready(self) -> None:
        threading.Thread(target=self._pump, daemon=True).start()
        while True:
            try:
                line = self.lines.get(timeout=START_BOUND)
            except queue.Empty:
                pytest.fail(f"no 'ready' within the bound; stdout so far: {self.stdout}")
            if line is None:
                pytest.fail(
                    f"sipmask run exited {self.process.wait()} before 'ready':\n"
                    f"{''.join(self.stdout)}\n{self.stderr()}"
                )
            self.stdout.append(line)
            words = line.split()
            if len(words) == 4 and words[0] == "listening":
                self.ports[words[1]] = int(words[3])
            if words == ["ready"]:
                return

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stop(self) -> int:
        """SIGTERM, then the exit status (bounded); the rest of stdout is collected."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            status = self.process.wait(timeout=STOP_BOUND)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            pytest.fail(f"sipmask run did not stop on SIGTERM:\n{self.stderr()}")
        while True:
            try:
                line = self.lines.get(timeout=STOP_BOUND)
            except queue.Empty:
                break
            if line is None:
                break
            self.stdout.append(line)
        return status

    def output(self) -> str:
        return "".join(self.stdout) + self.stderr()


def start(directory: Path, *args: str, config: str | None = None, wait: bool = True) -> Sipmask:
    """Start `python -m sipmask run` in `directory` (with `-c` when `config` is given)."""
    command = [sys.executable, "-m", "sipmask", "run", *args]
    if config is not None:
        path = directory / "sipmask.toml"
        path.write_text(config)
        command += ["-c", str(path)]
    stderr_path = directory / "stderr.log"
    with stderr_path.open("w") as stderr:
        process = subprocess.Popen(
            command,
            cwd=directory,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=clean_env(),
        )
    handle = Sipmask(process, stderr_path)
    if wait:
        handle.wait_ready()
    return handle


def run_to_end(directory: Path, *args: str, config: str | None = None) -> tuple[int, str, str]:
    """Run `sipmask run` that is expected to exit by itself: (status, stdout, stderr)."""
    command = [sys.executable, "-m", "sipmask", "run", *args]
    if config is not None:
        path = directory / "sipmask.toml"
        path.write_text(config)
        command += ["-c", str(path)]
    result = subprocess.run(
        command,
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=START_BOUND,
        env=clean_env(),
        check=False,
    )
    return result.returncode, result.stdout, result.stderr


def assert_no_real_number(text: str) -> None:
    for number in (CALLER, CALLEE):
        assert number[3:] not in text, f"{number[:3]}... printed in full:\n{text[-3000:]}"


# --- SIP over a raw UDP socket -----------------------------------------------------------------


def sip_request(
    method: str,
    port: int,
    *,
    call_id: str,
    branch: str,
    cseq: int = 1,
    to_tag: str | None = None,
    local_port: int = 0,
) -> bytes:
    to = f"<sip:{CALLEE}@127.0.0.1:{port}>" + (f";tag={to_tag}" if to_tag else "")
    lines = [
        f"{method} sip:{CALLEE}@127.0.0.1:{port} SIP/2.0",
        f"Via: SIP/2.0/UDP 127.0.0.1:{local_port};branch=z9hG4bK{branch};rport",
        "Max-Forwards: 70",
        f"From: <sip:{CALLER}@127.0.0.1>;tag=e2e{branch}",
        f"To: {to}",
        f"Call-ID: {call_id}@e2e",
        f"CSeq: {cseq} {method}",
        f"Contact: <sip:{CALLER}@127.0.0.1:{local_port}>",
        "Content-Length: 0",
        "",
        "",
    ]
    return "\r\n".join(lines).encode()


@pytest.fixture
def udp() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(RECV_BOUND)
    yield sock
    sock.close()


def exchange(
    sock: socket.socket, port: int, method: str, name: str, **kwargs: object
) -> list[sipmask.Response]:
    """Send one request; collect responses up to and including the first final one."""
    local = sock.getsockname()[1]
    sock.sendto(
        sip_request(method, port, call_id=name, branch=name, local_port=local, **kwargs),  # type: ignore[arg-type]
        ("127.0.0.1", port),
    )
    responses = []
    while True:
        data, _ = sock.recvfrom(65535)
        msg = sipmask.parse(data)
        assert isinstance(msg, sipmask.Response)
        responses.append(msg)
        if msg.status >= 200:
            return responses


# --- the API -----------------------------------------------------------------------------------


def http(
    port: int, method: str, path: str, body: object = None, token: str | None = TOKEN
) -> tuple[int, dict[str, object]]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=RECV_BOUND) as answer:
            return answer.status, json.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read() or b"{}")


# --- one process for the protocol checks -------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sipmask]:
    directory = tmp_path_factory.mktemp("run")
    handle = start(directory, config=config_text())
    try:
        yield handle
    finally:
        status = handle.stop()
        output = handle.output()
        assert status == 0, output
        assert "Traceback" not in output and '"level": "error"' not in output, output
        assert_no_real_number(output)


def test_listens_on_every_configured_listener(server):
    assert set(server.ports) == {"api", "metrics", "udp", "tcp"}
    assert server.stdout[0].startswith("sipmask ")
    assert "1 pool(s) with 2 number(s)" in server.stdout[0]


def test_options_keepalive_gets_200_with_allow(server, udp):
    responses = exchange(udp, server.ports["udp"], "OPTIONS", "options1")
    assert [r.status for r in responses] == [200]
    allow = set(responses[0].headers("allow"))
    assert allow >= {"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS"}
    assert responses[0].to_tag


def test_invite_without_a_session_gets_100_then_404(server, udp):
    port = server.ports["udp"]
    responses = exchange(udp, port, "INVITE", "invite1")
    assert [r.status for r in responses] == [100, 404]
    final = responses[-1]
    assert final.reason == "Not Found"
    assert final.header("retry-after") is None
    # RFC 3261 §17.1.1.3: the ACK for a non-2xx final response, same branch; it is absorbed.
    ack = sip_request(
        "ACK",
        port,
        call_id="invite1",
        branch="invite1",
        to_tag=final.to_tag,
        local_port=udp.getsockname()[1],
    )
    udp.sendto(ack, ("127.0.0.1", port))


@pytest.mark.parametrize(
    ("method", "to_tag", "status"),
    [
        pytest.param("BYE", "gone", 481, id="bye-no-dialog-481"),
        pytest.param("REFER", None, 405, id="known-unserved-405"),
        pytest.param("MESSAGE", None, 404, id="message-no-session-404"),
        pytest.param("FROBNICATE", None, 501, id="unknown-501"),
    ],
)
def test_other_requests_get_their_verdict(server, udp, method, to_tag, status):
    responses = exchange(udp, server.ports["udp"], method, f"other-{method.lower()}", to_tag=to_tag)
    assert responses[-1].status == status
    if status in (405, 501):
        assert "INVITE" in responses[-1].headers("allow")


def test_options_over_tcp(server):
    port = server.ports["tcp"]
    with socket.create_connection(("127.0.0.1", port), timeout=RECV_BOUND) as conn:
        local = conn.getsockname()[1]
        conn.sendall(
            sip_request("OPTIONS", port, call_id="tcp1", branch="tcp1", local_port=local).replace(
                b"SIP/2.0/UDP", b"SIP/2.0/TCP"
            )
        )
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65535)
            assert chunk, "connection closed before the response"
            data += chunk
    msg = sipmask.parse(data)
    assert isinstance(msg, sipmask.Response)
    assert msg.status == 200


def test_healthz(server):
    status, _ = http(server.ports["api"], "GET", "/healthz", token=None)
    assert status == 200


def test_api_needs_the_token(server):
    status, _ = http(server.ports["api"], "GET", "/v1/sessions", token="wrong")
    assert status == 401


def test_create_session_gets_virtual_numbers_from_the_config_pool(server):
    body = {"participants": [{"identifier": CALLER}, {"identifier": CALLEE}]}
    status, session = http(server.ports["api"], "POST", "/v1/sessions", body)
    assert status == 201, session
    participants = session["participants"]
    assert isinstance(participants, list) and len(participants) == 2
    assert {p["proxy_identifier"] for p in participants} <= set(POOL_NUMBERS)


def test_config_pool_is_read_only_through_the_api(server):
    status, _ = http(
        server.ports["api"], "PUT", "/v1/pools/default", {"numbers": ["+918000000009"]}
    )
    assert status == 409


@pytest.mark.skipif(SIPP is None, reason="sipp not on PATH (apt-get install sip-tester)")
def test_sipp_options(server, tmp_path):
    assert SIPP is not None
    stats = tmp_path / "stats.csv"
    command = [
        SIPP,
        f"127.0.0.1:{server.ports['udp']}",
        "-sf",
        str(SCENARIOS / "options.xml"),
        "-i",
        "127.0.0.1",
        "-m",
        "20",
        "-r",
        "20",
        "-timeout",
        "15s",
        "-timeout_error",
        "-nostdin",
        "-trace_stat",
        "-stf",
        str(stats),
    ]
    result = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
    rows = [line.split(";") for line in stats.read_text().splitlines()]
    last = dict(zip(rows[0], rows[-1], strict=False))
    assert int(last["SuccessfulCall(C)"]) == 20
    assert int(last["FailedCall(C)"]) == 0


# --- stop, sources, bad configurations ---------------------------------------------------------


def test_sigterm_stops_cleanly_and_logs_no_number(tmp_path, udp):
    handle = start(tmp_path, config=config_text(log_format="text"))
    try:
        exchange(udp, handle.ports["udp"], "INVITE", "term1")
        http(handle.ports["api"], "GET", f"/v1/sessions?participant={CALLER}")
    finally:
        status = handle.stop()
    output = handle.output()
    assert status == 0, output
    assert "1 rejected" in output  # the call without a session, counted at stop
    assert "Traceback" not in output
    assert_no_real_number(output)
    assert (tmp_path / "data").is_dir()  # the memory store's journal


def test_unknown_source_rejected_with_403(tmp_path, udp):
    handle = start(
        tmp_path, config=config_text(inbound="192.0.2.0/24", sip_extra='unknown_source = "reject"')
    )
    try:
        responses = exchange(udp, handle.ports["udp"], "OPTIONS", "reject1")
    finally:
        assert handle.stop() == 0
    assert responses[-1].status == 403


@pytest.mark.parametrize(
    ("config", "args", "expected"),
    [
        pytest.param(
            config_text(inbound="10.0.0.300/8"), (), "trunks[0].inbound[0]", id="bad-network"
        ),
        pytest.param(
            config_text() + "\n[process]\nworkers = 0\n", (), "process.workers", id="workers-zero"
        ),
        pytest.param(config_text(), ("--workers", "2"), "--workers", id="workers-need-redis"),
    ],
)
def test_bad_config_exits_2_naming_the_error(tmp_path, config, args, expected):
    status, stdout, stderr = run_to_end(tmp_path, *args, config=config)
    assert status == 2, stdout + stderr
    assert expected in stderr
    assert "ready" not in stdout


def test_embedded_default_is_read_without_c(tmp_path):
    # Binds nothing: the default's memory store cannot take several workers.
    status, stdout, stderr = run_to_end(tmp_path, "--workers", "2")
    assert status == 2, stdout + stderr
    assert "<embedded default>" in stderr and "--workers" in stderr


def test_missing_config_file_exits_2(tmp_path):
    status, _, stderr = run_to_end(tmp_path, "-c", str(tmp_path / "absent.toml"))
    assert status == 2
    assert "absent.toml" in stderr


def test_port_in_use_exits_1(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = config_text().replace('listen = "127.0.0.1:0"', f'listen = "127.0.0.1:{port}"')
        status, stdout, stderr = run_to_end(tmp_path, config=config)
    assert status == 1, stdout + stderr
    assert "cannot start" in stderr
    assert "ready" not in stdout


def _busy(kind: int, port: int) -> bool:
    with socket.socket(socket.AF_INET, kind) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def test_default_config_starts_and_stops(tmp_path):
    busy = [
        f"{name} {port}"
        for name, kind, port in (
            ("udp", socket.SOCK_DGRAM, 5060),
            ("tcp", socket.SOCK_STREAM, 5060),
            ("tcp", socket.SOCK_STREAM, 8080),
            ("tcp", socket.SOCK_STREAM, 9090),
        )
        if _busy(kind, port)
    ]
    if busy:
        pytest.skip(f"the embedded default's ports are in use: {', '.join(busy)}")
    handle = start(tmp_path)
    status = handle.stop()
    assert status == 0, handle.output()
    assert handle.ports == {"api": 8080, "metrics": 9090, "udp": 5060, "tcp": 5060}


def test_pool_number_owned_by_an_api_pool_exits_1(tmp_path):
    # The journal holds a pool made through the API that owns a number the config's pool
    # declares: set_pool refuses it, and the process says why instead of starting half-way.
    async def make_api_pool() -> None:
        store = MemoryStore(tmp_path / "data")
        await store.set_pool("city", [POOL_NUMBERS[0]])
        await store.close()

    asyncio.run(make_api_pool())
    status, stdout, stderr = run_to_end(tmp_path, config=config_text())
    assert status == 1, stdout + stderr
    assert "cannot start" in stderr and "city" in stderr
    assert "ready" not in stdout


def test_serve_in_process_stops_when_stop_is_set(tmp_path):
    config = parse_config(config_text().replace('data_dir = "data"', 'data_dir = ""'))
    bound: dict[str, int] = {}

    async def main() -> list[int]:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        answered: list[int] = []

        def ready() -> None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind(("127.0.0.1", 0))
            sock.setblocking(False)

            async def probe() -> None:
                try:
                    message = sip_request(
                        "OPTIONS", bound["udp"], call_id="inproc", branch="inproc"
                    )
                    await loop.sock_sendto(sock, message, ("127.0.0.1", bound["udp"]))
                    data = await asyncio.wait_for(loop.sock_recv(sock, 65535), RECV_BOUND)
                    response = sipmask.parse(data)
                    assert isinstance(response, sipmask.Response)
                    answered.append(response.status)
                finally:
                    sock.close()
                    stop.set()

            tasks.append(loop.create_task(probe()))

        tasks: list[asyncio.Task[None]] = []
        listening = lambda kind, address: bound.__setitem__(kind, address.port)  # noqa: E731
        await asyncio.wait_for(serve(config, ready=ready, stop=stop, listening=listening), 10)
        await asyncio.gather(*tasks)
        return answered

    assert asyncio.run(main()) == [200]


REDIS_POOL_NUMBERS = ("+918000000091", "+918000000092")


def redis_config(url: str) -> str:
    # Own pool name and numbers: the session's redis-server is shared with the store tests.
    text = config_text().replace('backend = "memory"', f'backend = "redis"\nredis_url = "{url}"')
    text = text.replace('name = "default"', 'name = "e2e-run"')
    for number, other in zip(POOL_NUMBERS, REDIS_POOL_NUMBERS, strict=True):
        text = text.replace(number, other)
    return text


def test_redis_store(tmp_path, redis_server):
    handle = start(tmp_path, config=redis_config(redis_server.url))
    try:
        body = {"participants": [{"identifier": CALLER}, {"identifier": CALLEE}], "pool": "e2e-run"}
        status, session = http(handle.ports["api"], "POST", "/v1/sessions", body)
        if status == 201:
            http(handle.ports["api"], "DELETE", f"/v1/sessions/{session['id']}")
    finally:
        assert handle.stop() == 0, handle.output()
    assert status == 201, session
    participants = session["participants"]
    assert isinstance(participants, list)
    assert {p["proxy_identifier"] for p in participants} <= set(REDIS_POOL_NUMBERS)
    assert_no_real_number(handle.output())


def test_redis_not_answering_exits_1(tmp_path):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, never listening: connections are refused
        status, stdout, stderr = run_to_end(
            tmp_path, config=redis_config(f"redis://127.0.0.1:{port}/0")
        )
    assert status == 1, stdout + stderr
    assert "cannot start: store" in stderr
    assert "ready" not in stdout


def test_each_startup_event_is_printed_once(tmp_path):
    """Issue 13 (start-up): a listener and `ready` are one stdout line each, not a stdout line
    plus a log line."""
    handle = start(tmp_path, config=config_text())
    try:
        lines = list(handle.stdout)
    finally:
        assert handle.stop() == 0
    assert lines.count("ready\n") == 1
    for kind in ("api", "metrics", "udp", "tcp"):
        assert sum(line.startswith(f"listening {kind} ") for line in lines) == 1, kind
    messages = [json.loads(line)["message"] for line in handle.stderr().splitlines()
                if line.startswith("{")]
    assert messages, "the log is empty"
    assert "ready" not in messages
    assert [m for m in messages if "listening on" in m] == []


BOOTSTRAP = Path(__file__).resolve().parents[2] / "scripts" / "bootstrap.sh"


def _fake_checkout(directory: Path) -> Path:
    """What bootstrap.sh reads, with a .venv whose python records each call instead of
    running pip (the real install is what `scripts/run` does; this checks when it runs)."""
    root = Path(__file__).resolve().parents[2]
    (directory / "scripts").mkdir()
    (directory / "scripts" / "bootstrap.sh").write_text(BOOTSTRAP.read_text())
    (directory / "sipmask").mkdir()
    for name in ("pyproject.toml", "setup.py"):
        (directory / name).write_text((root / name).read_text())
    for source in (root / "sipmask").glob("_*.p[yx][xi]"):
        (directory / "sipmask" / source.name).write_text(source.read_text())
    (directory / "sipmask" / "_core.cpython-311-x86_64-linux-gnu.so").write_bytes(b"")
    bin_dir = directory / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    python = bin_dir / "python"
    python.write_text(f'#!/bin/sh\necho "$*" >> "{directory}/pip-calls"\n')
    python.chmod(0o755)
    (bin_dir / "sipmask").write_text("#!/bin/sh\n")
    (bin_dir / "sipmask").chmod(0o755)
    return directory


def _bootstrap(directory: Path, extras: str = "") -> list[str]:
    calls = directory / "pip-calls"
    calls.unlink(missing_ok=True)
    subprocess.run(["bash", str(directory / "scripts" / "bootstrap.sh"), extras],
                   check=True, timeout=60, capture_output=True)
    return calls.read_text().splitlines() if calls.exists() else []


def test_bootstrap_reinstalls_only_when_the_sources_of_the_install_change(tmp_path):
    """Issue 13 (start-up): `scripts/run` rebuilt the editable install on every start."""
    if shutil.which("gcc") is None or shutil.which("sha256sum") is None:
        pytest.skip("bootstrap.sh would install gcc first")
    checkout = _fake_checkout(tmp_path)
    assert any("install -q -e ." in call for call in _bootstrap(checkout))  # first time
    assert _bootstrap(checkout) == []  # nothing changed: no pip at all
    assert any("-e .[test]" in call for call in _bootstrap(checkout, "test"))  # new extra
    assert _bootstrap(checkout, "test") == []
    assert _bootstrap(checkout) == []  # fewer extras than installed: fine
    core = checkout / "sipmask" / "_core.pyx"
    core.write_text(core.read_text() + "\n# changed\n")
    assert any("install" in call for call in _bootstrap(checkout))  # the core changed
    assert _bootstrap(checkout) == []
    for built in (checkout / "sipmask").glob("_core*.so"):
        built.unlink()
    assert any("install" in call for call in _bootstrap(checkout))  # the build is gone
