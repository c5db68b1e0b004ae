"""Unit tests of `parse_via` and `Via`: RFC 3261 §20.42 and the §25.1 grammar (via-parm,
sent-protocol, sent-by, LWS around '/', ';', '=' and ','), RFC 3581 rport."""

from __future__ import annotations

import pytest

from sipmask import ParseError, Via, parse, parse_via


def test_single_via():
    (via,) = parse_via("SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds")
    assert via.protocol == "SIP/2.0"
    assert via.transport == "UDP"
    assert via.host == "pc33.atlanta.example.com"
    assert via.port is None
    assert via.params == {"branch": "z9hG4bK776asdhds"}
    assert via.branch == "z9hG4bK776asdhds"
    assert via.received is None
    assert via.rport is None
    assert via.has_rport is False


def test_several_comma_separated_vias():
    vias = parse_via(
        "SIP/2.0/UDP bigbox3.site3.example.com;branch=z9hG4bK77ef4c2312983.1, "
        "SIP/2.0/TCP 192.0.2.7:5061;branch=z9hG4bKnashds8;received=192.0.2.3,"
        "SIP/2.0/TLS client.example.com:5062;branch=z9hG4bK9ikj8;rport=49152"
    )
    assert [(v.transport, v.host, v.port) for v in vias] == [
        ("UDP", "bigbox3.site3.example.com", None),
        ("TCP", "192.0.2.7", 5061),
        ("TLS", "client.example.com", 5062),
    ]
    assert [v.branch for v in vias] == ["z9hG4bK77ef4c2312983.1", "z9hG4bKnashds8",
                                        "z9hG4bK9ikj8"]
    assert vias[1].received == "192.0.2.3"
    assert vias[2].rport == 49152


@pytest.mark.parametrize(
    "text",
    [
        "SIP / 2.0 /UDP 192.0.2.2;rport;branch=390skdjuw",
        "SIP/2.0/UDP   192.0.2.2 ; rport ; branch = 390skdjuw",
        "SIP\t/\t2.0\t/\tUDP\t192.0.2.2;rport;branch=\t390skdjuw",
        "SIP/2.0/UDP 192.0.2.2;rport;branch=390skdjuw   ",
    ],
    ids=["around-slash", "around-semicolon-and-equal", "tabs", "trailing"],
)
def test_lws_inside_a_via(text):
    (via,) = parse_via(text)
    assert via.protocol == "SIP/2.0"
    assert via.transport == "UDP"
    assert via.host == "192.0.2.2"
    assert via.port is None
    assert via.has_rport is True
    assert via.branch == "390skdjuw"
    assert str(via) == "SIP/2.0/UDP 192.0.2.2;rport;branch=390skdjuw"


def test_lws_around_colon_and_comma():
    # RFC 4475 §3.1.1.1 (wsinv), the second Via field, unfolded.
    vias = parse_via("SIP  / 2.0  / TCP     spindle.example.com   ; branch  =   z9hG4bK9ikj8  ,"
                     " SIP  /    2.0   / UDP  192.168.255.111   ; branch= z9hG4bK30239")
    assert [(v.transport, v.host, v.branch) for v in vias] == [
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]


def test_lws_around_port_colon():
    (via,) = parse_via("SIP/2.0/UDP host.example.com : 5070;branch=z9hG4bK1")
    assert (via.host, via.port) == ("host.example.com", 5070)


