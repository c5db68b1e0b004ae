"""Test harness for the transaction layer: message builders, a fake clock and `UacUasPair`,
two layers wired back to back (h11 `ConnectionPair`, aioquic `roundtrip`) with an
aiortc-style `loss_pattern` that drops chosen datagrams."""

from __future__ import annotations

from collections.abc import Callable, Container
from dataclasses import dataclass, field

import sipmask
from sipmask import Request, Response
from sipmask.sip.events import Address, SipEvent
from sipmask.sip.layer import TransactionLayer
from sipmask.sip.responses import make_response
from sipmask.sip.timers import TimerConfig

UAC = Address("192.0.2.1", 5060)
UAS = Address("192.0.2.2", 5060)
T1, T2, T4 = 0.5, 4.0, 5.0


def make_request(
    method: str,
    *,
    branch: str = "z9hG4bKuac1",
    call_id: str = "call-1",
    cseq: int = 1,
    via_host: str = UAC.host,
    via_port: int | None = UAC.port,
    via_params: str = "",
    to_tag: str | None = None,
    uri: str = "sip:+918045671234@192.0.2.2",
    transport: str = "UDP",
) -> Request:
    """A request as the UAC would send it (fields in RFC 3261 §8.1.1 order)."""
    sent_by = via_host if via_port is None else f"{via_host}:{via_port}"
    branch_param = f";branch={branch}" if branch else ""
    to = "<sip:+918045671234@192.0.2.2>" + (f";tag={to_tag}" if to_tag else "")
    return Request(
        method,
        uri,
        [
            ("Via", f"SIP/2.0/{transport} {sent_by}{branch_param}{via_params}"),
            ("Max-Forwards", "70"),
            ("From", "<sip:+919876543210@192.0.2.1>;tag=uac-tag"),
            ("To", to),
            ("Call-ID", call_id),
            ("CSeq", f"{cseq} {method}"),
        ],
    )


def answer(request: Request, status: int, *, to_tag: str | None = "uas-tag") -> Response:
    """A response to `request` as a UAS would build it (100 carries no tag)."""
    return make_response(request, status, to_tag=None if status == 100 else to_tag)


def wire(message: Request | Response) -> bytes:
    return bytes(message)


def drain(layer: TransactionLayer) -> list[SipEvent]:
    events = []
    while (event := layer.next_event()) is not None:
        events.append(event)
    return events


def parsed(datagrams: list[tuple[bytes, Address]]) -> list[Request | Response]:
    return [sipmask.parse(data) for data, _ in datagrams]


def fire_until(layer: TransactionLayer, limit: float) -> list[float]:
    """Fire the layer's timers one deadline at a time up to `limit`; return the deadlines."""
    fired = []
    while (deadline := layer.get_timer()) is not None and deadline <= limit:
        layer.handle_timer(deadline)
        fired.append(deadline)
    return fired


@dataclass
class Sent:
    """One datagram that crossed (or failed to cross) the pair."""

    index: int
    sender: str  # "uac" or "uas"
    data: bytes
    dest: Address
    dropped: bool


@dataclass
class UacUasPair:
    """A UAC layer and a UAS layer wired together over a fake network and a fake clock.

    `loss_pattern` holds the indices (in sending order over both directions, from 0) of the
    datagrams the network drops; `drop_if` may drop by content as well."""

    timers: TimerConfig = field(default_factory=TimerConfig)
    reliable: bool = False
    loss_pattern: Container[int] = ()
    drop_if: Callable[[Sent], bool] | None = None
    now: float = 0.0
    uac: TransactionLayer = field(init=False)
    uas: TransactionLayer = field(init=False)
    log: list[Sent] = field(default_factory=list)
    uac_events: list[SipEvent] = field(default_factory=list)
    uas_events: list[SipEvent] = field(default_factory=list)

    def __post_init__(self) -> None:
        counter = iter(range(1_000_000))
        self.uac = TransactionLayer(self.timers, tag_factory=lambda: f"uac{next(counter)}")
        self.uas = TransactionLayer(self.timers, tag_factory=lambda: f"uas{next(counter)}")

    def flush(self) -> int:
        """Move every queued datagram to the other side until both are quiet; return how
        many were delivered."""
        delivered = 0
        while True:
            moved = 0
            for name, sender, receiver, source in (
                ("uac", self.uac, self.uas, UAC),
                ("uas", self.uas, self.uac, UAS),
            ):
                for data, dest in sender.datagrams_to_send(self.now):
                    sent = Sent(len(self.log), name, data, dest, False)
                    sent.dropped = sent.index in self.loss_pattern or bool(
                        self.drop_if and self.drop_if(sent)
                    )
                    self.log.append(sent)
                    moved += 1
                    if not sent.dropped:
                        receiver.receive_datagram(data, source, self.now, reliable=self.reliable)
                        delivered += 1
            self._collect()
            if not moved:
                return delivered

    def _collect(self) -> None:
        while (event := self.uac.next_event()) is not None:
            self.uac_events.append(event)
        while (event := self.uas.next_event()) is not None:
            self.uas_events.append(event)

    def advance(self, until: float) -> None:
        """Run the clock to `until`, firing both layers' timers in deadline order and
        delivering what they send as they go."""
        self.flush()
        while True:
            deadlines = [d for d in (self.uac.get_timer(), self.uas.get_timer()) if d is not None]
            if not deadlines or min(deadlines) > until:
                break
            self.now = max(self.now, min(deadlines))
            self.uac.handle_timer(self.now)
            self.uas.handle_timer(self.now)
            self.flush()
        self.now = max(self.now, until)

    def sent_by(self, name: str) -> list[Request | Response]:
        return [sipmask.parse(s.data) for s in self.log if s.sender == name]
