"""The serialiser, h11 style: message objects <-> exact bytes.

Built messages (`sipmask.Request(...)`, `sipmask.Response(...)`) are written as
    start line CRLF, each header field as `name: value` CRLF in the order given,
    `Content-Length: <len(body)>` CRLF after the last field when none was given, CRLF, body.
Parsed messages keep the wire bytes of every field nobody touched (case, compact names, spacing,
folding); a rewritten field is written `name: value` with the name given to the call.
"""

from __future__ import annotations

import pytest

import sipmask

SDP = (
    b"v=0\r\n"
    b"o=- 4212589765 1 IN IP4 203.0.113.10\r\n"
    b"s=-\r\n"
    b"c=IN IP4 203.0.113.10\r\n"
    b"t=0 0\r\n"
    b"m=audio 16384 RTP/AVP 0 101\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
)

INVITE_HEADERS = [
    ("Via", "SIP/2.0/UDP 203.0.113.10:5060;branch=z9hG4bK776asdhds"),
    ("Max-Forwards", "70"),
    ("To", "<sip:+918045671234@198.51.100.20;user=phone>"),
    ("From", '"Rahul" <sip:+919812345678@203.0.113.10;user=phone>;tag=1928301774'),
    ("Call-ID", "a84b4c76e66710@203.0.113.10"),
    ("CSeq", "314159 INVITE"),
    ("Contact", "<sip:+919812345678@203.0.113.10:5060>"),
    ("Content-Type", "application/sdp"),
]
INVITE_HEAD = (
    b"INVITE sip:+918045671234@198.51.100.20;user=phone SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 203.0.113.10:5060;branch=z9hG4bK776asdhds\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: <sip:+918045671234@198.51.100.20;user=phone>\r\n"
    b'From: "Rahul" <sip:+919812345678@203.0.113.10;user=phone>;tag=1928301774\r\n'
    b"Call-ID: a84b4c76e66710@203.0.113.10\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:+919812345678@203.0.113.10:5060>\r\n"
    b"Content-Type: application/sdp\r\n"
)
INVITE_BYTES = INVITE_HEAD + b"Content-Length: %d\r\n\r\n" % len(SDP) + SDP

RINGING_HEADERS = [
    ("Via", "SIP/2.0/UDP 203.0.113.10:5060;branch=z9hG4bK776asdhds;received=203.0.113.10"),
    ("To", "<sip:+918045671234@198.51.100.20;user=phone>;tag=a6c85cf"),
    ("From", '"Rahul" <sip:+919812345678@203.0.113.10;user=phone>;tag=1928301774'),
    ("Call-ID", "a84b4c76e66710@203.0.113.10"),
    ("CSeq", "314159 INVITE"),
    ("Contact", "<sip:sm@198.51.100.20:5060>"),
]
RINGING_HEAD = (
    b"SIP/2.0 180 Ringing\r\n"
    b"Via: SIP/2.0/UDP 203.0.113.10:5060;branch=z9hG4bK776asdhds;received=203.0.113.10\r\n"
    b"To: <sip:+918045671234@198.51.100.20;user=phone>;tag=a6c85cf\r\n"
    b'From: "Rahul" <sip:+919812345678@203.0.113.10;user=phone>;tag=1928301774\r\n'
    b"Call-ID: a84b4c76e66710@203.0.113.10\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:sm@198.51.100.20:5060>\r\n"
)

# A parsed message whose fields are written unusually: compact names, odd case, extra spaces,
# a folded value. Nothing may change in the fields a test does not touch.
ODD = (
    b"INVITE sip:+14155550199@198.51.100.20 SIP/2.0\r\n"
    b"v:  SIP/2.0/UDP 192.0.2.50;branch=z9hG4bK.a1\r\n"
    b"TO :\r\n <sip:+14155550199@198.51.100.20>\r\n"
    b"f: <sip:+12125550147@192.0.2.50>;tag=77\r\n"
    b"i: odd-1@192.0.2.50\r\n"
    b"cseq:   7 INVITE\r\n"
    b"MAX-FORWARDS: 70\r\n"
    b"x-carrier-ref:\tabc  \r\n"
    b"l: 0\r\n"
    b"\r\n"
)


