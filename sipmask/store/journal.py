"""The memory backend's append-only journal: one msgspec JSON object per line.

Each line is an event that the store applies to its state, live and on replay, so a restart
rebuilds exactly the state before it. On start the store replays the file, then compacts it
(rewrites only what is still alive) through a temporary file and an atomic rename.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

import msgspec

from .errors import StoreError
from .model import Interaction, Pool, Session


class PoolSaved(msgspec.Struct, frozen=True, tag="pool"):
    """A pool was created or its numbers changed."""

    pool: Pool


class PoolDeleted(msgspec.Struct, frozen=True, tag="pool-deleted"):
    """A pool was deleted."""

    name: str


class PoolUsage(msgspec.Struct, frozen=True, tag="usage"):
    """Allocation memory of a pool, written by compaction: when each number was last
    assigned (ms) and each pair's last numbers `(first number, second number, at ms)`."""

    name: str
    last_used: dict[str, int]
    sticky: dict[str, tuple[str, str, int]]


class SessionSaved(msgspec.Struct, frozen=True, tag="session"):
    """A session was created or changed (renewed, in progress, closed)."""

    session: Session


class InteractionSaved(msgspec.Struct, frozen=True, tag="interaction"):
    """A call record was kept."""

    interaction: Interaction


Event = PoolSaved | PoolDeleted | PoolUsage | SessionSaved | InteractionSaved

JOURNAL_NAME = "sessions.journal"


class Journal:
    """An append-only file of events under a data directory.

    Args:
        data_dir: the directory (created if missing).
        fsync: fsync after each append (durable across power loss, slower); without it an
            append survives a crash of the process, not of the machine.
    """

    def __init__(self, data_dir: str | os.PathLike[str], *, fsync: bool = False) -> None:
        self.path = Path(data_dir) / JOURNAL_NAME
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fsync = fsync
        self._encoder = msgspec.json.Encoder()
        self._file: IO[bytes] | None = None

    def replay(self) -> Iterator[Event]:
        """Yield the events of the file in order. A torn last line (a crash mid-write) is
        skipped; a bad line elsewhere raises StoreError."""
        if not self.path.exists():
            return
        decoder = msgspec.json.Decoder(Event)
        lines = self.path.read_bytes().split(b"\n")
        last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
        for number, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                yield decoder.decode(line)
            except msgspec.DecodeError as exc:
                if number == last:
                    return
                raise StoreError(f"{self.path}:{number + 1}: bad journal line: {exc}") from None

    def rewrite(self, events: Iterable[Event]) -> None:
        """Replace the file with these events (compaction), atomically, then open it for
        appending."""
        self.close()
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "wb") as out:
            for event in events:
                out.write(self._encoder.encode(event) + b"\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.path)
        self._file = open(self.path, "ab")

    def append(self, event: Event) -> None:
        """Write one event at the end of the file. Raises OSError if it cannot, leaving the
        file as it was."""
        if self._file is None:
            self._file = open(self.path, "ab")
        start = self._file.tell()
        try:
            self._file.write(self._encoder.encode(event) + b"\n")
            self._file.flush()
            if self._fsync:
                os.fsync(self._file.fileno())
        except OSError:
            # Leave no torn line before the next append (disk full, for one).
            broken, self._file = self._file, None
            with contextlib.suppress(OSError):
                broken.close()
            with contextlib.suppress(OSError), open(self.path, "r+b") as file:
                file.truncate(start)
            raise

    def close(self) -> None:
        """Close the file."""
        if self._file is not None:
            self._file.close()
            self._file = None
