"""Masked calls end to end: a real `sipmask run` process between a caller SIPp (UAC) and one or
more callee SIPp (UAS) processes, all on 127.0.0.1, with sessions made through the real API.

The scenarios (tests/e2e/sipp/b2bua/) check the SIP flow and, with `check_it_inverse` eregs,
that the other party's real number never reaches them; the harness adds the exit codes, the
same leak check over every message each SIPp logged as received, and sipmask's own output
(no real number in full, no traceback). Every step is bounded: SIPp's own `-timeout`, then a
bound on each process, so a broken engine fails a test instead of hanging it."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from test_run import (
    CALLEE,
    CALLER,
    POOL_NUMBERS,
    TOKEN,
    Sipmask,
    assert_no_real_number,
    http,
    start,
)

from sipmask.privacy import mask_numbers_in

SIPP = shutil.which("sipp")
SCENARIOS = Path(__file__).parent / "sipp" / "b2bua"
THIRD = "+919812300001"  # a third real party, for sessions the caller is not in

# Safety bounds (seconds) so a broken engine fails a test instead of hanging it; never asserted.
SIPP_TIMEOUT = 20  # SIPp's own -timeout, with -timeout_error
PROCESS_BOUND = SIPP_TIMEOUT + 10  # the wait on a SIPp process, past its own timeout
GRACE_AFTER_FAILURE = 3.0  # callees still running once the caller failed
LISTEN_BOUND = 5.0  # a callee SIPp binding its port

needs_sipp = pytest.mark.skipif(
    SIPP is None, reason="sipp not on PATH (apt-get install sip-tester)"
)


# --- configuration -----------------------------------------------------------------------------


def config_text(
    callee_ports: Sequence[int],
    *,
    transport: str = "udp",
    inbound: str = "127.0.0.1/32",
    calls: dict[str, int] | None = None,
    callee_host: str = "127.0.0.1",
) -> str:
    """One pool, one trunk `carrier` whose outbound destinations are the callee SIPps (in
    failover order); OPTIONS probing off so the callees only see the call; `[calls]` only when
    a test needs it (the key is new with the engine)."""
    outbound = [f"{transport}:{callee_host}:{port}" for port in callee_ports]
    text = f"""\
[sip]
listen = ["udp:127.0.0.1:0", "tcp:127.0.0.1:0"]

[api]
listen = "127.0.0.1:0"
tokens = ["{TOKEN}"]

[metrics]
enabled = false

[store]
backend = "memory"
data_dir = ""

[[pools]]
name = "default"
numbers = {json.dumps(list(POOL_NUMBERS))}

[[trunks]]
name = "carrier"
inbound = ["{inbound}"]
outbound = {json.dumps(outbound)}
probe_interval = 0.0

[trunks.number_rules]
country_code = "91"

