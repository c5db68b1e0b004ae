"""The provisioning HTTP API (issue 4): `make_app(store, tokens=...)` builds the aiohttp
application over a SessionStore; `build_openapi()` its OpenAPI 3.1 document. See docs/api.md.

aiohttp is imported only by those who serve the API.
"""

from __future__ import annotations

from .app import PROBLEM_JSON, MaskingAccessLogger, make_app
from .openapi import build_openapi

__all__ = ["PROBLEM_JSON", "MaskingAccessLogger", "build_openapi", "make_app"]
