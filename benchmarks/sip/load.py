"""Load benchmark of sipmask's SIP stack: calls/s one process answers, with SIPp as the client,
and the raw datagrams/s of the transport alone. See benchmarks/sip/README.md.

Run from the repository root:

    .venv/bin/python benchmarks/sip/load.py                  # full ladder, ~5-8 minutes
    .venv/bin/python benchmarks/sip/load.py --smoke          # one short step per case, ~10 s

Everything runs on 127.0.0.1, every step is bounded in calls and seconds, and every child
process (server, SIPp, blaster) is killed when this script exits. With two or more CPUs the
server under test is pinned to one core (`taskset -c 0`) and the load generator (SIPp or the
blaster) to another (`taskset -c 1`).

The same file is also the child programs (internal options):

    load.py --serve stack|echo|listener --listen udp:127.0.0.1:0   # a server under test
    load.py --blast HOST PORT --count N                            # the UDP blaster
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import ctypes
import gc
import json
import os
import platform
import resource
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

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run as a script: make `import sipmask` find the checkout

HERE = Path(__file__).resolve().parent
HOST = "127.0.0.1"
SERVER_CORE = "0"
CLIENT_CORE = "1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
# The layer's bound counts transactions in progress only (no final response yet), so lingering
# UDP transactions no longer fill it; the ladder still measures the stack, not the bound, so its
# server gets a larger one (--max-transactions).
BENCH_MAX_TRANSACTIONS = 2_000_000


# --- the child processes ---------------------------------------------------------------------


def _die_with_parent() -> None:
    """preexec_fn: the child gets SIGTERM if this process dies (Linux prctl PR_SET_PDEATHSIG);
    it survives the exec of taskset and of the program taskset runs."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


class _Echo(asyncio.DatagramProtocol):
    """The loop's limit: every datagram is sent straight back, nothing parsed."""

    def __init__(self) -> None:
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.transport.sendto(data, addr)


class GcPauses:
    """Counts the cyclic garbage collector's pauses per generation (gc.callbacks)."""

    def __init__(self) -> None:
        self.count = [0, 0, 0]
        self.total = [0.0, 0.0, 0.0]
        self.longest = [0.0, 0.0, 0.0]
        self._start = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
            return
        generation, pause = info["generation"], time.perf_counter() - self._start
        self.count[generation] += 1
        self.total[generation] += pause
        self.longest[generation] = max(self.longest[generation], pause)

    def summary(self) -> dict[str, Any]:
        return {
            f"gen{g}": {
                "collections": self.count[g],
                "total_ms": round(1000 * self.total[g], 1),
                "longest_ms": round(1000 * self.longest[g], 1),
            }
            for g in range(3)
        }


async def _serve(
    kind: str, listen: list[str], max_transactions: int, lifetime: float, rcvbuf: int
) -> None:
    from sipmask.sip.layer import TransactionLayer
    from sipmask.transport.endpoint import LOOPBACK, ListenSpec, SipEndpoint
    from sipmask.transport.responder import Responder
    from sipmask.transport.udp import open_udp, parse_networks

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    loop.call_later(lifetime, stop.set)  # a safety net: never outlive a forgotten benchmark
    closers: list[Any] = []
    responder = None
    pauses = GcPauses()
    try:
        if kind == "stack":
            responder = Responder()
            layer = TransactionLayer(max_transactions=max_transactions)
            endpoint = SipEndpoint(responder.handle, layer=layer, allowed=LOOPBACK)
            closers.append(endpoint.close)
            for text in listen:
                spec = ListenSpec.parse(text)
                bound = await endpoint.listen(spec)
                print(f"listening {spec.transport} {bound.host} {bound.port}")
            if rcvbuf:
                # A diagnosis: the stack leaves SO_RCVBUF at the kernel default (net.core.
                # rmem_default); reaching into the listener's transport is the benchmark's
                # business only.
                for udp_listener in endpoint.udp:
                    transport = udp_listener._transport  # noqa: SLF001
                    assert transport is not None
                    sock = transport.get_extra_info("socket")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        else:
            spec = ListenSpec.parse(listen[0])
            if kind == "echo":
                transport, _ = await loop.create_datagram_endpoint(
                    _Echo, local_addr=(spec.bind.host, spec.bind.port)
                )
                name = transport.get_extra_info("sockname")
                closers.append(transport.close)
            else:  # "listener": sipmask's UdpListener (source check, size limit), no SIP

                def bounce(data: bytes, source: Any, listener: Any) -> None:
                    listener.send(data, source)

                udp = await open_udp(loop, spec.bind, bounce, parse_networks(LOOPBACK))
                name = (udp.local.host, udp.local.port) if udp.local else ("?", 0)
                closers.append(udp.close)
            print(f"listening udp {name[0]} {name[1]}")
        print("ready", flush=True)
        await stop.wait()
    finally:
        if responder is not None:
            responder.close()
        for close in closers:
            result = close()
            if asyncio.iscoroutine(result):
                await result
        print("gc " + json.dumps(pauses.summary()), flush=True)


