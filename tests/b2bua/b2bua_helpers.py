"""A real B2BUA on loopback UDP (the engine, the transaction layer, the endpoint and a memory
store, in this process) and scripted SIP peers on their own UDP sockets: the caller's trunk
and one or more callee destinations. Every byte a peer receives is kept, for leak checks."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

from sipmask._core import Request, Response, parse
from sipmask.b2bua import B2BUA
from sipmask.config import Config, parse_config
from sipmask.sip.events import Address
from sipmask.sip.layer import TransactionLayer
from sipmask.sip.responses import make_response
from sipmask.store import MemoryStore
from sipmask.store.model import ParticipantSpec, Session, SessionSpec
from sipmask.transport.endpoint import SipEndpoint

BOUND = 5.0
"""Safety bound so a broken test fails instead of hanging; never an assertion on time."""

CALLER = "+919876543210"
CALLEE = "+919812345678"
POOL = ("+918000000001", "+918000000002")
CALLER_DIGITS = CALLER[3:]
CALLEE_DIGITS = CALLEE[3:]

SDP = (
    b"v=0\r\no=alice 2890844526 2890844526 IN IP4 127.0.0.1\r\ns=call\r\n"
    b"c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 49170 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)

_numbers = itertools.count(1)


def sdp(direction: str = "sendrecv", *, port: int = 49170, owner: str = "alice",
        extra: str = "") -> bytes:
    return (
        f"v=0\r\no={owner} 2890844526 2890844526 IN IP4 127.0.0.1\r\ns=call\r\n"
        f"c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\n"
        f"a=rtpmap:0 PCMU/8000\r\na={direction}\r\n{extra}"
    ).encode()


class Peer(asyncio.DatagramProtocol):
    """A scripted UA on a UDP socket: send raw messages, await parsed ones."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[tuple[Request | Response, bytes, Address]] = asyncio.Queue()
        self.raw: list[bytes] = []
        self.transport: asyncio.DatagramTransport | None = None
        self.address = Address("127.0.0.1", 0)
        self.tag = f"peer{next(_numbers)}"

    async def start(self, host: str = "127.0.0.1") -> Peer:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: self, local_addr=(host, 0))
        assert self.transport is not None
        name = self.transport.get_extra_info("sockname")
        self.address = Address(name[0], name[1])
        return self

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.raw.append(data)
        self.inbox.put_nowait((parse(data), data, Address(addr[0], addr[1])))

    def send(self, message: Request | Response | bytes, dest: Address) -> None:
        assert self.transport is not None
        data = message if isinstance(message, bytes) else bytes(message)
        self.transport.sendto(data, (dest.host, dest.port))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def received(self) -> bytes:
        return b"".join(self.raw)

    async def next(self, bound: float = BOUND) -> Request | Response:
        message, _, _ = await asyncio.wait_for(self.inbox.get(), bound)
        return message

    async def request(self, method: str, bound: float = BOUND) -> Request:
        """The next request of `method`; responses and other requests on the way are
        skipped (retransmissions, provisionals)."""
        while True:
            message = await self.next(bound)
            if isinstance(message, Request) and message.method == method:
                return message

    async def response(self, status: int | None = None, *, method: str | None = None,
                       bound: float = BOUND) -> Response:
        """The next response with `status` (any final when None) to `method` (any when
        None); others are skipped."""
        while True:
            message = await self.next(bound)
            if not isinstance(message, Response):
                continue
            if method is not None and (message.cseq is None or message.cseq.method != method):
                continue
            if status is None and message.status >= 200 or message.status == status:
                return message

    async def silence(self, seconds: float) -> list[Request | Response]:
        """Everything that arrives within `seconds` (to check that nothing does)."""
        got: list[Request | Response] = []
        with contextlib.suppress(asyncio.TimeoutError):
            while True:
                got.append(await self.next(seconds))
        return got

    def answer(self, request: Request, status: int, *, body: bytes = b"",
               headers: Iterable[tuple[str, str]] = (), tag: str | None = None) -> Response:
        """A response from this peer (To tag, Contact) sent back to where the request came."""
        fields = list(headers)
        if 100 < status < 300:
            fields.append(("Contact", f"<sip:{self.tag}@{self.address.host}:{self.address.port}>"))
        if body:
            fields.append(("Content-Type", "application/sdp"))
        response = make_response(request, status, to_tag=tag or self.tag, headers=fields,
                                 body=body)
        via = request.top_via
        assert via is not None
        self.send(response, Address(via.received or via.host, via.rport or via.port or 5060))
        return response


