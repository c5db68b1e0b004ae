"""`sipmask demo`: one masked call end to end on this machine, with nothing else installed.

Theory of operation:

- Two simulated phones (`Phone`: a minimal SIP user agent over UDP on 127.0.0.1, built in so
  the demo needs no SIPp) stand for the two real parties. The callee's phone is bound first:
  its address is the demo trunk's outbound destination.
- sipmask starts in this process (`serve`) on a config like the embedded default, with free
  ports, the memory store without a journal, and probing off. A session is opened through the
  real API (`POST /v1/sessions`): each party gets a virtual number, V1 for the caller, V2
  for the callee.
- The caller's phone dials V1 with its real number in From, Contact and P-Asserted-Identity;
  the callee's phone answers; the caller hangs up. Then the demo prints what each phone
  received: the caller saw V1 (and its own number), the callee saw V2 as the caller ID (and
  its own number); neither saw the other's real number. Exit status 0 when all of that holds.

Privacy: real numbers are printed masked (`mask_number`); virtual numbers in full.

`Phone` is also what the end-to-end tests of reload and drain drive (tests/e2e/test_ops.py).
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from ._core import Request, Response, parse
from .errors import ParseError
from .privacy import mask_number
from .sip.events import Address

__all__ = ["CALLEE", "CALLER", "OutgoingCall", "Phone", "demo_config", "run_demo"]

CALLER = "+919876543210"
"""The demo's real numbers: printed masked only."""
CALLEE = "+919812345678"
VIRTUAL = ("+918000000001", "+918000000002")
T1 = 0.5
"""Retransmission interval of the phones' INVITE and BYE (RFC 3261 T1)."""
BOUND = 10.0
"""Safety bound (seconds) on every wait of the demo."""
SDP = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
)
_USER = re.compile(r"sips?:([^@;>]+)@")


def _token() -> str:
    return secrets.token_hex(6)


@dataclass
class OutgoingCall:
    """A call placed by a phone: its dialog identifiers and the responses it got."""

    call_id: str
    local_tag: str
    dialled: str
    proxy: Address
    statuses: list[int] = field(default_factory=list)
    remote_tag: str | None = None
    remote_uri: str = ""
    cseq: int = 1
    ended_by_remote: bool = False

    @property
    def status(self) -> int:
        """The final status (0 while none)."""
        finals = [s for s in self.statuses if s >= 200]
        return finals[0] if finals else 0


@dataclass
class IncomingCall:
    """A call a phone answered."""

    call_id: str
    invite: Request
    local_tag: str
    answer: Response | None = None
    acked: bool = False
    ended_by_remote: bool = False


