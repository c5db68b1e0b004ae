"""Unit tests of the SDP functions: `parse_sdp` (RFC 4566), `rebuild_sdp` and `SdpOrigin`
(the allow-list rebuild and RFC 3264 §8 o= versioning), `split_multipart` (RFC 2046 §5.1)
and `find_sdp`."""

from __future__ import annotations

import pytest

from sipmask import (
    DEFAULT_SDP_ATTRIBUTES,
    BodyPart,
    ParseError,
    SdpOrigin,
    find_sdp,
    parse_sdp,
    rebuild_sdp,
    split_multipart,
)


def sdp(*lines: str) -> bytes:
    return "".join(line + "\r\n" for line in lines).encode()


CRYPTO = "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:32"

# A carrier offer: every line a masking B2BUA must drop carries the caller's number.
OFFER = sdp(
    "v=0",
    "o=+919876543210 2890844526 2890844527 IN IP4 198.51.100.1",
    "s=Call from +919876543210",
    "i=Private line of +919876543210",
    "u=http://example.com/+919876543210",
    "e=+919876543210@example.com",
    "p=+91 98765 43210",
    "c=IN IP4 198.51.100.1",
    "b=AS:128",
    "t=0 0",
    "r=604800 3600 0 90000",
    "z=2882844526 -1h 2898848070 0",
    "k=clear:+919876543210",
    "a=tool:carrier-sbc 1.0",
    "a=x-caller:+919876543210",
    "a=sendrecv",
    "m=audio 49170 RTP/AVP 0 8 101",
    "i=audio of +919876543210",
    "c=IN IP4 198.51.100.2",
    "b=AS:64",
    "k=prompt",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-15",
    "a=ptime:20",
    "a=sendrecv",
    f"a=crypto:{CRYPTO}",
    "a=x-number:+919876543210",
    "m=video 51372 RTP/AVP 99",
    "a=rtpmap:99 H264/90000",
    "a=fmtp:99 profile-level-id=42e01f;packetization-mode=1",
    "a=recvonly",
)

# What the offer becomes with this allow-list (everything else of the offer is dropped).
ALLOW = frozenset({"rtpmap", "fmtp", "ptime", "sendrecv", "sendonly", "recvonly", "inactive"})


def test_parse_sdp_session_level():
    desc = parse_sdp(OFFER)
    assert desc.origin == "+919876543210 2890844526 2890844527 IN IP4 198.51.100.1"
    assert desc.session_name == "Call from +919876543210"
    assert desc.connection == "IN IP4 198.51.100.1"
    assert desc.bandwidths == ["AS:128"]
    assert desc.times == ["0 0"]
    assert desc.attributes == [
        ("tool", "carrier-sbc 1.0"),
        ("x-caller", "+919876543210"),
        ("sendrecv", None),
    ]
    assert len(desc.media) == 2


def test_parse_sdp_media_level():
    audio, video = parse_sdp(OFFER).media
    assert audio.media == "audio"
    assert audio.port == 49170
    assert audio.port_count is None
    assert audio.proto == "RTP/AVP"
    assert audio.formats == ["0", "8", "101"]
    assert audio.connection == "IN IP4 198.51.100.2"
    assert audio.bandwidths == ["AS:64"]
    assert audio.attributes == [
        ("rtpmap", "0 PCMU/8000"),
        ("rtpmap", "8 PCMA/8000"),
        ("rtpmap", "101 telephone-event/8000"),
        ("fmtp", "101 0-15"),
        ("ptime", "20"),
        ("sendrecv", None),
        ("crypto", CRYPTO),
        ("x-number", "+919876543210"),
    ]
    assert video.media == "video"
    assert video.port == 51372
    assert video.formats == ["99"]
    assert video.connection is None
    assert video.bandwidths == []
    assert video.attributes == [
        ("rtpmap", "99 H264/90000"),
        ("fmtp", "99 profile-level-id=42e01f;packetization-mode=1"),
        ("recvonly", None),
    ]


def test_parse_sdp_port_count_and_no_media():
    desc = parse_sdp(sdp("v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "t=0 0",
                         "m=audio 49170/2 RTP/AVP 0", "c=IN IP4 224.2.1.1/127/2"))
    assert desc.connection is None
    (m,) = desc.media
    assert (m.port, m.port_count) == (49170, 2)
    assert m.connection == "IN IP4 224.2.1.1/127/2"

    bare = parse_sdp(sdp("v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "c=IN IP4 192.0.2.1",
                         "t=0 0"))
    assert bare.media == []


