"""The state of one masked call: its two legs and its record.

A `Leg` is one SIP dialog seen from sipmask: the caller leg (A, sipmask is the UAS) or the
callee leg (B, sipmask is the UAC). Each leg has its own Call-ID, tags, branches, CSeq space,
Contact and SDP origin, so nothing of one leg's identifiers appears on the other. A `Call`
pairs them with what the engine needs to relay between them and to write the call record.
"""

from __future__ import annotations

import enum
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from .._core import Request, Response, SdpOrigin
from ..sip.dialog import Dialog, DialogSet
from ..sip.events import Address, TransactionKey
from ..store.model import Binding
from .media import MediaContext
from .routing import Target, TrunkState


def new_token(nbytes: int = 8) -> str:
    return secrets.token_hex(nbytes)


def new_branch() -> str:
    return "z9hG4bK" + secrets.token_hex(10)


class Side(enum.Enum):
    CALLER = "caller"
    CALLEE = "callee"


class Phase(enum.Enum):
    ROUTING = "routing"  # looking up the binding
    CALLING = "calling"  # B leg INVITE sent
    ANSWERED = "answered"
    ENDED = "ended"


@dataclass(eq=False, slots=True)
class Leg:
    """One side of a call.

    Attributes:
        side: caller (A) or callee (B).
        peer: where requests on this leg are sent (the caller's source address; the callee
            destination): NAT-safe on A, through the trunk's address on B.
        transport: udp, tcp or tls.
        call_id, local_tag: this leg's own identifiers (the dialog's first two id parts).
        origin: o= state of the SDP sipmask sends on this leg.
        dialog: the confirmed (or early) dialog, once there is one.
        via: Via template (no branch) of requests sipmask sends on this leg.
        contact: sipmask's Contact on this leg.
    """

    side: Side
    peer: Address
    transport: str
    call_id: str
    local_tag: str
    origin: SdpOrigin
    via: str
    contact: str
    dialog: Dialog | None = None
    server_name: str | None = None
    """The host name a TLS peer's certificate must carry (the destination as written)."""
    session_interval: int = 0
    we_refresh: bool = False


@dataclass(eq=False, slots=True)
class Relay:
    """A request received on one leg and relayed on the other: its answer goes back."""

    source: Leg
    source_dialog: Dialog
    """The dialog the request came in on (early or confirmed) and is answered on."""
    target: Dialog
    """The dialog of the other leg it was relayed on."""
    server_key: TransactionKey
    request: Request
    sent: Request


@dataclass(eq=False, slots=True)
class Call:
    """A masked call: the A leg, the B leg and the record."""

    id: str
    trunk: TrunkState
    a_invite: Request | None
    """The caller's INVITE, until its transaction ends after the answer (then None: a
    held call keeps no parsed INVITE)."""
    a_key: TransactionKey | None
    """The caller's INVITE transaction, until it ends after the answer."""
    a: Leg
    dialled: str
    caller: str
    started_at: float
    phase: Phase = Phase.ROUTING
    binding: Binding | None = None
    b: Leg | None = None
    b_invite: Request | None = None
    b_key: TransactionKey | None = None
    b_dialogs: DialogSet = field(default_factory=DialogSet)
    targets: list[Target] = field(default_factory=list)
    target_index: int = 0
    saw_provisional: bool = False
    a_final_sent: bool = False
    late_offer: bool = False
    deferred_ack: tuple[Dialog, Response] | None = None
    timers: dict[str, int] = field(default_factory=dict)
    """Armed call timers (`timers.py`): name -> token."""
    relays: dict[TransactionKey, Relay] = field(default_factory=dict)
    client_keys: list[TransactionKey] = field(default_factory=list)
    """Client transactions this call started (to unindex them when it is forgotten)."""
    answered_at: float | None = None
    ended_at: float | None = None
    status: str = "failed"
    cause: str | None = None
    counted: bool = False
    outbox: deque[tuple[Request | Response, str, str | None, Callable[[], object]]] | None = None
    """Messages waiting for the media hook, in order: (message, leg, sdp kind, send); made
    when the first one waits (an empty deque is 600 bytes per held call)."""
    pumping: bool = False
    media_context: MediaContext | None = None
    """What the media hook is told of the call: made at its first SDP through the hook."""
    auth_headers: tuple[tuple[str, str], ...] = ()
    auth_tried: bool = False
    min_se: int = 0
    """The Min-SE a callee's 422 asked for (RFC 4028 §6): the retried INVITE's floor."""

    @property
    def caller_invite(self) -> Request:
        """The caller's INVITE; only used until the answer (it is dropped later)."""
        assert self.a_invite is not None
        return self.a_invite

    @property
    def caller_key(self) -> TransactionKey:
        assert self.a_key is not None
        return self.a_key

    @property
    def ended(self) -> bool:
        return self.phase is Phase.ENDED

    def other(self, leg: Leg) -> Leg | None:
        return self.b if leg is self.a else self.a