def _lines(data: bytes) -> list[bytes]:
    head = data.partition(b"\r\n\r\n")[0]
    return head.split(b"\r\n")


# --- built message <-> bytes ----------------------------------------------------------------

TRIPLES = [
    pytest.param(
        lambda: sipmask.Request(
            "INVITE",
            "sip:+918045671234@198.51.100.20;user=phone",
            [*INVITE_HEADERS, ("Content-Length", str(len(SDP)))],
            SDP,
        ),
        INVITE_BYTES,
        id="invite-with-sdp",
    ),
    pytest.param(
        lambda: sipmask.Response(180, "Ringing", [*RINGING_HEADERS, ("Content-Length", "0")]),
        RINGING_HEAD + b"Content-Length: 0\r\n\r\n",
        id="180-ringing",
    ),
    pytest.param(
        lambda: sipmask.Response(
            100,
            "",
            [
                ("Via", "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1"),
                ("Call-ID", "x@192.0.2.1"),
                ("CSeq", "1 INVITE"),
                ("Content-Length", "0"),
            ],
        ),
        b"SIP/2.0 100 \r\n"
        b"Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n"
        b"Call-ID: x@192.0.2.1\r\n"
        b"CSeq: 1 INVITE\r\n"
        b"Content-Length: 0\r\n"
        b"\r\n",
        id="100-empty-reason",
    ),
    pytest.param(
        lambda: sipmask.Request(
            "ACK",
            "sip:sm@198.51.100.20:5060",
            [
                ("v", "SIP/2.0/UDP 203.0.113.10:5060;branch=z9hG4bKack1"),
                ("f", "<sip:+919812345678@203.0.113.10>;tag=1"),
                ("t", "<sip:+918045671234@198.51.100.20>;tag=2"),
                ("i", "ack-1@203.0.113.10"),
                ("CSeq", "1 ACK"),
                ("Max-Forwards", "70"),
                ("l", "0"),
            ],
        ),
        b"ACK sip:sm@198.51.100.20:5060 SIP/2.0\r\n"
        b"v: SIP/2.0/UDP 203.0.113.10:5060;branch=z9hG4bKack1\r\n"
        b"f: <sip:+919812345678@203.0.113.10>;tag=1\r\n"
        b"t: <sip:+918045671234@198.51.100.20>;tag=2\r\n"
        b"i: ack-1@203.0.113.10\r\n"
        b"CSeq: 1 ACK\r\n"
        b"Max-Forwards: 70\r\n"
        b"l: 0\r\n"
        b"\r\n",
        id="ack-compact-names-as-given",
    ),
    pytest.param(
        lambda: sipmask.Response(
            505,
            "Version Not Supported",
            [("Via", "SIP/7.0/UDP c.example.com;branch=z9hG4bKkdjuw"), ("Content-Length", "0")],
            version="SIP/7.0",
        ),
        b"SIP/7.0 505 Version Not Supported\r\n"
        b"Via: SIP/7.0/UDP c.example.com;branch=z9hG4bKkdjuw\r\n"
        b"Content-Length: 0\r\n"
        b"\r\n",
        id="other-version",
    ),
]


@pytest.mark.parametrize(("build", "data"), TRIPLES)
def test_built_message_serialises_exactly(build, data):
    assert bytes(build()) == data


@pytest.mark.parametrize(("build", "data"), TRIPLES)
def test_bytes_parse_back_to_the_built_message(build, data):
    assert sipmask.parse(data) == build()
    assert bytes(sipmask.parse(data)) == data