def test_parse_sdp_accepts_lf_line_ends():
    # RFC 4566 §5: parsers should be tolerant and also accept records ended by a lone LF.
    assert parse_sdp(OFFER.replace(b"\r\n", b"\n")).media[0].formats == ["0", "8", "101"]


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"hello world",
        b"\r\n\r\n",
        sdp("o=- 1 1 IN IP4 192.0.2.1", "s=-", "t=0 0"),
        sdp("s=-", "v=0", "o=- 1 1 IN IP4 192.0.2.1", "t=0 0"),
        sdp("v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "t=0 0", "m=audio abc RTP/AVP 0"),
        sdp("v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "t=0 0", "m=audio 99999 RTP/AVP 0"),
        sdp("v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "t=0 0", "m=audio"),
        sdp("v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "t=0 0", "this is not a line"),
        sdp("v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "t=0 0", "=novalue"),
    ],
    ids=["empty", "words", "blank-lines", "no-v", "v-not-first", "port-letters", "port-big",
         "m-without-fields", "no-type", "empty-type"],
)
def test_garbage_sdp_raises_parse_error(body):
    with pytest.raises(ParseError):
        parse_sdp(body)


# --- rebuild_sdp ------------------------------------------------------------------------------


def test_rebuild_sdp_allow_list():
    out = rebuild_sdp(OFFER, origin_address="203.0.113.10", session_id=42, version=7,
                      attributes=ALLOW)
    assert out == sdp(
        "v=0",
        "o=- 42 7 IN IP4 203.0.113.10",
        "s=-",
        "c=IN IP4 198.51.100.1",
        "b=AS:120",  # rounded down to two significant digits (issue 11)
        "t=0 0",
        "a=sendrecv",
        "m=audio 49170 RTP/AVP 0 8 101",
        "c=IN IP4 198.51.100.2",
        "b=AS:64",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-15",
        "a=ptime:20",
        "a=sendrecv",
        "m=video 51372 RTP/AVP 99",
        "a=rtpmap:99 H264/90000",
        "a=fmtp:99 profile-level-id=42e01f;packetization-mode=1",
        "a=recvonly",
    )
    assert b"+919876543210" not in out
    assert b"9876543210" not in out


@pytest.mark.parametrize("kind", ["i", "u", "e", "p", "k", "z", "r"])
def test_rebuild_sdp_drops_line_kind(kind):
    out = rebuild_sdp(OFFER, origin_address="203.0.113.10", session_id=1, version=1)
    assert f"\r\n{kind}=".encode() not in out


def test_rebuild_sdp_with_default_attributes():
    out = rebuild_sdp(OFFER, origin_address="203.0.113.10", session_id=1, version=1)
    assert b"a=x-caller" not in out
    assert b"a=x-number" not in out
    assert b"a=tool" not in out
    for line in (b"a=rtpmap:0 PCMU/8000", b"a=fmtp:101 0-15", b"a=ptime:20", b"a=recvonly"):
        assert line + b"\r\n" in out
    assert b"9876543210" not in out


def test_default_sdp_attributes_hold_what_calls_need():
    assert isinstance(DEFAULT_SDP_ATTRIBUTES, frozenset)
    assert {"rtpmap", "fmtp", "ptime", "sendrecv", "sendonly", "recvonly",
            "inactive"} <= DEFAULT_SDP_ATTRIBUTES
    assert "tool" not in DEFAULT_SDP_ATTRIBUTES
    assert not any(name.startswith("x-") for name in DEFAULT_SDP_ATTRIBUTES)


def test_rebuild_sdp_keeps_allowed_attributes_in_order():
    body = sdp("v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "c=IN IP4 192.0.2.1", "t=0 0",
               "m=audio 4000 RTP/AVP 8 0", "a=ptime:20", "a=x-junk", "a=rtpmap:8 PCMA/8000",
               "a=sendonly", "a=rtpmap:0 PCMU/8000")
    out = rebuild_sdp(body, origin_address="192.0.2.99", session_id=5, version=5,
                      attributes=frozenset({"rtpmap", "ptime", "sendonly"}))
    assert out.split(b"\r\n")[-6:] == [
        b"m=audio 4000 RTP/AVP 8 0",
        b"a=ptime:20",
        b"a=rtpmap:8 PCMA/8000",
        b"a=sendonly",
        b"a=rtpmap:0 PCMU/8000",
        b"",
    ]


def test_rebuild_sdp_empty_allow_list_keeps_only_structure():
    out = rebuild_sdp(OFFER, origin_address="203.0.113.10", session_id=1, version=1,
                      attributes=frozenset())
    assert b"\r\na=" not in out
    assert [line[:2] for line in out.split(b"\r\n") if line] == [
        b"v=", b"o=", b"s=", b"c=", b"b=", b"t=", b"m=", b"c=", b"b=", b"m=",
    ]


def test_rebuild_sdp_connection_address_and_media_ports():
    out = rebuild_sdp(OFFER, origin_address="203.0.113.10", session_id=42, version=7,
                      connection_address="203.0.113.20", media_ports=[40000, 40002],
                      attributes=ALLOW)
    lines = out.split(b"\r\n")
    assert lines.count(b"c=IN IP4 203.0.113.20") == 2
    assert b"198.51.100" not in out
    assert b"m=audio 40000 RTP/AVP 0 8 101" in lines
    assert b"m=video 40002 RTP/AVP 99" in lines
    assert b"49170" not in out
    assert b"51372" not in out


def test_rebuild_sdp_keeps_rejected_streams_at_port_zero():
    # RFC 3264 §6 and §8.2: port 0 marks a rejected or removed stream; anchoring must not
    # bring it back to life.
    body = sdp("v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "c=IN IP4 192.0.2.1", "t=0 0",
               "m=audio 4000 RTP/AVP 0", "m=video 0 RTP/AVP 99", "a=rtpmap:99 H264/90000")
    out = rebuild_sdp(body, origin_address="203.0.113.10", session_id=1, version=1,
                      connection_address="203.0.113.20", media_ports=[40000, 40002])
    assert b"m=audio 40000 RTP/AVP 0\r\n" in out
    assert b"m=video 0 RTP/AVP 99\r\n" in out


def test_rebuild_sdp_with_too_few_media_ports_is_a_value_error():
    # One port per m= line; a peer that adds a stream must not crash the caller with IndexError.
    with pytest.raises(ValueError):
        rebuild_sdp(OFFER, origin_address="203.0.113.10", session_id=1, version=1,
                    media_ports=[40000])


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("t=0 0", "t=919876543210 0"),
        ("t=0 0", "t=0 919876543210"),
        ("m=audio 49170 RTP/AVP 0 8 101", "m=audio 49170 RTP/AVP 0 8 101 919876543210"),
        ("m=audio 49170 RTP/AVP 0 8 101", "m=audio 49170 RTP/919876543210 0 8 101"),
        ("b=AS:128", "b=AS:919876543210"),
        ("c=IN IP4 198.51.100.1", "c=IN IP4 198.51.100.1/919876543210"),
    ],
    ids=["t-start", "t-stop", "m-format", "m-proto", "b-value", "c-ttl"],
)
def test_rebuild_sdp_structural_lines_do_not_carry_a_number(old, new):
    # DESIGN.md: a number hidden in SDP lines never crosses. The structural lines that survive
    # must be rebuilt or refused (RFC 3264 §5: t= SHOULD be "0 0"; RTP/AVP formats are
    # payload types 0-127), not copied.
    body = OFFER.replace(old.encode(), new.encode(), 1)
    assert body != OFFER
    try:
        out = rebuild_sdp(body, origin_address="203.0.113.10", session_id=1, version=1,
                          connection_address="203.0.113.20", attributes=ALLOW)
    except ParseError:
        return
    assert b"9876543210" not in out


def test_rebuild_sdp_ipv6_connection_address_changes_addrtype():
    out = rebuild_sdp(OFFER, origin_address="203.0.113.10", session_id=1, version=1,
                      connection_address="2001:db8::20", attributes=ALLOW)
    assert out.split(b"\r\n").count(b"c=IN IP6 2001:db8::20") == 2
    assert b"c=IN IP4" not in out


def test_rebuild_sdp_ipv6_origin():
    out = rebuild_sdp(OFFER, origin_address="2001:db8::10", session_id=42, version=7)
    assert out.split(b"\r\n")[1] == b"o=- 42 7 IN IP6 2001:db8::10"


def test_rebuild_sdp_writes_crlf_from_lf_input():
    out = rebuild_sdp(OFFER.replace(b"\r\n", b"\n"), origin_address="203.0.113.10",
                      session_id=42, version=7, attributes=ALLOW)
    assert out == rebuild_sdp(OFFER, origin_address="203.0.113.10", session_id=42, version=7,
                              attributes=ALLOW)
    assert out.endswith(b"\r\n")
    assert b"\n" not in out.replace(b"\r\n", b"")
    assert b"\r" not in out.replace(b"\r\n", b"")


def test_rebuild_sdp_output_parses():
    out = rebuild_sdp(OFFER, origin_address="203.0.113.10", session_id=42, version=7)
    desc = parse_sdp(out)
    assert desc.origin == "- 42 7 IN IP4 203.0.113.10"
    assert desc.session_name == "-"
    assert [m.media for m in desc.media] == ["audio", "video"]


def test_rebuild_sdp_rejects_garbage():
    with pytest.raises(ParseError):
        rebuild_sdp(b"not sdp at all", origin_address="203.0.113.10", session_id=1, version=1)


# --- SdpOrigin (RFC 3264 §8) -----------------------------------------------------------------


def origin_line(body: bytes) -> bytes:
    return body.split(b"\r\n")[1]


def test_sdp_origin_bumps_version_only_on_change():
    origin = SdpOrigin("203.0.113.10", session_id=42)
    assert origin.session_id == 42

    first = origin.rebuild(OFFER, attributes=ALLOW)
    v1 = origin.version
    assert origin_line(first) == f"o=- 42 {v1} IN IP4 203.0.113.10".encode()

    again = origin.rebuild(OFFER, attributes=ALLOW)
    assert origin.version == v1
    assert again == first

    changed = origin.rebuild(OFFER.replace(b"a=ptime:20", b"a=ptime:30"), attributes=ALLOW)
    assert origin.version == v1 + 1
    assert origin_line(changed) == f"o=- 42 {v1 + 1} IN IP4 203.0.113.10".encode()
    assert b"a=ptime:30\r\n" in changed
    assert origin.session_id == 42

    back = origin.rebuild(OFFER, attributes=ALLOW)
    assert origin.version == v1 + 2
    assert origin_line(back) == f"o=- 42 {v1 + 2} IN IP4 203.0.113.10".encode()


def test_sdp_origin_ignores_changes_that_do_not_cross():
    # The peer bumps its own o= version and edits lines the allow-list drops: what this leg
    # sends is the same description, so its version stays (RFC 3264 §8: same version, same SDP).
    origin = SdpOrigin("203.0.113.10", session_id=42)
    first = origin.rebuild(OFFER, attributes=ALLOW)
    v1 = origin.version
    edited = (OFFER.replace(b"2890844527 IN IP4", b"2890844528 IN IP4")
              .replace(b"i=Private line", b"i=Another line")
              .replace(b"a=x-caller:+919876543210", b"a=x-caller:+910000000000"))
    assert origin.rebuild(edited, attributes=ALLOW) == first
    assert origin.version == v1


def test_sdp_origin_bumps_on_anchoring_change():
    origin = SdpOrigin("203.0.113.10", session_id=7)
    origin.rebuild(OFFER, connection_address="203.0.113.20", media_ports=[40000, 40002])
    v1 = origin.version
    origin.rebuild(OFFER, connection_address="203.0.113.20", media_ports=[40000, 40002])
    assert origin.version == v1
    out = origin.rebuild(OFFER, connection_address="203.0.113.20", media_ports=[40004, 40006])
    assert origin.version == v1 + 1
    assert b"m=audio 40004 " in out
    out = origin.rebuild(OFFER, connection_address="203.0.113.21", media_ports=[40004, 40006])
    assert origin.version == v1 + 2
    assert b"c=IN IP4 203.0.113.21\r\n" in out


def test_sdp_origin_ipv6_and_random_session_id():
    origin = SdpOrigin("2001:db8::10")
    assert isinstance(origin.session_id, int)
    assert origin.session_id >= 0
    out = origin.rebuild(OFFER)
    assert origin_line(out) == (
        f"o=- {origin.session_id} {origin.version} IN IP6 2001:db8::10".encode()
    )


def test_sdp_origin_garbage_raises_and_keeps_state():
    origin = SdpOrigin("203.0.113.10", session_id=42)
    first = origin.rebuild(OFFER, attributes=ALLOW)
    v1 = origin.version
    with pytest.raises(ParseError):
        origin.rebuild(b"garbage", attributes=ALLOW)
    assert origin.version == v1
    assert origin.rebuild(OFFER, attributes=ALLOW) == first
    assert origin.version == v1


# --- split_multipart (RFC 2046 §5.1) ---------------------------------------------------------


ISUP = b"\x01\x00\x49\x00\x00\x03\x02\x00\x07\x04\x10\x00\x33\x63\x21\x43\x00\x00\x03\r\n\x00\xff"
SIMPLE_SDP = sdp("v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "c=IN IP4 192.0.2.1", "t=0 0",
                 "m=audio 4000 RTP/AVP 0")


def multipart(boundary: bytes, *parts: tuple[list[bytes], bytes], preamble: bytes = b"",
              epilogue: bytes = b"") -> bytes:
    # The CRLF before each delimiter belongs to the delimiter (RFC 2046 §5.1.1).
    out = preamble
    for headers, body in parts:
        out += b"--" + boundary + b"\r\n" + b"".join(h + b"\r\n" for h in headers)
        out += b"\r\n" + body + b"\r\n"
    return out + b"--" + boundary + b"--" + epilogue


SIP_I_BODY = multipart(
    b"unique-boundary-1",
    ([b"Content-Type: application/sdp"], SIMPLE_SDP),
    ([b"Content-Type: application/ISUP;version=itu-t92+;base=itu-t92+",
      b"Content-Disposition: signal;handling=required"], ISUP),
)


def test_split_multipart_sip_i():
    parts = split_multipart("multipart/mixed;boundary=unique-boundary-1", SIP_I_BODY)
    assert len(parts) == 2
    assert all(isinstance(p, BodyPart) for p in parts)
    assert parts[0].headers == [("Content-Type", "application/sdp")]
    assert parts[0].body == SIMPLE_SDP
    assert parts[0].content_type == "application/sdp"
    assert parts[1].headers == [
        ("Content-Type", "application/ISUP;version=itu-t92+;base=itu-t92+"),
        ("Content-Disposition", "signal;handling=required"),
    ]
    assert parts[1].body == ISUP
    assert parts[1].content_type == "application/isup"


@pytest.mark.parametrize(
    ("content_type", "boundary"),
    [
        ('multipart/mixed; boundary="simple boundary"', b"simple boundary"),
        ("multipart/mixed; boundary=simple", b"simple"),
        ('Multipart/Mixed; Boundary="gc0pJq0M:08jU534c0p"', b"gc0pJq0M:08jU534c0p"),
        ("multipart/mixed;charset=utf-8;boundary=b1;x=y", b"b1"),
        ("multipart/alternative ; boundary = alt-b", b"alt-b"),
        ('multipart/related;type="application/sdp";boundary="++x++"', b"++x++"),
    ],
    ids=["quoted-with-space", "unquoted", "mixed-case", "among-params", "lws", "related"],
)
def test_split_multipart_boundary_forms(content_type, boundary):
    body = multipart(boundary, ([b"Content-Type: text/plain"], b"hello"),
                     ([b"Content-Type: application/sdp"], SIMPLE_SDP),
                     preamble=b"This is the preamble.\r\n",
                     epilogue=b"\r\nThis is the epilogue.\r\n")
    parts = split_multipart(content_type, body)
    assert [p.body for p in parts] == [b"hello", SIMPLE_SDP]
    assert [p.content_type for p in parts] == ["text/plain", "application/sdp"]


def test_split_multipart_boundary_lookalikes_inside_a_part():
    # Only CRLF "--" boundary at the start of a line delimits (RFC 2046 §5.1.1); a shorter
    # prefix, one dash, or the boundary in the middle of a line do not.
    inner = b"--b is shorter\r\n-b1 has one dash\r\nx--b1 is mid-line\r\n--"
    body = multipart(b"b1", ([b"Content-Type: text/plain"], inner),
                     ([b"Content-Type: text/plain"], b"two"))
    parts = split_multipart("multipart/mixed;boundary=b1", body)
    assert [p.body for p in parts] == [inner, b"two"]


def test_split_multipart_part_header_spacing_and_epilogue_crlf():
    body = (b"--b1\r\nContent-Type:  application/sdp \r\n\r\n" + SIMPLE_SDP + b"\r\n--b1--\r\n")
    (part,) = split_multipart("multipart/mixed;boundary=b1", body)
    assert part.content_type == "application/sdp"
    assert part.body == SIMPLE_SDP


def test_split_multipart_part_without_headers():
    # RFC 2046 §5.1.1: a part may start with the blank line; its type is then the default.
    body = b"--b1\r\n\r\nplain\r\n--b1\r\nContent-Type: application/sdp\r\n\r\n" + SIMPLE_SDP
    body += b"\r\n--b1--"
    parts = split_multipart("multipart/mixed;boundary=b1", body)
    assert [p.body for p in parts] == [b"plain", SIMPLE_SDP]
    assert parts[0].headers == []
    assert parts[0].content_type in (None, "text/plain")
    assert find_sdp("multipart/mixed;boundary=b1", body) == SIMPLE_SDP


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("multipart/mixed", SIP_I_BODY),
        ("multipart/mixed;boundary=", SIP_I_BODY),
        ('multipart/mixed;boundary="unterminated', SIP_I_BODY),
        ("multipart/mixed;boundary=other-boundary", SIP_I_BODY),
        ("multipart/mixed;boundary=unique-boundary-1", b"no delimiter here"),
        ("multipart/mixed;boundary=unique-boundary-1", b""),
    ],
    ids=["no-boundary-param", "empty-boundary", "unterminated-quote", "boundary-not-in-body",
         "no-delimiter", "empty-body"],
)
def test_split_multipart_without_its_boundary_raises(content_type, body):
    with pytest.raises(ParseError):
        split_multipart(content_type, body)


