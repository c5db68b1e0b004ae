"""Where the stack's time per OPTIONS goes, without sockets: distinct OPTIONS requests are fed
straight into a `SipEndpoint` (the path `UdpListener.datagram_received` takes after its
source check) with the benchmark's `Responder` answering, first timed, then under cProfile.

    .venv/bin/python benchmarks/sip/profile_stack.py [--count 20000] [--top 20] [--gc off]

Bounded (count messages, no network, no children); prints µs per OPTIONS and the top
functions by own time. `--gc off` runs with the collector disabled. A diagnosis aid beside
load.py, not a benchmark of record.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from load import OPTIONS_TEMPLATE  # noqa: E402  (benchmarks/sip/ is on sys.path as a script)

from sipmask.sip.events import Address  # noqa: E402
from sipmask.sip.layer import TransactionLayer  # noqa: E402
from sipmask.transport import runtime  # noqa: E402
from sipmask.transport.endpoint import SipEndpoint  # noqa: E402
from sipmask.transport.responder import Responder  # noqa: E402


class _Socketless:
    """Stands in for the UdpListener: counts what the endpoint sends."""

    transport_name = "UDP"
    reliable = False

    def __init__(self) -> None:
        self.sent = 0

    def send(self, data: bytes, dest: Address) -> None:
        self.sent += 1


async def _run(count: int, profile: cProfile.Profile | None) -> float:
    responder = Responder()
    endpoint = SipEndpoint(responder.handle, layer=TransactionLayer(max_transactions=10**7))
    listener = _Socketless()
    source = Address("127.0.0.1", 40000)
    template = OPTIONS_TEMPLATE.format(
        rhost="127.0.0.1", rport=5060, lhost=source.host, lport=source.port, n="{n}"
    )
    messages = [template.replace("{n}", str(i)).encode() for i in range(count)]
    receive = endpoint._on_datagram  # noqa: SLF001  (the listener's entry into the endpoint)
    start = time.perf_counter()
    if profile is not None:
        profile.enable()
    for message in messages:
        receive(message, source, listener)  # type: ignore[arg-type]
    if profile is not None:
        profile.disable()
    elapsed = time.perf_counter() - start
    assert listener.sent == count, (listener.sent, count)
    responder.close()
    await endpoint.close()
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument(
        "--gc",
        choices=["on", "off"],
        default="on",
        help="off: gc.disable() first (with it on, a collection's pause is charged to "
        "whichever function happened to allocate)",
    )
    args = parser.parse_args()
    if args.gc == "off":
        gc.disable()
    elapsed = runtime.run(_run(args.count, None))
    print(
        f"{args.count} OPTIONS answered in {elapsed:.2f} s: {1e6 * elapsed / args.count:.1f} µs "
        f"each ({args.count / elapsed:,.0f}/s), loop {runtime.loop_name()}, gc {args.gc}, "
        "no sockets"
    )
    profile = cProfile.Profile()
    runtime.run(_run(args.count, profile))
    pstats.Stats(profile).sort_stats("tottime").print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
