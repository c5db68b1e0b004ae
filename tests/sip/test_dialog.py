"""Dialogs (RFC 3261 §12, §13.2.2.4, §14, §15): state, in-dialog requests, ACK, forking."""

import itertools

import pytest

import sipmask
from sipmask.errors import LocalProtocolError
from sipmask.sip.dialog import Dialog, DialogId, DialogSet, DialogState

CONTACT = "<sip:sipmask@192.0.2.10:5060>"
VIA = "SIP/2.0/UDP 192.0.2.10:5060;rport"

# sipmask's B leg: the INVITE it sent to a carrier.
INVITE = (
    b"INVITE sip:+919876500000@carrier.example.net SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.10:5060;rport;branch=z9hG4bKinv1\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: <sip:+918045671235@sipmask.example.com>;tag=s1\r\n"
    b"To: <sip:+919876500000@carrier.example.net>\r\n"
    b"Call-ID: b-leg-1\r\n"
    b"CSeq: 101 INVITE\r\n"
    b"Contact: <sip:sipmask@192.0.2.10:5060>\r\n"
    b'Proxy-Authorization: Digest username="sipmask", realm="carrier", nonce="n1", '
    b'uri="sip:+919876500000@carrier.example.net", response="0123456789abcdef"\r\n'
    b"Content-Length: 0\r\n\r\n"
)


def response(
    status: int,
    reason: str,
    *,
    tag: str = "c1",
    cseq: bytes = b"101 INVITE",
    record_route: bytes = (
        b"Record-Route: <sip:p2.carrier.example.net;lr>\r\n"
        b"Record-Route: <sip:p1.carrier.example.net;lr;ftag=s1>\r\n"
    ),
    contact: bytes = b"<sip:uas@198.51.100.20:5060;transport=udp>",
) -> sipmask.Response:
    data = (
        f"SIP/2.0 {status} {reason}\r\n".encode()
        + b"Via: SIP/2.0/UDP 192.0.2.10:5060;rport=5060;branch=z9hG4bKinv1\r\n"
        + record_route
        + b"From: <sip:+918045671235@sipmask.example.com>;tag=s1\r\n"
        + b"To: <sip:+919876500000@carrier.example.net>"
        + (b";tag=" + tag.encode() if tag else b"")
        + b"\r\nCall-ID: b-leg-1\r\n"
        + b"CSeq: "
        + cseq
        + b"\r\n"
        + (b"Contact: " + contact + b"\r\n" if contact else b"")
        + b"Content-Length: 0\r\n\r\n"
    )
    msg = sipmask.parse(data)
    assert isinstance(msg, sipmask.Response)
    return msg


def parse_request(data: bytes) -> sipmask.Request:
    msg = sipmask.parse(data)
    assert isinstance(msg, sipmask.Request)
    return msg


def branches():
    counter = itertools.count(1)
    return lambda: f"z9hG4bKn{next(counter)}"


@pytest.fixture
def invite():
    return parse_request(INVITE)


@pytest.fixture
def early(invite):
    return Dialog.from_uac(invite, response(180, "Ringing"), new_branch=branches())


@pytest.fixture
def confirmed(early):
    early.receive_response(response(200, "OK"))
    return early


# --- UAC side: creation (§12.1.2) ----------------------------------------------------------


def test_uac_early_dialog_from_a_180_with_a_tag(early):
    assert early.id == DialogId("b-leg-1", "s1", "c1")
    assert early.state is DialogState.EARLY and early.is_early
    assert early.local_cseq == 101 and early.remote_cseq is None
    assert str(early.local_uri) == "<sip:+918045671235@sipmask.example.com>"
    assert str(early.remote_uri) == "<sip:+919876500000@carrier.example.net>"
    assert early.remote_target == "sip:uas@198.51.100.20:5060;transport=udp"
    # §12.1.2: Record-Route of the response, reversed
    assert early.route_set == [
        "sip:p1.carrier.example.net;lr;ftag=s1",
        "sip:p2.carrier.example.net;lr",
    ]
    assert early.contact == CONTACT and early.secure is False


def test_uac_confirmed_dialog_from_a_2xx(invite):
    dialog = Dialog.from_uac(invite, response(200, "OK"), new_branch=branches())
    assert dialog.state is DialogState.CONFIRMED
    assert dialog.invite_sent is None