[logging]
level = "debug"
format = "json"
"""
    if calls:
        text += "\n[calls]\n" + "".join(f"{key} = {value}\n" for key, value in calls.items())
    return text


@contextmanager
def running_sipmask(directory: Path, config: str) -> Iterator[Sipmask]:
    """`sipmask run` for the block; then SIGTERM, exit 0, no traceback or error line, and no
    real number in full anywhere in its output."""
    handle = start(directory, config=config)
    try:
        yield handle
    finally:
        status = handle.stop()
        output = handle.output()
        masked = mask_numbers_in(output[-4000:])
        assert status == 0, f"sipmask run exited {status}:\n{masked}"
        assert "Traceback" not in output, masked
        assert '"level": "error"' not in output, masked
        assert_no_real_number(output)


# --- the API ------------------------------------------------------------------------------------


@dataclass
class Session:
    id: str
    proxies: dict[str, str]  # participant's E.164 -> the virtual number that participant dials


def create_session(
    api_port: int,
    participants: Sequence[str] = (CALLER, CALLEE),
    *,
    call_time_limit: int | None = None,
) -> Session:
    body: dict[str, object] = {
        "participants": [{"identifier": number} for number in participants],
        "pool": "default",
    }
    if call_time_limit is not None:
        body["call_time_limit"] = call_time_limit
    status, answer = http(api_port, "POST", "/v1/sessions", body)
    assert status == 201, mask_numbers_in(json.dumps(answer))
    members = answer["participants"]
    assert isinstance(members, list)
    proxies = {str(member["key"]): str(member["proxy_identifier"]) for member in members}
    assert set(proxies) == set(participants), mask_numbers_in(json.dumps(answer))
    return Session(str(answer["id"]), proxies)


# --- SIPp ---------------------------------------------------------------------------------------


def free_port(transport: str = "udp") -> int:
    """A port free right now on 127.0.0.1 for `transport` (the OS picks; SIPp binds it next)."""
    kind = socket.SOCK_STREAM if transport == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _bound(port: int, transport: str) -> bool:
    """Whether something listens on `port`, from /proc (probing with bind could steal it)."""
    table = Path("/proc/net/tcp" if transport == "tcp" else "/proc/net/udp")
    wanted = f"{port:04X}"
    for line in table.read_text().splitlines()[1:]:
        fields = line.split()
        local_port = fields[1].rsplit(":", 1)[1]
        if local_port == wanted and (transport != "tcp" or fields[3] == "0A"):
            return True
    return False


_ENTRY = re.compile(r"^-{47} \d{4}-\d\d-\d\d [\d:.]+\n", re.MULTILINE)
_RECEIVED = re.compile(r"^(UDP|TCP) message received \[\d+\] bytes :\n\n")


@dataclass
class SippRun:
    """One SIPp process: its command, its logs, its exit status."""

    name: str
    command: list[str]
    directory: Path
    process: subprocess.Popen[bytes] | None = None
    status: int | None = None

    @property
    def messages_log(self) -> Path:
        return self.directory / f"{self.name}_messages.log"

    @property
    def errors_log(self) -> Path:
        return self.directory / f"{self.name}_errors.log"

    @property
    def screen_log(self) -> Path:
        return self.directory / f"{self.name}_screen.log"

    def start(self) -> None:
        with self.screen_log.open("wb") as screen:
            self.process = subprocess.Popen(
                self.command,
                cwd=self.directory,
                stdin=subprocess.DEVNULL,
                stdout=screen,
                stderr=subprocess.STDOUT,
            )

    def wait(self, bound: float = PROCESS_BOUND) -> int:
        assert self.process is not None
        try:
            self.status = self.process.wait(timeout=bound)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.status = self.process.wait()
        return self.status

    def received(self) -> list[str]:
        """Every SIP message this SIPp logged as received, in order."""
        if not self.messages_log.exists():
            return []
        text = self.messages_log.read_text(errors="replace").replace("\r\n", "\n")
        messages = []
        for entry in _ENTRY.split(text):
            found = _RECEIVED.match(entry)
            if found:
                messages.append(entry[found.end() :].strip("\n"))
        return messages

    def diagnostics(self) -> str:
        """What went wrong, numbers masked (the logs carry the planted real numbers)."""
        parts = [f"{self.name} exited {self.status}: {' '.join(self.command)}"]
        for path in (self.errors_log, self.screen_log):
            if path.exists():
                parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-2500:]}")
        return mask_numbers_in("\n".join(parts))


def sipp_command(
    name: str,
    scenario: str,
    *,
    port: int,
    transport: str = "udp",
    remote_port: int | None = None,
    service: str | None = None,
    calls: int = 1,
    source: str = "127.0.0.1",
    call_id_prefix: str | None = None,
) -> list[str]:
    """The SIPp command line: a UAS when `remote_port` is None, else a UAC dialling `service`."""
    assert SIPP is not None
    command = [SIPP]
    if remote_port is not None:
        command.append(f"127.0.0.1:{remote_port}")
    command += [
        "-sf", str(SCENARIOS / scenario),
        "-t", "t1" if transport == "tcp" else "u1",
        "-i", source,
        "-p", str(port),
        "-m", str(calls),
    ]  # fmt: skip
    if remote_port is not None:
        command += ["-r", "10"]
    if service is not None:
        command += ["-s", service]
    if call_id_prefix is not None:
        command += ["-cid_str", f"{call_id_prefix}-%u-%p@%s"]
    command += [
        "-timeout", f"{SIPP_TIMEOUT}s",
        "-timeout_error",
        "-nostdin",
        "-trace_msg", "-message_file", f"{name}_messages.log",
        "-trace_err", "-error_file", f"{name}_errors.log",
    ]  # fmt: skip
    return command


def start_callee(
    directory: Path, name: str, scenario: str, port: int, *, transport: str = "udp", calls: int = 1
) -> SippRun:
    """A callee UAS on 127.0.0.1:`port`, running until it has handled `calls` calls."""
    run = SippRun(
        name, sipp_command(name, scenario, port=port, transport=transport, calls=calls), directory
    )
    run.start()
    assert run.process is not None
    deadline = time.monotonic() + LISTEN_BOUND
    while not _bound(port, transport):
        if run.process.poll() is not None or time.monotonic() > deadline:
            run.wait(0.1)
            pytest.fail(f"the callee SIPp never listened:\n{run.diagnostics()}")
        time.sleep(0.02)
    return run


def run_caller(
    directory: Path,
    scenario: str,
    *,
    sipmask_port: int,
    service: str,
    transport: str = "udp",
    calls: int = 1,
    source: str = "127.0.0.1",
    sender: str = CALLER,
) -> SippRun:
    """The caller UAC, to the end; its Call-ID carries the sender's real number (a leak probe)."""
    command = sipp_command(
        "caller",
        scenario,
        port=free_port(transport),
        transport=transport,
        remote_port=sipmask_port,
        service=service,
        calls=calls,
        source=source,
        call_id_prefix=sender[1:],
    )
    run = SippRun("caller", command, directory)
    run.start()
    run.wait()
    return run


