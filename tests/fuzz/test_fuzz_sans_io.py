"""Fuzz targets for the sans-IO parts (issue 13): `sipmask.parse`, `make_response` and the
transaction layer, fed whole datagrams on a fake clock, with a TU that answers, raises or
never answers. After each input the clock is run past every timer: then no transaction may
be left (`in_flight == 0`), whatever came in and whatever the TU did.

Short in CI; `SIPMASK_FUZZ_SCALE=100` for a long run."""

from __future__ import annotations

import random

from corpus import SCALE, datagrams, generated
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sipmask
from sipmask.errors import ParseError
from sipmask.sip.events import Address, RequestReceived
from sipmask.sip.layer import TransactionLayer
from sipmask.sip.responses import make_response
from sipmask.sip.validate import stateless_answer

TRUNK = Address("127.0.0.1", 5060)
OUTSIDER = Address("203.0.113.66", 5060)
FUZZ = settings(max_examples=200 * SCALE, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])

inputs = st.one_of(datagrams(), st.binary(max_size=600))


@FUZZ
@given(inputs)
def test_parse_accepts_or_raises_parse_error_and_a_request_can_be_answered(data: bytes) -> None:
    try:
        message = sipmask.parse(data)
    except ParseError:
        return
    if isinstance(message, sipmask.Request):
        # What the layer and the TU build for any parsed request must always be writable.
        for response in (make_response(message, 100), make_response(message, 486, to_tag="t")):
            assert isinstance(sipmask.parse(bytes(response)), sipmask.Response)
        stateless_answer(message)


def run_out_the_clock(layer: TransactionLayer, now: float) -> float:
    while (deadline := layer.get_timer()) is not None:
        now = max(now, deadline)
        layer.handle_timer(now)
        drive_tu(layer, now, random.Random(0), "answer")
    return now


def drive_tu(layer: TransactionLayer, now: float, rng: random.Random, mode: str) -> None:
    """A TU that answers (with a random final), fails (raises: the endpoint's policy calls
    `tu_failed`) or stays silent, per `mode`."""
    while (event := layer.next_event()) is not None:
        if not isinstance(event, RequestReceived):
            continue
        if mode == "answer":
            status = rng.choice((180, 200, 404, 486, 503))
            try:
                layer.send_response(event.key, make_response(event.request, status,
                                                             to_tag="tu"), now)
            except sipmask.LocalProtocolError:
                pass
            if status < 200:
                layer.send_response(event.key, make_response(event.request, 487,
                                                             to_tag="tu"), now)
        elif mode == "fail":
            layer.tu_failed(event, now)
        # "silent": nothing; Timer ANSWER must free it


@FUZZ
@given(st.lists(st.tuples(inputs, st.sampled_from(["answer", "fail", "silent"]),
                          st.booleans(), st.booleans()), min_size=1, max_size=8),
       st.integers(min_value=0, max_value=2**16))
def test_no_transaction_outlives_its_timers(steps: list[tuple[bytes, str, bool, bool]],
                                           seed: int) -> None:
    rng = random.Random(seed)
    layer = TransactionLayer(max_transactions=4)
    layer.request_filter = lambda request, source: source == TRUNK
    layer.maddr_allowed = lambda target, source: target.host == source.host
    now = 0.0
    for data, mode, outsider, reliable in steps:
        source = OUTSIDER if outsider else TRUNK
        layer.receive_datagram(data, source, now, reliable=reliable)
        drive_tu(layer, now, rng, mode)
        for out, dest in layer.datagrams_to_send(now):
            assert dest.host in (TRUNK.host, OUTSIDER.host)  # never reflected elsewhere
            assert source == TRUNK  # an outsider is never answered
            sipmask.parse(out)  # everything sent is well formed
        now = run_out_the_clock(layer, now)
        layer.datagrams_to_send(now)
        assert layer.stats.in_flight == 0 and layer.stats.in_progress == 0


def test_a_seeded_batch_through_one_layer_leaves_nothing() -> None:
    """Many datagrams into one layer (not one per example): overlapping transactions."""
    rng = random.Random(13)
    layer = TransactionLayer(max_transactions=50)
    now = 0.0
    for n in range(2_000 * SCALE):
        layer.receive_datagram(generated(rng), TRUNK, now)
        drive_tu(layer, now, rng, rng.choice(("answer", "fail", "silent")))
        layer.datagrams_to_send(now)
        if n % 100 == 0:
            now += 0.1
            layer.handle_timer(now)
    now = run_out_the_clock(layer, now)
    assert layer.stats.in_flight == 0 and layer.stats.in_progress == 0
