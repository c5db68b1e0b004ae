"""Measure what half-open TCP connections cost a sipmask endpoint (issue 13, defect 5).

A server process runs a `SipEndpoint` with one TCP listener (uvloop when installed); this
process opens N connections to it, each sending the start of a message that never ends (a
header section promising a body, and part of that body), then reads the server's RSS.
Numbers, not pass/fail (the bounded-buffering test is tests/transport/test_stream.py).

    PYTHONPATH=$PWD python tests/transport/measure_tcp_memory.py --connections 4000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time

SERVER = r"""
import asyncio, json, os, sys
try:
    import uvloop
    uvloop.install()
except ImportError:
    pass
from sipmask.transport.endpoint import SipEndpoint

def rss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0

async def main():
    endpoint = SipEndpoint(lambda ep, ev: None, allowed=("127.0.0.0/8",),
                           max_connections=100_000, **json.loads(sys.argv[1]))
    if hasattr(endpoint.tcp, "max_per_source"):
        endpoint.tcp.max_per_source = 100_000  # one test client address opens them all
    bound = await endpoint.listen("tcp:127.0.0.1:0")
    print(json.dumps({"port": bound.port, "rss": rss()}), flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while (line := await reader.readline()):
        stats = {"rss": rss(), "open": len(endpoint.tcp),
                 "buffered": getattr(endpoint.tcp, "buffered", None)}
        print(json.dumps(stats), flush=True)

asyncio.run(main())
"""


def partial_message(body: int, sent: int) -> bytes:
    head = (
        "INVITE sip:+918045671234@127.0.0.1 SIP/2.0\r\n"
        "Via: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bKhalfopen\r\n"
        "From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:b@127.0.0.1>\r\nCall-ID: half\r\n"
        f"CSeq: 1 INVITE\r\nContent-Type: application/sdp\r\nContent-Length: {body}\r\n\r\n"
    ).encode()
    return head + b"v" * sent


async def measure(connections: int, body: int, sent: int, options: dict[str, object]) -> None:
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, json.dumps(options)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert server.stdin is not None and server.stdout is not None

    def ask() -> dict[str, int]:
        assert server.stdin is not None and server.stdout is not None
        server.stdin.write("?\n")
        server.stdin.flush()
        return json.loads(server.stdout.readline())  # type: ignore[no-any-return]

    start = json.loads(server.stdout.readline())
    port = start["port"]
    await asyncio.sleep(0.5)
    before = ask()
    writers = []
    data = partial_message(body, sent)
    for _ in range(connections):
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(data)
        writers.append(writer)
    for writer in writers:
        await writer.drain()
    await asyncio.sleep(2.0)  # let the server read everything (a measurement, not a test)
    during = ask()
    for writer in writers:
        writer.close()
    await asyncio.sleep(2.0)
    after = ask()
    server.stdin.close()
    server.terminate()
    server.wait()
    mib = 1024 * 1024
    print(json.dumps({
        "connections": connections, "promised_body": body, "sent_per_connection": len(data),
        "options": options,
        "rss_before_mib": round(before["rss"] / mib, 1),
        "rss_with_connections_mib": round(during["rss"] / mib, 1),
        "cost_mib": round((during["rss"] - before["rss"]) / mib, 1),
        "open_during": during["open"], "buffered_during": during["buffered"],
        "rss_after_close_mib": round(after["rss"] / mib, 1), "open_after": after["open"],
    }))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=4000)
    parser.add_argument("--body", type=int, default=60_000, help="Content-Length promised")
    parser.add_argument("--sent", type=int, default=59_000, help="body octets actually sent")
    parser.add_argument("--options", default="{}", help="SipEndpoint keyword arguments, JSON")
    args = parser.parse_args()
    began = time.monotonic()
    asyncio.run(measure(args.connections, args.body, args.sent, json.loads(args.options)))
    print(f"# {time.monotonic() - began:.1f} s, pid {os.getpid()}", file=sys.stderr)


if __name__ == "__main__":
    main()
