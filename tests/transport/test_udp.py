"""The endpoint over real UDP sockets with the test responder, on asyncio and uvloop: what a
carrier's peer sees (RFC 3261 §18, §17.2 absorption, RFC 3581 symmetric responses)."""

from __future__ import annotations

import asyncio
import socket

import pytest
from transport_helpers import LOOPS, SDP, UdpClient, ipv6_loopback, request, run

import sipmask
from sipmask.sip.events import Address, RequestReceived, SipEvent
from sipmask.transport.endpoint import SipEndpoint
from sipmask.transport.responder import Responder

pytestmark = pytest.mark.parametrize("loop", LOOPS)


async def _responder(**options: object) -> tuple[SipEndpoint, Responder, Address]:
    responder = Responder()
    endpoint = SipEndpoint(responder.handle, **options)  # type: ignore[arg-type]
    bound = await endpoint.listen("udp:127.0.0.1:0")
    return endpoint, responder, bound


def test_options_gets_200_with_allow(loop):
    async def main() -> None:
        endpoint, responder, server = await _responder()
        client = await UdpClient.open()
        try:
            client.send(request("OPTIONS", server, client.address), server)
            response = await client.recv_response()
            assert response.status == 200
            assert "INVITE" in (response.header("allow") or "")
            assert response.to_tag is not None
            # RFC 3581 §4: rport filled in with the port the request came from.
            assert response.top_via is not None
            assert response.top_via.params.get("rport") == str(client.address.port)
        finally:
            client.close()
            await endpoint.close()

    run(loop, main())


def test_malformed_request_gets_400(loop):
    async def main() -> None:
        endpoint, _, server = await _responder()
        client = await UdpClient.open()
        try:
            data = request("OPTIONS", server, client.address).replace(
                b"Max-Forwards: 70", b"Max-Forwards: lots"
            )
            client.send(data, server)
            response = await client.recv_response()
            assert response.status == 400
            assert response.call_id == "call-1@test"
            assert endpoint.layer.stats.parse_errors == 1
        finally:
            client.close()
            await endpoint.close()

    run(loop, main())


def test_repeated_single_value_header_gets_400_from_check_request(loop):
    async def main() -> None:
        endpoint, _, server = await _responder()
        client = await UdpClient.open()
        try:
            extra = "Call-ID: another@test\r\n"
            client.send(request("OPTIONS", server, client.address, extra=extra), server)
            response = await client.recv_response()
            assert response.status == 400
            assert "Call-ID" in response.reason
        finally:
            client.close()
            await endpoint.close()

    run(loop, main())


def test_unknown_method_gets_501(loop):
    async def main() -> None:
        endpoint, _, server = await _responder()
        client = await UdpClient.open()
        try:
            client.send(request("FROBNICATE", server, client.address), server)
            response = await client.recv_response()
            assert response.status == 501
            assert response.header("allow") is not None
        finally:
            client.close()
            await endpoint.close()

    run(loop, main())


def test_garbage_gets_nothing_and_the_loop_goes_on(loop):
    async def main() -> None:
        endpoint, _, server = await _responder()
        client = await UdpClient.open()
        try:
            for junk in (b"\x00\xff garbage", b"SIP/2.0 200 OK\r\n\r\n", b"\r\n\r\n", b""):
                client.send(junk, server)
            # Datagrams from one socket to another on loopback arrive in order: the first
            # answer is the one to this OPTIONS, so none of the junk was answered.
            client.send(request("OPTIONS", server, client.address, call_id="after"), server)
            response = await client.recv_response()
            assert (response.status, response.call_id) == (200, "after")
            assert client.queue.empty()
        finally:
            client.close()
            await endpoint.close()

    run(loop, main())


