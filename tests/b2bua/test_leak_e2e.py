"""End-to-end leak tests of issue 11 ("masking by grammar"): one party plants its real number,
in every written form and split across pairs of allowed values, in everything sipmask carries
across (the SDP fields the grammar keeps, Reason, Session-Expires, Min-SE, Supported, Require,
Content-Type parameters, INFO/MESSAGE bodies) in INVITE, 18x, 200, re-INVITE, UPDATE, ACK,
INFO, MESSAGE and BYE, and the other party never sees it. Both directions, UDP and TCP, a real
engine with scripted peers on loopback (b2bua_helpers.py; TcpPeer below for TCP).

Not checked here, because they are residual channels the two ends need as they are while media
is not anchored (docs/b2bua.md): media ports and addresses, SRTP keys, DTLS fingerprints, and
the chat text of MESSAGE."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from b2bua_helpers import (
    CALLEE,
    CALLER,
    POOL,
    SDP,
    Peer,
    Rig,
    ack_for,
    in_dialog,
    sdp,
)

from sipmask._core import Request, Response, StreamFramer, parse
from sipmask.b2bua import B2BUA
from sipmask.b2bua.media import Passthrough
from sipmask.config import parse_config
from sipmask.sip.events import Address
from sipmask.sip.layer import TransactionLayer
from sipmask.store import MemoryStore
from sipmask.store.model import ParticipantSpec, SessionSpec
from sipmask.transport.endpoint import SipEndpoint


def written_forms(number: str) -> list[str]:
    """`number` (+91 and ten digits) as an adversary would write it to slip past a digit-run
    check: separators, percent-encoding, national and international prefixes, BCD, base64."""
    national = number[3:]
    bcd = "".join(number[i + 1] + number[i] for i in range(1, len(number) - 1, 2))
    return [
        number, number[1:], "0" + national, "00" + number[1:], national,
        f"+91-{national[:5]}-{national[5:]}", f"+91 {national[:5]} {national[5:]}",
        f"({national[:3]}) {national[3:6]}-{national[6:]}", f"{national[:5]}.{national[5:]}",
        "%2B91" + national, "".join(f"%3{d}" for d in national), bcd,
        base64.b64encode(number.encode()).decode().rstrip("="),
    ]


def forbidden(number: str) -> list[bytes]:
    """What the other party must never receive: the number's digits, each half of them (a
    number split across two values) and its BCD and base64 forms."""
    national = number[3:]
    forms = written_forms(number)
    return [national.encode(), national[:5].encode(), national[5:].encode(),
            forms[-2].encode(), forms[-1].encode()]


def planted_sdp(number: str, *, port: int = 49170) -> bytes:
    """An offer that plants the number in every SDP field the grammar keeps, split in halves
    across pairs of them, next to what a call needs (so it still sets up)."""
    national = number[3:]
    a, b = national[:5], national[5:]
    return (
        f"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
        f"b=AS:{a}\r\nb=TIAS:{b}\r\nb=X-{a}-{b}:64\r\nb=CT:{national}\r\nt=0 0\r\n"
        f"a=framerate:{a}.{b}\r\n"
        f"m=audio {port} RTP/AVP 0 101 {national[:2]} {national[2:4]} {national[4:6]} "
        f"{national[6:8]} 96 97\r\n"
        f"a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
        f"a=fmtp:101 0-15,{a}-{b}\r\na=rtpmap:96 X{a}-{b}/8000\r\n"
        f"a=rtpmap:97 opus/{a}/2\r\na=fmtp:97 maxaveragebitrate={a};x={b}\r\n"
        f"a=ptime:{a}\r\na=maxptime:{b}\r\na=framerate:{national}\r\n"
        f"a=rtcp-fb:* trr-int {a}\r\na=rtcp-fb:101 x-{b}\r\na=setup:{a}\r\n"
        f"a=silenceSupp:off {a} {b} - -\r\na=rtcp:{port + 1} IN IP4 {national}\r\n"
        f"a=fmtp:0 {number}\r\na=sendrecv\r\n"
    ).encode()


def planted_headers(number: str, *, response: bool = False) -> list[tuple[str, str]]:
    """Headers with the number split across pairs of allowed values (and in every form in an
    X- header). Require only in responses: a request requiring an unknown extension gets
    420 (RFC 3261 §8.2.2.3), so it never crosses."""
    national = number[3:]
    a, b = national[:5], national[5:]
    return [
        ("Reason", f"SIP;cause={a}"), ("Reason", f"Q.850;cause={b}"),
        ("Session-Expires", f"{b};refresher=uac"), ("Min-SE", a),
        ("Supported", f"timer, x{a}, {b}"),
        *([("Require", f"timer, x{national}")] if response else []),
        *[("X-Form", form) for form in written_forms(number)],
    ]


CROSSING = ("reason", "session-expires", "min-se", "supported", "require", "content-type")
"""Headers whose values are taken from the other leg (rebuilt); the rest are sipmask's own."""


