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

from ..privacy import mask_numbers_in
from .errors import InvalidParticipant

_E164 = re.compile(r"\+[1-9][0-9]{1,14}")
# Visual separators that people and carriers put in numbers (RFC 3966 §5.1.1 calls them
# "visual-separator"); they carry no meaning.
_VISUAL = str.maketrans("", "", " -.()")
_POOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_BAD_KEY_CHARS = re.compile(r"[\x00-\x20\x7f<>\"]")


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
