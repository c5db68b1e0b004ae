"""TCP and TLS connections (RFC 3261 §18.3, §26.2): one asyncio `Protocol` per connection,
framed by the core's `StreamFramer`, kept in one table keyed by the peer's (host, port) for
reuse. TLS is the ssl module under the same protocol (`server_context` builds the context
from a certificate and key file).

What this module enforces, before any SIP is parsed:
- the source check: a connection from outside the allowed networks is aborted at once;
- the buffer limit: the framer refuses a message over `max_message` octets (or without a
  usable Content-Length) with `ParseError`, and the connection is closed (a stream cannot
  be resynchronised);
- the idle timeout: a connection that carried nothing for `idle_timeout` seconds is closed
  by one sweep timer per table (not one handle per connection);
- the message timeout: a message begun must be complete within `message_timeout` seconds
  (slowloris), checked by the same sweep;
- the buffered-bytes cap: unfinished messages of all connections together hold at most
  `max_buffered` octets; the connection whose data would pass it is closed (each one holds
  at most what its framer accepts, `max_message`, and its buffer goes with it);
- the connection caps: `max_connections` in all and `max_per_source` from one IP, so one
  address (even a trusted one) cannot take every slot;
- a write-buffer limit: a peer that does not read is cut off rather than buffered forever;
- RFC 5626 §4.4.1 keep-alives: each CRLFCRLF "ping" is answered with a CRLF "pong".
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Callable, Iterator
from typing import cast

from .._core import StreamFramer
from ..errors import ParseError
from ..sip.events import Address
from .udp import Network, TransportStats, source_allowed

log = logging.getLogger(__name__)

DEFAULT_MAX_MESSAGE = 65_535
DEFAULT_MAX_CONNECTIONS = 10_000
"""Open TCP/TLS connections beyond which new ones are refused (accepted, then aborted)."""
DEFAULT_MAX_PER_SOURCE = 100
"""Open TCP/TLS connections from one IP address beyond which new ones are refused."""
DEFAULT_IDLE_TIMEOUT = 60.0
DEFAULT_MESSAGE_TIMEOUT = 10.0
"""Seconds a begun message may take to arrive completely."""
DEFAULT_MAX_BUFFERED = 4 * 1024 * 1024
"""Octets of unfinished messages held over all connections together."""
DEFAULT_CLOSE_TIMEOUT = 1.0
"""Seconds a closing connection gets for its goodbye (TLS close_notify) before it is aborted."""
DEFAULT_MAX_WRITE_BUFFER = 1 << 20
PONG = b"\r\n"

MessageHandler = Callable[[bytes, Address, "StreamConnection"], None]


class StreamConnection(asyncio.Protocol):
    """One TCP connection, accepted or opened by us."""

    reliable = True

    def __init__(
        self, table: ConnectionTable, advertise: Address | None = None, *, tls: bool = False
    ) -> None:
        self.transport_name = "TLS" if tls else "TCP"
        self._table = table
        # Made on the first octet and dropped with the connection (an idle one holds none).
        self._framer: StreamFramer | None = None
        self._buffered = 0  # octets of an unfinished message, as counted in the table
        self.message_started: float | None = None  # when the unfinished message began
        self._keepalives = 0
        self._transport: asyncio.Transport | None = None
        self.peer: Address | None = None
        self.local: Address | None = None
        self._advertise = advertise
        self.last_activity = table.loop.time()
        self.is_lost = False
        # Made only when someone waits for the close (shutdown): an Event per connection
        # would cost most of what an idle connection holds.
        self._lost: asyncio.Future[None] | None = None

    @property
    def advertise(self) -> Address:
        if self._advertise is not None:
            return self._advertise
        assert self.local is not None
        return self.local

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the interface without subclassing asyncio's.
        stream = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        local = transport.get_extra_info("sockname")
        if not source_allowed(peer[0], self._table.allowed):
            self._table.stats.refused_source += 1
            stream.abort()
            return
        if (
            len(self._table) >= self._table.max_connections
            or self._table.from_source(peer[0]) >= self._table.max_per_source
        ):
            # A flood of connections must not exhaust file descriptors or memory, nor one
            # address take every slot.
            self._table.stats.refused_connections += 1
            stream.abort()
            return
        self._transport = stream
        self.peer = Address(peer[0], peer[1])
        self.local = Address(local[0], local[1])
        self._table.add(self)

    def data_received(self, data: bytes) -> None:
        if self._transport is None or self._transport.is_closing():
            return
        table = self._table
        now = self.last_activity = table.loop.time()
        framer = self._framer
        if framer is None:
            framer = self._framer = StreamFramer(table.max_message)
        try:
            frames = framer.feed(data)
        except ParseError as error:
            # No Content-Length, a bad one, or a message over the limit: the stream cannot
            # be resynchronised, so the connection goes (RFC 3261 §18.3).
            table.stats.oversized += 1
            log.debug("tcp %s: closing, %s", self.peer, error)
            self.close()
            return
        self._account(framer.buffered)
        if self._buffered and table.buffered > table.max_buffered:
            # Past the shared cap: this connection asks for more memory than is left, so
            # it goes (its buffer with it), not the others.
            table.stats.over_buffered += 1
            log.debug("tcp %s: closing, buffered-bytes cap reached", self.peer)
            self.abort()
            self._drop_buffer()
            return
        if not framer.buffered:
            self.message_started = None
        elif frames or self.message_started is None:
            self.message_started = now  # a message (re)started: its clock starts now
        pings = framer.keepalives - self._keepalives
        if pings:
            self._keepalives = framer.keepalives
            self.send(PONG * pings)  # RFC 5626 §4.4.1: a CRLF pong per CRLFCRLF ping
        if not framer.buffered:
            # Nothing pending: the framer goes, and with it the buffer a large message grew
            # (a bytearray keeps its size once grown); the next octet makes a fresh one.
            self._framer = None
            self._keepalives = 0
        assert self.peer is not None
        for frame in frames:
            if self._transport is None:
                break  # the handler closed us
            self._table.stats.received += 1
            self._table.on_message(frame, self.peer, self)

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def _account(self, buffered: int) -> None:
        self._table.buffered += buffered - self._buffered
        self._buffered = buffered

    def _drop_buffer(self) -> None:
        self._account(0)
        self._framer = None  # its buffer goes now, not when the protocol object does
        self.message_started = None

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._drop_buffer()
        self._table.remove(self)
        self.is_lost = True
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)

    async def wait_lost(self) -> None:
        """Return once the connection is gone (`connection_lost`)."""
        if self.is_lost:
            return
        if self._lost is None:
            self._lost = self._table.loop.create_future()
        await asyncio.shield(self._lost)

    def send(self, data: bytes) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            self._table.stats.send_errors += 1
            return
        transport.write(data)
        self._table.stats.sent += 1
        self.last_activity = self._table.loop.time()
        if transport.get_write_buffer_size() > self._table.max_write_buffer:
            log.debug("tcp %s: peer does not read, aborting", self.peer)
            transport.abort()

    @property
    def is_open(self) -> bool:
        return self._transport is not None and not self._transport.is_closing()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        """Drop the connection at once (no TLS goodbye)."""
        if self._transport is not None:
            self._transport.abort()


class ConnectionTable:
    """Every TCP connection of an endpoint, keyed by the peer's (host, port), with their
    listening servers, the idle sweep and the shared limits."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        on_message: MessageHandler,
        allowed: tuple[Network, ...],
        *,
        max_message: int = DEFAULT_MAX_MESSAGE,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        max_write_buffer: int = DEFAULT_MAX_WRITE_BUFFER,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        max_per_source: int = DEFAULT_MAX_PER_SOURCE,
        message_timeout: float = DEFAULT_MESSAGE_TIMEOUT,
        max_buffered: int = DEFAULT_MAX_BUFFERED,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
    ) -> None:
        self.loop = loop
        self.max_connections = max_connections
        self.max_per_source = max_per_source
        self.message_timeout = message_timeout
        self.max_buffered = max_buffered
        self.close_timeout = close_timeout
        self.buffered = 0
        """Gauge: octets of unfinished messages held now, over all connections."""
        self._per_source: dict[str, int] = {}
        self.on_message = on_message
        self.allowed = allowed
        self.max_message = max_message
        self.idle_timeout = idle_timeout
        self.max_write_buffer = max_write_buffer
        self.stats = TransportStats()
        self._connections: dict[Address, StreamConnection] = {}
        self._servers: list[tuple[asyncio.Server, Address | None]] = []
        self._sweep: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return len(self._connections)

    @property
    def open_connections(self) -> int:
        """Gauge: connections open now."""
        return len(self._connections)

    def from_source(self, host: str) -> int:
        """Connections open now from IP `host`."""
        return self._per_source.get(host, 0)

    def __iter__(self) -> Iterator[StreamConnection]:
        return iter(list(self._connections.values()))

    def get(self, peer: Address) -> StreamConnection | None:
        connection = self._connections.get(peer)
        return connection if connection is not None and connection.is_open else None

    def add(self, connection: StreamConnection) -> None:
        assert connection.peer is not None
        old = self._connections.get(connection.peer)
        if old is not None and old is not connection:
            old.close()
        self._connections[connection.peer] = connection
        host = connection.peer.host
        self._per_source[host] = self._per_source.get(host, 0) + 1
        if self._sweep is None:
            self._arm_sweep()

    def remove(self, connection: StreamConnection) -> None:
        peer = connection.peer
        if peer is None:
            return
        if self._connections.get(peer) is connection:
            del self._connections[peer]
        count = self._per_source.get(peer.host, 0) - 1
        if count > 0:
            self._per_source[peer.host] = count
        else:
            self._per_source.pop(peer.host, None)

    async def listen(
        self,
        bind: Address,
        advertise: Address | None = None,
        *,
        ssl_context: ssl.SSLContext | None = None,
        sock: socket.socket | None = None,
    ) -> Address:
        """Accept connections on `bind` (TLS with `ssl_context`); return the bound address
        (port 0 picks one). Over TLS the source check runs once the handshake is done: the
        ssl module calls `connection_made` only then."""
        tls = ssl_context is not None
        if sock is not None:  # a listening socket shared by several workers
            server = await self.loop.create_server(
                lambda: StreamConnection(self, advertise, tls=tls), sock=sock, ssl=ssl_context
            )
        else:
            server = await self.loop.create_server(
                lambda: StreamConnection(self, advertise, tls=tls),
                bind.host,
                bind.port,
                ssl=ssl_context,
            )
        self._servers.append((server, advertise))
        name = server.sockets[0].getsockname()
        return Address(name[0], name[1])

    async def connect(
        self,
        dest: Address,
        *,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
    ) -> StreamConnection:
        """The open connection to `dest`, reused when there is one, else a new one (TLS
        with `ssl_context`, checking the certificate against `server_hostname`, by default
        the host of `dest`)."""
        existing = self.get(dest)
        if existing is not None:
            return existing
        protocol = StreamConnection(self, tls=ssl_context is not None)
        await self.loop.create_connection(
            lambda: protocol,
            dest.host,
            dest.port,
            ssl=ssl_context,
            server_hostname=(server_hostname or dest.host) if ssl_context else None,
        )
        if protocol.peer is None:
            raise ConnectionRefusedError(f"{dest} is outside the allowed networks")
        # Key by the address asked for too, so later sends to `dest` find it.
        self._connections.setdefault(dest, protocol)
        return protocol

    def _arm_sweep(self) -> None:
        # One handle for the whole table, fired a few times per idle or message period.
        period = min(self.idle_timeout, self.message_timeout) / 4
        self._sweep = self.loop.call_later(max(period, 0.01), self._on_sweep)

    def _on_sweep(self) -> None:
        self._sweep = None
        now = self.loop.time()
        idle, slow = now - self.idle_timeout, now - self.message_timeout
        for connection in list(self._connections.values()):
            started = connection.message_started
            if connection.last_activity <= idle:
                log.debug("tcp %s: idle, closing", connection.peer)
                connection.close()
            elif started is not None and started <= slow:
                self.stats.slow_messages += 1
                log.debug("tcp %s: message not complete in time, closing", connection.peer)
                connection.abort()
        if self._connections:
            self._arm_sweep()

    async def close(self) -> None:
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        for server, _ in self._servers:
            server.close()
        connections = list(self._connections.values())
        for connection in connections:
            connection.close()
        if connections:
            # A TLS close waits for the peer's close_notify (up to 30 s in asyncio): bounded
            # here, then the rest is aborted, so a stop never hangs on an idle peer.
            waits = [asyncio.ensure_future(c.wait_lost()) for c in connections]
            _, pending = await asyncio.wait(waits, timeout=self.close_timeout)
            for connection in connections:
                if not connection.is_lost:
                    connection.abort()
            if pending:
                await asyncio.wait(pending, timeout=self.close_timeout)
                for wait in pending:
                    wait.cancel()
        self._connections.clear()
        self._per_source.clear()
        for server, _ in self._servers:
            await server.wait_closed()
        self._servers.clear()


def server_context(certfile: str, keyfile: str | None = None) -> ssl.SSLContext:
    """A TLS server context from a PEM certificate (chain) and key, TLS 1.2 or later (RFC 3261
    §26.3.1 asks for TLS; RFC 8446 and BCP 195 for the versions)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile, keyfile)
    return context


def client_context(cafile: str | None = None) -> ssl.SSLContext:
    """A TLS client context, TLS 1.2 or later, checking the peer's certificate and name
    against `cafile` (PEM) or, without one, the system's trusted certificates."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context
