"""Number normalisation per trunk and the caller identity the B2BUA looks bindings up by.

The numbers are real-looking (Indian mobiles, UK/US fiction ranges); nothing here prints them.
"""

from __future__ import annotations

import logging
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipmask._core import URI, Request, parse, parse_uri
from sipmask.b2bua.numbers import (
    ANONYMOUS_USERS,
    caller_identity,
    dialled_number,
    normalise,
    uri_number,
)
from sipmask.config import NumberRules

IN = NumberRules(country_code="91")
UK = NumberRules(country_code="44")
US = NumberRules(country_code="1", national_prefix="1", international_prefix="011")
IT = NumberRules(country_code="39", national_prefix="")
NONE = NumberRules()
E164 = re.compile(r"^\+[1-9][0-9]{1,14}$")

MOBILE = "+919876543210"
OTHER = "+919812345678"
LONDON = "+442079460000"
NEW_YORK = "+12125550123"


# --- normalise ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "rules", "expected"),
    [
        # Already E.164, with or without visual separators.
        ("+919876543210", IN, MOBILE),
        ("+91 98765-43210", IN, MOBILE),
        ("+91 (98765) 432.10", IN, MOBILE),
        ("  +919876543210  ", IN, MOBILE),
        ("+919876543210", NONE, MOBILE),
        # International prefix.
        ("00919876543210", IN, MOBILE),
        ("0091 98765 43210", IN, MOBILE),
        ("00919876543210", NONE, MOBILE),
        ("011442079460000", US, LONDON),
        # National prefix + the trunk's country code.
        ("09876543210", IN, MOBILE),
        ("098765-43210", IN, MOBILE),
        ("02079460000", UK, LONDON),
        ("020 7946 0000", UK, LONDON),
        ("12125550123", US, NEW_YORK),
        # National significant number written without prefix.
        ("9876543210", IN, MOBILE),
        ("2079460000", UK, LONDON),
        ("2125550123", US, NEW_YORK),
        ("0612345678", IT, "+390612345678"),
        # Digits that are already international, only missing the '+'.
        ("919876543210", IN, MOBILE),
        # An international number dialled with the prefix through a trunk of another country.
        ("00919876543210", UK, MOBILE),
        ("00442079460000", IN, LONDON),
        ("0012125550123", IN, NEW_YORK),
        # tel: URIs (RFC 3966).
        ("tel:+919876543210", NONE, MOBILE),
        ("TEL:+919876543210", NONE, MOBILE),
        ("tel:+91-98765-43210", NONE, MOBILE),
        ("tel:+91.98765.43210;phone-context=example.com", NONE, MOBILE),
        ("tel:+919876543210;phone-context=+91", UK, MOBILE),
        ("tel:9876543210;phone-context=+91", NONE, MOBILE),
        ("tel:09876543210;phone-context=+91", NONE, MOBILE),
        ("tel:555-0123;phone-context=+1-212", NONE, NEW_YORK),
        ("tel:09876543210;phone-context=carrier.example", IN, MOBILE),
    ],
)
def test_normalise_reads(text: str, rules: NumberRules, expected: str) -> None:
    assert normalise(text, rules) == expected


@pytest.mark.parametrize(
    ("text", "rules"),
    [
        # No country code: a national number cannot be placed.
        ("09876543210", NONE),
        ("9876543210", NONE),
        ("tel:09876543210", NONE),
        ("tel:9876543210;phone-context=carrier.example", NONE),
        # Not numbers.
        ("", IN),
        ("   ", IN),
        ("alice", IN),
        ("+", IN),
        ("00", IN),
        ("tel:", IN),
        ("*121#", IN),
        ("98765 x43210", IN),
        ("+91\n9876543210", IN),
        ("sip:+919876543210@carrier.example", IN),
        # Not E.164: leading zero country code, too long.
        ("+0919876543210", IN),
        ("+1234567890123456", IN),
        ("001234567890123456", IN),
        # Non-ASCII digits are not digits on the wire.
        ("\u0669\u0668\u0667\u0666\u0665\u0664\u0663\u0662\u0661\u0660", IN),
        # A national prefix before too few digits, an extension: short codes, not numbers.
        ("0", IN),
        ("0123", IN),
        ("1001", IN),
        # A huge input is refused without work.
        ("9" * 10_000, IN),
    ],
)
def test_normalise_refuses(text: str, rules: NumberRules) -> None:
    assert normalise(text, rules) is None


