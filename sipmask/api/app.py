"""The provisioning HTTP API (issue 4): aiohttp over a SessionStore.

A platform opens a masking session for an order or a ride, reads it back, lists a party's
sessions, closes it, reads its call records, and manages the number pools that the config file
does not declare. Every body is decoded with msgspec against the Structs of `schema.py`; every
error is an RFC 9457 problem (`application/problem+json`) naming the failing field.

Privacy (DESIGN.md, issue 11): the answers return the caller's own data, but an error names
the field and the rule broken, never the rejected value, and the access log
(`MaskingAccessLogger`) writes the route template (`/v1/sessions/{id}`) and the names of the
known query parameters, never a path or query value.

Bounds (issue 13): a body is at most `max_body_bytes` (413) and nested at most
`max_json_depth` deep (422); a big pool update is validated in chunks that yield to the loop,
so the SIP calls on the same loop keep their pace.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import time
import traceback
from collections.abc import Awaitable, Callable, Collection, Iterable
from typing import Any, TypeVar

import msgspec
import phonenumbers
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.typedefs import Middleware

from ..privacy import mask_numbers_in
from ..store import (
    InvalidParticipant,
    InvalidPool,
    InvalidSession,
    NumberUnavailable,
    ParticipantSpec,
    PoolExhausted,
    PoolInUse,
    SessionNotFound,
    SessionSpec,
    SessionStore,
    StoreError,
    StoreUnavailable,
    UnknownPool,
)
from ..store.events import EventPublisher
from ..store.model import MAX_METADATA_BYTES, metadata_size
from ..store.numbers import (
    check_identifier,
    check_route,
    is_sip_identifier,
    normalise_number,
    participant_key,
)
from .openapi import build_openapi
from .schema import (
    CreateSession,
    Health,
    InteractionList,
    PoolIn,
    PoolList,
    Problem,
    SessionList,
)

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_JSON_DEPTH",
    "PROBLEM_JSON",
    "RETRY_AFTER",
    "MaskingAccessLogger",
    "make_app",
]

logger = logging.getLogger("sipmask.api")

PROBLEM_JSON = "application/problem+json"
#: Seconds a client should wait before retrying while the store is unavailable (503).
RETRY_AFTER = 2
#: Paths served without a token.
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/openapi.json"})
"""Paths probes and tools read without a token (`/readyz` is added by the server)."""

#: Largest request body accepted (413 beyond; `[api] max_body_bytes`): a pool of 100,000
#: numbers fits.
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
#: Deepest nesting of arrays and objects in a body (422 beyond; `[api] max_json_depth`).
DEFAULT_MAX_JSON_DEPTH = 32
#: Numbers validated between two yields to the event loop in a pool update.
POOL_CHUNK = 250
#: Query parameters the API knows; the access log names only these.
QUERY_PARAMETERS = ("participant", "pool")

_POOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
# msgspec ends a ValidationError's message with " - at `$.path`".
_AT_PATH = re.compile(r"^(?P<message>.*) - at `(?P<path>\$[^`]*)`$", re.DOTALL)
_PLUS_AS_SPACE = re.compile(r" [1-9][0-9]{1,14}")
_MISSING_FIELD = re.compile(r"missing required field `(?P<name>[A-Za-z_]+)`")
# What msgspec quotes from the input (`Invalid enum value 'x'`, an unknown field's name).
_QUOTED_INPUT = re.compile(r"'[^']*'|unknown field `[^`]*`")
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKET = bytes(range(256)).translate(None, b"[]{}")

T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _Limits(msgspec.Struct, frozen=True):
    body_bytes: int
    json_depth: int


_LIMITS = web.AppKey("limits", _Limits)


class ApiError(Exception):
    """An error answer, turned into a problem response by the middleware.

    Args:
        status: HTTP status.
        kind: the problem's slug (`pool-exhausted`), made into `urn:sipmask:problem:<kind>`;
            None for `about:blank`.
        title: short summary of the kind of problem.
        detail: the rule broken, never the rejected value (numbers in it are masked here
            too, as a second line of defence).
        field: path of the failing body field (`$.participants[0].identifier`).
        parameter: name of the failing path or query parameter.
        headers: extra response headers (`WWW-Authenticate`, `Retry-After`, `Allow`).
    """

    def __init__(
        self,
        status: int,
        kind: str | None,
        title: str,
        detail: str | None = None,
        *,
        field: str | None = None,
        parameter: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(title)
        self.problem = Problem(
            type=f"urn:sipmask:problem:{kind}" if kind else "about:blank",
            title=title,
            status=status,
            detail=mask_numbers_in(detail) if detail is not None else None,
            field=field,
            parameter=parameter,
        )
        self.headers = headers or {}


def _problem_response(error: ApiError) -> web.Response:
    return web.Response(
        status=error.problem.status,
        body=msgspec.json.encode(error.problem),
        content_type=PROBLEM_JSON,
        headers=error.headers,
    )


def _json(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status,
        body=msgspec.json.encode(obj),
        content_type="application/json",
        headers=headers,
    )


#: How each store error answers: (status, problem kind, title, detail), most specific first.
#: The detail is the rule, fixed: a store message may quote the value (issue 11).
STORE_ERRORS: tuple[tuple[type[StoreError], int, str, str, str | None], ...] = (
    (SessionNotFound, 404, "session-not-found", "No such session", None),
    (UnknownPool, 404, "pool-not-found", "No such pool", None),
    (PoolExhausted, 409, "pool-exhausted", "The pool has no free number",
     "every assignable number of the pool is already used by this participant"),
    (NumberUnavailable, 409, "number-unavailable", "A number cannot be used",
     "a pinned number must be a free or reserved number of the pool, not used by this "
     "participant yet; a pool number may belong to one pool only and may not be a "
     "participant of an open session"),
    (PoolInUse, 409, "pool-in-use", "The pool has open sessions", None),
    (InvalidParticipant, 422, "invalid-participant", "Invalid participant",
     "a participant is an E.164 number or a plain SIP URI, and not a number of a pool"),
    (InvalidSession, 422, "invalid-session", "Invalid session",
     "the two participants must be different parties; ttl and limits within their bounds"),
    (InvalidPool, 422, "invalid-pool", "Invalid pool",
     "a pool's numbers are E.164, each either assignable or reserved"),
)


def store_problem(
    exc: StoreError, *, field: str | None = None, parameter: str | None = None
) -> ApiError:
    """The problem answering a store error (the mapping of docs/api.md).

    Args:
        exc: what the store raised.
        field, parameter: the body field or parameter it is about, if known.
    """
    if isinstance(exc, StoreUnavailable):
        return ApiError(
            503, "store-unavailable", "The session store is unavailable",
            "try again shortly", headers={"Retry-After": str(RETRY_AFTER)},
        )
    for kind_of, status, kind, title, detail in STORE_ERRORS:
        if isinstance(exc, kind_of):
            return ApiError(status, kind, title, detail, field=field, parameter=parameter)
    return ApiError(500, "store-error", "Store error", field=field, parameter=parameter)


def _validation_problem(exc: msgspec.ValidationError) -> ApiError:
    """A 422 naming the field and the rule. msgspec's message may quote the input (an enum
    value, an unknown field's name): those parts are left out (issue 11)."""
    message = str(exc)
    field = "$"  # msgspec names no path for the top level
    m = _AT_PATH.match(message)
    if m is not None:
        message, field = m["message"], m["path"]
    if "unknown field" in message:
        # The field is the object holding it; its name is the caller's input.
        message = "Object contains an unknown field"
    else:
        missing = _MISSING_FIELD.search(message)
        if missing is not None:  # a name of our schema, not of the input
            field = f"{field}.{missing['name']}"
        message = _QUOTED_INPUT.sub("", message).strip()
    return ApiError(
        422, "invalid-body", "The request body failed validation", message, field=field
    )


