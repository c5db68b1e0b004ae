"""The transaction layer: every transaction of one SIP endpoint, sans-IO (aioquic
`QuicConnection` style).

Messages come in through `receive_datagram` / `receive_message` with the time as `now`; what
must go out is collected by `datagrams_to_send`; events for the TU come from `next_event`.
All deadlines of all transactions live on one heap: `get_timer` is the earliest, and the
caller (transport/runtime.py) calls `handle_timer(now)` when it passes. Nothing here reads a
clock, opens a socket or schedules a callback.
"""

from __future__ import annotations

import heapq
import itertools
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from .._core import Request, Response, Via, parse, parse_via
from ..errors import LocalProtocolError, ParseError, SipError
from .events import (
    AckReceived,
    Address,
    CancelReceived,
    RequestReceived,
    ResponseReceived,
    Role,
    SipEvent,
    TransactionKey,
    TransactionTerminated,
    TransactionTimedOut,
    is_ip_literal,
)
from .responses import make_response, response_to_parse_error
from .timers import Timer, TimerConfig
from .transaction import (
    MAGIC_COOKIE,
    ClientInviteTransaction,
    ClientNonInviteTransaction,
    ServerInviteTransaction,
    ServerNonInviteTransaction,
    Transaction,
    client_key,
    request_like,
    response_key,
    server_key,
)

_ServerTransaction = ServerInviteTransaction | ServerNonInviteTransaction

HEAP_COMPACT_MIN = 4096
"""Entries the deadline heap may hold before its first rebuild (stale ones are dropped)."""


@dataclass(slots=True)
class LayerStats:
    """Counters for metrics (only ever incremented) and two gauges, `in_flight` and
    `in_progress`."""

    parse_errors: int = 0
    """Datagrams `parse` rejected (answered or not)."""
    dropped: int = 0
    """Input thrown away: unanswerable garbage, stray responses, unmatched junk."""
    retransmissions: int = 0
    """Datagrams re-sent by a transaction (Timers A, E, G, duplicates answered again)."""
    refused: int = 0
    """New INVITEs refused because `max_transactions` were in progress."""
    tu_errors: int = 0
    """Requests the TU failed on (an exception while handling them): answered 500."""
    unanswered: int = 0
    """Server transactions the TU left unanswered past their bound (Timer ANSWER)."""
    in_flight: int = 0
    """Transactions held now: in progress plus those lingering after their final response
    to absorb retransmissions (Timers D, I, J, K, L, M)."""
    in_progress: int = 0
    """Transactions held now that have no final response yet (client: Calling, Trying,
    Proceeding; server: Trying, Proceeding): what `max_transactions` bounds. A gauge, kept
    up to date on every state change (never a scan)."""


def _default_port(via: Via) -> int:
    return 5061 if via.transport == "TLS" else 5060


MaddrPolicy = Callable[[Address, Address], bool]
"""(maddr target, source) -> whether a response may go to that target."""


def response_address(
    via: Via, source: Address, reliable: bool, maddr_allowed: MaddrPolicy | None = None
) -> Address:
    """Where the responses to a request go (RFC 3261 §18.2.2 with RFC 3581 §4).

    Reliable transports answer on the connection the request came in on (the source). Over
    UDP: `maddr` only when it is an IP literal that `maddr_allowed` accepts for this source
    (one of the same peer's own addresses: SBCs apply their ACL first), since otherwise
    anyone could reflect answers to a third party; with `rport` the source address and port;
    otherwise the source IP (the `received` value whenever it differs from sent-by) and
    sent-by's port."""
    if reliable:
        return source
    maddr = via.params.get("maddr")
    port = via.port if via.port is not None else _default_port(via)
    if maddr and maddr_allowed is not None:
        host = maddr[1:-1] if maddr.startswith("[") else maddr
        if is_ip_literal(host) and maddr_allowed(Address(host, port), source):
            return Address(host, port)
    if via.has_rport or maddr:
        return source  # RFC 3581: symmetric; a refused maddr falls back to the source too
    return Address(source.host, port)