# --- find_sdp --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "body", "expected"),
    [
        ("application/sdp", SIMPLE_SDP, SIMPLE_SDP),
        ("Application/SDP", SIMPLE_SDP, SIMPLE_SDP),
        ("application/sdp; charset=utf-8", SIMPLE_SDP, SIMPLE_SDP),
        ("multipart/mixed;boundary=unique-boundary-1", SIP_I_BODY, SIMPLE_SDP),
        ('multipart/mixed; boundary="unique-boundary-1"', SIP_I_BODY, SIMPLE_SDP),
        ("application/isup;version=itu-t92+", ISUP, None),
        ("text/plain", SIMPLE_SDP, None),
        (None, b"", None),
        (None, SIMPLE_SDP, None),
        ("multipart/mixed;boundary=b1",
         multipart(b"b1", ([b"Content-Type: application/ISUP;version=itu-t92+"], ISUP)), None),
        ("multipart/mixed;boundary=b1",
         multipart(b"b1", ([b"Content-Type: application/ISUP"], ISUP),
                   ([b"Content-Type: application/sdp"], SIMPLE_SDP)), SIMPLE_SDP),
    ],
    ids=["plain", "upper-case", "with-param", "sip-i", "sip-i-quoted", "isup-only",
         "text-plain", "no-type-no-body", "no-type", "multipart-without-sdp",
         "multipart-sdp-second"],
)
def test_find_sdp(content_type, body, expected):
    assert find_sdp(content_type, body) == expected


