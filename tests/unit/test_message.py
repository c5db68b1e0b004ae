"""Unit tests of `sipmask.parse` and `Message` / `Request` / `Response` (the `_core.pyi`
contract), with exact inputs and expected values from RFC 3261 §7 (messages), §18.3
(datagram framing), §20 (header fields) and §25 (grammar)."""

from __future__ import annotations

import pytest

import sipmask
from sipmask import CSeq, ParseError, Request, Response, parse


def wire(*lines: str, body: bytes = b"") -> bytes:
    """A message from its start line and header lines, CRLF ends, then the body."""
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape") + body


VIA1 = "SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds"
FROM = '"Alice" <sip:+14155550100@atlanta.example.com>;tag=1928301774'
TO = "<sip:+14155550199@biloxi.example.com>"
CALL_ID = "a84b4c76e66710@pc33.atlanta.example.com"

SDP = (
    b"v=0\r\n"
    b"o=alice 2890844526 2890844526 IN IP4 192.0.2.101\r\n"
    b"s=-\r\n"
    b"c=IN IP4 192.0.2.101\r\n"
    b"t=0 0\r\n"
    b"m=audio 49172 RTP/AVP 0\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
)

INVITE = wire(
    "INVITE sip:+14155550199@biloxi.example.com SIP/2.0",
    f"Via: {VIA1}",
    "Max-Forwards: 70",
    f"To: {TO}",
    f"From: {FROM}",
    f"Call-ID: {CALL_ID}",
    "CSeq: 314159 INVITE",
    "Contact: <sip:alice@pc33.atlanta.example.com>",
    "Content-Type: application/sdp",
    f"Content-Length: {len(SDP)}",
    body=SDP,
)

RINGING = wire(
    "SIP/2.0 180 Ringing",
    f"Via: {VIA1};received=192.0.2.101",
    f"To: {TO};tag=a6c85cf",
    f"From: {FROM}",
    f"Call-ID: {CALL_ID}",
    "CSeq: 314159 INVITE",
    "Contact: <sip:bob@192.0.2.4>",
    "Content-Length: 0",
)


def request(*headers: str, method: str = "OPTIONS", body: bytes = b"") -> bytes:
    """A small valid request carrying the mandatory headers plus `headers`."""
    return wire(
        f"{method} sip:bob@biloxi.example.com SIP/2.0",
        f"Via: {VIA1}",
        "Max-Forwards: 70",
        f"To: {TO}",
        f"From: {FROM}",
        f"Call-ID: {CALL_ID}",
        f"CSeq: 1 {method}",
        *headers,
        f"Content-Length: {len(body)}",
        body=body,
    )


# --- start lines (RFC 3261 §7.1, §7.2) ------------------------------------------------------


def test_request_start_line():
    msg = parse(INVITE)
    assert isinstance(msg, Request)
    assert msg.is_request is True
    assert msg.method == "INVITE"
    assert msg.uri == "sip:+14155550199@biloxi.example.com"
    assert msg.version == "SIP/2.0"


def test_response_start_line():
    msg = parse(RINGING)
    assert isinstance(msg, Response)
    assert msg.is_request is False
    assert msg.status == 180
    assert msg.reason == "Ringing"
    assert msg.version == "SIP/2.0"


@pytest.mark.parametrize(
    "method",
    ["NEWMETHOD", "NEW-METHOD.x!%*_+`'~", "invite"],
    ids=["extension", "all-token-chars", "lowercase-is-another-method"],
)
def test_unknown_methods_parse_and_keep_their_case(method):
    # RFC 3261 §7.1: the method is a case-sensitive token; extension methods are allowed.
    msg = parse(request(method=method))
    assert msg.method == method
    assert msg.cseq.method == method


@pytest.mark.parametrize(
    ("line", "status", "reason"),
    [
        ("SIP/2.0 200 OK", 200, "OK"),
        ("SIP/2.0 486 Busy Here", 486, "Busy Here"),
        ("SIP/2.0 480 Temporarily  Unavailable, call later", 480,
         "Temporarily  Unavailable, call later"),
        ("SIP/2.0 603 Déclinée par l’abonné", 603, "Déclinée par l’abonné"),
        ("SIP/2.0 200 ", 200, ""),
        ("SIP/2.0 699 Whatever", 699, "Whatever"),
        ("SIP/2.0 100 Trying", 100, "Trying"),
    ],
    ids=["ok", "spaces", "inner-double-space-and-comma", "utf8", "empty", "699", "100"],
)
def test_reason_phrases(line, status, reason):
    data = wire(line, f"Via: {VIA1}", f"To: {TO}", f"From: {FROM}", f"Call-ID: {CALL_ID}",
                "CSeq: 1 INVITE", "Content-Length: 0")
    msg = parse(data)
    assert (msg.status, msg.reason) == (status, reason)
    assert bytes(msg) == data


def test_other_sip_version_parses():
    # The contract: other versions parse, the SIP layer answers them 505.
    data = INVITE.replace(b" SIP/2.0\r\n", b" SIP/7.0\r\n", 1)
    msg = parse(data)
    assert msg.version == "SIP/7.0"


@pytest.mark.parametrize(
    "kind", [bytes, bytearray, memoryview], ids=["bytes", "bytearray", "memoryview"]
)
def test_parse_accepts_bytes_like(kind):
    msg = parse(kind(INVITE))
    assert msg == parse(INVITE)
    assert bytes(msg) == INVITE


def test_untouched_message_serialises_to_its_wire_bytes():
    assert bytes(parse(INVITE)) == INVITE
    assert bytes(parse(RINGING)) == RINGING


