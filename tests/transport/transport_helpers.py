"""Shared pieces of the transport tests: the two loops, a raw UDP client, request bytes."""

from __future__ import annotations

import asyncio
import itertools
import socket
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

import sipmask
from sipmask.sip.events import Address

# A safety bound so a broken test fails instead of hanging; never an assertion on time.
BOUND = 5.0


def _uvloop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    uvloop = pytest.importorskip("uvloop")
    return uvloop.new_event_loop  # type: ignore[no-any-return]


LOOPS = [
    pytest.param(lambda: asyncio.new_event_loop, id="asyncio"),
    pytest.param(_uvloop_factory, id="uvloop"),
]


def run(
    loop: Callable[[], Callable[[], asyncio.AbstractEventLoop]], main: Coroutine[Any, Any, Any]
) -> Any:
    """Run `main` on a fresh loop of the kind `loop` names (uvloop_ / asyncio)."""
    factory = loop()
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


def ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


_branches = itertools.count(1)


def request(
    method: str,
    server: Address,
    client: Address,
    *,
    branch: str | None = None,
    call_id: str = "call-1@test",
    cseq: int = 1,
    transport: str = "UDP",
    extra: str = "",
    body: bytes = b"",
) -> bytes:
    """The bytes of a request from `client` to `server`."""
    branch = branch or f"z9hG4bK-test-{next(_branches)}"
    host = f"[{server.host}]" if ":" in server.host else server.host
    chost = f"[{client.host}]" if ":" in client.host else client.host
    head = (
        f"{method} sip:responder@{host}:{server.port} SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} {chost}:{client.port};branch={branch};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:alice@{chost}>;tag=from-1\r\n"
        f"To: <sip:responder@{host}>\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq} {method}\r\n"
        f"{extra}"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


SDP = (
    b"v=0\r\no=alice 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 40002 RTP/AVP 0\r\n"
)


class UdpClient(asyncio.DatagramProtocol):
    """A raw UDP socket whose datagrams land in a queue."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[bytes, Any]] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None
        self.address = Address("", 0)

    @classmethod
    async def open(cls, host: str = "127.0.0.1") -> UdpClient:
        client = cls()
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: client, local_addr=(host, 0))
        return client

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        name = transport.get_extra_info("sockname")
        self.address = Address(name[0], name[1])

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.queue.put_nowait((data, addr))

    def send(self, data: bytes, dest: Address) -> None:
        assert self.transport is not None
        self.transport.sendto(data, (dest.host, dest.port))

    async def recv(self) -> sipmask.Request | sipmask.Response:
        data, _ = await asyncio.wait_for(self.queue.get(), BOUND)
        return sipmask.parse(data)

    async def recv_response(self) -> sipmask.Response:
        message = await self.recv()
        assert isinstance(message, sipmask.Response), bytes(message)
        return message

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def wait_until(predicate: Callable[[], bool]) -> None:
    """Yield to the loop until `predicate()` holds (bounded by BOUND)."""

    async def spin() -> None:
        while not predicate():
            await asyncio.sleep(0)

    await asyncio.wait_for(spin(), BOUND)
