"""Unit tests of `parse_uri`, `URI` and `unescape`: SIP and SIPS URIs (RFC 3261 §19.1,
grammar in §25.1), tel URIs (RFC 3966) and other schemes kept opaque."""

from __future__ import annotations

import pytest

from sipmask import URI, ParseError, parse_uri, unescape

# --- components ------------------------------------------------------------------------------


def test_full_sip_uri():
    uri = parse_uri("sip:alice:secretword@atlanta.example.com:5070;transport=tcp;lr"
                    "?subject=project&priority=urgent")
    assert uri.scheme == "sip"
    assert uri.user == "alice"
    assert uri.password == "secretword"
    assert uri.host == "atlanta.example.com"
    assert uri.port == 5070
    assert uri.params == {"transport": "tcp", "lr": None}
    assert list(uri.params) == ["transport", "lr"]
    assert uri.headers == {"subject": "project", "priority": "urgent"}
    assert uri.opaque is None


def test_minimal_sip_uri():
    uri = parse_uri("sip:biloxi.example.com")
    assert uri.scheme == "sip"
    assert uri.user is None
    assert uri.password is None
    assert uri.host == "biloxi.example.com"
    assert uri.port is None
    assert uri.params == {}
    assert uri.headers == {}


def test_sips_uri():
    uri = parse_uri("sips:bob@biloxi.example.com")
    assert (uri.scheme, uri.user, uri.host) == ("sips", "bob", "biloxi.example.com")


@pytest.mark.parametrize(
    ("text", "scheme"),
    [("SIP:alice@example.com", "sip"), ("Sips:alice@example.com", "sips"),
     ("TEL:+15551234567", "tel")],
    ids=["SIP", "Sips", "TEL"],
)
def test_scheme_is_lowercased(text, scheme):
    assert parse_uri(text).scheme == scheme


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("sip:alice@192.0.2.4", "192.0.2.4", None),
        ("sip:alice@192.0.2.4:5060", "192.0.2.4", 5060),
        ("sip:alice@[2001:db8::1]", "[2001:db8::1]", None),
        ("sip:alice@[2001:db8::1]:5061", "[2001:db8::1]", 5061),
        ("sip:[2001:db8:0:0:0:0:0:10]:5070;transport=udp", "[2001:db8:0:0:0:0:0:10]", 5070),
        ("sip:[::ffff:192.0.2.1]", "[::ffff:192.0.2.1]", None),
        ("sip:alice@Atlanta.Example.COM", "Atlanta.Example.COM", None),
        ("sip:alice@host-1.example.com.:65535", "host-1.example.com.", 65535),
        ("sip:alice@localhost", "localhost", None),
    ],
    ids=["ipv4", "ipv4-port", "ipv6", "ipv6-port", "ipv6-long-no-user", "ipv6-v4-mapped",
         "mixed-case-kept", "fqdn-dot-max-port", "single-label"],
)
def test_hosts_and_ports(text, host, port):
    uri = parse_uri(text)
    assert uri.host == host
    assert uri.port == port


@pytest.mark.parametrize(
    ("text", "params"),
    [
        ("sip:p1.example.com;lr", {"lr": None}),
        ("sip:alice@example.com;transport=tcp", {"transport": "tcp"}),
        ("sip:+14155550100@gw.example.com;user=phone", {"user": "phone"}),
        ("sip:alice@example.com;maddr=239.255.255.1;ttl=15",
         {"maddr": "239.255.255.1", "ttl": "15"}),
        ("sip:alice@example.com;Transport=TCP;LR", {"transport": "TCP", "lr": None}),
        ("sip:alice@example.com;method=REGISTER;x-custom=a+b", {"method": "REGISTER",
                                                               "x-custom": "a+b"}),
        ("sip:alice@example.com;p=%20x", {"p": "%20x"}),
    ],
    ids=["lr-flag", "transport", "user-phone", "maddr-ttl", "names-lowercased-values-kept",
         "other", "escaped-value"],
)
def test_params(text, params):
    uri = parse_uri(text)
    assert uri.params == params
    assert list(uri.params) == list(params)


def test_headers_component():
    uri = parse_uri("sip:alice@atlanta.example.com?subject=project%20x&priority=urgent")
    assert uri.headers == {"subject": "project%20x", "priority": "urgent"}
    assert uri.params == {}
    assert uri.host == "atlanta.example.com"


def test_headers_after_params():
    uri = parse_uri("sip:biloxi.example.com;transport=tcp;method=REGISTER"
                    "?to=sip:bob%40biloxi.example.com")
    assert uri.params == {"transport": "tcp", "method": "REGISTER"}
    assert uri.headers == {"to": "sip:bob%40biloxi.example.com"}


# --- escapes (RFC 3261 §19.1.2) --------------------------------------------------------------


def test_escapes_are_kept_in_components():
    uri = parse_uri("sip:%61lice@example.com")
    assert uri.user == "%61lice"
    assert unescape(uri.user) == "alice"


