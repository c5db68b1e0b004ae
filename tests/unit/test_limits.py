"""Hostile input: size and header-count limits, pathological nesting and repetition, NUL and
non-UTF-8 bytes, truncation, integer overflow. The rule (h11's fuzz invariant): the core
accepts the input or raises `ParseError`, never any other exception, and never hangs.

Scale checks compare sizes of work (10k against 100k items) and only assert that both finish
with the right answer: no timing assertions."""

from __future__ import annotations

import pytest

from sipmask import (
    DEFAULT_MAX_HEADERS,
    DEFAULT_MAX_SIZE,
    Message,
    ParseError,
    find_sdp,
    parse,
    parse_name_addr,
    parse_sdp,
    parse_uri,
    parse_via,
    rebuild_sdp,
    split_multipart,
    unescape,
)

BIG = 64 * 1024 * 1024

VIA = "SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds"


def request(*headers: str, body: bytes = b"", method: str = "INVITE",
            uri: str = "sip:+14155550199@biloxi.example.com") -> bytes:
    lines = [
        f"{method} {uri} SIP/2.0",
        f"Via: {VIA}",
        "Max-Forwards: 70",
        "To: <sip:+14155550199@biloxi.example.com>",
        'From: "Alice" <sip:+14155550100@atlanta.example.com>;tag=1928301774',
        "Call-ID: a84b4c76e66710@pc33.atlanta.example.com",
        f"CSeq: 314159 {method}",
        *headers,
        f"Content-Length: {len(body)}",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


SDP = (
    b"v=0\r\no=alice 2890844526 2890844526 IN IP4 192.0.2.101\r\ns=-\r\n"
    b"c=IN IP4 192.0.2.101\r\nt=0 0\r\nm=audio 49172 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)
INVITE = request(
    "Contact: <sip:alice@pc33.atlanta.example.com>",
    "Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>",
    "Content-Type: application/sdp",
    body=SDP,
)
RESPONSE = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: " + VIA.encode() + b";received=192.0.2.101;rport=5060\r\n"
    b"To: <sip:bob@biloxi.example.com>;tag=a6c85cf\r\n"
    b"From: <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Contact: <sip:bob@192.0.2.4>\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def outcome(fn, *args, **kwargs):
    """Call `fn`; return its result, or the ParseError it raised. Anything else propagates and
    fails the test."""
    try:
        return fn(*args, **kwargs)
    except ParseError as e:
        return e


def check(data: bytes) -> None:
    """Parse `data`: a ParseError, or a message whose every accessor behaves (see `touch`).
    A failure names the input."""
    try:
        result = outcome(parse, data)
        if isinstance(result, ParseError):
            assert isinstance(result.status_code, int)
            result.can_respond
        else:
            touch(result)
    except Exception as exc:
        raise AssertionError(f"input {data!r}") from exc


def touch(msg: Message) -> None:
    """Read everything a parsed message offers. The accessors of what `parse` validates cannot
    fail; Contact may raise ParseError only. What it serialises to must parse back to the same
    bytes."""
    msg.header("via")
    msg.headers("contact")
    msg.header_items()
    for accessor in ("call_id", "cseq", "via", "top_via", "from_", "to", "from_tag", "to_tag",
                     "max_forwards", "content_type", "is_request", "body", "version"):
        getattr(msg, accessor)
    if msg.is_request:
        msg.parsed_uri
    for via in msg.via:
        (via.branch, via.received, via.rport, via.has_rport, str(via))
    for name_addr in (msg.from_, msg.to):
        if name_addr is not None:
            (name_addr.tag, str(name_addr), str(name_addr.uri))
    outcome(lambda: msg.contact)
    out = bytes(msg)
    again = parse(out, max_size=BIG, max_headers=1 << 20)
    assert again.body == msg.body
    assert bytes(again) == out


def count_fields(data: bytes) -> int:
    head = data.split(b"\r\n\r\n", 1)[0]
    return sum(1 for line in head.split(b"\r\n")[1:] if line[:1] not in (b" ", b"\t"))


# --- limits ----------------------------------------------------------------------------------


def test_defaults_are_positive_ints():
    assert isinstance(DEFAULT_MAX_SIZE, int) and DEFAULT_MAX_SIZE > 0
    assert isinstance(DEFAULT_MAX_HEADERS, int) and DEFAULT_MAX_HEADERS > 0


def test_max_size_is_inclusive():
    assert parse(INVITE, max_size=len(INVITE)).body == SDP


@pytest.mark.parametrize("data", [INVITE, RESPONSE], ids=["request", "response"])
def test_over_max_size_is_513(data):
    # RFC 3261 §21.5.11: 513 Message Too Large, "the message length exceeded its capabilities"
    # (413 is about the body alone, §21.4.11).
    with pytest.raises(ParseError) as info:
        parse(data, max_size=len(data) - 1)
    assert info.value.status_code == 513


def test_oversized_request_salvages_what_a_513_needs():
    # A 513 can only be sent if the headers a response copies are salvaged (RFC 3261
    # §8.2.6.2); they sit in the first octets, inside the limit.
    data = request(body=b"x" * 10_000)
    with pytest.raises(ParseError) as info:
        parse(data, max_size=2_000)
    e = info.value
    assert e.status_code == 513
    assert e.method == "INVITE"
    assert e.via == (VIA,)
    assert e.call_id == "a84b4c76e66710@pc33.atlanta.example.com"
    assert e.cseq == "314159 INVITE"
    assert e.can_respond is True


def test_over_default_max_size_is_513():
    target = DEFAULT_MAX_SIZE + 1
    size = target - len(request())
    while len(request(body=b"x" * size)) > target:  # Content-Length grows with the body
        size -= 1
    data = request(body=b"x" * size)
    assert len(data) == target
    with pytest.raises(ParseError) as info:
        parse(data)
    assert info.value.status_code == 513
    assert parse(data, max_size=len(data)).body == b"x" * size


def test_datagram_junk_past_content_length_counts_toward_nothing_but_max_size():
    data = INVITE + b"junk"
    assert parse(data, max_size=len(data)).body == SDP


def test_max_headers_is_inclusive_then_parse_error():
    n = count_fields(INVITE)
    assert parse(INVITE, max_headers=n).count("route") == 1
    with pytest.raises(ParseError):
        parse(INVITE, max_headers=n - 1)


def test_over_default_max_headers():
    extra = DEFAULT_MAX_HEADERS + 1 - count_fields(request())
    data = request(*(f"X-H{i}: {i}" for i in range(max(extra, 0))))
    assert count_fields(data) == DEFAULT_MAX_HEADERS + 1
    with pytest.raises(ParseError):
        parse(data, max_size=BIG)
    assert parse(data, max_size=BIG, max_headers=DEFAULT_MAX_HEADERS + 1).count("x-h0") == 1


def test_folded_lines_are_not_extra_fields():
    data = request("Subject: a", " b", " c", " d")
    n = count_fields(data)
    assert parse(data, max_headers=n).header("subject") == "a b c d"


# --- size of work: 10k against 100k ----------------------------------------------------------


def test_one_megabyte_header_line():
    value = "a" * (1024 * 1024)
    data = request(f"Subject: {value}")
    if DEFAULT_MAX_SIZE < len(data):
        with pytest.raises(ParseError) as info:
            parse(data)
        assert info.value.status_code == 513
    msg = parse(data, max_size=BIG)
    assert msg.header("subject") == value
    assert bytes(msg) == data


def test_one_megabyte_request_uri_user():
    user = "1" * (1024 * 1024)
    data = request(uri=f"sip:{user}@biloxi.example.com")
    msg = parse(data, max_size=BIG)
    assert msg.parsed_uri.user == user


@pytest.mark.parametrize("n", [10_000, 100_000], ids=["10k", "100k"])
def test_many_tiny_headers(n):
    data = request(*(["X-A: 1"] * n))
    result = outcome(parse, data)
    if not isinstance(result, ParseError):
        assert n + count_fields(request()) <= DEFAULT_MAX_HEADERS
    msg = parse(data, max_size=BIG, max_headers=n + 100)
    assert msg.count("x-a") == n
    assert msg.headers("x-a") == ["1"] * n
    assert msg.remove_header("x-a") == n


@pytest.mark.parametrize("n", [10_000, 100_000], ids=["10k", "100k"])
def test_many_list_values(n):
    route = ", ".join(f"<sip:p{i}.example.com;lr>" for i in range(n))
    msg = parse(request(f"Route: {route}"), max_size=BIG)
    routes = msg.headers("route")
    assert len(routes) == n
    assert routes[-1] == f"<sip:p{n - 1}.example.com;lr>"
    assert msg.remove_first("route") is True
    assert len(msg.headers("route")) == n - 1


@pytest.mark.parametrize("n", [10_000, 100_000], ids=["10k", "100k"])
def test_many_vias(n):
    value = ",".join(f"SIP/2.0/UDP h{i}.example.com;branch=z9hG4bK{i}" for i in range(n))
    vias = parse_via(value)
    assert len(vias) == n
    assert vias[-1].branch == f"z9hG4bK{n - 1}"
    data = request().replace(f"Via: {VIA}".encode(), f"Via: {value}".encode(), 1)
    msg = parse(data, max_size=BIG)
    assert len(msg.via) == n
    assert msg.top_via.host == "h0.example.com"


@pytest.mark.parametrize("n", [10_000, 100_000], ids=["10k", "100k"])
def test_commas_only_via(n):
    with pytest.raises(ParseError):
        parse_via(f"{VIA}" + "," * n)
    data = request().replace(f"Via: {VIA}".encode(), f"Via: {VIA}{',' * n}".encode(), 1)
    with pytest.raises(ParseError):
        parse(data, max_size=BIG)


@pytest.mark.parametrize("n", [10_000, 100_000], ids=["10k", "100k"])
def test_commas_in_non_list_and_list_headers(n):
    msg = parse(request("Subject: " + "," * n, "Allow: " + "," * n), max_size=BIG)
    assert msg.headers("subject") == ["," * n]
    outcome(msg.headers, "allow")


@pytest.mark.parametrize("n", [10_000, 100_000], ids=["10k", "100k"])
def test_many_via_params(n):
    value = "SIP/2.0/UDP h.example.com;branch=z9hG4bK1" + "".join(f";p{i}={i}" for i in range(n))
    (via,) = parse_via(value)
    assert len(via.params) == n + 1
    assert via.params[f"p{n - 1}"] == str(n - 1)


@pytest.mark.parametrize("n", [10_000, 100_000], ids=["10k", "100k"])
def test_many_uri_params_and_headers(n):
    text = "sip:a@example.com" + "".join(f";p{i}" for i in range(n)) + "?" + "&".join(
        f"h{i}=v" for i in range(n))
    uri = parse_uri(text)
    assert len(uri.params) == n
    assert len(uri.headers) == n
    assert str(uri) == text


@pytest.mark.parametrize("n", [10_000, 100_000], ids=["10k", "100k"])
def test_deep_angle_bracket_nesting(n):
    nested = "<" * n + "sip:a@example.com" + ">" * n
    with pytest.raises(ParseError):
        parse_name_addr(nested)
    with pytest.raises(ParseError):
        parse_uri(nested)
    with pytest.raises(ParseError):
        parse(request().replace(b"To: <sip:+14155550199@biloxi.example.com>",
                                f"To: {nested}".encode(), 1), max_size=BIG)
    # Contact is not checked by parse: the message parses, the accessor raises.
    msg = parse(request(f"Contact: {nested}"), max_size=BIG)
    with pytest.raises(ParseError):
        msg.contact
    outcome(msg.headers, "contact")
    only_open = parse(request("Contact: " + "<" * n), max_size=BIG)
    with pytest.raises(ParseError):
        only_open.contact
    outcome(only_open.headers, "contact")


@pytest.mark.parametrize("n", [10_000, 100_000], ids=["10k", "100k"])
def test_quotes_and_backslashes(n):
    with pytest.raises(ParseError):
        parse_name_addr('"' * (2 * n + 1) + " <sip:a@example.com>")
    with pytest.raises(ParseError):  # odd count: the closing quote is escaped
        parse_name_addr('"' + "\\" * (2 * n + 1) + '" <sip:a@example.com>')
    na = parse_name_addr('"' + "\\" * (2 * n) + '" <sip:a@example.com>')
    assert na.display_name == "\\" * n
    msg = parse(request('Contact: "' + '\\"' * n + '" <sip:a@example.com>, <sip:b@example.com>'),
                max_size=BIG)
    assert len(msg.headers("contact")) == 2
    assert msg.contact[0].display_name == '"' * n


@pytest.mark.parametrize("n", [10_000, 100_000], ids=["10k", "100k"])
def test_many_folds(n):
    data = request("Subject: a" + "\r\n b" * n)
    msg = parse(data, max_size=BIG)
    assert msg.header("subject") == "a" + " b" * n
    assert bytes(msg) == data


@pytest.mark.parametrize("n", [10_000, 100_000], ids=["10k", "100k"])
def test_many_percent_escapes(n):
    uri = parse_uri("sip:" + "%61" * n + "@example.com")
    assert unescape(uri.user) == "a" * n
    assert unescape("%" * n) == "%" * n
    assert unescape("%4" * n) == "%4" * n


@pytest.mark.parametrize("n", [10_000, 100_000], ids=["10k", "100k"])
def test_sdp_with_many_lines(n):
    head = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
    body = head + b"m=audio 4000 RTP/AVP 0\r\n" + b"a=x-junk:1\r\n" * n
    desc = parse_sdp(body)
    assert len(desc.media[0].attributes) == n
    out = rebuild_sdp(body, origin_address="203.0.113.1", session_id=1, version=1)
    assert b"x-junk" not in out
    many_m = head + b"m=audio 4000 RTP/AVP 0\r\na=sendrecv\r\n" * (n // 10)
    assert len(parse_sdp(many_m).media) == n // 10
    out = rebuild_sdp(many_m, origin_address="203.0.113.1", session_id=1, version=1,
                      media_ports=[5000] * (n // 10))
    assert out.count(b"m=audio 5000 ") == n // 10


@pytest.mark.parametrize("n", [1_000, 10_000], ids=["1k", "10k"])
def test_multipart_with_many_parts(n):
    part = b"--b1\r\nContent-Type: text/plain\r\n\r\nx\r\n"
    body = part * n + b"--b1--"
    parts = split_multipart("multipart/mixed;boundary=b1", body)
    assert len(parts) == n
    assert find_sdp("multipart/mixed;boundary=b1", body) is None
    outcome(split_multipart, "multipart/mixed;boundary=b1", b"--b1\r\n" * n)
    outcome(find_sdp, "multipart/mixed;boundary=b1", b"--b1\r\n" * n)


# --- '%' at the end, NUL bytes, non-UTF-8 -----------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["sip:alice@example.com%", "sip:alice%", "sip:alice%@example.com", "sip:alice@example.com;p=%",
     "sip:alice@example.com?h=%", "sip:alice@example.com;p=%4", "tel:+1555%", "sip:%"],
    ids=["host", "user-no-host", "user", "param", "header", "param-one-digit", "tel", "bare"],
)
def test_percent_at_the_end_of_a_uri(text):
    result = outcome(parse_uri, text)
    if not isinstance(result, ParseError):
        str(result)
    outcome(parse, request(uri=text))
    outcome(parse, request(f"Contact: <{text}>"))


def test_percent_at_the_end_of_the_host_is_an_error():
    with pytest.raises(ParseError):
        parse_uri("sip:alice@example.com%")
    with pytest.raises(ParseError):
        parse(request(uri="sip:bob@biloxi.example.com%"))


@pytest.mark.parametrize(
    "data",
    [
        INVITE.replace(b"INVITE sip:", b"INV\x00ITE sip:", 1).replace(b"314159 INVITE",
                                                                       b"314159 INV\x00ITE"),
        INVITE.replace(b"@biloxi.example.com SIP", b"@bil\x00oxi.example.com SIP", 1),
        INVITE.replace(b" SIP/2.0\r\n", b" SIP/2.\x000\r\n", 1),
        INVITE.replace(b"INVITE ", b"\x00INVITE ", 1),
        b"\x00" + INVITE,
        INVITE.replace(b" SIP/2.0\r\n", b" SIP/2.0\x00\r\n", 1),
        RESPONSE.replace(b"200 OK", b"200 O\x00K", 1),
        RESPONSE.replace(b"200 OK", b"2\x000 OK", 1),
        RESPONSE.replace(b"200 OK", b"200 O\rK", 1),
        RESPONSE.replace(b"200 OK", b"200 O\x07K", 1),
        RESPONSE.replace(b"200 OK", b"200 OK\x7f", 1),
    ],
    ids=["method", "uri", "version", "before-method", "first-byte", "after-version",
         "reason", "status", "reason-bare-cr", "reason-bel", "reason-del"],
)
def test_nul_and_controls_in_start_line_are_parse_errors(data):
    # RFC 3261 §25.1: no CTL but HTAB in a Reason-Phrase; a bare CR copied into another leg's
    # start line would end that line early for the next parser (header injection).
    with pytest.raises(ParseError):
        parse(data)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"Subject: x", b"Subject: a\x00b"),
        (b"Subject: x", b"Sub\x00ject: x"),
        (b"Subject: x", b"Subject\x00: x"),
        (b"Subject: x", b"Subject: \xff\xfe\xfd"),
        (b"Subject: x", b"\xff\xfe: x"),
        (b"Subject: x", b"Subject: \xc3"),
        (b"Subject: x", b"Subject: \xed\xa0\x80"),
        (b"+14155550100@atlanta", b"+1415\xff5550100@atlanta"),
        (b'"Alice"', b'"Al\xffice"'),
        (b'"Alice"', b'"Al\x00ice"'),
        (b"a84b4c76e66710@", b"a84b4c76\xff66710@"),
        (b"z9hG4bK776asdhds", b"z9hG4bK776\xffasdhds"),
        (b"CSeq: 314159", b"CSeq: 31\x004159"),
        (b"Max-Forwards: 70", b"Max-Forwards: 7\xff"),
        (b"Content-Length: ", b"Content-Length: \x00"),
        (b"a=rtpmap:0", b"a=rtp\xffmap:0"),
    ],
    ids=["nul-value", "nul-name", "nul-before-colon", "ff-value", "ff-name", "truncated-utf8",
         "utf8-surrogate", "ff-from-user", "ff-display-name", "nul-display-name", "ff-call-id",
         "ff-branch", "nul-cseq", "ff-max-forwards", "nul-content-length", "ff-body"],
)
def test_bad_bytes_in_headers(old, new):
    data = request("Subject: x", "Content-Type: application/sdp", body=SDP)
    assert old in data
    check(data.replace(old, new, 1))