# --- header lookup ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["Call-ID", "call-id", "CALL-ID", "cAlL-iD", "i", "I"])
def test_header_lookup_any_case_and_compact(name):
    assert parse(INVITE).header(name) == CALL_ID


def test_header_absent_is_none():
    msg = parse(INVITE)
    assert msg.header("Subject") is None
    assert msg.headers("Subject") == []
    assert msg.count("Subject") == 0


# RFC 3261 §7.3.3 and the IANA registry: the compact forms a parser must resolve.
COMPACT = [
    ("i", "Call-ID", CALL_ID),
    ("m", "Contact", "<sip:alice@pc33.atlanta.example.com>"),
    ("f", "From", FROM),
    ("t", "To", TO),
    ("v", "Via", VIA1),
    ("l", "Content-Length", "0"),
    ("c", "Content-Type", "text/plain"),
    ("k", "Supported", "timer"),
    ("s", "Subject", "lunch"),
    ("e", "Content-Encoding", "gzip"),
    ("o", "Event", "refer"),
    ("u", "Allow-Events", "presence"),
    ("r", "Refer-To", "<sip:carol@example.com>"),
    ("b", "Referred-By", "<sip:alice@example.com>"),
    ("x", "Session-Expires", "1800"),
    ("y", "Identity", '"ZYNBbHC00VMZr2kZt6VmCvPonWJMGvQTBDqghoWeLxJfzB2a1pxAr3VgrB0SsSAa"'),
    ("a", "Accept-Contact", "*;audio"),
]


def compact_message(use_compact: bool) -> bytes:
    lines = ["MESSAGE sip:bob@biloxi.example.com SIP/2.0", "Max-Forwards: 70",
             "CSeq: 1 MESSAGE"]
    for short, long, value in COMPACT:
        lines.append(f"{short if use_compact else long}: {value}")
    return wire(*lines)


@pytest.mark.parametrize(("short", "long", "value"), COMPACT, ids=[c[0] for c in COMPACT])
def test_compact_form_written_resolves_long_name(short, long, value):
    msg = parse(compact_message(use_compact=True))
    assert msg.header(long) == value
    assert msg.header(long.upper()) == value
    assert msg.header(short) == value
    assert msg.count(long) == 1


@pytest.mark.parametrize(("short", "long", "value"), COMPACT, ids=[c[0] for c in COMPACT])
def test_long_name_written_resolves_compact_form(short, long, value):
    msg = parse(compact_message(use_compact=False))
    assert msg.header(short) == value
    assert msg.header(short.upper()) == value
    assert msg.count(short) == 1


def test_compact_and_long_fields_count_together():
    data = request("Subject: one", "s: two", "SUBJECT: three")
    msg = parse(data)
    assert msg.count("subject") == 3
    assert msg.count("s") == 3
    assert msg.headers("Subject") == ["one", "two", "three"]
    assert msg.header("s") == "one"


@pytest.mark.parametrize(
    ("lines", "value"),
    [
        (["Subject: I know you're there,", "         pay attention"],
         "I know you're there, pay attention"),
        (["Subject: I know you're there, \t", " \t pay attention"],
         "I know you're there, pay attention"),
        (["Subject: one", "\ttwo", " three"], "one two three"),
        (["Subject:", " folded-at-start"], "folded-at-start"),
        (["Subject:    padded value   "], "padded value"),
        (["Subject:no-space"], "no-space"),
        (["Subject : space-before-colon"], "space-before-colon"),
        (["Subject\t:\ttab-around-colon"], "tab-around-colon"),
    ],
    ids=["rfc-example", "wsp-around-crlf", "several-folds", "fold-after-colon", "padding",
         "no-space", "space-before-colon", "tabs"],
)
def test_folded_and_padded_values_are_unfolded(lines, value):
    # RFC 3261 §7.3.1: a folded line (CRLF then SP/HTAB) and the LWS around it read as one SP;
    # whitespace before and after the colon and at the end of the value is not part of it.
    msg = parse(request(*lines))
    assert msg.header("subject") == value
    assert msg.headers("subject") == [value]
    assert ("Subject", value) in [(n.strip(), v) for n, v in msg.header_items()]


@pytest.mark.parametrize(
    ("old", "new", "check"),
    [
        ("Content-Length: 4", "Content-Length:\r\n 4", lambda m: m.body == b"abcd"),
        ("Max-Forwards: 70", "Max-Forwards:\r\n\t70", lambda m: m.max_forwards == 70),
        ("CSeq: 1 OPTIONS", "CSeq:\r\n 1\r\n OPTIONS", lambda m: m.cseq.number == 1),
        (f"Call-ID: {CALL_ID}", f"Call-ID:\r\n {CALL_ID}", lambda m: m.call_id == CALL_ID),
        (f"From: {FROM}", f"From:\r\n {FROM}", lambda m: m.from_tag == "1928301774"),
        (f"Via: {VIA1}", f"Via:\r\n {VIA1}", lambda m: m.top_via.branch == "z9hG4bK776asdhds"),
    ],
    ids=["content-length", "max-forwards", "cseq", "call-id", "from", "via"],
)
def test_fold_right_after_the_colon_in_validated_headers(old, new, check):
    # RFC 3261 §7.3.1 / §25.1: HCOLON = *( SP / HTAB ) ":" SWS, and SWS may hold a fold.
    data = request(body=b"abcd").replace(old.encode(), new.encode(), 1)
    assert check(parse(data))


