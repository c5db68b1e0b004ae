"""Trunks at run time: which trunk a request came from, where a B leg goes, and the
per-trunk limits (concurrent calls, calls per second).

A session participant's `route` says where to reach them: a trunk name (`carrier-a`), a SIP
URI (`sip:gw.example.net:5080;transport=tcp`, a PBX or an app's SIP gateway; with a user part
the URI is used as the Request-URI as given), or nothing: the inbound trunk when it has
outbound destinations, else the first trunk that has some.

Host names are located per RFC 3263 §4.2 (`dns.py`): SRV when no port is written, then
A/AAAA, cached by TTL; every address found is a target of its own, in order, so failover walks
the SRV records of a trunk too. The Request-URI keeps the name as written.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .._core import URI, parse_uri
from ..errors import ParseError
from ..sip.events import Address
from ..transport.endpoint import format_hostport
from ..transport.udp import Network, parse_networks, source_allowed
from .dns import DEFAULT_PORTS, SipResolver
from .settings import B2buaSettings, Destination, NumberRules, TrunkConfig, parse_destination

HOST_CACHE_SIZE = 4096


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

    def __init__(
        self,
        config: B2buaSettings,
        clock: Callable[[], float] = time.monotonic,
        resolver: SipResolver | None = None,
    ) -> None:
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
        self.resolver = resolver or SipResolver(clock=clock)
        self._trunk_of_host: dict[str, TrunkState | None] = {}
        self._clock = clock

    def trunk_for(self, source: Address) -> TrunkState | None:
        """The first trunk whose inbound networks hold `source` (cached per host: parsing an
        address costs more than the rest of the lookup, and a node hears few hosts)."""
        cache = self._trunk_of_host
        try:
            return cache[source.host]
        except KeyError:
            pass
        found = None
        for trunk in self.trunks:
            if source_allowed(source.host, trunk.networks):
                found = trunk
                break
        if len(cache) >= HOST_CACHE_SIZE:
            cache.clear()
        cache[source.host] = found
        return found

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
            return await self.uri_targets(route)
        trunk = self.outbound_trunk(route, inbound)
        if trunk is None:
            return []
        found: list[Target] = []
        failures = []
        for dest in trunk.destinations:
            try:
                hops = await self.resolver.locate(dest.host, dest.port, dest.transport)
            except OSError as exc:
                failures.append(exc)
                continue  # the next destination may resolve
            name = _name(dest.host, dest.port)
            found += [
                Target(Address(ip, port), dest.transport, name, None, trunk.name)
                for ip, port in hops
            ]
        if not found and failures:
            raise failures[0]
        return found

    async def uri_targets(self, route: str) -> list[Target]:
        """The targets of a SIP URI route (a PBX, an app's gateway, a fallback IVR).

        Raises:
            ValueError: not a usable sip/sips URI. OSError: its host does not resolve.
        """
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
        hops = await self.resolver.locate(host, uri.port, transport)
        fixed = str(uri) if uri.user else None
        name = _name(host, uri.port)
        return [Target(Address(ip, port), transport, name, fixed, None) for ip, port in hops]


def _name(host: str, port: int | None) -> str:
    """The Request-URI host part of a destination: as written, with its port if one was."""
    if port is None:
        return f"[{host}]" if ":" in host else host
    return format_hostport(Address(host, port))