def test_invite_call_with_retransmitted_invite_absorbed(loop):
    async def main() -> None:
        endpoint, responder, server = await _responder()
        client = await UdpClient.open()
        try:
            extra = "Content-Type: application/sdp\r\n"
            invite = request(
                "INVITE", server, client.address, branch="z9hG4bK-inv", extra=extra, body=SDP
            )
            client.send(invite, server)
            responses = [await client.recv_response() for _ in range(3)]
            assert [r.status for r in responses] == [100, 180, 200]
            ok = responses[-1]
            assert ok.content_type == "application/sdp" and ok.body.startswith(b"v=0")
            assert ok.to_tag is not None and ok.to_tag == responses[1].to_tag

            client.send(invite, server)  # a retransmission: absorbed (RFC 6026 Accepted)
            ack = request("ACK", server, client.address, cseq=1)
            client.send(ack, server)
            client.send(request("OPTIONS", server, client.address, call_id="barrier"), server)
            response = await client.recv_response()
            # Nothing came back for the retransmission (or the 200 re-sent before the ACK).
            while response.call_id != "barrier":
                assert response.status == 200 and response.cseq is not None
                assert response.cseq.method == "INVITE"
                response = await client.recv_response()
            assert responder.answered[180] == 1  # the application saw one INVITE

            bye = request("BYE", server, client.address, cseq=2, extra="")
            client.send(bye, server)
            response = await client.recv_response()
            while response.cseq is not None and response.cseq.method == "INVITE":
                response = await client.recv_response()
            assert response.status == 200
            assert response.cseq is not None and response.cseq.method == "BYE"
        finally:
            responder.close()
            client.close()
            await endpoint.close()

    run(loop, main())


def test_retransmitted_options_answered_again_without_the_application(loop):
    async def main() -> None:
        seen: list[SipEvent] = []
        responder = Responder()

        def app(endpoint: SipEndpoint, event: SipEvent) -> None:
            seen.append(event)
            responder.handle(endpoint, event)

        endpoint = SipEndpoint(app)
        server = await endpoint.listen("udp:127.0.0.1:0")
        client = await UdpClient.open()
        try:
            options = request("OPTIONS", server, client.address, branch="z9hG4bK-same")
            client.send(options, server)
            first = await client.recv_response()
            client.send(options, server)
            second = await client.recv_response()
            assert bytes(first) == bytes(second)  # §17.2.2: Completed re-sends the response
            assert sum(isinstance(e, RequestReceived) for e in seen) == 1
        finally:
            client.close()
            await endpoint.close()

    run(loop, main())


def test_source_outside_allowed_networks_is_dropped_before_parsing(loop):
    async def main() -> None:
        endpoint, _, server = await _responder(allowed=["127.0.0.2/32"])
        stranger = await UdpClient.open("127.0.0.1")
        peer = await UdpClient.open("127.0.0.2")
        try:
            stranger.send(request("OPTIONS", server, stranger.address, call_id="no"), server)
            stranger.send(b"garbage that would be counted if parsed", server)
            peer.send(request("OPTIONS", server, peer.address, call_id="yes"), server)
            response = await peer.recv_response()
            assert (response.status, response.call_id) == (200, "yes")
            # The stranger's datagrams reached the socket first and were refused unparsed.
            assert endpoint.udp[0].stats.refused_source == 2
            assert endpoint.layer.stats.parse_errors == 0
            assert stranger.queue.empty()
        finally:
            stranger.close()
            peer.close()
            await endpoint.close()

    run(loop, main())


def test_oversized_datagram_is_dropped(loop):
    async def main() -> None:
        endpoint, _, server = await _responder(max_datagram=600)
        client = await UdpClient.open()
        try:
            big = request("OPTIONS", server, client.address, extra=f"X-Pad: {'a' * 600}\r\n")
            client.send(big, server)
            client.send(request("OPTIONS", server, client.address, call_id="small"), server)
            response = await client.recv_response()
            assert response.call_id == "small"
            assert endpoint.udp[0].stats.oversized == 1
        finally:
            client.close()
            await endpoint.close()

    run(loop, main())


