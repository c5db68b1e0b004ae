"""Several worker processes on the same listen addresses, with calls routed by Call-ID.

Why: with one UDP socket per worker (`SO_REUSEPORT`) the kernel spreads datagrams by source
address, so every message of one busy carrier trunk (one IP:port) lands on one worker and
the others idle. Instead the listen sockets are opened once, before the workers fork, and
*shared*: every worker reads from the same sockets, so any worker may receive any datagram.
Each Call-ID has exactly one owner, `crc32(Call-ID) % workers`, which holds its transactions
and dialogs. A worker that receives a datagram of a Call-ID it does not own hands it to the
owner over a local datagram socket (`Mailbox`), with the source address and the index of the
listener it arrived on; the owner handles it as if it had read it itself and answers from its
copy of the same socket, so the peer sees the same source address. Each worker mints the
Call-IDs of the legs it creates so that it owns them (`CallIdRouter.mint`).

Streams (TCP/TLS) are not forwarded: a connection belongs to the worker that accepted or
opened it, and a call whose legs are both on connections stays on that worker.
"""

from __future__ import annotations

import re
import secrets
import socket
import struct
import zlib
from collections.abc import Callable

from ..sip.events import Address

_HEADER = struct.Struct("!BBH")  # listener index, host length, port
MAX_ENVELOPE = 70_000
_CALL_ID = re.compile(rb"\n(?:call-id|i)[ \t]*:[ \t]*([^\r\n]+)", re.IGNORECASE)


def call_id_of(data: bytes) -> bytes | None:
    """The Call-ID header value of a raw SIP message (full or compact name, any case, spaces
    before the colon allowed), as written, without surrounding whitespace; None when there is
    none. No full parse: a worker decides where a datagram goes before parsing it."""
    head_end = data.find(b"\r\n\r\n")
    match = _CALL_ID.search(data, 0, head_end if head_end >= 0 else len(data))
    return match.group(1).strip() if match is not None else None


def owner_of(call_id: bytes, workers: int) -> int:
    """The worker that owns a Call-ID."""
    return zlib.crc32(call_id) % workers


class Mailbox:
    """Local datagram sockets between the workers of one node, made before they fork."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pairs = [socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM) for _ in
                       range(workers)]
        for receiver, sender in self._pairs:
            for sock in (receiver, sender):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            receiver.setblocking(False)
            sender.setblocking(False)
        self.lost = 0

    def inbox(self, worker: int) -> socket.socket:
        return self._pairs[worker][0]

    def send(self, worker: int, listener: int, source: Address, data: bytes) -> None:
        """Hand one datagram to `worker` (dropped and counted when its mailbox is full: the
        peer retransmits, as after any loss)."""
        host = source.host.encode()
        try:
            self._pairs[worker][1].send(_HEADER.pack(listener, len(host), source.port) + host
                                        + data)
        except (BlockingIOError, OSError):
            self.lost += 1

    @staticmethod
    def unpack(envelope: bytes) -> tuple[int, Address, bytes]:
        listener, length, port = _HEADER.unpack_from(envelope)
        start = _HEADER.size
        host = envelope[start: start + length].decode()
        return listener, Address(host, port), envelope[start + length:]

    def close(self) -> None:
        for receiver, sender in self._pairs:
            receiver.close()
            sender.close()


class CallIdRouter:
    """One worker's view: which datagrams are its own, and Call-IDs it owns.

    Args:
        worker: this worker's index.
        mailbox: the node's mailbox (shared by all workers).
    """

    def __init__(self, worker: int, mailbox: Mailbox) -> None:
        self.worker = worker
        self.workers = mailbox.workers
        self.mailbox = mailbox
        self.forwarded = 0
        self.received_forwarded = 0

    def keep(self, data: bytes, source: Address, listener: int) -> bool:
        """Whether this worker handles `data`; otherwise it is forwarded to its owner. A
        datagram without a Call-ID is kept (the layer answers or drops it)."""
        call_id = call_id_of(data)
        if call_id is None:
            return True
        owner = owner_of(call_id, self.workers)
        if owner == self.worker:
            return True
        self.forwarded += 1
        self.mailbox.send(owner, listener, source, data)
        return False

    def mint(self, nbytes: int = 16) -> str:
        """A fresh random Call-ID (hex, no host part) that this worker owns."""
        while True:
            candidate = secrets.token_hex(nbytes)
            if owner_of(candidate.encode(), self.workers) == self.worker:
                return candidate

    def read_inbox(self, deliver: Callable[[int, Address, bytes], None]) -> None:
        """Deliver every datagram waiting in this worker's mailbox (call from the loop's
        reader callback)."""
        inbox = self.mailbox.inbox(self.worker)
        while True:
            try:
                envelope = inbox.recv(MAX_ENVELOPE)
            except (BlockingIOError, InterruptedError):
                return
            self.received_forwarded += 1
            listener, source, data = Mailbox.unpack(envelope)
            deliver(listener, source, data)

