"""Locating a SIP server by name (RFC 3263 §4.2): SRV, then A/AAAA, cached by TTL.

A destination written as a host name without a port is looked up as `_sip._udp.<name>`,
`_sip._tcp.<name>` or `_sips._tcp.<name>` (by its transport); the SRV targets come in order of
priority, weighted at random within a priority (RFC 2782), each resolved to its addresses.
Without SRV records, or with an explicit port, the name's A and AAAA records are used with the
port given or the transport's default. NAPTR (which picks the transport) is not used: the
config names the transport. Answers are cached for their TTL (at least `MIN_TTL`, at most
`MAX_TTL` seconds), so a call pays for DNS only when a record expires.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence

import dns.asyncresolver
import dns.exception
import dns.resolver

from ..sip.events import is_ip_literal

DEFAULT_PORTS = {"udp": 5060, "tcp": 5060, "tls": 5061}
SRV_PREFIX = {"udp": "_sip._udp", "tcp": "_sip._tcp", "tls": "_sips._tcp"}
_Records = list[tuple[int, int, int, str]] | list[str]
"""Cached SRV records (priority, weight, port, target) or addresses."""
MIN_TTL = 5.0
MAX_TTL = 3600.0
LIFETIME = 2.0
"""Seconds one lookup may take (all servers and retries), so a dead resolver fails a call
attempt fast instead of holding it."""


class SipResolver:
    """RFC 3263 server location with a TTL cache.

    Args:
        nameservers: `(ip, port)` pairs to ask instead of the system's (`/etc/resolv.conf`).
        clock: monotonic seconds, for the cache.
        rng: picks among SRV records of equal priority (weights).
    """

    def __init__(
        self,
        nameservers: Sequence[tuple[str, int]] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        try:
            resolver = dns.asyncresolver.Resolver(configure=nameservers is None)
        except dns.resolver.NoResolverConfiguration:
            resolver = dns.asyncresolver.Resolver(configure=False)
            resolver.nameservers = ["127.0.0.1"]
        if nameservers:
            resolver.nameservers = [host for host, _ in nameservers]
            resolver.port = nameservers[0][1]
        resolver.lifetime = LIFETIME
        self._resolver = resolver
        self._clock = clock
        self._rng = rng or random.Random()
        self._cache: dict[tuple[str, str], tuple[float, _Records]] = {}
        self.lookups = 0

    async def locate(self, host: str, port: int | None, transport: str) -> list[tuple[str, int]]:
        """`(ip, port)` pairs to try for `host`, in order.

        Raises:
            OSError: the name has no usable record (or DNS did not answer in time).
        """
        if is_ip_literal(host):
            return [(host, port or DEFAULT_PORTS[transport])]
        if port is None:
            records = await self._srv(f"{SRV_PREFIX[transport]}.{host}")
            if records:
                found = []
                for _, _, srv_port, target in self._srv_order(records):
                    try:
                        found += [(ip, srv_port) for ip in await self._addresses(target)]
                    except OSError:
                        continue  # one dead target does not hide the others
                if found:
                    return found
                raise OSError(f"{host}: no SRV target resolves")
        return [(ip, port or DEFAULT_PORTS[transport]) for ip in await self._addresses(host)]

    def _srv_order(
        self, records: list[tuple[int, int, int, str]]
    ) -> list[tuple[int, int, int, str]]:
        """RFC 2782: ascending priority; within one, weighted random order."""
        ordered: list[tuple[int, int, int, str]] = []
        for priority in sorted({r[0] for r in records}):
            group = [r for r in records if r[0] == priority]
            while group:
                total = sum(r[1] for r in group)
                pick = self._rng.uniform(0, total) if total else 0.0
                running = 0.0
                for record in group:
                    running += record[1]
                    if running >= pick:
                        break
                group.remove(record)
                ordered.append(record)
        return ordered

    async def _srv(self, name: str) -> list[tuple[int, int, int, str]]:
        cached = self._cached(name, "SRV")
        if cached is not None:
            return cached  # type: ignore[return-value]
        try:
            answer = await self._query(name, "SRV")
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            self._store(name, "SRV", [], MIN_TTL * 6)
            return []
        records = [
            (r.priority, r.weight, r.port, r.target.to_text(omit_final_dot=True))
            for r in answer
        ]
        self._store(name, "SRV", records, answer.rrset.ttl if answer.rrset else MIN_TTL)
        return records

    async def _addresses(self, name: str) -> list[str]:
        found: list[str] = []
        for rdtype in ("A", "AAAA"):
            cached = self._cached(name, rdtype)
            if cached is None:
                try:
                    answer = await self._query(name, rdtype)
                    cached = [r.address for r in answer]
                    ttl = answer.rrset.ttl if answer.rrset else MIN_TTL
                except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
                    cached, ttl = [], MIN_TTL * 6
                self._store(name, rdtype, cached, ttl)
            found += cached  # type: ignore[arg-type]
        if not found:
            raise OSError(f"{name}: no A or AAAA record")
        return found

    async def _query(self, name: str, rdtype: str) -> dns.resolver.Answer:
        self.lookups += 1
        try:
            return await self._resolver.resolve(name, rdtype, search=False)
        except dns.exception.Timeout:
            raise OSError(f"{name}: DNS did not answer") from None
        except dns.resolver.NoNameservers:
            raise OSError(f"{name}: no DNS server answered") from None

    def _cached(self, name: str, rdtype: str) -> _Records | None:
        entry = self._cache.get((name.lower(), rdtype))
        if entry is None or entry[0] <= self._clock():
            return None
        return entry[1]

    def _store(self, name: str, rdtype: str, records: _Records, ttl: float) -> None:
        ttl = min(max(float(ttl), MIN_TTL), MAX_TTL)
        self._cache[(name.lower(), rdtype)] = (self._clock() + ttl, records)