def test_built_request_fields():
    msg = sipmask.Request(
        "INVITE", "sip:+918045671234@198.51.100.20;user=phone", INVITE_HEADERS, SDP
    )
    assert msg.is_request
    assert msg.method == "INVITE"
    assert msg.uri == "sip:+918045671234@198.51.100.20;user=phone"
    assert msg.version == "SIP/2.0"
    assert msg.body == SDP
    assert msg.call_id == "a84b4c76e66710@203.0.113.10"
    assert msg.cseq.number == 314159 and msg.cseq.method == "INVITE"
    assert msg.from_tag == "1928301774" and msg.to_tag is None
    assert msg.top_via.branch == "z9hG4bK776asdhds"
    assert msg.content_type == "application/sdp"
    items = msg.header_items()
    assert items[: len(INVITE_HEADERS)] == INVITE_HEADERS
    # whether the field list shows the Content-Length that bytes() will add is left open
    assert all(name.lower() == "content-length" for name, _ in items[len(INVITE_HEADERS) :])


def test_built_response_fields():
    msg = sipmask.Response(180, "Ringing", RINGING_HEADERS)
    assert not msg.is_request
    assert (msg.status, msg.reason, msg.version) == (180, "Ringing", "SIP/2.0")
    assert msg.to_tag == "a6c85cf"
    assert msg.body == b""


# --- Content-Length when the caller does not give it ------------------------------------------


def test_content_length_appended_after_last_header():
    msg = sipmask.Request(
        "INVITE", "sip:+918045671234@198.51.100.20;user=phone", INVITE_HEADERS, SDP
    )
    assert bytes(msg) == INVITE_BYTES


def test_content_length_zero_appended_without_body():
    msg = sipmask.Response(180, "Ringing", RINGING_HEADERS)
    assert bytes(msg) == RINGING_HEAD + b"Content-Length: 0\r\n\r\n"


def test_given_content_length_is_corrected_in_place():
    headers = [*INVITE_HEADERS[:2], ("Content-Length", "999"), *INVITE_HEADERS[2:]]
    msg = sipmask.Request("INVITE", "sip:+918045671234@198.51.100.20;user=phone", headers, SDP)
    lines = _lines(bytes(msg))
    assert lines[3] == b"Content-Length: %d" % len(SDP)
    assert sum(1 for line in lines if line.lower().startswith(b"content-length")) == 1
    assert bytes(msg).endswith(b"\r\n\r\n" + SDP)


def test_headers_may_be_any_iterable():
    msg = sipmask.Response(180, "Ringing", (pair for pair in RINGING_HEADERS))
    assert bytes(msg) == RINGING_HEAD + b"Content-Length: 0\r\n\r\n"


def test_setting_body_of_built_message_rewrites_content_length():
    msg = sipmask.Response(180, "Ringing", RINGING_HEADERS)
    msg.body = b"hello"
    assert bytes(msg) == RINGING_HEAD + b"Content-Length: 5\r\n\r\nhello"


# --- rewriting a parsed message -------------------------------------------------------------


@pytest.fixture
def invite():
    return sipmask.parse(INVITE_BYTES)


@pytest.fixture
def odd():
    return sipmask.parse(ODD)


def test_untouched_parsed_message_keeps_wire_bytes(invite, odd):
    assert bytes(invite) == INVITE_BYTES
    assert bytes(odd) == ODD


def test_set_header_replaces_in_place(invite):
    invite.set_header("Max-Forwards", "69")
    assert bytes(invite) == INVITE_BYTES.replace(b"Max-Forwards: 70\r\n", b"Max-Forwards: 69\r\n")
    assert invite.max_forwards == 69


def test_set_header_replaces_every_field_at_the_place_of_the_first():
    data = (
        INVITE_HEAD.replace(
            b"Max-Forwards: 70\r\n",
            b"Max-Forwards: 70\r\nX-Trace: a\r\nSubject: s\r\nX-Trace: b\r\n",
        )
        + b"Content-Length: %d\r\n\r\n" % len(SDP)
        + SDP
    )
    msg = sipmask.parse(data)
    msg.set_header("X-Trace", "c")
    assert bytes(msg) == data.replace(b"X-Trace: a\r\n", b"X-Trace: c\r\n").replace(
        b"X-Trace: b\r\n", b""
    )
    assert msg.headers("x-trace") == ["c"]