def test_escaped_user_with_reserved_characters():
    uri = parse_uri("sip:sip%3Auser%40example.com@company.com;other-param=summit")
    assert uri.user == "sip%3Auser%40example.com"
    assert unescape(uri.user) == "sip:user@example.com"
    assert uri.host == "company.com"
    assert uri.params == {"other-param": "summit"}


def test_escaped_plus_in_number():
    uri = parse_uri("sip:%2B14155550100@example.com;user=phone")
    assert unescape(uri.user) == "+14155550100"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("%61lice", "alice"),
        ("%2b1%2D202", "+1-202"),
        ("no-escapes", "no-escapes"),
        ("", ""),
        ("100%", "100%"),
        ("%", "%"),
        ("%4", "%4"),
        ("%zz", "%zz"),
        ("a%2", "a%2"),
        ("%%41", "%A"),
        ("%C3%A9", "é"),
        ("%00", "\x00"),
        ("%25", "%"),
        ("%2541", "%41"),
    ],
    ids=["lower-hex", "mixed-case-hex", "plain", "empty", "trailing-percent", "lone-percent",
         "one-digit", "not-hex", "one-digit-at-end", "percent-then-escape", "utf8", "nul",
         "escaped-percent", "no-double-decoding"],
)
def test_unescape(text, expected):
    assert unescape(text) == expected


# --- user with ';' parameters (RFC 3261 §19.1.6 telephone-subscriber in the user part) --------


@pytest.mark.parametrize(
    ("text", "user"),
    [
        ("sip:+919876543210;npdi@example.com;user=phone", "+919876543210;npdi"),
        ("sip:+919876543210;rn=+919800000000;npdi@example.com;user=phone",
         "+919876543210;rn=+919800000000;npdi"),
        ("sip:+1-212-555-1212:1234@gateway.com;user=phone", "+1-212-555-1212"),
        ("sip:7042;phone-context=example.com@example.com;user=phone",
         "7042;phone-context=example.com"),
    ],
    ids=["npdi", "rn-npdi", "with-password", "phone-context"],
)
def test_user_with_semicolon_params(text, user):
    uri = parse_uri(text)
    assert uri.user == user
    assert uri.params == {"user": "phone"}
    assert str(uri) == text


def test_user_with_password_from_rfc_example():
    uri = parse_uri("sip:+1-212-555-1212:1234@gateway.com;user=phone")
    assert uri.password == "1234"
    assert uri.host == "gateway.com"


# --- tel URIs (RFC 3966) ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "number", "params"),
    [
        ("tel:+1-201-555-0123;ext=12", "+1-201-555-0123", {"ext": "12"}),
        ("tel:+14155550100", "+14155550100", {}),
        ("tel:7042;phone-context=example.com", "7042", {"phone-context": "example.com"}),
        ("tel:863-1234;phone-context=+1-914-555", "863-1234", {"phone-context": "+1-914-555"}),
        ("tel:+919876543210;npdi;rn=+919800000000", "+919876543210",
         {"npdi": None, "rn": "+919800000000"}),
    ],
    ids=["ext", "global", "local-domain-context", "local-number-context", "npdi-flag"],
)
def test_tel_uris(text, number, params):
    uri = parse_uri(text)
    assert uri.scheme == "tel"
    assert uri.user == number
    assert uri.host is None
    assert uri.port is None
    assert uri.params == params
    assert uri.opaque is None
    assert str(uri) == text


# --- other schemes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "scheme", "opaque"),
    [
        ("mailto:alice@example.com", "mailto", "alice@example.com"),
        ("urn:service:sos", "urn", "service:sos"),
        ("http://www.example.com/alice?x=1", "http", "//www.example.com/alice?x=1"),
        ("im:alice@example.com", "im", "alice@example.com"),
    ],
    ids=["mailto", "urn", "http", "im"],
)
def test_unknown_scheme_kept_opaque(text, scheme, opaque):
    uri = parse_uri(text)
    assert uri.scheme == scheme
    assert uri.opaque == opaque
    assert uri.user is None
    assert uri.host is None
    assert uri.params == {}
    assert str(uri) == text


# --- str() -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "sip:alice@atlanta.example.com",
        "sips:bob@biloxi.example.com:5061",
        "sip:alice:secretword@atlanta.example.com;transport=tcp",
        "sip:p1.example.com;lr",
        "sip:alice@192.0.2.4:5060;maddr=239.255.255.1;ttl=15",
        "sip:alice@[2001:db8::1]:5061;transport=tls",
        "sip:%61lice@example.com",
        "sip:+14155550100@gw.example.com;user=phone",
        "sip:atlanta.example.com;method=REGISTER?to=alice%40atlanta.example.com",
        "sip:alice@atlanta.example.com?subject=project%20x&priority=urgent",
        "sip:alice@atlanta.example.com;x;y=1?h=v",
        "tel:+1-201-555-0123;ext=12",
        "urn:service:sos",
    ],
)
def test_str_round_trips(text):
    assert str(parse_uri(text)) == text


# --- constructor -----------------------------------------------------------------------------


