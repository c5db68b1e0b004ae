"""Trunks at run time: which trunk a request came from, where a B leg goes, and the
per-trunk limits (concurrent calls, calls per second).

A session participant's `route` says where to reach them: a trunk name (`carrier-a`), a SIP
URI (`sip:gw.example.net:5080;transport=tcp`, a PBX or an app's SIP gateway; with a user part
the URI is used as the Request-URI as given), or nothing: the inbound trunk when it has
outbound destinations, else the first trunk that has some.

Host names are resolved with the loop's resolver (A/AAAA) and cached for `DNS_TTL` seconds.
SRV lookups (RFC 3263 §4.2) need a DNS library sipmask does not ship yet: a destination
written without a port goes to the transport's default port.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .._core import URI, parse_uri
from ..config import Config, Destination, NumberRules, TrunkConfig, parse_destination
from ..errors import ParseError
from ..sip.events import Address
from ..transport.udp import Network, parse_networks, source_allowed

DNS_TTL = 60.0
DEFAULT_PORTS = {"udp": 5060, "tcp": 5060, "tls": 5061}


@dataclass(frozen=True, slots=True)
class Target:
    """One place to send a B leg: the transport address, the transport, the Request-URI
    host part, and a fixed Request-URI when the route gave one with a user part."""

    address: Address
    transport: str
    uri_host: str
    fixed_uri: str | None = None
    trunk: str | None = None


@dataclass(slots=True)
class TrunkState:
    """A configured trunk and its live counters."""

    config: TrunkConfig
    networks: tuple[Network, ...]
    destinations: tuple[Destination, ...]
    active_calls: int = 0
    _tokens: float = 0.0
    _refilled: float = field(default=0.0)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def rules(self) -> NumberRules:
        return self.config.number_rules

    def admit(self, now: float) -> bool:
        """Whether one more call may start now (max_calls, calls_per_second token bucket)."""
        limit = self.config.max_calls
        if limit is not None and self.active_calls >= limit:
            return False
        rate = self.config.calls_per_second
        if rate is None:
            return True
        burst = max(rate, 1.0)
        self._tokens = min(burst, self._tokens + (now - self._refilled) * rate)
        self._refilled = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


class Router:
    """Trunk lookup by source address and destination choice for B legs."""

    def __init__(self, config: Config, clock: Callable[[], float] = time.monotonic) -> None:
        self.trunks: list[TrunkState] = []
        for trunk in config.trunks:
            self.trunks.append(
                TrunkState(
                    config=trunk,
                    networks=tuple(parse_networks(trunk.inbound)),
                    destinations=tuple(
                        parse_destination(text, trunk.transport) for text in trunk.outbound
                    ),
                    _tokens=max(trunk.calls_per_second or 1.0, 1.0),
                    _refilled=clock(),
                )
            )
        self.by_name = {trunk.name: trunk for trunk in self.trunks}
        self._dns: dict[str, tuple[float, str]] = {}
        self._clock = clock

    def trunk_for(self, source: Address) -> TrunkState | None:
        """The first trunk whose inbound networks hold `source`."""
        for trunk in self.trunks:
            if source_allowed(source.host, trunk.networks):
                return trunk
        return None

    def outbound_trunk(self, route: str | None, inbound: TrunkState | None) -> TrunkState | None:
        """The trunk a route names (None: a URI route), or the default trunk."""
        if route is not None:
            return self.by_name.get(route)
        if inbound is not None and inbound.destinations:
            return inbound
        for trunk in self.trunks:
            if trunk.destinations:
                return trunk
        return None

    async def targets(self, route: str | None, inbound: TrunkState | None) -> list[Target]:
        """Where to try the B leg, in failover order (empty: nowhere).

        Raises:
            ValueError: the route is neither a trunk name nor a usable SIP URI.
        """
        if route is not None and route not in self.by_name:
            return [await self._uri_target(route)]
        trunk = self.outbound_trunk(route, inbound)
        if trunk is None:
            return []
        found = []
        for dest in trunk.destinations:
            port = dest.port or DEFAULT_PORTS[dest.transport]
            host = await self.resolve(dest.host)
            found.append(
                Target(Address(host, port), dest.transport, _hostport(dest.host, port), None,
                       trunk.name)
            )
        return found

    async def _uri_target(self, route: str) -> Target:
        try:
            uri: URI = parse_uri(route if ":" in route.split("@")[0] else f"sip:{route}")
        except ParseError as exc:
            raise ValueError(f"route is not a trunk name or SIP URI: {exc.reason}") from None
        if uri.scheme not in ("sip", "sips") or not uri.host:
            raise ValueError("route is not a trunk name or sip/sips URI")
        transport = (uri.params.get("transport") or ("tls" if uri.scheme == "sips" else "udp"))
        transport = transport.lower()
        if transport not in DEFAULT_PORTS:
            raise ValueError(f"route transport {transport!r} is not udp, tcp or tls")
        host = uri.host[1:-1] if uri.host.startswith("[") else uri.host
        port = uri.port or DEFAULT_PORTS[transport]
        address = Address(await self.resolve(host), port)
        fixed = str(uri) if uri.user else None
        return Target(address, transport, _hostport(host, port), fixed, None)

    async def resolve(self, host: str) -> str:
        """An IP literal for `host` (cached A/AAAA lookup). Raises OSError when unknown."""
        try:
            ipaddress.ip_address(host)
            return host
        except ValueError:
            pass
        now = self._clock()
        cached = self._dns.get(host)
        if cached is not None and cached[0] > now:
            return cached[1]
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, None, type=2)  # SOCK_DGRAM: one row per address
        if not infos:
            raise OSError(f"{host}: no address")
        address = str(infos[0][4][0])
        self._dns[host] = (now + DNS_TTL, address)
        return address


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def target_names(targets: Sequence[Target]) -> str:
    return ", ".join(f"{t.transport}:{t.uri_host}" for t in targets)
