"""Digest answers checked against the worked examples of RFC 2617 §3.5 and RFC 7616 §3.9.1."""

from __future__ import annotations

import re

import pytest

from sipmask.b2bua.digest import DigestError, authorization, parse_challenge


def _param(value: str, name: str) -> str:
    match = re.search(rf'{name}="?([^",]+)"?', value)
    assert match is not None, value
    return match.group(1)


def test_rfc2617_example() -> None:
    challenge = (
        'Digest realm="testrealm@host.com", qop="auth,auth-int", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    value = authorization(challenge, "GET", "/dir/index.html", "Mufasa", "Circle Of Life",
                          cnonce="0a4f113b", nc=1)
    assert _param(value, "response") == "6629fae49393a05397450978507c4ef1"
    assert _param(value, "nc") == "00000001" and "qop=auth" in value
    assert _param(value, "opaque") == "5ccc069c403ebaf9f0171e9517f40e41"


def test_rfc7616_sha256_example() -> None:
    challenge = (
        'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=SHA-256, '
        'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
        'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
    )
    value = authorization(challenge, "GET", "/dir/index.html", "Mufasa", "Circle of Life",
                          cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", nc=1)
    assert _param(value, "response") == (
        "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
    )


def test_no_qop_uses_the_rfc2069_form() -> None:
    value = authorization('Digest realm="r", nonce="n"', "INVITE", "sip:a@b", "u", "p")
    assert "qop" not in value and "cnonce" not in value


@pytest.mark.parametrize(
    "challenge",
    ['Basic realm="x"', 'Digest realm="r"', 'Digest realm="r", nonce="n", algorithm=SHA-512',
     'Digest realm="r", nonce="n", qop="auth-int"'],
)
def test_unanswerable_challenges_raise(challenge: str) -> None:
    with pytest.raises(DigestError):
        authorization(challenge, "INVITE", "sip:a@b", "u", "p")


def test_quoted_values_unescape() -> None:
    assert parse_challenge(r'Digest realm="a\"b", nonce="n"')["realm"] == 'a"b'
