"""Calls through the real engine with media anchored on a real rtpengine: each side's SDP
shows only rtpengine's address, RTP flows both ways through it, the parties' RTCP identities
(SDES items, the BYE reason) do not reach the other side, re-INVITE/hold keeps media, and an
rtpengine that dies mid-call leaves the call's signalling going while new calls follow
`on_failure`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from b2bua_helpers import CALLEE_DIGITS, CALLER_DIGITS, Rig, ack_for, in_dialog, rig
from rtpengine_helpers import (
    BOUND,
    RTPENGINE,
    MediaEndpoint,
    Rtpengine,
    loopback_bindable,
    offer_sdp,
    rtcp_with_identity,
    rtp_packet,
)

from sipmask._core import Request, Response, parse_sdp
from sipmask.b2bua.anchoring import Anchoring
from sipmask.b2bua.media import MediaContext
from sipmask.config import MediaConfig, MediaSide, RtpengineInstance
from sipmask.media.ng import NgClient

CALLER_MEDIA, CALLEE_MEDIA = "127.0.0.2", "127.0.0.3"

pytestmark = pytest.mark.skipif(
    not (loopback_bindable(CALLER_MEDIA) and loopback_bindable(CALLEE_MEDIA)),
    reason="127.0.0.2/127.0.0.3 cannot be bound here",
)


@dataclass
class MediaCall:
    r: Rig
    hook: Anchoring
    alice: MediaEndpoint  # the caller's RTP endpoint
    bob: MediaEndpoint  # the callee's
    invite: Request
    ok: Response
    b_invite: Request
    b_ok: Response
    to_anchor_from_alice: tuple[str, int]  # where alice sends (rtpengine, from her 200)
    to_anchor_from_bob: tuple[str, int]


def _media_address(body: bytes) -> tuple[str, int]:
    description = parse_sdp(body)
    connection = description.media[0].connection or description.connection
    assert connection is not None
    return connection.split()[-1], description.media[0].port


def _rtcp_port(body: bytes, rtp_port: int) -> int:
    for line in body.split(b"\r\n"):
        if line.startswith(b"a=rtcp:"):
            return int(line[7:].split()[0])
    return rtp_port + 1


@contextlib.asynccontextmanager
async def anchored_call(rtpengine: Rtpengine, *, rtcp: str = "drop", on_failure: str = "reject",
                        record: bool = False, callee_host: str = CALLEE_MEDIA,
                        callee: MediaSide | None = None, store: object = None,
                        events: object = None, session: bool = True,
                        before_call: Callable[[Rig], None] | None = None,
                        ) -> AsyncIterator[MediaCall]:
    config = MediaConfig(
        backend="rtpengine", rtpengine=(RtpengineInstance(rtpengine.address),),
        timeout_ms=200, retries=1, ping_interval=0, on_failure=on_failure,  # type: ignore[arg-type]
        rtcp=rtcp, record=record,  # type: ignore[arg-type]
        **({} if callee is None else {"callee": callee}),
    )
    client = NgClient([("127.0.0.1", rtpengine.ng_port, 1)], timeout=0.2, retries=1,
                      ping_interval=0)
    await client.start()
    hook = Anchoring(client, config)
    alice = await MediaEndpoint().start(CALLER_MEDIA)
    bob = await MediaEndpoint().start(callee_host)
    try:
        async with rig(media=hook, store=store, events=events, session=session) as r:
            if before_call is not None:
                before_call(r)
            invite = r.invite(body=offer_sdp(CALLER_MEDIA, alice.port))
            b_invite = await r.callee.request("INVITE")
            b_ok = r.callee.answer(b_invite, 200,
                                   body=offer_sdp(callee_host, bob.port, owner="bob"))
            await r.callee.request("ACK")
            ok = await r.caller.response(200, method="INVITE")
            ack_for(r.caller, invite, ok, r.sipmask)
            yield MediaCall(r, hook, alice, bob, invite, ok, b_invite, b_ok,
                            _media_address(ok.body), _media_address(b_invite.body))
    finally:
        alice.close()
        bob.close()
        await client.close()


async def _flow(call: MediaCall, first_seq: int, count: int = 20) -> None:
    """Send `count` RTP packets each way (20 ms apart, as a phone does) and wait until both
    sides received at least one of them through rtpengine."""
    alice_had, bob_had = len(call.alice.rtp_in), len(call.bob.rtp_in)
    for seq in range(first_seq, first_seq + count):
        call.alice.send_rtp(rtp_packet(seq, 0x1111), call.to_anchor_from_alice)
        call.bob.send_rtp(rtp_packet(seq, 0x2222), call.to_anchor_from_bob)
        await asyncio.sleep(0.02)
    for _ in range(int(BOUND / 0.02)):
        if len(call.alice.rtp_in) > alice_had and len(call.bob.rtp_in) > bob_had:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"RTP did not flow: alice {len(call.alice.rtp_in) - alice_had}, "
                         f"bob {len(call.bob.rtp_in) - bob_had}")


def test_each_side_sees_only_rtpengine_and_rtp_flows_both_ways(rtpengine: Rtpengine) -> None:
    async def main() -> None:
        async with anchored_call(rtpengine) as call:
            assert CALLER_MEDIA.encode() not in call.b_invite.body
            assert CALLEE_MEDIA.encode() not in call.ok.body
            assert call.to_anchor_from_alice[0] == "127.0.0.1"
            assert call.to_anchor_from_bob[0] == "127.0.0.1"
            await _flow(call, 0)
            # what each side got came from the other, relayed (the SSRC is the sender's)
            assert call.bob.rtp_in[-1][8:12] == b"\x00\x00\x11\x11"
            assert call.alice.rtp_in[-1][8:12] == b"\x00\x00\x22\x22"
            in_dialog(call.r.caller, call.invite, call.ok, "BYE", 2, call.r.sipmask)
            await call.r.callee.request("BYE")

    asyncio.run(main())


@pytest.mark.parametrize("rtcp, follows_sdp, crossing", [
    ("drop", True, set()),  # the default: nothing a party sends as RTCP reaches the other
    # a peer that ignores a=rtcp and sends to RTP port + 1: libre's final BYE+SDES crosses
    ("drop", False, {203}),
    # rtpengine's own reports replace SR/RR compounds; one without SR/RR is relayed as is
    ("regenerate", True, {203}),
    ("relay", True, {200, 203}),  # anchoring alone relays RTCP: the identities cross
], ids=["drop", "drop-peer-ignores-a-rtcp", "regenerate", "relay"])
def test_rtcp_identities(rtpengine: Rtpengine, rtcp: str, follows_sdp: bool,
                         crossing: set[int]) -> None:
    """Which RTCP compounds holding a party's number reach the other party, by `rtcp` mode:
    an SR+SDES(all six items)+BYE(reason) compound (type 200 first) and libre's final
    BYE+SDES (type 203 first)."""
    async def main() -> None:
        async with anchored_call(rtpengine, rtcp=rtcp) as call:
            if rtcp == "drop":
                for body in (call.ok.body, call.b_invite.body):
                    assert b"a=rtcp:9\r\n" in body and b"a=rtcp-mux" not in body

            def rtcp_dest(body: bytes, anchor: tuple[str, int]) -> tuple[str, int]:
                return anchor[0], (_rtcp_port(body, anchor[1]) if follows_sdp else anchor[1] + 1)

            alice_rtcp = rtcp_dest(call.ok.body, call.to_anchor_from_alice)
            bob_rtcp = rtcp_dest(call.b_invite.body, call.to_anchor_from_bob)
            await _flow(call, 0, count=5)  # latch both sides' addresses first
            alice_id = f"sip:+91{CALLER_DIGITS}@{CALLER_MEDIA}".encode()
            bob_id = f"sip:+91{CALLEE_DIGITS}@{CALLEE_MEDIA}".encode()
            for bye_first in (False, True):
                call.alice.send_rtcp(rtcp_with_identity(0x1111, alice_id, bye_first=bye_first),
                                     alice_rtcp)
                call.bob.send_rtcp(rtcp_with_identity(0x2222, bob_id, bye_first=bye_first),
                                   bob_rtcp)
                await _flow(call, 100 + 100 * bye_first)  # RTP sent after it arrived
            bob_got = {p[1] for p in call.bob.rtcp_in + call.bob.rtp_in
                       if CALLER_DIGITS.encode() in p or CALLER_MEDIA.encode() in p}
            alice_got = {p[1] for p in call.alice.rtcp_in + call.alice.rtp_in
                         if CALLEE_DIGITS.encode() in p or CALLEE_MEDIA.encode() in p}
            assert bob_got == crossing and alice_got == crossing
            in_dialog(call.r.caller, call.invite, call.ok, "BYE", 2, call.r.sipmask)
            await call.r.callee.request("BYE")

    asyncio.run(main())


async def _reinvite(call: MediaCall, cseq: int, direction: str, answer: str) -> Response:
    """The caller re-INVITEs with `direction`; the callee answers `answer`."""
    r = call.r
    reinvite = in_dialog(r.caller, call.invite, call.ok, "INVITE", cseq, r.sipmask,
                         body=offer_sdp(CALLER_MEDIA, call.alice.port, direction=direction))
    b_reinvite = await r.callee.request("INVITE")
    assert CALLER_MEDIA.encode() not in b_reinvite.body
    assert f"a={direction}".encode() in b_reinvite.body
    r.callee.answer(b_reinvite, 200,
                    body=offer_sdp(CALLEE_MEDIA, call.bob.port, owner="bob", direction=answer))
    ok = await r.caller.response(200, method="INVITE")
    in_dialog(r.caller, reinvite, ok, "ACK", cseq, r.sipmask)
    await r.callee.request("ACK")
    assert CALLEE_MEDIA.encode() not in ok.body
    assert _media_address(ok.body) == call.to_anchor_from_alice  # same anchor ports
    return ok


def test_hold_and_resume_keep_media(rtpengine: Rtpengine) -> None:
    async def main() -> None:
        async with anchored_call(rtpengine) as call:
            await _flow(call, 0)
            held = await _reinvite(call, 2, "sendonly", "recvonly")
            assert b"a=recvonly" in held.body
            resumed = await _reinvite(call, 3, "sendrecv", "sendrecv")
            assert b"a=sendrecv" in resumed.body
            await _flow(call, 100)
            in_dialog(call.r.caller, call.invite, call.ok, "BYE", 4, call.r.sipmask)
            await call.r.callee.request("BYE")

    asyncio.run(main())


def test_callee_reinvite_is_anchored_the_other_way(rtpengine: Rtpengine) -> None:
    async def main() -> None:
        async with anchored_call(rtpengine) as call:
            r = call.r
            reinvite = in_dialog(r.callee, call.b_invite, call.b_ok, "INVITE", 1, r.sipmask,
                                 body=offer_sdp(CALLEE_MEDIA, call.bob.port, owner="bob"),
                                 uac=False)
            a_reinvite = await r.caller.request("INVITE")
            assert CALLEE_MEDIA.encode() not in a_reinvite.body
            r.caller.answer(a_reinvite, 200, body=offer_sdp(CALLER_MEDIA, call.alice.port))
            ok = await r.callee.response(200, method="INVITE")
            assert CALLER_MEDIA.encode() not in ok.body
            in_dialog(r.callee, reinvite, ok, "ACK", 1, r.sipmask, uac=True)
            await _flow(call, 0)
            in_dialog(r.caller, call.invite, call.ok, "BYE", 2, r.sipmask)
            await r.callee.request("BYE")

    asyncio.run(main())


@pytest.mark.parametrize("on_failure", ["reject", "direct"])
def test_rtpengine_killed_mid_call(rtpengine: Rtpengine, on_failure: str) -> None:
    async def main() -> None:
        async with anchored_call(rtpengine, on_failure=on_failure) as call:
            await _flow(call, 0)
            rtpengine.stop()
            # the call in progress: a hold still gets through, on the anchored addresses
            await _reinvite(call, 2, "sendonly", "recvonly")
            # a new call follows on_failure
            r = call.r
            invite = r.invite(body=offer_sdp(CALLER_MEDIA, call.alice.port + 10))
            if on_failure == "reject":
                refused = await r.caller.response(method="INVITE")
                assert refused.status == 503
            else:
                b_invite = await r.callee.request("INVITE")
                assert CALLER_MEDIA.encode() in b_invite.body  # media flows directly
                r.callee.answer(b_invite, 486)
                busy = await r.caller.response(method="INVITE")
                assert busy.status == 486
            assert call.hook.stats.failures >= 1
            del invite
            in_dialog(r.caller, call.invite, call.ok, "BYE", 3, r.sipmask)
            await r.callee.request("BYE")

    asyncio.run(main())


def test_a_failed_call_is_deleted_in_rtpengine(rtpengine: Rtpengine) -> None:
    async def main() -> None:
        config = MediaConfig(backend="rtpengine",
                             rtpengine=(RtpengineInstance(rtpengine.address),))
        client = NgClient([("127.0.0.1", rtpengine.ng_port, 1)], ping_interval=0)
        await client.start()
        hook = Anchoring(client, config)
        try:
            async with rig(media=hook) as r:
                invite = r.invite(body=offer_sdp(CALLER_MEDIA, 40000))
                b_invite = await r.callee.request("INVITE")
                assert client.instances[0].calls == 1
                r.callee.answer(b_invite, 486)
                busy = await r.caller.response(method="INVITE")
                assert busy.status == 486
                del invite
                for _ in range(int(BOUND / 0.02)):
                    if client.instances[0].calls == 0:
                        break
                    await asyncio.sleep(0.02)
                assert client.instances[0].calls == 0
                assert client.stats.commands.get("delete") == 1
        finally:
            await client.close()

    asyncio.run(main())


def test_srtp_and_ipv6_towards_the_callee_plain_ipv4_towards_the_caller(
        rtpengine: Rtpengine) -> None:
    async def main() -> None:
        config = MediaConfig(
            backend="rtpengine", rtpengine=(RtpengineInstance(rtpengine.address),),
            callee=MediaSide(transport_protocol="RTP/SAVP", address_family="IP6"),
            caller=MediaSide(transport_protocol="RTP/AVP", address_family="IP4"))
        client = NgClient([("127.0.0.1", rtpengine.ng_port, 1)], ping_interval=0)
        await client.start()
        try:
            async with rig(media=Anchoring(client, config)) as r:
                r.invite(body=offer_sdp(CALLER_MEDIA, 40000))
                b_invite = await r.callee.request("INVITE")
                assert b"c=IN IP6 ::1" in b_invite.body
                assert b" RTP/SAVP 0" in b_invite.body and b"a=crypto:" in b_invite.body
                # the callee answers with SRTP keys of its own, over IPv6
                crypto = b"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" + (
                    b"WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz") + b"\r\n"
                answer = offer_sdp("::1", 40002, owner="bob", proto="RTP/SAVP") + crypto
                r.callee.answer(b_invite, 200, body=answer)
                await r.callee.request("ACK")
                ok = await r.caller.response(200, method="INVITE")
                assert b"c=IN IP4 127.0.0.1" in ok.body and b" RTP/AVP 0" in ok.body
                assert b"a=crypto" not in ok.body and b"WVNfX19z" not in ok.body
        finally:
            await client.close()

    asyncio.run(main())


def test_server_wires_the_hook_from_the_config(rtpengine: Rtpengine) -> None:
    from sipmask.config import parse_config
    from sipmask.server import _start_media

    async def main() -> None:
        async with contextlib.AsyncExitStack() as stack:
            assert await _start_media(stack, parse_config("", env={})) is None
            config = parse_config(
                f'[media]\nbackend = "rtpengine"\nping_interval = 0\n'
                f'[[media.rtpengine]]\naddress = "{rtpengine.address}"\n', env={})
            hook = await _start_media(stack, config)
            assert isinstance(hook, Anchoring)
            body = await hook.offer(MediaContext("wired"), "callee", offer_sdp(CALLER_MEDIA, 40000))
            assert CALLER_MEDIA.encode() not in body and b"c=IN IP4 127.0.0.1" in body
            await hook.end(MediaContext("wired"))
            metrics = hook.snapshot()
            assert metrics["media_calls_anchored_total"] == 1
            assert metrics["media_calls_anchored_now"] == 0 and metrics["media_rtpengine_up"] == 1

    asyncio.run(main())


def test_late_offer_and_early_media_are_anchored(rtpengine: Rtpengine) -> None:
    async def main() -> None:
        config = MediaConfig(backend="rtpengine",
                             rtpengine=(RtpengineInstance(rtpengine.address),))
        client = NgClient([("127.0.0.1", rtpengine.ng_port, 1)], ping_interval=0)
        await client.start()
        alice = await MediaEndpoint().start(CALLER_MEDIA)
        bob = await MediaEndpoint().start(CALLEE_MEDIA)
        try:
            async with rig(media=Anchoring(client, config)) as r:
                invite = r.invite(body=b"")  # late offer: the callee's 200 offers
                b_invite = await r.callee.request("INVITE")
                assert not b_invite.body
                r.callee.answer(b_invite, 200,
                                body=offer_sdp(CALLEE_MEDIA, bob.port, owner="bob"))
                ok = await r.caller.response(200, method="INVITE")
                assert CALLEE_MEDIA.encode() not in ok.body
                ack_for(r.caller, invite, ok, r.sipmask,
                        body=offer_sdp(CALLER_MEDIA, alice.port))
                b_ack = await r.callee.request("ACK")
                assert CALLER_MEDIA.encode() not in b_ack.body and b_ack.body
                call = MediaCall(r, Anchoring(client, config), alice, bob, invite, ok,
                                 b_invite, ok, _media_address(ok.body),
                                 _media_address(b_ack.body))
                await _flow(call, 0)
                in_dialog(r.caller, invite, ok, "BYE", 2, r.sipmask)
                await r.callee.request("BYE")

                # early media: a 183 with SDP reaches the caller anchored
                r.invite(body=offer_sdp(CALLER_MEDIA, alice.port + 10))
                b_invite = await r.callee.request("INVITE")
                r.callee.answer(b_invite, 183,
                                body=offer_sdp(CALLEE_MEDIA, bob.port + 10, owner="bob"))
                early = await r.caller.response(183, method="INVITE")
                assert CALLEE_MEDIA.encode() not in early.body
                assert b"c=IN IP4 127.0.0.1" in early.body
                r.callee.answer(b_invite, 480)
                assert (await r.caller.response(method="INVITE")).status == 480
                for _ in range(int(BOUND / 0.02)):  # both calls deleted in rtpengine
                    if client.stats.commands.get("delete") == 2 and not client.instances[0].calls:
                        break
                    await asyncio.sleep(0.02)
                assert client.stats.commands.get("delete") == 2
                assert client.instances[0].calls == 0
        finally:
            alice.close()
            bob.close()
            await client.close()

    asyncio.run(main())


def test_recorded_call_has_a_pcap_with_both_sides(tmp_path: Path) -> None:
    if RTPENGINE is None:
        pytest.skip("rtpengine is not installed (Debian package rtpengine-daemon)")
    recorder = Rtpengine(recording_dir=tmp_path)
    recorder.start()

    async def main() -> None:
        async with anchored_call(recorder, record=True) as call:
            await _flow(call, 0)
            (call_id,) = [c.id for c in call.r.engine.calls]
            assert call.hook.recording(MediaContext(call_id)) == call_id
            in_dialog(call.r.caller, call.invite, call.ok, "BYE", 2, call.r.sipmask)
            await call.r.callee.request("BYE")
        (pcap,) = (tmp_path / "pcaps").glob(f"{call_id}-*.pcap")
        data = pcap.read_bytes()
        # RTP from both parties, as rtpengine received it (their SSRCs)
        assert b"\x00\x00\x11\x11" in data and b"\x00\x00\x22\x22" in data

    try:
        asyncio.run(main())
    finally:
        recorder.stop()


async def _deleted(client: NgClient, count: int) -> None:
    for _ in range(int(BOUND / 0.02)):
        if client.stats.commands.get("delete", 0) >= count and not client.instances[0].calls:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"deleted {client.stats.commands.get('delete', 0)} of {count}")


def test_cancel_and_the_call_time_limit_delete_the_call(rtpengine: Rtpengine) -> None:
    from sipmask.sip.layer import build_cancel

    async def main() -> None:
        config = MediaConfig(backend="rtpengine",
                             rtpengine=(RtpengineInstance(rtpengine.address),))
        client = NgClient([("127.0.0.1", rtpengine.ng_port, 1)], ping_interval=0)
        await client.start()
        try:
            async with rig(media=Anchoring(client, config), call_time_limit=1) as r:
                invite = r.invite(body=offer_sdp(CALLER_MEDIA, 40000))
                b_invite = await r.callee.request("INVITE")
                r.callee.answer(b_invite, 180)
                await r.caller.response(180)
                assert client.instances[0].calls == 1
                r.caller.send(build_cancel(invite), r.sipmask)
                assert (await r.caller.response(487, method="INVITE")).status == 487
                b_cancel = await r.callee.request("CANCEL")
                r.callee.answer(b_cancel, 200)
                r.callee.answer(b_invite, 487)
                await _deleted(client, 1)

                invite = r.invite(body=offer_sdp(CALLER_MEDIA, 40010))
                b_invite = await r.callee.request("INVITE")
                r.callee.answer(b_invite, 200, body=offer_sdp(CALLEE_MEDIA, 40020, owner="bob"))
                ok = await r.caller.response(200, method="INVITE")
                ack_for(r.caller, invite, ok, r.sipmask)
                assert client.instances[0].calls == 1
                await r.caller.request("BYE")  # the limit (1 s) hangs up both legs
                await _deleted(client, 2)
        finally:
            await client.close()

    asyncio.run(main())


def test_a_call_ended_during_its_first_offer_is_still_deleted(rtpengine: Rtpengine) -> None:
    async def main() -> None:
        config = MediaConfig(backend="rtpengine",
                             rtpengine=(RtpengineInstance(rtpengine.address),))
        client = NgClient([("127.0.0.1", rtpengine.ng_port, 1)], ping_interval=0)
        await client.start()
        hook = Anchoring(client, config)
        try:
            # the CANCEL arrives while rtpengine is still answering the offer
            offer = asyncio.ensure_future(hook.offer(MediaContext("race"), "callee",
                                                     offer_sdp(CALLER_MEDIA, 40000)))
            await asyncio.sleep(0)  # the offer is sent and awaits its reply
            await hook.end(MediaContext("race"))
            await offer
            assert client.stats.commands.get("delete") == 1
            assert client.instances[0].calls == 0
        finally:
            await client.close()

    asyncio.run(main())


def test_dtls_srtp_towards_the_callee_carries_rtpengine_fingerprint(
        rtpengine: Rtpengine) -> None:
    async def main() -> None:
        config = MediaConfig(
            backend="rtpengine", rtpengine=(RtpengineInstance(rtpengine.address),),
            callee=MediaSide(transport_protocol="UDP/TLS/RTP/SAVP"))
        client = NgClient([("127.0.0.1", rtpengine.ng_port, 1)], ping_interval=0)
        await client.start()
        try:
            async with rig(media=Anchoring(client, config)) as r:
                r.invite(body=offer_sdp(CALLER_MEDIA, 40000))  # plain RTP/AVP
                b_invite = await r.callee.request("INVITE")
                assert b" UDP/TLS/RTP/SAVP 0" in b_invite.body
                assert b"a=fingerprint:" in b_invite.body and b"a=setup:" in b_invite.body
                callee_fingerprint = b"a=fingerprint:sha-256 " + b":".join(
                    b"AB" for _ in range(32))
                r.callee.answer(b_invite, 200, body=offer_sdp(
                    CALLEE_MEDIA, 40002, owner="bob", proto="UDP/TLS/RTP/SAVP")
                    + callee_fingerprint + b"\r\na=setup:active\r\n")
                ok = await r.caller.response(200, method="INVITE")
                assert b" RTP/AVP 0" in ok.body  # the caller stays plain
                assert b"a=fingerprint" not in ok.body and b"a=setup" not in ok.body
        finally:
            await client.close()

    asyncio.run(main())


@pytest.mark.skipif(not loopback_bindable("::1"), reason="no IPv6 loopback here")
def test_ipv4_caller_and_ipv6_callee_hear_each_other(rtpengine: Rtpengine) -> None:
    async def main() -> None:
        async with anchored_call(rtpengine, callee_host="::1",
                                 callee=MediaSide(address_family="IP6")) as call:
            assert call.to_anchor_from_bob[0] == "::1"  # rtpengine's IPv6 side
            assert call.to_anchor_from_alice[0] == "127.0.0.1"
            await _flow(call, 0)
            in_dialog(call.r.caller, call.invite, call.ok, "BYE", 2, call.r.sipmask)
            await call.r.callee.request("BYE")

    asyncio.run(main())
