"""Request and response bodies of the provisioning API (issue 4), as msgspec Structs.

Requests are decoded with `msgspec.json.decode(body, type=...)`, so the bounds below are
checked at the edge and a failure names the field (`$.participants[0].identifier`). The
responses reuse the store's own Structs (`Session`, `Pool`, `Interaction`): what the API
returns is what the store keeps. The OpenAPI document (`openapi.py`) is generated from these
types.
"""

from __future__ import annotations

from typing import Annotated, Any

from msgspec import Meta, Struct

from ..store.model import (
    MAX_TTL,
    ExpiryMode,
    Interaction,
    Session,
)

__all__ = [
    "CreateSession",
    "Health",
    "InteractionList",
    "ParticipantIn",
    "PoolIn",
    "PoolList",
    "Problem",
    "SessionList",
]

#: Longest identifier, route or number string accepted (a SIP URI can be long, not endless).
MAX_IDENTIFIER = 256
#: Most numbers in one pool definition.
MAX_POOL_NUMBERS = 100_000

Identifier = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=MAX_IDENTIFIER,
        description="An E.164 number (`+919876543210`, `tel:` allowed) or a plain SIP URI "
        "(`sip:alice@example.com`; no escapes or headers, at most the `transport` and "
        "`user` parameters).",
        examples=["+919876543210"],
    ),
]
Number = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=32,
        description="A virtual number, E.164.",
        examples=["+918045671200"],
    ),
]
Seconds = Annotated[int, Meta(ge=1, le=MAX_TTL)]


class ParticipantIn(Struct, frozen=True, forbid_unknown_fields=True):
    """One participant of a session to create.

    Attributes:
        identifier: the party's real number (E.164) or SIP URI.
        proxy_identifier: a number of the pool to pin for this party (reserved numbers may be
            pinned); omitted, the allocation rule picks one.
        route: where to reach this party: a trunk name, or a plain SIP URI (at most the
            `transport` and `lr` parameters; no maddr, headers or escapes), stored rebuilt
            from its parts; omitted, the default routing.
    """

    identifier: Identifier
    proxy_identifier: Number | None = None
    route: Annotated[str, Meta(min_length=1, max_length=MAX_IDENTIFIER)] | None = None


class CreateSession(Struct, frozen=True, forbid_unknown_fields=True):
    """The body of `POST /v1/sessions`.

    Attributes:
        participants: exactly two.
        pool: the pool to take the virtual numbers from.
        ttl: seconds until the session expires (1 s to 30 days).
        expiry: `absolute` (fixed at creation) or `sliding` (each call renews `ttl`).
        call_time_limit: longest call in seconds, per call.
        ring_timeout: seconds to ring the other party.
        metadata: opaque JSON object kept with the session, at most 4096 bytes encoded.
        record: record the session's calls (needs media anchored through rtpengine; the
            call record then names the recording).
        announcement: the name of a prompt of the config's `[media.announcements]` played
            to the caller of the session's calls before the bridge (instead of the pool's).
    """

    participants: tuple[ParticipantIn, ParticipantIn]
    pool: Annotated[str, Meta(pattern="^[A-Za-z0-9_-]{1,64}$")] = "default"
    ttl: Seconds = 3600
    expiry: ExpiryMode = ExpiryMode.ABSOLUTE
    call_time_limit: Seconds | None = None
    ring_timeout: Annotated[int, Meta(ge=1, le=600)] | None = None
    metadata: dict[str, Any] = {}
    record: bool = False
    announcement: Annotated[str, Meta(pattern="^[A-Za-z0-9_-]{1,64}$")] | None = None


class PoolIn(Struct, frozen=True, forbid_unknown_fields=True):
    """The body of `PUT /v1/pools/{name}`: the pool's numbers, replacing the old ones.

    Attributes:
        numbers: numbers the allocation rule may assign.
        reserved: numbers assigned only when pinned at session creation.
    """

    numbers: Annotated[list[Number], Meta(max_length=MAX_POOL_NUMBERS)]
    reserved: Annotated[list[Number], Meta(max_length=MAX_POOL_NUMBERS)] = []


class SessionList(Struct, frozen=True):
    """The answer of `GET /v1/sessions`: open sessions, oldest first."""

    sessions: list[Session]


class InteractionList(Struct, frozen=True):
    """The answer of `GET /v1/sessions/{id}/interactions`: call records, oldest first."""

    interactions: list[Interaction]


class PoolList(Struct, frozen=True):
    """The answer of `GET /v1/pools`.

    Attributes:
        pools: names of all pools, sorted.
        readonly: the ones declared by the config file (not changeable over the API).
    """

    pools: list[str]
    readonly: list[str]


class Health(Struct, frozen=True):
    """The answer of `GET /healthz`: `ok`, or `unavailable` (with 503) when the store is
    down."""

    status: str


class Problem(Struct, frozen=True, omit_defaults=True):
    """An error, as RFC 9457 problem details (`application/problem+json`).

    Attributes:
        type: a URI naming the kind of problem (`urn:sipmask:problem:pool-exhausted`), or
            `about:blank` for plain HTTP errors.
        title: short summary of the kind of problem.
        status: the HTTP status code.
        detail: the rule that was broken; never the rejected value.
        field: for a body that failed validation, the path of the failing field, as msgspec
            writes it (`$.participants[0].identifier`).
        parameter: for a bad path or query parameter, its name.
    """

    type: str
    title: str
    status: int
    detail: str | None = None
    field: str | None = None
    parameter: str | None = None