def test_folded_via_is_parsed_whole():
    msg = parse(request("Route: <sip:p1.example.com;lr>,", "  <sip:p2.example.com;lr>"))
    assert msg.headers("route") == ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]


# --- headers(): comma splitting of list-valued headers (RFC 3261 §7.3.1) ---------------------


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        (
            f"Via: {VIA1}, SIP/2.0/TCP 192.0.2.7:5061;branch=z9hG4bK2",
            [VIA1, "SIP/2.0/TCP 192.0.2.7:5061;branch=z9hG4bK2"],
        ),
        (
            'Contact: "Doe, John" <sip:john@example.com>, <sip:jane@example.com>',
            ['"Doe, John" <sip:john@example.com>', "<sip:jane@example.com>"],
        ),
        (
            # A comma is legal in a SIP URI's userinfo (RFC 3261 §25.1 user-unreserved).
            "Contact: <sip:doe,john@example.com;transport=tcp>;q=0.5,<sip:b@example.com>",
            ["<sip:doe,john@example.com;transport=tcp>;q=0.5", "<sip:b@example.com>"],
        ),
        (
            'Contact: "Bob \\"the, builder\\"" <sip:bob@example.com>, <sip:x@example.com>',
            ['"Bob \\"the, builder\\"" <sip:bob@example.com>', "<sip:x@example.com>"],
        ),
        (
            # The quoted string ends after an escaped backslash: the next comma splits.
            'Contact: "C:\\\\" <sip:c@example.com>, <sip:d@example.com>',
            ['"C:\\\\" <sip:c@example.com>', "<sip:d@example.com>"],
        ),
        (
            'Contact: <sip:a@example.com>;foo="x,y", <sip:b@example.com>',
            ['<sip:a@example.com>;foo="x,y"', "<sip:b@example.com>"],
        ),
        (
            "Route: <sip:p1.example.com;lr>,<sip:p2.example.com;lr>  ,  <sip:p3.example.com;lr>",
            ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>", "<sip:p3.example.com;lr>"],
        ),
        (
            "Record-Route: <sip:p2.example.com;lr>, <sip:p1.example.com;lr>",
            ["<sip:p2.example.com;lr>", "<sip:p1.example.com;lr>"],
        ),
        ("Allow: INVITE, ACK ,BYE,CANCEL", ["INVITE", "ACK", "BYE", "CANCEL"]),
        ("Supported: timer, 100rel, replaces", ["timer", "100rel", "replaces"]),
        ("k: timer,path", ["timer", "path"]),
        ("m: <sip:a@example.com>, <sip:b@example.com>",
         ["<sip:a@example.com>", "<sip:b@example.com>"]),
    ],
    ids=["via", "contact-quoted-comma", "contact-comma-in-brackets", "contact-escaped-quote",
         "contact-escaped-backslash", "contact-quoted-param", "route-spacing", "record-route",
         "allow", "supported", "supported-compact", "contact-compact"],
)
def test_list_headers_split_on_commas_outside_quotes_and_brackets(field, expected):
    name = field.split(":", 1)[0]
    if name == "Via":
        data = request().replace(f"Via: {VIA1}".encode(), field.encode(), 1)
    else:
        data = request(field)
    msg = parse(data)
    assert msg.headers(name) == expected
    assert msg.header(name) == expected[0]
    assert msg.count(name) == 1


def test_list_header_values_across_several_fields_keep_order():
    msg = parse(request("Allow: INVITE, ACK", "Supported: timer", "Allow: BYE",
                        "allow: CANCEL, OPTIONS"))
    assert msg.headers("Allow") == ["INVITE", "ACK", "BYE", "CANCEL", "OPTIONS"]
    assert msg.count("Allow") == 3
    assert msg.header("allow") == "INVITE"


def test_via_list_across_fields():
    data = wire(
        "SIP/2.0 200 OK",
        "Via: SIP/2.0/UDP a.example.com;branch=z9hG4bKa, SIP/2.0/UDP b.example.com;branch=z9hG4bKb",
        "v: SIP/2.0/UDP c.example.com;branch=z9hG4bKc",
        f"To: {TO};tag=x",
        f"From: {FROM}",
        f"Call-ID: {CALL_ID}",
        "CSeq: 1 INVITE",
        "Content-Length: 0",
    )
    msg = parse(data)
    assert msg.headers("via") == [
        "SIP/2.0/UDP a.example.com;branch=z9hG4bKa",
        "SIP/2.0/UDP b.example.com;branch=z9hG4bKb",
        "SIP/2.0/UDP c.example.com;branch=z9hG4bKc",
    ]
    assert msg.header("v") == "SIP/2.0/UDP a.example.com;branch=z9hG4bKa"
    assert msg.count("via") == 2
    assert [v.branch for v in msg.via] == ["z9hG4bKa", "z9hG4bKb", "z9hG4bKc"]


@pytest.mark.parametrize(
    "field",
    [
        'WWW-Authenticate: Digest realm="atlanta.example.com", qop="auth,auth-int", '
        'nonce="84a4cc6f3082121f32b42a2187831a9e", algorithm=MD5',
        'Authorization: Digest username="alice", realm="atlanta.example.com", '
        'nonce="84a4cc6f3082121f32b42a2187831a9e", uri="sip:bob@biloxi.example.com", '
        'response="7587245234b3434cc3412213e5f113a5432"',
        'Proxy-Authenticate: Digest realm="atlanta.example.com", nonce="abc", stale=FALSE',
        "Date: Sat, 13 Nov 2010 23:29:00 GMT",
        "Subject: lunch, then coffee",
        "X-Custom: a, b, c",
    ],
    ids=["www-authenticate", "authorization", "proxy-authenticate", "date", "subject",
         "unknown-header"],
)
def test_non_list_headers_are_not_split(field):
    name, value = (part.strip() for part in field.split(":", 1))
    msg = parse(request(field))
    assert msg.headers(name) == [value]
    assert msg.header(name) == value


