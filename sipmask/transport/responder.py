"""A tiny SIP application on `SipEndpoint`, for real-socket tests (SIPp) and benchmarks.

It answers every request addressed to it: first `check_request` (anything it would refuse
gets that verdict: 400, 405, 416, 420, 483, 501...), then OPTIONS with 200 (`options_response`),
INVITE with 180 and 200 with an SDP answer, BYE with 200. The layer already sent 100 Trying
for the INVITE and absorbs retransmissions. The 200 to an INVITE is re-sent by this
application, as RFC 6026 wants of a UAS core, at T1, 2*T1... capped at T2 (RFC 3261
§13.3.1.4) until its ACK arrives or 64*T1 passes. An ACK is absorbed.

Run it as `python -m sipmask.transport.responder --listen udp:127.0.0.1:0` (add
`--listen tls:127.0.0.1:0 --cert cert.pem --key key.pem` for TLS); it writes one
`listening <transport> <host> <port>` line per listener, then `ready`, to stdout, and stops
on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from .._core import Response
from ..errors import LocalProtocolError
from ..sip.events import (
    AckReceived,
    CancelReceived,
    RequestReceived,
    SipEvent,
    TransactionKey,
)
from ..sip.responses import make_response
from ..sip.validate import stateless_answer, stateless_tag
from . import runtime
from .endpoint import LOOPBACK, ListenSpec, SipEndpoint, format_hostport
from .stream import server_context

log = logging.getLogger(__name__)



@dataclass(slots=True)
class _Pending2xx:
    """A 200 to an INVITE waiting for its ACK (RFC 3261 §13.3.1.4)."""

    key: TransactionKey
    response: Response
    interval: float
    give_up: float
    handle: asyncio.TimerHandle | None = None


def sdp_answer(host: str) -> bytes:
    """A minimal SDP answer (RFC 4566) with PCMU on a fixed port."""
    family = "IP6" if ":" in host else "IP4"
    lines = (
        "v=0",
        f"o=sipmask 1 1 IN {family} {host}",
        "s=-",
        f"c=IN {family} {host}",
        "t=0 0",
        "m=audio 40000 RTP/AVP 0",
        "a=rtpmap:0 PCMU/8000",
    )
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


class Responder:
    """The application: `handle` is the endpoint's event callback."""

    def __init__(self) -> None:
        self._pending: dict[str, _Pending2xx] = {}
        self.answered: dict[int, int] = {}

    def handle(self, endpoint: SipEndpoint, event: SipEvent) -> None:
        if isinstance(event, RequestReceived):
            self._on_request(endpoint, event)
        elif isinstance(event, AckReceived):
            call_id = event.request.call_id
            pending = self._pending.pop(call_id, None) if call_id is not None else None
            if pending is not None and pending.handle is not None:
                pending.handle.cancel()
        elif isinstance(event, CancelReceived):
            request = event.request
            response = make_response(request, 487, to_tag=stateless_tag(request))
            try:
                endpoint.send_response(event.invite_key, response)
            except LocalProtocolError:
                pass  # the final response went out first

    def _answer(self, endpoint: SipEndpoint, key: TransactionKey, response: Response) -> None:
        self.answered[response.status] = self.answered.get(response.status, 0) + 1
        endpoint.send_response(key, response)

    def _on_request(self, endpoint: SipEndpoint, event: RequestReceived) -> None:
        request, key = event.request, event.key
        answer = stateless_answer(request)
        if answer is not None:
            self._answer(endpoint, key, answer)
        elif request.method == "INVITE":
            self._on_invite(endpoint, event)
        else:  # BYE (CANCEL is answered by the layer, ACK never reaches here)
            self._answer(endpoint, key, make_response(request, 200, to_tag=stateless_tag(request)))

    def _on_invite(self, endpoint: SipEndpoint, event: RequestReceived) -> None:
        request, key = event.request, event.key
        tag = stateless_tag(request)
        flow = endpoint.flow_for(event.source)
        local = flow.advertise if flow is not None else event.source
        params = f";transport={flow.transport_name.lower()}" if flow and flow.reliable else ""
        contact = ("Contact", f"<sip:responder@{format_hostport(local)}{params}>")
        self._answer(endpoint, key, make_response(request, 180, to_tag=tag, headers=[contact]))
        ok = make_response(
            request,
            200,
            to_tag=tag,
            headers=[contact, ("Content-Type", "application/sdp")],
            body=sdp_answer(local.host),
        )
        self._answer(endpoint, key, ok)
        if flow is not None and flow.reliable:
            return  # RFC 3261 §13.3.1.4: over TCP the 2xx is sent once
        call_id = request.call_id
        if call_id is None:
            return
        timers = endpoint.layer.timers
        pending = _Pending2xx(key, ok, timers.t1, endpoint.now() + 64 * timers.t1)
        self._pending[call_id] = pending
        self._schedule(endpoint, call_id, pending)

    def _schedule(self, endpoint: SipEndpoint, call_id: str, pending: _Pending2xx) -> None:
        pending.handle = endpoint.loop.call_later(
            pending.interval, self._retransmit, endpoint, call_id
        )

    def _retransmit(self, endpoint: SipEndpoint, call_id: str) -> None:
        pending = self._pending.get(call_id)
        if pending is None:
            return
        if endpoint.now() >= pending.give_up:
            del self._pending[call_id]  # no ACK: a real UAS would send BYE now
            return
        try:
            endpoint.send_response(pending.key, pending.response)
        except LocalProtocolError:
            del self._pending[call_id]  # the transaction is gone (Timer L)
            return
        pending.interval = min(2 * pending.interval, endpoint.layer.timers.t2)
        self._schedule(endpoint, call_id, pending)

    def close(self) -> None:
        for pending in self._pending.values():
            if pending.handle is not None:
                pending.handle.cancel()
        self._pending.clear()


async def serve(
    listen: Sequence[str],
    allowed: Sequence[str],
    *,
    certfile: str | None = None,
    keyfile: str | None = None,
) -> None:
    """Run the responder on `listen` until SIGTERM/SIGINT (`tls:` listeners use `certfile`)."""
    responder = Responder()
    endpoint = SipEndpoint(responder.handle, allowed=allowed)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        for text in listen:
            spec = ListenSpec.parse(text)
            context = None
            if spec.transport == "tls":
                if certfile is None:
                    raise SystemExit("a tls listener needs --cert (and --key)")
                context = server_context(certfile, keyfile)
            bound = await endpoint.listen(spec, ssl_context=context)
            sys.stdout.write(f"listening {spec.transport} {bound.host} {bound.port}\n")
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        await stop.wait()
    finally:
        responder.close()
        await endpoint.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sipmask.transport.responder")
    parser.add_argument(
        "--listen", action="append", required=True, help="udp|tcp|tls:HOST:PORT (port 0: any)"
    )
    parser.add_argument("--cert", help="PEM certificate (chain) for tls listeners")
    parser.add_argument("--key", help="PEM private key, when not in --cert")
    parser.add_argument(
        "--allow", action="append", help="allowed source network (default: loopback)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    runtime.run(serve(args.listen, args.allow or LOOPBACK, certfile=args.cert, keyfile=args.key))
    return 0


if __name__ == "__main__":
    sys.exit(main())