def serve_main(args: argparse.Namespace) -> int:
    from sipmask.transport import runtime

    if args.server_gc == "off":
        gc.disable()
    runtime.run(
        _serve(
            args.serve,
            args.listen or [f"udp:{HOST}:0"],
            args.max_transactions,
            args.lifetime,
            args.server_rcvbuf,
        )
    )
    return 0


OPTIONS_TEMPLATE = (
    "OPTIONS sip:{rhost}:{rport} SIP/2.0\r\n"
    "Via: SIP/2.0/UDP {lhost}:{lport};branch=z9hG4bK-blast-{n};rport\r\n"
    "Max-Forwards: 70\r\n"
    "From: <sip:blast@{lhost}:{lport}>;tag=blast{n}\r\n"
    "To: <sip:{rhost}:{rport}>\r\n"
    "Call-ID: blast-{n}@{lhost}\r\n"
    "CSeq: 1 OPTIONS\r\n"
    "Contact: <sip:blast@{lhost}:{lport}>\r\n"
    "Accept: application/sdp\r\n"
    "Content-Length: 0\r\n\r\n"
)


def blast_main(args: argparse.Namespace) -> int:
    """Send `count` distinct OPTIONS datagrams keeping at most `window` unanswered; a wait of
    1 s without any answer writes the unanswered ones off as lost. Prints one JSON line."""
    rhost, rport = args.blast[0], int(args.blast[1])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((HOST, 0))
    sock.connect((rhost, rport))
    sock.settimeout(1.0)
    lhost, lport = sock.getsockname()
    template = OPTIONS_TEMPLATE.replace("{rhost}", rhost).replace("{rport}", str(rport))
    template = template.replace("{lhost}", lhost).replace("{lport}", str(lport))
    parts = template.split("{n}")  # the message is parts[0] n parts[1] n parts[2] n parts[3]
    encoded = [p.encode() for p in parts]
    count, window = args.count, args.window
    sent = received = lost = 0
    size = 0
    send, recv = sock.send, sock.recv
    cpu_start = time.process_time()
    start = time.perf_counter()
    deadline = start + args.deadline
    last = start
    while received + lost < count:
        while sent < count and sent - received - lost < window:
            n = str(sent).encode()
            msg = n.join(encoded)
            size = len(msg)
            send(msg)
            sent += 1
        try:
            recv(65535)
            received += 1
            last = time.perf_counter()
        except TimeoutError:
            lost = sent - received
            if time.perf_counter() > deadline:
                break
        if last > deadline:
            lost = sent - received
            break
    elapsed = last - start
    cpu = time.process_time() - cpu_start
    print(
        json.dumps(
            {
                "sent": sent,
                "received": received,
                "lost": lost,
                "seconds": elapsed,
                "request_bytes": size,
                "rate": received / elapsed if elapsed > 0 else 0.0,
                "client_cpu_pct": 100 * cpu / elapsed if elapsed > 0 else 0.0,
            }
        )
    )
    return 0


# --- measuring a process ---------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` from /proc/PID/stat, in seconds."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def memory_mib(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of `pid` in MiB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values.get("VmRSS", 0.0), values.get("VmHWM", 0.0)