def test_constructor_and_str():
    uri = URI("sip", "alice", "atlanta.example.com", 5060, {"transport": "tcp", "lr": None},
              {"subject": "x"}, password="pw")
    assert str(uri) == "sip:alice:pw@atlanta.example.com:5060;transport=tcp;lr?subject=x"
    assert uri == parse_uri(str(uri))


def test_constructor_defaults():
    uri = URI("sip", host="example.com")
    assert (uri.user, uri.port, uri.params, uri.headers, uri.password, uri.opaque) == \
        (None, None, {}, {}, None, None)
    assert str(uri) == "sip:example.com"


def test_constructor_ipv6_and_tel_and_opaque():
    assert str(URI("sip", "bob", "[2001:db8::5]", 5070)) == "sip:bob@[2001:db8::5]:5070"
    assert str(URI("tel", "+14155550100", params={"ext": "7"})) == "tel:+14155550100;ext=7"
    assert str(URI("mailto", opaque="alice@example.com")) == "mailto:alice@example.com"


def test_constructor_params_are_copied():
    params = {"transport": "udp"}
    uri = URI("sip", "a", "example.com", params=params)
    params["lr"] = None
    assert uri.params == {"transport": "udp"}


def test_attributes_are_writable():
    uri = parse_uri("sip:+14155550100@gw.example.com;user=phone")
    uri.user = "+14155550199"
    uri.host = "gw2.example.com"
    uri.port = 5080
    assert str(uri) == "sip:+14155550199@gw2.example.com:5080;user=phone"


# --- comparison (RFC 3261 §19.1.4: the contract is silent, so the RFC rules apply) -----------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"),
        ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
        ("sip:carol@chicago.com", "sip:carol@chicago.com;security=on"),
        ("sip:carol@chicago.com;newparam=5", "sip:carol@chicago.com;security=on"),
        ("sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
         "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com"),
        ("sip:alice@atlanta.com?subject=project%20x&priority=urgent",
         "sip:alice@atlanta.com?priority=urgent&subject=project%20x"),
    ],
    ids=["escape-case-params", "unknown-param-1", "unknown-param-2", "unknown-params",
         "param-order", "header-order"],
)
def test_rfc3261_equivalent_uris(a, b):
    assert parse_uri(a) == parse_uri(b)
    assert parse_uri(b) == parse_uri(a)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"),
        ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
        ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
        ("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp"),
        ("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"),
        ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
        ("sip:alice@atlanta.com", "sips:alice@atlanta.com"),
        ("sip:+14155550100@gw.example.com;user=phone", "sip:+14155550100@gw.example.com"),
    ],
    ids=["user-case", "explicit-port", "explicit-transport", "port-and-transport",
         "header", "ip-vs-name", "sip-vs-sips", "user-param"],
)
def test_rfc3261_different_uris(a, b):
    assert parse_uri(a) != parse_uri(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("sip:alice@atlanta.com", "sip:alice@ATLANTA.com"),
        ("sip:alice@atlanta.com;a=1;b=2", "sip:alice@atlanta.com;b=2;a=1"),
        ("sip:alice@atlanta.com;transport=tcp", "sip:alice@atlanta.com;Transport=tcp"),
        ("sip:alice@atlanta.com?x=1&y=2", "sip:alice@atlanta.com?y=2&x=1"),
    ],
    ids=["host-case", "param-order", "param-name-case", "header-order"],
)
def test_equal_uris_hash_equal(a, b):
    # Python's rule: a == b implies hash(a) == hash(b) (URIs end up in sets and dict keys).
    ua, ub = parse_uri(a), parse_uri(b)
    assert ua == ub
    assert hash(ua) == hash(ub)


def test_eq_with_other_types():
    assert (parse_uri("sip:alice@example.com") == "sip:alice@example.com") is False


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "",
        "sip:",
        "sip:alice@",
        "sip:alice@:5060",
        "sip:@example.com",
        "sip:alice@example.com:99999",
        "sip:alice@example.com:65536",
        "sip:alice@example.com:abc",
        "sip:alice@example.com:",
        "sip:alice@example.com:-1",
        "sip:alice@[2001:db8::1",
        "sip:alice@2001:db8::1]",
        "sip:alice@[2001:db8::1]x",
        "sip:alice smith@example.com",
        "sip:alice@exa mple.com",
        "sip:alice@example.com;transport=tcp x",
        "sip:alice@exam<ple.com",
        "alice@example.com",
        "sip:alice@example.com;=tcp",
        "tel:",
        ":alice@example.com",
    ],
    ids=["empty", "scheme-only", "empty-host", "empty-host-port", "empty-user",
         "port-99999", "port-65536", "port-letters", "port-empty", "port-negative",
         "ipv6-unclosed", "ipv6-unopened", "ipv6-trailing", "space-in-user", "space-in-host",
         "space-after-param", "angle-in-host", "no-scheme", "param-without-name", "tel-empty",
         "empty-scheme"],
)
def test_invalid_uris_raise_parse_error(text):
    with pytest.raises(ParseError):
        parse_uri(text)


def test_parse_error_is_a_value_error():
    with pytest.raises(ValueError):
        parse_uri("sip:alice@")