def json_depth_exceeds(body: bytes, limit: int) -> bool:
    """Whether arrays and objects in a JSON text nest deeper than `limit`, found without
    recursion: strings removed, then each pass removes the innermost `[]`/`{}` pairs."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False  # the common case (a pool's numbers), without the regex
    brackets = _JSON_STRING.sub(b"", body).translate(None, _NOT_BRACKET)
    brackets = brackets.replace(b"{", b"[").replace(b"}", b"]")
    for done in range(limit):
        if not brackets:
            return False
        shorter = brackets.replace(b"[]", b"")
        if shorter == brackets:
            # Unbalanced (the decoder will say malformed), but an unclosed `[[[[...` would
            # still take it that deep: count what stays open.
            return done + brackets.count(b"[") > limit
        brackets = shorter
    return bool(brackets)


async def decode_body(request: web.Request, type_: type[T]) -> T:
    """Read and validate a JSON body. Raises ApiError (400 malformed, 413 too large, 422
    invalid or nested too deep)."""
    limits: _Limits = request.app[_LIMITS]
    if request.content_length is not None and request.content_length > limits.body_bytes:
        raise _too_large(limits)
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise _too_large(limits) from None
    if json_depth_exceeds(body, limits.json_depth):
        raise ApiError(
            422, "invalid-body", "The request body failed validation",
            f"arrays and objects nest deeper than {limits.json_depth}", field="$",
        )
    try:
        return msgspec.json.decode(body, type=type_)
    except msgspec.ValidationError as exc:
        raise _validation_problem(exc) from None
    except (msgspec.DecodeError, RecursionError):
        raise ApiError(
            400, "malformed-json", "The request body is not JSON", "malformed JSON"
        ) from None


def _too_large(limits: _Limits) -> ApiError:
    return ApiError(
        413, "body-too-large", "The request body is too large",
        f"at most {limits.body_bytes} bytes",
    )


def _check_e164(value: str, field: str) -> str:
    """Normalise a number and check it with `phonenumbers`; return the E.164 form."""
    try:
        number = normalise_number(value)
        valid = phonenumbers.is_valid_number(phonenumbers.parse(number))
    except (ValueError, phonenumbers.NumberParseException):
        valid = False
    if not valid:
        raise ApiError(
            422, "invalid-number", "Not a valid E.164 number",
            "a number is E.164 (`+`, country code, number) and valid for its country",
            field=field,
        )
    return number


async def _check_numbers(values: list[str], field: str) -> list[str]:
    """`_check_e164` over a pool's numbers, yielding to the loop every `POOL_CHUNK` (55,000
    numbers take about a second of phonenumbers)."""
    checked = []
    for start in range(0, len(values), POOL_CHUNK):
        if start:
            await asyncio.sleep(0)
        checked += [
            _check_e164(n, f"{field}[{i}]")
            for i, n in enumerate(values[start : start + POOL_CHUNK], start)
        ]
    return checked


def _check_participant(identifier: str, field: str) -> None:
    """E.164 (and valid for its country), or a plain SIP URI (issue 13)."""
    if is_sip_identifier(identifier):
        try:
            check_identifier(identifier)
        except InvalidParticipant as exc:
            raise ApiError(
                422, "invalid-participant", "Invalid participant", str(exc), field=field
            ) from None
    else:
        _check_e164(identifier, field)


def _check_route(route: str, field: str) -> str:
    try:
        return check_route(route)
    except ValueError as exc:
        raise ApiError(
            422, "invalid-route", "Invalid route",
            f"a route is a trunk name or a plain SIP URI: {exc}", field=field,
        ) from None


def _session_spec(body: CreateSession) -> SessionSpec:
    """Check a creation request at the edge (phonenumbers, URI grammar, metadata size) and
    build the store's spec from the checked values. Raises ApiError naming the field."""
    routes = []
    for i, part in enumerate(body.participants):
        _check_participant(part.identifier, f"$.participants[{i}].identifier")
        if part.proxy_identifier is not None:
            _check_e164(part.proxy_identifier, f"$.participants[{i}].proxy_identifier")
        routes.append(
            _check_route(part.route, f"$.participants[{i}].route")
            if part.route is not None else None
        )
    if metadata_size(body.metadata) > MAX_METADATA_BYTES:
        raise ApiError(
            422, "invalid-body", "The request body failed validation",
            f"metadata is larger than {MAX_METADATA_BYTES} bytes encoded", field="$.metadata",
        )
    first, second = (
        ParticipantSpec(p.identifier, p.proxy_identifier, route)
        for p, route in zip(body.participants, routes, strict=True)
    )
    return SessionSpec(
        participants=(first, second),
        pool=body.pool,
        ttl=body.ttl,
        expiry=body.expiry,
        call_time_limit=body.call_time_limit,
        ring_timeout=body.ring_timeout,
        metadata=body.metadata,
        record=body.record,
        announcement=body.announcement,
    )