@pytest.mark.parametrize(
    ("name", "value"),
    [("From", FROM), ("To", TO), ("Call-ID", CALL_ID)],
    ids=["from", "to", "call-id"],
)
def test_from_to_call_id_give_one_value_per_field(name, value):
    msg = parse(request())
    assert msg.headers(name) == [value]


def test_from_with_quoted_comma_is_one_value():
    data = request().replace(FROM.encode(), b'"Doe, John" <sip:john@example.com>;tag=77', 1)
    msg = parse(data)
    assert msg.headers("from") == ['"Doe, John" <sip:john@example.com>;tag=77']
    assert msg.from_.display_name == "Doe, John"


# --- count() and header_items() --------------------------------------------------------------


def test_count_counts_fields_not_values():
    msg = parse(request("Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>",
                        "Route: <sip:p3.example.com;lr>"))
    assert msg.count("route") == 2
    assert len(msg.headers("route")) == 3
    assert msg.count("ROUTE") == 2
    assert msg.count("Max-Forwards") == 1


def test_header_items_keep_order_and_wire_names():
    data = wire(
        "OPTIONS sip:bob@biloxi.example.com SIP/2.0",
        f"v: {VIA1}",
        "max-forwards: 70",
        f"TO: {TO}",
        f"f: {FROM}",
        f"CALL-ID: {CALL_ID}",
        "CSeq:  1   OPTIONS",
        "X-Folded: a,",
        " b",
        "Allow: INVITE, ACK",
        "l: 0",
    )
    assert parse(data).header_items() == [
        ("v", VIA1),
        ("max-forwards", "70"),
        ("TO", TO),
        ("f", FROM),
        ("CALL-ID", CALL_ID),
        ("CSeq", "1   OPTIONS"),
        ("X-Folded", "a, b"),
        ("Allow", "INVITE, ACK"),
        ("l", "0"),
    ]


# --- surrogateescape: every byte survives ----------------------------------------------------


def test_non_utf8_header_byte_survives_round_trip():
    data = request().replace(b"Content-Length", b"Subject: caf\xe9 \xff\r\nContent-Length", 1)
    msg = parse(data)
    assert msg.header("subject") == "caf\udce9 \udcff"
    assert bytes(msg) == data


def test_utf8_header_value_is_decoded():
    data = request("Subject: Zoë calls ☎")
    assert parse(data).header("subject") == "Zoë calls ☎"


def test_surrogate_escaped_value_set_by_api_serialises_to_the_byte():
    msg = parse(request())
    msg.set_header("Subject", "\udcff\udcfe")
    assert b"Subject: \xff\xfe\r\n" in bytes(msg)


# --- body and Content-Length (RFC 3261 §18.3, §20.14) ----------------------------------------


def test_body_with_content_length():
    msg = parse(INVITE)
    assert msg.body == SDP
    assert msg.header("content-length") == str(len(SDP))


def test_datagram_octets_past_content_length_are_dropped():
    data = request(body=b"abcd") + b"TRAILING JUNK\r\n"
    msg = parse(data)
    assert msg.body == b"abcd"
    assert bytes(msg) == request(body=b"abcd")


def test_content_length_zero_drops_trailing_octets():
    msg = parse(request() + b"junk")
    assert msg.body == b""


def test_content_length_larger_than_data_is_an_error():
    data = request(body=b"abcd")[:-1]
    with pytest.raises(ParseError):
        parse(data)


def test_missing_content_length_means_body_to_the_end():
    data = wire(
        "MESSAGE sip:bob@biloxi.example.com SIP/2.0",
        f"Via: {VIA1}",
        "Max-Forwards: 70",
        f"To: {TO}",
        f"From: {FROM}",
        f"Call-ID: {CALL_ID}",
        "CSeq: 1 MESSAGE",
        "Content-Type: text/plain",
        body=b"hello\r\nworld\r\n",
    )
    msg = parse(data)
    assert msg.body == b"hello\r\nworld\r\n"
    assert b"\r\nContent-Length: 14\r\n" in bytes(msg)
    assert bytes(msg).endswith(b"\r\n\r\nhello\r\nworld\r\n")


def test_compact_content_length_is_honoured():
    data = request(body=b"abcdef").replace(b"Content-Length: 6", b"l: 3", 1)
    assert parse(data).body == b"abc"


@pytest.mark.parametrize(
    "value",
    ["abc", "-1", "1.5", "", "4 4", "0x10"],
    ids=["letters", "negative", "decimal", "empty", "two-numbers", "hex"],
)
def test_malformed_content_length_is_an_error(value):
    data = request(body=b"abcd").replace(b"Content-Length: 4", f"Content-Length: {value}".encode())
    with pytest.raises(ParseError):
        parse(data)


def test_setting_body_rewrites_content_length():
    msg = parse(INVITE)
    msg.body = b"v=0\r\n"
    out = bytes(msg)
    assert out.endswith(b"\r\n\r\nv=0\r\n")
    assert b"\r\nContent-Length: 5\r\n" in out
    assert parse(out).body == b"v=0\r\n"
    msg.body = b""
    assert b"\r\nContent-Length: 0\r\n" in bytes(msg)