def crossed_values(peer: Peer) -> bytes:
    """What reached `peer` from the other leg: the crossing headers and the bodies, without
    the o= line (sipmask's random session id) nor the random ids of sipmask's own headers,
    so that a half of a number is not found there by chance."""
    out = []
    for raw in peer.raw:
        message = parse(raw)
        for name in CROSSING:
            out += [value.encode() for value in message.headers(name)]
        out += [line for line in message.body.split(b"\r\n") if not line.startswith(b"o=")]
    return b"\n".join(out)


def assert_clean(peer: Peer, number: str) -> None:
    """Neither the number in any form (anywhere) nor a half of it (in what crossed)."""
    received, crossed = peer.received(), crossed_values(peer)
    needles = forbidden(number)
    for needle in [needles[0], *needles[3:]]:
        assert needle not in received, needle
    for needle in needles:
        assert needle not in crossed, needle


# --- a peer and a rig over TCP ----------------------------------------------------------------


class TcpPeer(Peer):
    """A scripted UA over TCP: it listens (sipmask connects to send it requests) and, as a
    caller, connects to sipmask's TCP listener; a response goes back on the connection its
    request came on (RFC 3261 §18.2.2)."""

    def __init__(self) -> None:
        super().__init__()
        self.server: asyncio.Server | None = None
        self.client: asyncio.StreamWriter | None = None
        self.accepted: asyncio.StreamWriter | None = None
        self.reply_on: dict[str, asyncio.StreamWriter] = {}
        self.readers: list[asyncio.Task[None]] = []

    async def start(self, host: str = "127.0.0.1") -> TcpPeer:
        self.server = await asyncio.start_server(self._accepted, host, 0)
        port = self.server.sockets[0].getsockname()[1]
        self.address = Address(host, port)
        return self

    async def connect(self, dest: Address) -> None:
        reader, writer = await asyncio.open_connection(dest.host, dest.port)
        self.client = writer
        self.readers.append(asyncio.create_task(self._read(reader, writer)))

    async def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                        ) -> None:
        self.accepted = writer
        await self._read(reader, writer)

    async def _read(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        framer = StreamFramer()
        while data := await reader.read(65536):
            for raw in framer.feed(data):
                message = parse(raw)
                if isinstance(message, Request) and message.top_via is not None:
                    self.reply_on[message.top_via.branch or ""] = writer
                self.raw.append(raw)
                self.inbox.put_nowait((message, raw, self.address))

    def send(self, message: Request | Response | bytes, dest: Address) -> None:
        data = message if isinstance(message, bytes) else bytes(message)
        if isinstance(message, Response):
            via = message.top_via
            writer = self.reply_on[via.branch or ""] if via is not None else None
        else:
            data = data.replace(b"SIP/2.0/UDP", b"SIP/2.0/TCP", 1)
            writer = self.client or self.accepted
        assert writer is not None
        writer.write(data)

    def close(self) -> None:
        for writer in (self.client, self.accepted):
            if writer is not None:
                writer.close()
        if self.server is not None:
            self.server.close()
        for task in self.readers:
            task.cancel()


@contextlib.asynccontextmanager
async def leak_rig(transport: str, *, media: object = None) -> AsyncIterator[Rig]:
    """A running B2BUA with a session between CALLER and CALLEE, both reached over
    `transport` (udp or tcp)."""
    make = TcpPeer if transport == "tcp" else Peer
    caller = await make().start()
    callee = await make().start()
    config = parse_config(f"""
[sip]
listen = ["{transport}:127.0.0.1:0"]
[sip.timers]
t1 = 0.05
t2 = 0.4
t4 = 0.5
[store]
backend = "memory"
data_dir = ""
[[pools]]
name = "default"
numbers = ["{POOL[0]}", "{POOL[1]}"]
[[trunks]]
name = "carrier"
inbound = ["127.0.0.1/32"]
outbound = ["{transport}:127.0.0.1:{callee.address.port}"]
transport = "{transport}"
[trunks.number_rules]
country_code = "91"
""")
    store = MemoryStore(None)
    await store.set_pool("default", POOL)
    session = await store.create_session(
        SessionSpec(participants=(ParticipantSpec(CALLER), ParticipantSpec(CALLEE))))
    engine = B2BUA(config, store, media=media)  # type: ignore[arg-type]
    endpoint = SipEndpoint(engine.handle, layer=TransactionLayer(config.sip.timers),
                           allowed=("0.0.0.0/0",))
    engine.attach(endpoint)
    bound = await endpoint.listen(f"{transport}:127.0.0.1:0")
    if isinstance(caller, TcpPeer):
        await caller.connect(bound)
    try:
        yield Rig(engine, endpoint, store, bound, caller, [callee], session)
    finally:
        await engine.close()
        await endpoint.close()
        caller.close()
        callee.close()
        await store.close()


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(test())  # type: ignore[arg-type]


TRANSPORTS = ["udp", "tcp"]
INFO_BODIES = [
    ("application/dtmf-relay;x={a}", "Signal=5\r\nDuration=160\r\nX-From={number}\r\n"),
    ("application/dtmf-relay", "Signal=5\r\nDuration={a}\r\n"),
    ("application/dtmf", "5 {a} {b}"),
    ("application/x-custom", "caller={number}"),
]


async def answer_if_relayed(victim: Peer, method: str, **answer: object) -> Request | None:
    """The request sipmask relays to the victim, answered 200; None when sipmask refused it
    (nothing arrives)."""
    try:
        request = await victim.request(method, bound=1.0)
    except TimeoutError:
        return None
    victim.answer(request, 200, **answer)  # type: ignore[arg-type]
    return request


async def in_dialog_traffic(r: Rig, *, caller_attacks: bool, invite: Request, ok: Response,
                            b_invite: Request, b_ok: Response, number: str) -> None:
    """re-INVITE, UPDATE, INFO, MESSAGE and BYE from the attacker, each planted."""
    national = number[3:]
    a, b = national[:5], national[5:]
    if caller_attacks:
        attacker, victim = r.caller, r.callee
        dialog, answer, uac, cseq = invite, ok, True, 10
        victim_tag: str | None = None
    else:
        attacker, victim = r.callee, r.caller
        dialog, answer, uac, cseq = b_invite, b_ok, False, 10
        victim_tag = invite.from_tag
    headers = planted_headers(number)

    def send(method: str, **kwargs: object) -> Request:
        nonlocal cseq
        cseq += 1
        return in_dialog(attacker, dialog, answer, method, cseq, r.sipmask, uac=uac,
                         **kwargs)  # type: ignore[arg-type]

    re_invite = send("INVITE", body=planted_sdp(number), headers=headers)
    got = await answer_if_relayed(victim, "INVITE", body=SDP, tag=victim_tag)
    assert got is not None  # the re-INVITE crossed, rebuilt
    reply = await attacker.response(200, method="INVITE")
    ack_for(attacker, re_invite, reply, r.sipmask) if uac else in_dialog(
        attacker, dialog, answer, "ACK", cseq, r.sipmask, uac=False)
    send("UPDATE", body=planted_sdp(number), headers=headers)
    assert await answer_if_relayed(victim, "UPDATE", body=SDP, tag=victim_tag) is not None
    await attacker.response(200, method="UPDATE")
    for content_type, text in INFO_BODIES:
        body = text.format(number=number, a=a, b=b).encode()
        send("INFO", body=body, headers=headers, content_type=content_type.format(a=a))
        await answer_if_relayed(victim, "INFO", tag=victim_tag)
        await attacker.response(method="INFO")
    for content_type in (f"text/plain;charset={national}", f"text/plain;charset=utf-8;x={a}"):
        send("MESSAGE", body=b"see you soon", headers=headers, content_type=content_type)
        await answer_if_relayed(victim, "MESSAGE", tag=victim_tag)
        await attacker.response(method="MESSAGE")
    # An offerless re-INVITE: the attacker's answer comes in its ACK.
    offerless = send("INVITE", headers=headers)
    relayed = await victim.request("INVITE")
    victim.answer(relayed, 200, body=SDP, tag=victim_tag)
    reply = await attacker.response(200, method="INVITE")
    if uac:
        ack_for(attacker, offerless, reply, r.sipmask, body=planted_sdp(number))
    else:
        in_dialog(attacker, dialog, answer, "ACK", cseq, r.sipmask, uac=False,
                  body=planted_sdp(number))
    await victim.request("ACK")
    send("BYE", headers=headers)
    bye = await victim.request("BYE")
    assert bye.header("reason") in (None, "SIP;cause=480", "SIP;cause=500", "Q.850;cause=47",
                                    "Q.850;cause=127")
    victim.answer(bye, 200)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_caller_number_planted_in_every_kept_value_never_reaches_the_callee(transport) -> None:
    async def main() -> None:
        async with leak_rig(transport) as r:
            invite = r.invite(body=planted_sdp(CALLER), headers=planted_headers(CALLER))
            b_invite = await r.callee.request("INVITE")
            r.callee.answer(b_invite, 180)
            b_ok = r.callee.answer(b_invite, 200, body=sdp(owner="bob", port=50000))
            await r.callee.request("ACK")
            ok = await r.caller.response(200, method="INVITE")
            ack_for(r.caller, invite, ok, r.sipmask)
            assert b"m=audio 49170 RTP/AVP 0 101" in b_invite.body  # the call is real
            await in_dialog_traffic(r, caller_attacks=True, invite=invite, ok=ok,
                                    b_invite=b_invite, b_ok=b_ok, number=CALLER)
            assert_clean(r.callee, CALLER)

    run(main)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_callee_number_planted_in_every_kept_value_never_reaches_the_caller(transport) -> None:
    async def main() -> None:
        async with leak_rig(transport) as r:
            headers = planted_headers(CALLEE, response=True)
            invite = r.invite()
            b_invite = await r.callee.request("INVITE")
            r.callee.answer(b_invite, 180, headers=headers)
            r.callee.answer(b_invite, 183, headers=headers, body=planted_sdp(CALLEE))
            b_ok = r.callee.answer(b_invite, 200, headers=headers,
                                   body=planted_sdp(CALLEE, port=50000))
            await r.callee.request("ACK")
            ok = await r.caller.response(200, method="INVITE")
            ack_for(r.caller, invite, ok, r.sipmask)
            assert b"m=audio 50000 RTP/AVP 0 101" in ok.body  # the call is real
            await in_dialog_traffic(r, caller_attacks=False, invite=invite, ok=ok,
                                    b_invite=b_invite, b_ok=b_ok, number=CALLEE)
            assert_clean(r.caller, CALLEE)

    run(main)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_late_offer_ack_answer_is_rebuilt(transport) -> None:
    async def main() -> None:
        async with leak_rig(transport) as r:
            invite = r.invite(body=b"")
            b_invite = await r.callee.request("INVITE")
            r.callee.answer(b_invite, 200, body=sdp(owner="bob", port=50000))
            ok = await r.caller.response(200, method="INVITE")
            ack_for(r.caller, invite, ok, r.sipmask, body=planted_sdp(CALLER))
            ack = await r.callee.request("ACK")
            assert b"m=audio 49170 RTP/AVP 0 101\r\n" in ack.body
            assert_clean(r.callee, CALLER)

    run(main)


@pytest.mark.parametrize("connection", ["IN IP4 9876543210", "IN IP4 98765.43210",
                                        "IN IP6 9876:5432:10::x"])
def test_connection_that_is_not_an_ip_literal_is_refused(connection) -> None:
    async def main() -> None:
        async with leak_rig("udp") as r:
            r.invite(body=SDP.replace(b"IN IP4 127.0.0.1", connection.encode()))
            final = await r.caller.response()
            assert final.status == 488
            assert not [m for m in await r.callee.silence(0.2) if isinstance(m, Request)]

    run(main)


def test_info_bodies_are_rebuilt_and_others_refused() -> None:
    async def main() -> None:
        async with leak_rig("udp") as r:
            invite = r.invite()
            b_invite = await r.callee.request("INVITE")
            b_ok = r.callee.answer(b_invite, 200, body=sdp(owner="bob"))
            await r.callee.request("ACK")
            ok = await r.caller.response(200, method="INVITE")
            ack_for(r.caller, invite, ok, r.sipmask)
            in_dialog(r.caller, invite, ok, "INFO", 2, r.sipmask,
                      body=b"signal = 5\r\nDuration=160\r\nX-From=+919876543210\r\n",
                      content_type="application/dtmf-relay;x=98765")
            info = await r.callee.request("INFO")
            assert info.body == b"Signal=5\r\nDuration=160\r\n"
            assert info.header("content-type") == "application/dtmf-relay"
            r.callee.answer(info, 200)
            await r.caller.response(200, method="INFO")
            in_dialog(r.callee, b_invite, b_ok, "INFO", 1, r.sipmask, uac=False,
                      body=b" b\r\n", content_type="application/dtmf")
            info = await r.caller.request("INFO")
            assert info.body == b"B" and info.header("content-type") == "application/dtmf"
            r.caller.answer(info, 200, tag=invite.from_tag)
            await r.callee.response(200, method="INFO")
            for cseq, (content_type, body) in enumerate([
                ("application/dtmf-relay", b"Signal=5 98765\r\n"),
                ("application/dtmf-relay", b"Signal=5\r\nDuration=98765\r\n"),
                ("application/dtmf", b"98765"),
                ("application/x-custom", b"caller=98765"),
            ], start=3):
                in_dialog(r.caller, invite, ok, "INFO", cseq, r.sipmask, body=body,
                          content_type=content_type)
                refused = await r.caller.response(method="INFO")
                assert refused.status == 415
                assert {"application/dtmf", "application/dtmf-relay"} <= set(
                    refused.headers("accept"))
            in_dialog(r.caller, invite, ok, "MESSAGE", 9, r.sipmask, body="héllo".encode(
                "iso-8859-1"), content_type="text/plain;charset=ISO-8859-1;x=98765")
            message = await r.callee.request("MESSAGE")
            assert message.body == "héllo".encode()  # the chat text crosses, as UTF-8
            assert message.header("content-type") == "text/plain;charset=UTF-8"
            r.callee.answer(message, 200)
            in_dialog(r.caller, invite, ok, "UPDATE", 10, r.sipmask, body=b"x=98765",
                      content_type="application/x-custom")
            assert (await r.caller.response(method="UPDATE")).status == 415
            assert b"98765" not in crossed_values(r.callee)

    run(main)


def test_session_timer_values_are_per_leg() -> None:
    async def main() -> None:
        async with leak_rig("udp") as r:
            invite = r.invite(headers=[("Session-Expires", "4321;refresher=uac"),
                                       ("Min-SE", "987"), ("Supported", "timer")])
            b_invite = await r.callee.request("INVITE")
            # sipmask's own interval on the B leg ([calls] session_expires), no Min-SE.
            assert b_invite.header("session-expires") == "1800"
            assert b_invite.header("min-se") is None
            b_ok = r.callee.answer(b_invite, 200, body=sdp(owner="bob"),
                                   headers=[("Session-Expires", "1234;refresher=uac")])
            await r.callee.request("ACK")
            ok = await r.caller.response(200, method="INVITE")
            # The caller gets back its own interval, not the callee's.
            assert ok.header("session-expires") == "4321;refresher=uac"
            ack_for(r.caller, invite, ok, r.sipmask)
            # The caller refreshes: the B leg gets its own values, the caller its own back.
            in_dialog(r.caller, invite, ok, "UPDATE", 2, r.sipmask,
                      headers=[("Session-Expires", "4321;refresher=uac")])
            update = await r.callee.request("UPDATE")
            assert update.header("session-expires") == "1234;refresher=uac"
            r.callee.answer(update, 200, headers=[("Session-Expires", "1234;refresher=uac")])
            reply = await r.caller.response(200, method="UPDATE")
            assert reply.header("session-expires") == "4321;refresher=uac"
            assert b"4321" not in crossed_values(r.callee)
            assert b"1234" not in crossed_values(r.caller)
            in_dialog(r.callee, b_invite, b_ok, "BYE", 1, r.sipmask, uac=False,
                      headers=[("Reason", "Q.850;cause=98"), ("Reason", "SIP;cause=487")])
            bye = await r.caller.request("BYE")
            assert bye.header("reason") == "Q.850;cause=127"  # 98 maps to its class' end

    run(main)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_anchored_calls_renumber_dynamic_payload_types_per_leg(transport) -> None:
    async def main() -> None:
        async with leak_rig(transport, media=Passthrough()) as r:
            offer = SDP.replace(b"RTP/AVP 0", b"RTP/AVP 0 118 101") + (
                b"a=rtpmap:118 opus/48000/2\r\na=rtpmap:101 telephone-event/8000\r\n")
            invite = r.invite(body=offer)
            b_invite = await r.callee.request("INVITE")
            assert b"m=audio 49170 RTP/AVP 0 96 97\r\n" in b_invite.body
            assert b"a=rtpmap:97 telephone-event/8000\r\n" in b_invite.body
            answer = sdp(owner="bob", port=50000).replace(b"RTP/AVP 0", b"RTP/AVP 0 97") + (
                b"a=rtpmap:97 telephone-event/8000\r\n")
            r.callee.answer(b_invite, 200, body=answer)
            ok = await r.caller.response(200, method="INVITE")
            # The caller's answer has the numbers of its own offer.
            assert b"m=audio 50000 RTP/AVP 0 101\r\n" in ok.body
            assert b"a=rtpmap:101 telephone-event/8000\r\n" in ok.body
            ack_for(r.caller, invite, ok, r.sipmask)

    run(main)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_chat_outside_a_dialog_carries_no_parameter(transport) -> None:
    async def main() -> None:
        async with leak_rig(transport) as r:
            r.request_from_caller("MESSAGE", body=b"on my way",
                                  content_type="text/plain;charset=utf-8;x=98765;y=43210")
            message = await r.callee.request("MESSAGE")
            assert message.body == b"on my way"
            assert message.header("content-type") == "text/plain;charset=UTF-8"
            r.callee.answer(message, 200)
            assert (await r.caller.response(method="MESSAGE")).status == 200
            r.request_from_caller("MESSAGE", body=b"on my way",
                                  content_type="text/plain;charset=9876543210")
            refused = await r.caller.response(method="MESSAGE")
            assert refused.status == 415
            assert_clean(r.callee, CALLER)

    run(main)
