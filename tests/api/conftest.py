"""Fixtures of the API tests: a real redis-server for the whole session (as tests/store)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from api_helpers import REDIS_SERVER, RedisServer


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A throwaway redis-server on a free port, no persistence; killed at the end."""
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (Debian package redis-server)")
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.cleanup()
