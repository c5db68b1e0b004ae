"""Numbers as trunks write them -> E.164, and the caller's identity for the binding lookup.

A call from a carrier trunk names two parties: the virtual number dialled (the Request-URI
user) and the caller (P-Asserted-Identity when the trunk is trusted to assert it, RFC 3325,
else From). Carriers write both in their own national habits (`09876543210`, `0044...`,
`tel:+91-98765-43210`, `sip:+91...;npdi@host;user=phone`), while the store matches only on
normalised keys: E.164 (`+` and digits) or `user@host` for SIP-URI participants. Every
function here turns what arrived into such a key or into None; none raises and none logs, so
no real number can leak from here into a log or an error.
"""

from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers

from .._core import URI, ParseError, Request, parse_name_addr, unescape
from ..store.errors import InvalidParticipant
from ..store.numbers import participant_key
from .settings import NumberRules

__all__ = [
    "ANONYMOUS_USERS",
    "caller_identity",
    "dialled_number",
    "normalise",
    "uri_number",
]

ANONYMOUS_USERS: frozenset[str] = frozenset(
    ("anonymous", "restricted", "unavailable", "unknown", "private", "withheld")
)
"""From/PAI users that carriers write for a withheld caller (lower case; compared in any case)."""

_E164 = re.compile(r"\+[1-9][0-9]{1,14}", re.ASCII)
_DIGITS = re.compile(r"[0-9]+", re.ASCII)
_NUMBERISH = re.compile(r"\+?[0-9]+", re.ASCII)
# RFC 3966 §5.1.1 visual separators; they carry no meaning.
_VISUAL = str.maketrans("", "", " -.()")
_ANONYMOUS_HOST = "anonymous.invalid"  # RFC 3323 §4.1.1.3
_MAX_TEXT = 128
"""Longer text is no number; bounds the work done on hostile input."""
_MIN_NSN = 4
"""Shortest national significant number in use (Niue, Saint Helena): a national prefix
followed by fewer digits is a short code or an extension, not a number."""
_MAX_PAI = 10
"""RFC 3325 allows one sip and one tel P-Asserted-Identity; more are only looked at up to this."""


def normalise(text: str, rules: NumberRules) -> str | None:
    """A number as a trunk writes it -> E.164, or None when it cannot be read as one.

    `+CC...`, the trunk's international prefix, its national prefix (with `country_code`),
    a national significant number without prefix (with `country_code`, unless the digits read
    better as an already international number), and `tel:` (RFC 3966, a local number taken in
    a global `phone-context`) are understood; visual separators ` -.()` are dropped.
    """
    try:
        if not isinstance(text, str) or len(text) > _MAX_TEXT:
            return None
        value = text.strip()
        if value[:4].lower() == "tel:":
            return _tel(value[4:], rules)
        return _plain(value, rules)
    except Exception:  # the contract is None, never an exception
        return None


def uri_number(uri: URI, rules: NumberRules) -> str | None:
    """The number a sip/sips/tel URI names, normalised, or None.

    A tel-in-sip user keeps tel parameters after `;` (`+91...;npdi`, `;rn=...`,
    `;phone-context=...`): they are cut off (phone-context is honoured).
    """
    try:
        scheme = uri.scheme
        user = uri.user
        if not user:
            return None
        if scheme == "tel":
            context = uri.params.get("phone-context")
            return _tel_number(unescape(user), context, rules)
        if scheme in ("sip", "sips"):
            return _tel(unescape(user), rules)
        return None
    except Exception:  # pure code; a surprise must not fail the call path
        return None


def dialled_number(request: Request, rules: NumberRules) -> str | None:
    """The virtual number dialled: the Request-URI's number; None if it has none."""
    try:
        return uri_number(request.parsed_uri, rules)
    except Exception:  # a built request may carry a URI `parse` never checked
        return None


def caller_identity(request: Request, rules: NumberRules, *, trusted: bool) -> str | None:
    """The caller's key for the binding lookup (E.164 or `user@host`), or None.

    Trusted trunk: the first P-Asserted-Identity value naming a number wins, then the first
    naming a SIP endpoint, then From. Untrusted: From only (PAI, P-Preferred-Identity and
    Remote-Party-ID are the caller's own claims there). P-Preferred-Identity and Remote-Party-ID
    are never used: neither is an assertion by the trunk.
    """
    try:
        if trusted:
            endpoint: str | None = None
            for value in request.headers("P-Asserted-Identity")[:_MAX_PAI]:
                try:
                    key = _identity(parse_name_addr(value).uri, rules)
                except (ParseError, ValueError):
                    continue
                if key is not None and key[0] == "+":  # E.164: SIP keys never start with '+'
                    return key
                endpoint = endpoint or key
            if endpoint is not None:
                return endpoint
        try:
            from_ = request.from_
        except (ParseError, ValueError):
            return None
        return None if from_ is None else _identity(from_.uri, rules)
    except Exception:  # pure code; a surprise must not fail the call path
        return None


