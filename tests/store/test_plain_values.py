"""What a session may name (issue 13): identifiers and routes reach a B leg's Request-URI, so
only plain values pass `check_identifier` and `check_route`, and a refusal names the rule,
never the value. Also through `create_session` of the memory store."""

from __future__ import annotations

import asyncio

import pytest

from sipmask.store import InvalidParticipant, MemoryStore, ParticipantSpec, SessionSpec
from sipmask.store.numbers import check_identifier, check_route

GOOD_IDENTIFIERS = {
    "+919876543210": "+919876543210",
    "tel:+91 98765-43210": "+919876543210",
    "sip:Alice.Smith@PBX.Example.COM:5061;transport=tls": "Alice.Smith@pbx.example.com",
    "sips:+919876543210@carrier.example;user=phone": "+919876543210@carrier.example",
    "bob@[2001:db8::1]:5060": "bob@[2001:db8::1]",
    "sip:o'neil_(x)+1@10.0.0.1": "o'neil_(x)+1@10.0.0.1",
}
BAD_IDENTIFIERS = [
    "sip:alice%3Bmaddr=6.6.6.6%3Btransport=tcp@host.example",
    "sip:alice@host.example;maddr=6.6.6.6",
    "sip:alice@host.example;lr",
    "sip:alice@host.example;transport=sctp",
    "sip:alice@host.example;transport",
    "sip:alice@host.example;transport=tcp;transport=udp",
    "sip:alice@host.example?Subject=x",
    "sip:alice;x=1@host.example",
    "sip:al/ice@host.example",
    "sip:@host.example",
    "sip:alice@",
    "sip:alice@-host.example",
    "sip:alice@host.example:65536",
    "sip:alice@[2001:db8::zz]",
    "sip:" + "a" * 65 + "@host.example",
    "98765-43210",
]


@pytest.mark.parametrize("identifier", GOOD_IDENTIFIERS)
def test_plain_identifiers_pass_with_their_key(identifier: str) -> None:
    assert check_identifier(identifier) == GOOD_IDENTIFIERS[identifier]


@pytest.mark.parametrize("identifier", BAD_IDENTIFIERS)
def test_other_identifiers_are_refused_without_echo(identifier: str) -> None:
    with pytest.raises(InvalidParticipant) as refused:
        check_identifier(identifier)
    message = str(refused.value)
    assert "alice" not in message and "6.6.6.6" not in message and "98765" not in message


@pytest.mark.parametrize(
    ("route", "canonical"),
    [
        ("carrier-a", "carrier-a"),
        ("sip:pbx.example.com;lr", "sip:pbx.example.com;lr"),
        ("SIP:GW.Example.NET:5080;Transport=TCP", "sip:gw.example.net:5080;transport=tcp"),
        ("gw.example.net", "sip:gw.example.net"),
        ("sips:ivr@10.0.0.9", "sips:ivr@10.0.0.9"),
        ("sip:[2001:db8::5]:5062", "sip:[2001:db8::5]:5062"),
    ],
)
def test_routes_are_rebuilt_from_their_parts(route: str, canonical: str) -> None:
    assert check_route(route) == canonical


@pytest.mark.parametrize(
    "route",
    [
        "sip:gw.example.net;maddr=6.6.6.6",
        "sip:gw.example.net?Route=%3Csip:x%3E",
        "sip:x%40y@gw.example.net",
        "sip:gw.example.net;user=phone",
        "sip:gw.example.net;received=1.2.3.4",
        "trunk a",
        "",
    ],
)
def test_other_routes_are_refused(route: str) -> None:
    with pytest.raises(ValueError):
        check_route(route)


def test_create_session_applies_both_rules() -> None:
    async def main() -> None:
        store = MemoryStore()
        await store.set_pool("p", ["+918045671201", "+918045671202"])
        bad = SessionSpec((ParticipantSpec("+919876543210"),
                           ParticipantSpec("sip:bob%3Bmaddr=6.6.6.6@h.example")), pool="p")
        with pytest.raises(InvalidParticipant):
            await store.create_session(bad)
        bad_route = SessionSpec((ParticipantSpec("+919876543210"),
                                 ParticipantSpec("+919812345678", route="sip:h;maddr=1.2.3.4")),
                                pool="p")
        with pytest.raises(InvalidParticipant):
            await store.create_session(bad_route)
        assert await store.list_sessions() == []
        good = SessionSpec((ParticipantSpec("+919876543210"),
                            ParticipantSpec("+919812345678", route="GW.example.net;LR")),
                           pool="p")
        session = await store.create_session(good)
        assert session.participants[1].route == "sip:gw.example.net;lr"

    asyncio.run(main())