# --- the grammar rebuild (issue 11) -----------------------------------------------------------

NUMBER = "9876543210"
HALVES = ("98765", "43210")


def one_media(*lines: str, m: str = "m=audio 4000 RTP/AVP 0 101", session: tuple[str, ...] = ()
              ) -> bytes:
    return sdp("v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "c=IN IP4 192.0.2.1", "t=0 0",
               *session, m, "a=rtpmap:0 PCMU/8000", "a=rtpmap:101 telephone-event/8000",
               *lines)


def rebuilt(body: bytes, **kwargs: object) -> list[str]:
    out = rebuild_sdp(body, origin_address="203.0.113.10", session_id=1, version=1,
                      **kwargs)  # type: ignore[arg-type]
    return out.decode().split("\r\n")[:-1]


@pytest.mark.parametrize("address", [
    "c=IN IP4 9876543210", "c=IN IP4 98765.43210", "c=IN IP4 host98765", "c=IN IP4 1.2.3.4.5",
    "c=IN IP4 256.1.1.1", "c=IN IP6 98765:43210::", "c=IN IP6 1.2.3.4", "c=IN IP4 ::1",
    "c=IN IP4 1.2.3.4/98765",
])
def test_connection_must_be_an_ip_literal_of_its_type(address):
    body = one_media().replace(b"c=IN IP4 192.0.2.1", address.encode())
    with pytest.raises(ParseError):
        rebuilt(body)