def test_content_length_written_once_even_when_written_compact():
    msg = parse(request(body=b"xy").replace(b"Content-Length: 2", b"l: 2"))
    msg.body = b"xyz"
    out = bytes(msg)
    assert parse(out).body == b"xyz"
    assert parse(out).count("content-length") == 1


# --- mutation --------------------------------------------------------------------------------


def names(msg):
    return [name for name, _ in msg.header_items()]


def test_set_header_replaces_every_field_at_the_place_of_the_first():
    msg = parse(request("Subject: one", "X-A: 1", "s: two", "X-B: 2"))
    msg.set_header("Subject", "three")
    assert msg.headers("subject") == ["three"]
    assert msg.count("subject") == 1
    items = msg.header_items()
    i = [n.lower() for n, _ in items].index("subject")
    assert items[i + 1] == ("X-A", "1")
    assert "s" not in names(msg)
    assert parse(bytes(msg)) == msg


def test_set_header_appends_when_absent():
    msg = parse(request())
    before = msg.header_items()
    msg.set_header("Subject", "new")
    assert msg.header_items() == before + [("Subject", "new")]
    assert msg.header("subject") == "new"
    assert parse(bytes(msg)).header("subject") == "new"


def test_add_header_last_and_first():
    msg = parse(request())
    msg.add_header("Via", "SIP/2.0/UDP proxy.example.com;branch=z9hG4bKtop", first=True)
    msg.add_header("X-Last", "1")
    items = msg.header_items()
    assert items[0] == ("Via", "SIP/2.0/UDP proxy.example.com;branch=z9hG4bKtop")
    assert msg.top_via.host == "proxy.example.com"
    assert [v.branch for v in msg.via] == ["z9hG4bKtop", "z9hG4bK776asdhds"]
    assert msg.headers("x-last") == ["1"]
    reparsed = parse(bytes(msg))
    assert reparsed.header_items()[0] == ("Via", "SIP/2.0/UDP proxy.example.com;branch=z9hG4bKtop")
    assert reparsed.header("X-Last") == "1"
    assert reparsed == msg


def test_add_header_keeps_existing_fields():
    msg = parse(request("Subject: one"))
    msg.add_header("Subject", "two")
    assert msg.headers("subject") == ["one", "two"]
    assert msg.count("subject") == 2


def test_remove_header_returns_count():
    msg = parse(request("Subject: one", "s: two", "SUBJECT: three"))
    assert msg.remove_header("Subject") == 3
    assert msg.header("subject") is None
    assert msg.remove_header("subject") == 0
    assert b"ubject" not in bytes(msg)


def test_remove_header_by_compact_name():
    msg = parse(request())
    assert msg.remove_header("f") == 1
    assert msg.from_ is None
    assert msg.header("From") is None


def test_remove_first_pops_one_value_of_a_comma_joined_via():
    data = wire(
        "SIP/2.0 200 OK",
        "Via: SIP/2.0/UDP a.example.com;branch=z9hG4bKa, SIP/2.0/UDP b.example.com;branch=z9hG4bKb",
        "Via: SIP/2.0/UDP c.example.com;branch=z9hG4bKc",
        f"To: {TO};tag=x",
        f"From: {FROM}",
        f"Call-ID: {CALL_ID}",
        "CSeq: 1 INVITE",
        "Content-Length: 0",
    )
    msg = parse(data)
    assert msg.remove_first("via") is True
    assert msg.headers("via") == ["SIP/2.0/UDP b.example.com;branch=z9hG4bKb",
                                  "SIP/2.0/UDP c.example.com;branch=z9hG4bKc"]
    assert msg.count("via") == 2
    assert msg.top_via.branch == "z9hG4bKb"
    out = bytes(msg)
    assert b"z9hG4bKa" not in out
    assert parse(out).headers("via") == msg.headers("via")

    assert msg.remove_first("v") is True
    assert msg.headers("via") == ["SIP/2.0/UDP c.example.com;branch=z9hG4bKc"]
    assert msg.count("via") == 1
    assert msg.remove_first("Via") is True
    assert msg.headers("via") == []
    assert msg.count("via") == 0
    assert msg.top_via is None
    assert msg.remove_first("via") is False
    assert b"Via" not in bytes(msg)


def test_remove_first_of_a_single_value_field_removes_the_field():
    msg = parse(request("Route: <sip:p1.example.com;lr>", "Route: <sip:p2.example.com;lr>"))
    assert msg.remove_first("route") is True
    assert msg.headers("route") == ["<sip:p2.example.com;lr>"]
    assert msg.count("route") == 1


def test_mutations_show_in_typed_accessors():
    msg = parse(request())
    msg.set_header("Call-ID", "new-call-id")
    msg.set_header("CSeq", "2 OPTIONS")
    msg.set_header("To", "<sip:carol@example.com>;tag=zz")
    msg.set_header("Max-Forwards", "69")
    assert msg.call_id == "new-call-id"
    assert (msg.cseq.number, msg.cseq.method) == (2, "OPTIONS")
    assert msg.to_tag == "zz"
    assert msg.to.uri.user == "carol"
    assert msg.max_forwards == 69


def test_request_uri_assignment_rewrites_start_line():
    msg = parse(INVITE)
    msg.uri = "sip:+14155550123@b.example.com;user=phone"
    assert bytes(msg).startswith(b"INVITE sip:+14155550123@b.example.com;user=phone SIP/2.0\r\n")
    assert msg.parsed_uri.user == "+14155550123"
    assert msg.parsed_uri.params == {"user": "phone"}


def set_uri(bad):
    parse(INVITE).uri = "sip:bob@example.com" + bad


def set_method(bad):
    parse(INVITE).method = "INVITE" + bad


