"""Listen specs, host:port text, the source check and the advertised address."""

from __future__ import annotations

import ipaddress

import pytest
from transport_helpers import LOOPS, SDP, UdpClient, request, run

from sipmask.sip.events import Address
from sipmask.transport.endpoint import ListenSpec, SipEndpoint, format_hostport, parse_hostport
from sipmask.transport.responder import Responder
from sipmask.transport.udp import parse_networks, source_allowed


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("127.0.0.1:5060", Address("127.0.0.1", 5060), id="ipv4"),
        pytest.param("[::1]:5070", Address("::1", 5070), id="ipv6-brackets"),
        pytest.param("sip.example.com:5060", Address("sip.example.com", 5060), id="name"),
    ],
)
def test_parse_hostport(text, expected):
    assert parse_hostport(text) == expected
    assert parse_hostport(format_hostport(expected)) == expected


@pytest.mark.parametrize("text", ["5060", "127.0.0.1", "[::1]", ":5060"], ids=repr)
def test_parse_hostport_rejects(text):
    with pytest.raises(ValueError):
        parse_hostport(text)


def test_listen_spec():
    spec = ListenSpec.parse("TCP:[::]:5060", advertise="203.0.113.5:5060")
    assert spec == ListenSpec("tcp", Address("::", 5060), Address("203.0.113.5", 5060))
    with pytest.raises(ValueError, match="unknown transport"):
        ListenSpec.parse("sctp:127.0.0.1:5060")


NETWORKS = parse_networks(["10.0.0.0/8", "2001:db8::/32", ipaddress.ip_network("127.0.0.1/32")])


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        pytest.param("10.1.2.3", True, id="v4-inside"),
        pytest.param("11.0.0.1", False, id="v4-outside"),
        pytest.param("127.0.0.1", True, id="v4-host-network"),
        pytest.param("127.0.0.2", False, id="v4-next-host"),
        pytest.param("2001:db8::5", True, id="v6-inside"),
        pytest.param("2001:db9::5", False, id="v6-outside"),
        pytest.param("::ffff:10.9.9.9", True, id="v4-mapped-inside"),
        pytest.param("::ffff:11.9.9.9", False, id="v4-mapped-outside"),
        pytest.param("fe80::1%eth0", False, id="v6-scoped-outside"),
        pytest.param("not-an-ip", False, id="name"),
    ],
)
def test_source_allowed(host, allowed):
    assert source_allowed(host, NETWORKS) is allowed


@pytest.mark.parametrize("loop", LOOPS)
def test_advertised_address_goes_into_contact_and_sdp(loop):
    async def main() -> None:
        responder = Responder()
        endpoint = SipEndpoint(responder.handle)
        advertised = Address("203.0.113.5", 5070)
        server = await endpoint.listen(ListenSpec("udp", Address("127.0.0.1", 0), advertised))
        assert endpoint.udp[0].advertise == advertised
        client = await UdpClient.open()
        try:
            extra = "Content-Type: application/sdp\r\n"
            client.send(request("INVITE", server, client.address, extra=extra, body=SDP), server)
            responses = [await client.recv_response() for _ in range(3)]
            ok = responses[2]
            assert ok.status == 200
            assert ok.header("contact") == "<sip:responder@203.0.113.5:5070>"
            assert b"c=IN IP4 203.0.113.5\r\n" in ok.body
        finally:
            responder.close()
            client.close()
            await endpoint.close()

    run(loop, main())
