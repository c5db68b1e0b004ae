"""Unit tests of `parse_name_addr` and `NameAddr`: name-addr and addr-spec with header
parameters (RFC 3261 §20.10 Contact, §20.20 From, §20.39 To; grammar in §25.1)."""

from __future__ import annotations

import pytest

from sipmask import URI, NameAddr, ParseError, parse_name_addr


def test_quoted_display_name_with_escapes():
    na = parse_name_addr('"J \\"Bob\\" Doe" <sip:bob@biloxi.example.com>;tag=a48s')
    assert na.display_name == 'J "Bob" Doe'
    assert str(na.uri) == "sip:bob@biloxi.example.com"
    assert na.params == {"tag": "a48s"}
    assert na.tag == "a48s"


@pytest.mark.parametrize(
    ("text", "display_name"),
    [
        ('"Alice" <sip:alice@example.com>', "Alice"),
        ('"C:\\\\dir" <sip:c@example.com>', "C:\\dir"),
        ('"a\\bc" <sip:a@example.com>', "abc"),
        ('"Doe, John; Jr." <sip:john@example.com>', "Doe, John; Jr."),
        ('"<sip:fake@example.com>" <sip:real@example.com>', "<sip:fake@example.com>"),
        ('"Zoë ☎" <sip:zoe@example.com>', "Zoë ☎"),
        ('"+14155550100" <sip:+14155550100@example.com>', "+14155550100"),
        ('"Alice"<sip:alice@example.com>', "Alice"),
        ('  "Alice"   <sip:alice@example.com>', "Alice"),
    ],
    ids=["simple", "escaped-backslash", "escaped-letter", "comma-semicolon", "angle-brackets",
         "utf8", "number", "no-space-before-bracket", "leading-space"],
)
def test_quoted_display_names(text, display_name):
    na = parse_name_addr(text)
    assert na.display_name == display_name


@pytest.mark.parametrize(
    ("text", "display_name"),
    [
        ("Bob <sip:bob@biloxi.example.com>", "Bob"),
        ("Bob Smith <sip:bob@biloxi.example.com>", "Bob Smith"),
        ("caller<sip:caller@example.com>", "caller"),
        ("Anonymous <sip:anonymous@anonymous.invalid>", "Anonymous"),
        ("+14155550100 <sip:+14155550100@example.com>", "+14155550100"),
    ],
    ids=["one-token", "two-tokens", "no-space", "anonymous", "number-token"],
)
def test_token_display_names(text, display_name):
    assert parse_name_addr(text).display_name == display_name


def test_no_display_name():
    na = parse_name_addr("<sip:bob@biloxi.example.com>")
    assert na.display_name is None
    assert na.params == {}
    assert na.tag is None


def test_uri_params_inside_brackets_belong_to_the_uri():
    na = parse_name_addr("<sip:+14155550100@gw.example.com;user=phone>;tag=9fxced76sl")
    assert na.uri.user == "+14155550100"
    assert na.uri.params == {"user": "phone"}
    assert na.params == {"tag": "9fxced76sl"}
    assert na.tag == "9fxced76sl"


@pytest.mark.parametrize(
    ("text", "uri", "params"),
    [
        ("sip:bob@biloxi.example.com;tag=1", "sip:bob@biloxi.example.com", {"tag": "1"}),
        ("sip:+14155550100@gw.example.com;user=phone;tag=x",
         "sip:+14155550100@gw.example.com", {"user": "phone", "tag": "x"}),
        ("sip:bob@192.0.2.4:5070;expires=60", "sip:bob@192.0.2.4:5070", {"expires": "60"}),
        ("sip:bob@biloxi.example.com", "sip:bob@biloxi.example.com", {}),
        ("tel:+14155550100;tag=abc", "tel:+14155550100", {"tag": "abc"}),
    ],
    ids=["tag", "user-phone-is-a-header-param", "port", "bare", "tel"],
)
def test_addr_spec_params_belong_to_the_header(text, uri, params):
    # RFC 3261 §20.10: without angle brackets, every ;param is a header parameter.
    na = parse_name_addr(text)
    assert na.display_name is None
    assert str(na.uri) == uri
    assert na.uri.params == {}
    assert na.params == params


@pytest.mark.parametrize(
    ("text", "params"),
    [
        ("<sip:bob@192.0.2.4>;expires=60;q=0.7", {"expires": "60", "q": "0.7"}),
        ("<sip:p1.example.com;lr>", {}),
        ("<sip:a@example.com>;foo", {"foo": None}),
        ('<sip:a@example.com>;foo="a b;c,d"', {"foo": '"a b;c,d"'}),
        ("<sip:a@example.com> ; tag = 42 ; q=1", {"tag": "42", "q": "1"}),
        ("<sip:a@example.com>;+sip.instance=\"<urn:uuid:0000>\"",
         {"+sip.instance": '"<urn:uuid:0000>"'}),
    ],
    ids=["contact-params", "route-lr", "flag", "quoted-value", "lws", "instance"],
)
def test_header_params(text, params):
    assert parse_name_addr(text).params == params


