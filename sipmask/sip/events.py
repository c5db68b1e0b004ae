"""Events the transaction layer hands to its user, the transaction user (TU): dialogs and
call control. Frozen and slotted, named in the past tense (h11 `Request`, aioquic
`ConnectionTerminated`)."""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass
from enum import Enum
from typing import NamedTuple

from .._core import Request, Response
from .timers import Timer


@functools.lru_cache(maxsize=4096)
def is_ip_literal(host: str) -> bool:
    """Whether `host` is an IPv4 or IPv6 address (an IPv6 zone `%eth0` allowed, no
    brackets), not a name: only those are sent to or trusted without RFC 3263 resolution."""
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


class Address(NamedTuple):
    """A transport address: host (an IP literal or a name, as written) and port."""

    host: str
    port: int


class Role(Enum):
    CLIENT = "client"
    SERVER = "server"

    # Members are singletons: identity hashing is exact, and C-fast (Enum's own __hash__ is
    # Python code, run for every transaction lookup).
    __hash__ = object.__hash__


class TransactionKey(NamedTuple):
    """Names one transaction (RFC 3261 §17.1.3, §17.2.3).

    A client transaction is named by the branch it put in its Via and its method; a server
    transaction by the top Via's branch and sent-by and the method (ACK is matched to the
    INVITE). Requests without the `z9hG4bK` cookie (RFC 2543 peers) get a `branch` built from
    the fields RFC 3261 §17.2.3 compares instead."""

    role: Role
    branch: str
    sent_by: str
    method: str


@dataclass(frozen=True, slots=True)
class RequestReceived:
    """A new request created a server transaction; answer it with `send_response(key, ...)`."""

    key: TransactionKey
    request: Request
    source: Address


@dataclass(frozen=True, slots=True)
class ResponseReceived:
    """A response to a client transaction. `retransmission` is True only for a 2xx to an
    INVITE already seen (same To tag): the dialog re-sends its ACK for it (RFC 6026 §7.2)."""

    key: TransactionKey
    response: Response
    retransmission: bool


@dataclass(frozen=True, slots=True)
class AckReceived:
    """An ACK for a 2xx (RFC 3261 §13.3.1.4): it belongs to no transaction, the dialog
    consumes it. `key` is the INVITE server transaction it matched in the Accepted state, or
    None (the usual case: the ACK for a 2xx carries a new branch)."""

    request: Request
    source: Address
    key: TransactionKey | None = None


@dataclass(frozen=True, slots=True)
class CancelReceived:
    """A CANCEL matched INVITE transaction `invite_key` before its final response (RFC 3261
    §9.2). The layer already answered the CANCEL with 200; the TU should answer the INVITE
    with 487."""

    invite_key: TransactionKey
    request: Request
    source: Address


@dataclass(frozen=True, slots=True)
class TransactionTimedOut:
    """Timer B, F or H fired: the request (or, for H, the ACK) never came through."""

    key: TransactionKey
    timer: Timer


@dataclass(frozen=True, slots=True)
class TransactionTerminated:
    """The transaction reached Terminated and was forgotten; its key is no longer valid."""

    key: TransactionKey


SipEvent = (
    RequestReceived
    | ResponseReceived
    | AckReceived
    | CancelReceived
    | TransactionTimedOut
    | TransactionTerminated
)
