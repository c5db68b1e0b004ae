"""Helpers of the API tests: the app served over real HTTP on 127.0.0.1 by aiohttp's own
TestServer/TestClient, each test on its own event loop (no pytest-aiohttp or pytest-asyncio).

The fake clock and the throwaway redis-server are the store tests' (tests/store/store_helpers.py).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from contextlib import asynccontextmanager
from typing import Any, overload

from aiohttp.test_utils import TestClient, TestServer
from store_helpers import REDIS_SERVER, FakeClock, RedisServer  # noqa: E402

from sipmask.api import make_app  # noqa: E402
from sipmask.store import MemoryStore, SessionStore  # noqa: E402

__all__ = [
    "ALICE",
    "BOB",
    "CAROL",
    "REDIS_SERVER",
    "TOKEN",
    "V",
    "FakeClock",
    "RedisServer",
    "serve",
    "session_body",
    "with_api",
]

TOKEN = "s3cret-token"
# Virtual numbers (Bengaluru DIDs) and real parties (Indian mobiles), as in tests/store.
V = [f"+9180456712{i:02d}" for i in range(10)]
ALICE, BOB, CAROL = "+919876543210", "+919812345678", "+919900000001"
#: The pool every test starts with.
DEFAULT_POOL = V[:4]


@asynccontextmanager
async def serve(
    store: SessionStore,
    clock: Callable[[], float],
    *,
    tokens: Collection[str] = (TOKEN,),
    readonly_pools: Collection[str] = (),
    auth: str | None = TOKEN,
    app_kwargs: dict[str, Any] | None = None,
    **server_kwargs: Any,
) -> AsyncIterator[TestClient[Any, Any]]:
    """Serve `make_app(store)` on 127.0.0.1 and yield a client sending `Bearer <auth>` (none
    if `auth` is None). `app_kwargs` go to make_app (limits), `server_kwargs` are AppRunner
    options. Server and client are closed on exit."""
    app = make_app(store, tokens=tokens, clock=clock, readonly_pools=readonly_pools,
                   **(app_kwargs or {}))
    headers = {"Authorization": f"Bearer {auth}"} if auth is not None else None
    server = TestServer(app, host="127.0.0.1")
    # Runner options (access_log_class) go to start_server; the client's start then finds
    # the server started, and its close stops it.
    await server.start_server(**server_kwargs)
    async with TestClient(server, headers=headers) as client:
        yield client


AsyncTest = Callable[..., Awaitable[None]]
SyncTest = Callable[..., None]


@overload
def with_api(fn: AsyncTest) -> SyncTest: ...
@overload
def with_api(fn: None = None, **serve_kwargs: Any) -> Callable[[AsyncTest], SyncTest]: ...
def with_api(
    fn: AsyncTest | None = None, **serve_kwargs: Any
) -> SyncTest | Callable[[AsyncTest], SyncTest]:
    """Run `async def test_x([self,] client, store, clock, ...)` on a fresh event loop.

    The store is `self.open_store(clock)` for a method, else a MemoryStore; it starts with
    the pool `default` (DEFAULT_POOL) and is closed afterwards. `client`, `store` and `clock`
    are dropped from the signature pytest sees; `serve_kwargs` go to `serve`.
    """
    if fn is None:

        def decorate(f: AsyncTest) -> SyncTest:
            return _with_api(f, serve_kwargs)

        return decorate
    return _with_api(fn, serve_kwargs)


def _with_api(fn: AsyncTest, serve_kwargs: dict[str, Any]) -> SyncTest:
    signature = inspect.signature(fn)
    is_method = next(iter(signature.parameters), None) == "self"
    params = [
        p for n, p in signature.parameters.items() if n not in ("client", "store", "clock")
    ]

    def wrapper(*args: Any, **kwargs: Any) -> None:
        async def main() -> None:
            clock = FakeClock()
            if is_method:
                store = await args[0].open_store(clock)
            else:
                store = MemoryStore(clock=clock)
            try:
                await store.set_pool("default", DEFAULT_POOL)
                async with serve(store, clock, **serve_kwargs) as client:
                    if is_method:
                        await fn(args[0], client, store, clock, *args[1:], **kwargs)
                    else:
                        await fn(client, store, clock, *args, **kwargs)
            finally:
                await store.close()

        asyncio.run(main())

    wrapper.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    wrapper.__name__ = fn.__name__
    wrapper.__qualname__ = fn.__qualname__
    wrapper.__doc__ = fn.__doc__
    return wrapper


def session_body(a: str = ALICE, b: str = BOB, **extra: Any) -> dict[str, Any]:
    """A `POST /v1/sessions` body."""
    return {"participants": [{"identifier": a}, {"identifier": b}], **extra}
