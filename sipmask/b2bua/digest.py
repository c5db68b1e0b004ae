"""Answering a carrier's digest challenge (RFC 3261 §22 with RFC 2617 / RFC 7616 hashes).

sipmask only ever *answers* challenges on the legs it builds towards a trunk that has
`[trunks.digest]` credentials; it never challenges, and a challenge never crosses to the other
leg (the engine maps 401/407 to 500 when it cannot answer).
"""

from __future__ import annotations

import hashlib
import re
import secrets

_PARAM = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,]+)\s*,?')
_HASHES = {
    "md5": hashlib.md5,
    "md5-sess": hashlib.md5,
    "sha-256": hashlib.sha256,
    "sha-256-sess": hashlib.sha256,
}


class DigestError(ValueError):
    """A challenge sipmask cannot answer (not Digest, no nonce, unknown algorithm)."""


def parse_challenge(value: str) -> dict[str, str]:
    """The parameters of a `Digest ...` WWW-Authenticate/Proxy-Authenticate value, names
    lower-cased, quotes removed. Raises DigestError."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        raise DigestError(f"not a Digest challenge: {scheme!r}")
    params = {}
    for match in _PARAM.finditer(rest):
        raw = match.group(2)
        if raw.startswith('"'):
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        params[match.group(1).lower()] = raw
    if "nonce" not in params or "realm" not in params:
        raise DigestError("challenge lacks realm or nonce")
    return params


def authorization(
    challenge: str,
    method: str,
    uri: str,
    username: str,
    password: str,
    *,
    cnonce: str | None = None,
    nc: int = 1,
) -> str:
    """The credentials value answering `challenge` for a request `method uri`.

    qop=auth is used when the challenge offers it (auth-int is not: it would hash the body).
    Raises DigestError.
    """
    params = parse_challenge(challenge)
    algorithm = params.get("algorithm", "MD5")
    hash_factory = _HASHES.get(algorithm.lower())
    if hash_factory is None:
        raise DigestError(f"unsupported digest algorithm {algorithm!r}")

    def h(text: str) -> str:
        return hash_factory(text.encode("utf-8")).hexdigest()

    realm, nonce = params["realm"], params["nonce"]
    cnonce = cnonce or secrets.token_hex(8)
    ha1 = h(f"{username}:{realm}:{password}")
    if algorithm.lower().endswith("-sess"):
        ha1 = h(f"{ha1}:{nonce}:{cnonce}")
    ha2 = h(f"{method}:{uri}")
    qops = [q.strip().lower() for q in params.get("qop", "").split(",") if q.strip()]
    fields = [
        f'username="{_quote(username)}"',
        f'realm="{_quote(realm)}"',
        f'nonce="{_quote(nonce)}"',
        f'uri="{_quote(uri)}"',
    ]
    if "auth" in qops:
        count = f"{nc:08x}"
        response = h(f"{ha1}:{nonce}:{count}:{cnonce}:auth:{ha2}")
        fields += [f'response="{response}"', "qop=auth", f"nc={count}",
                   f'cnonce="{cnonce}"']
    elif qops:
        raise DigestError(f"no supported qop in {params['qop']!r}")
    else:
        fields.append(f'response="{h(f"{ha1}:{nonce}:{ha2}")}"')
    fields.append(f"algorithm={algorithm}")
    if "opaque" in params:
        fields.append(f'opaque="{_quote(params["opaque"])}"')
    return "Digest " + ", ".join(fields)


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')
