"""The OpenAPI 3.1 document of the provisioning API, served at `/openapi.json`.

The schemas come from the msgspec types of `schema.py` and the store's model
(`msgspec.json.schema_components`), so the document cannot drift from what the API decodes
and encodes; the paths are written out here.
"""

from __future__ import annotations

from typing import Any

import msgspec

from .. import __version__
from ..store.model import Interaction, Pool, Session
from .schema import (
    CreateSession,
    Health,
    InteractionList,
    PoolIn,
    PoolList,
    Problem,
    SessionList,
)

__all__ = ["build_openapi"]

_REF = "#/components/schemas/{name}"
_PROBLEM_JSON = "application/problem+json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF.format(name=name)}


def _json_body(name: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(name)}}}


def _problem(description: str, **headers: str) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "description": description,
        "content": {_PROBLEM_JSON: {"schema": _ref("Problem")}},
    }
    if headers:
        answer["headers"] = {
            name.replace("_", "-"): {"description": text, "schema": {"type": "string"}}
            for name, text in headers.items()
        }
    return answer


_UNAUTHORIZED = _problem(
    "Missing or wrong bearer token.", WWW_Authenticate="`Bearer realm=\"sipmask\"`"
)
_UNAVAILABLE = _problem(
    "The session store is unavailable; retry later.", Retry_After="Seconds to wait."
)


def _errors(*codes: tuple[int, str]) -> dict[str, Any]:
    answers = {str(code): _problem(text) for code, text in codes}
    answers["401"] = _UNAUTHORIZED
    answers["503"] = _UNAVAILABLE
    return answers


def _param(name: str, where: str, description: str, *, required: bool = True) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": required,
        "description": description,
        "schema": {"type": "string", "minLength": 1},
    }


_SESSION_ID = _param("id", "path", "Session id, `<pool>.<random>`.")
_POOL_NAME = {
    "name": "name",
    "in": "path",
    "required": True,
    "description": "Pool name: 1-64 of `A-Z a-z 0-9 _ -`.",
    "schema": {"type": "string", "minLength": 1},
}


#: The example bodies of the document (and of docs/api.md).
SESSION_EXAMPLE = {
    "participants": [{"identifier": "+919876543210"}, {"identifier": "+919812345678"}],
    "pool": "default",
    "ttl": 7200,
    "expiry": "absolute",
    "call_time_limit": 900,
    "metadata": {"order": "A-1027"},
}
POOL_EXAMPLE = {"numbers": ["+918045671200", "+918045671201"], "reserved": ["+918045671209"]}


