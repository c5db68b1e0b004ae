"""Issue 13 through the real engine, layer and endpoint on loopback UDP (b2bua_helpers):
requests the engine cannot handle or answer as asked must still be answered (or dropped)
with their transaction freed, so that they can never fill `max_transactions`."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "b2bua"))

from b2bua_helpers import Rig, answered_call, rig  # noqa: E402

from sipmask._core import Request  # noqa: E402

MAX_TRANSACTIONS = 20
NOBODY = "+918999999999"


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(test())  # type: ignore[arg-type]


def unanswerable(r: Rig, n: int, kind: str) -> bytes:
    """One INVITE from the trunk whose echoed headers cannot be copied as they are."""
    me = f"{r.caller.address.host}:{r.caller.address.port}"
    there = f"{r.sipmask.host}:{r.sipmask.port}"
    # A number in no session: the engine answers at once (no B leg is started).
    to = f"<sip:{NOBODY}@{there}>".encode()
    extra = b""
    if kind == "nul-to":
        to = b'"a\x00b" ' + to
    elif kind == "nul-require":
        extra = b"Require: 100rel\x00x\r\n"
    return (
        f"INVITE sip:{NOBODY}@{there} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {me};branch=z9hG4bKbad{kind}{n};rport\r\n"
        f"Max-Forwards: 70\r\nFrom: <sip:+919876543210@{r.caller.address.host}>;tag=f{n}\r\n"
    ).encode() + b"To: " + to + (
        f"\r\nCall-ID: bad-{kind}-{n}\r\nCSeq: 1 INVITE\r\n"
    ).encode() + extra + b"Content-Length: 0\r\n\r\n"


async def settle(r: Rig) -> None:
    """Let the layer's timers (T1 = 50 ms in the rig) free what was answered."""
    layer = r.endpoint.layer
    for _ in range(200):
        if layer.stats.in_progress == 0:
            return
        await asyncio.sleep(0.02)


def test_unanswerable_invites_from_a_trunk_do_not_fill_the_transaction_table() -> None:
    async def main() -> None:
        async with rig() as r:
            r.endpoint.layer.max_transactions = MAX_TRANSACTIONS
            # Batches below the cap, so that nothing is refused for overload: on the old
            # code each of these leaked its transaction and the cap filled up for good.
            for batch in range(6):
                for n in range(MAX_TRANSACTIONS // 2):
                    kind = "nul-to" if n % 2 else "nul-require"
                    r.caller.send(unanswerable(r, batch * 100 + n, kind), r.sipmask)
                await settle(r)
                assert r.endpoint.layer.stats.in_progress == 0
            assert r.endpoint.layer.stats.refused == 0
            while not r.caller.inbox.empty():
                r.caller.inbox.get_nowait()
            await answered_call(r)  # a real call still gets through (no 503)
    run(main)


def test_a_via_transport_without_listener_is_answered_and_freed() -> None:
    async def main() -> None:
        async with rig() as r:
            me = f"{r.caller.address.host}:{r.caller.address.port}"
            bad = Request(
                "INVITE", f"sip:{r.v1}@{r.sipmask.host}:{r.sipmask.port}",
                [("Via", f"SIP/2.0/TLS {me};branch=z9hG4bKtlsoverudp;rport"),
                 ("Max-Forwards", "70"),
                 ("From", f"<sip:+919876543210@{r.caller.address.host}>;tag=t1"),
                 ("To", f"<sip:{r.v1}@{r.sipmask.host}>"),
                 ("Call-ID", "tls-over-udp"), ("CSeq", "1 INVITE")])
            r.caller.send(bad, r.sipmask)
            while True:
                response = await r.caller.response()
                if response.call_id == "tls-over-udp":
                    break
            assert response.status == 400  # no TLS listener to answer "over TLS" from
            await settle(r)
            assert r.endpoint.layer.stats.in_progress == 0
    run(main)


def test_a_via_maddr_that_is_not_an_ip_gets_its_answers_at_the_source() -> None:
    async def main() -> None:
        async with rig() as r:
            me = f"{r.caller.address.host}:{r.caller.address.port}"
            odd = Request(
                "OPTIONS", f"sip:{r.sipmask.host}:{r.sipmask.port}",
                [("Via", f"SIP/2.0/UDP {me};branch=z9hG4bKmaddr;maddr=not-an-ip.invalid"),
                 ("Max-Forwards", "70"),
                 ("From", f"<sip:+919876543210@{r.caller.address.host}>;tag=m1"),
                 ("To", f"<sip:{r.sipmask.host}>"),
                 ("Call-ID", "maddr-name"), ("CSeq", "1 OPTIONS")])
            r.caller.send(odd, r.sipmask)
            while True:
                response = await r.caller.response()
                if response.call_id == "maddr-name":
                    break
            assert response.status == 200
            assert r.endpoint.internal_errors == 0
    run(main)
