"""Masked calls through a real `sipmask run` (issue 5): SIPp caller -> sipmask -> SIPp callee on
127.0.0.1, one test per call flow (UDP; the basic call and the callee's BYE over TCP too).

The caller dials its own virtual number V1; the callee must see a call to its own number from
V2, and neither side may ever receive the other's real number (both plant theirs everywhere:
display names, P-Asserted-Identity, Remote-Party-ID, Diversion, X- headers, Call-ID, SDP).
Scenarios: tests/e2e/sipp/b2bua/README.md; the harness: b2bua_harness.py."""

from __future__ import annotations

import socket

import pytest
from b2bua_harness import (
    THIRD,
    config_text,
    create_session,
    first_line,
    free_port,
    header,
    needs_sipp,
    requests,
    run_caller,
    run_flow,
    running_sipmask,
    statuses,
    uri_user,
)
from test_run import CALLEE, CALLER, RECV_BOUND, sip_request

import sipmask

pytestmark = needs_sipp


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_basic_call(tmp_path, transport):
    flow = run_flow(tmp_path, "uac_basic.xml", ["uas_basic.xml"], transport=transport)
    assert flow.session is not None
    (invite,) = requests(flow.callees[0], "INVITE")
    # The B leg is built from the session: to the callee's own number, from V2.
    assert uri_user(first_line(invite)) == CALLEE
    assert uri_user(header(invite, "From")) == flow.session.proxies[CALLEE]
    assert uri_user(header(invite, "To")) == CALLEE
    sent_call_ids = {header(m, "Call-ID") for m in flow.caller.received()}
    assert header(invite, "Call-ID") not in sent_call_ids  # a fresh Call-ID
    assert statuses(flow.caller)[-2:] == [200, 200]  # INVITE, then BYE
    assert len(requests(flow.callees[0], "BYE")) == 1


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_callee_hangs_up(tmp_path, transport):
    flow = run_flow(tmp_path, "uac_bye_received.xml", ["uas_bye.xml"], transport=transport)
    assert flow.session is not None
    (bye,) = requests(flow.caller, "BYE")
    # In the caller's dialog sipmask's URI is the one the caller dialled (RFC 3261 §12.1.1).
    assert uri_user(header(bye, "From")) == flow.session.proxies[CALLER]
    assert statuses(flow.callees[0])[-1] == 200


def test_caller_cancels_while_ringing(tmp_path):
    flow = run_flow(tmp_path, "uac_cancel.xml", ["uas_ring_cancelled.xml"])
    assert len(requests(flow.callees[0], "CANCEL")) == 1
    assert statuses(flow.caller)[-2:] == [200, 487]


def test_callee_busy(tmp_path):
    flow = run_flow(tmp_path, "uac_busy.xml", ["uas_busy.xml"])
    assert statuses(flow.caller)[-1] == 486


def test_no_answer_is_cancelled_after_ring_timeout(tmp_path):
    # The callee rings for ever; sipmask gives up after [calls] ring_timeout = 2 s.
    flow = run_flow(
        tmp_path, "uac_no_answer.xml", ["uas_ring_cancelled.xml"], calls_config={"ring_timeout": 2}
    )
    assert len(requests(flow.callees[0], "CANCEL")) == 1
    assert statuses(flow.caller)[-1] == 480


def test_hold_with_reinvite(tmp_path):
    flow = run_flow(tmp_path, "uac_hold.xml", ["uas_hold.xml"])
    invites = requests(flow.callees[0], "INVITE")
    assert len(invites) == 2
    assert "a=sendonly" in invites[1]
    assert len(requests(flow.callees[0], "ACK")) == 2  # one for each 200


def test_reliable_183_is_pracked_by_sipmask(tmp_path):
    flow = run_flow(tmp_path, "uac_basic.xml", ["uas_100rel.xml"])
    assert len(requests(flow.callees[0], "PRACK")) == 1
    # The caller did not offer 100rel: nothing it receives may require it (RFC 3262 §3).
    for message in flow.caller.received():
        assert "100rel" not in (header(message, "Require") or "")