@pytest.mark.parametrize(
    ("status", "reason", "tag"),
    [(100, "Trying", ""), (180, "Ringing", ""), (486, "Busy Here", "c1")],
    ids=["100", "no-tag", "486"],
)
def test_uac_no_dialog_from(invite, status, reason, tag):
    with pytest.raises(LocalProtocolError):
        Dialog.from_uac(invite, response(status, reason, tag=tag), new_branch=branches())


@pytest.mark.parametrize(
    ("tls", "scheme", "secure"),
    [(True, "sips", True), (True, "sip", False), (False, "sips", False)],
)
def test_secure_needs_tls_and_a_sips_request_uri(tls, scheme, secure):
    data = INVITE.replace(b"INVITE sip:", f"INVITE {scheme}:".encode(), 1)
    dialog = Dialog.from_uac(
        parse_request(data), response(200, "OK"), new_branch=branches(), tls=tls
    )
    assert dialog.secure is secure


# --- in-dialog requests (§12.2.1.1) --------------------------------------------------------


def test_bye_with_loose_routes_exact_message(confirmed):
    bye = confirmed.create_request("BYE", headers=[("Reason", "Q.850;cause=16")])
    expected = parse_request(
        b"BYE sip:uas@198.51.100.20:5060;transport=udp SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.10:5060;rport;branch=z9hG4bKn1\r\n"
        b"Max-Forwards: 70\r\n"
        b"Route: <sip:p1.carrier.example.net;lr;ftag=s1>, <sip:p2.carrier.example.net;lr>\r\n"
        b"From: <sip:+918045671235@sipmask.example.com>;tag=s1\r\n"
        b"To: <sip:+919876500000@carrier.example.net>;tag=c1\r\n"
        b"Call-ID: b-leg-1\r\n"
        b"CSeq: 102 BYE\r\n"
        b"Reason: Q.850;cause=16\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    assert bye == expected
    assert sipmask.parse(bytes(bye)) == bye
    assert confirmed.local_cseq == 102


def test_cseq_goes_up_by_one_per_request(confirmed):
    numbers = [confirmed.create_request(m).cseq.number for m in ("INFO", "OPTIONS", "UPDATE")]
    assert numbers == [102, 103, 104]


def test_each_request_gets_a_fresh_branch(confirmed):
    first, second = confirmed.create_request("INFO"), confirmed.create_request("INFO")
    assert (first.top_via.branch, second.top_via.branch) == ("z9hG4bKn1", "z9hG4bKn2")


def test_no_route_set_no_route(invite):
    dialog = Dialog.from_uac(invite, response(200, "OK", record_route=b""), new_branch=branches())
    bye = dialog.create_request("BYE")
    assert bye.uri == "sip:uas@198.51.100.20:5060;transport=udp"
    assert bye.header("route") is None


def test_strict_router_first(invite):
    # §12.2.1.1: the first route lacks lr: it becomes the Request-URI (without parameters
    # a Request-URI cannot carry), the remote target goes last in Route.
    rr = (
        b"Record-Route: <sip:p2.carrier.example.net;lr>\r\n"
        b"Record-Route: <sip:p1.carrier.example.net;method=INVITE;maddr=192.0.2.99>\r\n"
    )
    dialog = Dialog.from_uac(invite, response(200, "OK", record_route=rr), new_branch=branches())
    bye = dialog.create_request("BYE")
    assert bye.uri == "sip:p1.carrier.example.net;maddr=192.0.2.99"
    assert bye.headers("route") == [
        "<sip:p2.carrier.example.net;lr>",
        "<sip:uas@198.51.100.20:5060;transport=udp>",
    ]
    assert sipmask.parse(bytes(bye)) == bye


def test_strict_router_alone(invite):
    rr = b"Record-Route: <sip:strict.carrier.example.net>\r\n"
    dialog = Dialog.from_uac(invite, response(200, "OK", record_route=rr), new_branch=branches())
    bye = dialog.create_request("BYE")
    assert bye.uri == "sip:strict.carrier.example.net"
    assert bye.headers("route") == ["<sip:uas@198.51.100.20:5060;transport=udp>"]


def test_remote_target_headers_are_not_put_in_the_request_uri(invite):
    contact = b"<sip:uas@198.51.100.20;transport=tcp?Subject=hi>"
    dialog = Dialog.from_uac(
        invite, response(200, "OK", record_route=b"", contact=contact), new_branch=branches()
    )
    assert dialog.create_request("BYE").uri == "sip:uas@198.51.100.20;transport=tcp"


def test_reinvite_carries_contact_and_a_body(confirmed):
    sdp = b"v=0\r\no=- 1 2 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
    reinvite = confirmed.create_request(
        "INVITE", headers=[("Content-Type", "application/sdp")], body=sdp
    )
    assert reinvite.header("contact") == CONTACT and reinvite.body == sdp
    assert str(reinvite.cseq) == "102 INVITE"
    assert confirmed.create_request("UPDATE").header("contact") == CONTACT
    assert confirmed.create_request("INFO").header("contact") is None


@pytest.mark.parametrize("method", ["ACK", "CANCEL"])
def test_create_request_refuses_ack_and_cancel(confirmed, method):
    with pytest.raises(LocalProtocolError):
        confirmed.create_request(method)


def test_no_reinvite_in_an_early_dialog_but_update_and_prack(early):
    with pytest.raises(LocalProtocolError):
        early.create_request("INVITE")
    assert early.create_request("PRACK", headers=[("RAck", "1 101 INVITE")]).cseq.number == 102
    assert early.create_request("UPDATE").cseq.number == 103
    assert early.create_request("BYE").method == "BYE"  # the caller may (§15)


def test_one_invite_at_a_time(confirmed):
    confirmed.create_request("INVITE")
    with pytest.raises(LocalProtocolError):
        confirmed.create_request("INVITE")
    confirmed.receive_response(response(488, "Not Acceptable Here", cseq=b"102 INVITE"))
    assert confirmed.state is DialogState.CONFIRMED
    assert confirmed.create_request("INVITE").cseq.number == 103


def test_terminated_dialog_builds_nothing(confirmed):
    confirmed.terminate()
    with pytest.raises(LocalProtocolError):
        confirmed.create_request("BYE")


def test_branch_must_have_the_magic_cookie(invite):
    dialog = Dialog.from_uac(invite, response(200, "OK"), new_branch=lambda: "abc")
    with pytest.raises(LocalProtocolError):
        dialog.create_request("BYE")


def test_cseq_overflow(confirmed):
    confirmed.local_cseq = 2**32 - 1
    with pytest.raises(LocalProtocolError):
        confirmed.create_request("INFO")


# --- ACK for 2xx (§13.2.2.4) ---------------------------------------------------------------


def test_ack_for_2xx_exact_message(early):
    ok = response(200, "OK")
    early.receive_response(ok)
    ack = early.create_ack(ok)
    expected = parse_request(
        b"ACK sip:uas@198.51.100.20:5060;transport=udp SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.10:5060;rport;branch=z9hG4bKn1\r\n"
        b"Max-Forwards: 70\r\n"
        b"Route: <sip:p1.carrier.example.net;lr;ftag=s1>, <sip:p2.carrier.example.net;lr>\r\n"
        b"From: <sip:+918045671235@sipmask.example.com>;tag=s1\r\n"
        b"To: <sip:+919876500000@carrier.example.net>;tag=c1\r\n"
        b"Call-ID: b-leg-1\r\n"
        b"CSeq: 101 ACK\r\n"
        b'Proxy-Authorization: Digest username="sipmask", realm="carrier", nonce="n1", '
        b'uri="sip:+919876500000@carrier.example.net", response="0123456789abcdef"\r\n'
        b"Content-Length: 0\r\n\r\n"
    )
    assert ack == expected
    assert early.local_cseq == 101  # an ACK does not use up a CSeq number


def test_retransmitted_2xx_gets_the_same_ack(confirmed):
    ok = response(200, "OK")
    ack = confirmed.create_ack(ok)
    again = confirmed.ack_for_retransmitted_2xx(response(200, "OK"))
    # The same ACK, byte for byte (branch included: RFC 3261 §13.2.2.4); it is kept as bytes.
    assert again is not None and bytes(again) == bytes(ack)
    assert confirmed.ack_for_retransmitted_2xx(response(200, "OK", cseq=b"102 INVITE")) is None
    assert confirmed.ack_for_retransmitted_2xx(response(200, "OK", cseq=b"102 UPDATE")) is None


def test_ack_for_a_reinvite_2xx(confirmed):
    confirmed.create_ack(response(200, "OK"))
    confirmed.create_request("INVITE")
    ok = response(200, "OK", cseq=b"102 INVITE")
    confirmed.receive_response(ok)
    ack = confirmed.create_ack(ok, headers=[("Content-Type", "application/sdp")], body=b"v=0\r\n")
    assert str(ack.cseq) == "102 ACK" and ack.body == b"v=0\r\n"
    assert ack.header("proxy-authorization") is None  # the re-INVITE carried none
    again = confirmed.ack_for_retransmitted_2xx(ok)
    assert again is not None and bytes(again) == bytes(ack)


@pytest.mark.parametrize(("status", "cseq"), [(180, b"101 INVITE"), (200, b"102 BYE")])
def test_ack_only_for_2xx_to_invite(confirmed, status, cseq):
    with pytest.raises(LocalProtocolError):
        confirmed.create_ack(response(status, "X", cseq=cseq))


# --- responses to our requests (§12.2.1.2) -------------------------------------------------


def test_2xx_confirms_and_recomputes_only_the_route_set(early):
    early.create_request("PRACK", headers=[("RAck", "1 101 INVITE")])
    ok = response(
        200,
        "OK",
        record_route=b"Record-Route: <sip:p9.carrier.example.net;lr>\r\n",
        contact=b"<sip:uas@198.51.100.21>",
    )
    early.receive_response(ok)
    assert early.state is DialogState.CONFIRMED
    assert early.route_set == ["sip:p9.carrier.example.net;lr"]
    assert early.remote_target == "sip:uas@198.51.100.21"  # 2xx to a target refresh
    assert early.local_cseq == 102  # §13.2.2.4: sequence numbers are not recomputed


def test_route_set_is_fixed_once_confirmed(confirmed):
    confirmed.create_request("INVITE")
    rr = b"Record-Route: <sip:elsewhere.example.net;lr>\r\n"
    confirmed.receive_response(response(200, "OK", cseq=b"102 INVITE", record_route=rr))
    assert confirmed.route_set[0] == "sip:p1.carrier.example.net;lr;ftag=s1"


@pytest.mark.parametrize(
    ("method", "refreshed"), [("INVITE", True), ("UPDATE", True), ("INFO", False)]
)
def test_target_refresh_on_2xx(confirmed, method, refreshed):
    confirmed.create_request(method)
    new = b"<sip:uas@198.51.100.99:5070>"
    confirmed.receive_response(response(200, "OK", cseq=f"102 {method}".encode(), contact=new))
    expected = (
        "sip:uas@198.51.100.99:5070" if refreshed else ("sip:uas@198.51.100.20:5060;transport=udp")
    )
    assert confirmed.remote_target == expected


def test_non_2xx_ends_the_early_dialog(early):
    early.receive_response(response(486, "Busy Here"))
    assert early.state is DialogState.TERMINATED


@pytest.mark.parametrize(
    ("status", "method", "ends"),
    [
        (481, "INFO", True),
        (408, "UPDATE", True),
        (200, "BYE", True),
        (481, "BYE", True),
        (486, "INFO", False),
        (491, "INVITE", False),
    ],
    ids=["481", "408", "bye-200", "bye-481", "486-info", "491-reinvite"],
)
def test_failures_that_end_a_confirmed_dialog(confirmed, status, method, ends):
    confirmed.create_request(method)
    confirmed.receive_response(response(status, "X", cseq=f"102 {method}".encode()))
    assert confirmed.is_terminated is ends


# --- UAS side (§12.1.1, §12.2.2) -----------------------------------------------------------

# The A leg: an INVITE a carrier sent to sipmask through two record-routing proxies.
A_INVITE = (
    b"INVITE sip:+918045671234@sipmask.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 203.0.113.5;branch=z9hG4bKp2\r\n"
    b"Via: SIP/2.0/UDP 203.0.113.10:5060;branch=z9hG4bKa1\r\n"
    b"Record-Route: <sip:edge2.carrier.example.net;lr>\r\n"
    b"Record-Route: <sip:edge1.carrier.example.net;lr>\r\n"
    b"Max-Forwards: 69\r\n"
    b'From: "Caller" <sip:+919876543210@carrier.example.net>;tag=a1\r\n'
    b"To: <sip:+918045671234@sipmask.example.com>\r\n"
    b"Call-ID: a-leg-1@203.0.113.10\r\n"
    b"CSeq: 7 INVITE\r\n"
    b"Contact: <sip:+919876543210@203.0.113.10:5060>\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def a_request(method: str, cseq: int, *, contact: bytes = b"", to_tag: str = "u1") -> bytes:
    return (
        f"{method} sip:sipmask@192.0.2.10:5060 SIP/2.0\r\n".encode()
        + b"Via: SIP/2.0/UDP 203.0.113.10:5060;branch=z9hG4bKr"
        + str(cseq).encode()
        + b"\r\n"
        + b"Route: <sip:edge1.carrier.example.net;lr>\r\n"
        + b"Max-Forwards: 70\r\n"
        + b'From: "Caller" <sip:+919876543210@carrier.example.net>;tag=a1\r\n'
        + b"To: <sip:+918045671234@sipmask.example.com>;tag="
        + to_tag.encode()
        + b"\r\n"
        + b"Call-ID: a-leg-1@203.0.113.10\r\n"
        + f"CSeq: {cseq} {method}\r\n".encode()
        + (b"Contact: " + contact + b"\r\n" if contact else b"")
        + b"Content-Length: 0\r\n\r\n"
    )


@pytest.fixture
def a_invite():
    return parse_request(A_INVITE)


@pytest.fixture
def uas(a_invite):
    return Dialog.from_uas(
        a_invite, "u1", CONTACT, via=VIA, new_branch=branches(), retry_after=lambda: 7
    )


def test_uas_dialog_from_the_invite(uas):
    assert uas.id == DialogId("a-leg-1@203.0.113.10", "u1", "a1")
    assert uas.state is DialogState.EARLY
    assert uas.remote_cseq == 7 and uas.local_cseq is None
    assert uas.remote_target == "sip:+919876543210@203.0.113.10:5060"
    # §12.1.1: Record-Route of the request, in order
    assert uas.route_set == ["sip:edge2.carrier.example.net;lr", "sip:edge1.carrier.example.net;lr"]
    assert str(uas.local_uri) == "<sip:+918045671234@sipmask.example.com>"
    assert str(uas.remote_uri) == '"Caller" <sip:+919876543210@carrier.example.net>'


def test_uas_refuses_an_in_dialog_request():
    with pytest.raises(LocalProtocolError):
        Dialog.from_uas(
            parse_request(a_request("INVITE", 9)), "u2", CONTACT, via=VIA, new_branch=branches()
        )


def test_uas_ringing_and_ok_exact(uas, a_invite):
    ringing = uas.create_response(a_invite, 180)
    expected = sipmask.parse(
        b"SIP/2.0 180 Ringing\r\n"
        b"Via: SIP/2.0/UDP 203.0.113.5;branch=z9hG4bKp2\r\n"
        b"Via: SIP/2.0/UDP 203.0.113.10:5060;branch=z9hG4bKa1\r\n"
        b'From: "Caller" <sip:+919876543210@carrier.example.net>;tag=a1\r\n'
        b"To: <sip:+918045671234@sipmask.example.com>;tag=u1\r\n"
        b"Call-ID: a-leg-1@203.0.113.10\r\n"
        b"CSeq: 7 INVITE\r\n"
        b"Record-Route: <sip:edge2.carrier.example.net;lr>\r\n"
        b"Record-Route: <sip:edge1.carrier.example.net;lr>\r\n"
        b"Contact: <sip:sipmask@192.0.2.10:5060>\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    assert ringing == expected
    assert uas.state is DialogState.EARLY
    ok = uas.create_response(a_invite, 200)
    assert ok.to_tag == "u1" and ok.header("contact") == CONTACT
    assert uas.state is DialogState.CONFIRMED and uas.awaiting_ack == 7
    assert uas.invite_received is None


def test_uas_trying_has_no_dialog_headers(uas, a_invite):
    trying = uas.create_response(a_invite, 100)
    assert trying.header("record-route") is None and trying.header("contact") is None


def test_uas_final_failure_ends_the_early_dialog(uas, a_invite):
    assert uas.create_response(a_invite, 486).header("record-route") is None
    assert uas.state is DialogState.TERMINATED


def test_uas_ack_clears_awaiting_ack(uas, a_invite):
    uas.create_response(a_invite, 200)
    assert uas.receive_request(parse_request(a_request("ACK", 6))) is None
    assert uas.awaiting_ack == 7
    assert uas.receive_request(parse_request(a_request("ACK", 7))) is None
    assert uas.awaiting_ack is None


def test_callee_sends_no_bye_in_an_early_dialog(uas, a_invite):
    with pytest.raises(LocalProtocolError):
        uas.create_request("BYE")
    uas.create_response(a_invite, 200)
    bye = uas.create_request("BYE")
    # §12.2.1.1 with the UAS route set in Record-Route order; local CSeq starts at 1
    assert bye.uri == "sip:+919876543210@203.0.113.10:5060"
    assert bye.headers("route") == [
        "<sip:edge2.carrier.example.net;lr>",
        "<sip:edge1.carrier.example.net;lr>",
    ]
    assert str(bye.cseq) == "1 BYE"
    assert bye.header("from") == "<sip:+918045671234@sipmask.example.com>;tag=u1"
    assert bye.header("to") == '"Caller" <sip:+919876543210@carrier.example.net>;tag=a1'
    assert bye.header("via") == "SIP/2.0/UDP 192.0.2.10:5060;rport;branch=z9hG4bKn1"


@pytest.fixture
def answered(uas, a_invite):
    uas.create_response(a_invite, 200)
    uas.receive_request(parse_request(a_request("ACK", 7)))
    return uas


def test_lower_cseq_gets_500(answered):
    assert answered.receive_request(parse_request(a_request("INFO", 9))) is None
    assert answered.remote_cseq == 9
    late = answered.receive_request(parse_request(a_request("INFO", 8)))
    assert late is not None and late.status == 500 and late.to_tag == "u1"
    assert answered.remote_cseq == 9
    assert answered.receive_request(parse_request(a_request("INFO", 9))) is None
    assert answered.receive_request(parse_request(a_request("INFO", 30))) is None  # gaps ok


def test_reinvite_refreshes_the_remote_target(answered):
    new = b"<sip:+919876543210@203.0.113.77:5062>"
    assert answered.receive_request(parse_request(a_request("INVITE", 8, contact=new))) is None
    assert answered.remote_target == "sip:+919876543210@203.0.113.77:5062"
    assert answered.invite_received == 8


def test_update_refreshes_info_does_not(answered):
    info = a_request("INFO", 8, contact=b"<sip:x@203.0.113.1>")
    assert answered.receive_request(parse_request(info)) is None
    assert answered.remote_target == "sip:+919876543210@203.0.113.10:5060"
    update = a_request("UPDATE", 9, contact=b"<sip:x@203.0.113.2>")
    assert answered.receive_request(parse_request(update)) is None
    assert answered.remote_target == "sip:x@203.0.113.2"


def test_reinvite_glare_gets_491(answered):
    answered.create_request("INVITE")
    glare = answered.receive_request(parse_request(a_request("INVITE", 8)))
    assert glare is not None and glare.status == 491


def test_overlapping_reinvite_gets_500_with_retry_after(answered):
    assert answered.receive_request(parse_request(a_request("INVITE", 8))) is None
    second = answered.receive_request(parse_request(a_request("INVITE", 9)))
    assert second is not None and second.status == 500
    assert second.header("retry-after") == "7"
    answered.create_response(parse_request(a_request("INVITE", 8)), 200)
    assert answered.receive_request(parse_request(a_request("INVITE", 10))) is None


def test_request_of_another_dialog_gets_481(answered):
    other = answered.receive_request(parse_request(a_request("BYE", 9, to_tag="zz")))
    assert other is not None and other.status == 481
    assert answered.receive_request(parse_request(a_request("ACK", 9, to_tag="zz"))) is None


def test_bye_ends_the_dialog_then_481(answered):
    assert answered.receive_request(parse_request(a_request("BYE", 8))) is None
    assert answered.state is DialogState.TERMINATED
    again = answered.receive_request(parse_request(a_request("INFO", 9)))
    assert again is not None and again.status == 481


def test_rfc2543_peer_without_from_tag():
    data = A_INVITE.replace(b";tag=a1", b"")
    dialog = Dialog.from_uas(parse_request(data), "u1", CONTACT, via=VIA, new_branch=branches())
    assert dialog.id.remote_tag is None
    dialog.confirm()
    assert dialog.create_request("BYE").to_tag is None
    bye_in = parse_request(a_request("BYE", 8).replace(b";tag=a1", b""))
    assert dialog.receive_request(bye_in) is None


# --- forking (§12.1.2, §13.2.2.4) ----------------------------------------------------------


def test_forked_early_dialogs_are_distinct(invite):
    dialogs = DialogSet()
    new_branch = branches()
    first = dialogs.receive_response(
        invite, response(180, "Ringing", tag="c1"), new_branch=new_branch
    )
    second = dialogs.receive_response(
        invite,
        response(183, "Session Progress", tag="c2", contact=b"<sip:other@198.51.100.30>"),
        new_branch=new_branch,
    )
    assert first is not None and second is not None and first is not second
    assert len(dialogs) == 2 and second.remote_target == "sip:other@198.51.100.30"
    assert (
        dialogs.receive_response(
            invite, response(183, "Session Progress", tag="c1"), new_branch=new_branch
        )
        is first
    )
    assert (
        dialogs.receive_response(invite, response(100, "Trying", tag=""), new_branch=new_branch)
        is None
    )
    assert dialogs.early("b-leg-1", "s1") == [first, second]
    winner = dialogs.receive_response(invite, response(200, "OK", tag="c2"), new_branch=new_branch)
    assert winner is second and second.is_confirmed and first.is_early
    assert dialogs.terminate_early("b-leg-1", "s1") == [first]
    assert dialogs.prune() == [first]
    assert list(dialogs) == [second]
    assert DialogId("b-leg-1", "s1", "c2") in dialogs


def test_a_2xx_with_a_new_tag_makes_a_confirmed_dialog(invite):
    dialogs = DialogSet()
    dialogs.receive_response(invite, response(180, "Ringing", tag="c1"), new_branch=branches())
    late = dialogs.receive_response(invite, response(200, "OK", tag="c3"), new_branch=branches())
    assert late is not None and late.is_confirmed and late.id.remote_tag == "c3"
    assert len(dialogs) == 2


def test_final_failure_ends_every_early_dialog(invite):
    dialogs = DialogSet()
    for tag in ("c1", "c2"):
        dialogs.receive_response(invite, response(180, "Ringing", tag=tag), new_branch=branches())
    assert (
        dialogs.receive_response(
            invite, response(486, "Busy Here", tag="c9"), new_branch=branches()
        )
        is None
    )
    assert all(d.is_terminated for d in dialogs)


def test_lookups_by_request_and_response(invite):
    dialogs = DialogSet()
    dialog = dialogs.receive_response(invite, response(200, "OK"), new_branch=branches())
    assert dialogs.for_response(response(200, "OK", cseq=b"102 INFO")) is dialog
    in_dialog = parse_request(
        b"BYE sip:sipmask@192.0.2.10:5060 SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 198.51.100.20:5060;branch=z9hG4bKc9\r\n"
        b"From: <sip:+919876500000@carrier.example.net>;tag=c1\r\n"
        b"To: <sip:+918045671235@sipmask.example.com>;tag=s1\r\n"
        b"Call-ID: b-leg-1\r\n"
        b"CSeq: 1 BYE\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    assert dialogs.for_request(in_dialog) is dialog
    assert dialog.receive_request(in_dialog) is None and dialog.remote_cseq == 1
    assert dialog.is_terminated
    with pytest.raises(LocalProtocolError):
        dialogs.add(dialog)
    assert dialogs.remove(dialog.id) is dialog and len(dialogs) == 0


def test_final_failure_with_a_known_tag_ends_every_early_dialog(invite):
    dialogs = DialogSet()
    first = dialogs.receive_response(
        invite, response(180, "Ringing", tag="c1"), new_branch=branches()
    )
    second = dialogs.receive_response(
        invite, response(180, "Ringing", tag="c2"), new_branch=branches()
    )
    busy = dialogs.receive_response(
        invite, response(486, "Busy Here", tag="c1"), new_branch=branches()
    )
    assert busy is first
    assert first.is_terminated and second.is_terminated