class _Api:
    """The handlers, bound to one store."""

    def __init__(
        self,
        store: SessionStore,
        clock: Callable[[], float],
        readonly_pools: frozenset[str],
        events: EventPublisher | None = None,
        accepting: Callable[[], bool] = lambda: True,
    ) -> None:
        self.store = store
        self.events = events
        self.clock = clock
        self.accepting = accepting
        self.readonly = readonly_pools
        self.openapi = msgspec.json.encode(build_openapi())

    # -- sessions ---------------------------------------------------------------------------

    async def create_session(self, request: web.Request) -> web.Response:
        if not self.accepting():
            # Draining: a session made now could never be called through this node.
            raise ApiError(503, "draining", "The service is stopping",
                           "try another node", headers={"Retry-After": str(RETRY_AFTER)})
        spec = _session_spec(await decode_body(request, CreateSession))
        try:
            session = await self.store.create_session(spec, now=self.clock())
        except UnknownPool:
            # The pool is a field of the body, not the resource addressed: 422, not 404.
            raise ApiError(422, "pool-not-found", "No such pool", field="$.pool") from None
        except (InvalidParticipant, InvalidSession) as exc:
            raise store_problem(exc, field="$.participants") from None
        logger.info("session %s created in pool %s", session.id, session.pool)
        if self.events is not None:
            self.events.publish("session.created", msgspec.to_builtins(session))
        return _json(session, 201, {"Location": f"/v1/sessions/{session.id}"})

    async def get_session(self, request: web.Request) -> web.Response:
        return _json(await self.store.get_session(request.match_info["id"]))

    async def list_sessions(self, request: web.Request) -> web.Response:
        participant = request.query.get("participant")
        pool = request.query.get("pool")
        if participant is not None and _PLUS_AS_SPACE.fullmatch(participant):
            # `?participant=+9198...` unencoded: the form decoding made the `+` a space.
            participant = "+" + participant[1:]
        if participant is not None:
            try:
                participant_key(participant)
            except InvalidParticipant:
                raise ApiError(
                    400, "invalid-parameter", "Invalid query parameter",
                    "a participant is an E.164 number or a SIP URI", parameter="participant",
                ) from None
        if pool is not None and not _POOL_NAME.fullmatch(pool):
            raise ApiError(
                400, "invalid-parameter", "Invalid query parameter",
                "a pool name is 1-64 of A-Z a-z 0-9 _ -", parameter="pool",
            )
        try:
            sessions = await self.store.list_sessions(participant=participant, pool=pool)
        except UnknownPool:
            raise ApiError(404, "pool-not-found", "No such pool", parameter="pool") from None
        return _json(SessionList(sessions))

    async def close_session(self, request: web.Request) -> web.Response:
        session = await self.store.close_session(request.match_info["id"], now=self.clock())
        logger.info("session %s closed", session.id)
        if self.events is not None:
            self.events.publish("session.closed", msgspec.to_builtins(session))
        return _json(session)

    async def list_interactions(self, request: web.Request) -> web.Response:
        records = await self.store.list_interactions(request.match_info["id"])
        return _json(InteractionList(records))

    # -- pools ------------------------------------------------------------------------------

    def _pool_name(self, request: web.Request, *, write: bool, create: bool = False) -> str:
        name = request.match_info["name"]
        if not _POOL_NAME.fullmatch(name):
            # No pool can have that name: 404, but 422 when asked to create it.
            if create:
                raise ApiError(
                    422, "invalid-parameter", "Invalid pool name",
                    "a pool name is 1-64 of A-Z a-z 0-9 _ -", parameter="name",
                )
            raise ApiError(404, "pool-not-found", "No such pool", parameter="name")
        if write and name in self.readonly:
            raise ApiError(
                409, "pool-readonly", "The pool is declared by the config file",
                "a pool of the config file is read-only over the API; change the file",
                parameter="name",
            )
        return name

    async def list_pools(self, request: web.Request) -> web.Response:
        names = await self.store.list_pools()
        return _json(PoolList(names, sorted(self.readonly.intersection(names))))

    async def get_pool(self, request: web.Request) -> web.Response:
        return _json(await self.store.get_pool(self._pool_name(request, write=False)))

    async def put_pool(self, request: web.Request) -> web.Response:
        name = self._pool_name(request, write=True, create=True)
        body = await decode_body(request, PoolIn)
        numbers = await _check_numbers(body.numbers, "$.numbers")
        reserved = await _check_numbers(body.reserved, "$.reserved")
        pool = await self.store.set_pool(name, numbers, reserved)
        logger.info("pool %s set: %d numbers, %d reserved", name, len(numbers), len(reserved))
        return _json(pool)

    async def delete_pool(self, request: web.Request) -> web.Response:
        name = self._pool_name(request, write=True)
        await self.store.delete_pool(name)
        logger.info("pool %s deleted", name)
        return web.Response(status=204)

    # -- service ----------------------------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        try:
            await self.store.list_pools()
        except StoreUnavailable:
            return _json(Health("unavailable"), 503, {"Retry-After": str(RETRY_AFTER)})
        return _json(Health("ok"))

    async def openapi_json(self, request: web.Request) -> web.Response:
        return web.Response(body=self.openapi, content_type="application/json")


