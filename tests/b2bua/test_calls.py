"""Call flows through a real B2BUA on loopback UDP: scripted caller and callee peers, the
engine, the transaction layer and a memory store (b2bua_helpers.py). Each test drives one
flow of issue 5 and checks what each side receives. The flows that wait for a call timer
(ring timeout, call-time limit, 2xx retransmission, session timers) are in
test_engine_flow.py, on a clock the test moves."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

import msgspec
from b2bua_helpers import (
    CALLEE,
    CALLEE_DIGITS,
    CALLER,
    CALLER_DIGITS,
    SDP,
    ack_for,
    answered_call,
    in_dialog,
    records_of,
    rig,
    sdp,
)

from sipmask._core import Request, Response, parse_sdp
from sipmask.sip.layer import build_cancel
from sipmask.store.model import ParticipantSpec, SessionSpec


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(test())  # type: ignore[arg-type]


def test_basic_call_is_bridged_and_built_not_copied() -> None:
    async def main() -> None:
        async with rig() as r:
            invite = r.invite()
            trying = await r.caller.response(100)
            assert trying.status == 100
            b_invite = await r.callee.request("INVITE")
            # Built, not copied: the callee's INVITE names the callee and the caller's
            # virtual number, with sipmask's own identifiers.
            assert b_invite.parsed_uri.user == CALLEE
            assert b_invite.from_ is not None and b_invite.from_.uri.user == r.v2
            assert b_invite.to is not None and b_invite.to.uri.user == CALLEE
            assert b_invite.call_id != invite.call_id and "@" not in (b_invite.call_id or "")
            assert b_invite.from_tag != invite.from_tag
            assert b_invite.max_forwards == 69
            assert len(b_invite.via) == 1 and b_invite.top_via is not None
            assert b_invite.top_via.port == r.sipmask.port
            assert b_invite.contact[0].uri.port == r.sipmask.port
            offer = parse_sdp(b_invite.body)
            assert offer.origin.startswith("- ") and offer.session_name == "-"
            assert offer.media[0].port == 49170  # media passes through (no anchoring yet)

            r.callee.answer(b_invite, 180)
            ringing = await r.caller.response(180)
            assert ringing.to_tag is not None
            r.callee.answer(b_invite, 200, body=sdp(owner="bob", port=50000))
            ack = await r.callee.request("ACK")
            assert ack.cseq is not None and ack.cseq.number == 1
            ok = await r.caller.response(200, method="INVITE")
            assert ok.to_tag == ringing.to_tag  # one dialog on the caller's side
            assert ok.call_id == invite.call_id
            answer = parse_sdp(ok.body)
            assert answer.media[0].port == 50000 and answer.origin.startswith("- ")
            ack_for(r.caller, invite, ok, r.sipmask)

            bye = in_dialog(r.caller, invite, ok, "BYE", 2, r.sipmask)
            bye_ok = await r.caller.response(200, method="BYE")
            assert bye_ok.call_id == bye.call_id
            b_bye = await r.callee.request("BYE")
            assert b_bye.call_id == b_invite.call_id
            r.callee.answer(b_bye, 200)
            await asyncio.sleep(0.05)
            assert r.engine.stats.calls_active == 0
            records = await records_of(r)
            assert len(records) == 1
            record = records[0]
            assert record.status == "completed" and record.cause == "bye-caller"
            assert record.caller == CALLER and record.callee == CALLEE
            assert record.dialled == r.v1 and record.presented == r.v2
            assert record.answered_at is not None and record.ended_at is not None

    run(main)


def test_callee_hangs_up() -> None:
    async def main() -> None:
        async with rig() as r:
            invite, ok, b_invite, b_ok = await answered_call(r)
            in_dialog(r.callee, b_invite, b_ok, "BYE", 1, r.sipmask, uac=False,
                      headers=[("Reason", 'Q.850;cause=16;text="+919812345678 hung up"')])
            await r.callee.response(200, method="BYE")
            bye = await r.caller.request("BYE")
            assert bye.call_id == invite.call_id and bye.to_tag == invite.from_tag
            assert bye.header("reason") == "Q.850;cause=16"  # rebuilt: no free text
            r.caller.answer(bye, 200)
            (record,) = await records_of(r)
            assert record.cause == "bye-callee"

    run(main)


def test_busy_is_relayed_and_each_leg_acked_by_its_own_transaction() -> None:
    async def main() -> None:
        async with rig() as r:
            r.invite()
            b_invite = await r.callee.request("INVITE")
            r.callee.answer(b_invite, 486)
            ack = await r.callee.request("ACK")  # the B leg's own ACK (RFC 3261 §17.1.1.3)
            assert ack.call_id == b_invite.call_id
            busy = await r.caller.response(486)
            assert busy.status == 486
            (record,) = await records_of(r)
            assert record.status == "busy" and record.answered_at is None

    run(main)


def test_503_from_the_callee_is_never_relayed_as_503() -> None:
    async def main() -> None:
        async with rig() as r:
            r.invite()
            b_invite = await r.callee.request("INVITE")
            r.callee.answer(b_invite, 503, headers=[("Retry-After", "60")])
            final = await r.caller.response()
            assert final.status == 500 and final.header("retry-after") is None

    run(main)


def test_failover_to_the_next_destination_on_503() -> None:
    async def main() -> None:
        async with rig(callees=2) as r:
            first, second = r.callees
            r.invite()
            b_invite = await first.request("INVITE")
            first.answer(b_invite, 503)
            retry = await second.request("INVITE")
            assert retry.call_id == b_invite.call_id  # same B dialog attempt, next target
            assert retry.top_via is not None and b_invite.top_via is not None
            assert retry.top_via.branch != b_invite.top_via.branch
            second.answer(retry, 200, body=sdp(owner="bob"))
            await second.request("ACK")
            ok = await r.caller.response(200, method="INVITE")
            assert ok.status == 200

    run(main)


def test_no_failover_once_the_callee_rang() -> None:
    async def main() -> None:
        async with rig(callees=2) as r:
            first, second = r.callees
            r.invite()
            b_invite = await first.request("INVITE")
            first.answer(b_invite, 180)
            first.answer(b_invite, 503)
            final = await r.caller.response()
            assert final.status == 500
            assert not [m for m in await second.silence(0.3) if isinstance(m, Request)]

    run(main)


def test_failover_when_the_first_destination_is_silent() -> None:
    async def main() -> None:
        async with rig(callees=2) as r:  # t1 = 50 ms: Timer B fires after 3.2 s
            first, second = r.callees
            first.close()  # nothing answers there
            r.invite()
            retry = await second.request("INVITE", bound=8.0)
            second.answer(retry, 486)
            assert (await r.caller.response(bound=8.0)).status == 486

    run(main)


def test_caller_cancel_cancels_the_callee() -> None:
    async def main() -> None:
        async with rig() as r:
            invite = r.invite()
            b_invite = await r.callee.request("INVITE")
            r.callee.answer(b_invite, 180)
            await r.caller.response(180)
            r.caller.send(build_cancel(invite), r.sipmask)  # RFC 3261 §9.1
            assert (await r.caller.response(200, method="CANCEL")).status == 200
            assert (await r.caller.response(487, method="INVITE")).status == 487
            b_cancel = await r.callee.request("CANCEL")
            assert b_cancel.call_id == b_invite.call_id
            assert b_cancel.top_via is not None and b_invite.top_via is not None
            assert b_cancel.top_via.branch == b_invite.top_via.branch
            r.callee.answer(b_cancel, 200)
            r.callee.answer(b_invite, 487)
            await r.callee.request("ACK")

    run(main)


def test_cancel_crossing_the_callees_200_ends_the_callee_leg() -> None:
    async def main() -> None:
        async with rig() as r:
            invite = r.invite()
            b_invite = await r.callee.request("INVITE")
            r.callee.answer(b_invite, 180)
            await r.caller.response(180)
            r.caller.send(build_cancel(invite), r.sipmask)  # RFC 3261 §9.1
            await r.caller.response(487, method="INVITE")
            await r.callee.request("CANCEL")
            # The callee answers as the CANCEL crosses: sipmask ACKs that 200 and BYEs it.
            r.callee.answer(b_invite, 200, body=sdp(owner="bob"))
            ack = await r.callee.request("ACK")
            bye = await r.callee.request("BYE")
            assert ack.call_id == bye.call_id == b_invite.call_id
            assert not [m for m in await r.caller.silence(0.3)
                        if isinstance(m, Response) and m.status == 200
                        and m.cseq is not None and m.cseq.method == "INVITE"]

    run(main)


def test_forked_callee_second_200_is_acked_and_byed() -> None:
    async def main() -> None:
        async with rig() as r:
            r.invite()
            b_invite = await r.callee.request("INVITE")
            r.callee.answer(b_invite, 180, tag="fork1")
            r.callee.answer(b_invite, 183, tag="fork2", body=sdp(owner="fork2"))
            first = await r.caller.response(180)
            second = await r.caller.response(183)
            assert first.to_tag == second.to_tag  # both forks map onto one caller dialog
            r.callee.answer(b_invite, 200, tag="fork2", body=sdp(owner="fork2"))
            ack = await r.callee.request("ACK")
            assert ack.to_tag == "fork2"
            await r.caller.response(200, method="INVITE")
            r.callee.answer(b_invite, 200, tag="fork1", body=sdp(owner="fork1"))
            late_ack = await r.callee.request("ACK")
            bye = await r.callee.request("BYE")
            assert late_ack.to_tag == bye.to_tag == "fork1"

    run(main)


def test_reinvite_hold_and_resume_both_ways() -> None:
    async def main() -> None:
        async with rig() as r:
            invite, ok, b_invite, b_ok = await answered_call(r)
            # The caller holds.
            hold = in_dialog(r.caller, invite, ok, "INVITE", 2, r.sipmask,
                             body=sdp("sendonly"))
            b_hold = await r.callee.request("INVITE")
            assert b_hold.call_id == b_invite.call_id and b_hold.to_tag == b_ok.to_tag
            assert parse_sdp(b_hold.body).media[0].attributes[-1] == ("sendonly", None)
            r.callee.answer(b_hold, 200, body=sdp("recvonly", owner="bob", port=50000))
            await r.callee.request("ACK")
            held = await r.caller.response(200, method="INVITE")
            assert ("recvonly", None) in parse_sdp(held.body).media[0].attributes
            ack_for(r.caller, hold, held, r.sipmask)
            # The callee resumes.
            resume = in_dialog(r.callee, b_invite, b_ok, "INVITE", 1, r.sipmask, uac=False,
                               body=sdp("sendrecv", owner="bob", port=50000))
            a_resume = await r.caller.request("INVITE")
            assert a_resume.call_id == invite.call_id
            r.caller.answer(a_resume, 200, body=sdp("sendrecv"), tag=invite.from_tag)
            await r.caller.request("ACK")
            resumed = await r.callee.response(200, method="INVITE")
            assert resumed.call_id == resume.call_id
            ack_for(r.callee, resume, resumed, r.sipmask)

    run(main)


def test_reliable_provisional_is_pracked_on_the_callee_leg_only() -> None:
    async def main() -> None:
        async with rig() as r:
            r.invite()
            b_invite = await r.callee.request("INVITE")
            r.callee.answer(b_invite, 183, body=sdp(owner="bob"),
                            headers=[("Require", "100rel"), ("RSeq", "7")])
            prack = await r.callee.request("PRACK")
            assert prack.header("rack") == "7 1 INVITE"
            r.callee.answer(prack, 200)
            progress = await r.caller.response(183)
            assert progress.header("require") is None and progress.header("rseq") is None
            assert parse_sdp(progress.body).media  # early media crosses, rebuilt

    run(main)


def test_caller_requiring_100rel_gets_420() -> None:
    async def main() -> None:
        async with rig() as r:
            r.invite(headers=[("Require", "100rel")])
            final = await r.caller.response()
            assert final.status == 420 and final.header("unsupported") == "100rel"

    run(main)


def test_unknown_caller_and_anonymous_caller_are_rejected_alike() -> None:
    async def main() -> None:
        async with rig() as r:
            r.invite(from_user="+919999999999")
            unknown = await r.caller.response()
            r.invite(from_user="anonymous")
            anonymous = await r.caller.response()
            assert unknown.status == anonymous.status == 404
            assert not await r.callee.silence(0.2)

    run(main)


def test_unknown_source_is_refused_and_learns_nothing() -> None:
    async def main() -> None:
        reject = 'unknown_source = "reject"'
        async with rig(inbound="127.0.0.2/32", sip_extra=reject) as r:
            r.invite()
            final = await r.caller.response()
            assert final.status == 403
            assert final.header("server") is None and final.header("user-agent") is None
            assert final.header("allow") is None
            assert not await r.callee.silence(0.2)

    run(main)


def test_unknown_source_is_dropped_without_even_a_100() -> None:
    async def main() -> None:
        async with rig(inbound="127.0.0.2/32") as r:  # the default: unknown_source = "drop"
            r.invite()
            r.request_from_caller("OPTIONS")
            assert not await r.caller.silence(0.3)
            assert not await r.callee.silence(0.1)
            assert r.endpoint.layer.stats.in_flight == 0

    run(main)


def test_late_offer_answer_travels_in_the_acks() -> None:
    async def main() -> None:
        async with rig() as r:
            invite = r.invite(body=b"")
            b_invite = await r.callee.request("INVITE")
            assert not b_invite.body
            r.callee.answer(b_invite, 200, body=sdp(owner="bob", port=50000))
            ok = await r.caller.response(200, method="INVITE")
            assert parse_sdp(ok.body).media[0].port == 50000  # the offer, rebuilt
            ack_for(r.caller, invite, ok, r.sipmask, body=sdp(port=40000))
            b_ack = await r.callee.request("ACK")
            assert parse_sdp(b_ack.body).media[0].port == 40000  # the answer, rebuilt

    run(main)


def test_info_dtmf_crosses_and_other_bodies_are_refused() -> None:
    async def main() -> None:
        async with rig() as r:
            invite, ok, b_invite, b_ok = await answered_call(r)
            in_dialog(r.caller, invite, ok, "INFO", 2, r.sipmask,
                      body=b"Signal=5\r\nDuration=160\r\n",
                      content_type="application/dtmf-relay")
            info = await r.callee.request("INFO")
            assert info.body == b"Signal=5\r\nDuration=160\r\n"
            assert info.content_type == "application/dtmf-relay"
            r.callee.answer(info, 200)
            assert (await r.caller.response(200, method="INFO")).status == 200
            in_dialog(r.caller, invite, ok, "INFO", 3, r.sipmask,
                      body=f"caller={CALLER}".encode(), content_type="application/x-custom")
            refused = await r.caller.response(method="INFO")
            assert refused.status == 415
            assert not [m for m in await r.callee.silence(0.2) if isinstance(m, Request)]

    run(main)


def test_refer_is_refused() -> None:
    async def main() -> None:
        async with rig() as r:
            invite, ok, _, _ = await answered_call(r)
            in_dialog(r.caller, invite, ok, "REFER", 2, r.sipmask,
                      headers=[("Refer-To", f"<sip:{CALLER}@127.0.0.1>")])
            refused = await r.caller.response(method="REFER")
            assert refused.status == 405 and "REFER" not in (refused.header("allow") or "")

    run(main)


def test_max_forwards_one_is_not_forwarded() -> None:
    async def main() -> None:
        async with rig() as r:
            r.invite(max_forwards=1)
            assert (await r.caller.response()).status == 483
            assert not await r.callee.silence(0.2)

    run(main)


def test_message_crosses_masked_both_ways() -> None:
    async def main() -> None:
        async with rig() as r:
            r.request_from_caller("MESSAGE", body=b"on my way", content_type="text/plain")
            message = await r.callee.request("MESSAGE")
            assert message.body == b"on my way"
            assert message.from_ is not None and message.from_.uri.user == r.v2
            r.callee.answer(message, 200)
            assert (await r.caller.response(method="MESSAGE")).status == 200
            # The callee texts back through its own virtual number, from the carrier.
            r.request_from_caller("MESSAGE", body=b"ok", content_type="text/plain",
                                  from_user=CALLEE, dialled=r.v2)
            back = await r.callee.request("MESSAGE")  # the same trunk reaches the caller
            assert back.parsed_uri.user == CALLER
            assert back.from_ is not None and back.from_.uri.user == r.v1
            r.callee.answer(back, 202)
            assert (await r.caller.response(method="MESSAGE")).status == 202
            assert CALLER_DIGITS.encode() not in b"".join(
                raw for raw in r.callee.raw if raw.startswith(b"MESSAGE") and b"on my way" in raw)

    run(main)


# --- the leak test ---------------------------------------------------------------------------

PLANTED_HEADERS = [
    ("P-Asserted-Identity", f'"{CALLER}" <sip:{CALLER}@carrier.example;user=phone>'),
    ("P-Asserted-Identity", f"<tel:{CALLER}>"),
    ("P-Preferred-Identity", f"<sip:{CALLER}@carrier.example>"),
    ("Remote-Party-ID", f'"Alice {CALLER}" <sip:{CALLER}@carrier.example>;party=calling'),
    ("Diversion", f"<sip:{CALLER}@carrier.example>;reason=unconditional"),
    ("History-Info", f"<sip:{CALLER}@carrier.example?Reason=SIP%3Bcause%3D302>;index=1"),
    ("Call-Info", f"<http://carrier.example/{CALLER}.png>;purpose=icon"),
    ("Reply-To", f"<sip:{CALLER}@carrier.example>"),
    ("X-Caller", CALLER),
    ("X-Original-Number", f"tel:{CALLER}"),
    ("Subject", f"call from {CALLER}"),
    ("Organization", f"Alice {CALLER}"),
    ("Privacy", "none"),
    ("Session-Expires", f"1800;refresher=uac;x={CALLER}"),
    ("Reason", f'Q.850;cause=16;text="{CALLER}"'),
    ("Supported", f"100rel, timer, x{CALLER_DIGITS}"),
    ("User-Agent", f"Phone {CALLER}"),
]

PLANTED_SDP = (
    f"v=0\r\no={CALLER} 2890844526 2890844526 IN IP4 127.0.0.1\r\ns={CALLER}\r\n"
    f"i=caller {CALLER}\r\nu=http://example.com/{CALLER}\r\ne={CALLER}@example.com\r\n"
    f"p={CALLER}\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 49170 RTP/AVP 0\r\n"
    f"a=rtpmap:0 PCMU/8000\r\na=x-caller:{CALLER}\r\n"
).encode()


def multipart(sdp_body: bytes) -> tuple[bytes, str]:
    boundary = "b0und"
    body = (
        f"--{boundary}\r\nContent-Type: application/sdp\r\n\r\n".encode() + sdp_body
        + f"\r\n--{boundary}\r\nContent-Type: application/isup;version=itu-t92+\r\n\r\n"
          f"calling={CALLER}\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/mixed;boundary={boundary}"


def test_leak_caller_number_planted_everywhere_never_reaches_the_callee() -> None:
    async def main() -> None:
        async with rig() as r:
            body, content_type = multipart(PLANTED_SDP)
            fields = [*PLANTED_HEADERS]
            invite = r.request_from_caller(
                "INVITE", body=body, content_type=content_type, headers=fields,
                from_name=f"Alice {CALLER}", call_id=f"{CALLER}-{CALLER_DIGITS}@10.0.0.1")
            b_invite = await r.callee.request("INVITE")
            b_ok = r.callee.answer(b_invite, 200, body=sdp(owner="bob"))
            await r.callee.request("ACK")
            ok = await r.caller.response(200, method="INVITE")
            ack_for(r.caller, invite, ok, r.sipmask)
            # In-dialog traffic from the caller carries the number too.
            in_dialog(r.caller, invite, ok, "INVITE", 5, r.sipmask, body=PLANTED_SDP,
                      headers=PLANTED_HEADERS)
            b_re = await r.callee.request("INVITE")
            r.callee.answer(b_re, 200, body=sdp(owner="bob"))
            in_dialog(r.caller, invite, ok, "BYE", 6, r.sipmask, headers=PLANTED_HEADERS)
            await r.callee.request("BYE")
            received = r.callee.received()
            assert CALLER_DIGITS.encode() not in received
            assert b"Alice" not in received
            assert b"isup" not in received.lower()
            assert b_ok.status == 200  # the call really was set up

    run(main)


def test_leak_callee_number_planted_everywhere_never_reaches_the_caller() -> None:
    async def main() -> None:
        async with rig() as r:
            planted = [
                (name, value.replace(CALLER, CALLEE).replace(CALLER_DIGITS, CALLEE_DIGITS))
                for name, value in PLANTED_HEADERS
            ]
            planted_sdp = PLANTED_SDP.replace(CALLER.encode(), CALLEE.encode())
            invite = r.invite()
            b_invite = await r.callee.request("INVITE")
            r.callee.answer(b_invite, 180, headers=planted)
            r.callee.answer(b_invite, 183, headers=planted, body=planted_sdp)
            b_ok = r.callee.answer(b_invite, 200, headers=[
                *planted, ("Server", f"PBX {CALLEE}"),
                ("Warning", f'399 pbx "{CALLEE}"')], body=planted_sdp)
            await r.callee.request("ACK")
            ok = await r.caller.response(200, method="INVITE")
            ack_for(r.caller, invite, ok, r.sipmask)
            in_dialog(r.callee, b_invite, b_ok, "INVITE", 1, r.sipmask, uac=False,
                      body=planted_sdp, headers=planted)
            re_invite = await r.caller.request("INVITE")
            r.caller.answer(re_invite, 200, body=SDP, tag=invite.from_tag)
            in_dialog(r.callee, b_invite, b_ok, "BYE", 2, r.sipmask, uac=False, headers=planted)
            await r.caller.request("BYE")
            received = r.caller.received()
            assert CALLEE_DIGITS.encode() not in received
            assert b"PBX" not in received and b"pbx" not in received
            # The contact the caller learns is sipmask's, never the callee's.
            assert ok.contact[0].uri.port == r.sipmask.port

    run(main)


def test_callee_number_is_not_a_pool_number_loop() -> None:
    """A destination that is itself a virtual number is refused (a loop through a trunk).
    The store refuses such participants at creation; a number added to a config pool
    afterwards is caught by the engine."""
    async def main() -> None:
        later_pool = '[[pools]]\nname = "later"\nnumbers = ["+918000000009"]\n'
        async with rig(later_pool, session=False) as r:
            r.session = await r.store.create_session(SessionSpec(participants=(
                ParticipantSpec(CALLER), ParticipantSpec("+918000000009"))))
            r.invite()
            final = await r.caller.response()
            assert final.status == 482
            assert not await r.callee.silence(0.2)

    run(main)


def test_carrier_digest_challenge_is_answered_once() -> None:
    async def main() -> None:
        from sipmask.b2bua.digest import authorization

        credentials = '[trunks.digest]\nusername = "sipmask"\npassword = "s3cret"\n'
        async with rig(credentials) as r:
            r.invite()
            b_invite = await r.callee.request("INVITE")
            challenge = 'Digest realm="carrier", nonce="abc123", qop="auth"'
            r.callee.answer(b_invite, 407, headers=[("Proxy-Authenticate", challenge)])
            await r.callee.request("ACK")
            retry = await r.callee.request("INVITE")
            assert retry.call_id == b_invite.call_id
            assert retry.cseq is not None and retry.cseq.number == 2
            credentials_value = retry.header("proxy-authorization") or ""
            cnonce = credentials_value.split('cnonce="')[1].split('"')[0]
            expected = authorization(challenge, "INVITE", retry.uri, "sipmask", "s3cret",
                                     cnonce=cnonce)
            assert credentials_value == expected
            # A second challenge is not answered again: the caller gets a plain failure.
            r.callee.answer(retry, 407, headers=[("Proxy-Authenticate", challenge)])
            final = await r.caller.response()
            assert final.status == 500 and final.header("proxy-authenticate") is None

    run(main)


def test_probed_dead_destination_is_skipped_by_new_calls() -> None:
    async def main() -> None:
        async with rig(callees=2) as r:  # t1 = 50 ms: a probe gives up after 3.2 s
            first, second = r.callees
            first.close()
            r.engine.attach(r.endpoint)
            targets = await r.engine.router.targets("carrier", None)

            async def answer_options() -> None:
                options = await second.request("OPTIONS")
                assert options.header("user-agent") is None  # no fingerprint
                second.answer(options, 200)

            results = await asyncio.gather(*(r.engine.probe(t) for t in targets),
                                           answer_options())
            assert results[:2] == [False, True]
            r.invite()
            b_invite = await second.request("INVITE", bound=1.0)  # no Timer B wait first
            second.answer(b_invite, 486)
            assert (await r.caller.response()).status == 486

    run(main)


def test_draining_refuses_new_calls_and_keeps_calls_in_progress() -> None:
    async def main() -> None:
        async with rig() as r:
            invite, ok, _, _ = await answered_call(r)
            r.engine.drain()
            r.invite(from_user=CALLER)
            assert (await r.caller.response(503)).header("retry-after") == "5"
            in_dialog(r.caller, invite, ok, "BYE", 2, r.sipmask)
            await r.callee.request("BYE")  # the call in progress still works

    run(main)


def test_reload_applies_to_new_calls_only() -> None:
    async def main() -> None:
        async with rig(callees=2) as r:
            first, second = r.callees
            invite, ok, _, _ = await answered_call(r)
            new = r.engine.config.trunks[0].__class__(
                name="carrier", inbound=("127.0.0.1/32",),
                outbound=(f"udp:127.0.0.1:{second.address.port}",),
                number_rules=r.engine.config.trunks[0].number_rules)
            r.engine.reload(msgspec.structs.replace(r.engine.config, trunks=(new,)))
            r.invite()
            b_invite = await second.request("INVITE")  # the new destination
            second.answer(b_invite, 486)
            await r.caller.response(486)
            in_dialog(r.caller, invite, ok, "BYE", 2, r.sipmask)
            await first.request("BYE")  # the held call kept its leg to the old destination

    run(main)


def test_reinvite_glare_is_answered_491() -> None:
    async def main() -> None:
        async with rig() as r:
            invite, ok, b_invite, b_ok = await answered_call(r)
            in_dialog(r.callee, b_invite, b_ok, "INVITE", 1, r.sipmask, uac=False,
                      body=sdp("sendonly", owner="bob"))
            await r.caller.request("INVITE")  # relayed; the caller has not answered yet
            in_dialog(r.caller, invite, ok, "INVITE", 2, r.sipmask, body=sdp("sendonly"))
            glare = await r.caller.response(method="INVITE")
            assert glare.status == 491

    run(main)


def test_trunk_concurrent_call_limit() -> None:
    async def main() -> None:
        async with rig() as r:
            r.engine.router.trunks[0].config = msgspec.structs.replace(
                r.engine.router.trunks[0].config, max_calls=1)
            await answered_call(r)
            r.invite()
            assert (await r.caller.response(503)).header("retry-after") == "5"
            assert r.engine.stats.calls_rejected == 1

    run(main)


def test_trunk_call_rate_limit() -> None:
    async def main() -> None:
        async with rig() as r:
            trunk = r.engine.router.trunks[0]
            trunk.config = msgspec.structs.replace(trunk.config, calls_per_second=1.0)
            trunk._tokens = 1.0
            r.invite()
            await r.callee.request("INVITE")
            r.invite()  # the second in the same second
            assert (await r.caller.response(503)).status == 503

    run(main)


def test_no_binding_goes_to_the_fallback_uri() -> None:
    async def main() -> None:
        async with rig(session=False) as r:
            port = r.callee.address.port
            r.engine.reload(msgspec.structs.replace(r.engine.config, calls=msgspec.structs.replace(
                r.engine.config.calls, no_binding="fallback",
                fallback=f"sip:ivr@127.0.0.1:{port}")))
            r.invite(dialled="+918000000001")
            b_invite = await r.callee.request("INVITE")
            assert b_invite.parsed_uri.user == "ivr"
            assert CALLER_DIGITS not in bytes(b_invite).decode()

    run(main)


def test_refused_tcp_destination_fails_over_at_once() -> None:
    async def main() -> None:
        async with rig() as r:
            closed = socket.socket()
            closed.bind(("127.0.0.1", 0))
            port = closed.getsockname()[1]
            closed.close()  # nothing listens there: the connection is refused
            trunk = r.engine.config.trunks[0]
            new = msgspec.structs.replace(trunk, outbound=(
                f"tcp:127.0.0.1:{port}", f"udp:127.0.0.1:{r.callee.address.port}"))
            r.engine.reload(msgspec.structs.replace(r.engine.config, trunks=(new,)))
            r.invite()
            b_invite = await r.callee.request("INVITE", bound=2.0)  # no Timer B wait
            assert b_invite.top_via is not None and b_invite.top_via.transport == "UDP"
            assert ";transport=tcp" not in (b_invite.header("contact") or "")
            r.callee.answer(b_invite, 486)
            assert (await r.caller.response()).status == 486

    run(main)


def test_a_saturated_loop_refuses_new_calls_early() -> None:
    async def main() -> None:
        import time as clock

        async with rig() as r:
            r.engine.start_overload_monitor(interval=0.01)
            loop = asyncio.get_running_loop()
            busy = True

            def hog() -> None:  # every wake-up of the loop is late, as under saturation
                if busy:
                    clock.sleep(0.08)
                    loop.call_soon(hog)

            loop.call_soon(hog)
            for _ in range(200):
                if r.engine.overloaded:
                    break
                await asyncio.sleep(0.01)
            assert r.engine.overloaded
            r.invite()
            refused = await r.caller.response(503)
            assert refused.header("retry-after") == "5"
            assert not await r.callee.silence(0.1)  # no work spent on it
            assert r.endpoint.layer.stats.in_flight == 0  # not even a transaction
            busy = False
            for _ in range(200):
                if not r.engine.overloaded:
                    break
                await asyncio.sleep(0.01)
            assert not r.engine.overloaded
            r.invite()
            assert (await r.callee.request("INVITE")).method == "INVITE"
            assert r.endpoint.layer.stats.refused == 1  # refused statelessly, by the layer

    run(main)


def test_one_long_pause_is_not_overload() -> None:
    async def main() -> None:
        import time as clock

        async with rig() as r:
            r.engine.start_overload_monitor(interval=0.01)
            await asyncio.sleep(0.15)
            clock.sleep(0.5)  # a garbage-collection pause, say
            await asyncio.sleep(0.15)
            assert not r.engine.overloaded

    run(main)


def test_reload_keeps_the_overload_monitor() -> None:
    async def main() -> None:
        async with rig() as r:
            r.engine.start_overload_monitor(interval=0.01)
            watch = r.engine._lag_watch
            r.engine.attach(r.endpoint)
            r.engine.reload(r.engine.config)  # cancels and restarts the OPTIONS probes only
            await asyncio.sleep(0.05)
            assert watch is not None and not watch.done()

    run(main)
