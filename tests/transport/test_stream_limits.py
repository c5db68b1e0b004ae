"""Bounded TCP/TLS (issue 13, defect 5): the buffered-bytes cap over all connections, the
per-source connection cap, the message (slowloris) timeout, the gauges, buffers given back
when connections close, and a bounded close with a TLS peer that never says goodbye."""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess
import threading
from pathlib import Path

import pytest
from transport_helpers import BOUND, LOOPS, request, run, wait_until

from sipmask.sip.events import Address
from sipmask.transport.endpoint import SipEndpoint
from sipmask.transport.responder import Responder
from sipmask.transport.stream import server_context

pytestmark = pytest.mark.parametrize("loop", LOOPS)


def partial(body: int, sent: int) -> bytes:
    """The start of a message that promises `body` octets and sends `sent` of them."""
    return (
        "INVITE sip:+918045671234@127.0.0.1 SIP/2.0\r\n"
        "Via: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bKpartial\r\n"
        "From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:b@127.0.0.1>\r\nCall-ID: partial\r\n"
        f"CSeq: 1 INVITE\r\nContent-Length: {body}\r\n\r\n"
    ).encode() + b"v" * sent


async def _endpoint(**options: object) -> tuple[SipEndpoint, Address]:
    endpoint = SipEndpoint(Responder().handle, **options)  # type: ignore[arg-type]
    return endpoint, await endpoint.listen("tcp:127.0.0.1:0")


async def _open(server: Address, data: bytes) -> asyncio.StreamWriter:
    _, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(data)
    await writer.drain()
    return writer


async def _close(writers: list[asyncio.StreamWriter]) -> None:
    for writer in writers:
        writer.close()
    for writer in writers:
        try:
            await writer.wait_closed()
        except ConnectionError:
            pass


