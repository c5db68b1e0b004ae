"""The layer's error policy (issue 13): a response can always be formed for a parsed request,
no TU failure or silence leaks a server transaction, a Via maddr cannot reflect answers to a
third party, and the source policy runs before a malformed request is answered."""

from __future__ import annotations

import pytest
from helpers import T1, drain, fire_until, make_request, wire

import sipmask
from sipmask.sip.events import (
    Address,
    RequestReceived,
    TransactionTimedOut,
)
from sipmask.sip.layer import TransactionLayer
from sipmask.sip.responses import make_response
from sipmask.sip.timers import Timer
from sipmask.sip.validate import options_response, stateless_answer

TRUNK = Address("198.51.100.7", 5060)
OUTSIDER = Address("203.0.113.66", 5060)


def raw(method: str = "INVITE", *, to: bytes = b"<sip:bob@example.com>", extra: bytes = b"",
        eol: bytes = b"\r\n", branch: str = "z9hG4bKrobust1") -> bytes:
    lines = [
        f"{method} sip:+918045671234@192.0.2.2 SIP/2.0".encode(),
        f"Via: SIP/2.0/UDP 198.51.100.7:5060;branch={branch}".encode(),
        b"Max-Forwards: 70",
        b"From: <sip:+919876543210@198.51.100.7>;tag=1",
        b"To: " + to,
        b"Call-ID: robust-1",
        f"CSeq: 1 {method}".encode(),
    ]
    if extra:
        lines.append(extra)
    lines.append(b"Content-Length: 0")
    return eol.join(lines) + eol + eol


# What issue 13 found: each parses, and each made make_response raise ValueError.
UNANSWERABLE = {
    "bare-cr-lf-only-to": raw(to=b'"a\rb" <sip:bob@example.com>', eol=b"\n"),
    "bare-cr-to-param": raw(to=b"<sip:bob@example.com>;x=\rb", eol=b"\n"),
    "nul-quoted-to": raw(to=b'"a\x00b" <sip:bob@example.com>'),
    "nul-require": raw(extra=b"Require: foo\x00bar"),
    "cr-require-lf-only": raw(extra=b"Require: foo\rbar", eol=b"\n"),
    "options-nul-to": raw("OPTIONS", to=b'"a\x00b" <sip:bob@example.com>'),
}


@pytest.mark.parametrize("data", UNANSWERABLE.values(), ids=UNANSWERABLE.keys())
def test_a_response_can_always_be_formed(data: bytes) -> None:
    request = sipmask.parse(data)
    assert isinstance(request, sipmask.Request)
    built = [
        make_response(request, 486, to_tag="t"),
        make_response(request, 100),
        options_response(request, ("INVITE", "OPTIONS"), ("application/sdp",), ("timer",)),
    ]
    verdict = stateless_answer(request, methods=("INVITE", "ACK", "OPTIONS"))
    if verdict is not None:
        built.append(verdict)
    for response in built:
        again = sipmask.parse(bytes(response))  # writable, and well formed
        assert isinstance(again, sipmask.Response)
        assert again.top_via is not None and again.top_via.branch == "z9hG4bKrobust1"


def unanswered_layer() -> TransactionLayer:
    return TransactionLayer(tag_factory=lambda: "layer-tag", invite_answer_timeout=100.0)


@pytest.mark.parametrize("method", ["INVITE", "OPTIONS"])
def test_tu_failure_is_answered_500_and_the_transaction_freed(method: str) -> None:
    layer = unanswered_layer()
    layer.receive_datagram(raw(method), TRUNK, 0.0)
    (event,) = [e for e in drain(layer) if isinstance(e, RequestReceived)]
    layer.datagrams_to_send(0.0)
    layer.tu_failed(event, 0.0)  # what the endpoint does when its callback raises
    (answer,) = [sipmask.parse(d) for d, _ in layer.datagrams_to_send(0.0)]
    assert isinstance(answer, sipmask.Response) and answer.status == 500
    assert layer.stats.in_progress == 0 and layer.stats.tu_errors == 1
    fire_until(layer, 1_000.0)
    assert layer.stats.in_flight == 0