def test_failing_application_call_does_not_stop_the_others(loop):
    async def main() -> None:
        responder = Responder()

        def app(endpoint: SipEndpoint, event: SipEvent) -> None:
            if isinstance(event, RequestReceived) and event.request.call_id == "boom":
                raise RuntimeError("application bug")
            responder.handle(endpoint, event)

        endpoint = SipEndpoint(app)
        server = await endpoint.listen("udp:127.0.0.1:0")
        client = await UdpClient.open()
        try:
            client.send(request("OPTIONS", server, client.address, call_id="boom"), server)
            client.send(request("OPTIONS", server, client.address, call_id="fine"), server)
            answers = {}
            while len(answers) < 2:
                response = await client.recv_response()
                answers[response.call_id] = response.status
            # The failing one is answered too (the layer's error policy, issue 13).
            assert answers == {"boom": 500, "fine": 200}
            assert endpoint.callback_errors == 1
        finally:
            client.close()
            await endpoint.close()

    run(loop, main())


def test_several_listeners_answer_from_the_socket_the_request_reached(loop):
    async def main() -> None:
        responder = Responder()
        endpoint = SipEndpoint(responder.handle)
        first = await endpoint.listen("udp:127.0.0.1:0")
        second = await endpoint.listen("udp:127.0.0.1:0")
        client = await UdpClient.open()
        try:
            for server in (first, second, first):
                client.send(request("OPTIONS", server, client.address), server)
                data, source = await asyncio.wait_for(client.queue.get(), 5)
                assert (source[0], source[1]) == server  # RFC 3581 §4: symmetric
            assert [listener.stats.sent for listener in endpoint.udp] == [2, 1]
        finally:
            client.close()
            await endpoint.close()

    run(loop, main())


def test_ipv6_options(loop):
    if not ipv6_loopback():
        pytest.skip("no IPv6 loopback (::1) on this machine")

    async def main() -> None:
        responder = Responder()
        endpoint = SipEndpoint(responder.handle)
        server = await endpoint.listen("udp:[::1]:0")
        assert server.host == "::1"
        assert endpoint.udp[0].family == socket.AF_INET6
        client = await UdpClient.open("::1")
        try:
            client.send(request("OPTIONS", server, client.address), server)
            response = await client.recv_response()
            assert response.status == 200
        finally:
            client.close()
            await endpoint.close()

    run(loop, main())


def test_timer_fires_through_the_one_loop_handle(loop):
    """A server INVITE transaction over UDP in Completed re-sends its final response on Timer G
    (RFC 3261 §17.2.1) without any new input: only the endpoint's call_at can drive that."""

    async def main() -> None:
        from sipmask.sip.layer import TransactionLayer
        from sipmask.sip.responses import make_response
        from sipmask.sip.timers import TimerConfig

        def app(endpoint: SipEndpoint, event: SipEvent) -> None:
            if isinstance(event, RequestReceived):
                endpoint.send_response(event.key, make_response(event.request, 486, to_tag="t"))

        layer = TransactionLayer(TimerConfig(t1=0.01, t2=0.04))
        endpoint = SipEndpoint(app, layer=layer)
        server = await endpoint.listen("udp:127.0.0.1:0")
        client = await UdpClient.open()
        try:
            client.send(
                request(
                    "INVITE",
                    server,
                    client.address,
                    body=SDP,
                    extra="Content-Type: application/sdp\r\n",
                ),
                server,
            )
            statuses = [(await client.recv_response()).status for _ in range(4)]
            assert statuses == [100, 486, 486, 486]
            assert layer.stats.retransmissions >= 2
        finally:
            client.close()
            await endpoint.close()

    run(loop, main())


def test_a_send_that_raises_costs_one_datagram_not_the_batch_or_the_timer(loop):
    """Issue 13, defect 3: uvloop's sendto raises for a name; the send is inside the
    endpoint's error boundary, so the other requests of the batch go out and their
    retransmission timer stays armed."""

    async def main() -> None:
        endpoint = SipEndpoint(lambda ep, ev: None)
        await endpoint.listen("udp:127.0.0.1:0")
        peer = await UdpClient.open()
        try:
            for dest in (Address("unresolved.invalid", 5060), peer.address):
                local = endpoint.local_address("udp")
                message = sipmask.parse(request("OPTIONS", dest, local))
                assert isinstance(message, sipmask.Request)
                endpoint.send_request_now(message, dest)
            first = await peer.recv()
            again = await peer.recv()  # Timer E fired and the timer was re-armed
            assert first == again
            assert endpoint.unroutable >= 1
        finally:
            peer.close()
            await endpoint.close()

    run(loop, main())