def test_unfinished_messages_are_bounded_by_the_shared_cap_and_given_back(loop):
    cap, each = 40_000, 9_000

    async def main() -> None:
        endpoint, server = await _endpoint(max_buffered=cap, max_connections_per_source=100)
        writers = []
        try:
            for _ in range(20):  # 20 x 9 kB unfinished: 180 kB asked for, 40 kB allowed
                writers.append(await _open(server, partial(60_000, each)))
            await wait_until(lambda: endpoint.tcp.stats.over_buffered >= 20 - cap // each)
            assert endpoint.tcp.buffered <= cap
            assert endpoint.tcp.open_connections <= cap // each + 1
            assert endpoint.tcp.buffered == sum(c._buffered for c in endpoint.tcp)
            await _close(writers)
            writers = []
            await wait_until(lambda: endpoint.tcp.open_connections == 0)
            assert endpoint.tcp.buffered == 0  # given back with the connections
        finally:
            await _close(writers)
            await endpoint.close()

    run(loop, main())


def test_one_address_cannot_take_every_connection_slot(loop):
    async def main() -> None:
        endpoint, server = await _endpoint(max_connections=10, max_connections_per_source=2)
        writers = []
        try:
            for n in range(3):
                writers.append(await _open(server, b""))
                await wait_until(
                    lambda n=n: endpoint.tcp.open_connections
                    + endpoint.tcp.stats.refused_connections == n + 1
                )
            assert endpoint.tcp.open_connections == 2
            assert endpoint.tcp.stats.refused_connections == 1
            assert endpoint.tcp.from_source("127.0.0.1") == 2
        finally:
            await _close(writers)
            await endpoint.close()

    run(loop, main())


def test_a_message_that_never_completes_is_cut_off(loop):
    async def main() -> None:
        endpoint, server = await _endpoint(message_timeout=0.05, idle_timeout=60.0)
        writers = []
        try:
            quiet = await _open(server, b"")  # nothing begun: only the idle timeout applies
            slow = await _open(server, partial(100, 10))
            writers = [quiet, slow]
            await wait_until(lambda: endpoint.tcp.stats.slow_messages == 1)
            await wait_until(lambda: endpoint.tcp.open_connections == 1)
            assert endpoint.tcp.buffered == 0
        finally:
            await _close(writers)
            await endpoint.close()

    run(loop, main())


def test_a_message_in_progress_keeps_its_connection(loop):
    async def main() -> None:
        endpoint, server = await _endpoint(message_timeout=60.0)
        client = None
        try:
            client = await _open(server, b"")
            name = client.get_extra_info("sockname")
            data = request("OPTIONS", server, Address(name[0], name[1]), transport="TCP")
            client.write(data[:20])
            await wait_until(lambda: endpoint.tcp.buffered == 20)
            client.write(data[20:])
            await wait_until(lambda: endpoint.tcp.stats.received == 1)
            assert endpoint.tcp.buffered == 0 and endpoint.tcp.open_connections == 1
        finally:
            if client is not None:
                await _close([client])
            await endpoint.close()

    run(loop, main())


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    if shutil.which("openssl") is None:
        pytest.skip("no openssl command")
    folder: Path = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext",
         "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return str(cert), str(key)


def test_close_does_not_wait_for_a_tls_peer_that_never_says_goodbye(loop, certificate):
    cert, key = certificate
    handshaken = threading.Event()
    release = threading.Event()

    def mute_peer(port: int) -> None:
        # A blocking TLS client in a thread: handshake, then never read again (so it never
        # answers the server's close_notify) until the test is over.
        context = ssl.create_default_context(cafile=cert)
        with socket.create_connection(("127.0.0.1", port)) as raw:
            with context.wrap_socket(raw, server_hostname="127.0.0.1"):
                handshaken.set()
                release.wait(30)

    async def main() -> None:
        endpoint = SipEndpoint(Responder().handle, close_timeout=0.2)
        server = await endpoint.listen("tls:127.0.0.1:0", ssl_context=server_context(cert, key))
        thread = threading.Thread(target=mute_peer, args=(server.port,), daemon=True)
        thread.start()
        try:
            await asyncio.get_running_loop().run_in_executor(None, handshaken.wait, BOUND)
            await wait_until(lambda: endpoint.tcp.open_connections == 1)
            # Safety bound only: asyncio's own TLS shutdown would wait 30 s for the peer.
            await asyncio.wait_for(endpoint.close(), BOUND)
            assert endpoint.tcp.open_connections == 0
        finally:
            release.set()
            thread.join(BOUND)

    run(loop, main())


def test_metrics_show_the_tcp_gauges_live_and_summed_over_workers(loop):
    from sipmask.metrics import Metrics, aggregate, snapshot

    async def main() -> None:
        endpoint, server = await _endpoint()
        writers = []
        try:
            writers.append(await _open(server, partial(100, 10)))
            await wait_until(lambda: endpoint.tcp.buffered > 0)
            metrics = Metrics()
            metrics.endpoint = endpoint
            text = metrics.exposition().decode()
            assert "sipmask_tcp_connections_open 1.0" in text
            assert f"sipmask_tcp_buffered_bytes {float(endpoint.tcp.buffered)}" in text

            class Engine:  # what `snapshot` reads of an engine
                stats = type("Stats", (), {"__dataclass_fields__": {}})()
                draining = overloaded = False

            snap = snapshot(Engine(), endpoint)  # type: ignore[arg-type]
            _, summed = aggregate([snap, snap])
            assert summed.tcp.open_connections == 2
            assert summed.tcp.buffered == 2 * endpoint.tcp.buffered
        finally:
            await _close(writers)
            await endpoint.close()

    run(loop, main())


def test_a_connection_keeps_no_buffer_once_its_message_is_complete(loop):
    async def main() -> None:
        endpoint, server = await _endpoint()
        client = None
        try:
            client = await _open(server, b"")
            name = client.get_extra_info("sockname")
            big = request("OPTIONS", server, Address(name[0], name[1]), transport="TCP",
                          extra=f"X-Pad: {'a' * 30_000}\r\n")
            client.write(big[:-10])
            await wait_until(lambda: endpoint.tcp.buffered > 30_000)
            client.write(big[-10:])
            await wait_until(lambda: endpoint.tcp.stats.received == 1)
            (connection,) = list(endpoint.tcp)
            assert connection._framer is None  # the grown buffer went with the framer
            client.write(b"\r\n\r\n")  # a ping still gets its pong on a fresh framer
            await wait_until(lambda: endpoint.tcp.stats.sent >= 2)
        finally:
            if client is not None:
                await _close([client])
            await endpoint.close()

    run(loop, main())