def set_reason(bad):
    parse(RINGING).reason = "Ringing" + bad


START_LINE_WRITERS = {
    "uri-setter": set_uri,
    "method-setter": set_method,
    "reason-setter": set_reason,
    "request-method": lambda bad: Request("INVITE" + bad, "sip:bob@example.com"),
    "request-uri": lambda bad: Request("INVITE", "sip:bob@example.com" + bad),
    "response-reason": lambda bad: Response(180, "Ringing" + bad),
}


@pytest.mark.parametrize("bad", ["\r\nX-Injected: 1", "\r", "\x00"], ids=["crlf", "cr", "nul"])
@pytest.mark.parametrize("writer", list(START_LINE_WRITERS), ids=list(START_LINE_WRITERS))
def test_start_line_writers_reject_line_breaks(writer, bad):
    # As set_header does for values: a CR, LF or NUL would end the start line early and let a
    # value chosen by the other leg inject header fields (reason phrases are copied across).
    with pytest.raises(ValueError):
        START_LINE_WRITERS[writer](bad)


@pytest.mark.parametrize(
    ("method", "uri"),
    [("INV ITE", "sip:bob@example.com"), ("", "sip:bob@example.com"),
     ("INVITE", "sip:bob smith@example.com"), ("INVITE", "")],
    ids=["method-space", "method-empty", "uri-space", "uri-empty"],
)
def test_request_constructor_rejects_what_cannot_be_a_request_line(method, uri):
    # RFC 3261 §7.1: Method SP Request-URI SP SIP-Version, single spaces, no empty parts.
    with pytest.raises(ValueError):
        Request(method, uri)


# --- copy() and __eq__ -----------------------------------------------------------------------


def test_copy_is_equal_and_independent():
    original = parse(INVITE)
    clone = original.copy()
    assert type(clone) is Request
    assert clone == original
    clone.set_header("Call-ID", "other")
    clone.add_header("Via", "SIP/2.0/UDP p.example.com;branch=z9hG4bKp", first=True)
    clone.remove_header("Contact")
    clone.body = b""
    clone.uri = "sip:other@example.com"
    assert clone != original
    assert original.call_id == CALL_ID
    assert len(original.via) == 1
    assert original.count("contact") == 1
    assert original.body == SDP
    assert original.uri == "sip:+14155550199@biloxi.example.com"
    assert bytes(original) == INVITE


def test_original_changes_do_not_reach_the_copy():
    original = parse(RINGING)
    clone = original.copy()
    original.remove_first("via")
    original.set_header("To", "<sip:x@example.com>")
    assert type(clone) is Response
    assert bytes(clone) == RINGING


def test_eq_ignores_case_compact_forms_and_folding():
    a = parse(request("Subject: hello world"))
    b = parse(
        request("s: hello", "  world")
        .replace(b"Call-ID:", b"i:")
        .replace(b"Max-Forwards:", b"MAX-FORWARDS:")
    )
    assert a == b


@pytest.mark.parametrize(
    "other",
    [
        request("Subject: b", "Allow: INVITE"),
        request("Allow: INVITE", "Subject: a"),
        request("Subject: a", "Allow: INVITE", body=b"x"),
        request("Subject: a", "Allow: INVITE", method="INFO"),
        request("Subject: a", "Allow: INVITE").replace(b"sip:bob@", b"sip:bobby@", 1),
    ],
    ids=["value", "order", "body", "method", "uri"],
)
def test_eq_detects_differences(other):
    assert parse(request("Subject: a", "Allow: INVITE")) != parse(other)


def test_eq_with_other_types():
    msg = parse(INVITE)
    assert (msg == INVITE) is False
    assert msg != "INVITE"
    assert parse(RINGING) != msg


# --- typed accessors -------------------------------------------------------------------------


def test_accessors_of_a_request():
    msg = parse(INVITE)
    assert msg.call_id == CALL_ID
    assert isinstance(msg.cseq, CSeq)
    assert (msg.cseq.number, msg.cseq.method) == (314159, "INVITE")
    assert len(msg.via) == 1
    assert msg.top_via.host == "pc33.atlanta.example.com"
    assert msg.top_via.branch == "z9hG4bK776asdhds"
    assert msg.from_.display_name == "Alice"
    assert msg.from_.uri.user == "+14155550100"
    assert msg.from_tag == "1928301774"
    assert msg.to.uri.user == "+14155550199"
    assert msg.to_tag is None
    assert [str(c.uri) for c in msg.contact] == ["sip:alice@pc33.atlanta.example.com"]
    assert msg.max_forwards == 70
    assert msg.content_type == "application/sdp"
    assert msg.parsed_uri.scheme == "sip"
    assert msg.parsed_uri.user == "+14155550199"
    assert msg.parsed_uri.host == "biloxi.example.com"


def test_accessors_of_a_response():
    msg = parse(RINGING)
    assert msg.to_tag == "a6c85cf"
    assert msg.from_tag == "1928301774"
    assert msg.top_via.received == "192.0.2.101"
    assert msg.max_forwards is None
    assert msg.content_type is None
    assert msg.contact[0].uri.host == "192.0.2.4"


def test_cseq_with_extra_whitespace():
    msg = parse(request().replace(b"CSeq: 1 OPTIONS", b"CSeq:   42  \t OPTIONS"))
    assert (msg.cseq.number, msg.cseq.method) == (42, "OPTIONS")