def test_unknown_caller_gets_404(tmp_path):
    # Sessions exist for the dialled number, but not with this caller in them.
    flow = run_flow(tmp_path, "uac_not_found.xml", participants=(THIRD, CALLEE), dial=THIRD)
    assert statuses(flow.caller)[-1] == 404


def test_call_time_limit_hangs_up_both_sides(tmp_path):
    flow = run_flow(tmp_path, "uac_bye_received.xml", ["uas_basic.xml"], call_time_limit=2)
    assert len(requests(flow.caller, "BYE")) == 1
    assert len(requests(flow.callees[0], "BYE")) == 1


def test_failover_to_the_second_destination(tmp_path):
    flow = run_flow(tmp_path, "uac_basic.xml", ["uas_503.xml", "uas_basic.xml"])
    first, second = flow.callees
    assert len(requests(first, "INVITE")) == 1 and len(requests(first, "ACK")) == 1
    assert len(requests(second, "INVITE")) == 1 and len(requests(second, "BYE")) == 1
    assert 503 not in statuses(flow.caller)


def test_message_out_of_dialog(tmp_path):
    flow = run_flow(tmp_path, "uac_message.xml", ["uas_message.xml"])
    assert flow.session is not None
    (message,) = requests(flow.callees[0], "MESSAGE")
    assert uri_user(first_line(message)) == CALLEE
    assert uri_user(header(message, "From")) == flow.session.proxies[CALLEE]
    assert message.endswith("sipmask e2e hello 4711")


def test_message_back_from_the_callee(tmp_path):
    flow = run_flow(tmp_path, "uac_message_back.xml", ["uas_message_back.xml"], dial=CALLEE)
    assert flow.session is not None
    (message,) = requests(flow.callees[0], "MESSAGE")
    assert uri_user(first_line(message)) == CALLER
    assert uri_user(header(message, "From")) == flow.session.proxies[CALLER]
    assert message.endswith("sipmask e2e hello 4711")


@pytest.mark.parametrize(
    "callee_host",
    [
        pytest.param("127.0.0.3", id="stranger"),
        # The trunk's outbound destination is a known peer, but not an inbound source: a new
        # call from it is still from outside every trunk's inbound (docs/config.md).
        pytest.param("127.0.0.1", id="outbound-peer"),
    ],
)
def test_unknown_source_gets_no_answer(tmp_path, callee_host):
    callee_port = free_port()
    config = config_text([callee_port], inbound="127.0.0.2/32", callee_host=callee_host)
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as callee,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as trusted,
    ):
        callee.bind((callee_host, callee_port))
        trusted.bind(("127.0.0.2", 0))
        trusted.settimeout(RECV_BOUND)
        with running_sipmask(tmp_path, config) as handle:
            session = create_session(handle.ports["api"])
            caller = run_caller(
                tmp_path,
                "uac_silence.xml",
                sipmask_port=handle.ports["udp"],
                service=session.proxies[CALLER],
            )
            # The same process answers a source the trunk does accept: the silence was the ACL.
            local = trusted.getsockname()[1]
            options = sip_request(
                "OPTIONS", handle.ports["udp"], call_id="acl", branch="acl", local_port=local
            ).replace(b"SIP/2.0/UDP 127.0.0.1:", b"SIP/2.0/UDP 127.0.0.2:")
            trusted.sendto(options, ("127.0.0.1", handle.ports["udp"]))
            answer = sipmask.parse(trusted.recvfrom(65535)[0])
        callee.setblocking(False)
        with pytest.raises(BlockingIOError):
            callee.recv(65535)  # nothing was sent towards the callee
    assert caller.status == 0, caller.diagnostics()
    assert caller.received() == []
    assert isinstance(answer, sipmask.Response) and answer.status == 200