def core_busy() -> dict[str, float]:
    """Busy seconds (all but idle and iowait) of each CPU so far, from /proc/stat."""
    busy = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if name.startswith("cpu") and name != "cpu":
            ticks = [int(v) for v in values[:8]]
            busy[name[3:]] = (sum(ticks) - ticks[3] - ticks[4]) / CLK_TCK
    return busy


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Pinning:
    def __init__(self, enabled: bool) -> None:
        self.taskset = shutil.which("taskset")
        self.enabled = bool(enabled and self.taskset and (os.cpu_count() or 1) >= 2)

    def wrap(self, core: str, command: list[str]) -> list[str]:
        if not self.enabled:
            return command
        assert self.taskset is not None
        return [self.taskset, "-c", core, *command]

    def describe(self) -> str:
        if not self.enabled:
            return "none (taskset missing, fewer than 2 CPUs, or --no-pin)"
        return f"server on core {SERVER_CORE}, load generator on core {CLIENT_CORE} (taskset -c)"


class Server:
    """A server under test as a child process (pinned), started and waited for `ready`."""

    def __init__(
        self,
        pin: Pinning,
        kind: str,
        listen: list[str],
        max_transactions: int,
        server_gc: str = "on",
        server_rcvbuf: int = 0,
    ):
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--serve",
            kind,
            "--max-transactions",
            str(max_transactions),
            "--server-gc",
            server_gc,
            "--server-rcvbuf",
            str(server_rcvbuf),
        ]
        for text in listen:
            command += ["--listen", text]
        self.process = subprocess.Popen(
            pin.wrap(SERVER_CORE, command),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            preexec_fn=_die_with_parent,
        )
        self.ports: dict[str, int] = {}
        self.errors = ""
        self.gc: dict[str, Any] | None = None
        assert self.process.stdout is not None
        for line in self.process.stdout:
            words = line.split()
            if words and words[0] == "listening":
                self.ports[words[1]] = int(words[3])
            if words == ["ready"]:
                break
        if not self.ports:
            self.stop()
            raise RuntimeError(f"server {kind} did not start: {self.errors}")

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        try:
            rest, self.errors = self.process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            rest, self.errors = self.process.communicate()
        for line in (rest or "").splitlines():
            if line.startswith("gc "):
                self.gc = json.loads(line[3:])


# --- SIPp ladders ----------------------------------------------------------------------------


@dataclass
class Case:
    name: str
    transport: str  # udp | tcp
    scenario: str  # file in benchmarks/sip/
    requests_per_call: int  # requests SIPp sends per call (the retransmission base)


CASES = [
    Case("options-udp", "udp", "options.xml", 1),
    Case("invite-udp", "udp", "invite_uac.xml", 3),
    Case("options-tcp", "tcp", "options.xml", 1),
]


@dataclass
class Step:
    case: str
    offered_rate: int
    calls: int
    sipp_exit: int = -1
    achieved_rate: float = 0.0
    successful: int = 0
    failed: int = 0
    retransmissions: int = 0
    retrans_pct: float = 0.0
    unexpected: int = 0
    rtt_mean_ms: float | None = None
    rtt_p50_ms: float | None = None
    rtt_p99_ms: float | None = None
    rtt_max_ms: float | None = None
    seconds: float = 0.0
    server_cpu_pct: float = 0.0
    sipp_cpu_pct: float = 0.0
    server_core_busy_pct: float = 0.0
    client_core_busy_pct: float = 0.0
    attempt: int = 1
    server_rss_mib: float = 0.0
    server_peak_rss_mib: float = 0.0
    clean: bool = False
    verdict: str = ""
    notes: list[str] = field(default_factory=list)