# --- internals ---------------------------------------------------------------------------------


def _identity(uri: URI, rules: NumberRules) -> str | None:
    """The key of one identity URI: its number, else a SIP endpoint's `user@host`.

    A user written as a number (`+...`, a tel: URI, `user=phone`) that cannot be normalised is
    no identity: keying it as a SIP endpoint would only invent a party nobody registered.
    """
    if not uri.user or _is_anonymous(uri):
        return None
    number = uri_number(uri, rules)
    if number is not None:
        return number
    if uri.scheme not in ("sip", "sips") or not uri.host:
        return None
    if (uri.params.get("user") or "").lower() == "phone":
        return None
    user = uri.user.split(";", 1)[0]
    if not user or unescape(user).translate(_VISUAL).startswith("+"):
        return None
    try:
        return participant_key(f"{user}@{uri.host}")
    except (InvalidParticipant, ValueError):
        return None


def _is_anonymous(uri: URI) -> bool:
    """RFC 3323 anonymous From (`sip:anonymous@anonymous.invalid`) and carrier variants."""
    if (uri.host or "").lower() == _ANONYMOUS_HOST:
        return True
    user = unescape(uri.user or "").split(";", 1)[0].strip().lower()
    return user in ANONYMOUS_USERS


def _tel(body: str, rules: NumberRules) -> str | None:
    """`number[;param...]` (a tel: URI without its scheme, or a tel-in-sip user)."""
    number, _, params = body.partition(";")
    context = None
    for param in params.split(";"):
        name, _, val = param.partition("=")
        if name.strip().lower() == "phone-context":
            context = val.strip()
            break
    return _tel_number(number, context, rules)


def _tel_number(number: str, context: str | None, rules: NumberRules) -> str | None:
    """A tel number: global (`+...`), or local read in a global `phone-context` (RFC 3966
    §5.1.5: a country code `+91` is read like the trunk's country, a longer prefix such as
    `+1-212` is prepended), else by the trunk's own rules."""
    value = number.strip().translate(_VISUAL)
    if value.startswith("+") or not context:
        return _plain(value, rules)
    ctx = context.translate(_VISUAL)
    if not ctx.startswith("+") or not _DIGITS.fullmatch(ctx[1:]):
        return _plain(value, rules)  # a domain name context: the trunk's numbering
    digits = ctx[1:]
    if len(digits) <= 3:
        local_rules = NumberRules(
            country_code=digits,
            national_prefix=rules.national_prefix,
            international_prefix=rules.international_prefix,
        )
        return _plain(value, local_rules)
    if not _DIGITS.fullmatch(value):
        return None
    return _checked("+" + digits + value)


def _plain(text: str, rules: NumberRules) -> str | None:
    value = text.translate(_VISUAL)
    if value.startswith("+"):
        return _checked(value)
    if not _DIGITS.fullmatch(value):
        return None
    intl = rules.international_prefix
    if intl and value.startswith(intl):
        return _checked("+" + value[len(intl) :])
    country = rules.country_code
    if not country:
        return None
    national = rules.national_prefix
    if national and value.startswith(national):
        rest = value[len(national) :]
        return _checked("+" + country + rest) if len(rest) >= _MIN_NSN else None
    return _unprefixed(value, country)


@lru_cache(maxsize=8192)
def _unprefixed(digits: str, country: str) -> str | None:
    """Digits with no prefix: the national significant number of the trunk's country, unless
    they read better as an international number written without `+` (`919876543210` from an
    Indian trunk). `phonenumbers` decides; a tie goes to the national reading. Neither reading
    even possible in length (a PBX extension `1001`) gives None."""
    national = "+" + country + digits
    international = "+" + digits
    best, best_score = None, 0
    for candidate in (national, international):
        score = _plausibility(candidate)
        if score > best_score:
            best, best_score = candidate, score
    return best


def _plausibility(candidate: str) -> int:
    """2 valid number, 1 possible by length, 0 not a number (per phonenumbers' metadata)."""
    if not _E164.fullmatch(candidate):
        return 0
    try:
        parsed = phonenumbers.parse(candidate, None)
    except phonenumbers.NumberParseException:
        return 0
    if phonenumbers.is_valid_number(parsed):
        return 2
    return 1 if phonenumbers.is_possible_number(parsed) else 0


def _checked(candidate: str) -> str | None:
    return candidate if _E164.fullmatch(candidate) else None