def test_an_unanswered_invite_gets_500_at_its_bound_then_goes() -> None:
    layer = unanswered_layer()
    layer.receive_datagram(raw(), TRUNK, 0.0)
    drain(layer)
    layer.datagrams_to_send(0.0)  # the 100 Trying
    fire_until(layer, 99.0)
    assert layer.stats.in_progress == 1  # the TU may still answer (ringing)
    layer.handle_timer(100.0)
    events = drain(layer)
    assert TransactionTimedOut(events[0].key, Timer.ANSWER) in events  # type: ignore[union-attr]
    statuses = [sipmask.parse(d).status for d, _ in layer.datagrams_to_send(100.0)]  # type: ignore[union-attr]
    assert statuses == [500]
    fire_until(layer, 200.0)  # Timer H: no ACK
    assert layer.stats.in_flight == 0 and layer.stats.unanswered == 1


def test_an_unanswered_non_invite_is_forgotten_at_its_bound() -> None:
    layer = TransactionLayer(answer_timeout=64 * T1 + 1)
    layer.receive_datagram(raw("INFO"), TRUNK, 0.0)
    drain(layer)
    fire_until(layer, 64 * T1 + 1)
    assert layer.stats.in_flight == 0
    assert layer.datagrams_to_send(100.0) == []  # its client gave up: nothing to send


def test_an_answered_request_is_not_touched_by_the_bound() -> None:
    layer = unanswered_layer()
    layer.receive_datagram(raw(), TRUNK, 0.0)
    (event,) = [e for e in drain(layer) if isinstance(e, RequestReceived)]
    layer.send_response(event.key, make_response(event.request, 486, to_tag="x"), 1.0)
    fire_until(layer, 1_000.0)
    assert layer.stats.unanswered == 0 and layer.stats.in_flight == 0


@pytest.mark.parametrize(
    ("maddr", "allowed", "dest"),
    [
        ("198.51.100.8", True, Address("198.51.100.8", 5060)),  # the trunk's other address
        ("203.0.113.9", False, TRUNK),  # a third party: symmetric answer instead
        ("victim.example", True, TRUNK),  # not an IP: never sent to
    ],
    ids=["own-address", "third-party", "name"],
)
def test_maddr_is_honoured_only_for_the_peers_own_addresses(
    maddr: str, allowed: bool, dest: Address
) -> None:
    layer = TransactionLayer()
    asked: list[tuple[Address, Address]] = []

    def policy(target: Address, source: Address) -> bool:
        asked.append((target, source))
        return allowed

    layer.maddr_allowed = policy
    request = make_request("OPTIONS", via_host="198.51.100.7", via_params=f";maddr={maddr}")
    layer.receive_datagram(wire(request), TRUNK, 0.0)
    (event,) = [e for e in drain(layer) if isinstance(e, RequestReceived)]
    layer.send_response(event.key, make_response(event.request, 200, to_tag="x"), 0.0)
    ((_, to),) = layer.datagrams_to_send(0.0)
    assert to == dest
    if maddr[0].isdigit():
        assert asked == [(Address(maddr, 5060), TRUNK)]


def test_the_source_policy_runs_before_a_malformed_request_is_answered() -> None:
    layer = TransactionLayer()
    layer.request_filter = lambda request, source: source == TRUNK
    malformed = raw(extra=b"Max-Forwards: many")  # repeated, and not a number: 400
    layer.receive_datagram(malformed, OUTSIDER, 0.0)
    assert layer.datagrams_to_send(0.0) == []
    assert layer.stats.parse_errors == 1
    layer.receive_datagram(malformed, TRUNK, 0.0)
    ((data, _),) = layer.datagrams_to_send(0.0)
    assert sipmask.parse(data).status == 400  # type: ignore[union-attr]


def test_one_source_cannot_take_every_transaction_slot() -> None:
    layer = TransactionLayer(max_transactions=100, max_transactions_per_source=2)
    for n in range(3):
        layer.receive_datagram(raw(branch=f"z9hG4bKps{n}"), TRUNK, 0.0)
    layer.receive_datagram(raw(branch="z9hG4bKother"), OUTSIDER, 0.0)
    assert layer.stats.refused == 1 and layer.stats.in_progress == 3
    keys = [e.key for e in drain(layer) if isinstance(e, RequestReceived)]
    assert len(keys) == 3
    for key in keys:  # answered: the source's slots come back
        layer.fail_request(key, 0.0, 486)
    layer.receive_datagram(raw(branch="z9hG4bKps9"), TRUNK, 0.0)
    assert layer.stats.refused == 1 and layer.stats.in_progress == 1