@pytest.mark.parametrize("address", ["c=IN IP4 0.0.0.0", "c=IN IP6 2001:db8::1",
                                     "c=IN IP4 224.2.1.1/127"])
def test_connection_ip_literals_cross(address):
    body = one_media().replace(b"c=IN IP4 192.0.2.1", address.encode())
    assert address in rebuilt(body)


def test_media_formats_keep_assigned_static_and_rtpmapped_dynamic_types():
    body = one_media("a=rtpmap:98 opus/48000/2", m="m=audio 4000 RTP/AVP 0 98 76 54 32 10 101 99")
    # 76 and 54 are unassigned, 32 (MPV) is a video type, 10 (L16) is audio, 99 has no
    # rtpmap.
    assert "m=audio 4000 RTP/AVP 0 98 10 101" in rebuilt(body)
    video = one_media(m="m=video 4000 RTP/AVP 0 34 32 10 26")
    assert "m=video 4000 RTP/AVP 34 32 26" in rebuilt(video)


def test_media_without_a_usable_format_is_rejected_at_port_zero():
    body = sdp("v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "c=IN IP4 192.0.2.1", "t=0 0",
               "m=audio 4000 RTP/AVP 0", "m=video 5000 RTP/AVP 98 76 54", "a=sendrecv",
               "b=AS:64")
    lines = rebuilt(body, media_ports=[40000, 40002])
    assert lines[-2:] == ["m=audio 40000 RTP/AVP 0", "m=video 0 RTP/AVP 0"]


