"""Serve the provisioning API over a throwaway MemoryStore, for curl and schemathesis.

    .venv/bin/python tests/api/serve_dev.py --port 8080 --token dev-token

Pools: `default` (ten Bengaluru numbers, changeable over the API) and `config` (one number,
read-only, as if declared by the config file). Not for production: nothing is kept.
"""

from __future__ import annotations

import argparse
import asyncio
import logging

from aiohttp import web

from sipmask.api import MaskingAccessLogger, make_app
from sipmask.store import MemoryStore


async def serve(host: str, port: int, token: str) -> None:
    store = MemoryStore()
    await store.set_pool("default", [f"+9180456712{i:02d}" for i in range(10)])
    await store.set_pool("config", ["+918045671300"])
    app = make_app(store, tokens=[token], readonly_pools={"config"})
    runner = web.AppRunner(app, access_log_class=MaskingAccessLogger)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    print(f"serving on http://{host}:{port}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--token", default="dev-token")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    asyncio.run(serve(args.host, args.port, args.token))


if __name__ == "__main__":
    main()
