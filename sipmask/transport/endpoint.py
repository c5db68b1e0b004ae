"""`SipEndpoint`: the glue between sockets, the loop's clock and the sans-IO SIP layer.

Theory of operation (aioquic's `QuicConnectionProtocol` mapped onto SIP):

- Input. Every listener (UDP socket or TCP connection) hands the endpoint bytes and a source
  `Address`; the endpoint reads `loop.time()` once and calls
  `layer.receive_datagram(data, source, now, reliable=...)`. The layer is the error boundary
  for remote input: a malformed message is answered or dropped there.
- Output. After every input, timer or application call the endpoint *services* the layer:
  it hands each event from `next_event()` to the application callback, then writes every
  `datagrams_to_send(now)` to the socket the destination is known on, then re-arms the timer.
- Time. The endpoint keeps exactly one `loop.call_at` handle, armed for `layer.get_timer()`
  (aioquic `transmit()`): re-armed only when the deadline changes, and when it fires,
  `handle_timer(max(deadline, loop.time()))` so a handle that fires a hair early does not spin.
- Routing. The layer speaks in `Address`es only. The endpoint remembers, for each peer
  address it heard from, the *flow* it came on (the UDP listener or the TCP connection) in a
  bounded table, and answers on that flow: responses leave from the socket the request
  reached (RFC 3581 symmetric response), and TCP responses go on the request's connection
  (RFC 3261 §18.2.2). A datagram for a TCP peer whose connection is gone is dropped and
  counted (no reconnection to sent-by yet). An unknown destination goes out on the first UDP
  listener of its address family.
- The application callback is an error boundary too: an exception from it is logged and the
  next event is delivered; the loop never stops for one bad call.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import socket
import ssl
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .._core import Request, Response
from ..sip.events import Address, SipEvent, TransactionKey, is_ip_literal
from ..sip.layer import TransactionLayer
from .stream import (
    DEFAULT_CLOSE_TIMEOUT,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_BUFFERED,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_MESSAGE,
    DEFAULT_MAX_PER_SOURCE,
    DEFAULT_MESSAGE_TIMEOUT,
    ConnectionTable,
    StreamConnection,
)
from .udp import DEFAULT_MAX_DATAGRAM, Network, UdpListener, open_udp, parse_networks
from .workers import CallIdRouter

log = logging.getLogger(__name__)

LOOPBACK = ("127.0.0.0/8", "::1/128")
MAX_FLOWS = 65_536

EventHandler = Callable[["SipEndpoint", SipEvent], None]
Flow = UdpListener | StreamConnection


@dataclass(frozen=True, slots=True)
class ListenSpec:
    """One listen address: `udp:127.0.0.1:5060`, `tcp:[::1]:5060`, `tls:0.0.0.0:5061`, with an
    optional address to advertise (`advertise='203.0.113.5:5060'`)."""

    transport: str
    bind: Address
    advertise: Address | None = None

    @classmethod
    def parse(cls, text: str, advertise: str | None = None) -> ListenSpec:
        transport, _, hostport = text.partition(":")
        transport = transport.lower()
        if transport not in ("udp", "tcp", "tls"):
            raise ValueError(f"unknown transport in {text!r} (udp, tcp or tls)")
        return cls(
            transport, parse_hostport(hostport), parse_hostport(advertise) if advertise else None
        )


def parse_hostport(text: str) -> Address:
    """'127.0.0.1:5060', '[::1]:5060' -> Address (IPv6 without brackets)."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":")
    else:
        host, _, port = text.rpartition(":")
    if not host or not port:
        raise ValueError(f"expected host:port, got {text!r}")
    return Address(host, int(port))


@functools.lru_cache(maxsize=4096)
def _family(host: str) -> int:
    try:
        return socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        return socket.AF_INET  # a name


def _worth_logging(count: int) -> bool:
    """Log the first 100 failures in full, then every 1,000th: a bug a peer can trigger at
    will must not become a flood of tracebacks (the counters keep the exact number)."""
    return count <= 100 or count % 1_000 == 0


