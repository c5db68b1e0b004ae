"""Normalisation of participant identifiers and virtual numbers.

The call path matches on normalised keys only: an E.164 number (`+` and digits) or a SIP URI
reduced to `user@host` (host lower-cased, no scheme, port or parameters; issue 4). Geo data for
the allocation preference comes from `phonenumbers` and is computed off the call path.
"""

from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import unquote

import phonenumbers

from .._core import parse_uri
from ..errors import ParseError
from ..privacy import mask_numbers_in
from .errors import InvalidParticipant

_E164 = re.compile(r"\+[1-9][0-9]{1,14}")
# Visual separators that people and carriers put in numbers (RFC 3966 §5.1.1 calls them
# "visual-separator"); they carry no meaning.
_VISUAL = str.maketrans("", "", " -.()")
_POOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_BAD_KEY_CHARS = re.compile(r"[\x00-\x20\x7f<>\"]")

# What an identifier or a route given over the API may hold (issue 13): it reaches the
# Request-URI of a B leg, so only plain parts are accepted: no escapes, no URI headers, no
# parameters but those a party or a next hop needs.
_URI_USER = re.compile(r"[A-Za-z0-9_.!~*'()+-]{1,64}")
_HOST_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"{_HOST_LABEL}(?:\.{_HOST_LABEL})*")
_TRUNK_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_TRANSPORTS = frozenset({"udp", "tcp", "tls"})
#: URI parameters (name -> allowed values; None: a flag) a participant may carry.
_PARTICIPANT_PARAMS: dict[str, frozenset[str] | None] = {
    "transport": _TRANSPORTS, "user": frozenset({"phone", "ip"}),
}
#: URI parameters a route may carry.
_ROUTE_PARAMS: dict[str, frozenset[str] | None] = {"transport": _TRANSPORTS, "lr": None}


def normalise_number(text: str) -> str:
    """Return the E.164 form (`+` and up to 15 digits) of a number.

    Args:
        text: a number such as `+91 98765-43210` or `tel:+919876543210`.

    Returns:
        The number without separators, e.g. `+919876543210`.

    Raises:
        ValueError: if it is not an E.164 number.
    """
    value = text.strip()
    if value[:4].lower() == "tel:":
        value = value[4:].split(";", 1)[0]
    value = value.translate(_VISUAL)
    if not _E164.fullmatch(value):
        raise ValueError(f"not an E.164 number: {mask_numbers_in(text)!r}")
    return value


def is_sip_identifier(identifier: str) -> bool:
    """Whether an identifier names a SIP URI (rather than a phone number)."""
    value = identifier.strip()
    return value[:4].lower() == "sip:" or value[:5].lower() == "sips:" or "@" in value


def participant_key(identifier: str) -> str:
    """Return the normalised key of a participant identifier.

    Args:
        identifier: an E.164 number (`+919876543210`, `tel:` allowed) or a SIP URI
            (`sip:alice@Example.COM:5060;transport=tcp`, scheme optional).

    Returns:
        `+919876543210` or `alice@example.com`.

    Raises:
        InvalidParticipant: if it is neither.
    """
    if is_sip_identifier(identifier):
        return _sip_key(identifier)
    try:
        return normalise_number(identifier)
    except ValueError:
        raise InvalidParticipant(
            f"participant must be an E.164 number or a SIP URI: {mask_numbers_in(identifier)!r}"
        ) from None


def _sip_key(identifier: str) -> str:
    value = identifier.strip()
    scheme, sep, rest = value.partition(":")
    if sep and scheme.lower() in ("sip", "sips"):
        value = rest
    # RFC 3261 §19.1.1: parameters follow ';', headers follow '?'; neither names the party.
    for stop in (";", "?"):
        value = value.split(stop, 1)[0]
    user, at, host = value.partition("@")
    if not at or not user or not host:
        raise InvalidParticipant(
            f"SIP URI participant needs user@host: {mask_numbers_in(identifier)!r}"
        )
    if host.startswith("["):
        end = host.find("]")
        if end < 0:
            raise InvalidParticipant(f"bad IPv6 host in {mask_numbers_in(identifier)!r}")
        host = host[: end + 1]
    else:
        host = host.split(":", 1)[0]
    # RFC 3261 §19.1.4: user is compared case-sensitively after unescaping, host is not.
    key = f"{unquote(user)}@{host.lower()}"
    if not host or _BAD_KEY_CHARS.search(key):
        raise InvalidParticipant(f"bad SIP URI participant: {mask_numbers_in(identifier)!r}")
    return key


def check_pool_name(name: str) -> str:
    """Return the pool name if it is 1-64 of `A-Z a-z 0-9 _ -` (it becomes a Redis hash tag
    and the first part of session ids), else raise ValueError."""
    if not _POOL_NAME.fullmatch(name):
        raise ValueError(f"pool name must be 1-64 of A-Z a-z 0-9 _ -: {name!r}")
    return name