def test_contact_star_gives_empty_list():
    data = wire(
        "REGISTER sip:registrar.biloxi.example.com SIP/2.0",
        f"Via: {VIA1}",
        "Max-Forwards: 70",
        f"To: {TO}",
        f"From: {FROM}",
        f"Call-ID: {CALL_ID}",
        "CSeq: 2 REGISTER",
        "Contact: *",
        "Expires: 0",
        "Content-Length: 0",
    )
    msg = parse(data)
    assert msg.contact == []
    assert msg.header("contact") == "*"


def test_several_contacts_with_params():
    msg = parse(request('Contact: "Doe, John" <sip:john@192.0.2.1>;q=0.7;expires=3600, '
                        "<sip:john@198.51.100.2:5062;transport=tcp>;q=0.1"))
    contacts = msg.contact
    assert [c.display_name for c in contacts] == ["Doe, John", None]
    assert contacts[0].params == {"q": "0.7", "expires": "3600"}
    assert contacts[1].uri.port == 5062
    assert contacts[1].uri.params == {"transport": "tcp"}


def test_malformed_contact_raises_from_the_accessor():
    # Contact is not checked by parse: a bad value only raises when it is read.
    msg = parse(request('Contact: "unterminated <sip:a@example.com>'))
    with pytest.raises(ParseError):
        msg.contact


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("application/sdp", "application/sdp"),
        ("Application/SDP", "application/sdp"),
        ("application/sdp; charset=utf-8", "application/sdp"),
        ('multipart/mixed;boundary="unique-boundary-1"', "multipart/mixed"),
        ("  text/plain ;charset=ISO-8859-4", "text/plain"),
    ],
    ids=["plain", "upper", "param", "multipart", "spacing"],
)
def test_content_type_is_lowercased_without_params(value, expected):
    msg = parse(request(f"Content-Type: {value}", body=b"x"))
    assert msg.content_type == expected


def test_content_type_compact_form():
    msg = parse(request("c: application/sdp", body=b"x"))
    assert msg.content_type == "application/sdp"


def test_accessors_of_an_empty_built_message():
    msg = Request("OPTIONS", "sip:bob@example.com")
    assert msg.call_id is None
    assert msg.cseq is None
    assert msg.via == []
    assert msg.top_via is None
    assert msg.from_ is None
    assert msg.to is None
    assert msg.from_tag is None
    assert msg.to_tag is None
    assert msg.contact == []
    assert msg.max_forwards is None
    assert msg.content_type is None
    assert msg.header("via") is None


# --- constructors ----------------------------------------------------------------------------