def _paths() -> dict[str, Any]:
    return {
        "/v1/sessions": {
            "post": {
                "operationId": "createSession",
                "summary": "Open a masking session; each participant gets a virtual number.",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": _ref("CreateSession"),
                            "example": SESSION_EXAMPLE,
                        }
                    },
                },
                "responses": {
                    "201": {
                        **_json_body("Session", "The session, open."),
                        "headers": {
                            "Location": {
                                "description": "The session's URL.",
                                "schema": {"type": "string"},
                            }
                        },
                        "links": {
                            name: {
                                "operationId": operation,
                                "parameters": {"id": "$response.body#/id"},
                            }
                            for name, operation in [
                                ("GetSession", "getSession"),
                                ("CloseSession", "closeSession"),
                                ("ListInteractions", "listInteractions"),
                            ]
                        },
                    },
                    **_errors(
                        (400, "Malformed JSON."),
                        (409, "Pool exhausted for a participant, or a pinned number "
                         "unavailable."),
                        (413, "Body larger than `[api] max_body_bytes`."),
                        (422, "Validation failed (`field` names it; nested deeper than "
                         "`[api] max_json_depth`), unknown pool, invalid participant or "
                         "route."),
                    ),
                },
            },
            "get": {
                "operationId": "listSessions",
                "summary": "Open sessions, of a participant or a pool, oldest first.",
                "parameters": [
                    _param("participant", "query", "A participant's identifier.",
                           required=False),
                    _param("pool", "query", "A pool name.", required=False),
                ],
                "responses": {
                    "200": _json_body("SessionList", "The open sessions."),
                    **_errors(
                        (400, "Invalid query parameter (`parameter` names it)."),
                        (404, "No such pool (the `pool` filter)."),
                    ),
                },
            },
        },
        "/v1/sessions/{id}": {
            "parameters": [_SESSION_ID],
            "get": {
                "operationId": "getSession",
                "summary": "A session, open or closed (closed ones until their retention "
                "ends).",
                "responses": {
                    "200": _json_body("Session", "The session."),
                    **_errors((404, "No such session.")),
                },
            },
            "delete": {
                "operationId": "closeSession",
                "summary": "Close a session: its bindings are gone at once. Idempotent.",
                "responses": {
                    "200": _json_body("Session", "The session, closed."),
                    **_errors((404, "No such session.")),
                },
            },
        },
        "/v1/sessions/{id}/interactions": {
            "parameters": [_SESSION_ID],
            "get": {
                "operationId": "listInteractions",
                "summary": "The call records of a session, oldest first.",
                "responses": {
                    "200": _json_body("InteractionList", "The call records."),
                    **_errors((404, "No such session.")),
                },
            },
        },
        "/v1/pools": {
            "get": {
                "operationId": "listPools",
                "summary": "The names of all pools, and which are read-only.",
                "responses": {
                    "200": _json_body("PoolList", "The pools."),
                    **_errors(),
                },
            },
        },
        "/v1/pools/{name}": {
            "parameters": [_POOL_NAME],
            "get": {
                "operationId": "getPool",
                "summary": "A pool's numbers (assignable, reserved, draining).",
                "responses": {
                    "200": _json_body("Pool", "The pool."),
                    **_errors((404, "No such pool.")),
                },
            },
            "put": {
                "operationId": "setPool",
                "summary": "Create or replace a pool's numbers. Numbers dropped while in use "
                "are drained, never yanked from open sessions.",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": _ref("PoolIn"), "example": POOL_EXAMPLE}
                    },
                },
                "responses": {
                    "200": _json_body("Pool", "The pool as set."),
                    **_errors(
                        (400, "Malformed JSON."),
                        (409, "The pool is declared by the config file, or a number "
                         "belongs to another pool or is a participant of an open session."),
                        (413, "Body larger than `[api] max_body_bytes`."),
                        (422, "Validation failed (`field` names it), or a bad pool name."),
                    ),
                },
            },
            "delete": {
                "operationId": "deletePool",
                "summary": "Delete a pool that has no open session.",
                "responses": {
                    "204": {"description": "Deleted."},
                    **_errors(
                        (404, "No such pool."),
                        (409, "The pool has open sessions, or is declared by the config "
                         "file."),
                    ),
                },
            },
        },
        "/healthz": {
            "get": {
                "operationId": "health",
                "summary": "Liveness and store reachability. No token needed.",
                "security": [],
                "responses": {
                    "200": _json_body("Health", "Serving."),
                    "503": {
                        **_json_body("Health", "The store is unavailable."),
                        "headers": {
                            "Retry-After": {
                                "description": "Seconds to wait.",
                                "schema": {"type": "string"},
                            }
                        },
                    },
                },
            },
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document. No token needed.",
                "security": [],
                "responses": {
                    "200": {
                        "description": "The OpenAPI 3.1 document.",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            },
        },
    }


def build_openapi(*, version: str | None = None) -> dict[str, Any]:
    """Return the OpenAPI 3.1 document as a JSON-ready dict.

    Args:
        version: the API document's version; defaults to sipmask's.
    """
    _, schemas = msgspec.json.schema_components(
        [
            CreateSession,
            PoolIn,
            Session,
            SessionList,
            Interaction,
            InteractionList,
            Pool,
            PoolList,
            Health,
            Problem,
        ],
        ref_template=_REF,
    )
    document = {
        "openapi": "3.1.0",
        "info": {
            "title": "sipmask provisioning API",
            "version": __version__ if version is None else version,
            "description": "Masking sessions, their call records and number pools "
            "(docs/api.md).",
        },
        "paths": _paths(),
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }
    # Through JSON and back: tuples (msgspec writes tuple defaults as such) become lists.
    result: dict[str, Any] = msgspec.json.decode(msgspec.json.encode(document))
    return result
