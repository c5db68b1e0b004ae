"""Regressions of issue 12: call-flow defects on the engine's error paths, each driven through
a real B2BUA on loopback (b2bua_helpers.py) by scripted peers that misbehave."""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

import msgspec
import pytest
from b2bua_helpers import (
    BOUND,
    answered_call,
    in_dialog,
    records_of,
    rig,
    sdp,
)

from sipmask._core import Request, StreamFramer, parse
from sipmask.sip.layer import build_cancel
from sipmask.sip.responses import make_response
from sipmask.sip.transaction import client_key
from sipmask.transport.stream import server_context


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(test())  # type: ignore[arg-type]


# --- 1. RFC 3261 §9.1: the INVITE is given up 64*T1 after its CANCEL ---------------------------


def test_invite_is_given_up_64_t1_after_cancel_when_the_callee_goes_silent() -> None:
    async def main() -> None:
        async with rig() as r:
            invite = r.invite()
            b_invite = await r.callee.request("INVITE")
            r.callee.answer(b_invite, 180)
            await r.caller.response(180)
            r.caller.send(build_cancel(invite), r.sipmask)
            assert (await r.caller.response(487)).status == 487
            cancel = await r.callee.request("CANCEL")
            r.callee.send(make_response(cancel, 200, to_tag=r.callee.tag), r.sipmask)
            # The callee never sends its 487: the INVITE transaction must still end.
            layer = r.endpoint.layer
            key = client_key(b_invite)
            give_up = 64 * r.engine.config.sip.timers.t1
            for _ in range(int((give_up + BOUND) / 0.05)):
                if layer.state(key) is None:
                    break
                await asyncio.sleep(0.05)
            assert layer.state(key) is None
            assert layer.stats.in_progress == 0

    run(main)


# --- 2. no orphaned callee leg ----------------------------------------------------------------


def test_caller_with_a_malformed_contact_is_refused_before_any_callee_is_called() -> None:
    async def main() -> None:
        async with rig() as r:
            r.invite(headers=[("Record-Route", "<sip:proxy.example;lr")])
            refused = await r.caller.response()
            assert refused.status == 400
            assert not await r.callee.silence(0.2)  # no leg to orphan

    run(main)


def test_callee_answer_with_malformed_sdp_is_acked_and_byed() -> None:
    async def main() -> None:
        async with rig() as r:
            r.invite()
            b_invite = await r.callee.request("INVITE")
            r.callee.answer(b_invite, 200, body=b"v=0\r\ngarbage\r\n")
            await r.callee.request("ACK")
            bye = await r.callee.request("BYE")
            assert bye.call_id == b_invite.call_id
            r.callee.answer(bye, 200)
            assert (await r.caller.response()).status == 488
            (record,) = await records_of(r)
            assert record.status == "failed" and record.answered_at is None

    run(main)


# --- 3. a 2xx with a malformed Contact or Record-Route is still ACKed ---------------------------


@pytest.mark.parametrize("header", ["Contact", "Record-Route"])
def test_callee_200_with_a_malformed_header_is_acked_and_ended(header: str) -> None:
    async def main() -> None:
        async with rig() as r:
            r.invite()
            b_invite = await r.callee.request("INVITE")
            ok = make_response(b_invite, 200, to_tag=r.callee.tag, headers=[
                ("Contact", f"<sip:bob@127.0.0.1:{r.callee.address.port}>"),
                ("Content-Type", "application/sdp")], body=sdp(owner="bob", port=50000))
            ok.set_header(header, "<sip:bob@127.0.0.1;lr")  # no closing bracket
            r.callee.send(ok, r.sipmask)
            ack = await r.callee.request("ACK")
            assert ack.call_id == b_invite.call_id and ack.to_tag == r.callee.tag
            bye = await r.callee.request("BYE")
            r.callee.answer(bye, 200)
            assert (await r.caller.response()).status == 502

    run(main)


# --- 4. outbound TLS --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    if shutil.which("openssl") is None:
        pytest.skip("no openssl command")
    folder: Path = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return str(cert), str(key)