@pytest.mark.parametrize("byte", [b"\x00", b"\xff", b"\x80", b"\xc3", b"\r", b"\n", b" ",
                                  b",", b"<", b'"', b"%", b";", b":", b"\\"],
                         ids=["nul", "ff", "80", "c3", "cr", "lf", "sp", "comma", "lt", "dquote",
                              "percent", "semi", "colon", "backslash"])
@pytest.mark.parametrize("base", [INVITE, RESPONSE], ids=["request", "response"])
def test_every_position_replaced(base, byte):
    for i in range(len(base)):
        check(base[:i] + byte + base[i + 1:])


@pytest.mark.parametrize("base", [INVITE, RESPONSE], ids=["request", "response"])
def test_every_prefix(base):
    for i in range(len(base)):
        check(base[:i])
    # A prefix that cuts a start line or header line short is never a message. (One that
    # ends just after a line's CRLF may be: a datagram's header section may end at its end,
    # tests/vectors/rfc4475/expected.toml, baddn.dat.)
    head_end = base.index(b"\r\n\r\n")
    for i in range(head_end):
        if base[:i].endswith(b"\r\n"):
            continue
        with pytest.raises(ParseError):
            parse(base[:i])


def test_every_prefix_of_a_message_without_content_length():
    base = INVITE.replace(f"Content-Length: {len(SDP)}\r\n".encode(), b"", 1)
    for i in range(len(base)):
        check(base[:i])


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\r\n",
        b"\r\n\r\n",
        b" " * 10_000,
        b"\r\n" * 10_000,
        b"\xff" * 10_000,
        b"\x00" * 10_000,
        b"INVITE " * 10_000,
        b":" * 10_000,
        b"SIP/2.0 " * 10_000,
        b"INVITE sip:a@b SIP/2.0\r\n" + b"Via:" * 10_000 + b"\r\n\r\n",
        b"INVITE sip:a@b SIP/2.0\r\nNoColonHere\r\n\r\n",
        b"INVITE sip:a@b SIP/2.0\r\n: empty-name\r\n\r\n",
        b"SIP/2.0 4294967301 better not break the receiver\r\n\r\n",
        b"SIP/2.0 1000 OK\r\n\r\n",
        b"SIP/2.0 99 OK\r\n\r\n",
        b"SIP/2.0 -200 OK\r\n\r\n",
        bytes(range(256)) * 40,
    ],
    ids=["empty", "crlf", "crlfcrlf", "spaces", "crlfs", "ff", "nul", "method-repeated",
         "colons", "version-repeated", "via-names", "no-colon", "empty-name", "huge-status",
         "4-digit-status", "2-digit-status", "negative-status", "all-bytes"],
)
def test_garbage_is_a_parse_error(data):
    with pytest.raises(ParseError):
        parse(data)