def test_set_header_appends_when_absent(invite):
    invite.set_header("Subject", "masked call")
    assert bytes(invite) == (
        INVITE_HEAD + b"Content-Length: %d\r\n" % len(SDP) + b"Subject: masked call\r\n\r\n" + SDP
    )


def test_set_header_resolves_compact_names(odd):
    odd.set_header("Call-ID", "new@198.51.100.20")
    assert bytes(odd) == ODD.replace(b"i: odd-1@192.0.2.50\r\n", b"Call-ID: new@198.51.100.20\r\n")
    assert odd.count("i") == 1 and odd.call_id == "new@198.51.100.20"


def test_add_header_first_goes_before_every_field(invite):
    via = "SIP/2.0/UDP 198.51.100.20:5060;branch=z9hG4bKsm1"
    invite.add_header("Via", via, first=True)
    start, _, rest = INVITE_BYTES.partition(b"\r\n")
    assert bytes(invite) == start + b"\r\nVia: " + via.encode() + b"\r\n" + rest
    assert invite.top_via.branch == "z9hG4bKsm1"
    assert len(invite.via) == 2
    assert invite.count("via") == 2


def test_add_header_appends_at_the_end(invite):
    invite.add_header("X-Masked", "yes")
    assert bytes(invite) == (
        INVITE_HEAD + b"Content-Length: %d\r\nX-Masked: yes\r\n\r\n" % len(SDP) + SDP
    )


def test_remove_header(invite):
    assert invite.remove_header("contact") == 1
    assert bytes(invite) == INVITE_BYTES.replace(
        b"Contact: <sip:+919812345678@203.0.113.10:5060>\r\n", b""
    )
    assert invite.header("contact") is None and invite.contact == []


def test_remove_header_absent_changes_nothing(invite):
    assert invite.remove_header("Record-Route") == 0
    assert bytes(invite) == INVITE_BYTES


def test_remove_header_matches_compact_and_long_names():
    data = INVITE_BYTES.replace(
        b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\r\nv: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bK9\r\n"
    )
    msg = sipmask.parse(data)
    assert msg.remove_header("VIA") == 2
    assert msg.via == [] and msg.top_via is None
    assert b"Via" not in bytes(msg) and b"\r\nv:" not in bytes(msg)


def test_remove_first_pops_a_whole_field():
    data = INVITE_BYTES.replace(
        b"Max-Forwards: 70\r\n",
        b"Via: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bK9\r\nMax-Forwards: 70\r\n",
    )
    msg = sipmask.parse(data)
    assert msg.remove_first("via") is True
    assert bytes(msg) == data.replace(
        b"Via: SIP/2.0/UDP 203.0.113.10:5060;branch=z9hG4bK776asdhds\r\n", b""
    )
    assert msg.top_via.branch == "z9hG4bK9"


def test_remove_first_keeps_rest_of_comma_joined_field():
    data = INVITE_BYTES.replace(
        b"Via: SIP/2.0/UDP 203.0.113.10:5060;branch=z9hG4bK776asdhds\r\n",
        b"Via: SIP/2.0/UDP 198.51.100.20;branch=z9hG4bKsm1, "
        b"SIP/2.0/UDP 203.0.113.10:5060;branch=z9hG4bK776asdhds\r\n",
    )
    msg = sipmask.parse(data)
    assert len(msg.via) == 2 and msg.count("via") == 1
    assert msg.remove_first("via") is True
    assert bytes(msg) == INVITE_BYTES
    assert msg == sipmask.parse(INVITE_BYTES)


def test_remove_first_absent(invite):
    assert invite.remove_first("Record-Route") is False
    assert bytes(invite) == INVITE_BYTES


