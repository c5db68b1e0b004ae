"""Helpers of the store tests: a fake clock, a throwaway redis-server, a three-node Redis
Cluster, a Sentinel, and a decorator that runs an `async def` test body with a fresh store on
its own event loop (no pytest-asyncio)."""

from __future__ import annotations

import asyncio
import inspect
import os
import selectors
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

REDIS_SERVER = shutil.which("redis-server")
REDIS_CLI = shutil.which("redis-cli")
T0 = 1_700_000_000.0  # a fixed "now" (2023-11-14), far from the real clock on purpose


class FakeClock:
    """Epoch seconds that move only when a test says so."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


def free_port() -> int:
    """A TCP port free right now on loopback (bind to port 0, read it, close). `redis-server
    --port 0` would disable TCP instead of choosing a port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A redis-server on a free loopback port, in its own temporary directory.

    Args:
        persist: keep data across `restart()` (append-only file, fsync always); without it
            nothing touches the disk.
    """

    def __init__(self, *, persist: bool = False, extra: tuple[str, ...] = ()) -> None:
        assert REDIS_SERVER is not None
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._dir = tempfile.TemporaryDirectory(prefix="sipmask-redis-")
        self._persist = persist
        self._extra = extra  # more command-line options (e.g. cluster mode)
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def dir(self) -> str:
        """The server's working directory."""
        return self._dir.name

    def start(self) -> None:
        """Start the server and return once it accepts connections and answers PING."""
        args = [
            REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", self._dir.name, "--save", "", "--daemonize", "no",
        ]
        args += ["--appendonly", "yes", "--appendfsync", "always"] if self._persist else [
            "--appendonly", "no"
        ]
        args += self._extra
        self._proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self._wait_ready()

    def _wait_ready(self, ready: bytes = b"Ready to accept connections") -> None:
        # Event-driven: read the log until redis says it is ready (no sleep loop).
        assert self._proc is not None and self._proc.stdout is not None
        deadline = time.monotonic() + 20
        log = b""
        with selectors.DefaultSelector() as sel:
            sel.register(self._proc.stdout, selectors.EVENT_READ)
            while ready not in log:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    raise RuntimeError(f"redis-server did not start:\n{log.decode()}")
                chunk = os.read(self._proc.stdout.fileno(), 65536)
                if not chunk:
                    raise RuntimeError(f"redis-server exited:\n{log.decode()}")
                log += chunk
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(b"PING\r\n")
            assert sock.recv(64).startswith(b"+PONG")

    def stop(self) -> None:
        """Kill the server (SIGKILL: an outage, not a shutdown) and reap it."""
        if self._proc is None:
            return
        self._proc.kill()
        self._proc.wait()
        assert self._proc.stdout is not None
        self._proc.stdout.close()
        self._proc = None

    def restart(self) -> None:
        """Start again on the same port (and, if persistent, with the same data)."""
        self.stop()
        self.start()

    def cleanup(self) -> None:
        """Stop and remove the temporary directory."""
        self.stop()
        self._dir.cleanup()


class ClusterServers:
    """A three-node Redis Cluster (three masters, no replicas) on free loopback ports, made
    with `redis-cli --cluster create`, as the issue asks for the cluster key design.

    `url` is one seed node; the client discovers the others.
    """

    def __init__(self, nodes: int = 3) -> None:
        assert REDIS_SERVER is not None and REDIS_CLI is not None
        # The cluster bus port defaults to port + 10000 (so ports above 55535 are refused);
        # each node gets a free bus port of its own instead.
        self.nodes = [
            RedisServer(extra=(
                "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--cluster-port", str(free_port()), "--cluster-node-timeout", "5000",
            ))
            for _ in range(nodes)
        ]
        self.url = f"redis://127.0.0.1:{self.nodes[0].port}/0"

    def start(self) -> None:
        """Start the nodes, join them (16384 slots split three ways), and return once every
        node reports `cluster_state:ok`."""
        for node in self.nodes:
            node.start()
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        subprocess.run(
            [REDIS_CLI, "--cluster", "create", *addresses, "--cluster-replicas", "0",
             "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )
        for node in self.nodes:
            _wait_cluster_ok(node.port)

    def cleanup(self) -> None:
        """Kill every node and remove their directories (nodes.conf included)."""
        for node in self.nodes:
            node.cleanup()


def _wait_cluster_ok(port: int, timeout: float = 30) -> None:
    # The nodes agree on the slot map through the cluster bus within a few gossip rounds;
    # polling CLUSTER INFO is the only way to learn it (there is no log line per node).
    assert REDIS_CLI is not None
    deadline = time.monotonic() + timeout
    info = ""
    while time.monotonic() < deadline:
        info = subprocess.run(
            [REDIS_CLI, "-h", "127.0.0.1", "-p", str(port), "cluster", "info"],
            capture_output=True, text=True, timeout=10,
        ).stdout
        if "cluster_state:ok" in info:
            return
        time.sleep(0.1)
    raise RuntimeError(f"cluster node {port} not ok:\n{info}")


class SentinelServer:
    """One redis-server in Sentinel mode watching `master` as `service` (quorum 1)."""

    def __init__(self, master: RedisServer, service: str = "mymaster") -> None:
        assert REDIS_SERVER is not None
        self.port = free_port()
        self.service = service
        self.master = master
        self._dir = tempfile.TemporaryDirectory(prefix="sipmask-sentinel-")
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the sentinel (it rewrites its config file, so it gets a fresh one) and return
        once it answers which server is the master."""
        conf = os.path.join(self._dir.name, "sentinel.conf")
        with open(conf, "w") as f:
            f.write(
                f"port {self.port}\nbind 127.0.0.1\ndir {self._dir.name}\n"
                f"sentinel monitor {self.service} 127.0.0.1 {self.master.port} 1\n"
            )
        self._proc = subprocess.Popen(
            [REDIS_SERVER, conf, "--sentinel"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        assert self._proc.stdout is not None
        deadline = time.monotonic() + 20
        log = b""
        with selectors.DefaultSelector() as sel:
            sel.register(self._proc.stdout, selectors.EVENT_READ)
            while b"+monitor master" not in log:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    raise RuntimeError(f"sentinel did not start:\n{log.decode()}")
                chunk = os.read(self._proc.stdout.fileno(), 65536)
                if not chunk:
                    raise RuntimeError(f"sentinel exited:\n{log.decode()}")
                log += chunk

    def cleanup(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            assert self._proc.stdout is not None
            self._proc.stdout.close()
            self._proc = None
        self._dir.cleanup()


def with_store(
    fn: Callable[..., Awaitable[None]],
) -> Callable[..., None]:
    """Run `async def test_x(self, store, clock, ...)` on a fresh event loop, with a store
    from `self.open_store(clock)` that is closed afterwards. `store` and `clock` are dropped
    from the signature pytest sees; other arguments stay fixtures or parameters."""
    signature = inspect.signature(fn)
    params = [p for n, p in signature.parameters.items() if n not in ("store", "clock")]

    def wrapper(self: Any, *args: Any, **kwargs: Any) -> None:
        async def main() -> None:
            clock = FakeClock()
            store = await self.open_store(clock)
            try:
                await fn(self, store, clock, *args, **kwargs)
            finally:
                await store.close()

        asyncio.run(main())

    wrapper.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    wrapper.__name__ = fn.__name__
    wrapper.__qualname__ = fn.__qualname__
    wrapper.__doc__ = fn.__doc__
    return wrapper