@lru_cache(maxsize=65536)
def geo_of(key: str) -> tuple[str, str]:
    """Return `(country calling code, geographic area code)` of a normalised key.

    Either part is empty when unknown: a SIP URI, a mobile number (no area code in most
    plans), or a number `phonenumbers` cannot read.
    """
    if not key.startswith("+"):
        return ("", "")
    try:
        parsed = phonenumbers.parse(key, None)
    except phonenumbers.NumberParseException:
        return ("", "")
    national = phonenumbers.national_significant_number(parsed)
    length = phonenumbers.length_of_geographical_area_code(parsed)
    return (str(parsed.country_code), national[:length] if length else "")


def geo_score(participant: tuple[str, str], number: tuple[str, str]) -> int:
    """Preference of a virtual number for a participant: 2 same country and area code,
    1 same country, 0 otherwise (issue 4 geo-match)."""
    country, area = participant
    if not country or country != number[0]:
        return 0
    return 2 if area and area == number[1] else 1


def _plain_sip_uri(
    text: str, *, params: dict[str, frozenset[str] | None], need_user: bool
) -> str:
    """Check a SIP URI made of plain parts (`[sip:|sips:][user@]host[:port][;param]`) and
    return it rebuilt from them (scheme and host lower-cased, parameters in a fixed order).
    The core's URI parser splits it; this adds what a value given over the API may hold.

    Raises:
        ValueError: naming the rule broken, never the value.
    """
    if text[:4].lower() != "sip:" and text[:5].lower() != "sips:":
        text = "sip:" + text
    if "%" in text:
        raise ValueError("a SIP URI here may have no headers and no escapes")
    try:
        uri = parse_uri(text)
    except ParseError:
        raise ValueError("not a SIP URI of user@host[:port]") from None
    if uri.headers:
        raise ValueError("a SIP URI here may have no headers and no escapes")
    if need_user and uri.user is None:
        raise ValueError("a SIP URI participant needs user@host")
    if uri.user is not None and (uri.password is not None or not _URI_USER.fullmatch(uri.user)):
        raise ValueError("a SIP URI user is 1-64 of A-Z a-z 0-9 and _ . ! ~ * ' ( ) + -")
    host = (uri.host or "").lower()
    if not host.startswith("[") and (len(host) > 253 or not _HOSTNAME.fullmatch(host)):
        raise ValueError("a SIP URI host is a host name or an IP literal")
    if uri.port is not None and not 1 <= uri.port <= 65535:
        raise ValueError("a SIP URI port is 1-65535")
    # The parser keeps one value per name: count the written ones to refuse repeats.
    if len(text.rpartition("@")[2].split(";")) - 1 != len(uri.params):
        raise ValueError(f"URI parameters allowed here: {', '.join(sorted(params))}")
    for name, value in uri.params.items():
        if name not in params:
            raise ValueError(f"URI parameters allowed here: {', '.join(sorted(params))}")
        allowed = params[name]
        if (allowed is None) != (value is None) or (
            allowed is not None and value is not None and value.lower() not in allowed
        ):
            raise ValueError(f"bad value of the URI parameter {name}")
    rebuilt = f"{uri.scheme}:{uri.user}@" if uri.user is not None else f"{uri.scheme}:"
    rebuilt += host if uri.port is None else f"{host}:{uri.port}"
    for name in sorted(uri.params):
        value = uri.params[name]
        rebuilt += f";{name}" if value is None else f";{name}={value.lower()}"
    return rebuilt


def check_identifier(identifier: str) -> str:
    """Check a participant identifier given over the API (issue 13) and return its key.

    An E.164 number (`tel:` allowed, visual separators dropped), or a SIP URI
    `[sip:|sips:]user@host[:port]` whose user part has no escapes, with at most the
    `transport` and `user` parameters and no headers.

    Raises:
        InvalidParticipant: naming the rule broken, never the value.
    """
    if not is_sip_identifier(identifier):
        try:
            return normalise_number(identifier)
        except ValueError:
            raise InvalidParticipant(
                "a participant is an E.164 number or a SIP URI"
            ) from None
    try:
        _plain_sip_uri(identifier.strip(), params=_PARTICIPANT_PARAMS, need_user=True)
    except ValueError as exc:
        raise InvalidParticipant(str(exc)) from None
    return participant_key(identifier)


def check_route(route: str) -> str:
    """Check a participant's route (issue 13) and return it in canonical form: a trunk name
    (1-64 of `A-Z a-z 0-9 _ -`), kept as given, or a plain SIP URI (`sip:gw.example.net:5080;
    transport=tcp`: at most the `transport` and `lr` parameters, no headers, no maddr, no
    escapes), rebuilt from its parts.

    Raises:
        ValueError: naming the rule broken, never the value.
    """
    if _TRUNK_NAME.fullmatch(route):
        return route
    return _plain_sip_uri(route, params=_ROUTE_PARAMS, need_user=False)
