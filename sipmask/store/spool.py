"""Call records that could not be written while the store was down, kept until it is back
(issue 13, defect 6): billing data, spooled and replayed like the events of `events.py`.

The spool is an append-only file of JSON lines (fsynced: on disk before the call's state is
gone) when the store has a directory for it, else a bounded queue in memory (the oldest are
dropped when it fills, and what it holds is lost with the process). Replay is oldest first
and at least once: a record written just before the store failed may be written again, so
readers drop repeats by the record's id.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Sequence
from pathlib import Path

import msgspec

from .model import Interaction

__all__ = ["DEFAULT_MEMORY_SPOOL", "RecordSpool"]

logger = logging.getLogger("sipmask.store")

DEFAULT_MEMORY_SPOOL = 100_000
"""Records a spool without a file holds before the oldest are dropped."""
_BATCH = 256

_encode = msgspec.json.encode
_decode = msgspec.json.Decoder(Interaction)


class RecordSpool:
    """Records waiting for the store.

    Args:
        path: the spool file; None keeps them in memory (bounded by `max_memory`).
        max_memory: bound of the in-memory spool.
    """

    def __init__(self, path: str | os.PathLike[str] | None, *, max_memory: int =
                 DEFAULT_MEMORY_SPOOL) -> None:
        self.path = Path(path) if path is not None else None
        self._memory: deque[Interaction] = deque(maxlen=max_memory)
        self._offset = 0  # bytes of the file already replayed
        self._peeked = 0  # the offset after the batch last peeked
        self._dropped_since_peek = 0  # from the memory queue's head, while a batch was out
        self.spooled = 0
        self.replayed = 0
        self.dropped = 0

    @property
    def pending(self) -> bool:
        """Whether records wait (a file left by an earlier run counts)."""
        if self.path is None:
            return bool(self._memory)
        try:
            return self.path.stat().st_size > self._offset
        except FileNotFoundError:
            return False

    def add(self, records: Sequence[Interaction]) -> None:
        """Keep records at the end of the spool. Raises OSError (the file cannot be
        written)."""
        if self.path is None:
            overflow = len(self._memory) + len(records) - (self._memory.maxlen or 0)
            if overflow > 0:
                self.dropped += overflow
                self._dropped_since_peek += overflow
                logger.error("record spool full: %d oldest call record(s) dropped", overflow)
            self._memory.extend(records)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("ab") as f:
                f.write(b"".join(_encode(r) + b"\n" for r in records))
                f.flush()
                os.fsync(f.fileno())  # billing data: on disk before it leaves memory
        self.spooled += len(records)

    def peek(self) -> list[Interaction]:
        """Up to a batch of the oldest records, without taking them (see `done`)."""
        if self.path is None:
            self._dropped_since_peek = 0
            return [self._memory[i] for i in range(min(_BATCH, len(self._memory)))]
        records: list[Interaction] = []
        try:
            with self.path.open("rb") as f:
                f.seek(self._offset)
                self._peeked = self._offset
                for line in f:
                    if not line.endswith(b"\n"):
                        break  # a torn last line (a crash while spooling): not a record
                    self._peeked += len(line)
                    if line.strip():
                        try:
                            records.append(_decode.decode(line))
                        except msgspec.DecodeError:
                            logger.error("record spool: an unreadable line skipped")
                    if len(records) >= _BATCH:
                        break
        except FileNotFoundError:
            return []
        return records

    def done(self, count: int) -> None:
        """The `count` records last peeked are written: drop them (the file once all of it
        is replayed)."""
        self.replayed += count
        if self.path is None:
            # What the full queue dropped meanwhile was the head of this batch already.
            for _ in range(max(count - self._dropped_since_peek, 0)):
                self._memory.popleft()
            self._dropped_since_peek = 0
            return
        self._offset = self._peeked
        try:
            if self.path.stat().st_size <= self._offset:
                self.path.unlink()
                self._offset = 0
        except FileNotFoundError:
            self._offset = 0

    @property
    def held_in_memory(self) -> int:
        return len(self._memory)