def test_folded_vias_in_a_message():
    data = (
        b"OPTIONS sip:user@example.com SIP/2.0\r\n"
        b"Via  : SIP  /   2.0\r\n"
        b" /UDP\r\n"
        b"    192.0.2.2;rport;branch=390skdjuw\r\n"
        b"v:  SIP  / 2.0  / TCP     spindle.example.com   ;\r\n"
        b"  branch  =   z9hG4bK9ikj8  ,\r\n"
        b" SIP  /    2.0   / UDP  192.168.255.111   ; branch=\r\n"
        b" z9hG4bK30239\r\n"
        b"Max-Forwards: 70\r\n"
        b"To: <sip:user@example.com>\r\n"
        b"From: <sip:caller@example.com>;tag=1\r\n"
        b"Call-ID: wsinv.ndaksdj@192.0.2.1\r\n"
        b"CSeq: 8 OPTIONS\r\n"
        b"Content-Length: 0\r\n"
        b"\r\n"
    )
    msg = parse(data)
    assert [(v.transport, v.host, v.branch) for v in msg.via] == [
        ("UDP", "192.0.2.2", "390skdjuw"),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    assert msg.top_via.has_rport is True
    assert bytes(msg) == data


@pytest.mark.parametrize(
    ("text", "transport"),
    [
        ("SIP/2.0/udp h.example.com", "UDP"),
        ("SIP/2.0/Tcp h.example.com", "TCP"),
        ("SIP/2.0/tls h.example.com", "TLS"),
        ("SIP/2.0/sctp h.example.com", "SCTP"),
        ("SIP/2.0/ws h.example.com", "WS"),
        ("SIP/2.0/wss h.example.com", "WSS"),
        ("SIP/2.0/x-quic h.example.com", "X-QUIC"),
    ],
    ids=["udp", "tcp", "tls", "sctp", "ws", "wss", "unknown-kept"],
)
def test_transport_is_uppercased(text, transport):
    (via,) = parse_via(text)
    assert via.transport == transport


# --- received / rport (RFC 3261 §18.2.1, RFC 3581) -------------------------------------------


@pytest.mark.parametrize(
    ("params", "rport", "has_rport"),
    [
        (";branch=z9hG4bK1", None, False),
        (";rport;branch=z9hG4bK1", None, True),
        (";branch=z9hG4bK1;rport", None, True),
        (";branch=z9hG4bK1;rport=5060", 5060, True),
        (";branch=z9hG4bK1;received=192.0.2.1;rport=49152", 49152, True),
        (";branch=z9hG4bK1;RPORT=1", 1, True),
    ],
    ids=["absent", "flag-first", "flag-last", "value", "with-received", "upper-name"],
)
def test_rport(params, rport, has_rport):
    (via,) = parse_via("SIP/2.0/UDP 10.0.0.1:5060" + params)
    assert via.rport == rport
    assert via.has_rport is has_rport
    assert via.branch == "z9hG4bK1"


def test_rport_flag_is_a_none_param():
    (via,) = parse_via("SIP/2.0/UDP 10.0.0.1;rport;branch=z9hG4bKx")
    assert via.params == {"rport": None, "branch": "z9hG4bKx"}
    assert list(via.params) == ["rport", "branch"]


def test_received_ipv4_and_ipv6():
    (v4,) = parse_via("SIP/2.0/UDP h.example.com;branch=z9hG4bK1;received=192.0.2.1")
    (v6,) = parse_via("SIP/2.0/UDP h.example.com;branch=z9hG4bK1;received=2001:db8::9:255")
    assert v4.received == "192.0.2.1"
    assert v6.received == "2001:db8::9:255"


def test_param_names_are_case_insensitive():
    # RFC 3261 §7.3.1: parameter names are case-insensitive; the branch value is not.
    (via,) = parse_via("SIP/2.0/UDP h.example.com;BRANCH=z9hG4bKAbC;Received=192.0.2.1")
    assert via.branch == "z9hG4bKAbC"
    assert via.received == "192.0.2.1"


def test_other_params_are_kept():
    (via,) = parse_via("SIP/2.0/UDP h.example.com;branch=z9hG4bK1;ttl=16;maddr=224.2.0.1;"
                       "alias;x-custom=abc")
    assert via.params == {"branch": "z9hG4bK1", "ttl": "16", "maddr": "224.2.0.1",
                          "alias": None, "x-custom": "abc"}


# --- IPv6 sent-by ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("SIP/2.0/UDP [2001:db8::9:1]:5070;branch=z9hG4bK1", "[2001:db8::9:1]", 5070),
        ("SIP/2.0/UDP [2001:db8::9:1];branch=z9hG4bK1", "[2001:db8::9:1]", None),
        ("SIP/2.0/TCP [::1]:5060", "[::1]", 5060),
    ],
    ids=["with-port", "no-port", "loopback"],
)
def test_ipv6_sent_by(text, host, port):
    (via,) = parse_via(text)
    assert (via.host, via.port) == (host, port)
    assert str(via) == text


def test_no_params():
    (via,) = parse_via("SIP/2.0/UDP 192.0.2.1:5060")
    assert via.params == {}
    assert via.branch is None