@dataclass
class Rig:
    engine: B2BUA
    endpoint: SipEndpoint
    store: MemoryStore
    sipmask: Address
    caller: Peer
    callees: list[Peer]
    session: Session | None
    cseq: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def callee(self) -> Peer:
        return self.callees[0]

    @property
    def v1(self) -> str:
        """The number the caller dials (the caller's own proxy identifier)."""
        assert self.session is not None
        return self.session.participants[0].proxy_identifier

    @property
    def v2(self) -> str:
        """The number the callee knows the caller by."""
        assert self.session is not None
        return self.session.participants[1].proxy_identifier

    def invite(self, *, body: bytes = SDP, headers: Iterable[tuple[str, str]] = (),
               from_user: str = CALLER, from_name: str | None = None, dialled: str | None = None,
               call_id: str | None = None, max_forwards: int = 70) -> Request:
        """The caller's INVITE for the callee, sent to sipmask."""
        return self.request_from_caller(
            "INVITE", body=body, headers=headers, from_user=from_user, from_name=from_name,
            dialled=dialled, call_id=call_id, max_forwards=max_forwards)

    def request_from_caller(self, method: str, *, body: bytes = b"",
                            headers: Iterable[tuple[str, str]] = (), from_user: str = CALLER,
                            from_name: str | None = None, dialled: str | None = None,
                            call_id: str | None = None, max_forwards: int = 70,
                            content_type: str = "application/sdp", peer: Peer | None = None,
                            ) -> Request:
        peer = peer or self.caller
        dialled = dialled or self.v1
        me = f"{peer.address.host}:{peer.address.port}"
        there = f"{self.sipmask.host}:{self.sipmask.port}"
        name = f'"{from_name}" ' if from_name else ""
        fields = [
            ("Via", f"SIP/2.0/UDP {me};branch=z9hG4bK{next(_numbers)}x;rport"),
            ("Max-Forwards", str(max_forwards)),
            ("From", f"{name}<sip:{from_user}@{peer.address.host}>;tag={peer.tag}"),
            ("To", f"<sip:{dialled}@{there}>"),
            ("Call-ID", call_id or f"call{next(_numbers)}@{peer.address.host}"),
            ("CSeq", f"{next(self.cseq)} {method}"),
            ("Contact", f"<sip:{peer.tag}@{me}>"),
            *headers,
        ]
        if body:
            fields.append(("Content-Type", content_type))
        request = Request(method, f"sip:{dialled}@{there}", fields, body)
        peer.send(request, self.sipmask)
        return request


def in_dialog(peer: Peer, dialog_request: Request, answer: Response, method: str, cseq: int,
              dest: Address, *, body: bytes = b"", headers: Iterable[tuple[str, str]] = (),
              uac: bool = True, content_type: str = "application/sdp") -> Request:
    """A request inside the dialog that `dialog_request`/`answer` made, sent by `peer`
    (uac=True: the peer sent the dialog-creating request; False: it answered it)."""
    me = f"{peer.address.host}:{peer.address.port}"
    from_, to = (dialog_request.header("from"), answer.header("to"))
    assert from_ is not None and to is not None
    if not uac:
        from_, to = to, from_
    contact = answer.contact[0].uri if uac else dialog_request.contact[0].uri
    fields = [
        ("Via", f"SIP/2.0/UDP {me};branch=z9hG4bK{next(_numbers)}d;rport"),
        ("Max-Forwards", "70"),
        ("From", from_),
        ("To", to),
        ("Call-ID", dialog_request.call_id or ""),
        ("CSeq", f"{cseq} {method}"),
        ("Contact", f"<sip:{peer.tag}@{me}>"),
        *headers,
    ]
    if body:
        fields.append(("Content-Type", content_type))
    request = Request(method, str(contact), fields, body)
    peer.send(request, dest)
    return request


