"""The endpoint over real TCP connections, on asyncio and uvloop: framing by the core's
StreamFramer (RFC 3261 §18.3), CRLF keep-alives (RFC 5626 §4.4.1), connection reuse, the
idle timeout, the buffer limit and the source check."""

from __future__ import annotations

import asyncio
import socket

import pytest
from transport_helpers import BOUND, LOOPS, ipv6_loopback, request, run, wait_until

import sipmask
from sipmask.sip.events import Address
from sipmask.transport.endpoint import SipEndpoint
from sipmask.transport.responder import Responder

pytestmark = pytest.mark.parametrize("loop", LOOPS)


class TcpClient:
    """asyncio streams plus a client-side StreamFramer to cut the responses."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.framer = sipmask.StreamFramer()
        self.pending: list[bytes] = []
        name = writer.get_extra_info("sockname")
        self.address = Address(name[0], name[1])

    @classmethod
    async def open(cls, server: Address) -> TcpClient:
        reader, writer = await asyncio.open_connection(server.host, server.port)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def recv_response(self) -> sipmask.Response:
        while not self.pending:
            chunk = await asyncio.wait_for(self.reader.read(65536), BOUND)
            assert chunk, "connection closed"
            self.pending.extend(self.framer.feed(chunk))
        message = sipmask.parse(self.pending.pop(0))
        assert isinstance(message, sipmask.Response)
        return message

    async def eof(self) -> bool:
        """Read until the server closes; True when it did."""
        while True:
            chunk = await asyncio.wait_for(self.reader.read(65536), BOUND)
            if not chunk:
                return True

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except ConnectionError:
            pass


async def _responder(**options: object) -> tuple[SipEndpoint, Address]:
    responder = Responder()
    endpoint = SipEndpoint(responder.handle, **options)  # type: ignore[arg-type]
    return endpoint, await endpoint.listen("tcp:127.0.0.1:0")


def _options(server: Address, client: TcpClient, call_id: str) -> bytes:
    return request("OPTIONS", server, client.address, call_id=call_id, transport="TCP")


def test_two_messages_in_one_segment(loop):
    async def main() -> None:
        endpoint, server = await _responder()
        client = await TcpClient.open(server)
        try:
            await client.send(_options(server, client, "one") + _options(server, client, "two"))
            first, second = await client.recv_response(), await client.recv_response()
            assert [(r.status, r.call_id) for r in (first, second)] == [
                (200, "one"),
                (200, "two"),
            ]
            assert len(endpoint.tcp) == 1
        finally:
            await client.close()
            await endpoint.close()

    run(loop, main())


def test_one_message_split_in_two_segments(loop):
    async def main() -> None:
        endpoint, server = await _responder()
        client = await TcpClient.open(server)
        try:
            data = _options(server, client, "split")
            cut = data.index(b"CSeq")
            await client.send(data[:cut])
            # Wait until the server holds the first part unframed, so the second part
            # arrives as a separate read.
            await wait_until(lambda: len(endpoint.tcp) == 1)
            (connection,) = list(endpoint.tcp)
            await wait_until(lambda: connection._framer.buffered == cut)
            await client.send(data[cut:])
            response = await client.recv_response()
            assert (response.status, response.call_id) == (200, "split")
        finally:
            await client.close()
            await endpoint.close()

    run(loop, main())


def test_crlf_keepalive_ping_gets_pong(loop):
    async def main() -> None:
        endpoint, server = await _responder()
        client = await TcpClient.open(server)
        try:
            await client.send(b"\r\n\r\n")
            pong = await asyncio.wait_for(client.reader.readexactly(2), BOUND)
            assert pong == b"\r\n"
            # The connection still carries SIP afterwards.
            await client.send(_options(server, client, "after-ping"))
            response = await client.recv_response()
            assert response.call_id == "after-ping"
        finally:
            await client.close()
            await endpoint.close()

    run(loop, main())


def test_unframeable_stream_closes_the_connection(loop):
    async def main() -> None:
        endpoint, server = await _responder()
        client = await TcpClient.open(server)
        try:
            data = _options(server, client, "nolen").replace(b"Content-Length: 0\r\n", b"")
            await client.send(data)
            assert await client.eof()
            await wait_until(lambda: len(endpoint.tcp) == 0)
            assert endpoint.tcp.stats.oversized == 1
        finally:
            await client.close()
            await endpoint.close()

    run(loop, main())


def test_message_over_the_buffer_limit_closes_the_connection(loop):
    async def main() -> None:
        endpoint, server = await _responder(max_message=512)
        client = await TcpClient.open(server)
        try:
            pad = f"X-Pad: {'a' * 1024}\r\n"
            data = request("OPTIONS", server, client.address, transport="TCP", extra=pad)
            await client.send(data)
            assert await client.eof()
        finally:
            await client.close()
            await endpoint.close()

    run(loop, main())


def test_idle_connection_is_closed(loop):
    async def main() -> None:
        endpoint, server = await _responder(idle_timeout=0.05)
        client = await TcpClient.open(server)
        try:
            await client.send(_options(server, client, "then-quiet"))
            await client.recv_response()
            assert await client.eof()
            await wait_until(lambda: len(endpoint.tcp) == 0)
        finally:
            await client.close()
            await endpoint.close()

    run(loop, main())


def test_connection_from_outside_allowed_networks_is_refused(loop):
    async def main() -> None:
        endpoint, server = await _responder(allowed=["192.0.2.0/24"])
        client = await TcpClient.open(server)
        try:
            await client.writer.drain()
            try:
                await client.send(_options(server, client, "stranger"))
                closed = await client.eof()
            except ConnectionError:
                closed = True
            assert closed
            assert endpoint.tcp.stats.refused_source == 1
            assert len(endpoint.tcp) == 0
            assert endpoint.layer.stats.in_flight == 0
        finally:
            await client.close()
            await endpoint.close()

    run(loop, main())


def test_outgoing_request_reuses_the_connection_table(loop):
    """A client transaction over TCP opens one connection and reuses it; the answer comes
    back on it, and is not retransmitted (RFC 3261 §17.1.2.2: no Timer E on TCP)."""

    async def main() -> None:
        from sipmask.sip.events import ResponseReceived, SipEvent

        callee, server = await _responder()
        got: list[int] = []
        done = asyncio.Event()

        def app(endpoint: SipEndpoint, event: SipEvent) -> None:
            if isinstance(event, ResponseReceived):
                got.append(event.response.status)
                done.set()

        caller = SipEndpoint(app)
        try:
            for n in range(2):
                done.clear()
                data = request("OPTIONS", server, Address("127.0.0.1", 5060), transport="TCP")
                msg = sipmask.parse(data.replace(b"call-1@test", f"out-{n}".encode()))
                assert isinstance(msg, sipmask.Request)
                await caller.send_request(msg, server, transport="tcp")
                await asyncio.wait_for(done.wait(), BOUND)
            assert got == [200, 200]
            assert len(caller.tcp) == 1 and len(callee.tcp) == 1
        finally:
            await caller.close()
            await callee.close()

    run(loop, main())


def test_ipv6_tcp(loop):
    if not ipv6_loopback():
        pytest.skip("no IPv6 loopback (::1) on this machine")

    async def main() -> None:
        responder = Responder()
        endpoint = SipEndpoint(responder.handle)
        server = await endpoint.listen("tcp:[::1]:0")
        client = await TcpClient.open(server)
        try:
            await client.send(_options(server, client, "v6"))
            response = await client.recv_response()
            assert (response.status, response.call_id) == (200, "v6")
        finally:
            await client.close()
            await endpoint.close()

    run(loop, main())


def test_connections_beyond_the_cap_are_refused(loop):
    async def main() -> None:
        endpoint, server = await _responder(max_connections=2)
        clients = [await TcpClient.open(server) for _ in range(2)]
        extra = None
        try:
            for n, client in enumerate(clients):
                await client.send(_options(server, client, f"kept-{n}"))
                await client.recv_response()
            extra = await TcpClient.open(server)
            try:
                await extra.send(_options(server, extra, "one-too-many"))
                closed = await extra.eof()
            except ConnectionError:
                closed = True
            assert closed
            assert endpoint.tcp.stats.refused_connections == 1
            assert len(endpoint.tcp) == 2
            await clients[0].send(_options(server, clients[0], "still-served"))
            assert (await clients[0].recv_response()).status == 200
        finally:
            for client in [*clients, extra]:
                if client is not None:
                    await client.close()
            await endpoint.close()

    run(loop, main())
