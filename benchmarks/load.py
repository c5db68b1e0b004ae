"""Masked calls per second: SIPp caller -> system -> SIPp callee, sipmask beside its peers.
See benchmarks/README.md ("Load benchmark") and benchmarks/sipp/README.md.

Run from the repository root:

    .venv/bin/python -m benchmarks.load                    # search every system's max rate
    .venv/bin/python -m benchmarks.load --smoke            # a few seconds (CI)
    .venv/bin/python -m benchmarks.load --systems direct,sipmask-memory --rates 500,1000,2000

Systems: `direct` (SIPp calling SIPp: the load generator's ceiling), `sipmask-memory`,
`sipmask-redis` (a throwaway redis-server), `sipmask-rtpengine` (sipmask-memory with every
call's SDP anchored on a userspace rtpengine pinned beside it; SIPp sends no RTP, so this is
the signalling and ng cost of anchoring), `sippy` (Sippy B2BUA, PyPI `sippy`) and `kamailio`
(a stateful proxy with Record-Route and topology hiding, benchmarks/peers/kamailio.cfg). The
systems take turns step by step, so drift on a shared machine hits all alike. With two or more
CPUs the system under test (and its redis-server) is pinned to core 0 and both SIPps to core 1.
"""

from __future__ import annotations

import argparse
import csv
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.sip.load import (
    CLIENT_CORE,
    HOST,
    SERVER_CORE,
    Pinning,
    _die_with_parent,
    _percentile,
    children_cpu,
    core_busy,
    cpu_seconds,
    machine,
    read_rtts,
)

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "benchmarks" / "sipp"
PEERS = ROOT / "benchmarks" / "peers"
TOKEN = "bench-token"
POOL = ("+918000000001", "+918000000002")
SYSTEMS = ("direct", "sipmask-memory", "sipmask-redis", "sipmask-rtpengine", "sippy", "kamailio")
# scenario name -> (caller, callee, requests the caller sends per call: the retransmission base)
FLOWS = {
    "basic": ("uac.xml", "uas.xml", 3),
    "reinvite": ("uac_reinvite.xml", "uas_reinvite.xml", 5),
    "cancel": ("uac_cancel.xml", "uas_cancel.xml", 3),
}
START_BOUND = 20.0  # seconds a system may take to listen; a bound, never a measurement
SIPP_BUFFER = 4 * 1024 * 1024  # SIPp's socket buffers (-buff_size); its 64 KiB default drops


def caller_number(index: int) -> str:
    return f"+91987{index:07d}"


def callee_number(index: int) -> str:
    return f"+91981{index:07d}"


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def udp_bound(port: int) -> bool:
    """Whether a UDP socket is bound to `port` (from /proc: probing by bind could steal it)."""
    wanted = f":{port:04X}"
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        if line.split()[1].endswith(wanted):
            return True
    return False


def tcp_listening(port: int) -> bool:
    wanted = f":{port:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1].endswith(wanted) and fields[3] == "0A":
            return True
    return False


def wait_for(check: Any, what: str, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + START_BOUND
    while not check():
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what}: exited {process.returncode} before it was ready")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not ready within {START_BOUND:.0f} s")
        time.sleep(0.05)


# --- measuring a process tree (Kamailio forks; sipmask and sippy are one process) -------------