def ack_for(peer: Peer, invite: Request, answer: Response, dest: Address,
            body: bytes = b"") -> Request:
    cseq = invite.cseq
    assert cseq is not None
    return in_dialog(peer, invite, answer, "ACK", cseq.number, dest, body=body)


def config_for(callees: list[Peer], extra: str = "", *, inbound: str = "127.0.0.1/32",
               sip_extra: str = "") -> Config:
    outbound = ", ".join(f'"udp:127.0.0.1:{p.address.port}"' for p in callees)
    return parse_config(
        f"""
[sip]
listen = ["udp:127.0.0.1:0"]
{sip_extra}
[sip.timers]
t1 = 0.05
t2 = 0.4
t4 = 0.5
[store]
backend = "memory"
data_dir = ""
[[pools]]
name = "default"
numbers = {list(POOL)!r}
[[trunks]]
name = "carrier"
inbound = ["{inbound}"]
outbound = [{outbound}]
[trunks.number_rules]
country_code = "91"
{extra}
""".replace("'", '"')
    )


@contextlib.asynccontextmanager
async def rig(extra: str = "", *, callees: int = 1, session: bool = True,
              inbound: str = "127.0.0.1/32", call_time_limit: int | None = None,
              ring_timeout: int | None = None, caller_host: str = "127.0.0.1",
              sip_extra: str = "", media: object = None, events: object = None,
              hooks: object = None, store: object = None) -> AsyncIterator[Rig]:
    """A running B2BUA with a session between CALLER and CALLEE."""
    caller = await Peer().start(caller_host)
    peers = [await Peer().start() for _ in range(callees)]
    config = config_for(peers, extra, inbound=inbound, sip_extra=sip_extra)
    store = store or MemoryStore(None)  # type: ignore[assignment]
    await store.set_pool("default", POOL)  # type: ignore[attr-defined]
    opened = None
    if session:
        opened = await store.create_session(
            SessionSpec(
                participants=(ParticipantSpec(CALLER), ParticipantSpec(CALLEE)),
                call_time_limit=call_time_limit,
                ring_timeout=ring_timeout,
            )
        )
    engine = B2BUA(config, store, media=media, events=events,  # type: ignore[arg-type]
                   hooks=hooks)  # type: ignore[arg-type]
    layer = TransactionLayer(config.sip.timers)
    endpoint = SipEndpoint(engine.handle, layer=layer, allowed=("0.0.0.0/0",))
    engine.attach(endpoint)
    bound = await endpoint.listen("udp:127.0.0.1:0")
    await endpoint.listen("tcp:127.0.0.1:0")
    try:
        yield Rig(engine, endpoint, store, bound, caller, peers, opened)
    finally:
        await engine.close()
        await endpoint.close()
        caller.close()
        for peer in peers:
            peer.close()
        await store.close()


async def answered_call(r: Rig, *, invite_body: bytes = SDP,
                        invite_headers: Iterable[tuple[str, str]] = (),
                        answer_headers: Iterable[tuple[str, str]] = (),
                        answer_body: bytes | None = None,
                        ) -> tuple[Request, Response, Request, Response]:
    """Set up a call to the answered state: (caller's INVITE, the 200 it got, the callee's
    INVITE, the callee's 200). The caller has ACKed."""
    invite = r.invite(body=invite_body, headers=invite_headers)
    b_invite = await r.callee.request("INVITE")
    body = sdp(owner="bob", port=50000) if answer_body is None else answer_body
    b_ok = r.callee.answer(b_invite, 200, body=body, headers=answer_headers)
    await r.callee.request("ACK")
    ok = await r.caller.response(200, method="INVITE")
    ack_for(r.caller, invite, ok, r.sipmask)
    return invite, ok, b_invite, b_ok


async def records_of(r: Rig, count: int = 1) -> list[Any]:
    """The session's call records once `count` are kept (the engine writes them in batches
    every 50 ms), bounded."""
    assert r.session is not None
    for _ in range(100):
        records = await r.store.list_interactions(r.session.id)
        if len(records) >= count:
            return records
        await asyncio.sleep(0.02)
    return await r.store.list_interactions(r.session.id)
