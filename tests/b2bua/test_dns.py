"""RFC 3263 server location against a real DNS server on loopback (a small authoritative
responder built with dnspython): SRV order and weights, A/AAAA fallback, explicit ports, TTL
caching, NXDOMAIN, and a call routed to a trunk written as a name."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import msgspec
import pytest
from b2bua_helpers import CALLEE, rig

from sipmask.b2bua.dns import SipResolver

Zone = dict[tuple[str, str], list[str]]


class AuthoritativeServer(asyncio.DatagramProtocol):
    """Answers from `zone`; a name with no record of any type is NXDOMAIN."""

    def __init__(self, zone: Zone, ttl: int) -> None:
        self.zone = zone
        self.ttl = ttl
        self.queries: list[tuple[str, str]] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        query = dns.message.from_wire(data)
        response = dns.message.make_response(query)
        for question in query.question:
            name = question.name.to_text(omit_final_dot=True).lower()
            rdtype = dns.rdatatype.to_text(question.rdtype)
            self.queries.append((name, rdtype))
            if (name, rdtype) in self.zone:
                response.answer.append(dns.rrset.from_text(
                    question.name, self.ttl, "IN", rdtype, *self.zone[(name, rdtype)]))
            elif not any(known == name for known, _ in self.zone):
                response.set_rcode(dns.rcode.NXDOMAIN)
        assert self.transport is not None
        self.transport.sendto(response.to_wire(), addr)


@asynccontextmanager
async def dns_server(zone: Zone, ttl: int = 60) -> AsyncIterator[AuthoritativeServer]:
    loop = asyncio.get_running_loop()
    server = AuthoritativeServer(zone, ttl)
    transport, _ = await loop.create_datagram_endpoint(lambda: server,
                                                       local_addr=("127.0.0.1", 0))
    server.port = transport.get_extra_info("sockname")[1]  # type: ignore[attr-defined]
    try:
        yield server
    finally:
        transport.close()


ZONE: Zone = {
    ("_sip._udp.carrier.test", "SRV"): [
        "20 0 5080 backup.carrier.test.",
        "10 60 5070 a.carrier.test.",
        "10 40 5071 b.carrier.test.",
    ],
    ("a.carrier.test", "A"): ["127.0.0.11"],
    ("b.carrier.test", "A"): ["127.0.0.12"],
    ("backup.carrier.test", "A"): ["127.0.0.13"],
    ("backup.carrier.test", "AAAA"): ["::1"],
    ("plain.test", "A"): ["127.0.0.20"],
}


def resolver_for(server: AuthoritativeServer, clock=None) -> SipResolver:  # type: ignore[no-untyped-def]
    kwargs = {"clock": clock} if clock else {}
    return SipResolver([("127.0.0.1", server.port)],  # type: ignore[attr-defined]
                       rng=random.Random(7), **kwargs)


def test_srv_records_in_priority_then_weight_order() -> None:
    async def main() -> None:
        async with dns_server(ZONE) as server:
            resolver = resolver_for(server)
            firsts = set()
            for _ in range(30):
                resolver._cache.clear()
                hops = await resolver.locate("carrier.test", None, "udp")
                assert hops[2:] == [("127.0.0.13", 5080), ("::1", 5080)]  # priority 20 last
                assert set(hops[:2]) == {("127.0.0.11", 5070), ("127.0.0.12", 5071)}
                firsts.add(hops[0])
            assert len(firsts) == 2  # both weighted records come first sometimes

    asyncio.run(main())


def test_no_srv_falls_back_to_a_records_and_default_port() -> None:
    async def main() -> None:
        async with dns_server(ZONE) as server:
            resolver = resolver_for(server)
            assert await resolver.locate("plain.test", None, "tcp") == [("127.0.0.20", 5060)]
            assert await resolver.locate("plain.test", None, "tls") == [("127.0.0.20", 5061)]
            server.queries.clear()
            assert await resolver.locate("plain.test", 5090, "udp") == [("127.0.0.20", 5090)]
            assert all(rdtype != "SRV" for _, rdtype in server.queries)  # a port: no SRV

    asyncio.run(main())


def test_answers_are_cached_for_their_ttl() -> None:
    async def main() -> None:
        now = [1000.0]
        async with dns_server(ZONE, ttl=30) as server:
            resolver = resolver_for(server, clock=lambda: now[0])
            await resolver.locate("carrier.test", None, "udp")
            asked = len(server.queries)
            await resolver.locate("carrier.test", None, "udp")
            assert len(server.queries) == asked  # from the cache
            now[0] += 31
            await resolver.locate("carrier.test", None, "udp")
            assert len(server.queries) == 2 * asked  # expired: asked again

    asyncio.run(main())


def test_unknown_name_is_an_os_error() -> None:
    async def main() -> None:
        async with dns_server(ZONE) as server:
            with pytest.raises(OSError):
                await resolver_for(server).locate("nowhere.test", None, "udp")
            assert await resolver_for(server).locate("127.0.0.5", None, "udp") == [
                ("127.0.0.5", 5060)]  # a literal needs no DNS

    asyncio.run(main())


def test_call_to_a_trunk_written_as_a_name() -> None:
    async def main() -> None:
        async with rig() as r:
            zone: Zone = {
                ("_sip._udp.carrier.test", "SRV"): [
                    f"10 0 {r.callee.address.port} edge.carrier.test."],
                ("edge.carrier.test", "A"): ["127.0.0.1"],
            }
            async with dns_server(zone) as server:
                r.engine.resolver = resolver_for(server)
                trunk = msgspec.structs.replace(r.engine.config.trunks[0],
                                                outbound=("udp:carrier.test",))
                r.engine.reload(msgspec.structs.replace(r.engine.config, trunks=(trunk,)))
                r.invite()
                b_invite = await r.callee.request("INVITE")
                assert b_invite.parsed_uri.user == CALLEE
                assert b_invite.parsed_uri.host == "carrier.test"  # the name, as written
                assert b_invite.parsed_uri.port is None

    asyncio.run(main())