rules_strategy = st.builds(
    NumberRules,
    country_code=st.one_of(st.none(), st.from_regex(r"[1-9][0-9]{0,2}", fullmatch=True)),
    national_prefix=st.from_regex(r"[0-9]{0,4}", fullmatch=True),
    international_prefix=st.from_regex(r"[0-9]{1,4}", fullmatch=True),
)
number_like = st.text(alphabet="0123456789+-.() tel:;=phonecxt\u0660\n", max_size=40)


@given(text=st.one_of(st.text(), number_like), rules=rules_strategy)
def test_normalise_never_raises_and_returns_e164(text: str, rules: NumberRules) -> None:
    result = normalise(text, rules)
    assert result is None or E164.fullmatch(result)


@given(digits=st.from_regex(r"[1-9][0-9]{6,12}", fullmatch=True), rules=rules_strategy)
def test_normalise_keeps_e164_unchanged(digits: str, rules: NumberRules) -> None:
    assert normalise("+" + digits, rules) == "+" + digits


# --- uri_number and dialled_number -------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "rules", "expected"),
    [
        ("sip:+919876543210@carrier.example;user=phone", NONE, MOBILE),
        ("sip:+919876543210;npdi@carrier.example;user=phone", NONE, MOBILE),
        ("sip:+919876543210;rn=+919800000000;npdi@carrier.example;user=phone", NONE, MOBILE),
        ("sip:%2B919876543210@carrier.example", NONE, MOBILE),
        ("sip:%2B91%2098765%2043210@carrier.example", NONE, MOBILE),
        ("sips:09876543210@carrier.example", IN, MOBILE),
        ("sip:9876543210@10.0.0.1:5060;transport=udp", IN, MOBILE),
        ("sip:00442079460000@10.0.0.1", IN, LONDON),
        ("sip:9876543210;phone-context=+91@carrier.example;user=phone", NONE, MOBILE),
        ("tel:+91-98765-43210", NONE, MOBILE),
        ("tel:98765.43210;phone-context=+91", NONE, MOBILE),
        ("tel:02079460000;phone-context=carrier.example", UK, LONDON),
        # Not numbers.
        ("sip:alice@carrier.example", IN, None),
        ("sip:carrier.example", IN, None),
        ("sip:09876543210@carrier.example", NONE, None),
        ("tel:9876543210", NONE, None),
        ("mailto:alice@example.com", IN, None),
    ],
)
def test_uri_number(uri: str, rules: NumberRules, expected: str | None) -> None:
    assert uri_number(parse_uri(uri), rules) == expected


def test_uri_number_on_built_uris() -> None:
    assert uri_number(URI("tel", "+919876543210"), NONE) == MOBILE
    assert uri_number(URI("sip", "09876543210", "carrier.example"), IN) == MOBILE
    assert uri_number(URI("sip", None, "carrier.example"), IN) is None
    assert uri_number(URI("sip", "", "carrier.example"), IN) is None
    assert uri_number(URI("http", opaque="//example.com/9876543210"), IN) is None


def invite(
    uri: str = "sip:+919800000001@10.0.0.1;user=phone",
    from_: str = "<sip:+919876543210@carrier.example;user=phone>;tag=f1",
    extra: tuple[tuple[str, str], ...] = (),
) -> Request:
    """An INVITE as a carrier sends it, parsed from the wire like the server would."""
    lines = [
        f"INVITE {uri} SIP/2.0",
        "Via: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bK-numbers-1",
        f"From: {from_}",
        "To: <sip:+919800000001@10.0.0.1;user=phone>",
        "Call-ID: numbers-test@203.0.113.5",
        "CSeq: 1 INVITE",
        "Max-Forwards: 70",
        *(f"{name}: {value}" for name, value in extra),
        "Content-Length: 0",
        "",
        "",
    ]
    message = parse("\r\n".join(lines).encode())
    assert isinstance(message, Request)
    return message


@pytest.mark.parametrize(
    ("uri", "rules", "expected"),
    [
        ("sip:+919800000001@10.0.0.1;user=phone", NONE, "+919800000001"),
        ("sip:09800000001@10.0.0.1;user=phone", IN, "+919800000001"),
        ("sip:9800000001@10.0.0.1", IN, "+919800000001"),
        ("tel:+91-98000-00001", NONE, "+919800000001"),
        ("sip:support@10.0.0.1", IN, None),
        ("sip:10.0.0.1", IN, None),
        ("sip:09800000001@10.0.0.1", NONE, None),
    ],
)
def test_dialled_number(uri: str, rules: NumberRules, expected: str | None) -> None:
    assert dialled_number(invite(uri=uri), rules) == expected