@pytest.mark.parametrize("m", ["m=audio 4000/98765 RTP/AVP 0", "m=x98765 4000 RTP/AVP 0",
                               "m=audio 98765 RTP/AVP 0"])
def test_media_line_out_of_grammar_is_refused(m):
    with pytest.raises(ParseError):
        rebuilt(one_media(m=m))


@pytest.mark.parametrize(("line", "kept"), [
    ("a=rtpmap:96 X98765-43210/8000", None),
    ("a=rtpmap:96 opus/98765", None),
    ("a=rtpmap:96 PCMU/8000", "a=rtpmap:96 PCMU/8000"),
    ("a=rtpmap:96 OPUS/48000/2", "a=rtpmap:96 opus/48000/2"),
    ("a=rtpmap:96 opus/48000", None),
    ("a=rtpmap:96 amr-wb/16000/1", "a=rtpmap:96 AMR-WB/16000"),
    ("a=rtpmap:96 telephone-event/48000", "a=rtpmap:96 telephone-event/48000"),
    ("a=rtpmap:96 telephone-event/98765", None),
    ("a=rtpmap:96 H264/90000", "a=rtpmap:96 H264/90000"),
    ("a=rtpmap:96 L16/44100/9", None),
])
def test_rtpmap_names_a_known_codec_at_its_real_rate(line, kept):
    lines = rebuilt(one_media(line, m="m=audio 4000 RTP/AVP 96"))
    if kept is None:
        assert lines[-1] == "m=audio 0 RTP/AVP 0"  # nothing left to offer
    else:
        assert lines[-2:] == ["m=audio 4000 RTP/AVP 96", kept]


