"""Responses built from requests (RFC 3261 §8.2.6)."""

import pytest

import sipmask
from sipmask.sip.responses import make_response, response_to_parse_error

INVITE = (
    b"INVITE sip:+918045671234@sipmask.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 203.0.113.10:5060;branch=z9hG4bK1;rport\r\n"
    b"v: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK0\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: <sip:+919876543210@carrier.example.net>;tag=a1\r\n"
    b"To: <sip:+918045671234@sipmask.example.com>\r\n"
    b"Call-ID: c1@203.0.113.10\r\n"
    b"CSeq: 7 INVITE\r\n"
    b"Contact: <sip:203.0.113.10>\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def test_response_copies_via_from_to_call_id_cseq_and_adds_a_to_tag():
    request = sipmask.parse(INVITE)
    response = make_response(request, 404, to_tag="b2")
    assert (response.status, response.reason) == (404, "Not Found")
    assert response.headers("via") == request.headers("via")
    assert response.from_tag == "a1" and response.to_tag == "b2"
    assert response.call_id == "c1@203.0.113.10" and str(response.cseq) == "7 INVITE"
    assert response.header("contact") is None and response.header("max-forwards") is None
    assert sipmask.parse(bytes(response)) == response


def test_trying_has_no_to_tag_and_an_existing_tag_is_kept():
    request = sipmask.parse(INVITE)
    assert make_response(request, 100).to_tag is None
    in_dialog = sipmask.parse(
        INVITE.replace(b"sipmask.example.com>\r\n", b"sipmask.example.com>;tag=x9\r\n")
    )
    assert make_response(in_dialog, 200, to_tag="new").to_tag == "x9"


def test_extra_headers_and_body():
    response = make_response(
        sipmask.parse(INVITE), 405, headers=[("Allow", "INVITE, ACK")], body=b"x"
    )
    assert response.header("allow") == "INVITE" and response.body == b"x"


def test_400_from_a_salvaged_parse_error():
    broken = INVITE.replace(b"Max-Forwards: 70", b"Max-Forwards: seventy")
    with pytest.raises(sipmask.ParseError) as info:
        sipmask.parse(broken)
    response = response_to_parse_error(info.value, to_tag="t1")
    assert response is not None
    assert response.status == 400 and "Max-Forwards" in response.reason
    assert len(response.headers("via")) == 2 and response.to_tag == "t1"
    assert response.call_id == "c1@203.0.113.10"


@pytest.mark.parametrize(
    "data",
    [
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nCSeq: x\r\n\r\n",  # a response
        INVITE.replace(b"INVITE sip", b"ACK sip").replace(b"CSeq: 7 INVITE", b"CSeq: x ACK"),
        INVITE.replace(b"Call-ID: c1@203.0.113.10\r\n", b"").replace(b"CSeq: 7", b"CSeq: -7"),
    ],
    ids=["response", "ack", "no-call-id"],
)
def test_no_answer_when_none_can_be_formed(data):
    with pytest.raises(sipmask.ParseError) as info:
        sipmask.parse(data)
    assert response_to_parse_error(info.value, to_tag="t") is None


def test_no_400_when_the_copied_field_is_itself_malformed():
    broken = INVITE.replace(b"From: <sip:", b"From: \"unterminated <sip:")
    with pytest.raises(sipmask.ParseError) as info:
        sipmask.parse(broken)
    assert info.value.can_respond  # everything was salvaged, but From cannot be copied back
    assert response_to_parse_error(info.value, to_tag="t") is None


def test_stateless_answer_is_the_verdict_then_options_then_nothing():
    from sipmask.sip.validate import stateless_answer

    invite = sipmask.parse(INVITE)
    assert stateless_answer(invite) is None  # the application's to answer
    options = sipmask.parse(INVITE.replace(b"INVITE", b"OPTIONS"))
    answer = stateless_answer(options)
    assert answer is not None and answer.status == 200
    assert "INVITE" in answer.headers("allow")
    unknown = sipmask.parse(INVITE.replace(b"INVITE", b"FROBNICATE"))
    answer = stateless_answer(unknown)
    assert answer is not None and answer.status == 501
