"""Call-ID routing between workers (transport/workers.py): two endpoints, as two workers
would be, read one shared UDP socket; each request is handled by the worker that owns its
Call-ID, wherever the kernel delivered it, and answered from the same address."""

from __future__ import annotations

import asyncio
import socket

import pytest
from transport_helpers import LOOPS, UdpClient, request, run

import sipmask
from sipmask.sip.events import Address, RequestReceived, SipEvent
from sipmask.sip.responses import make_response
from sipmask.transport.endpoint import SipEndpoint
from sipmask.transport.workers import CallIdRouter, Mailbox, call_id_of, owner_of


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nCall-ID: abc@h\r\n\r\n", b"abc@h"),
        (b"OPTIONS sip:a@b SIP/2.0\r\ni:   xyz \r\n\r\n", b"xyz"),
        (b"OPTIONS sip:a@b SIP/2.0\r\nCALL-ID\t: Q\r\n\r\n", b"Q"),
        (b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n\r\ni: in-the-body\r\n", None),
        (b"garbage", None),
    ],
)
def test_call_id_of_reads_the_header_without_parsing(data: bytes, expected: bytes | None) -> None:
    assert call_id_of(data) == expected


def test_minted_call_ids_are_owned_by_their_worker() -> None:
    mailbox = Mailbox(3)
    try:
        for worker in range(3):
            router = CallIdRouter(worker, mailbox)
            for _ in range(20):
                assert owner_of(router.mint().encode(), 3) == worker
    finally:
        mailbox.close()


@pytest.mark.parametrize("loop", LOOPS)
def test_each_request_is_handled_by_its_owner(loop) -> None:
    async def main() -> None:
        mailbox = Mailbox(2)
        shared = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        shared.bind(("127.0.0.1", 0))
        shared.setblocking(False)
        address = Address("127.0.0.1", shared.getsockname()[1])
        handled: dict[int, list[str]] = {0: [], 1: []}
        endpoints = []

        def app(worker: int):
            def on_event(endpoint: SipEndpoint, event: SipEvent) -> None:
                if isinstance(event, RequestReceived):
                    handled[worker].append(event.request.call_id or "")
                    endpoint.send_response(event.key, make_response(event.request, 200,
                                                                    to_tag=f"w{worker}"))
            return on_event

        for worker in range(2):
            endpoint = SipEndpoint(app(worker), router=CallIdRouter(worker, mailbox))
            # Two workers would share the socket across fork; here a dup plays the copy.
            await endpoint.listen("udp:127.0.0.1:0", sock=shared.dup())
            endpoint.start_mailbox()
            endpoints.append(endpoint)
        client = await UdpClient.open()
        try:
            call_ids = [f"call-{n}@client" for n in range(40)]
            for n, call_id in enumerate(call_ids):
                client.send(request("OPTIONS", address, client.address, call_id=call_id,
                                    branch=f"z9hG4bKw{n}"), address)
            answers = []
            sources = set()
            for _ in call_ids:
                data, source = await asyncio.wait_for(client.queue.get(), 5.0)
                answers.append(sipmask.parse(data))
                sources.add((source[0], source[1]))
            assert sorted(a.call_id or "" for a in answers) == sorted(call_ids)
            for worker, ids in handled.items():
                assert ids and all(owner_of(i.encode(), 2) == worker for i in ids)
            assert sorted(handled[0] + handled[1]) == sorted(call_ids)
            # Replies came from the shared address, whichever worker sent them.
            assert sources == {(address.host, address.port)}
            forwarded = sum(e.router.forwarded for e in endpoints if e.router)
            assert forwarded == sum(e.router.received_forwarded for e in endpoints if e.router)
        finally:
            client.close()
            for endpoint in endpoints:
                await endpoint.close()
            shared.close()
            mailbox.close()

    run(loop, main())