# --- integer overflow ------------------------------------------------------------------------

HUGE = "9" * 40


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("Content-Length: 0", f"Content-Length: {HUGE}"),
        ("Content-Length: 0", "Content-Length: 18446744073709551616"),
        ("Content-Length: 0", "Content-Length: 4294967296"),
        ("CSeq: 314159 INVITE", f"CSeq: {HUGE} INVITE"),
        ("CSeq: 314159 INVITE", "CSeq: 2147483648 INVITE"),
        ("CSeq: 314159 INVITE", "CSeq: 4294967296 INVITE"),
        ("Max-Forwards: 70", f"Max-Forwards: {HUGE}"),
        ("Max-Forwards: 70", "Max-Forwards: 4294967366"),
        ("pc33.atlanta.example.com;", f"pc33.atlanta.example.com:{HUGE};"),
        ("pc33.atlanta.example.com;", "pc33.atlanta.example.com:4294972356;"),
        ("z9hG4bK776asdhds", f"z9hG4bK776asdhds;rport={HUGE}"),
        ("sip:+14155550199@biloxi.example.com SIP",
         f"sip:+14155550199@biloxi.example.com:{HUGE} SIP"),
        ("sip:+14155550199@biloxi.example.com SIP",
         "sip:+14155550199@biloxi.example.com:4294972356 SIP"),
    ],
    ids=["cl-huge", "cl-2-64", "cl-2-32", "cseq-huge", "cseq-2-31", "cseq-2-32", "mf-huge",
         "mf-wraps-to-70", "via-port-huge", "via-port-wraps", "rport-huge", "ruri-port-huge",
         "ruri-port-wraps"],
)
def test_numbers_that_overflow_are_parse_errors(old, new):
    # RFC 3261 §8.1.1.5: a CSeq number is below 2**31; §20.22: Max-Forwards is 0-255; ports
    # are 16-bit. A value that wraps around a C integer must not be read as a small one.
    data = request().decode()
    assert old in data
    with pytest.raises(ParseError):
        parse(data.replace(old, new, 1).encode())