def tree_pids(root: int) -> list[int]:
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(text[text.rindex(")") + 2 :].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(parents.get(pid, []))
    return found


def tree_cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            total += cpu_seconds(pid)
        except OSError:
            pass
    return total


def tree_memory_mib(pids: list[int]) -> tuple[float, float]:
    """(RSS, PSS) of the processes in MiB; PSS shares shared pages out (Kamailio's shm)."""
    rss = pss = 0.0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                key, _, rest = line.partition(":")
                if key == "Rss":
                    rss += int(rest.split()[0]) / 1024
                elif key == "Pss":
                    pss += int(rest.split()[0]) / 1024
        except OSError:
            pass
    return rss, pss


# --- the systems under test ----------------------------------------------------------------------


class System:
    """A system between the SIPp caller and callee: started once, kept for all its steps."""

    name = ""
    cores = SERVER_CORE  # --server-cores

    def __init__(self, pin: Pinning, workdir: Path, callee_port: int, sessions: int) -> None:
        self.pin, self.workdir = pin, workdir
        self.callee_port, self.sessions = callee_port, sessions
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.extra: list[subprocess.Popen[bytes]] = []  # helpers pinned with it (redis-server)
        self.csv = workdir / f"{self.name}.csv"
        self.notes: list[str] = []

    def start(self) -> None:
        raise NotImplementedError

    def pids(self) -> list[int]:
        pids: list[int] = []
        for process in [self.process, *self.extra]:
            if process is not None and process.poll() is None:
                pids += tree_pids(process.pid)
        return pids

    def popen(self, command: list[str], log: str, env: dict[str, str] | None = None) -> Any:
        with (self.workdir / log).open("wb") as out:
            return subprocess.Popen(
                self.pin.wrap(self.cores, command),
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                preexec_fn=_die_with_parent,
            )

    def write_csv(self, pairs: list[tuple[str, str]]) -> None:
        self.csv.write_text("SEQUENTIAL\n" + "".join(f"{a};{b};\n" for a, b in pairs))

    def stop(self) -> int | None:
        status = None
        for process in [self.process, *self.extra]:
            if process is None:
                continue
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            try:
                code = process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                code = process.wait()
            if process is self.process:
                status = code
        return status

    def restart(self) -> None:
        """A fresh process (and store) after a step that was not clean: the next step must not
        pay for the lingering transactions and retransmissions of a collapse."""
        self.stop()
        self.process, self.extra = None, []
        self.start()

    def log_tail(self, log: str, size: int = 1500) -> str:
        path = self.workdir / log
        return path.read_text(errors="replace")[-size:] if path.exists() else ""


class Direct(System):
    """SIPp calling SIPp: no system, so the ceiling of the load generator on this machine."""

    name = "direct"

    def start(self) -> None:
        self.port = self.callee_port
        self.write_csv([(caller_number(i), POOL[0]) for i in range(self.sessions)])


SIPMASK_CONFIG = """\
[sip]
listen = ["udp:127.0.0.1:0"]
max_transactions = {max_transactions}

[api]
listen = "127.0.0.1:0"
tokens = ["{token}"]

[metrics]
enabled = false

[store]
backend = "{backend}"
redis_url = "{redis_url}"
data_dir = ""

[[pools]]
name = "default"
numbers = {pool}

[[trunks]]
name = "carrier"
inbound = ["127.0.0.1/32"]
outbound = ["udp:127.0.0.1:{callee_port}"]
probe_interval = 0.0

[trunks.number_rules]
country_code = "91"

[logging]
level = "warning"

[process]
drain_grace = 1.0
workers = {workers}
"""


class Sipmask(System):
    """`python -m sipmask run` with a bench config; N sessions made through the API, one per
    caller (each with its own callee), so the CSV pairs each caller with its virtual number."""

    max_transactions = 2_000_000  # the overload bound out of the way unless asked for
    workers = 1  # --workers: sipmask on Redis with several worker processes

    def __init__(self, backend: str, profile: Path | None, *args: Any) -> None:
        self.name = f"sipmask-{backend}"
        super().__init__(*args)
        self.backend, self.profile = backend, profile
        self.api_port = 0
        # sipmask-rtpengine: the memory store, every call's media anchored on an rtpengine
        # (userspace) pinned with sipmask, so its CPU counts in the CPU per call.
        self.store_backend = "memory" if backend == "rtpengine" else backend

    def start(self) -> None:
        redis_url = "redis://127.0.0.1:6379/0"
        if self.backend == "redis":
            redis = shutil.which("redis-server")
            if redis is None:
                raise RuntimeError("redis-server not on PATH (apt-get install redis-server)")
            port = free_port(socket.SOCK_STREAM)
            command = [redis, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly",
                       "no", "--dir", str(self.workdir)]  # fmt: skip
            process = self.popen(command, "redis.log")
            self.extra.append(process)
            wait_for(lambda: tcp_listening(port), "redis-server", process)
            redis_url = f"redis://{HOST}:{port}/0"
        media = ""
        if self.backend == "rtpengine":
            media = self.start_rtpengine()
        config = self.workdir / f"{self.name}.toml"
        config.write_text(
            media + SIPMASK_CONFIG.format(
                token=TOKEN,
                backend=self.store_backend,
                redis_url=redis_url,
                pool=json.dumps(list(POOL)),
                callee_port=self.callee_port,
                max_transactions=self.max_transactions,
                workers=self.workers if self.backend == "redis" else 1,
            )
        )
        command = [sys.executable]
        if self.profile is not None:
            command += ["-m", "cProfile", "-o", str(self.profile)]
        command += ["-m", "sipmask", "run", "-c", str(config)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("SIPMASK_")}
        env["PYTHONPATH"] = str(ROOT)
        out = self.workdir / f"{self.name}.log"
        self.process = self.popen(command, out.name, env)
        ports: dict[str, int] = {}

        def ready() -> bool:
            ports.clear()
            for line in out.read_text(errors="replace").splitlines():
                words = line.split()
                if len(words) == 4 and words[0] == "listening":
                    ports[words[1]] = int(words[3])
                if words == ["ready"]:
                    return True
            return False

        wait_for(ready, self.name, self.process)
        self.port, self.api_port = ports["udp"], ports["api"]
        self.write_csv(self.provision())

    def start_rtpengine(self) -> str:
        """An rtpengine for sipmask-rtpengine; returns the [media] config that points at it."""
        binary = shutil.which("rtpengine")
        if binary is None:
            raise RuntimeError("rtpengine not on PATH (apt-get install rtpengine-daemon)")
        ng = free_port()
        # No delete delay: at hundreds of calls/s the default 30 s would hold every port.
        command = [binary, "--table=-1", "--config-file=none", "--foreground", "--log-stderr",
                   f"--interface={HOST}", f"--listen-ng={HOST}:{ng}", "--port-min=20000",
                   "--port-max=59999", "--delete-delay=0", "--log-level=3"]  # fmt: skip
        process = self.popen(command, "rtpengine.log")
        self.extra.append(process)
        wait_for(lambda: udp_bound(ng), "rtpengine", process)
        return (f'[media]\nbackend = "rtpengine"\nping_interval = 0.0\n'
                f'[[media.rtpengine]]\naddress = "{HOST}:{ng}"\n\n')

    def provision(self) -> list[tuple[str, str]]:
        """POST /v1/sessions once per caller over one keep-alive connection."""
        connection = http.client.HTTPConnection(HOST, self.api_port, timeout=10)
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        pairs = []
        try:
            for index in range(self.sessions):
                caller = caller_number(index)
                body = {
                    "participants": [{"identifier": caller}, {"identifier": callee_number(index)}],
                    "pool": "default",
                }
                connection.request("POST", "/v1/sessions", json.dumps(body), headers)
                answer = connection.getresponse()
                data = json.loads(answer.read())
                if answer.status != 201:
                    raise RuntimeError(f"POST /v1/sessions: {answer.status} {data.get('type')}")
                (mine,) = [p for p in data["participants"] if p["key"] == caller]
                pairs.append((caller, str(mine["proxy_identifier"])))
        finally:
            connection.close()
        return pairs

    def log_summary(self) -> str:
        return self.log_tail(f"{self.name}.log")


class Sippy(System):
    """Sippy B2BUA (PyPI `sippy`) in the foreground, RADIUS off, a static route to the callee,
    Call-ID hidden, warnings only (it logs every message otherwise)."""

    name = "sippy"

    def start(self) -> None:
        b2bua = shutil.which("b2bua") or str(Path(sys.executable).parent / "b2bua")
        if not Path(b2bua).exists():
            raise RuntimeError("sippy's b2bua not found (pip install sippy)")
        self.port = free_port()
        env = dict(os.environ, SIPLOG_LVL="WARN", SIPLOG_BEND="stderr")
        command = [
            b2bua, "-f", "-l", HOST, "-p", str(self.port),
            "-P", str(self.workdir / "sippy.pid"), "-c", str(self.workdir / "sippy.sock"),
            "-L", str(self.workdir / "sippy-daemon.log"), "-u", "-A", "0", "-H",
            "-s", f"{HOST}:{self.callee_port};cli={POOL[1]}",
        ]  # fmt: skip
        self.process = self.popen(command, "sippy.log", env)
        wait_for(lambda: udp_bound(self.port), "sippy", self.process)
        self.write_csv([(caller_number(i), POOL[0]) for i in range(self.sessions)])


class Kamailio(System):
    """Kamailio as a stateful proxy (benchmarks/peers/kamailio.cfg) with its fast allocator and
    2 GiB of shared memory (`-x tlsf -X tlsf -m 2048`)."""

    name = "kamailio"

    def start(self) -> None:
        binary = shutil.which("kamailio")
        if binary is None:
            raise RuntimeError("kamailio not on PATH (apt-get install kamailio)")
        self.port = free_port()
        config = (PEERS / "kamailio.cfg").read_text()
        config = config.replace("@LISTEN_PORT@", str(self.port))
        config = config.replace("@DEST@", f"sip:{HOST}:{self.callee_port}")
        path = self.workdir / "kamailio.cfg"
        path.write_text(config)
        rundir = self.workdir / "kamailio-run"
        rundir.mkdir(exist_ok=True)
        command = [binary, "-f", str(path), "-DD", "-E", "-x", "tlsf", "-X", "tlsf",
                   "-m", "2048", "-P", str(rundir / "kamailio.pid"), "-Y", str(rundir),
                   "-w", str(rundir)]  # fmt: skip
        self.process = self.popen(command, "kamailio.log")
        wait_for(lambda: udp_bound(self.port), "kamailio", self.process)
        time.sleep(0.5)  # its children finish their start after the socket is bound
        self.write_csv([(caller_number(i), POOL[0]) for i in range(self.sessions)])


def make_system(
    name: str, pin: Pinning, workdir: Path, callee_port: int, sessions: int, profile: Path | None
) -> System:
    args = (pin, workdir, callee_port, sessions)
    if name == "direct":
        return Direct(*args)
    if name.startswith("sipmask-"):
        return Sipmask(name.split("-", 1)[1], profile, *args)
    if name == "sippy":
        return Sippy(*args)
    if name == "kamailio":
        return Kamailio(*args)
    raise ValueError(name)


# --- SIPp -----------------------------------------------------------------------------------------


class Callee:
    """The SIPp callee (UAS) of one system, on the load generator's core for all its steps."""

    def __init__(self, sipp: str, pin: Pinning, workdir: Path, name: str, scenario: str) -> None:
        self.port = free_port()
        self.stats = workdir / f"{name}-callee-stats.csv"
        command = [sipp, "-sf", str(SCENARIOS / scenario), "-i", HOST, "-p", str(self.port),
                   "-t", "u1", "-buff_size", str(SIPP_BUFFER), "-nostdin",
                   "-max_recv_loops", "10000", "-trace_stat", "-stf", str(self.stats),
                   "-fd", "1"]  # fmt: skip
        with (workdir / f"{name}-callee.log").open("wb") as out:
            self.process = subprocess.Popen(
                pin.wrap(CLIENT_CORE, command),
                cwd=workdir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
        wait_for(lambda: udp_bound(self.port), "SIPp callee", self.process)

    def completed(self) -> int:
        """Calls the callee has completed so far (its stats file is written every second)."""
        return int(read_stats(self.stats).get("SuccessfulCall(C)", 0) or 0)

    def cpu(self) -> float:
        try:
            return cpu_seconds(self.process.pid)
        except OSError:
            return 0.0

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


@dataclass
class Step:
    system: str
    phase: str
    offered_rate: int
    calls: int
    hold_ms: int
    attempt: int = 1
    sipp_exit: int = -1
    achieved_rate: float = 0.0
    successful: int = 0
    callee_successful: int = 0
    failed: int = 0
    retransmissions: int = 0
    retrans_pct: float = 0.0
    setup_p50_ms: float | None = None
    setup_p99_ms: float | None = None
    setup_mean_ms: float | None = None
    seconds: float = 0.0
    system_cpu_pct: float = 0.0
    cpu_ms_per_call: float | None = None
    system_rss_mib: float = 0.0
    system_pss_mib: float = 0.0
    sipp_cpu_pct: float = 0.0
    server_core_busy_pct: float = 0.0
    client_core_busy_pct: float = 0.0
    clean: bool = False
    verdict: str = ""
    notes: list[str] = field(default_factory=list)


def read_stats(path: Path) -> dict[str, str]:
    """The last row of SIPp's -trace_stat CSV, by column name ({} when there is none)."""
    if not path.exists():
        return {}
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle, delimiter=";"))
    return dict(zip(rows[0], rows[-1], strict=False)) if len(rows) >= 2 else {}


