"""What the call logic asks the shell to do (`shell.py` performs them).

The call logic (`core.py`, `call_setup.py`, `relay.py`, `session_timers.py`, `records.py`,
`engine.py`) is sans-IO: it is fed events and `now` and appends actions to its outbox,
`CallControl.actions`; the shell drains the outbox after each event. Actions are small
named tuples (one allocation each, nothing per header), past the point of no return: the
logic has already changed its state as if they were done, and what the shell learns by
performing them (a refused connection, a media hook's answer, a binding) comes back as a
call into the logic, like any other event.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple, Union

from .._core import Request, Response
from ..sip.events import TransactionKey
from ..store.model import Interaction

if TYPE_CHECKING:
    from ..sip.events import RequestReceived
    from .call import Call, Leg
    from .media import MediaContext
    from .routing import TrunkState


class SendResponse(NamedTuple):
    """Answer server transaction `key` (it may have ended meanwhile: then nothing)."""

    key: TransactionKey
    response: Response


class SendRequest(NamedTuple):
    """Send `request` on `leg` (ACK included), opening a connection when needed; a refused
    connection or failed TLS handshake comes back as `_on_timeout(key, transport_error=True)`."""

    leg: Leg
    request: Request
    key: TransactionKey


class CancelInvite(NamedTuple):
    """CANCEL INVITE client transaction `key` (nothing when it already ended)."""

    key: TransactionKey


class GiveUpInvite(NamedTuple):
    """End INVITE client transaction `key` if it still has no final answer (RFC 3261 §9.1)."""

    key: TransactionKey


class Abandon(NamedTuple):
    """Forget server transaction `key` unanswered."""

    key: TransactionKey


class RouteCall(NamedTuple):
    """Look up the call's binding (the store; the platform's hooks) and its destinations
    (DNS); the answer comes back as `_routed` or `_refuse`."""

    call: Call


class PumpMedia(NamedTuple):
    """Pass the call's queued SDP through the media hook, then send each message in order
    (`Call.outbox`); a refusal comes back as `_media_refused`."""

    call: Call


class EndMedia(NamedTuple):
    """Release the call's media (the hook's `end`)."""

    context: MediaContext


class SaveRecords(NamedTuple):
    """Write call records to the store (one round trip for the batch)."""

    records: list[Interaction]


class Publish(NamedTuple):
    """Publish an event (`call.ended`) to the event stream and the webhooks."""

    name: str
    record: Interaction


class RelayMessage(NamedTuple):
    """An out-of-dialog MESSAGE to bind and relay (`chat.py`, async end to end)."""

    event: RequestReceived
    trunk: TrunkState


Action = Union[SendResponse, SendRequest, CancelInvite, GiveUpInvite, Abandon, RouteCall,
               PumpMedia, EndMedia, SaveRecords, Publish, RelayMessage]