def test_calls_to_a_tls_destination_go_over_tls(certificate: tuple[str, str]) -> None:
    cert, key = certificate

    async def main() -> None:
        received: asyncio.Queue[Request] = asyncio.Queue()

        async def callee(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            framer = StreamFramer()
            while data := await reader.read(65536):
                for frame in framer.feed(data):
                    message = parse(frame)
                    if isinstance(message, Request) and message.method == "INVITE":
                        await received.put(message)
                        writer.write(bytes(make_response(message, 486, to_tag="tlspeer")))

        server = await asyncio.start_server(callee, "127.0.0.1", 0,
                                            ssl=server_context(cert, key))
        port = server.sockets[0].getsockname()[1]
        async with rig() as r:
            await r.endpoint.listen("tls:127.0.0.1:0", ssl_context=server_context(cert, key))
            config = r.engine.config
            trunk = msgspec.structs.replace(config.trunks[0], outbound=(f"tls:127.0.0.1:{port}",))
            r.engine.reload(msgspec.structs.replace(
                config, trunks=(trunk,), sip=msgspec.structs.replace(config.sip, tls_ca=cert)))
            r.invite()
            b_invite = await asyncio.wait_for(received.get(), BOUND)
            assert b_invite.top_via is not None and b_invite.top_via.transport == "TLS"
            assert (await r.caller.response()).status == 486
        server.close()
        await server.wait_closed()

    run(main)


def test_a_tls_destination_with_an_untrusted_certificate_fails_the_call(
    certificate: tuple[str, str],
) -> None:
    cert, key = certificate

    async def main() -> None:
        async def callee(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(65536)

        server = await asyncio.start_server(callee, "127.0.0.1", 0,
                                            ssl=server_context(cert, key))
        port = server.sockets[0].getsockname()[1]
        async with rig() as r:
            await r.endpoint.listen("tls:127.0.0.1:0", ssl_context=server_context(cert, key))
            config = r.engine.config
            trunk = msgspec.structs.replace(config.trunks[0], outbound=(f"tls:127.0.0.1:{port}",))
            # No tls_ca: the system's trusted certificates do not include this one.
            r.engine.reload(msgspec.structs.replace(config, trunks=(trunk,)))
            r.invite()
            assert (await r.caller.response()).status == 500
            (record,) = await records_of(r)
            assert (record.status, record.cause) == ("failed", "transport")
        server.close()
        await server.wait_closed()

    run(main)


# --- 5. RFC 4028 ------------------------------------------------------------------------------


def test_caller_asking_to_be_refreshed_gets_refresher_uas_and_sipmask_refreshes() -> None:
    async def main() -> None:
        async with rig() as r:
            invite, ok, _, _ = await answered_call(r, invite_headers=[
                ("Session-Expires", "2;refresher=uas"), ("Supported", "timer")])
            assert ok.header("session-expires") == "2;refresher=uas"
            update = await r.caller.request("UPDATE", bound=3.0)  # at half the interval
            assert update.call_id == invite.call_id
            r.caller.answer(update, 200)
            assert not [m for m in await r.caller.silence(0.3)
                        if isinstance(m, Request) and m.method == "BYE"]

    run(main)


def test_caller_without_timer_support_gets_no_session_expires() -> None:
    async def main() -> None:
        async with rig() as r:
            _, ok, _, _ = await answered_call(r, invite_headers=[("Session-Expires", "2")])
            assert ok.header("session-expires") is None and ok.header("require") is None

    run(main)


def test_422_is_retried_with_the_larger_min_se() -> None:
    async def main() -> None:
        async with rig() as r:
            r.invite(headers=[("Session-Expires", "90"), ("Supported", "timer")])
            first = await r.callee.request("INVITE")
            r.callee.answer(first, 422, headers=[("Min-SE", "1800")])
            second = await r.callee.request("INVITE")
            assert second.call_id == first.call_id and second.from_tag == first.from_tag
            assert second.cseq is not None and first.cseq is not None
            assert second.cseq.number == first.cseq.number + 1
            assert second.header("min-se") == "1800"
            expires = second.header("session-expires") or ""
            assert int(expires.split(";")[0]) >= 1800
            r.callee.answer(second, 486)
            assert (await r.caller.response()).status == 486

    run(main)


# --- 6. requests in the early dialog ----------------------------------------------------------


def test_info_from_the_caller_in_the_early_dialog_is_relayed() -> None:
    async def main() -> None:
        async with rig() as r:
            invite = r.invite()
            b_invite = await r.callee.request("INVITE")
            b_ringing = r.callee.answer(b_invite, 180)
            ringing = await r.caller.response(180)
            in_dialog(r.caller, invite, ringing, "INFO", 2, r.sipmask,
                      body=b"Signal=5\r\nDuration=160\r\n", content_type="application/dtmf-relay")
            info = await r.callee.request("INFO")
            assert info.call_id == b_invite.call_id and info.to_tag == b_ringing.to_tag
            assert info.body == b"Signal=5\r\nDuration=160\r\n"
            r.callee.answer(info, 200)
            assert (await r.caller.response(method="INFO")).status == 200

    run(main)


def test_update_from_the_callee_in_the_early_dialog_is_relayed() -> None:
    async def main() -> None:
        async with rig() as r:
            invite = r.invite()
            b_invite = await r.callee.request("INVITE")
            b_ringing = r.callee.answer(b_invite, 180)
            ringing = await r.caller.response(180)
            in_dialog(r.callee, b_invite, b_ringing, "UPDATE", 1, r.sipmask, uac=False,
                      body=sdp(owner="bob", port=50002))
            update = await r.caller.request("UPDATE")
            assert update.call_id == invite.call_id and update.from_tag == ringing.to_tag
            r.caller.answer(update, 200, body=sdp(port=49172))
            answer = await r.callee.response(method="UPDATE")
            assert answer.status == 200 and b"49172" in answer.body

    run(main)


# --- 7. honest outcomes -----------------------------------------------------------------------


def test_refused_connection_to_the_only_destination_is_a_failed_call(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> None:
        async with rig() as r:
            closed = socket.socket()
            closed.bind(("127.0.0.1", 0))
            port = closed.getsockname()[1]
            closed.close()  # nothing listens there: the connection is refused
            trunk = msgspec.structs.replace(r.engine.config.trunks[0],
                                            outbound=(f"tcp:127.0.0.1:{port}",))
            r.engine.reload(msgspec.structs.replace(r.engine.config, trunks=(trunk,)))
            r.invite()
            assert (await r.caller.response(bound=2.0)).status == 500  # no Timer B wait
            (record,) = await records_of(r)
            assert (record.status, record.cause) == ("failed", "transport")

    with caplog.at_level(logging.INFO, logger="sipmask.b2bua"):
        run(main)
    (line,) = [m for m in caplog.messages if m.startswith("call ")]
    assert "not answered" in line and "s answered" not in line


def test_answered_call_logs_its_duration(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        async with rig() as r:
            invite, ok, _, _ = await answered_call(r)
            in_dialog(r.caller, invite, ok, "BYE", 2, r.sipmask)
            await r.caller.response(200, method="BYE")
            r.callee.answer(await r.callee.request("BYE"), 200)
            await records_of(r)

    with caplog.at_level(logging.INFO, logger="sipmask.b2bua"):
        run(main)
    (line,) = [m for m in caplog.messages if m.startswith("call ")]
    assert line.endswith(" s answered")



def test_bye_from_a_ringing_callee_ends_the_call() -> None:
    async def main() -> None:
        async with rig() as r:
            r.invite()
            b_invite = await r.callee.request("INVITE")
            b_ringing = r.callee.answer(b_invite, 180)
            await r.caller.response(180)
            in_dialog(r.callee, b_invite, b_ringing, "BYE", 1, r.sipmask, uac=False)
            assert (await r.callee.response(method="BYE")).status == 200
            assert (await r.caller.response()).status == 480  # not left ringing
            (record,) = await records_of(r)
            assert (record.status, record.cause) == ("failed", "bye-callee")

    run(main)