def test_rtpmap_of_a_static_type_must_be_its_own_codec():
    lines = rebuilt(one_media().replace(b"a=rtpmap:0 PCMU/8000", b"a=rtpmap:0 PCMA/8000"))
    assert "m=audio 4000 RTP/AVP 0 101" in lines  # 0 still means PCMU
    assert not [line for line in lines if line.startswith("a=rtpmap:0")]


@pytest.mark.parametrize(("fmtp", "kept"), [
    ("a=fmtp:101 0-15", "a=fmtp:101 0-15"),
    ("a=fmtp:101 0-15,16", "a=fmtp:101 0-15,16"),
    ("a=fmtp:101 0-15,98765-43210", None),
    ("a=fmtp:101 0-15,98765", None),
    ("a=fmtp:101 15-0", None),
    ("a=fmtp:0 annexb=no", None),                  # PCMU has no parameters
    ("a=fmtp:18 annexb=no", None),                 # 18 is not offered
    ("a=fmtp:97 minptime=10; useinbandfec=1; x=98765", "a=fmtp:97 minptime=10;useinbandfec=1"),
    ("a=fmtp:97 maxaveragebitrate=98765", "a=fmtp:97 maxaveragebitrate=98000"),
    ("a=fmtp:97 maxplaybackrate=43210", "a=fmtp:97 maxplaybackrate=43000"),
    ("a=fmtp:97 stereo=98765", None),
    ("a=fmtp:98 profile-level-id=42e01f;packetization-mode=1;sprop-parameter-sets=Z0I=",
     "a=fmtp:98 profile-level-id=42e01f;packetization-mode=1"),
    ("a=fmtp:98 profile-level-id=987654", None),
    ("a=fmtp:98 max-fs=98765;max-mbps=43210", "a=fmtp:98 max-fs=98000;max-mbps=43000"),
    ("a=fmtp:99 mode-set=0,2,4,7;octet-align=1", "a=fmtp:99 mode-set=0,2,4,7;octet-align=1"),
    ("a=fmtp:99 mode-set=98765", None),
])
def test_fmtp_by_codec_grammar(fmtp, kept):
    body = one_media("a=rtpmap:97 opus/48000/2", "a=rtpmap:98 H264/90000",
                     "a=rtpmap:99 AMR-WB/16000", fmtp,
                     m="m=audio 4000 RTP/AVP 0 101 97 98 99")
    fmtps = [line for line in rebuilt(body) if line.startswith("a=fmtp")]
    assert fmtps == ([kept] if kept else [])


@pytest.mark.parametrize(("line", "kept"), [
    ("b=AS:64", "b=AS:64"),
    ("b=as:128", "b=AS:120"),
    ("b=AS:98765", "b=AS:98000"),
    ("b=TIAS:64000", "b=TIAS:64000"),
    ("b=TIAS:9876543", "b=TIAS:9800000"),
    ("b=CT:43210", "b=CT:43000"),
    ("b=AS:9876543210", None),
    ("b=X-98765-43210:64", None),
    ("b=RR:800", None),
    ("b=AS:0", None),
])
def test_bandwidth_types_and_ranges(line, kept):
    lines = rebuilt(one_media(line))
    bandwidths = [x for x in lines if x.startswith("b=")]
    assert bandwidths == ([kept] if kept else [])