# --- one flow -----------------------------------------------------------------------------------


@dataclass
class Flow:
    """What a flow left behind, for the tests' own checks after the common ones."""

    session: Session | None
    caller: SippRun
    callees: list[SippRun] = field(default_factory=list)


def assert_hidden(run: SippRun, digits: str) -> None:
    """No message `run` received carries `digits` (a real number without its `+91`)."""
    for message in run.received():
        assert digits not in message, f"{run.name} received a real number:\n" + mask_numbers_in(
            message
        )


def run_flow(
    directory: Path,
    caller: str,
    callees: Sequence[str] = (),
    *,
    transport: str = "udp",
    participants: Sequence[str] | None = (CALLER, CALLEE),
    dial: str = CALLER,
    call_time_limit: int | None = None,
    calls_config: dict[str, int] | None = None,
    inbound: str = "127.0.0.1/32",
) -> Flow:
    """Start sipmask (trunk outbound = the callees, in order), open the session, start the
    callees, run the caller dialling `dial`'s virtual number, then require every SIPp to exit 0,
    no real number in what each one received from the other side, and a clean sipmask."""
    ports = [free_port(transport) for _ in callees] or [free_port(transport)]
    config = config_text(ports, transport=transport, inbound=inbound, calls=calls_config)
    sender, other = (CALLEE, CALLER) if dial == CALLEE else (CALLER, CALLEE)
    runs: list[SippRun] = []
    with running_sipmask(directory, config) as sipmask:
        session = None
        if participants is not None:
            session = create_session(
                sipmask.ports["api"], participants, call_time_limit=call_time_limit
            )
        service = session.proxies[dial] if session is not None else POOL_NUMBERS[0]
        try:
            for index, (scenario, port) in enumerate(zip(callees, ports, strict=False)):
                runs.append(
                    start_callee(directory, f"callee{index}", scenario, port, transport=transport)
                )
            caller_run = run_caller(
                directory,
                caller,
                sipmask_port=sipmask.ports[transport],
                service=service,
                transport=transport,
                sender=sender,
            )
            bound = PROCESS_BOUND if caller_run.status == 0 else GRACE_AFTER_FAILURE
            for run in runs:
                run.wait(bound)
        finally:
            for run in runs:
                if run.process is not None and run.process.poll() is None:
                    run.process.kill()
                    run.wait()
    for run in (caller_run, *runs):
        assert run.status == 0, run.diagnostics()
    assert_hidden(caller_run, other[3:])
    for run in runs:
        assert_hidden(run, sender[3:])
    return Flow(session, caller_run, runs)


# --- reading what a SIPp received ---------------------------------------------------------------


def first_line(message: str) -> str:
    return message.split("\n", 1)[0]


def header(message: str, name: str) -> str | None:
    """The first `name` header of a logged message (long names only; SIPp and sipmask's own
    messages under test)."""
    head = message.split("\n\n", 1)[0]
    for line in head.split("\n")[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == name.lower():
            return value.strip()
    return None


def uri_user(text: str | None) -> str | None:
    """The user part of the first sip: URI in `text`."""
    if text is None:
        return None
    found = re.search(r"sips?:([^@;>\s]+)@", text)
    return found.group(1) if found else None


def requests(run: SippRun, method: str) -> list[str]:
    return [m for m in run.received() if first_line(m).startswith(f"{method} ")]


def statuses(run: SippRun) -> list[int]:
    """Status codes of the responses `run` received, in order."""
    return [
        int(first_line(m).split()[1]) for m in run.received() if first_line(m).startswith("SIP/2.0")
    ]