def caller_command(
    sipp: str, system: System, scenario: str, rate: int, calls: int, hold_ms: int, limit: float,
    stats: Path, errors: Path,
) -> list[str]:  # fmt: skip
    return [
        sipp, f"{HOST}:{system.port}", "-sf", str(SCENARIOS / scenario),
        "-inf", str(system.csv), "-i", HOST, "-p", str(free_port()), "-t", "u1",
        "-r", str(rate), "-m", str(calls), "-l", str(max(200, rate * 4 + rate * hold_ms // 1000)),
        "-d", str(hold_ms), "-buff_size", str(SIPP_BUFFER), "-max_recv_loops", "10000",
        "-recv_timeout", "8000", "-timeout", f"{int(limit)}s", "-timeout_error", "-nostdin",
        "-trace_stat", "-stf", str(stats), "-fd", "1",
        "-trace_rtt", "-rtt_freq", str(max(1, min(1000, calls // 10))),
        "-trace_err", "-error_file", str(errors),
    ]  # fmt: skip


def run_step(
    sipp: str,
    pin: Pinning,
    system: System,
    callee: Callee,
    flow: str,
    phase: str,
    rate: int,
    seconds: float,
    hold_ms: int,
    workdir: Path,
) -> Step:
    """One SIPp caller run at `rate` for `seconds`; the system's and the callee's CPU over it."""
    scenario, _, per_call = FLOWS[flow]
    calls = max(1, int(rate * seconds))
    step = Step(system.name, phase, rate, calls, hold_ms)
    tag = f"{system.name}-{phase}-{rate}-{time.monotonic_ns()}"
    stats, errors = workdir / f"{tag}.csv", workdir / f"{tag}-errors.log"
    limit = seconds + hold_ms / 1000 + 12
    for old in workdir.glob("*_rtt.csv"):
        old.unlink()
    command = caller_command(
        sipp, system, scenario, rate, calls, hold_ms, limit, stats, errors
    )
    pids = system.pids()
    busy0, cpu0 = core_busy(), tree_cpu(pids)
    completed0 = callee.completed()
    callee0, child0, wall0 = callee.cpu(), children_cpu(), time.perf_counter()
    try:
        done = subprocess.run(
            pin.wrap(CLIENT_CORE, command),
            cwd=workdir,
            capture_output=True,
            timeout=limit + 10,
            check=False,
            preexec_fn=_die_with_parent,
        )
        step.sipp_exit = done.returncode
    except subprocess.TimeoutExpired:
        step.sipp_exit = -9
        step.notes.append("SIPp killed after its time limit")
    wall = time.perf_counter() - wall0
    step.seconds = round(wall, 2)
    system_cpu = tree_cpu(pids) - cpu0
    step.system_cpu_pct = round(100 * system_cpu / wall, 1)
    sipp_cpu = children_cpu() - child0 + callee.cpu() - callee0
    step.sipp_cpu_pct = round(100 * sipp_cpu / wall, 1)
    busy1 = core_busy()
    if pin.enabled:
        step.server_core_busy_pct = round(100 * (busy1[SERVER_CORE] - busy0[SERVER_CORE]) / wall)
        step.client_core_busy_pct = round(100 * (busy1[CLIENT_CORE] - busy0[CLIENT_CORE]) / wall)
    rss, pss = tree_memory_mib(system.pids())
    step.system_rss_mib, step.system_pss_mib = round(rss, 1), round(pss, 1)
    time.sleep(1.2)  # the callee's next stats line
    step.callee_successful = callee.completed() - completed0
    last = read_stats(stats)
    if last:
        step.successful = int(last["SuccessfulCall(C)"])
        step.failed = int(last["FailedCall(C)"])
        step.retransmissions = int(last["Retransmissions(C)"])
        step.achieved_rate = round(float(last["CallRate(C)"]), 1)
        created = int(last["TotalCallCreated"]) or 1
        step.retrans_pct = round(100 * step.retransmissions / (created * per_call), 3)
    if step.successful and pids:
        step.cpu_ms_per_call = round(1000 * system_cpu / step.successful, 4)
    rtts = read_rtts(workdir)
    if rtts:
        step.setup_mean_ms = round(sum(rtts) / len(rtts), 3)
        step.setup_p50_ms = _percentile(rtts, 0.50)
        step.setup_p99_ms = _percentile(rtts, 0.99)
    problems = []
    if step.sipp_exit != 0:
        problems.append(f"sipp exit {step.sipp_exit}")
    if step.failed:
        problems.append(f"{step.failed} failed")
    if step.successful < calls:
        problems.append(f"{calls - step.successful} calls missing")
    if step.callee_successful < step.successful:
        problems.append(f"callee completed {step.callee_successful} < {step.successful}")
    if step.retrans_pct >= 1.0:
        problems.append(f"retransmissions {step.retrans_pct:.1f}% >= 1%")
    # SIPp's CallRate(C) divides by the whole run (hold and tail too), so lateness is judged on
    # the wall time: a caller that could not keep the rate runs well past its step.
    late = seconds * 1.1 + hold_ms / 1000 + 3
    if wall > late:
        problems.append(f"SIPp took {wall:.1f} s > {late:.1f} s")
    step.clean = not problems
    step.verdict = "clean" if step.clean else "; ".join(problems)
    if errors.exists() and not step.clean:
        step.notes += errors.read_text(errors="replace").strip().splitlines()[-2:]
    return step


def settle(system: System, bound: float) -> None:
    """Wait until the system's process tree is nearly idle (< 10 % of a core over 0.5 s) so the
    next step on the same core does not pay for this one's backlog; bounded."""
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        pids = system.pids()
        before = tree_cpu(pids)
        time.sleep(0.5)
        if tree_cpu(pids) - before < 0.05:
            return


def progress(step: Step, extra: str = "") -> None:
    p99 = "-" if step.setup_p99_ms is None else f"{step.setup_p99_ms:.0f}"
    cpu_call = "-" if step.cpu_ms_per_call is None else f"{step.cpu_ms_per_call:.3f}"
    retry = " retry" if step.attempt > 1 else ""
    print(
        f"[{step.phase}] {step.system:<15} {step.offered_rate:>6}/s{retry}: ok {step.successful}"
        f"/{step.calls} failed {step.failed} retrans {step.retrans_pct:.2f}% setup p99 {p99} ms"
        f" | system CPU {step.system_cpu_pct:.0f}% ({cpu_call} ms/call) RSS "
        f"{step.system_rss_mib:.0f} MiB | SIPp CPU {step.sipp_cpu_pct:.0f}% -> {step.verdict}"
        f"{extra}",
        flush=True,
    )


# --- the search, alternated ----------------------------------------------------------------------


@dataclass
class Search:
    """Doubling from the start rate until a step is not clean, then bisection between the
    highest clean rate and the lowest failed one, to `resolution`; or a fixed ladder."""

    system: str
    next_rate: int
    max_rate: int
    resolution: float
    ladder: list[int] | None = None
    best: int = 0
    failed_at: int | None = None
    done: bool = False
    steps: list[Step] = field(default_factory=list)

    def record(self, rate: int, clean: bool) -> None:
        if clean:
            self.best = max(self.best, rate)
        else:
            self.failed_at = rate if self.failed_at is None else min(self.failed_at, rate)
        if self.ladder is not None:
            later = [r for r in self.ladder if r > rate]
            if not clean or not later:
                self.done = True
            else:
                self.next_rate = later[0]
            return
        if self.failed_at is None:
            if rate >= self.max_rate:
                self.done = True
            self.next_rate = min(self.max_rate, rate * 2)
            return
        low, high = self.best, self.failed_at
        if high - low <= max(10, self.resolution * high):
            self.done = True
            return
        middle = (low + high) / 2
        grain = 50 if middle >= 500 else 10
        self.next_rate = int(round(middle / grain) * grain)
        if not low < self.next_rate < high:
            self.done = True


def run_search(
    sipp: str, pin: Pinning, systems: dict[str, System], callees: dict[str, Callee],
    args: argparse.Namespace, workdir: Path,
) -> dict[str, Search]:  # fmt: skip
    ladder = [int(r) for r in args.rates.split(",")] if args.rates else None
    searches = {
        name: Search(
            name,
            ladder[0] if ladder else args.start_rate,
            args.max_rate,
            args.resolution,
            ladder,
        )
        for name in systems
    }
    round_number = 0
    while not all(s.done for s in searches.values()) and round_number < args.max_rounds:
        round_number += 1
        for name, search in searches.items():
            if search.done:
                continue
            rate = search.next_rate
            for attempt in range(1, args.retries + 2):
                step = run_step(sipp, pin, systems[name], callees[name], args.flow, "search",
                                rate, args.step_seconds, args.hold_ms, workdir)  # fmt: skip
                step.attempt = attempt
                search.steps.append(step)
                progress(step, f"  (round {round_number})")
                if not step.clean and args.restart and name != "direct":
                    systems[name].restart()
                    step.notes.append("system restarted after this step")
                else:
                    settle(systems[name], args.settle)
                if step.clean:
                    break
            search.record(rate, step.clean)
    return searches


def run_fixed(
    sipp: str, pin: Pinning, systems: dict[str, System], callees: dict[str, Callee],
    args: argparse.Namespace, workdir: Path, phase: str, rates: dict[str, int],
) -> dict[str, Step]:  # fmt: skip
    """One step per system at its given rate, in turn (the latency probe, the overload)."""
    steps = {}
    for name, rate in rates.items():
        if rate <= 0:
            continue
        step = run_step(sipp, pin, systems[name], callees[name], args.flow, phase, rate,
                        args.step_seconds, args.hold_ms, workdir)  # fmt: skip
        progress(step)
        settle(systems[name], args.settle)
        steps[name] = step
    return steps


def run_hold(
    sipp: str, pin: Pinning, name: str, args: argparse.Namespace, workdir: Path, rate: int
) -> dict[str, Any]:
    """Memory per held call: a fresh system, then `--hold-calls` calls that stay up (hold of
    `--hold-seconds`); (memory with them up - memory before) / calls up. The caller is killed
    once they are up: this measures the calls' state, not their end."""
    calls = min(args.hold_calls, int(rate * args.hold_ramp))  # a slow system gets fewer
    callee = Callee(sipp, pin, workdir, f"{name}-hold", FLOWS["basic"][1])
    system = make_system(name, pin, workdir, callee.port, args.sessions, None)
    result: dict[str, Any] = {"system": name, "rate": rate, "calls": calls}
    try:
        system.start()
        time.sleep(1.0)
        rss0, pss0 = tree_memory_mib(system.pids())
        stats = workdir / f"{name}-hold.csv"
        hold_ms = int(args.hold_seconds * 1000)
        command = caller_command(sipp, system, FLOWS["basic"][0], rate, calls, hold_ms,
                                 args.hold_seconds + 30, stats, workdir / f"{name}-hold-err.log")
        command[command.index("-l") + 1] = str(calls + 10)
        caller = subprocess.Popen(
            pin.wrap(CLIENT_CORE, command),
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + calls / rate + 8
        up = 0
        try:
            while time.monotonic() < deadline and caller.poll() is None:
                time.sleep(1.0)
                last = read_stats(stats)
                up = int(last.get("CurrentCall", 0) or 0)
                created = int(last.get("TotalCallCreated", 0) or 0)
                if created >= calls and up >= created:
                    time.sleep(1.5)  # the last ACKs land
                    break
            last = read_stats(stats)
            up = int(last.get("CurrentCall", 0) or 0)
            failed = int(last.get("FailedCall(C)", 0) or 0)
            rss1, pss1 = tree_memory_mib(system.pids())
        finally:
            caller.kill()
            caller.wait()
        result.update(
            {
                "calls_up": up,
                "failed": failed,
                "rss_before_mib": round(rss0, 1),
                "rss_with_calls_mib": round(rss1, 1),
                "pss_before_mib": round(pss0, 1),
                "pss_with_calls_mib": round(pss1, 1),
                "kib_per_call": round(1024 * (pss1 - pss0) / up, 2) if up else None,
            }
        )
    except RuntimeError as error:
        result["error"] = str(error)
    finally:
        system.stop()
        callee.stop()
    kib = result.get("kib_per_call")
    print(
        f"[hold] {name:<15} {result.get('calls_up', 0)} calls up at {rate}/s: "
        f"{'-' if kib is None else f'{kib:.1f}'} KiB per held call "
        f"(PSS {result.get('pss_before_mib')} -> {result.get('pss_with_calls_mib')} MiB)"
        f"{' ' + result['error'] if 'error' in result else ''}",
        flush=True,
    )
    return result


# --- report --------------------------------------------------------------------------------------


def summarise(report: dict[str, Any]) -> None:
    """Max clean rate per system, CPU per call there, ratios of sipmask-memory to the others."""
    best: dict[str, dict[str, Any]] = {}
    for name, entry in report["systems"].items():
        steps = [s for s in entry["steps"] if s["phase"] == "search"]
        clean = [s for s in steps if s["clean"]]
        top = max(clean, key=lambda s: s["offered_rate"]) if clean else None
        best[name] = {
            "max_cps": top["offered_rate"] if top else 0,
            "failed_at": entry.get("failed_at"),
            "cpu_pct_at_max": top["system_cpu_pct"] if top else None,
            "cpu_ms_per_call_at_max": top["cpu_ms_per_call"] if top else None,
            "setup_p99_ms_at_max": top["setup_p99_ms"] if top else None,
        }
    report["max"] = best
    ours = best.get("sipmask-memory", {}).get("max_cps", 0)
    report["ratios"] = {
        f"sipmask-memory/{name}": round(ours / b["max_cps"], 3) if b["max_cps"] else None
        for name, b in best.items()
        if name != "sipmask-memory"
    }
    latency = report.get("latency", {})
    direct = latency.get("direct")
    added = {}
    for name, step in latency.items():
        if name == "direct" or direct is None or step["setup_p99_ms"] is None:
            continue
        if direct["setup_p99_ms"] is None:
            continue
        added[name] = {
            "rate": step["offered_rate"],
            "clean": step["clean"],
            "p50_added_ms": round(step["setup_p50_ms"] - direct["setup_p50_ms"], 3),
            "p99_added_ms": round(step["setup_p99_ms"] - direct["setup_p99_ms"], 3),
        }
    report["added_setup_delay"] = added


def markdown(report: dict[str, Any]) -> str:
    out = [
        f"sipmask load benchmark, {report['date']}, {report['machine']}; flow `{report['flow']}`,"
        f" hold {report['hold_ms']} ms, {report['sessions']} sessions; pinning: "
        f"{report['pinning']}; load average at start {report['load_average_at_start']:.2f}",
        "",
        "| system | phase | offered /s | achieved /s | ok | failed | retrans % | setup p50 ms"
        " | setup p99 ms | system CPU % (core %) | CPU ms/call | system RSS MiB | SIPp CPU %"
        " | verdict |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| --- |",
    ]
    for entry in report["systems"].values():
        for s in entry["steps"]:
            retry = " (retry)" if s["attempt"] > 1 else ""

            def num(value: Any, fmt: str = ".0f") -> str:
                return "-" if value is None else format(value, fmt)

            out.append(
                f"| {s['system']} | {s['phase']} | {s['offered_rate']:,}{retry} | "
                f"{s['achieved_rate']:,.0f} | {s['successful']:,} | {s['failed']:,} | "
                f"{s['retrans_pct']:.2f} | {num(s['setup_p50_ms'])} | {num(s['setup_p99_ms'])} | "
                f"{s['system_cpu_pct']:.0f} ({s['server_core_busy_pct']:.0f}) | "
                f"{num(s['cpu_ms_per_call'], '.3f')} | {s['system_rss_mib']:.0f} | "
                f"{s['sipp_cpu_pct']:.0f} | {s['verdict']} |"
            )
    out += [
        "",
        "| system | max clean calls/s | first not clean | CPU % there | CPU ms per call "
        "| sipmask-memory / system |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, b in report.get("max", {}).items():
        ratio = report["ratios"].get(f"sipmask-memory/{name}")
        cpu = "-" if b["cpu_pct_at_max"] is None else f"{b['cpu_pct_at_max']:.0f}"
        per = "-" if b["cpu_ms_per_call_at_max"] is None else f"{b['cpu_ms_per_call_at_max']:.3f}"
        out.append(
            f"| {name} | {b['max_cps']:,} | {b['failed_at'] or '-'} | {cpu} | {per} | "
            f"{'-' if ratio is None else f'{ratio:.2f}'} |"
        )
    if report.get("added_setup_delay"):
        out += ["", "| system | rate /s | setup p50 added ms | setup p99 added ms | clean |",
                "| --- | ---: | ---: | ---: | --- |"]  # fmt: skip
        for name, a in report["added_setup_delay"].items():
            out.append(
                f"| {name} | {a['rate']:,} | {a['p50_added_ms']:.1f} | {a['p99_added_ms']:.1f} "
                f"| {a['clean']} |"
            )
    if report.get("overload"):
        out += ["", "| system | offered /s (2x max) | ok /s | failed | retrans % | goodput / max |",
                "| --- | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
        for name, o in report["overload"].items():
            out.append(
                f"| {name} | {o['offered_rate']:,} | {o['goodput_cps']:,.0f} | {o['failed']:,} | "
                f"{o['retrans_pct']:.2f} | {o['goodput_ratio']:.2f} |"
            )
    if report.get("hold"):
        out += ["", "| system | calls up | at /s | PSS before MiB | PSS with calls MiB "
                "| KiB per held call |", "| --- | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
        for h in report["hold"]:
            kib = h.get("kib_per_call")
            out.append(
                f"| {h['system']} | {h.get('calls_up', 0):,} | {h['rate']:,} | "
                f"{h.get('pss_before_mib', '-')} | {h.get('pss_with_calls_mib', '-')} | "
                f"{'-' if kib is None else f'{kib:.1f}'} |"
            )
    return "\n".join(out)


def chart(report: dict[str, Any], path: Path) -> str | None:
    """Offered vs completed calls/s and setup p99 per system (PNG), when matplotlib is there."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, entry in report["systems"].items():
        steps = sorted(
            (s for s in entry["steps"] if s["phase"] == "search"), key=lambda s: s["offered_rate"]
        )
        if not steps:
            continue
        offered = [s["offered_rate"] for s in steps]
        good = [s["successful"] / max(s["seconds"], 1e-9) if s["clean"] else
                min(s["achieved_rate"], s["successful"] / max(s["seconds"], 1e-9))
                for s in steps]  # fmt: skip
        left.plot(offered, good, marker="o", label=name)
        p99 = [s["setup_p99_ms"] if s["setup_p99_ms"] is not None else float("nan") for s in steps]
        right.plot(offered, p99, marker="o", label=name)
    top = max([1] + [s["offered_rate"] for e in report["systems"].values() for s in e["steps"]])
    left.plot([0, top], [0, top], color="grey", linestyle=":", linewidth=1)
    left.set(xlabel="offered calls/s", ylabel="completed calls/s (ok / step wall time)",
             title="throughput")  # fmt: skip
    right.set(xlabel="offered calls/s", ylabel="setup delay p99, ms", yscale="symlog",
              title="INVITE -> 200 (SIPp -trace_rtt)")  # fmt: skip
    left.legend()
    right.legend()
    figure.suptitle(f"sipmask load benchmark {report['date']} ({report['pinning']})", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return str(path)


# --- main ----------------------------------------------------------------------------------------


def bench(args: argparse.Namespace) -> int:
    sipp = shutil.which("sipp")
    if sipp is None:
        print("sipp not on PATH (apt-get install sip-tester)", file=sys.stderr)
        return 2
    pin = Pinning(not args.no_pin)
    names = [n for n in args.systems.split(",") if n]
    for name in names:
        if name not in SYSTEMS:
            raise SystemExit(f"unknown system {name!r}; choose from {', '.join(SYSTEMS)}")
    report: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "pinning": pin.describe(),
        "load_average_at_start": os.getloadavg()[0],
        "command": " ".join(["python -m benchmarks.load", *sys.argv[1:]]),
        "sipp": subprocess.run([sipp, "-v"], capture_output=True, text=True, check=False)
        .stdout.strip()
        .splitlines()[:1],
        "flow": args.flow,
        "hold_ms": args.hold_ms,
        "sessions": args.sessions,
        "step_seconds": args.step_seconds,
        "workers": args.workers,
        "systems": {},
        "skipped": {},
    }
    print(
        f"machine: {report['machine']}; pinning: {report['pinning']}; load average "
        f"{report['load_average_at_start']:.2f}; systems {', '.join(names)}",
        flush=True,
    )
    out = Path(args.out)
    out = out if out.is_absolute() else ROOT / out
    out.parent.mkdir(parents=True, exist_ok=True)
    profile = out.with_suffix(".prof") if args.profile else None
    with tempfile.TemporaryDirectory(prefix="sipmask-load-") as tmp:
        workdir = Path(args.workdir or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        systems: dict[str, System] = {}
        callees: dict[str, Callee] = {}
        try:
            for name in names:
                callee = Callee(sipp, pin, workdir, name, FLOWS[args.flow][1])
                system = make_system(name, pin, workdir, callee.port, args.sessions,
                                     profile if name == "sipmask-memory" else None)  # fmt: skip
                try:
                    started = time.perf_counter()
                    system.start()
                    print(f"[start] {name} on port {system.port} "
                          f"({time.perf_counter() - started:.1f} s)", flush=True)  # fmt: skip
                except RuntimeError as error:
                    callee.stop()
                    system.stop()
                    report["skipped"][name] = str(error)
                    print(f"[start] {name} skipped: {error}", flush=True)
                    continue
                systems[name], callees[name] = system, callee
            searches = run_search(sipp, pin, systems, callees, args, workdir)
            for name, search in searches.items():
                report["systems"][name] = {
                    "best": search.best,
                    "failed_at": search.failed_at,
                    "steps": [asdict(s) for s in search.steps],
                }
            ours = searches.get("sipmask-memory")
            if args.latency and ours is not None and ours.best:
                rate = max(10, ours.best // 2)
                latency = run_fixed(sipp, pin, systems, callees, args, workdir, "latency",
                                    {name: rate for name in systems})  # fmt: skip
                report["latency"] = {name: asdict(s) for name, s in latency.items()}
                for name, step in latency.items():
                    report["systems"][name]["steps"].append(asdict(step))
            if args.overload and ours is not None and ours.best:
                over = run_fixed(sipp, pin, systems, callees, args, workdir, "overload",
                                 {"sipmask-memory": 2 * ours.best})  # fmt: skip
                step = over["sipmask-memory"]
                goodput = step.successful / max(step.seconds, 1e-9)
                report["overload"] = {
                    "sipmask-memory": {
                        "offered_rate": step.offered_rate,
                        "goodput_cps": round(goodput, 1),
                        "failed": step.failed,
                        "retrans_pct": step.retrans_pct,
                        "goodput_ratio": round(goodput / ours.best, 3),
                    }
                }
                report["systems"]["sipmask-memory"]["steps"].append(asdict(step))
        finally:
            for name, system in systems.items():
                status = system.stop()
                callees[name].stop()
                entry = report["systems"].setdefault(name, {"steps": []})
                entry["exit"] = status
                if isinstance(system, Sipmask):
                    tail = system.log_summary()
                    entry["log_tail"] = tail[-1500:]
                    entry["traceback"] = "Traceback" in tail
        report["hold"] = []
        for name in [n for n in args.hold_systems.split(",") if n in systems]:
            top = report["systems"][name].get("best") or args.hold_rate
            rate = max(10, min(args.hold_rate, top // 2 if top else args.hold_rate))
            report["hold"].append(run_hold(sipp, pin, name, args, workdir, rate))
    summarise(report)
    if profile is not None and profile.exists():
        report["profile"] = str(profile)
    table = markdown(report)
    out.write_text(json.dumps(report, indent=2) + "\n")
    out.with_suffix(".md").write_text(table + "\n")
    png = None if args.no_chart else chart(report, out.with_suffix(".png"))
    report["chart"] = png
    out.write_text(json.dumps(report, indent=2) + "\n")
    print()
    print(table)
    print(f"\nJSON: {out}  Markdown: {out.with_suffix('.md')}  chart: {png or 'none (matplotlib)'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--smoke", action="store_true",
                        help="a few seconds: direct + sipmask (memory, redis)")  # fmt: skip
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="comma separated")
    parser.add_argument("--flow", choices=sorted(FLOWS), default="basic")
    parser.add_argument("--rates", default="", help="a fixed ladder (calls/s) instead of a search")
    parser.add_argument("--start-rate", type=int, default=250)
    parser.add_argument("--max-rate", type=int, default=16000)
    parser.add_argument("--resolution", type=float, default=0.15,
                        help="stop bisecting when failed - clean <= this x failed")  # fmt: skip
    parser.add_argument("--max-rounds", type=int, default=8)
    parser.add_argument("--step-seconds", type=float, default=10.0)
    parser.add_argument("--hold-ms", type=int, default=0, help="call hold time in the steps")
    parser.add_argument("--retries", type=int, default=1,
                        help="a step that is not clean is run again this many times")  # fmt: skip
    parser.add_argument("--settle", type=float, default=5.0,
                        help="wait at most this long for the system to idle")  # fmt: skip
    parser.add_argument("--no-restart", dest="restart", action="store_false",
                        help="keep a system's process after a step that was not clean")  # fmt: skip
    parser.add_argument("--max-transactions", type=int, default=2_000_000,
                        help="sipmask [sip] max_transactions (10000: the default)")  # fmt: skip
    parser.add_argument("--sessions", type=int, default=1000, help="distinct callers / sessions")
    parser.add_argument("--workers", type=int, default=1,
                        help="worker processes of sipmask-redis (sipmask-memory has one)")
    parser.add_argument("--server-cores", default=None,
                        help="cores the system under test may use (taskset -c list; default 0)")
    parser.add_argument("--no-latency", dest="latency", action="store_false",
                        help="skip the probe of every system at half sipmask's max")  # fmt: skip
    parser.add_argument("--no-overload", dest="overload", action="store_false",
                        help="skip sipmask at twice its max")  # fmt: skip
    parser.add_argument("--hold-systems", default="sipmask-memory,sippy,kamailio",
                        help="systems whose memory per held call is measured")  # fmt: skip
    parser.add_argument("--hold-calls", type=int, default=3000)
    parser.add_argument("--hold-rate", type=int, default=500)
    parser.add_argument("--hold-ramp", type=float, default=12.0,
                        help="ramp seconds at most: min(hold-calls, rate x this)")  # fmt: skip
    parser.add_argument("--hold-seconds", type=float, default=120.0)
    parser.add_argument("--profile", action="store_true",
                        help="run sipmask-memory under cProfile; writes OUT.prof")  # fmt: skip
    parser.add_argument("--no-chart", action="store_true")
    parser.add_argument("--workdir", default="",
                        help="keep configs, CSVs and logs here (default: a temp dir)")  # fmt: skip
    parser.add_argument("--no-pin", action="store_true", help="do not use taskset")
    parser.add_argument("--out", default="var/bench-load.json", help="JSON (and .md, .png) path")
    args = parser.parse_args(argv)
    Sipmask.max_transactions = args.max_transactions
    Sipmask.workers = args.workers
    if args.server_cores:
        System.cores = args.server_cores
    if args.smoke:
        args.systems = ",".join(
            n for n in args.systems.split(",")
            if n in ("direct", "sipmask-memory")
            or (n == "sipmask-redis" and shutil.which("redis-server"))
        )  # fmt: skip
        args.rates = args.rates or "40"
        args.step_seconds, args.retries, args.sessions, args.settle = 1.0, 0, 20, 0.5
        args.latency = args.overload = False
        args.hold_systems, args.hold_calls, args.hold_rate = "sipmask-memory", 40, 40
        args.hold_seconds = 30.0
    return bench(args)


if __name__ == "__main__":
    sys.exit(main())