def test_dialled_number_of_built_requests() -> None:
    assert dialled_number(Request("INVITE", "tel:+919800000001"), NONE) == "+919800000001"
    # A built Request-URI is not validated; its parse error must not escape.
    assert dialled_number(Request("INVITE", "sip:"), IN) is None
    assert dialled_number(Request("INVITE", "x"), IN) is None


# --- caller_identity ---------------------------------------------------------------------------

ANON_FROM = '"Anonymous" <sip:anonymous@anonymous.invalid>;tag=f1'
PAI = "P-Asserted-Identity"


@pytest.mark.parametrize(
    ("from_", "extra", "rules", "trusted", "expected"),
    [
        # From alone, in the trunk's national forms.
        ("<sip:+919876543210@carrier.example;user=phone>;tag=f1", (), NONE, False, MOBILE),
        ("<sip:09876543210@carrier.example>;tag=f1", (), IN, False, MOBILE),
        ("<sip:%2B919876543210@carrier.example>;tag=f1", (), NONE, False, MOBILE),
        ("<tel:+91-98765-43210>;tag=f1", (), NONE, True, MOBILE),
        ("<sip:+919876543210;npdi@carrier.example;user=phone>;tag=f1", (), NONE, False, MOBILE),
        # A trusted PAI wins over From; an untrusted one is ignored entirely.
        ("<sip:09876543210@carrier.example>;tag=f1", ((PAI, f"<tel:{OTHER}>"),), IN, True, OTHER),
        ("<sip:09876543210@carrier.example>;tag=f1", ((PAI, f"<tel:{OTHER}>"),), IN, False, MOBILE),
        # Privacy: id with an anonymous From: only a trusted PAI names the caller.
        (
            ANON_FROM,
            (("Privacy", "id"), (PAI, f"<sip:{OTHER}@carrier.example;user=phone>")),
            NONE,
            True,
            OTHER,
        ),
        (
            ANON_FROM,
            (("Privacy", "id"), (PAI, f"<sip:{OTHER}@carrier.example;user=phone>")),
            NONE,
            False,
            None,
        ),
        (
            ANON_FROM,
            (("Privacy", "id"), (PAI, '"Caller" <sip:098123-45678@10.1.1.1>')),
            IN,
            True,
            OTHER,
        ),
        # Several PAI values: the first naming a number wins, in one field or several.
        (
            ANON_FROM,
            ((PAI, f"<sip:{OTHER}@carrier.example;user=phone>, <tel:{MOBILE}>"),),
            NONE,
            True,
            OTHER,
        ),
        (
            ANON_FROM,
            ((PAI, "<sip:gateway@carrier.example>"), (PAI, f"<tel:{OTHER}>")),
            NONE,
            True,
            OTHER,
        ),
        (
            ANON_FROM,
            ((PAI, "<sip:anonymous@anonymous.invalid>"), (PAI, f"<tel:{OTHER}>")),
            NONE,
            True,
            OTHER,
        ),
        (ANON_FROM, ((PAI, "<tel:09876543210>"), (PAI, f"<tel:{OTHER}>")), NONE, True, OTHER),
        # A PAI that names no usable number leaves From to decide.
        ("<sip:09876543210@carrier.example>;tag=f1", ((PAI, "<tel:012>"),), IN, True, MOBILE),
        (
            "<sip:09876543210@carrier.example>;tag=f1",
            ((PAI, "<sip:anonymous@anonymous.invalid>"),),
            IN,
            True,
            MOBILE,
        ),
        # A PAI naming a SIP endpoint is still the asserted identity.
        (
            "<sip:09876543210@carrier.example>;tag=f1",
            ((PAI, "<sip:Gateway@App.Example>"),),
            IN,
            True,
            "Gateway@app.example",
        ),
        # Malformed PAI: skipped, From decides, nothing raises.
        (
            "<sip:09876543210@carrier.example>;tag=f1",
            ((PAI, "<sip:+91 98123@h>"),),
            IN,
            True,
            MOBILE,
        ),
        (
            "<sip:09876543210@carrier.example>;tag=f1",
            ((PAI, '"unterminated <tel:+1'),),
            IN,
            True,
            MOBILE,
        ),
        ("<sip:09876543210@carrier.example>;tag=f1", ((PAI, "<<>>"), (PAI, "")), IN, True, MOBILE),
        (ANON_FROM, ((PAI, "garbage"),), IN, True, None),
        # P-Preferred-Identity and Remote-Party-ID never name the caller.
        (ANON_FROM, (("P-Preferred-Identity", f"<tel:{OTHER}>"),), NONE, True, None),
        (
            ANON_FROM,
            (("Remote-Party-ID", f"<sip:{OTHER}@carrier.example>;party=calling"),),
            NONE,
            True,
            None,
        ),
        (
            ANON_FROM,
            (
                ("P-Preferred-Identity", f"<tel:{OTHER}>"),
                ("Remote-Party-ID", f"<sip:{OTHER}@carrier.example>;privacy=full"),
            ),
            NONE,
            False,
            None,
        ),
        # SIP endpoints as participants: the store's user@host key.
        (
            "<sip:Alice@PBX.Example.COM:5060;transport=tcp>;tag=f1",
            (),
            IN,
            False,
            "Alice@pbx.example.com",
        ),
        ("<sips:app-gateway@gw.example>;tag=f1", (), IN, True, "app-gateway@gw.example"),
        ("<sip:1001@pbx.example>;tag=f1", (), IN, False, "1001@pbx.example"),
        # A user written as a number that cannot be read is no identity at all.
        ("<sip:09876543210@carrier.example;user=phone>;tag=f1", (), NONE, False, None),
        ("<sip:+0919876543210@carrier.example>;tag=f1", (), IN, False, None),
        ("<tel:09876543210>;tag=f1", (), NONE, False, None),
    ],
)
def test_caller_identity(
    from_: str,
    extra: tuple[tuple[str, str], ...],
    rules: NumberRules,
    trusted: bool,
    expected: str | None,
) -> None:
    assert caller_identity(invite(from_=from_, extra=extra), rules, trusted=trusted) == expected


