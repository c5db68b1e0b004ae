"""Transaction timers (RFC 3261 §17 and Table 4, RFC 6026 §8).

T1, T2 and T4 come from configuration; every named timer is derived from them here, so the
state machines in `transaction.py` only ever ask for `Timer.X` and never do arithmetic on
constants. Durations are seconds; deadlines are `now + duration` on the caller's clock.
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import msgspec
from msgspec import Meta

# A timer of a few milliseconds makes retransmission storms; one of minutes keeps dead
# transactions around. These bounds reject both when a TOML file is decoded.
_Seconds = Annotated[float, Meta(gt=0.0, le=60.0)]


class TimerConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """T1, T2 and T4 of RFC 3261 §17.1.1.1 / Table 4 (defaults are the RFC's)."""

    t1: _Seconds = 0.5
    """Round-trip time estimate (RFC 3261 §17.1.1.1)."""
    t2: _Seconds = 4.0
    """Maximum retransmit interval for non-INVITE requests and INVITE responses."""
    t4: _Seconds = 5.0
    """Maximum duration a message remains in the network."""
    timer_d: Annotated[float, Meta(ge=32.0, le=300.0)] = 32.0
    """Timer D on unreliable transports: "at least 32 seconds" (RFC 3261 §17.1.1.2)."""

    def __post_init__(self) -> None:
        if self.t2 < self.t1:
            raise ValueError("t2 must not be smaller than t1")

    def initial(self, timer: Timer, *, reliable: bool) -> float:
        """The first duration of `timer` for a transaction on a (un)reliable transport.

        Retransmission timers (A, E, G) are never armed on reliable transports; the
        "wait" timers (D, I, J, K) are zero there, which the machines treat as "terminate
        now"."""
        t1, t4 = self.t1, self.t4
        if timer in (Timer.A, Timer.E, Timer.G):
            return t1  # RFC 3261 §17.1.1.2 (A), §17.1.2.2 (E), §17.2.1 (G): start at T1
        if timer in (Timer.B, Timer.F, Timer.H, Timer.L, Timer.M):
            return 64 * t1  # §17.1.1.2 (B), §17.1.2.2 (F), §17.2.1 (H), RFC 6026 §8.7 (L, M)
        if reliable:
            return 0.0  # §17.1.1.2 (D), §17.2.1 (I), §17.2.2 (J), §17.1.2.2 (K): 0 on reliable
        if timer is Timer.D:
            return self.timer_d  # §17.1.1.2: at least 32 s
        if timer is Timer.J:
            return 64 * t1  # §17.2.2
        return t4  # Timer I (§17.2.1) and Timer K (§17.1.2.2): T4

    def next_interval(self, timer: Timer, interval: float) -> float:
        """The interval after a retransmission timer fired with `interval`."""
        if timer is Timer.A:
            return 2 * interval  # RFC 3261 §17.1.1.2: A doubles, with no cap (B ends it)
        # RFC 3261 §17.1.2.2 (E) and §17.2.1 (G): double, capped at T2
        return min(2 * interval, self.t2)


class Timer(Enum):
    """The named transaction timers (RFC 3261 Table 4 and RFC 6026 §8.7).

    Timer C (proxy INVITE transaction timeout) is call control and belongs to the b2bua."""

    A = "A"  # RFC 3261 §17.1.1.2: INVITE request retransmit (client, unreliable only)
    B = "B"  # RFC 3261 §17.1.1.2: INVITE transaction timeout (client, Calling)
    D = "D"  # RFC 3261 §17.1.1.2: wait for response retransmits (client INVITE, Completed)
    E = "E"  # RFC 3261 §17.1.2.2: non-INVITE request retransmit (client, unreliable only)
    F = "F"  # RFC 3261 §17.1.2.2: non-INVITE transaction timeout (client)
    G = "G"  # RFC 3261 §17.2.1: INVITE final response retransmit (server, unreliable only)
    H = "H"  # RFC 3261 §17.2.1: wait for ACK receipt (server INVITE, Completed)
    I = "I"  # noqa: E741  RFC 3261 §17.2.1: wait for ACK retransmits (server, Confirmed)
    J = "J"  # RFC 3261 §17.2.2: wait for request retransmits (server non-INVITE, Completed)
    K = "K"  # RFC 3261 §17.1.2.2: wait for response retransmits (client non-INVITE)
    L = "L"  # RFC 6026 §8.7: wait for INVITE retransmits / ACKs (server INVITE, Accepted)
    M = "M"  # RFC 6026 §8.7: wait for 2xx retransmits (client INVITE, Accepted)
    # Not in the RFC: sipmask's bound on a server transaction its TU never answers (a TU bug
    # must not hold a transaction, and its place under `max_transactions`, forever).
    ANSWER = "ANSWER"

    __hash__ = object.__hash__  # singletons: identity hashing, C-fast (dict keys per timer)