@pytest.mark.parametrize(
    "fn,arg",
    [
        (parse_uri, f"sip:a@example.com:{HUGE}"),
        (parse_uri, "sip:a@example.com:4294972356"),
        (parse_via, f"SIP/2.0/UDP h:{HUGE}"),
        (parse_via, f"SIP/2.0/UDP h;rport={HUGE}"),
        (parse_sdp, b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\nm=audio "
         + HUGE.encode() + b" RTP/AVP 0\r\n"),
    ],
    ids=["uri-port", "uri-port-wraps", "via-port", "via-rport", "sdp-port"],
)
def test_numbers_that_overflow_in_helpers(fn, arg):
    with pytest.raises(ParseError):
        fn(arg)


@pytest.mark.parametrize("count", [HUGE, "4294967298", "18446744073709551618"],
                         ids=["huge", "wraps-32", "wraps-64"])
def test_sdp_port_count_never_wraps(count):
    # RFC 4566 §5.14 bounds no port count; a big one may be refused, never read as a small one.
    body = (b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\nm=audio 4000/"
            + count.encode() + b" RTP/AVP 0\r\n")
    result = outcome(parse_sdp, body)
    if not isinstance(result, ParseError):
        assert result.media[0].port_count == int(count)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"session_id": 2**64, "version": 1},
        {"session_id": 1, "version": 2**64},
    ],
    ids=["session-id", "version"],
)
def test_rebuild_sdp_with_big_origin_numbers(kwargs):
    # RFC 4566 §5.2 only asks for numeric strings; big values must not wrap or crash.
    try:
        out = rebuild_sdp(SDP, origin_address="192.0.2.1", **kwargs)
    except (ParseError, OverflowError, ValueError):
        return
    assert f"o=- {kwargs['session_id']} {kwargs['version']} IN IP4 192.0.2.1".encode() in out