@pytest.mark.parametrize(
    "from_",
    [
        ANON_FROM,
        "<sip:anonymous@carrier.example>;tag=f1",
        "<sip:Anonymous@carrier.example>;tag=f1",
        "<sip:RESTRICTED@carrier.example>;tag=f1",
        "<sip:unavailable@carrier.example>;tag=f1",
        "<sip:Unknown@carrier.example>;tag=f1",
        "<sip:private@carrier.example>;tag=f1",
        "<sip:withheld@carrier.example>;tag=f1",
        "<sip:%61nonymous@carrier.example>;tag=f1",
        "<sip:+919876543210@anonymous.invalid>;tag=f1",
        "<sip:carrier.example>;tag=f1",
        '"+919876543210" <sip:carrier.example>;tag=f1',
    ],
)
@pytest.mark.parametrize("trusted", [False, True])
def test_anonymous_from_has_no_identity(from_: str, trusted: bool) -> None:
    assert caller_identity(invite(from_=from_), IN, trusted=trusted) is None


def test_anonymous_users() -> None:
    assert ANONYMOUS_USERS == {
        "anonymous",
        "restricted",
        "unavailable",
        "unknown",
        "private",
        "withheld",
    }


def test_caller_identity_of_built_requests() -> None:
    # Built requests are not validated: a malformed From or no From at all gives None.
    bad_from = Request("INVITE", "sip:a@b", [("From", "garbage<"), (PAI, "<<>>")])
    assert caller_identity(bad_from, IN, trusted=True) is None
    assert caller_identity(bad_from, IN, trusted=False) is None
    no_from = Request("INVITE", "sip:a@b")
    assert caller_identity(no_from, IN, trusted=True) is None
    pai_only = Request("INVITE", "sip:a@b", [(PAI, f"<tel:{MOBILE}>")])
    assert caller_identity(pai_only, IN, trusted=True) == MOBILE
    assert caller_identity(pai_only, IN, trusted=False) is None


def test_nothing_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    """The module handles real numbers; it must not log them (nor anything)."""
    caplog.set_level(logging.DEBUG)
    request = invite(from_=ANON_FROM, extra=((PAI, "garbage"), (PAI, f"<tel:{MOBILE}>")))
    assert caller_identity(request, IN, trusted=True) == MOBILE
    assert normalise("09876543210", NONE) is None
    assert dialled_number(Request("INVITE", "sip:"), IN) is None
    assert caplog.records == []