@web.middleware
async def _problems(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every error into an RFC 9457 problem; log without real numbers."""
    try:
        return await handler(request)
    except ApiError as exc:
        error = exc
    except StoreError as exc:
        error = store_problem(exc)
        if isinstance(exc, StoreUnavailable):
            logger.warning(
                "%s %s: store unavailable: %s",
                request.method, route_of(request), mask_numbers_in(str(exc)),
            )
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")}
        error = ApiError(exc.status, None, exc.reason, headers=headers)
    except Exception as exc:
        logger.error(
            "%s %s: internal error\n%s",
            request.method,
            route_of(request),
            mask_numbers_in("".join(traceback.format_exception(exc))),
        )
        error = ApiError(500, None, "Internal Server Error")
    return _problem_response(error)


def _auth(tokens: Iterable[str]) -> Middleware:
    secrets = [token.encode() for token in tokens]

    @web.middleware
    async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in PUBLIC_PATHS:
            return await handler(request)
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        given = given.strip()
        ok = False
        if scheme.lower() == "bearer" and given:
            # aiohttp keeps undecodable header bytes as surrogates: such a token matches
            # none (a 401, not a UnicodeEncodeError).
            raw = given.encode("utf-8", "surrogateescape")
            # Compare with every token (no early exit) in constant time.
            for secret in secrets:
                ok |= hmac.compare_digest(raw, secret)
        if not ok:
            challenge = 'Bearer realm="sipmask"'
            if given:
                challenge += ', error="invalid_token"'  # RFC 6750 §3.1
            raise ApiError(
                401, "unauthorized", "A valid bearer token is required",
                headers={"WWW-Authenticate": challenge},
            )
        return await handler(request)

    return auth


def route_of(request: web.BaseRequest) -> str:
    """The route template a request matched (`/v1/sessions/{id}`), or `-` for none: what
    logs name instead of the path, which carries ids and numbers."""
    match_info = getattr(request, "match_info", None)
    route = getattr(match_info, "route", None)
    resource = getattr(route, "resource", None)
    return resource.canonical if resource is not None else "-"


def query_names(request: web.BaseRequest) -> str:
    """`?participant&pool`: the known query parameters given, in a fixed order, and how many
    others (their names are input too): no value and no unknown name reaches a log."""
    given = set(request.query.keys())
    names = [name for name in QUERY_PARAMETERS if name in given]
    others = len(given) - len(names)
    if others:
        names.append(f"+{others}")
    return "?" + "&".join(names) if names else ""


class MaskingAccessLogger(AbstractAccessLogger):
    """An access log line per request: method, route template, the names of the known query
    parameters, status and time; never a path or query value (issue 11). Pass it as
    `access_log_class` to `web.run_app` or `web.AppRunner`."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            '%s "%s %s%s" %d %.3fs',
            request.remote,
            request.method,
            route_of(request),
            query_names(request),
            response.status,
            time,
        )