# --- str() and the constructor ---------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds",
        "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKabc;received=192.0.2.101;rport=5060",
        "SIP/2.0/TCP client.example.com:5062;rport;branch=z9hG4bK9ikj8",
        "SIP/2.0/TLS [2001:db8::1]:5061;branch=z9hG4bK1;alias",
        "SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bKasudf",
    ],
)
def test_str_round_trips(text):
    (via,) = parse_via(text)
    assert str(via) == text


def test_constructor():
    via = Via("udp", "proxy.example.com", 5060, {"branch": "z9hG4bKp1", "rport": None})
    assert via.protocol == "SIP/2.0"
    assert via.transport == "UDP"
    assert (via.host, via.port) == ("proxy.example.com", 5060)
    assert via.branch == "z9hG4bKp1"
    assert via.has_rport is True
    assert via.rport is None
    assert str(via) == "SIP/2.0/UDP proxy.example.com:5060;branch=z9hG4bKp1;rport"


def test_constructor_defaults():
    via = Via("TCP", "192.0.2.9")
    assert via.port is None
    assert via.params == {}
    assert str(via) == "SIP/2.0/TCP 192.0.2.9"


def test_params_can_be_filled_in():
    # RFC 3261 §18.2.1 / RFC 3581 §4: a server adds received and fills rport in.
    (via,) = parse_via("SIP/2.0/UDP 10.0.0.1:5060;rport;branch=z9hG4bK1")
    via.params["received"] = "198.51.100.7"
    via.params["rport"] = "40123"
    assert via.received == "198.51.100.7"
    assert via.rport == 40123
    assert str(via) == "SIP/2.0/UDP 10.0.0.1:5060;rport=40123;branch=z9hG4bK1;received=198.51.100.7"
    assert str(parse_via(str(via))[0]) == str(via)


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "SIP/2.0/UDP",
        "SIP/2.0/UDP ",
        "SIP/2.0/UDP ;branch=z9hG4bK1",
        "SIP/2.0/UDP h.example.com;;branch=z9hG4bK1",
        "SIP/2.0/UDP h.example.com;branch=z9hG4bK1;",
        "SIP/2.0/UDP h.example.com;=x",
        "SIP/2.0 h.example.com",
        "SIP/UDP h.example.com",
        "SIP/2.0/ h.example.com",
        "h.example.com;branch=z9hG4bK1",
        "SIP/2.0/UDP h.example.com:abc",
        "SIP/2.0/UDP h.example.com:99999",
        "SIP/2.0/UDP h.example.com:",
        "SIP/2.0/UDP [2001:db8::1;branch=z9hG4bK1",
        "SIP/2.0/UDP h.example.com;rport=abc",
        "SIP/2.0/UDP h.example.com;rport=99999",
        "SIP/2.0/UDP h.example.com;branch=z9hG4bK1,",
        ", SIP/2.0/UDP h.example.com;branch=z9hG4bK1",
        "SIP/2.0/UDP a.example.com;branch=z9hG4bK1,,SIP/2.0/UDP b.example.com",
        "SIP/2.0/UDP h.example.com x.example.com",
        "SIP/2.0/UDP h.example.com;branch=z9hG4bK1 SIP/2.0/UDP b.example.com",
    ],
    ids=["empty", "blank", "missing-sent-by", "missing-sent-by-space", "param-without-host",
         "double-semicolon", "trailing-semicolon", "param-without-name", "no-transport",
         "no-version", "empty-transport", "no-protocol", "port-letters", "port-too-big",
         "port-empty", "ipv6-unclosed", "rport-letters", "rport-too-big", "trailing-comma",
         "leading-comma", "empty-element", "two-hosts", "missing-comma"],
)
def test_invalid_vias_raise_parse_error(text):
    with pytest.raises(ParseError):
        parse_via(text)


def test_bad_via_in_a_message_is_a_parse_error():
    data = (
        b"OPTIONS sip:user@example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP ;;branch=z9hG4bK1\r\n"
        b"Max-Forwards: 70\r\n"
        b"To: <sip:user@example.com>\r\n"
        b"From: <sip:caller@example.com>;tag=1\r\n"
        b"Call-ID: badvia@192.0.2.1\r\n"
        b"CSeq: 8 OPTIONS\r\n"
        b"Content-Length: 0\r\n"
        b"\r\n"
    )
    with pytest.raises(ParseError):
        parse(data)