@pytest.mark.parametrize(("line", "kept"), [
    ("a=ptime:20", "a=ptime:20"),
    ("a=ptime:98765", None),
    ("a=ptime:20.5", None),
    ("a=maxptime:300", "a=maxptime:300"),
    ("a=maxptime:43210", None),
    ("a=framerate:30", "a=framerate:30"),
    ("a=framerate:29.97", "a=framerate:29.97"),
    ("a=framerate:98765.43210", None),
    ("a=framerate:121", None),
    ("a=sendonly", "a=sendonly"),
    ("a=sendonly:98765", None),
    ("a=rtcp:4001", "a=rtcp:4001"),
    ("a=rtcp:4001 IN IP4 192.0.2.1", "a=rtcp:4001 IN IP4 192.0.2.1"),
    ("a=rtcp:4001 IN IP4 9876543210", None),
    ("a=rtcp-fb:101 nack pli", "a=rtcp-fb:101 nack pli"),
    ("a=rtcp-fb:* trr-int 98765", None),
    ("a=rtcp-fb:* trr-int 5000", "a=rtcp-fb:* trr-int 5000"),
    ("a=rtcp-fb:101 x-98765", None),
    ("a=rtcp-fb:55 nack", None),
    ("a=silenceSupp:off 98765 43210 - -", "a=silenceSupp:off - - - -"),
    ("a=setup:actpass", "a=setup:actpass"),
    ("a=setup:98765", None),
    ("a=connection:new", "a=connection:new"),
    (f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{'A' * 40}|2^20|1:4",
     f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{'A' * 40}|2^20|1:4"),
    (f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{'A' * 40}|9876543210 UNENCRYPTED_SRTP",
     f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{'A' * 40}"),
    ("a=crypto:98765 AES_CM_128_HMAC_SHA1_80 inline:" + "A" * 40, None),
    ("a=fingerprint:sha-1 " + ":".join(["AB"] * 20), "a=fingerprint:sha-1 "
     + ":".join(["AB"] * 20)),
    ("a=fingerprint:sha-256 98:76:54:32:10", None),
])
def test_attributes_by_grammar(line, kept):
    lines = rebuilt(one_media(line))
    assert lines[-1] == (kept or "a=rtpmap:101 telephone-event/8000")


def test_every_kept_value_holds_neither_half_of_a_number():
    # Issue 11: a number split across two allowed values must not cross either.
    planted = [
        "b=AS:98765", "b=TIAS:43210", "a=ptime:98765", "a=maxptime:43210",
        "a=framerate:98765", "a=fmtp:101 0-15,98765", "a=fmtp:97 maxaveragebitrate=43210",
        "a=rtcp-fb:* trr-int 98765", "a=rtpmap:98 X98765/8000", "a=rtpmap:99 opus/43210/2",
    ]
    body = one_media("a=rtpmap:97 opus/48000/2", *planted,
                     m="m=audio 4000 RTP/AVP 0 101 97 98 99 98765 43210")
    out = "\r\n".join(rebuilt(body))
    for half in HALVES:
        assert half not in out


def test_paired_origins_renumber_and_map_the_answer_back():
    a = SdpOrigin("203.0.113.1", session_id=1)
    b = SdpOrigin("203.0.113.2", session_id=2)
    b.pair(a)
    offer = sdp("v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "c=IN IP4 192.0.2.1", "t=0 0",
                "m=audio 4000 RTP/AVP 0 111 101", "a=rtpmap:111 opus/48000/2",
                "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-15",
                "a=rtcp-fb:111 nack")
    sent = b.rebuild(offer).decode()  # the offer the callee gets: 96 upward
    assert "m=audio 4000 RTP/AVP 0 96 97\r\n" in sent
    assert "a=rtpmap:96 opus/48000/2\r\n" in sent and "a=fmtp:97 0-15\r\n" in sent
    assert "a=rtcp-fb:96 nack\r\n" in sent
    answer = sdp("v=0", "o=- 5 5 IN IP4 192.0.2.9", "s=-", "c=IN IP4 192.0.2.9", "t=0 0",
                 "m=audio 5000 RTP/AVP 97 96", "a=rtpmap:96 opus/48000/2",
                 "a=rtpmap:97 telephone-event/8000")
    back = a.rebuild(answer).decode()  # the caller gets its own numbers back
    assert "m=audio 5000 RTP/AVP 101 111\r\n" in back
    assert "a=rtpmap:111 opus/48000/2\r\n" in back
    assert "a=rtpmap:101 telephone-event/8000\r\n" in back
    # A re-offer from the callee with a new codec gets the next free number on the caller.
    reoffer = answer.replace(b"RTP/AVP 97 96", b"RTP/AVP 97 96 98") + b"a=rtpmap:98 PCMA/8000\r\n"
    reoffer = reoffer.replace(b"PCMA/8000", b"AMR/8000")
    again = a.rebuild(reoffer).decode()
    assert "m=audio 5000 RTP/AVP 101 111 96\r\n" in again


def test_unpaired_origin_keeps_the_numbers():
    origin = SdpOrigin("203.0.113.1", session_id=1)
    out = origin.rebuild(one_media(m="m=audio 4000 RTP/AVP 0 101")).decode()
    assert "m=audio 4000 RTP/AVP 0 101\r\n" in out


def test_paired_origin_bounds_its_state():
    a, b = SdpOrigin("203.0.113.1"), SdpOrigin("203.0.113.2")
    b.pair(a)
    many = sdp("v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "c=IN IP4 192.0.2.1", "t=0 0",
               *["m=audio 4000 RTP/AVP 0"] * 17)
    with pytest.raises(ParseError):
        b.rebuild(many)