def test_request_constructor():
    msg = Request(
        "INVITE",
        "sip:bob@biloxi.example.com",
        [
            ("Via", VIA1),
            ("Max-Forwards", "70"),
            ("To", TO),
            ("From", FROM),
            ("Call-ID", CALL_ID),
            ("CSeq", "1 INVITE"),
            ("Content-Type", "application/sdp"),
        ],
        SDP,
    )
    assert msg.is_request
    assert (msg.method, msg.uri, msg.version) == ("INVITE", "sip:bob@biloxi.example.com", "SIP/2.0")
    assert msg.body == SDP
    assert msg.call_id == CALL_ID
    assert msg.cseq.number == 1
    assert msg.from_tag == "1928301774"
    assert msg.header_items()[:2] == [("Via", VIA1), ("Max-Forwards", "70")]

    out = bytes(msg)
    assert out.startswith(b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\nVia: " + VIA1.encode())
    assert out.endswith(b"\r\n\r\n" + SDP)
    assert f"\r\nContent-Length: {len(SDP)}\r\n".encode() in out
    back = parse(out)
    assert (back.method, back.uri) == ("INVITE", "sip:bob@biloxi.example.com")
    assert back.body == SDP
    assert back.headers("via") == [VIA1]
    assert back.header("From") == FROM
    assert back.count("content-length") == 1


def test_request_constructor_defaults_and_version():
    msg = Request("OPTIONS", "sip:bob@example.com", version="SIP/3.0")
    assert msg.body == b""
    assert msg.version == "SIP/3.0"
    out = bytes(msg)
    assert out.startswith(b"OPTIONS sip:bob@example.com SIP/3.0\r\n")
    assert b"\r\nContent-Length: 0\r\n" in out
    assert out.endswith(b"\r\n\r\n")


def test_response_constructor():
    msg = Response(
        486,
        "Busy Here",
        [("Via", VIA1), ("To", TO + ";tag=8321234356"), ("From", FROM),
         ("Call-ID", CALL_ID), ("CSeq", "314159 INVITE")],
    )
    assert msg.is_request is False
    assert (msg.status, msg.reason) == (486, "Busy Here")
    assert msg.to_tag == "8321234356"
    out = bytes(msg)
    assert out.startswith(b"SIP/2.0 486 Busy Here\r\nVia: ")
    assert b"\r\nContent-Length: 0\r\n" in out
    assert out.endswith(b"\r\n\r\n")
    back = parse(out)
    assert (back.status, back.reason) == (486, "Busy Here")
    assert back.header("to") == TO + ";tag=8321234356"


def test_response_constructor_empty_reason():
    out = bytes(Response(200, ""))
    assert out.startswith(b"SIP/2.0 200 \r\n")


def test_built_message_equals_its_parse():
    msg = Response(200, "OK", [("Via", VIA1), ("Call-ID", CALL_ID), ("CSeq", "1 BYE"),
                               ("Content-Length", "0")])
    assert parse(bytes(msg)) == msg


# --- salvage on ParseError (RFC 3261 §8.2.6.2) -----------------------------------------------


def test_bad_max_forwards_salvages_what_a_400_needs():
    data = request().replace(b"Max-Forwards: 70", b"Max-Forwards: seventy", 1)
    with pytest.raises(ParseError) as info:
        parse(data)
    e = info.value
    assert e.status_code == 400
    assert e.method == "OPTIONS"
    assert e.via == (VIA1,)
    assert e.call_id == CALL_ID
    assert e.cseq == "1 OPTIONS"
    assert e.from_ == FROM
    assert e.to == TO
    assert e.can_respond is True
    assert isinstance(e, ValueError)
    # The reason goes to logs and reason phrases: never the raw input (errors.py).
    assert e.reason
    assert "seventy" not in e.reason
    assert "+14155550100" not in e.reason


def test_salvage_with_compact_forms_and_two_vias():
    data = wire(
        "INVITE sip:bob@biloxi.example.com SIP/2.0",
        "v: SIP/2.0/UDP p1.example.com;branch=z9hG4bK1",
        "v: SIP/2.0/UDP pc33.example.com;branch=z9hG4bK2",
        "Max-Forwards: -1",
        f"t: {TO}",
        f"f: {FROM}",
        f"i: {CALL_ID}",
        "CSeq: 7 INVITE",
        "l: 0",
    )
    with pytest.raises(ParseError) as info:
        parse(data)
    e = info.value
    assert e.method == "INVITE"
    assert e.via == ("SIP/2.0/UDP p1.example.com;branch=z9hG4bK1",
                     "SIP/2.0/UDP pc33.example.com;branch=z9hG4bK2")
    assert (e.call_id, e.cseq, e.from_, e.to) == (CALL_ID, "7 INVITE", FROM, TO)
    assert e.can_respond is True


def test_broken_ack_cannot_be_answered():
    data = request(method="ACK").replace(b"Max-Forwards: 70", b"Max-Forwards: x", 1)
    with pytest.raises(ParseError) as info:
        parse(data)
    assert info.value.method == "ACK"
    assert info.value.can_respond is False


def test_broken_request_without_call_id_cannot_be_answered():
    data = request().replace(b"Max-Forwards: 70", b"Max-Forwards: x", 1)
    data = data.replace(f"Call-ID: {CALL_ID}\r\n".encode(), b"", 1)
    with pytest.raises(ParseError) as info:
        parse(data)
    assert info.value.method == "OPTIONS"
    assert info.value.call_id is None
    assert info.value.can_respond is False


def test_broken_response_has_no_method():
    data = RINGING.replace(b"CSeq: 314159 INVITE", b"CSeq: INVITE 314159", 1)
    with pytest.raises(ParseError) as info:
        parse(data)
    assert info.value.method is None
    assert info.value.can_respond is False


@pytest.mark.parametrize(
    "data",
    [b"", b"\r\n\r\n", b"hello world", b"\x00\x01\x02\xff", b"SIP/2.0\r\n\r\n",
     b"SIP/2.0 OK 200\r\n\r\n"],
    ids=["empty", "crlfs", "words", "binary", "version-only", "response-swapped"],
)
def test_garbage_has_no_method(data):
    with pytest.raises(ParseError) as info:
        parse(data)
    assert info.value.method is None
    assert info.value.can_respond is False


def test_parse_error_is_exported():
    assert sipmask.ParseError is ParseError


# --- copy_headers: the allow-list copy to the other leg -----------------------------------------

ALLOW_SOURCE = (
    b"INVITE sip:+918045671234@sipmask.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 203.0.113.10;branch=z9hG4bK1\r\n"
    b"From: <sip:+919876543210@carrier.example.net>;tag=1\r\n"
    b"To: <sip:+918045671234@sipmask.example.com>\r\n"
    b"Call-ID: c1@203.0.113.10\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"k: timer,  100rel\r\n"
    b"P-Asserted-Identity: <sip:+919876543210@carrier.example.net>\r\n"
    b"ALLOW: INVITE, ACK, BYE\r\n"
    b"X-Account:\r\n 12\r\n"
    b"Session-Expires: 1800;refresher=uac\r\n"
    b"Supported: replaces\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def test_copy_headers_keeps_only_allowed_fields_in_source_order_and_wire_bytes():
    source = sipmask.parse(ALLOW_SOURCE)
    leg = sipmask.Request("INVITE", "sip:+919812345678@trunk.example.com", [("CSeq", "1 INVITE")])
    copied = leg.copy_headers(source, ["Supported", "allow", "SESSION-EXPIRES", "Require"])
    assert copied == 4
    wire = bytes(leg)
    assert wire == (
        b"INVITE sip:+919812345678@trunk.example.com SIP/2.0\r\n"
        b"CSeq: 1 INVITE\r\n"
        b"k: timer,  100rel\r\n"
        b"ALLOW: INVITE, ACK, BYE\r\n"
        b"Session-Expires: 1800;refresher=uac\r\n"
        b"Supported: replaces\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    assert b"9876543210" not in wire
    assert leg.headers("supported") == ["timer", "100rel", "replaces"]


def test_copy_headers_unfolds_a_folded_field_and_matches_unknown_names_in_any_case():
    source = sipmask.parse(ALLOW_SOURCE)
    leg = sipmask.Response(200, "OK")
    assert leg.copy_headers(source, ["x-account"]) == 1
    assert b"X-Account: 12\r\n" in bytes(leg)


def test_copy_headers_with_no_match_copies_nothing():
    source = sipmask.parse(ALLOW_SOURCE)
    leg = sipmask.Response(200, "OK")
    assert leg.copy_headers(source, []) == 0
    assert leg.copy_headers(source, ["Date"]) == 0
    assert leg.header_items() == []