def test_setting_body_rewrites_content_length(invite):
    invite.body = b""
    assert bytes(invite) == INVITE_HEAD + b"Content-Length: 0\r\n\r\n"
    invite.body = SDP + b"a=sendonly\r\n"
    assert bytes(invite) == INVITE_HEAD + b"Content-Length: %d\r\n\r\n" % (len(SDP) + 12) + SDP + (
        b"a=sendonly\r\n"
    )


def test_setting_body_with_compact_content_length(odd):
    odd.body = b"Signal=5\r\nDuration=160\r\n"
    again = sipmask.parse(bytes(odd))
    assert again.body == b"Signal=5\r\nDuration=160\r\n"
    assert again.count("content-length") == 1
    assert again.header("content-length") == "24"
    # every other field is untouched
    assert _lines(bytes(odd))[:-1] == _lines(ODD)[:-1]


def test_rewriting_uri_changes_start_line_only(invite):
    invite.uri = "sip:+14155550199@192.0.2.50;user=phone"
    assert bytes(invite) == INVITE_BYTES.replace(
        b"INVITE sip:+918045671234@198.51.100.20;user=phone SIP/2.0",
        b"INVITE sip:+14155550199@192.0.2.50;user=phone SIP/2.0",
    )
    assert invite.parsed_uri.user == "+14155550199"


def test_rewriting_method_changes_start_line_only(invite):
    invite.method = "OPTIONS"
    assert bytes(invite) == INVITE_BYTES.replace(b"INVITE sip:", b"OPTIONS sip:", 1)
    assert invite.header("cseq") == "314159 INVITE"


def test_rewriting_status_and_reason_changes_start_line_only():
    msg = sipmask.parse(RINGING_HEAD + b"Content-Length: 0\r\n\r\n")
    msg.status = 183
    msg.reason = "Session Progress"
    assert bytes(msg) == (
        RINGING_HEAD.replace(b"SIP/2.0 180 Ringing", b"SIP/2.0 183 Session Progress")
        + b"Content-Length: 0\r\n\r\n"
    )


def test_rewriting_keeps_odd_fields_byte_for_byte(odd):
    odd.uri = "sip:+14155550100@198.51.100.20"
    odd.set_header("Max-Forwards", "69")
    expected = ODD.replace(
        b"sip:+14155550199@198.51.100.20 SIP", b"sip:+14155550100@198.51.100.20 SIP"
    )
    expected = expected.replace(b"MAX-FORWARDS: 70\r\n", b"Max-Forwards: 69\r\n")
    assert bytes(odd) == expected
    # the folded To and the tab-and-trailing-space value survive as written
    assert b"TO :\r\n <sip:+14155550199@198.51.100.20>\r\n" in bytes(odd)
    assert b"x-carrier-ref:\tabc  \r\n" in bytes(odd)


def test_copy_is_independent(invite):
    copy = invite.copy()
    copy.set_header("Max-Forwards", "1")
    copy.uri = "sip:other@192.0.2.1"
    copy.body = b""
    assert bytes(invite) == INVITE_BYTES
    assert copy != invite


# --- equality follows the contract ----------------------------------------------------------


def test_equality_ignores_name_case_compact_forms_and_folding():
    folded = sipmask.parse(
        b"OPTIONS sip:198.51.100.20 SIP/2.0\r\n"
        b"v: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n"
        b"SUBJECT: keep\r\n alive\r\n"
        b"l: 0\r\n"
        b"\r\n"
    )
    built = sipmask.Request(
        "OPTIONS",
        "sip:198.51.100.20",
        [
            ("Via", "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1"),
            ("subject", "keep alive"),
            ("Content-Length", "0"),
        ],
    )
    assert folded == built


def test_equality_sees_order_and_body(invite):
    assert invite != sipmask.Request(
        "INVITE",
        "sip:+918045671234@198.51.100.20;user=phone",
        [*reversed(INVITE_HEADERS), ("Content-Length", str(len(SDP)))],
        SDP,
    )
    other = invite.copy()
    other.body = SDP.replace(b"16384", b"16386")
    assert other != invite