def _stamp_via(request: Request, via: Via, source: Address) -> None:
    """Add `received` (RFC 3261 §18.2.1) and fill `rport` (RFC 3581 §4) on the top Via, so
    that every response, which copies the Via, records where the request came from."""
    host = via.host[1:-1] if via.host.startswith("[") else via.host
    needs_received = host.lower() != source.host.lower()
    if not needs_received and not via.has_rport:
        return
    params = dict(via.params)
    if needs_received:
        params["received"] = source.host
    if via.has_rport:
        params["rport"] = str(source.port)
    stamped = Via(via.transport, via.host, via.port, params)
    request.remove_first("via")
    request.add_header("Via", str(stamped), first=True)


def build_cancel(invite: Request) -> Request:
    """The CANCEL for `invite` (RFC 3261 §9.1): same Request-URI, Call-ID, To, From and CSeq
    number, a single Via equal to the INVITE's top Via (same branch), the same Route set."""
    return request_like(invite, "CANCEL")


class TransactionLayer:
    """All client and server transactions of one endpoint (RFC 3261 §17).

    Args:
        timers: T1, T2, T4 (and Timer D).
        max_transactions: transactions in progress (no final response sent or received
            yet) beyond which a *new* INVITE is refused statelessly (RFC 7339's idea); other
            requests and responses are not affected. Transactions that only linger after
            their final response to absorb retransmissions (up to 32 s on UDP) do not count:
            they are cheap and would otherwise cap a steady call rate far below capacity.
        overload_status: the refusal's status (503 makes RFC 3263 clients fail over).
        overload_retry_after: Retry-After seconds on the refusal, or None for none.
        tag_factory: makes To tags for responses the layer builds itself.
        max_transactions_per_source: server transactions in progress from one IP address
            beyond which its new INVITEs are refused like beyond `max_transactions`; None
            for no such bound.
        answer_timeout: seconds a non-INVITE server transaction may wait for the TU's final
            response; then it is forgotten (its client gave up at 64*T1 anyway).
        invite_answer_timeout: the same for an INVITE (ringing included); then it is
            answered 500. Set it above the TU's own ring limit: it is a backstop for TU bugs.
    """

    def __init__(
        self,
        timers: TimerConfig = TimerConfig(),
        *,
        max_transactions: int = 10_000,
        overload_status: int = 503,
        overload_retry_after: int | None = 5,
        tag_factory: Callable[[], str] | None = None,
        answer_timeout: float = 64.0,
        invite_answer_timeout: float = 900.0,
        max_transactions_per_source: int | None = None,
    ) -> None:
        self.max_transactions_per_source = max_transactions_per_source
        # In-progress server transactions by source IP (kept only with a per-source bound).
        self._per_source: dict[str, int] = {}
        self._source_of: dict[TransactionKey, str] = {}
        self.timers = timers
        self.answer_timeout = answer_timeout
        self.invite_answer_timeout = invite_answer_timeout
        self.stats = LayerStats()
        self.max_transactions = max_transactions
        self.overload_status = overload_status
        self.overload_retry_after = overload_retry_after
        self._new_tag = tag_factory or (lambda: secrets.token_hex(6))
        self.shed_invites = False
        """Set by the TU while it is overloaded: new INVITEs are refused statelessly, like
        beyond `max_transactions`, before any transaction or 100 Trying."""
        self.request_filter: Callable[[Request, Address], bool] | None = None
        """The TU's source policy: a request for which it returns False is dropped silently
        before any transaction exists (responses are never filtered). Malformed requests go
        through it too (as a request made of the fields the parser salvaged) before any 400
        is sent."""
        self.maddr_allowed: MaddrPolicy | None = None
        """Whether a response may go to a Via `maddr` (target, source); None: never, every
        response goes to the source."""
        self._transactions: dict[TransactionKey, Transaction] = {}
        self._heap: list[tuple[float, int, TransactionKey, Timer]] = []
        # The heap is rebuilt from its live entries when it outgrows this: a stopped timer's
        # entry otherwise stays until its deadline (Timer ANSWER of an INVITE: 15 minutes).
        self._compact_at = HEAP_COMPACT_MIN
        self._tokens = itertools.count()
        self._outbox: list[tuple[bytes, Address]] = []
        self._events: deque[SipEvent] = deque()
        # INVITE client key -> the CANCEL waiting for a provisional response (RFC 3261 §9.1)
        self._pending_cancels: dict[TransactionKey, Request] = {}

    # --- input -----------------------------------------------------------------------------

    def receive_datagram(
        self, data: bytes, source: Address, now: float, *, reliable: bool = False
    ) -> None:
        """Parse and handle one datagram (or one framed stream message). Never raises for
        what the remote side sent: a malformed request is answered (400 and friends, RFC 3261
        §8.2.6) when a response can be formed, anything else is dropped and counted."""
        try:
            message = parse(data)
        except ParseError as error:
            self.stats.parse_errors += 1
            try:
                self._answer_parse_error(error, source, reliable)
            except (SipError, ValueError):
                self.stats.dropped += 1
            return
        self.receive_message(message, source, now, reliable=reliable)

    def receive_message(
        self, msg: Request | Response, source: Address, now: float, *, reliable: bool = False
    ) -> None:
        """Handle one parsed message from `source` (the error boundary for remote input)."""
        try:
            if (
                self.request_filter is not None
                and not isinstance(msg, Response)
                and not self.request_filter(msg, source)
            ):
                self.stats.dropped += 1  # before any transaction: not even a 100 Trying
                return
            if isinstance(msg, Response):
                self._on_response(msg, now)
            elif msg.method == "ACK":
                self._on_ack(msg, source, now)
            elif msg.method == "CANCEL":
                self._on_cancel(msg, source, now, reliable)
            else:
                self._on_request(msg, source, now, reliable)
        except (SipError, ValueError):
            # A header the parser let through that a lookup here cannot use.
            self.stats.dropped += 1

    def _on_request(self, request: Request, source: Address, now: float, reliable: bool) -> None:
        key = server_key(request)
        via = request.top_via
        if key is None or via is None:
            self.stats.dropped += 1
            return
        transaction = self._transactions.get(key)
        if transaction is not None:
            assert isinstance(transaction, _ServerTransaction)
            transaction.on_request(now)  # RFC 3261 §17.2.1/§17.2.2: a retransmission
            return
        dest = response_address(via, source, reliable, self.maddr_allowed)
        _stamp_via(request, via, source)
        invite = request.method == "INVITE"
        per_source = self.max_transactions_per_source
        if invite and (
            self.shed_invites
            or self.stats.in_progress >= self.max_transactions
            or (per_source is not None and self._per_source.get(source.host, 0) >= per_source)
        ):
            self._refuse(request, dest)
            return
        server: _ServerTransaction
        if invite:
            server = ServerInviteTransaction(self, key, request, dest, reliable)
        else:
            server = ServerNonInviteTransaction(self, key, request, dest, reliable)
        self._add(server)
        if per_source is not None:
            self._source_of[key] = source.host
            self._per_source[source.host] = self._per_source.get(source.host, 0) + 1
        # The TU answers, or this bound frees the transaction (`_on_unanswered`).
        bound = self.invite_answer_timeout if invite else self.answer_timeout
        self.arm(server, Timer.ANSWER, now + bound)
        self._events.append(RequestReceived(key, request, source))
        if invite:
            # RFC 3261 §17.2.1: a 100 Trying unless the TU answers within 200 ms; sending it
            # at once is allowed and stops the client's Timer A retransmissions early.
            server.on_response(make_response(request, 100), now)

    def _refuse(self, request: Request, dest: Address) -> None:
        self.stats.refused += 1
        headers = []
        if self.overload_retry_after is not None:
            headers.append(("Retry-After", str(self.overload_retry_after)))
        refusal = make_response(
            request, self.overload_status, to_tag=self._new_tag(), headers=headers
        )
        self._outbox.append((bytes(refusal), dest))

    def _on_ack(self, ack: Request, source: Address, now: float) -> None:
        key = server_key(ack, "INVITE")
        transaction = self._transactions.get(key) if key is not None else None
        if isinstance(transaction, ServerInviteTransaction) and (
            key is not None
            and (key.branch.startswith(MAGIC_COOKIE) or ack.to_tag == transaction.to_tag)
        ):
            if transaction.on_ack(now):  # RFC 6026 §8.6: in Accepted, the ACK goes up
                self._events.append(AckReceived(ack, source, key))
            return  # RFC 3261 §17.2.1: the ACK for a non-2xx is absorbed
        # RFC 3261 §17.2.3 / §13.3.1.4: the ACK for a 2xx matches no transaction.
        self._events.append(AckReceived(ack, source, None))

    def _on_cancel(self, cancel: Request, source: Address, now: float, reliable: bool) -> None:
        key = server_key(cancel)
        via = cancel.top_via
        if key is None or via is None:
            self.stats.dropped += 1
            return
        existing = self._transactions.get(key)
        if existing is not None:
            assert isinstance(existing, _ServerTransaction)
            existing.on_request(now)  # a retransmitted CANCEL gets its 200 again
            return
        dest = response_address(via, source, reliable, self.maddr_allowed)
        _stamp_via(cancel, via, source)
        server = ServerNonInviteTransaction(self, key, cancel, dest, reliable)
        self._add(server)
        # RFC 3261 §9.2: the CANCEL matches the INVITE it cancels by the §17.2.3 rules.
        invite_key = server_key(cancel, "INVITE")
        invite = self._transactions.get(invite_key) if invite_key is not None else None
        if invite_key is None or not isinstance(invite, ServerInviteTransaction):
            server.on_response(make_response(cancel, 481, to_tag=self._new_tag()), now)
            return
        server.on_response(make_response(cancel, 200, to_tag=invite.to_tag or self._new_tag()), now)
        if not invite.final_sent:  # after the final response a CANCEL has no effect
            self._events.append(CancelReceived(invite_key, cancel, source))

    def _on_response(self, response: Response, now: float) -> None:
        key = response_key(response)
        transaction = self._transactions.get(key) if key is not None else None
        if key is None:
            self.stats.dropped += 1
        elif isinstance(transaction, ClientInviteTransaction):
            transaction.on_response(response, now)
            self._after_invite_response(transaction, now)
        elif isinstance(transaction, ClientNonInviteTransaction):
            transaction.on_response(response, now)
        elif key.method == "INVITE" and 200 <= response.status < 300:
            # RFC 6026 §7.2: a 2xx after the transaction is gone still belongs to the dialog.
            self._events.append(ResponseReceived(key, response, True))
        else:
            self.stats.dropped += 1  # a stray response (RFC 3261 §18.1.2)

    def _after_invite_response(self, invite: ClientInviteTransaction, now: float) -> None:
        cancel = self._pending_cancels.get(invite.key)
        if cancel is None:
            return
        if invite.had_provisional:  # RFC 3261 §9.1: now the CANCEL may go
            del self._pending_cancels[invite.key]
            self._start_client(cancel, invite.dest, now, invite.reliable)
        elif invite.final_received:
            self._drop_pending_cancel(invite.key)

    def _drop_pending_cancel(self, invite_key: TransactionKey) -> None:
        cancel = self._pending_cancels.pop(invite_key, None)
        if cancel is not None:
            self._events.append(TransactionTerminated(client_key(cancel)))

    # --- output from the TU ------------------------------------------------------------------

    def send_request(
        self, msg: Request, dest: Address, now: float, *, reliable: bool = False
    ) -> TransactionKey:
        """Start a client transaction for `msg` (its top Via must carry a fresh `z9hG4bK`
        branch) and return its key. An ACK (for a 2xx) has no transaction: it is sent once
        and its key names nothing.

        Raises:
            LocalProtocolError: no Via branch with the magic cookie, or a branch in use.
        """
        key = client_key(msg)
        if msg.method == "ACK":
            self._outbox.append((bytes(msg), dest))
            return key
        if not key.branch.startswith(MAGIC_COOKIE):
            raise LocalProtocolError("a request needs a top Via branch starting with z9hG4bK")
        if key in self._transactions:
            raise LocalProtocolError(f"branch {key.branch!r} already names a transaction")
        self._start_client(msg, dest, now, reliable)
        return key

    def _start_client(self, msg: Request, dest: Address, now: float, reliable: bool) -> None:
        client: ClientInviteTransaction | ClientNonInviteTransaction
        if msg.method == "INVITE":
            client = ClientInviteTransaction(self, client_key(msg), msg, dest, reliable)
        else:
            client = ClientNonInviteTransaction(self, client_key(msg), msg, dest, reliable)
        self._add(client)
        client.start(now)

    def send_response(self, key: TransactionKey, msg: Response, now: float) -> None:
        """Send `msg` on server transaction `key`. A 2xx to an INVITE moves it to Accepted
        (RFC 6026): the TU retransmits that 2xx itself, through this method, until the ACK.

        Raises:
            LocalProtocolError: no such server transaction, or its state allows no such
                response (e.g. a 487 after the 200 went out).
        """
        transaction = self._transactions.get(key)
        if not isinstance(transaction, _ServerTransaction):
            raise LocalProtocolError(f"no server transaction {key}")
        if not transaction.on_response(msg, now):
            raise LocalProtocolError(
                f"a {msg.status} is not allowed in state {transaction.state.name}"
            )

    def fail_request(self, key: TransactionKey, now: float, status: int = 500) -> bool:
        """Answer server transaction `key` with `status` if no final response went out yet
        (the layer's error policy: the TU failed on the request). Returns whether it did."""
        transaction = self._transactions.get(key)
        if not isinstance(transaction, _ServerTransaction) or transaction.final_sent:
            return False
        request = transaction.request
        if request is None:  # settled already: nothing left to answer
            return False
        to_tag = getattr(transaction, "to_tag", None) or self._new_tag()
        return transaction.on_response(make_response(request, status, to_tag=to_tag), now)

    def tu_failed(self, event: SipEvent, now: float) -> None:
        """The TU raised while handling `event`: end what the event left open, so no TU bug
        leaks a transaction. A request is answered 500; a CANCEL's INVITE 487 (RFC 3261
        §9.2); other events hold nothing the layer must free."""
        if isinstance(event, RequestReceived):
            self.stats.tu_errors += 1
            self.fail_request(event.key, now)
        elif isinstance(event, CancelReceived):
            self.stats.tu_errors += 1
            self.fail_request(event.invite_key, now, 487)

    def _on_unanswered(self, transaction: _ServerTransaction, now: float) -> None:
        """Timer ANSWER: the TU never gave a final response. An INVITE gets 500 (and then
        Timer H or L frees it); a non-INVITE, whose client stopped waiting, is forgotten."""
        self.stats.unanswered += 1
        self._events.append(TransactionTimedOut(transaction.key, Timer.ANSWER))
        if isinstance(transaction, ServerInviteTransaction) and self.fail_request(
            transaction.key, now
        ):
            return
        self.terminate(transaction)

    def abandon(self, key: TransactionKey) -> None:
        """Forget server transaction `key` without answering it (a request the TU drops
        silently, e.g. from a source it serves nothing). Retransmissions of the request then
        start a new transaction, which the TU drops again. Unknown keys are ignored."""
        transaction = self._transactions.get(key)
        if transaction is not None and key.role is Role.SERVER:
            self.terminate(transaction)

    def give_up(self, invite_key: TransactionKey) -> None:
        """End INVITE client transaction `invite_key` if it has no final response yet: the
        TU's side of RFC 3261 §9.1 (an INVITE with no final response 64*T1 after its CANCEL
        is timed out; in Proceeding no timer of the transaction ends it). It is forgotten
        (`TransactionTerminated`); answered or unknown keys are ignored."""
        invite = self._transactions.get(invite_key)
        if isinstance(invite, ClientInviteTransaction) and not invite.final_received:
            self.terminate(invite)
            self._drop_pending_cancel(invite_key)

    def send_cancel(self, invite_key: TransactionKey, now: float) -> TransactionKey:
        """Cancel the INVITE client transaction `invite_key` (RFC 3261 §9.1) and return the
        key of the CANCEL's own transaction. The CANCEL is held until a provisional response
        arrives; when a final response comes first it is never sent and its key is
        terminated (`TransactionTerminated`). Later calls for the same INVITE return the
        same key and do nothing (even once that CANCEL timed out: the TU's Timer C is next).

        Raises:
            LocalProtocolError: `invite_key` names no INVITE client transaction.
        """
        invite = self._transactions.get(invite_key)
        if not isinstance(invite, ClientInviteTransaction):
            raise LocalProtocolError(f"no INVITE client transaction {invite_key}")
        # The CANCEL's Via is the INVITE's top Via (§9.1), so its key is the INVITE's branch
        # with method CANCEL: no need for the INVITE itself, which is gone once it settled.
        key = invite_key._replace(method="CANCEL")
        if invite.cancelled:
            return key  # one CANCEL per INVITE: its transaction retransmits it (Timer E)
        invite.cancelled = True
        if invite.final_received or invite.request is None:
            self._events.append(TransactionTerminated(key))  # too late: nothing to cancel
            return key
        cancel = build_cancel(invite.request)
        if invite.had_provisional:
            self._start_client(cancel, invite.dest, now, invite.reliable)
        else:
            self._pending_cancels[invite_key] = cancel
        return key

    # --- output to the transport -------------------------------------------------------------

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Address]]:
        """Everything queued for the network since the last call, in order."""
        outbox, self._outbox = self._outbox, []
        return outbox

    def get_timer(self) -> float | None:
        """The earliest deadline over all transactions, or None when none is armed."""
        heap = self._heap
        while heap:
            _, token, key, timer = heap[0]
            transaction = self._transactions.get(key)
            if transaction is not None and transaction.timers.get(timer) == token:
                return heap[0][0]
            heapq.heappop(heap)  # stale: stopped, re-armed or its transaction is gone
        return None

    def handle_timer(self, now: float) -> None:
        """Fire every deadline at or before `now`, earliest first."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, token, key, timer = heapq.heappop(heap)
            transaction = self._transactions.get(key)
            if transaction is None or transaction.timers.get(timer) != token:
                continue
            del transaction.timers[timer]
            if timer is Timer.ANSWER:
                assert isinstance(transaction, _ServerTransaction)
                self._on_unanswered(transaction, now)
                continue
            transaction.on_timer(timer, now)
            if isinstance(transaction, ClientInviteTransaction) and transaction.terminated:
                self._drop_pending_cancel(key)

    def next_event(self) -> SipEvent | None:
        """The oldest event not yet taken, or None."""
        return self._events.popleft() if self._events else None

    # --- inspection --------------------------------------------------------------------------

    def state(self, key: TransactionKey) -> Enum | None:
        """The state of transaction `key`, or None once it is terminated and forgotten."""
        transaction = self._transactions.get(key)
        return transaction.state if transaction is not None else None  # type: ignore[attr-defined]

    # --- Context for the machines ------------------------------------------------------------

    def transmit(self, data: bytes, dest: Address, *, retransmission: bool = False) -> None:
        if retransmission:
            self.stats.retransmissions += 1
        self._outbox.append((data, dest))

    def emit(self, event: SipEvent) -> None:
        self._events.append(event)

    def arm(self, transaction: Transaction, timer: Timer, deadline: float) -> None:
        token = next(self._tokens)
        transaction.timers[timer] = token
        heapq.heappush(self._heap, (deadline, token, transaction.key, timer))
        if len(self._heap) > self._compact_at:
            self._compact()

    def _compact(self) -> None:
        """Drop the stale entries (stopped, re-armed, transaction gone). The next rebuild
        waits until the heap doubles, so each push pays O(1) amortized and the heap stays
        within twice its live timers (or HEAP_COMPACT_MIN)."""
        transactions = self._transactions
        heap = self._heap  # in place: handle_timer holds it while a timer arms another
        heap[:] = [
            entry for entry in heap
            if (t := transactions.get(entry[2])) is not None and t.timers.get(entry[3]) == entry[1]
        ]
        heapq.heapify(heap)
        self._compact_at = max(HEAP_COMPACT_MIN, 2 * len(self._heap))

    @property
    def deadlines(self) -> int:
        """Entries on the deadline heap, stale ones included (bounded: see `_compact`)."""
        return len(self._heap)

    def settled(self, transaction: Transaction) -> None:
        """`transaction` has its final response (or is ending without one): it no longer
        counts as in progress. Idempotent."""
        if transaction.in_progress:
            transaction.in_progress = False
            self.stats.in_progress -= 1
            transaction.timers.pop(Timer.ANSWER, None)  # answered: the bound is moot
            if self._source_of:
                host = self._source_of.pop(transaction.key, None)
                if host is not None:
                    left = self._per_source[host] - 1
                    if left:
                        self._per_source[host] = left
                    else:
                        del self._per_source[host]

    def terminate(self, transaction: Transaction) -> None:
        self.settled(transaction)  # Timers B and F end a transaction still in progress
        transaction.finish()
        transaction.timers.clear()
        if self._transactions.pop(transaction.key, None) is not None:
            self.stats.in_flight = len(self._transactions)
            self._events.append(TransactionTerminated(transaction.key))

    def _add(self, transaction: Transaction) -> None:
        self._transactions[transaction.key] = transaction
        self.stats.in_flight = len(self._transactions)
        self.stats.in_progress += 1  # every machine starts in an in-progress state

    def _answer_parse_error(self, error: ParseError, source: Address, reliable: bool) -> None:
        response = response_to_parse_error(error, to_tag=self._new_tag())
        if response is None:
            self.stats.dropped += 1
            return
        if self.request_filter is not None:
            # The source policy runs before anything is answered, malformed input included.
            salvaged = _salvaged_request(error)
            if salvaged is None or not self.request_filter(salvaged, source):
                self.stats.dropped += 1
                return
        data = bytes(response)
        try:
            via = parse_via(error.via[0])[0]
        except (ParseError, IndexError):
            self.stats.dropped += 1
            return
        self._outbox.append((data, response_address(via, source, reliable, self.maddr_allowed)))


def _salvaged_request(error: ParseError) -> Request | None:
    """A request made of the fields the parser salvaged from a malformed one (for the source
    policy, which must see every request before it is answered), or None."""
    if error.cseq is None:
        return None
    method = error.cseq.split()[-1] if error.cseq.split() else "INVITE"
    fields = [("Via", via) for via in error.via]
    for name, value in (
        ("From", error.from_),
        ("To", error.to),
        ("Call-ID", error.call_id),
        ("CSeq", error.cseq),
    ):
        if value is not None:
            fields.append((name, value))
    try:
        return Request(method, "sip:invalid", fields)
    except ValueError:
        return None


__all__ = ["Address", "LayerStats", "Role", "TransactionKey", "TransactionLayer"]