class Phone(asyncio.DatagramProtocol):
    """A minimal SIP phone over UDP: it answers every INVITE at once (180, 200 with SDP),
    answers BYE, OPTIONS and CANCEL with 200, and places calls (`call`, `hang_up`).
    Every message it receives is kept in `received`."""

    def __init__(self, name: str, number: str) -> None:
        self.name = name
        self.number = number
        self.received: list[Request | Response] = []
        self.raw: list[bytes] = []
        self.incoming: dict[str, IncomingCall] = {}
        self.outgoing: dict[str, OutgoingCall] = {}
        self._transport: asyncio.DatagramTransport | None = None
        self._changed = asyncio.Event()
        self.address = Address("127.0.0.1", 0)

    async def open(self, host: str = "127.0.0.1") -> Address:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: self, local_addr=(host, 0))
        assert self._transport is not None
        name = self._transport.get_extra_info("sockname")
        self.address = Address(name[0], name[1])
        return self.address

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def _send(self, data: str | bytes, dest: Address) -> None:
        if self._transport is not None:
            self._transport.sendto(data.encode() if isinstance(data, str) else data,
                                   (dest.host, dest.port))

    async def wait(self, ready: Callable[[], bool], bound: float = BOUND) -> bool:
        """Wait until `ready()` (checked after each message); False after `bound` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + bound
        while not ready():
            left = deadline - loop.time()
            if left <= 0:
                return False
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except asyncio.TimeoutError:
                return ready()
        return True

    # --- receiving ---

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        try:
            msg = parse(data)
        except ParseError:
            return
        self.received.append(msg)
        self.raw.append(data)
        source = Address(addr[0], addr[1])
        if isinstance(msg, Request):
            self._on_request(msg, source)
        elif isinstance(msg, Response):
            self._on_response(msg, source)
        self._changed.set()

    def _respond(self, request: Request, status: int, reason: str, source: Address, *,
                 tag: str | None = None, body: str = "") -> Response:
        to = request.header("to") or ""
        if tag is not None and ";tag=" not in to:
            to += f";tag={tag}"
        headers = [("Via", via) for via in request.headers("via")]
        headers += [
            ("From", request.header("from") or ""),
            ("To", to),
            ("Call-ID", request.call_id or ""),
            ("CSeq", str(request.cseq)),
            ("Contact", f"<sip:{self.number}@{self.address.host}:{self.address.port}>"),
        ]
        if body:
            headers.append(("Content-Type", "application/sdp"))
        response = Response(status, reason, headers, body.encode())
        self._send(bytes(response), source)
        return response

    def _on_request(self, request: Request, source: Address) -> None:
        method, call_id = request.method, request.call_id or ""
        if method == "INVITE" and request.to_tag is None:
            call = self.incoming.get(call_id)
            if call is not None and call.answer is not None:  # a retransmission
                self._send(bytes(call.answer), source)
                return
            call = IncomingCall(call_id, request, _token())
            self.incoming[call_id] = call
            self._respond(request, 180, "Ringing", source, tag=call.local_tag)
            sdp = SDP.format(port=40002)
            call.answer = self._respond(request, 200, "OK", source, tag=call.local_tag,
                                        body=sdp)
        elif method == "ACK":
            if call_id in self.incoming:
                self.incoming[call_id].acked = True
        elif method == "BYE":
            self._respond(request, 200, "OK", source)
            if call_id in self.incoming:
                self.incoming[call_id].ended_by_remote = True
            if call_id in self.outgoing:
                self.outgoing[call_id].ended_by_remote = True
        else:  # OPTIONS, CANCEL, re-INVITE, UPDATE, INFO...
            self._respond(request, 200, "OK", source)

    def _on_response(self, response: Response, source: Address) -> None:
        call = self.outgoing.get(response.call_id or "")
        cseq = response.cseq
        if call is None or cseq is None:
            return
        if cseq.method == "INVITE":
            if response.status >= 200 and call.status:  # a retransmitted final
                if response.status < 300:
                    self._ack(call, None)
                return
            call.statuses.append(response.status)
            if response.status >= 200:
                call.remote_tag = response.to_tag
                if 200 <= response.status < 300:
                    contacts = response.contact
                    call.remote_uri = str(contacts[0].uri) if contacts else call.remote_uri
                    self._ack(call, None)
                else:
                    self._ack(call, response)
        elif cseq.method == "BYE":
            call.statuses.append(response.status)

    # --- calling ---

    def _request(self, method: str, call: OutgoingCall, uri: str, cseq: int, branch: str,
                 *, body: str = "") -> str:
        to = f"<sip:{call.dialled}@{call.proxy.host}:{call.proxy.port}>"
        if call.remote_tag is not None:
            to += f";tag={call.remote_tag}"
        lines = [
            f"{method} {uri} SIP/2.0",
            f"Via: SIP/2.0/UDP {self.address.host}:{self.address.port};branch={branch};rport",
            "Max-Forwards: 70",
            f'From: "{self.number}" <sip:{self.number}@{self.address.host}>'
            f";tag={call.local_tag}",
            f"To: {to}",
            f"Call-ID: {call.call_id}",
            f"CSeq: {cseq} {method}",
            f"Contact: <sip:{self.number}@{self.address.host}:{self.address.port}>",
        ]
        if method == "INVITE":
            lines.append(f"P-Asserted-Identity: <sip:{self.number}@{self.address.host}>")
        if body:
            lines.append("Content-Type: application/sdp")
        lines += [f"Content-Length: {len(body.encode())}", "", body]
        return "\r\n".join(lines)

    def _ack(self, call: OutgoingCall, failure: Response | None) -> None:
        if failure is not None:  # ACK of a non-2xx: same branch as the INVITE (RFC 3261 17.1.1.3)
            via = failure.top_via
            branch = via.branch if via is not None and via.branch else "z9hG4bK" + _token()
            uri = f"sip:{call.dialled}@{call.proxy.host}:{call.proxy.port}"
        else:
            branch, uri = "z9hG4bK" + _token(), call.remote_uri
        self._send(self._request("ACK", call, uri, 1, branch), call.proxy)

    async def call(self, proxy: Address, dialled: str, *, bound: float = BOUND) -> OutgoingCall:
        """Dial `dialled` through `proxy`; return once a final response came (ACKed) or
        after `bound` seconds (status 0)."""
        call = OutgoingCall(f"{_token()}@demo", _token(), dialled, proxy)
        call.remote_uri = f"sip:{dialled}@{proxy.host}:{proxy.port}"
        self.outgoing[call.call_id] = call
        invite = self._request("INVITE", call, call.remote_uri, 1, "z9hG4bK" + _token(),
                               body=SDP.format(port=40000))
        await self._until(invite, proxy, lambda: bool(call.statuses),
                          lambda: call.status != 0, bound)
        return call

    async def hang_up(self, call: OutgoingCall, *, bound: float = BOUND) -> int:
        """BYE the call; return the BYE's status (0 when none came within `bound`)."""
        call.cseq += 1
        answers = len(call.statuses)
        bye = self._request("BYE", call, call.remote_uri, call.cseq, "z9hG4bK" + _token())

        def done() -> bool:
            return len(call.statuses) > answers

        await self._until(bye, call.proxy, done, done, bound)
        return call.statuses[-1] if done() else 0

    async def _until(self, data: str, dest: Address, answered: Callable[[], bool],
                     finished: Callable[[], bool], bound: float) -> None:
        """Send `data`, re-send it every T1 until `answered()`, wait until `finished()`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + bound
        self._send(data, dest)
        while not answered() and loop.time() < deadline:
            await self.wait(answered, min(T1, max(deadline - loop.time(), 0.0)))
            if not answered():
                self._send(data, dest)
        await self.wait(finished, max(deadline - loop.time(), 0.0))

    # --- what it saw ---

    def identities(self) -> list[str]:
        """The users of every From, To, Contact, P-Asserted-Identity and request URI
        received, in order of appearance, without repeats."""
        found: list[str] = []
        for msg in self.received:
            values = [msg.header(name) or "" for name in ("from", "to", "p-asserted-identity")]
            values += [str(c.uri) for c in msg.contact]
            if isinstance(msg, Request):
                values.append(msg.uri)
            for value in values:
                for user in _USER.findall(value):
                    if user not in found:
                        found.append(user)
        return found

    def saw_digits(self, number: str) -> bool:
        """Whether any message received carried `number` (without its `+` and country code)."""
        digits = number[3:].encode()
        return any(digits in data for data in self.raw)


def demo_config(callee: Address, token: str) -> str:
    """The embedded default, on free ports, the memory store in memory only, one trunk whose
    outbound destination is the callee's phone, probing off, quiet logs."""
    return f"""\
[sip]
listen = ["udp:127.0.0.1:0"]

[api]
listen = "127.0.0.1:0"
tokens = ["{token}"]

[metrics]
enabled = false

[store]
backend = "memory"
data_dir = ""

[[pools]]
name = "default"
numbers = {json.dumps(list(VIRTUAL))}

[[trunks]]
name = "carrier-a"
inbound = ["127.0.0.1/32"]
outbound = ["udp:{callee.host}:{callee.port}"]
probe_interval = 0.0

[trunks.number_rules]
country_code = "91"

[logging]
level = "warning"
format = "text"
"""


