"""The call's state table: (phase, call event) -> handler, and a default for every pair not
in it.

`CallEngine.call_event(call, event, *args)` looks the pair up here and runs the handler
(a method of the engine: it changes the call and appends actions). A pair not in `TABLE`
gets its event's `DEFAULTS` outcome: `ignore` (nothing to do: a stale answer, a timer of
a phase left behind) or `tear down` (both legs are ended: BYE on answered legs, CANCEL on a
ringing one and a failure to the caller). No pair is left undefined, so no path leaves a
leg without an end. docs/b2bua.md shows this table as `markdown()` writes it (a test keeps
them equal).

In-dialog requests (BYE, re-INVITE, UPDATE, INFO...) and ACKs are answered by the leg's
dialog first (`relay.py`); they reach the call through their dialog, in any phase.
"""

from __future__ import annotations

import enum

from .call import Phase


class CallEvent(enum.Enum):
    ROUTED = "routed"
    """The binding and the destinations are known (`shell.py`'s lookup)."""
    REFUSED = "refused"
    """No binding, intercepted or out-of-session refusal: the caller is refused."""
    ROUTE_FAILED = "route failed"
    """The store or DNS failed, or the callee would loop back."""
    B_PROVISIONAL = "callee 1xx"
    B_ANSWERED = "callee 2xx"
    B_FAILED = "callee 3xx-6xx"
    B_TIMED_OUT = "callee timeout"
    """Timer B, or the connection to the destination failed (RFC 3261 §8.1.3.1)."""
    CANCELLED = "caller CANCEL"
    RING_TIMEOUT = "ring timeout"
    TIMER_C = "Timer C"
    CALL_LIMIT = "call-time limit"
    MEDIA_REFUSED = "media refused"
    SHUTDOWN = "shutdown"


class Default(enum.Enum):
    IGNORE = "ignore"
    TEAR_DOWN = "tear down"


R, C, A, E = Phase.ROUTING, Phase.CALLING, Phase.ANSWERED, Phase.ENDED
Ev = CallEvent

TABLE: dict[tuple[Phase, CallEvent], str] = {
    (R, Ev.ROUTED): "_routed",
    (R, Ev.REFUSED): "_refuse",
    (R, Ev.ROUTE_FAILED): "_fail",
    (R, Ev.CANCELLED): "_caller_cancelled",
    (R, Ev.RING_TIMEOUT): "_ring_timeout",
    (R, Ev.TIMER_C): "_timer_c",
    (R, Ev.MEDIA_REFUSED): "_media_refused",
    (R, Ev.SHUTDOWN): "_shut_down",
    (C, Ev.B_PROVISIONAL): "_b_provisional",
    (C, Ev.B_ANSWERED): "_b_answered",
    (C, Ev.B_FAILED): "_b_failed",
    (C, Ev.B_TIMED_OUT): "_b_timed_out",
    (C, Ev.CANCELLED): "_caller_cancelled",
    (C, Ev.RING_TIMEOUT): "_ring_timeout",
    (C, Ev.TIMER_C): "_timer_c",
    (C, Ev.MEDIA_REFUSED): "_media_refused",
    (C, Ev.SHUTDOWN): "_shut_down",
    # After the answer: a reliable 18x of another fork is still PRACKed, its 2xx ACKed and
    # BYEd, a 2xx retransmission ACKed again.
    (A, Ev.B_PROVISIONAL): "_b_provisional",
    (A, Ev.B_ANSWERED): "_b_answered",
    (A, Ev.B_FAILED): "_b_failed",
    (A, Ev.B_TIMED_OUT): "_b_timed_out",
    (A, Ev.CALL_LIMIT): "_call_limit",
    (A, Ev.MEDIA_REFUSED): "_media_refused",
    (A, Ev.SHUTDOWN): "_shut_down",
    # After the end: a 2xx crossing the CANCEL is ACKed and BYEd; the INVITE's last
    # answers let the call be forgotten.
    (E, Ev.B_PROVISIONAL): "_b_provisional",
    (E, Ev.B_ANSWERED): "_b_answered",
    (E, Ev.B_FAILED): "_b_failed",
    (E, Ev.B_TIMED_OUT): "_b_timed_out",
}
"""The pairs with a handler of their own (`CallEngine` methods, by name)."""

DEFAULTS: dict[CallEvent, Default] = {
    Ev.ROUTED: Default.IGNORE,  # only a call being routed is waiting for it
    Ev.REFUSED: Default.IGNORE,
    Ev.ROUTE_FAILED: Default.IGNORE,
    Ev.B_PROVISIONAL: Default.IGNORE,  # no callee INVITE yet
    Ev.B_FAILED: Default.IGNORE,
    Ev.B_ANSWERED: Default.TEAR_DOWN,  # a 2xx without a callee INVITE of ours: end it all
    Ev.B_TIMED_OUT: Default.TEAR_DOWN,
    Ev.CANCELLED: Default.IGNORE,  # after the final response a CANCEL changes nothing
    Ev.RING_TIMEOUT: Default.IGNORE,  # cancelled at the answer: a stale entry
    Ev.TIMER_C: Default.IGNORE,
    Ev.CALL_LIMIT: Default.TEAR_DOWN,  # armed at the answer only
    Ev.MEDIA_REFUSED: Default.IGNORE,  # the call already ended
    Ev.SHUTDOWN: Default.TEAR_DOWN,
}
"""What a pair not in `TABLE` does, by event."""


def default(phase: Phase, event: CallEvent) -> Default:
    """The outcome of a pair not in `TABLE`: the event's default; an ended call has nothing
    left to tear down."""
    return Default.IGNORE if phase is Phase.ENDED else DEFAULTS[event]


def outcome(phase: Phase, event: CallEvent) -> str:
    """The handler's name, or the default outcome, of one pair."""
    return TABLE.get((phase, event)) or default(phase, event).value


def markdown() -> str:
    """The table as docs/b2bua.md shows it: one row per event, one column per phase."""
    phases = list(Phase)
    lines = ["| event | " + " | ".join(p.value for p in phases) + " |",
             "| --- |" + " --- |" * len(phases)]
    for event in CallEvent:
        cells = []
        for phase in phases:
            name = TABLE.get((phase, event))
            cells.append(f"`{name}`" if name else default(phase, event).value)
        lines.append(f"| {event.value} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
