"""`sipmask run --workers 2` on the Redis store: a real node of one supervisor and two SIP
workers sharing the listen sockets. SIPp calls from one source address (one trunk) are
spread over both workers by Call-ID, every call completes, and the node stops cleanly."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from b2bua_harness import (
    SIPP,
    config_text,
    create_session,
    free_port,
    header,
    requests,
    run_caller,
    running_sipmask,
    start_callee,
)
from test_ops import metric, scrape
from test_run import CALLEE, CALLER

from sipmask.transport.workers import owner_of

pytestmark = pytest.mark.skipif(
    SIPP is None, reason="sipp not on PATH (apt-get install sip-tester)"
)
CALLS = 24


def test_two_workers_share_one_trunk_by_call_id(tmp_path: Path, redis_server) -> None:
    port = free_port()
    config = config_text([port]).replace(
        'backend = "memory"\ndata_dir = ""',
        f'backend = "redis"\nredis_url = "{redis_server.url}"\ndata_dir = ""',
    ).replace("[metrics]\nenabled = false", '[metrics]\nlisten = "127.0.0.1:0"') + (
        "\n[process]\nworkers = 2\n"
    )
    with running_sipmask(tmp_path, config) as sipmask:
        # The 2 workers log it; the supervisor's `ready` is its stdout line (not logged too).
        assert sipmask.output().count('"message": "ready"') >= 2
        session = create_session(sipmask.ports["api"], (CALLER, CALLEE))
        callee = start_callee(tmp_path, "callee", "uas_basic.xml", port, calls=CALLS)
        caller = run_caller(tmp_path, "uac_basic.xml", sipmask_port=sipmask.ports["udp"],
                            service=session.proxies[CALLER], calls=CALLS)
        assert caller.status == 0, caller.diagnostics()
        assert callee.wait() == 0, callee.diagnostics()
        # The supervisor's /metrics sums the workers' counters (written every second).
        deadline = time.monotonic() + 10
        while True:
            text = scrape(sipmask)
            if metric(text, 'sipmask_calls_total{outcome="completed"}') == CALLS:
                break
            assert time.monotonic() < deadline, text[-3000:]
            time.sleep(0.2)
        assert metric(text, "sipmask_calls_started_total") == CALLS
        assert (metric(text, 'sipmask_sip_responses_total{code="200"}') or 0) >= 2 * CALLS
    invites = requests(callee, "INVITE")
    assert len(invites) == CALLS
    # Each B leg's Call-ID is minted by the worker that handled the call, which owns it.
    owners = {owner_of((header(m, "Call-ID") or "").encode(), 2) for m in invites}
    assert owners == {0, 1}  # one trunk, one source address, both workers busy