def read_rtts(workdir: Path) -> list[float]:
    """SIPp's response times (ms) from every `*_rtt.csv` in `workdir` (`-trace_rtt`)."""
    rtts: list[float] = []
    for path in workdir.glob("*_rtt.csv"):
        with path.open(newline="") as handle:
            for row in csv.reader(handle, delimiter=";"):
                try:
                    rtts.append(float(row[1]))
                except (IndexError, ValueError):
                    continue  # the header line
    return rtts


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def run_sipp_step(
    sipp: str,
    pin: Pinning,
    server: Server,
    case: Case,
    rate: int,
    calls: int,
    step_seconds: float,
    workdir: Path,
) -> Step:
    step = Step(case.name, rate, calls)
    port = server.ports[case.transport]
    stats = workdir / f"{case.name}-{rate}.csv"
    errors = workdir / f"{case.name}-{rate}-errors.log"
    limit = step_seconds + 15  # SIPp's own global timeout, then a hard one around it
    command = [
        sipp,
        f"{HOST}:{port}",
        "-sf",
        str(HERE / case.scenario),
        "-i",
        HOST,
        "-t",
        "t1" if case.transport == "tcp" else "u1",
        "-r",
        str(rate),
        "-m",
        str(calls),
        "-l",
        str(max(100, rate * 2)),
        "-recv_timeout",
        "5000",
        "-timeout",
        f"{int(limit)}s",
        "-timeout_error",
        "-nostdin",
        "-trace_stat",
        "-stf",
        str(stats),
        "-fd",
        "1",
        "-trace_rtt",
        "-rtt_freq",
        str(max(1, min(1000, calls // 10))),
        "-trace_err",
        "-error_file",
        str(errors),
    ]
    for old in workdir.glob("*_rtt.csv"):
        old.unlink()
    busy0 = core_busy()
    cpu0, child0, wall0 = cpu_seconds(server.pid), children_cpu(), time.perf_counter()
    try:
        result = subprocess.run(
            pin.wrap(CLIENT_CORE, command),
            cwd=workdir,
            capture_output=True,
            text=True,
            timeout=limit + 15,
            check=False,
            preexec_fn=_die_with_parent,
        )
        step.sipp_exit = result.returncode
    except subprocess.TimeoutExpired:
        step.sipp_exit = -9
        step.notes.append("sipp killed after its time limit")
    wall = time.perf_counter() - wall0
    step.seconds = wall
    step.server_cpu_pct = 100 * (cpu_seconds(server.pid) - cpu0) / wall
    step.sipp_cpu_pct = 100 * (children_cpu() - child0) / wall
    busy1 = core_busy()
    if pin.enabled:
        step.server_core_busy_pct = 100 * (busy1[SERVER_CORE] - busy0[SERVER_CORE]) / wall
        step.client_core_busy_pct = 100 * (busy1[CLIENT_CORE] - busy0[CLIENT_CORE]) / wall
    step.server_rss_mib, step.server_peak_rss_mib = memory_mib(server.pid)
    if stats.exists():
        with stats.open(newline="") as handle:
            rows = list(csv.reader(handle, delimiter=";"))
        if len(rows) >= 2:
            last = dict(zip(rows[0], rows[-1], strict=False))
            step.successful = int(last["SuccessfulCall(C)"])
            step.failed = int(last["FailedCall(C)"])
            step.retransmissions = int(last["Retransmissions(C)"])
            step.unexpected = int(last.get("FailedUnexpectedMessage(C)", 0)) + int(
                last.get("OutOfCallMsgs(C)", 0)
            )
            step.achieved_rate = float(last["CallRate(C)"])
            created = int(last["TotalCallCreated"]) or 1
            step.retrans_pct = 100 * step.retransmissions / (created * case.requests_per_call)
    rtts = read_rtts(workdir)
    if rtts:
        step.rtt_mean_ms = round(sum(rtts) / len(rtts), 3)
        step.rtt_p50_ms = _percentile(rtts, 0.50)
        step.rtt_p99_ms = _percentile(rtts, 0.99)
        step.rtt_max_ms = max(rtts)
    problems = []
    if step.sipp_exit != 0:
        problems.append(f"sipp exit {step.sipp_exit}")
    if step.failed:
        problems.append(f"{step.failed} failed")
    if step.successful < calls:
        problems.append(f"{calls - step.successful} calls missing")
    if step.retrans_pct > 1.0:
        problems.append(f"retransmissions {step.retrans_pct:.1f}% > 1%")
    if step.achieved_rate < 0.95 * rate:
        problems.append(f"SIPp reached {step.achieved_rate:.0f}/s < 95% of {rate}/s")
    step.clean = not problems
    step.verdict = "clean" if step.clean else "; ".join(problems)
    if errors.exists() and not step.clean:
        tail = errors.read_text(errors="replace").strip().splitlines()[-3:]
        step.notes.extend(tail)
    return step


def run_ladder(
    sipp: str,
    pin: Pinning,
    case: Case,
    rates: list[int],
    step_seconds: float,
    max_calls: int,
    max_transactions: int,
    server_gc: str,
    server_rcvbuf: int,
    retries: int,
    workdir: Path,
) -> dict[str, Any]:
    listen = [f"{case.transport}:{HOST}:0"]
    server = Server(pin, "stack", listen, max_transactions, server_gc, server_rcvbuf)
    steps: list[Step] = []
    best = 0
    try:
        for rate in rates:
            calls = max(1, min(max_calls, int(rate * step_seconds)))
            for attempt in range(1, retries + 2):
                step = run_sipp_step(sipp, pin, server, case, rate, calls, step_seconds, workdir)
                step.attempt = attempt
                steps.append(step)
                rtt = "-" if step.rtt_mean_ms is None else f"{step.rtt_mean_ms:.2f}"
                print(
                    f"[{case.name}] offered {rate}/s x {calls}"
                    f"{f' (retry {attempt - 1})' if attempt > 1 else ''}: ok {step.successful} "
                    f"failed {step.failed} retrans {step.retransmissions} "
                    f"({step.retrans_pct:.2f}%) rtt {rtt} ms, server CPU "
                    f"{step.server_cpu_pct:.0f}% (core {step.server_core_busy_pct:.0f}%) RSS "
                    f"{step.server_rss_mib:.0f} MiB, SIPp CPU {step.sipp_cpu_pct:.0f}% (core "
                    f"{step.client_core_busy_pct:.0f}%): {step.verdict}",
                    flush=True,
                )
                if step.clean:
                    break
            if not step.clean:
                break
            best = rate
    finally:
        server.stop()
    if server.gc:
        print(
            f"[{case.name}] server GC pauses: "
            + ", ".join(
                f"{g} {v['collections']}x total {v['total_ms']} ms longest {v['longest_ms']} ms"
                for g, v in server.gc.items()
            ),
            flush=True,
        )
    return {
        "case": case.name,
        "transport": case.transport,
        "scenario": case.scenario,
        "max_transactions": max_transactions,
        "highest_clean_rate": best,
        "steps": [asdict(s) for s in steps],
        "server_exit": server.process.returncode,
        "server_gc": server_gc,
        "server_rcvbuf": server_rcvbuf,
        "server_gc_pauses": server.gc,
        "server_stderr_tail": server.errors[-2000:],
    }


# --- raw datagram rate -----------------------------------------------------------------------


RAW_SERVERS = [
    ("echo", "asyncio DatagramProtocol on the loop: sendto(data) back, nothing parsed"),
    ("listener", "sipmask UdpListener (source check, size limit): sends the datagram back"),
    ("stack", "UdpListener + TransactionLayer + Responder: OPTIONS answered 200"),
]


def run_raw(
    pin: Pinning, count: int, window: int, deadline: float, repeat: int
) -> list[dict[str, Any]]:
    results = []
    for kind, what in [server for _ in range(repeat) for server in RAW_SERVERS]:
        server = Server(pin, kind, [f"udp:{HOST}:0"], BENCH_MAX_TRANSACTIONS)
        try:
            port = server.ports["udp"]
            command = [
                sys.executable,
                str(Path(__file__).resolve()),
                "--blast",
                HOST,
                str(port),
                "--count",
                str(count),
                "--window",
                str(window),
                "--deadline",
                str(deadline),
            ]
            cpu0, busy0, wall0 = cpu_seconds(server.pid), core_busy(), time.perf_counter()
            done = subprocess.run(
                pin.wrap(CLIENT_CORE, command),
                capture_output=True,
                text=True,
                timeout=deadline + 30,
                check=False,
                preexec_fn=_die_with_parent,
            )
            server_cpu = cpu_seconds(server.pid) - cpu0
            busy1, wall = core_busy(), time.perf_counter() - wall0
            rss, peak = memory_mib(server.pid)
        finally:
            server.stop()
        if done.returncode != 0:
            raise RuntimeError(f"blaster failed: {done.stderr}")
        blast = json.loads(done.stdout.strip().splitlines()[-1])
        # The server idles but for the blast, so its CPU time over the blast's seconds is its
        # load while answering (ticks of 10 ms: rough for a sub-second blast).
        cpu = 100 * server_cpu / blast["seconds"] if blast["seconds"] > 0 else 0.0
        client_cpu = blast["client_cpu_pct"]
        row = {
            "server": kind,
            "what": what,
            **blast,
            "server_cpu_pct": cpu,
            # the server's core over the whole run, the blaster's start-up included
            "server_core_busy_pct": 100 * (busy1[SERVER_CORE] - busy0[SERVER_CORE]) / wall
            if pin.enabled
            else 0.0,
            "server_rss_mib": rss,
            "server_peak_rss_mib": peak,
        }
        results.append(row)
        print(
            f"[raw {kind}] {blast['received']}/{blast['sent']} answered in "
            f"{blast['seconds']:.2f} s = {blast['rate']:,.0f} datagrams/s, lost {blast['lost']}, "
            f"server CPU {cpu:.0f}%, blaster CPU {client_cpu:.0f}%",
            flush=True,
        )
    return results


# --- report ----------------------------------------------------------------------------------


def markdown(report: dict[str, Any]) -> str:
    out = [
        f"sipmask SIP load benchmark, {report['date']}, {report['machine']}, "
        f"loop {report['loop']}, pinning: {report['pinning']}",
        "",
        "| case | offered /s | achieved /s | ok | failed | retrans % | rtt mean ms | rtt p99 ms"
        " | server CPU % (core %) | server RSS MiB | SIPp CPU % (core %) | verdict |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for ladder in report["ladders"]:
        for s in ladder["steps"]:
            rtt = "-" if s["rtt_mean_ms"] is None else f"{s['rtt_mean_ms']:.2f}"
            p99 = "-" if s["rtt_p99_ms"] is None else f"{s['rtt_p99_ms']:.0f}"
            retry = " (retry)" if s["attempt"] > 1 else ""
            out.append(
                f"| {s['case']} | {s['offered_rate']:,}{retry} | {s['achieved_rate']:,.0f} | "
                f"{s['successful']:,} | {s['failed']:,} | {s['retrans_pct']:.2f} | {rtt} | "
                f"{p99} | {s['server_cpu_pct']:.0f} ({s['server_core_busy_pct']:.0f}) | "
                f"{s['server_rss_mib']:.0f} | {s['sipp_cpu_pct']:.0f} "
                f"({s['client_core_busy_pct']:.0f}) | {s['verdict']} |"
            )
    out += ["", "| case | highest clean rate (calls/s) |", "| --- | ---: |"]
    for ladder in report["ladders"]:
        out.append(f"| {ladder['case']} | {ladder['highest_clean_rate']:,} |")
    if report["raw"]:
        out += [
            "",
            "| raw server | best datagrams/s | every run /s | answered | lost | seconds "
            "| server CPU % (core %) | blaster CPU % |",
            "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for kind, _ in RAW_SERVERS:
            runs = [r for r in report["raw"] if r["server"] == kind]
            if not runs:
                continue
            r = max(runs, key=lambda run: run["rate"])
            every = ", ".join(f"{run['rate']:,.0f}" for run in runs)
            out.append(
                f"| {kind} | {r['rate']:,.0f} | {every} | {r['received']:,} | {r['lost']:,} | "
                f"{r['seconds']:.2f} | {r['server_cpu_pct']:.0f} "
                f"({r['server_core_busy_pct']:.0f}) | {r['client_cpu_pct']:.0f} |"
            )
    return "\n".join(out)


def machine() -> str:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs ({model}), Linux {platform.release()}"


def bench_main(args: argparse.Namespace) -> int:
    from sipmask.transport import runtime

    pin = Pinning(not args.no_pin)
    sipp = shutil.which("sipp")
    if args.smoke:
        rates, step_seconds, max_calls = [args.smoke_rate], 1.0, args.smoke_rate
        raw_count, raw_repeat = 2000, 1
    else:
        raw_repeat = args.raw_repeat
        rates = [int(r) for r in args.rates.split(",")]
        step_seconds, max_calls, raw_count = args.step_seconds, args.max_calls, args.raw_count
    cases = [c for c in CASES if not args.cases or c.name in args.cases.split(",")]
    load1 = os.getloadavg()[0]
    report: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "python": platform.python_version(),
        "loop": runtime.loop_name(),
        "pinning": pin.describe(),
        "load_average_at_start": load1,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "step_seconds": step_seconds,
        "max_calls": max_calls,
        "sipp": None,
        "ladders": [],
        "raw": [],
    }
    print(
        f"machine: {report['machine']}; loop {report['loop']}; pinning: {report['pinning']}; "
        f"load average {load1:.2f}",
        flush=True,
    )
    if sipp is None:
        print("sipp not on PATH (apt-get install sip-tester): SIPp ladders skipped", flush=True)
    else:
        version = subprocess.run([sipp, "-v"], capture_output=True, text=True, check=False)
        report["sipp"] = (version.stdout + version.stderr).strip().splitlines()[0:1]
        with tempfile.TemporaryDirectory(prefix="sipmask-bench-") as tmp:
            for case in cases:
                report["ladders"].append(
                    run_ladder(
                        sipp,
                        pin,
                        case,
                        rates,
                        step_seconds,
                        max_calls,
                        args.max_transactions,
                        args.server_gc,
                        args.server_rcvbuf,
                        args.retries,
                        Path(tmp),
                    )
                )
    if not args.no_raw:
        report["raw"] = run_raw(
            pin, raw_count, args.window, 30.0 if not args.smoke else 10.0, raw_repeat
        )
    out = Path(args.out)
    if not out.is_absolute():
        out = ROOT / out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print()
    print(markdown(report))
    print(f"\nJSON written to {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="one short step per case (~10 s)")
    parser.add_argument("--smoke-rate", type=int, default=200, help="calls/s of the smoke step")
    parser.add_argument(
        "--rates",
        default="500,1000,2000,3000,4000,6000,8000,12000,16000",
        help="the ladder, calls/s, comma separated",
    )
    parser.add_argument("--step-seconds", type=float, default=8.0, help="length of a step")
    parser.add_argument("--max-calls", type=int, default=60_000, help="calls per step at most")
    parser.add_argument("--cases", default="", help="subset of: " + ",".join(c.name for c in CASES))
    parser.add_argument(
        "--max-transactions",
        type=int,
        default=BENCH_MAX_TRANSACTIONS,
        help="the server layer's bound on transactions in flight",
    )
    parser.add_argument(
        "--server-gc",
        choices=["on", "off"],
        default="on",
        help="off: the server runs with gc.disable() (a diagnosis, not a setting)",
    )
    parser.add_argument(
        "--server-rcvbuf",
        type=int,
        default=0,
        help="SO_RCVBUF the ladder's UDP listener asks for (0: kernel default; "
        "a diagnosis, the stack has no such setting)",
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=1,
        help="times a step that is not clean is run again before the ladder stops",
    )
    parser.add_argument(
        "--raw-repeat",
        type=int,
        default=3,
        help="raw runs per server, interleaved; the table shows each server's best",
    )
    parser.add_argument("--raw-count", type=int, default=100_000, help="datagrams per raw run")
    parser.add_argument(
        "--window",
        type=int,
        default=96,
        help="blaster: unanswered datagrams at most (the server's default 208 KiB "
        "receive buffer holds ~125 OPTIONS; more are dropped)",
    )
    parser.add_argument("--no-raw", action="store_true", help="skip the raw datagram runs")
    parser.add_argument("--no-pin", action="store_true", help="do not use taskset")
    parser.add_argument("--out", default="var/bench-sip.json", help="JSON report path")
    # internal: the child programs
    parser.add_argument("--serve", choices=["stack", "echo", "listener"], help=argparse.SUPPRESS)
    parser.add_argument("--listen", action="append", help=argparse.SUPPRESS)
    parser.add_argument("--lifetime", type=float, default=1800.0, help=argparse.SUPPRESS)
    parser.add_argument("--blast", nargs=2, metavar=("HOST", "PORT"), help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=10_000, help=argparse.SUPPRESS)
    parser.add_argument("--deadline", type=float, default=30.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        return serve_main(args)
    if args.blast:
        return blast_main(args)
    return bench_main(args)


if __name__ == "__main__":
    sys.exit(main())