def format_hostport(address: Address) -> str:
    """Address -> 'host:port' with IPv6 literals in brackets (RFC 3261 §25.1)."""
    host = f"[{address.host}]" if ":" in address.host else address.host
    return f"{host}:{address.port}"


class SipEndpoint:
    """Listeners, one `TransactionLayer` and an application callback, on one loop.

    Args:
        on_event: called with (endpoint, event) for every event of the layer; it may call
            `send_response` / `send_request` at once.
        layer: the transaction layer (a default `TransactionLayer()` when None).
        allowed: networks traffic may come from; the rest is dropped before parsing
            (the loopback networks by default).
        max_datagram: largest UDP datagram accepted.
        max_message: largest message on a TCP connection (the framer's buffer limit).
        idle_timeout: seconds after which a silent TCP connection is closed.
        max_connections: open TCP/TLS connections beyond which new ones are refused.
        max_connections_per_source: the same, from one IP address.
        message_timeout: seconds a begun TCP message may take to arrive completely.
        max_buffered: octets of unfinished TCP messages held over all connections.
        close_timeout: seconds a closing TCP/TLS connection gets before it is aborted.
        router: with several workers, which datagrams this worker handles (the others are
            handed to their owner, `workers.py`); None handles everything.
    """

    def __init__(
        self,
        on_event: EventHandler,
        *,
        layer: TransactionLayer | None = None,
        allowed: Iterable[str | Network] = LOOPBACK,
        max_datagram: int = DEFAULT_MAX_DATAGRAM,
        max_message: int = DEFAULT_MAX_MESSAGE,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        max_connections_per_source: int = DEFAULT_MAX_PER_SOURCE,
        message_timeout: float = DEFAULT_MESSAGE_TIMEOUT,
        max_buffered: int = DEFAULT_MAX_BUFFERED,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
        router: CallIdRouter | None = None,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.router = router
        self.layer = layer if layer is not None else TransactionLayer()
        self.allowed = parse_networks(allowed)
        self.max_datagram = max_datagram
        self._on_event = on_event
        self.udp: list[UdpListener] = []
        self.tcp = ConnectionTable(
            self.loop,
            self._on_stream_message,
            self.allowed,
            max_message=max_message,
            idle_timeout=idle_timeout,
            max_connections=max_connections,
            max_per_source=max_connections_per_source,
            message_timeout=message_timeout,
            max_buffered=max_buffered,
            close_timeout=close_timeout,
        )
        self.tcp_listening: list[Address] = []
        # (transport, address family, the address peers are told: advertise or bound)
        self._advertised: list[tuple[str, int, Address]] = []
        self._flows: OrderedDict[Address, Flow] = OrderedDict()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._busy = False
        self.callback_errors = 0
        self.responses_sent: dict[int, int] = {}
        """Responses the application sent, by status (for metrics)."""
        self.internal_errors = 0
        self.unroutable = 0

    # --- setup -----------------------------------------------------------------------------

    async def listen(
        self,
        spec: ListenSpec | str,
        *,
        ssl_context: ssl.SSLContext | None = None,
        sock: socket.socket | None = None,
    ) -> Address:
        """Open a listener; return the address it is bound to (port 0 picks a free port).
        A `tls` listener needs `ssl_context` (see `stream.server_context`). `sock`, already
        bound (and listening for TCP), is used instead of binding: several workers share
        it."""
        if isinstance(spec, str):
            spec = ListenSpec.parse(spec)
        if (spec.transport == "tls") != (ssl_context is not None):
            raise ValueError("an ssl_context is needed for tls listeners, and only for them")
        if spec.transport == "udp":
            listener = await open_udp(
                self.loop,
                spec.bind,
                self._on_datagram,
                self.allowed,
                max_datagram=self.max_datagram,
                advertise=spec.advertise,
                sock=sock,
            )
            listener.index = len(self.udp)
            self.udp.append(listener)
            assert listener.local is not None
            self._advertised.append(("udp", listener.family, listener.advertise))
            return listener.local
        bound = await self.tcp.listen(
            spec.bind, spec.advertise, ssl_context=ssl_context, sock=sock
        )
        self.tcp_listening.append(bound)
        self._advertised.append(
            (spec.transport, _family(bound.host), spec.advertise or bound)
        )
        return bound

    def set_allowed(self, networks: Iterable[str | Network]) -> None:
        """Replace the source networks of every listener and of new TCP connections (a
        reload); connections already open stay."""
        allowed = parse_networks(networks)
        self.allowed = allowed
        self.tcp.allowed = allowed
        for listener in self.udp:
            listener.set_allowed(allowed)

    def local_address(self, transport: str, peer: Address | None = None) -> Address:
        """The address sipmask names in Via and Contact for `transport` towards `peer`: the
        advertised (or bound) address of the first listener of that transport and of the
        peer's address family. Raises LookupError when there is no such listener."""
        family = _family(peer.host) if peer is not None else None
        fallback = None
        for name, listener_family, address in self._advertised:
            if name != transport:
                continue
            if family is None or listener_family == family:
                return address
            fallback = fallback or address
        if fallback is None:
            raise LookupError(f"no {transport} listener")
        return fallback

    async def close(self) -> None:
        """Close every listener and connection and disarm the timer."""
        if self.router is not None:
            self.loop.remove_reader(self.router.mailbox.inbox(self.router.worker).fileno())
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for listener in self.udp:
            listener.close()
        self.udp.clear()
        await self.tcp.close()
        self._flows.clear()

    async def __aenter__(self) -> SipEndpoint:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- the clock -------------------------------------------------------------------------

    def now(self) -> float:
        """The endpoint's time: the loop's monotonic clock (the only clock the layer sees)."""
        return self.loop.time()

    # --- input from the listeners ----------------------------------------------------------

    def _on_datagram(self, data: bytes, source: Address, listener: UdpListener) -> None:
        router = self.router
        if router is not None and not router.keep(data, source, listener.index):
            return  # another worker owns this Call-ID: handed over
        self._remember(source, listener)
        self._receive(data, source, reliable=False)

    def start_mailbox(self) -> None:
        """Take datagrams other workers hand over (several workers only)."""
        if self.router is not None:
            inbox = self.router.mailbox.inbox(self.router.worker)
            self.loop.add_reader(inbox.fileno(), self.router.read_inbox, self._on_handed_over)

    def _on_handed_over(self, index: int, source: Address, data: bytes) -> None:
        if index >= len(self.udp):
            self.internal_errors += 1
            return
        listener = self.udp[index]
        self._remember(source, listener)
        self._receive(data, source, reliable=False)

    def _on_stream_message(self, data: bytes, source: Address, conn: StreamConnection) -> None:
        self._remember(source, conn)
        self._receive(data, source, reliable=True)

    def _receive(self, data: bytes, source: Address, *, reliable: bool) -> None:
        try:
            self.layer.receive_datagram(data, source, self.loop.time(), reliable=reliable)
        except Exception:
            # The layer promises not to raise for remote input; should a bug break that
            # promise, this message is lost, not the listener (STYLE.md §4).
            self.internal_errors += 1
            if _worth_logging(self.internal_errors):
                log.exception("the SIP layer failed on a message from %s", source)
        self._service()

    def _remember(self, source: Address, flow: Flow) -> None:
        flows = self._flows
        if flows.get(source) is not flow:
            flows[source] = flow
        flows.move_to_end(source)
        if len(flows) > MAX_FLOWS:
            flows.popitem(last=False)

    def flow_for(self, peer: Address) -> Flow | None:
        """The UDP listener or TCP connection `peer` was last heard on (its `advertise`
        address is what a Contact for that peer names), or None."""
        return self._flows.get(peer)

    # --- output from the application -------------------------------------------------------

    def send_response(self, key: TransactionKey, response: Response) -> None:
        """Answer server transaction `key` (raises `LocalProtocolError` on misuse)."""
        self.layer.send_response(key, response, self.loop.time())
        status = response.status
        self.responses_sent[status] = self.responses_sent.get(status, 0) + 1
        self._service()

    async def send_request(
        self,
        request: Request,
        dest: Address,
        *,
        transport: str = "udp",
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
    ) -> TransactionKey:
        """Start a client transaction to `dest`; over TCP or TLS a connection is opened (or
        reused) first. TLS needs a client `ssl_context`; the certificate is checked against
        `server_hostname` (by default `dest.host`)."""
        name = transport.lower()
        reliable = name in ("tcp", "tls")
        if name == "tls" and ssl_context is None:
            raise ValueError("TLS needs a client ssl_context")
        if reliable:
            conn = await self.tcp.connect(
                dest,
                ssl_context=ssl_context if name == "tls" else None,
                server_hostname=server_hostname,
            )
            self._remember(dest, conn)
        key = self.layer.send_request(request, dest, self.loop.time(), reliable=reliable)
        self._service()
        return key

    def send_request_now(
        self, request: Request, dest: Address, *, transport: str = "udp"
    ) -> TransactionKey | None:
        """Start a client transaction at once, without a task: over UDP, or over TCP/TLS when
        a connection to `dest` is open. Returns None when a connection must be opened first
        (then use `send_request`). Raises `LocalProtocolError` as the layer does."""
        name = transport.lower()
        if name != "udp":
            conn = self.tcp.get(dest)
            if conn is None:
                return None
            self._remember(dest, conn)
        key = self.layer.send_request(request, dest, self.loop.time(), reliable=name != "udp")
        self._service()
        return key

    # --- servicing the layer -----------------------------------------------------------------

    def _service(self) -> None:
        """Deliver events, flush datagrams, re-arm the timer. Re-entrant calls (the app
        answering from inside its callback) return at once: the outer call picks up what
        they queued."""
        if self._busy:
            return
        self._busy = True
        try:
            layer = self.layer
            while (event := layer.next_event()) is not None:
                try:
                    self._on_event(self, event)
                except Exception:
                    # One failing call must not stop the others (STYLE.md §4), and must not
                    # keep its transaction: the layer answers what the event left open.
                    self.callback_errors += 1
                    if _worth_logging(self.callback_errors):
                        log.exception("application callback failed on %s (%d so far)",
                                      type(event).__name__, self.callback_errors)
                    layer.tu_failed(event, self.loop.time())
            self._flush()
            self._arm()
        finally:
            self._busy = False

    def _flush(self) -> None:
        for data, dest in self.layer.datagrams_to_send(self.loop.time()):
            # Each send is its own error boundary: one bad destination loses one datagram,
            # never the rest of the batch or (from a timer) the re-arming that follows.
            try:
                self._send_one(data, dest)
            except Exception:  # the loop must go on whatever a socket says
                self.unroutable += 1
                log.debug("cannot send to %s", dest, exc_info=True)

    def _send_one(self, data: bytes, dest: Address) -> None:
        flow = self._flows.get(dest)
        if isinstance(flow, StreamConnection):
            live = flow if flow.is_open else self.tcp.get(dest)
            if live is not None:
                live.send(data)
            else:
                self.unroutable += 1  # its connection is gone (no reconnect to sent-by)
            return
        if flow is None:
            live = self.tcp.get(dest)  # a connection whose flow entry was evicted
            if live is not None:
                live.send(data)
                return
            flow = self._default_udp(dest)
        if flow is None or not is_ip_literal(dest.host):
            # No socket of that family, or a name (resolving is RFC 3263's job, and a
            # blocking lookup here would stall the loop).
            self.unroutable += 1
            return
        flow.send(data, dest)

    def _default_udp(self, dest: Address) -> UdpListener | None:
        family = _family(dest.host)  # a name counts as IPv4: resolving is RFC 3263's job
        for listener in self.udp:
            if listener.family == family:
                return listener
        return None

    def _arm(self) -> None:
        deadline = self.layer.get_timer()
        if deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is not None:
            self._timer = self.loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        deadline = self._timer_at
        self._timer = None
        self._timer_at = None
        assert deadline is not None
        # A handle may fire up to one clock resolution early (aioquic does the same).
        try:
            self.layer.handle_timer(max(deadline, self.loop.time()))
        except Exception:
            self.internal_errors += 1
            log.exception("the SIP layer failed on its timer")
        self._service()
