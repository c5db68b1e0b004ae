"""Stateless request checks (RFC 3261 §8.2, §16.3; RFC 4475 §3.2-3.3)."""

import pathlib
import tomllib

import pytest

import sipmask
from sipmask.sip.validate import (
    acceptable_ack,
    accepts_any,
    addressed_to_us,
    check_request,
    options_response,
    stateless_tag,
)

VECTORS = pathlib.Path(__file__).parent.parent / "vectors" / "rfc4475"

METHODS = ("INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "UPDATE", "INFO", "PRACK")
ALLOW = ", ".join(METHODS)
SUPPORTED = ("100rel", "timer")
TYPES = ("application/sdp", "multipart/mixed")

SDP = (
    b"v=0\r\no=- 1 1 IN IP4 203.0.113.10\r\ns=-\r\nc=IN IP4 203.0.113.10\r\n"
    b"t=0 0\r\nm=audio 40000 RTP/AVP 0\r\n"
)
INVITE = (
    b"INVITE sip:+918045671234@sipmask.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 203.0.113.10:5060;branch=z9hG4bKa1;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: <sip:+919876543210@carrier.example.net>;tag=f1\r\n"
    b"To: <sip:+918045671234@sipmask.example.com>\r\n"
    b"Call-ID: v1@203.0.113.10\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Contact: <sip:+919876543210@203.0.113.10:5060>\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def request(data: bytes = INVITE, body: bytes = SDP) -> sipmask.Request:
    msg = sipmask.parse(data)
    assert isinstance(msg, sipmask.Request)
    msg.body = body
    return msg


def edit(old: bytes, new: bytes, data: bytes = INVITE) -> bytes:
    assert old in data
    return data.replace(old, new)


def check(msg: sipmask.Request, **kwargs) -> sipmask.Response | None:
    options = dict(methods=METHODS, supported=SUPPORTED, accepted_types=TYPES, to_tag="t9")
    options.update(kwargs)
    return check_request(msg, **options)


def options(data: bytes = INVITE) -> bytes:
    return data.replace(b"INVITE", b"OPTIONS").replace(b"Content-Type: application/sdp\r\n", b"")


# --- RFC 4475 vectors ----------------------------------------------------------------------

# file -> (status, header checked, its exact value); None = the request goes on.
# Verdicts with METHODS/SUPPORTED/TYPES above (a B2BUA: no REGISTER, no MESSAGE).
VECTOR_VERDICTS = {
    # 3.1.1 valid messages: served methods pass; REGISTER/MESSAGE are known, not served
    "wsinv.dat": None,
    "intmeth.dat": (501, "Allow", ALLOW),  # 3.1.1.2: 501 at an endpoint
    "esc01.dat": None,
    "escnull.dat": (405, "Allow", ALLOW),
    "esc02.dat": (501, "Allow", ALLOW),  # 3.1.1.5: RE%47IST%45R is not REGISTER
    "lwsdisp.dat": None,
    "longreq.dat": None,
    "dblreq.dat": (405, "Allow", ALLOW),
    "semiuri.dat": None,
    "transports.dat": None,
    "mpart01.dat": (405, "Allow", ALLOW),
    # 3.1.2 invalid messages the parser accepts
    "baddate.dat": None,
    "regbadct.dat": (405, "Allow", ALLOW),  # not a registrar (3.3.7 says 405)
    "badaspec.dat": None,
    "baddn.dat": None,
    "badvers.dat": (505, None, None),  # 3.1.2.16
    # 3.2: transaction matching (RFC 2543 fallback) belongs to the transaction layer
    "badbranch.dat": None,
    # 3.3 application-layer semantics
    "insuf.dat": (400, None, None),  # 3.3.1
    "unkscm.dat": (416, None, None),  # 3.3.2
    "novelsc.dat": (416, None, None),  # 3.3.3
    "unksm2.dat": (405, "Allow", ALLOW),  # 400 at a registrar; sipmask is none
    "bext01.dat": (420, "Unsupported", "nothingSupportsThis, nothingSupportsThisEither"),
    "invut.dat": (415, "Accept", "application/sdp, multipart/mixed"),  # 3.3.6
    "regaut01.dat": (405, "Allow", ALLOW),  # 3.3.7: not a registrar
    "multi01.dat": (400, None, None),  # 3.3.8
    "zeromf.dat": None,  # 3.3.11: an OPTIONS to sipmask itself is answered (200)
    "cparam01.dat": (405, "Allow", ALLOW),
    "cparam02.dat": (405, "Allow", ALLOW),
    "regescrt.dat": (405, "Allow", ALLOW),
    "sdp01.dat": (406, "Accept", "application/sdp"),  # 3.3.15
    "inv2543.dat": None,  # 3.4.1
}


def _parsed_requests() -> list[str]:
    expected = tomllib.loads((VECTORS / "expected.toml").read_text())["vector"]
    return [
        v["file"]
        for v in expected
        if v["outcome"] == "parse" and v.get("kind", "request") == "request"
    ]


def test_every_parsed_request_vector_has_a_verdict():
    assert sorted(_parsed_requests()) == sorted(VECTOR_VERDICTS)


@pytest.mark.parametrize("name", sorted(VECTOR_VERDICTS))
def test_rfc4475_vector_verdict(name):
    msg = sipmask.parse((VECTORS / name).read_bytes())
    assert isinstance(msg, sipmask.Request)
    response = check(msg)
    expected = VECTOR_VERDICTS[name]
    if expected is None:
        assert response is None
        return
    status, header, value = expected
    assert response is not None
    assert response.status == status
    if header is not None:
        assert response.header(header) is not None
        assert ", ".join(response.headers(header)) == value
    assert response.call_id == msg.call_id and response.cseq == msg.cseq
    assert response.headers("via") == msg.headers("via")


def test_rfc4475_intmeth_501_carries_a_to_tag():
    # RFC 3261 §8.2.6.2: a To tag in every non-100 response. The To of intmeth.dat holds a
    # quoted NUL, which RFC 3261 allows (quoted-pair); the core refuses to write it back.
    msg = sipmask.parse((VECTORS / "intmeth.dat").read_bytes())
    response = check(msg)
    assert response is not None and response.status == 501
    assert response.to_tag == "t9"


def test_rfc4475_zeromf_is_483_when_not_addressed_to_sipmask():
    msg = sipmask.parse((VECTORS / "zeromf.dat").read_bytes())
    response = check(msg, local_uris=["sip:sipmask.example.com"])
    assert response is not None and response.status == 483
    assert check(msg, local_uris=["sip:example.com"]) is None


def test_rfc4475_bext01_as_a_proxy_lists_proxy_require_too():
    msg = sipmask.parse((VECTORS / "bext01.dat").read_bytes())
    response = check(msg, proxy_require=True)
    assert response is not None and response.status == 420
    assert response.headers("unsupported") == [
        "nothingSupportsThis",
        "nothingSupportsThisEither",
        "noProxiesSupportThis",
        "norDoAnyProxiesSupportThis",
    ]


# --- focused cases, in the order of the checks -------------------------------------------


def test_a_good_invite_goes_on():
    assert check(request()) is None


def test_505_for_another_version_comes_first():
    data = edit(b"SIP/2.0\r\n", b"SIP/3.0\r\n")
    data = edit(b"Call-ID: v1@203.0.113.10\r\n", b"", data)
    response = check(request(data))
    assert response is not None
    assert (response.status, response.reason) == (505, "Version Not Supported")
    assert response.to_tag == "t9"


@pytest.mark.parametrize(
    "line",
    [
        b"From: <sip:+919876543210@carrier.example.net>;tag=f1\r\n",
        b"To: <sip:+918045671234@sipmask.example.com>\r\n",
        b"Call-ID: v1@203.0.113.10\r\n",
    ],
    ids=["From", "To", "Call-ID"],
)
def test_400_for_a_missing_mandatory_header(line):
    response = check(request(edit(line, b"")))
    assert response is not None and response.status == 400
    assert response.reason.startswith("Bad Request (missing ")


def test_max_forwards_is_optional():
    assert check(request(edit(b"Max-Forwards: 70\r\n", b""))) is None


@pytest.mark.parametrize(
    "extra",
    [
        b"f: <sip:other@example.net>;tag=x\r\n",
        b"To: <sip:other@example.net>\r\n",
        b"i: other@example.net\r\n",
        b"CSeq: 1 INVITE\r\n",
        b"Max-Forwards: 69\r\n",
        b"c: application/sdp\r\n",
    ],
    ids=["From-compact", "To", "Call-ID-compact", "CSeq", "Max-Forwards", "Content-Type"],
)
def test_400_for_a_repeated_single_value_header(extra):
    data = edit(b"Contact:", extra + b"Contact:")
    response = check(request(data))
    assert response is not None and response.status == 400
    assert response.reason.startswith("Bad Request (repeated ")


def test_several_via_fields_are_fine():
    data = edit(b"Max-Forwards:", b"Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKb\r\nMax-Forwards:")
    assert check(request(data)) is None


@pytest.mark.parametrize("uri", [b"sips:+918045671234@sipmask.example.com", b"tel:+918045671234"])
def test_416_for_a_scheme_not_served(uri):
    data = edit(b"sip:+918045671234@sipmask.example.com SIP/2.0", uri + b" SIP/2.0")
    assert check(request(data)) is None
    response = check(request(data), schemes=("sip",))
    assert response is not None and response.status == 416


def test_416_comes_before_483():
    data = edit(b"Max-Forwards: 70", b"Max-Forwards: 0")
    data = edit(b"INVITE sip:+918045671234@", b"INVITE im:+918045671234@", data)
    response = check(request(data))
    assert response is not None and response.status == 416


def test_483_for_an_invite_with_max_forwards_zero():
    response = check(request(edit(b"Max-Forwards: 70", b"Max-Forwards: 0")))
    assert response is not None
    assert (response.status, response.reason) == (483, "Too Many Hops")


def test_483_comes_before_501():
    data = edit(b"Max-Forwards: 70", b"Max-Forwards: 0", options()).replace(b"OPTIONS", b"FOO")
    response = check(request(data, b""))
    assert response is not None and response.status == 483


def test_options_with_max_forwards_zero_to_sipmask_is_answered():
    data = edit(b"Max-Forwards: 70", b"Max-Forwards: 0", options())
    msg = request(data, b"")
    assert check(msg) is None
    assert check(msg, local_uris=["sip:sipmask.example.com:5060"]) is None
    response = check(msg, local_uris=["sip:other.example.com"])
    assert response is not None and response.status == 483


def test_cancel_with_max_forwards_zero_is_answered_locally():
    data = edit(b"Max-Forwards: 70", b"Max-Forwards: 0").replace(b"INVITE", b"CANCEL")
    assert check(request(data, b"")) is None


def test_ack_is_never_answered():
    data = edit(b"Max-Forwards: 70", b"Max-Forwards: 0").replace(b"INVITE", b"ACK")
    data = edit(b"SIP/2.0\r\n", b"SIP/3.0\r\n", data)
    data = edit(b"Call-ID: v1@203.0.113.10\r\n", b"", data)
    msg = request(data)
    assert check(msg) is None
    assert not acceptable_ack(msg)


def test_acceptable_ack():
    data = INVITE.replace(b"INVITE", b"ACK")
    assert acceptable_ack(request(data))
    assert not acceptable_ack(request(edit(b"CSeq: 1 ACK", b"CSeq: 1 ACK\r\nCSeq: 2 ACK", data)))


def test_501_with_allow_for_an_unknown_method():
    data = options().replace(b"OPTIONS", b"FROB")
    response = check(request(data, b""))
    assert response is not None
    assert (response.status, response.reason) == (501, "Not Implemented")
    assert response.headers("allow") == list(METHODS)


@pytest.mark.parametrize("method", [b"REGISTER", b"SUBSCRIBE", b"MESSAGE", b"REFER"])
def test_405_with_allow_for_a_known_method_not_served(method):
    response = check(request(options().replace(b"OPTIONS", method), b""))
    assert response is not None
    assert (response.status, response.reason) == (405, "Method Not Allowed")
    assert response.header("allow") == "INVITE" and response.headers("allow") == list(METHODS)
    assert response.to_tag == "t9"


def test_methods_are_case_sensitive():
    response = check(request(options().replace(b"OPTIONS", b"options"), b""))
    assert response is not None and response.status == 501


def test_405_comes_before_420():
    data = edit(b"Contact:", b"Require: foo\r\nContact:", options()).replace(b"OPTIONS", b"REFER")
    response = check(request(data, b""))
    assert response is not None and response.status == 405


def test_420_lists_only_the_unknown_require_tags():
    data = edit(b"Contact:", b"Require: 100rel, foo\r\nRequire: Timer, bar, foo\r\nContact:")
    response = check(request(data))
    assert response is not None
    assert (response.status, response.reason) == (420, "Bad Extension")
    assert response.headers("unsupported") == ["foo", "bar"]


def test_known_require_tags_pass_without_case():
    data = edit(b"Contact:", b"Require: 100REL\r\nProxy-Require: sec-agree\r\nContact:")
    assert check(request(data)) is None


def test_require_is_ignored_in_cancel():
    data = edit(b"Contact:", b"Require: foo\r\nContact:").replace(b"INVITE", b"CANCEL")
    assert check(request(data, b"")) is None


def test_420_comes_before_415():
    data = edit(b"Contact:", b"Require: foo\r\nContact:")
    data = edit(b"Content-Type: application/sdp", b"Content-Type: text/plain", data)
    response = check(request(data))
    assert response is not None and response.status == 420


def test_415_with_accept_for_an_unknown_content_type():
    data = edit(b"Content-Type: application/sdp", b"Content-Type: application/isup")
    response = check(request(data))
    assert response is not None
    assert (response.status, response.reason) == (415, "Unsupported Media Type")
    assert response.headers("accept") == list(TYPES)
    assert response.header("accept-encoding") is None


def test_content_type_parameters_and_case_do_not_matter():
    data = edit(b"Content-Type: application/sdp", b"Content-Type: Application/SDP;charset=utf-8")
    assert check(request(data)) is None


def test_multipart_is_accepted_when_listed():
    data = edit(b"Content-Type: application/sdp", b"Content-Type: multipart/mixed;boundary=b1")
    assert check(request(data)) is None


def test_415_with_accept_encoding_for_an_unknown_content_encoding():
    data = edit(b"Contact:", b"Content-Encoding: gzip\r\nContact:")
    response = check(request(data))
    assert response is not None and response.status == 415
    assert response.headers("accept-encoding") == ["identity"]
    assert response.header("accept") is None


def test_unknown_type_in_an_empty_body_is_not_judged():
    data = edit(b"Content-Type: application/sdp", b"Content-Type: application/isup")
    assert check(request(data, b"")) is None


def test_optional_body_may_be_ignored():
    data = edit(b"Content-Type: application/sdp", b"Content-Type: application/isup")
    data = edit(b"Contact:", b"Content-Disposition: signal;handling=optional\r\nContact:", data)
    assert check(request(data)) is None


@pytest.mark.parametrize(
    ("accept", "ok"),
    [
        (b"application/sdp", True),
        (b"text/plain, application/sdp;q=0.5", True),
        (b"application/*", True),
        (b"*/*", True),
        (b"text/html", False),
        (b"application/sdp;q=0", False),
    ],
    ids=["exact", "list", "subtype-star", "star-star", "other", "q-zero"],
)
def test_406_when_accept_excludes_sdp(accept, ok):
    data = edit(b"Contact:", b"Accept: " + accept + b"\r\nContact:")
    response = check(request(data))
    if ok:
        assert response is None
    else:
        assert response is not None
        assert (response.status, response.reason) == (406, "Not Acceptable")
        assert response.header("accept") == "application/sdp"


def test_accept_is_not_judged_for_info():
    data = edit(b"Contact:", b"Accept: text/html\r\nContact:").replace(b"INVITE", b"INFO")
    assert check(request(data, b"")) is None


def test_accepts_any_defaults_to_sdp_without_accept():
    msg = request()
    assert accepts_any(msg, ["application/sdp"])
    assert not accepts_any(msg, ["text/plain"])


# --- tags and OPTIONS ----------------------------------------------------------------------


def test_to_tag_from_a_function_is_called_only_for_a_response():
    calls = []

    def tag(msg):
        calls.append(msg)
        return "fn1"

    assert check(request(), to_tag=tag) is None
    assert calls == []
    response = check(request(edit(b"Max-Forwards: 70", b"Max-Forwards: 0")), to_tag=tag)
    assert response is not None and response.to_tag == "fn1" and len(calls) == 1


def test_stateless_tag_is_stable_for_a_retransmission_and_differs_otherwise():
    first, again = request(), request()
    other = request(edit(b"branch=z9hG4bKa1", b"branch=z9hG4bKa2"))
    assert stateless_tag(first) == stateless_tag(again)
    assert stateless_tag(first) != stateless_tag(other)
    response = check_request(
        request(edit(b"Max-Forwards: 70", b"Max-Forwards: 0")),
        methods=METHODS,
        supported=SUPPORTED,
        accepted_types=TYPES,
    )
    assert response is not None and response.to_tag is not None


def test_an_existing_to_tag_is_kept():
    data = edit(b"sipmask.example.com>\r\n", b"sipmask.example.com>;tag=old\r\n")
    response = check(request(data), schemes=("tel",))
    assert response is not None and response.to_tag == "old"


def test_options_response():
    msg = request(options(), b"")
    response = options_response(msg, METHODS, ["application/sdp"], ["100rel", "timer"], to_tag="o1")
    assert (response.status, response.reason) == (200, "OK")
    assert response.headers("allow") == list(METHODS)
    assert response.header("accept") == "application/sdp"
    assert response.header("accept-encoding") == "identity"
    assert response.headers("supported") == ["100rel", "timer"]
    assert response.to_tag == "o1" and response.call_id == msg.call_id
    assert str(response.cseq) == "1 OPTIONS"
    assert sipmask.parse(bytes(response)) == response


def test_options_response_leaves_out_empty_lists():
    response = options_response(request(options(), b""), METHODS, ["application/sdp"], [])
    assert response.header("supported") is None
    assert response.to_tag is not None


@pytest.mark.parametrize(
    ("local", "expected"),
    [
        ("sip:sipmask.example.com", True),
        ("sip:SIPMASK.example.com:5060", True),
        ("sip:+918045671234@sipmask.example.com", True),
        ("sip:other@sipmask.example.com", False),
        ("sip:sipmask.example.com:5080", False),
        ("sips:sipmask.example.com", False),
        ("sip:other.example.com", False),
    ],
    ids=["host", "case-and-default-port", "same-user", "other-user", "port", "sips-port", "host2"],
)
def test_addressed_to_us(local, expected):
    msg = request(options(), b"")
    assert addressed_to_us(msg, [local]) is expected
    assert addressed_to_us(msg, [sipmask.parse_uri(local)]) is expected
    assert addressed_to_us(msg, None) is True


def test_addressed_to_us_never_for_tel():
    data = options().replace(b"sip:+918045671234@sipmask.example.com SIP", b"tel:+9180 SIP")
    assert not addressed_to_us(request(data, b""), ["sip:sipmask.example.com"])


def test_every_verdict_response_parses_back():
    for data, body in [
        (edit(b"Max-Forwards: 70", b"Max-Forwards: 0"), SDP),
        (options().replace(b"OPTIONS", b"FROB"), b""),
        (edit(b"Contact:", b"Require: foo\r\nContact:"), SDP),
    ]:
        response = check(request(data, body))
        assert response is not None
        assert sipmask.parse(bytes(response)) == response


def test_a_request_without_via_gets_a_400_that_cannot_be_routed():
    # The parser accepts a request without Via; its 400 has no Via either, so the transport
    # cannot send it and drops it (documented in docs/sip-dialogs.md).
    msg = request(edit(b"Via: SIP/2.0/UDP 203.0.113.10:5060;branch=z9hG4bKa1;rport\r\n", b""))
    response = check(msg)
    assert response is not None and response.status == 400
    assert response.reason == "Bad Request (missing Via)"
    assert response.via == []
