"""A client of rtpengine's ng control protocol (UDP, bencode), on asyncio.

A request is `<cookie> <bencoded dictionary>`; the reply echoes the cookie. A lost datagram is
retransmitted with the same cookie (rtpengine answers a repeated cookie from its cache, so an
offer is never applied twice). Several instances may be configured: a call sticks to the
instance that took its first offer, a new call goes to the up instance with the fewest calls
per unit of weight, and an instance that times out (or fails a ping) is marked down and skipped
until a ping answers again.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .bencode import BencodeError, Encodable, Value, decode, encode

log = logging.getLogger(__name__)

MAX_REPLY = 65_535


class NgError(Exception):
    """rtpengine answered `result: error` (the reason is in the message)."""


class NgTimeout(NgError):
    """No reply after every retransmission (or the instance is unreachable)."""


class NgUnavailable(NgError):
    """No instance is up to take a new call."""


@dataclass(slots=True)
class NgStats:
    """Counters for metrics (only ever incremented)."""

    requests: int = 0
    errors: int = 0
    """Replies with `result: error`."""
    timeouts: int = 0
    """Requests that got no reply after every retransmission."""
    unavailable: int = 0
    """New calls refused because no instance was up."""
    commands: dict[str, int] = field(default_factory=dict)


@dataclass(eq=False, slots=True)
class Instance:
    """One rtpengine: where its ng port is, its share of new calls, whether it answers."""

    host: str
    port: int
    weight: int = 1
    up: bool = True
    calls: int = 0
    """Calls anchored on it now."""
    transport: asyncio.DatagramTransport | None = None
    pending: dict[bytes, asyncio.Future[dict[bytes, Value]]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def load(self) -> float:
        return self.calls / self.weight


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, instance: Instance) -> None:
        self.instance = instance

    def datagram_received(self, data: bytes, addr: Any) -> None:
        cookie, sep, payload = data.partition(b" ")
        waiter = self.instance.pending.get(cookie)
        if not sep or waiter is None or waiter.done():
            return  # a late reply to a retransmission, or noise
        try:
            reply = decode(payload)
        except BencodeError as exc:
            waiter.set_exception(NgError(f"malformed reply: {exc}"))
            return
        if not isinstance(reply, dict):
            waiter.set_exception(NgError("reply is not a dictionary"))
            return
        waiter.set_result(reply)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable on the connected socket: every waiter learns it now rather
        # than after its timeout.
        for waiter in self.instance.pending.values():
            if not waiter.done():
                waiter.set_exception(NgTimeout(f"{self.instance.name}: {exc}"))


class NgClient:
    """Talks ng to one or more rtpengine instances.

    Args:
        instances: (host, port, weight) of each rtpengine's ng listener.
        timeout: seconds to wait for a reply before retransmitting.
        retries: retransmissions after the first send.
        ping_interval: seconds between pings of each instance (0: no pinging).
    """

    def __init__(
        self,
        instances: Sequence[tuple[str, int, int]],
        *,
        timeout: float = 1.0,
        retries: int = 2,
        ping_interval: float = 5.0,
    ) -> None:
        if not instances:
            raise ValueError("at least one rtpengine instance is needed")
        self.instances = [Instance(host, port, weight) for host, port, weight in instances]
        self.timeout = timeout
        self.retries = retries
        self.ping_interval = ping_interval
        self.stats = NgStats()
        self._calls: dict[str, Instance] = {}
        self._pinger: asyncio.Task[None] | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for instance in self.instances:
            transport, _ = await loop.create_datagram_endpoint(
                lambda instance=instance: _Protocol(instance),  # type: ignore[misc]
                remote_addr=(instance.host, instance.port),
            )
            instance.transport = transport
        if self.ping_interval > 0:
            self._pinger = loop.create_task(self._ping_forever())

    async def close(self) -> None:
        if self._pinger is not None:
            self._pinger.cancel()
            try:
                await self._pinger
            except asyncio.CancelledError:
                pass
            self._pinger = None
        for instance in self.instances:
            if instance.transport is not None:
                instance.transport.close()
                instance.transport = None
            for waiter in instance.pending.values():
                if not waiter.done():
                    waiter.set_exception(NgTimeout("client closed"))
            instance.pending.clear()

    # --- instance selection ----------------------------------------------------------------

    def instance_for(self, call_id: str) -> Instance:
        """The instance a call is anchored on, or (a new call) the least loaded up one.

        Raises:
            NgUnavailable: a new call and no instance is up.
        """
        instance = self._calls.get(call_id)
        if instance is not None:
            return instance
        up = [i for i in self.instances if i.up]
        if not up:
            self.stats.unavailable += 1
            raise NgUnavailable("no rtpengine instance is up")
        return min(up, key=lambda i: i.load)

    def anchored(self, call_id: str) -> bool:
        return call_id in self._calls

    def release(self, call_id: str) -> None:
        instance = self._calls.pop(call_id, None)
        if instance is not None:
            instance.calls -= 1

    # --- commands ----------------------------------------------------------------------------

    async def call_command(self, call_id: str, message: dict[str, Encodable]
                           ) -> dict[bytes, Value]:
        """Send a command about `call_id` (its `call-id` is added) to its instance. A new call
        whose chosen instance does not answer is marked down and tried on the next up one.

        Raises:
            NgUnavailable: no instance is up. NgTimeout: the call's instance did not answer.
            NgError: rtpengine refused the command.
        """
        message = {**message, "call-id": call_id}
        while True:
            instance = self.instance_for(call_id)
            try:
                reply = await self.request(instance, message)
            except NgTimeout:
                self._mark(instance, up=False)
                if self.anchored(call_id):
                    raise
                continue  # a new call: another instance may take it
            if call_id not in self._calls and message.get("command") == "offer":
                self._calls[call_id] = instance
                instance.calls += 1
            return reply

    async def request(self, instance: Instance, message: dict[str, Encodable]
                      ) -> dict[bytes, Value]:
        """One ng request to `instance`, retransmitted on timeout.

        Raises:
            NgTimeout: no reply. NgError: `result` is `error` (or the reply is malformed).
        """
        transport = instance.transport
        if transport is None:
            raise NgTimeout(f"{instance.name}: client not started")
        command = str(message.get("command", "?"))
        self.stats.requests += 1
        self.stats.commands[command] = self.stats.commands.get(command, 0) + 1
        cookie = os.urandom(8).hex().encode()
        datagram = cookie + b" " + encode(message)
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[dict[bytes, Value]] = loop.create_future()
        instance.pending[cookie] = waiter
        try:
            for _ in range(self.retries + 1):
                transport.sendto(datagram)
                try:
                    reply = await asyncio.wait_for(asyncio.shield(waiter), self.timeout)
                    break
                except asyncio.TimeoutError:
                    continue
            else:
                self.stats.timeouts += 1
                raise NgTimeout(f"{instance.name}: no reply to {command}")
        except NgTimeout:
            if waiter.done() and not waiter.cancelled():
                self.stats.timeouts += 1  # unreachable (ICMP), counted like a timeout
            raise
        finally:
            instance.pending.pop(cookie, None)
            if not waiter.done():
                waiter.cancel()
        if reply.get(b"result") == b"error":
            self.stats.errors += 1
            reason = reply.get(b"error-reason", b"")
            raise NgError(reason.decode(errors="replace") if isinstance(reason, bytes) else "")
        return reply

    # --- health --------------------------------------------------------------------------------

    async def ping(self, instance: Instance) -> bool:
        """Ping `instance` and mark it up or down by the answer."""
        try:
            reply = await self.request(instance, {"command": "ping"})
        except NgError:
            self._mark(instance, up=False)
            return False
        alive = reply.get(b"result") == b"pong"
        self._mark(instance, up=alive)
        return alive

    async def _ping_forever(self) -> None:
        while True:
            await asyncio.gather(*(self.ping(i) for i in self.instances))
            await asyncio.sleep(self.ping_interval)

    def _mark(self, instance: Instance, *, up: bool) -> None:
        if instance.up != up:
            log.warning("rtpengine %s is %s", instance.name, "up" if up else "down")
            instance.up = up