def make_app(
    store: SessionStore,
    *,
    tokens: Collection[str],
    clock: Callable[[], float] = time.time,
    readonly_pools: Collection[str] = frozenset(),
    events: EventPublisher | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_json_depth: int = DEFAULT_MAX_JSON_DEPTH,
    accepting: Callable[[], bool] = lambda: True,
) -> web.Application:
    """Build the provisioning API over a store.

    Args:
        store: the session store (memory or Redis); the caller opens and closes it.
        tokens: bearer tokens accepted (from the config). With none, every call but
            `/healthz` and `/openapi.json` answers 401.
        clock: epoch seconds, the `now` of session creation and close.
        readonly_pools: pools declared by the config file; writes to them answer 409.
        events: where `session.created` and `session.closed` events go (the store's event
            stream and the webhooks), if anywhere.
        max_body_bytes: largest request body (413 beyond).
        max_json_depth: deepest nesting of a body's arrays and objects (422 beyond).
        accepting: False while the process drains: new sessions get 503 then.

    Returns:
        The aiohttp application.

    Raises:
        ValueError: an empty token.
    """
    if any(not token or token != token.strip() for token in tokens):
        raise ValueError("API tokens must be non-empty, without surrounding spaces")
    api = _Api(store, clock, frozenset(readonly_pools), events, accepting)
    app = web.Application(
        middlewares=[_problems, _auth(tuple(tokens))], client_max_size=max_body_bytes
    )
    app[_LIMITS] = _Limits(max_body_bytes, max_json_depth)
    app.router.add_post("/v1/sessions", api.create_session)
    app.router.add_get("/v1/sessions", api.list_sessions, allow_head=False)
    app.router.add_get("/v1/sessions/{id}", api.get_session, allow_head=False)
    app.router.add_delete("/v1/sessions/{id}", api.close_session)
    app.router.add_get(
        "/v1/sessions/{id}/interactions", api.list_interactions, allow_head=False
    )
    app.router.add_get("/v1/pools", api.list_pools, allow_head=False)
    app.router.add_get("/v1/pools/{name}", api.get_pool, allow_head=False)
    app.router.add_put("/v1/pools/{name}", api.put_pool)
    app.router.add_delete("/v1/pools/{name}", api.delete_pool)
    app.router.add_get("/healthz", api.healthz, allow_head=False)
    app.router.add_get("/openapi.json", api.openapi_json, allow_head=False)
    return app
