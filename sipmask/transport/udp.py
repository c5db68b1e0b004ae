"""UDP listeners: an asyncio `DatagramProtocol` per listen address (RFC 3261 §18).

A listener does three things and no SIP: it drops datagrams whose source is outside the
allowed networks (before anything parses them), drops datagrams over the size limit, and
hands the rest to its owner (the `SipEndpoint`) with the source as an `Address`. Sending is
`sendto` on the listener's own socket, so responses leave from the address the request
reached (symmetric signalling, which RFC 3581 peers behind NAT rely on).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, cast

from ..sip.events import Address

log = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# RFC 3261 §18.1.1 wants TCP above MTU-200 octets for requests; a datagram itself can never
# exceed 65,507 octets of payload over IPv4. Received datagrams longer than this are dropped.
DEFAULT_MAX_DATAGRAM = 65_507
# A large kernel receive buffer rides out event-loop pauses (a garbage collection can stop the
# process for hundreds of ms) instead of dropping requests that peers then retransmit. The
# kernel caps it at net.core.rmem_max.
DEFAULT_RECEIVE_BUFFER = 4 * 1024 * 1024
# Source verdicts are cached per host: parsing the address with ipaddress costs more than the
# rest of the listener's per-datagram work. The cache is cleared when full.
SOURCE_CACHE_SIZE = 4096


def parse_networks(networks: Iterable[str | Network]) -> tuple[Network, ...]:
    """The allowed source networks from strings such as '10.0.0.0/8' or '::1'."""
    return tuple(
        n if isinstance(n, Network) else ipaddress.ip_network(n, strict=False) for n in networks
    )


def source_allowed(host: str, networks: tuple[Network, ...]) -> bool:
    """Whether the IP literal `host` lies in one of `networks`. An IPv4-mapped IPv6 source
    (a dual-stack socket) is judged as the IPv4 address it carries; a scope id is ignored."""
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in networks)


@dataclass(slots=True)
class TransportStats:
    """Counters of one listener; only ever incremented."""

    received: int = 0
    sent: int = 0
    refused_source: int = 0
    """Datagrams or connections from outside the allowed networks."""
    oversized: int = 0
    """Datagrams over the size limit, or streams whose framer gave up."""
    send_errors: int = 0
    refused_connections: int = 0
    """TCP/TLS connections refused because `max_connections` (or `max_per_source` from
    that address) were open."""
    over_buffered: int = 0
    """TCP/TLS connections closed because their data would pass the buffered-bytes cap."""
    slow_messages: int = 0
    """TCP/TLS connections closed because a message took longer than the message timeout."""


SO_MEMINFO = getattr(socket, "SO_MEMINFO", 55)  # Linux: sk_meminfo, 9 unsigned ints

DatagramHandler = Callable[[bytes, Address, "UdpListener"], None]


class UdpListener(asyncio.DatagramProtocol):
    """One bound UDP socket.

    Args:
        on_datagram: called with (data, source, listener) for each accepted datagram.
        allowed: networks a datagram's source must belong to.
        max_datagram: largest datagram accepted, in octets.
        advertise: the address peers should use (Via sent-by, Contact, SDP), when it differs
            from the bound one (NAT, containers); None means the bound address.
    """

    transport_name = "UDP"
    reliable = False

    def __init__(
        self,
        on_datagram: DatagramHandler,
        allowed: tuple[Network, ...],
        *,
        max_datagram: int = DEFAULT_MAX_DATAGRAM,
        advertise: Address | None = None,
        receive_buffer: int = DEFAULT_RECEIVE_BUFFER,
    ) -> None:
        self._on_datagram = on_datagram
        self._allowed = allowed
        self._source_verdicts: dict[str, bool] = {}
        self.receive_buffer = receive_buffer
        self.max_datagram = max_datagram
        self._advertise = advertise
        self.stats = TransportStats()
        self._transport: asyncio.DatagramTransport | None = None
        self.local: Address | None = None
        self.family = socket.AF_INET
        self.index = 0
        """Position among the endpoint's UDP listeners (the same in every worker)."""

    def queue_state(self) -> tuple[int, int, int] | None:
        """(bytes waiting in the socket's receive queue, its size, datagrams the kernel
        dropped because it was full) from Linux's SO_MEMINFO; None where unavailable. The
        backlog of a saturated process sits here, where the event loop cannot see it."""
        if self._transport is None:
            return None
        sock = self._transport.get_extra_info("socket")
        try:
            raw = sock.getsockopt(socket.SOL_SOCKET, SO_MEMINFO, 36)
        except (OSError, AttributeError):
            return None
        rmem, rcvbuf, *_, drops = struct.unpack("9I", raw)
        return rmem, rcvbuf, drops

    def set_allowed(self, allowed: tuple[Network, ...]) -> None:
        """Replace the source networks (a reload); cached verdicts are dropped."""
        self._allowed = allowed
        self._source_verdicts.clear()

    @property
    def advertise(self) -> Address:
        """What goes into Via/Contact for this listener."""
        if self._advertise is not None:
            return self._advertise
        assert self.local is not None, "not bound yet"
        return self.local

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the interface without subclassing asyncio's.
        self._transport = cast(asyncio.DatagramTransport, transport)
        sock = transport.get_extra_info("socket")
        name = transport.get_extra_info("sockname")
        self.family = sock.family if sock is not None else socket.AF_INET
        if sock is not None and self.receive_buffer:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.receive_buffer)
            except OSError:  # not permitted or not supported: keep the kernel's default
                pass
        self.local = Address(name[0], name[1])

    def datagram_received(self, data: bytes, addr: Any) -> None:
        host, port = addr[0], addr[1]
        allowed = self._source_verdicts.get(host)
        if allowed is None:
            if len(self._source_verdicts) >= SOURCE_CACHE_SIZE:
                self._source_verdicts.clear()
            allowed = self._source_verdicts[host] = source_allowed(host, self._allowed)
        if not allowed:
            self.stats.refused_source += 1
            return
        if len(data) > self.max_datagram:
            self.stats.oversized += 1
            return
        self.stats.received += 1
        self._on_datagram(data, Address(host, port), self)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and friends: a peer went away; nothing to tear down here.
        self.stats.send_errors += 1
        log.debug("udp %s: %s", self.local, exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None

    def send(self, data: bytes, dest: Address) -> None:
        """Send one datagram from this socket (dropped when the listener is closed)."""
        if self._transport is None:
            self.stats.send_errors += 1
            return
        self.stats.sent += 1
        self._transport.sendto(data, (dest.host, dest.port))

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


async def open_udp(
    loop: asyncio.AbstractEventLoop,
    bind: Address,
    on_datagram: DatagramHandler,
    allowed: tuple[Network, ...],
    *,
    max_datagram: int = DEFAULT_MAX_DATAGRAM,
    advertise: Address | None = None,
    receive_buffer: int = DEFAULT_RECEIVE_BUFFER,
    sock: socket.socket | None = None,
) -> UdpListener:
    """Bind a UDP listener on `bind` (IPv4 or IPv6 literal; port 0 picks a free port), or
    listen on `sock`, already bound (a socket shared by several workers)."""
    listener = UdpListener(
        on_datagram,
        allowed,
        max_datagram=max_datagram,
        advertise=advertise,
        receive_buffer=receive_buffer,
    )
    if sock is not None:
        await loop.create_datagram_endpoint(lambda: listener, sock=sock)
    else:
        await loop.create_datagram_endpoint(lambda: listener, local_addr=(bind.host, bind.port))
    return listener