def test_route_lr_is_a_uri_flag():
    na = parse_name_addr("<sip:p1.example.com;lr>")
    assert na.uri.params == {"lr": None}
    assert na.uri.host == "p1.example.com"


def test_tag_param_name_is_case_insensitive():
    # RFC 3261 §7.3.1: parameter names are case-insensitive (tag values are not).
    na = parse_name_addr("<sip:a@example.com>;TAG=AbC")
    assert na.tag == "AbC"


def test_other_uri_schemes():
    assert parse_name_addr("<tel:+14155550100>;tag=1").uri.scheme == "tel"
    na = parse_name_addr('"Info" <mailto:alice@example.com>')
    assert na.uri.scheme == "mailto"
    assert na.uri.opaque == "alice@example.com"


def test_unquoted_non_token_display_name_is_read_liberally():
    # RFC 4475 §3.1.2.15 (baddn): rejecting is reasonable, inferring the quotes is allowed.
    # sipmask infers them (tests/vectors/rfc4475/expected.toml), and str() repairs the value.
    na = parse_name_addr("Bell, Alexander <sip:a.g.bell@bell-tel.com>;tag=43")
    assert na.display_name == "Bell, Alexander"
    assert na.tag == "43"
    assert str(na) == '"Bell, Alexander" <sip:a.g.bell@bell-tel.com>;tag=43'


# --- str() -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('"J \\"Bob\\" Doe" <sip:bob@biloxi.example.com>;tag=a48s',
         '"J \\"Bob\\" Doe" <sip:bob@biloxi.example.com>;tag=a48s'),
        ("sip:bob@biloxi.example.com;tag=1", "<sip:bob@biloxi.example.com>;tag=1"),
        ("sip:bob@biloxi.example.com", "<sip:bob@biloxi.example.com>"),
        ("Bob Smith <sip:bob@biloxi.example.com>", '"Bob Smith" <sip:bob@biloxi.example.com>'),
        ("<sip:p1.example.com;lr>", "<sip:p1.example.com;lr>"),
        ("<sip:a@example.com>;foo;q=0.5", "<sip:a@example.com>;foo;q=0.5"),
        ('"C:\\\\dir" <sip:c@example.com>', '"C:\\\\dir" <sip:c@example.com>'),
    ],
    ids=["escaped-quotes", "addr-spec", "addr-spec-bare", "token-name-quoted", "lr", "flag",
         "escaped-backslash"],
)
def test_str_is_always_name_addr_form(text, expected):
    assert str(parse_name_addr(text)) == expected


def test_constructor_and_str():
    uri = URI("sip", "bob", "biloxi.example.com")
    assert str(NameAddr(uri)) == "<sip:bob@biloxi.example.com>"
    assert str(NameAddr(uri, 'J "Bob" \\ Doe', {"tag": "x"})) == \
        '"J \\"Bob\\" \\\\ Doe" <sip:bob@biloxi.example.com>;tag=x'
    na = NameAddr(uri, None, {"tag": "t1", "expires": "60"})
    assert na.tag == "t1"
    assert na.display_name is None


def test_str_round_trips_through_parse():
    uri = URI("sip", "+14155550100", "gw.example.com", params={"user": "phone"})
    na = NameAddr(uri, "Zoë, \"the\" caller", {"tag": "9"})
    back = parse_name_addr(str(na))
    assert back.display_name == 'Zoë, "the" caller'
    assert back.uri == uri
    assert back.uri.params == {"user": "phone"}
    assert back.params == {"tag": "9"}


def test_params_can_be_set():
    na = parse_name_addr("<sip:bob@biloxi.example.com>")
    na.params["tag"] = "fresh"
    assert na.tag == "fresh"
    assert str(na) == "<sip:bob@biloxi.example.com>;tag=fresh"
    na.display_name = "Masked"
    assert str(na) == '"Masked" <sip:bob@biloxi.example.com>;tag=fresh'


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "",
        '"Bob <sip:bob@biloxi.example.com>',
        '"Bob\\" <sip:bob@biloxi.example.com>',
        "<sip:bob@biloxi.example.com",
        "Bob <sip:bob@biloxi.example.com",
        "sip:bob@biloxi.example.com>",
        '"Bob"',
        "<>",
        "Bob",
        "<sip:bob@biloxi.example.com> trailing",
        "<sip:bob@biloxi.example.com>;;tag=1",
        "<sip:bob@>",
        "<<sip:bob@biloxi.example.com>>",
    ],
    ids=["empty", "unterminated-quote", "escaped-closing-quote", "missing-gt",
         "token-name-missing-gt", "missing-lt", "name-only-quoted", "empty-brackets",
         "name-only-token", "trailing-garbage", "double-semicolon",
         "bad-uri", "nested-brackets"],
)
def test_invalid_name_addrs_raise_parse_error(text):
    with pytest.raises(ParseError):
        parse_name_addr(text)


@pytest.mark.parametrize("text", ["\x01<sip:a@example.com>", "Bob\x7f <sip:a@example.com>"])
def test_control_characters_in_an_unquoted_display_name_are_rejected(text):
    with pytest.raises(ParseError):
        parse_name_addr(text)
