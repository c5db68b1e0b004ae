"""What the processes of one node share: a worker's inheritance (`WorkerSetup`) and the
supervisor's view of its workers (`Children`). `server.py` takes them, `supervisor.py`
makes them; this module keeps the two from importing each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from dataclasses import dataclass, field
from pathlib import Path

from .transport.workers import CallIdRouter, Mailbox

log = logging.getLogger("sipmask.supervisor")


@dataclass
class WorkerSetup:
    """What a worker inherits: its index, the shared sockets (in `[sip] listen` order), the
    mailbox and the pipe it reports readiness on."""

    index: int
    sockets: list[socket.socket]
    mailbox: Mailbox
    ready_fd: int
    stats_dir: Path

    @property
    def stats_file(self) -> Path:
        """Where this worker writes its counters for the supervisor's /metrics."""
        return self.stats_dir / f"worker-{self.index}.json"

    def router(self) -> CallIdRouter:
        return CallIdRouter(self.index, self.mailbox)

    def report_ready(self) -> None:
        os.write(self.ready_fd, bytes([self.index]))


@dataclass
class Children:
    """The supervisor's view of its workers."""

    pids: list[int]
    ready_fd: int
    stats_dir: Path
    exit_codes: dict[int, int] = field(default_factory=dict)
    failed: bool = False
    stopping: bool = False

    def forward(self, signum: signal.Signals) -> None:
        if signum in (signal.SIGTERM, signal.SIGINT):
            self.stopping = True
        for pid in self.pids:
            if pid not in self.exit_codes:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signum)

    async def wait_ready(self) -> None:
        """Until every worker wrote its byte (or one died first)."""
        loop = asyncio.get_running_loop()
        seen: set[int] = set()
        while len(seen) < len(self.pids):
            if self.failed:
                raise RuntimeError("a worker failed to start")
            data = await loop.run_in_executor(None, _read_some, self.ready_fd)
            if not data:
                raise RuntimeError("the workers' ready pipe closed")
            seen.update(data)

    async def supervise(self, stop: asyncio.Event) -> None:
        """Reap the workers; stop the node when they are all gone, or when one dies."""
        loop = asyncio.get_running_loop()
        while len(self.exit_codes) < len(self.pids):
            pid, status = await loop.run_in_executor(None, os.wait)
            code = os.waitstatus_to_exitcode(status)
            self.exit_codes[pid] = code
            if not self.stopping:
                log.error("worker %d exited with %d: stopping the node", pid, code)
                self.failed = True
                self.forward(signal.SIGTERM)
        stop.set()


def _read_some(fd: int) -> bytes:
    return os.read(fd, 256)