async def _post_session(api: Address, token: str) -> dict[str, object]:
    from aiohttp import ClientSession, ClientTimeout

    body = {"participants": [{"identifier": CALLER}, {"identifier": CALLEE}]}
    async with ClientSession(timeout=ClientTimeout(total=BOUND)) as client:
        async with client.post(f"http://{api.host}:{api.port}/v1/sessions", json=body,
                               headers={"Authorization": f"Bearer {token}"}) as answer:
            session: dict[str, object] = await answer.json()
            if answer.status != 201:
                raise RuntimeError(f"POST /v1/sessions answered {answer.status}")
            return session


def _shown(user: str, own: str, virtual: set[str]) -> str:
    if user in virtual:
        return user
    if user == own:
        return f"{mask_number(user)} (its own number)"
    return mask_number(user)


async def demo(out: TextIO) -> int:
    """Run the demo, print to `out`; 0 when masking held on both sides."""
    from .config import parse_config
    from .server import serve

    caller, callee = Phone("caller", CALLER), Phone("callee", CALLEE)
    callee_at = await callee.open()
    caller_at = await caller.open()
    token = _token()
    config = parse_config(demo_config(callee_at, token), env={})
    stop = asyncio.Event()
    bound: dict[str, Address] = {}
    up = asyncio.Event()
    server = asyncio.ensure_future(serve(config, stop=stop, ready=up.set,
                                         listening=bound.__setitem__))
    try:
        done, _ = await asyncio.wait([server, asyncio.ensure_future(up.wait())],
                                     timeout=BOUND, return_when=asyncio.FIRST_COMPLETED)
        if server in done or not up.is_set():
            print("sipmask did not start", file=out)
            return 1
        sip, api = bound["udp"], bound["api"]
        print(f"sipmask demo: SIP on udp {sip.host}:{sip.port}, API on http://{api.host}:"
              f"{api.port}, memory store", file=out)
        print(f"  caller phone  {mask_number(CALLER)} on udp {caller_at.host}:{caller_at.port}",
              file=out)
        print(f"  callee phone  {mask_number(CALLEE)} on udp {callee_at.host}:{callee_at.port}"
              " (the trunk's outbound destination)", file=out)
        session = await _post_session(api, token)
        members = session["participants"]
        assert isinstance(members, list)
        proxy = {str(m["key"]): str(m["proxy_identifier"]) for m in members}
        v1, v2 = proxy[CALLER], proxy[CALLEE]
        print(f"session {session['id']}: the caller reaches the callee on {v1} (V1), "
              f"the callee reaches the caller on {v2} (V2)", file=out)

        call = await caller.call(sip, v1)
        print(f"call: the caller dials {v1}: " + ", ".join(map(str, call.statuses)), file=out)
        ok = call.status == 200
        if ok:
            await callee.wait(lambda: any(c.acked for c in callee.incoming.values()), BOUND)
            status = await caller.hang_up(call)
            print(f"      the caller hangs up: BYE -> {status}", file=out)
            ok = status == 200 and await callee.wait(
                lambda: any(c.ended_by_remote for c in callee.incoming.values()), BOUND
            )
        virtual = {v1, v2}
        caller_ids = [_shown(u, CALLER, virtual) for u in caller.identities()]
        callee_ids = [_shown(u, CALLEE, virtual) for u in callee.identities()]
        invites = [c.invite for c in callee.incoming.values()]
        presented = invites[0].from_.uri.user if invites and invites[0].from_ else None
        print(f"the caller received {len(caller.received)} message(s); numbers in them: "
              f"{', '.join(caller_ids) or '-'}", file=out)
        print(f"the callee received {len(callee.received)} message(s); numbers in them: "
              f"{', '.join(callee_ids) or '-'}; caller ID {presented or '-'}", file=out)
        leaks = []
        if caller.saw_digits(CALLEE):
            leaks.append("the caller saw the callee's real number")
        if callee.saw_digits(CALLER):
            leaks.append("the callee saw the caller's real number")
        if set(caller.identities()) - {v1, CALLER}:
            leaks.append("the caller saw a number other than V1 and its own")
        if set(callee.identities()) - {v2, CALLEE}:
            leaks.append("the callee saw a number other than V2 and its own")
        if presented != v2:
            leaks.append("the callee's caller ID is not V2")
        if not ok:
            leaks.append("the call did not complete")
        for leak in leaks:
            print(f"FAILED: {leak}", file=out)
        if not leaks:
            print(f"OK: the caller saw only {v1}, the callee saw only {v2} as the caller ID; "
                  "neither learned the other's real number", file=out)
        return 1 if leaks else 0
    finally:
        stop.set()
        try:
            await asyncio.wait_for(server, BOUND)
        except (asyncio.TimeoutError, OSError) as exc:
            print(f"sipmask did not stop cleanly: {exc!r}", file=out)
        caller.close()
        callee.close()


def run_demo(out: TextIO | None = None) -> int:
    """`sipmask demo`: the exit status."""
    import logging

    from .config import LoggingConfig
    from .server import configure_logging
    from .transport import runtime

    configure_logging(LoggingConfig(level="warning", format="text"), sys.stderr)
    logging.getLogger("sipmask.api.access").setLevel(logging.WARNING)
    return runtime.run(demo(out or sys.stdout))
