"""Operating a running `sipmask run` process (issue 7): SIGHUP reload, SIGTERM drain,
Prometheus /metrics, /readyz, `sipmask demo`, and the compose file.

Real processes on 127.0.0.1 with ports of their choosing. Calls are placed by the demo's
built-in phones (`sipmask.demo.Phone`: SIP over UDP, in the test's own event loop) or, for
the metrics check, by SIPp through the b2bua harness. Every wait is bounded; no assertion is
on time. No output or metric may carry a real number in full."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from b2bua_harness import (
    config_text as harness_config,
)
from b2bua_harness import (
    create_session,
    needs_sipp,
    run_caller,
    running_sipmask,
    start_callee,
)
from b2bua_harness import (
    free_port as harness_free_port,
)
from test_run import (
    CALLEE,
    CALLER,
    POOL_NUMBERS,
    RECV_BOUND,
    STOP_BOUND,
    TOKEN,
    Sipmask,
    assert_no_real_number,
    clean_env,
    http,
    start,
)

from sipmask.demo import OutgoingCall, Phone
from sipmask.sip.events import Address

ROOT = Path(__file__).resolve().parents[2]
LOG_BOUND = 10.0  # a log line or a metric value showing up


def ops_config(
    outbound_port: int | None,
    *,
    inbound: str = "127.0.0.1/32",
    grace: float = 30.0,
) -> str:
    outbound = f'outbound = ["udp:127.0.0.1:{outbound_port}"]' if outbound_port else ""
    return f"""\
[sip]
listen = ["udp:127.0.0.1:0"]

[api]
listen = "127.0.0.1:0"
tokens = ["{TOKEN}"]

[metrics]
listen = "127.0.0.1:0"

[store]
backend = "memory"
data_dir = ""

[[pools]]
name = "default"
numbers = {json.dumps(list(POOL_NUMBERS))}

[[trunks]]
name = "carrier"
inbound = ["{inbound}"]
{outbound}
probe_interval = 0.0

[trunks.number_rules]
country_code = "91"

[logging]
level = "info"
format = "json"

[process]
drain_grace = {grace}
"""


# --- helpers -----------------------------------------------------------------------------------


def scrape(handle: Sipmask) -> str:
    url = f"http://127.0.0.1:{handle.ports['metrics']}/metrics"
    with urllib.request.urlopen(url, timeout=RECV_BOUND) as answer:
        assert answer.status == 200
        return str(answer.read().decode())


def metric(text: str, name: str) -> float | None:
    """The value of one sample (`name` with its labels, as written) in the exposition."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


async def until(ready: Callable[[], bool], what: str, bound: float = LOG_BOUND) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + bound
    while not ready():
        if loop.time() > deadline:
            pytest.fail(f"never happened: {what}")
        await asyncio.sleep(0.05)


def logged(handle: Sipmask, text: str) -> Callable[[], bool]:
    return lambda: text in handle.stderr()


async def phones(*names: tuple[str, str]) -> list[Phone]:
    opened = []
    for name, number in names:
        phone = Phone(name, number)
        await phone.open()
        opened.append(phone)
    return opened


async def session_v1(handle: Sipmask) -> str:
    status, answer = await asyncio.to_thread(
        http,
        handle.ports["api"],
        "POST",
        "/v1/sessions",
        {"participants": [{"identifier": CALLER}, {"identifier": CALLEE}]},
    )
    assert status == 201, answer
    members = answer["participants"]
    assert isinstance(members, list)
    return next(str(m["proxy_identifier"]) for m in members if m["key"] == CALLER)


def sip_address(handle: Sipmask) -> Address:
    return Address("127.0.0.1", handle.ports["udp"])


def finish(handle: Sipmask) -> str:
    status = handle.stop()
    output = handle.output()
    assert status == 0, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert_no_real_number(output)
    return output


def hung_up(phone: Phone) -> Callable[[], bool]:
    """Every call the phone answered has been ended by the other side (a BYE came)."""
    return lambda: all(call.ended_by_remote for call in phone.incoming.values())


def answered(call: OutgoingCall) -> bool:
    return call.status == 200


# --- SIGHUP ------------------------------------------------------------------------------------


def test_sighup_new_outbound_takes_new_calls_while_a_held_call_survives(tmp_path):
    async def main() -> None:
        old, new, caller = await phones(("old", CALLEE), ("new", CALLEE), ("caller", CALLER))
        handle = await asyncio.to_thread(
            start, tmp_path, config=ops_config(old.address.port)
        )
        try:
            v1 = await session_v1(handle)
            held = await caller.call(sip_address(handle), v1)
            assert answered(held), held.statuses
            assert len(old.incoming) == 1

            (tmp_path / "sipmask.toml").write_text(ops_config(new.address.port))
            handle.process.send_signal(signal.SIGHUP)
            await until(logged(handle, "reloaded"), "the reload")

            fresh = await caller.call(sip_address(handle), v1)
            assert answered(fresh), fresh.statuses
            assert len(new.incoming) == 1 and len(old.incoming) == 1  # new call, new trunk

            # The held call still bridges to the old destination, both ways.
            assert await caller.hang_up(held) == 200
            assert await old.wait(hung_up(old))
            assert await caller.hang_up(fresh) == 200
            assert await new.wait(hung_up(new))
            assert metric(scrape(handle), 'sipmask_config_reloads_total{result="applied"}') == 1
            assert not caller.saw_digits(CALLEE) and not new.saw_digits(CALLER)
        finally:
            for phone in (old, new, caller):
                phone.close()
            finish(handle)

    asyncio.run(main())


def test_sighup_with_an_invalid_file_keeps_the_running_config(tmp_path):
    async def main() -> None:
        callee, caller = await phones(("callee", CALLEE), ("caller", CALLER))
        handle = await asyncio.to_thread(
            start, tmp_path, config=ops_config(callee.address.port)
        )
        try:
            v1 = await session_v1(handle)
            (tmp_path / "sipmask.toml").write_text(
                ops_config(callee.address.port, inbound="10.0.0.300/8")
            )
            handle.process.send_signal(signal.SIGHUP)
            await until(logged(handle, "reload rejected"), "the rejection")
            assert "trunks[0].inbound[0]" in handle.stderr()
            assert handle.process.poll() is None

            call = await caller.call(sip_address(handle), v1)  # the old trunk still serves
            assert answered(call), call.statuses
            assert await caller.hang_up(call) == 200
            text = scrape(handle)
            assert metric(text, 'sipmask_config_reloads_total{result="rejected"}') == 1
            assert metric(text, 'sipmask_config_reloads_total{result="applied"}') == 0
        finally:
            callee.close()
            caller.close()
            finish(handle)

    asyncio.run(main())


def test_sighup_opens_the_listeners_to_a_new_inbound_network(tmp_path):
    async def main() -> None:
        (caller,) = await phones(("caller", CALLER))
        handle = await asyncio.to_thread(
            start, tmp_path, config=ops_config(None, inbound="192.0.2.0/24")
        )
        refused = 'sipmask_udp_source_refused_total{listener="127.0.0.1:%d"}' % (
            handle.ports["udp"]
        )
        try:
            first = asyncio.ensure_future(caller.call(sip_address(handle), POOL_NUMBERS[0]))
            await until(lambda: (metric(scrape(handle), refused) or 0) >= 1, "a refusal")
            first.cancel()
            (tmp_path / "sipmask.toml").write_text(ops_config(None, inbound="127.0.0.1/32"))
            handle.process.send_signal(signal.SIGHUP)
            await until(logged(handle, "reloaded"), "the reload")
            # Heard now: no session for the number, so the engine's own verdict, 404.
            call = await caller.call(sip_address(handle), POOL_NUMBERS[0])
            assert call.statuses[-1] == 404, call.statuses
        finally:
            caller.close()
            finish(handle)

    asyncio.run(main())


# --- SIGTERM -----------------------------------------------------------------------------------


def test_sigterm_drains_a_held_call_and_refuses_new_ones(tmp_path):
    async def main() -> str:
        callee, caller = await phones(("callee", CALLEE), ("caller", CALLER))
        handle = await asyncio.to_thread(
            start, tmp_path, config=ops_config(callee.address.port, grace=120.0)
        )
        try:
            v1 = await session_v1(handle)
            held = await caller.call(sip_address(handle), v1)
            assert answered(held), held.statuses

            handle.process.send_signal(signal.SIGTERM)
            await until(logged(handle, "draining"), "the drain")
            refused = await caller.call(sip_address(handle), v1)
            assert refused.status == 503, refused.statuses
            assert len(callee.incoming) == 1
            status, body = await asyncio.to_thread(
                http, handle.ports["api"], "GET", "/readyz", None, None
            )
            assert (status, body.get("status")) == (503, "draining")
            # Nor does the API open sessions no call could use on this node (issue 13).
            status, body = await asyncio.to_thread(
                http, handle.ports["api"], "POST", "/v1/sessions",
                {"participants": [{"identifier": CALLER}, {"identifier": "+919800000001"}]},
            )
            assert status == 503 and str(body.get("type", "")).endswith(":draining"), body
            assert handle.process.poll() is None  # the held call keeps it up

            assert await caller.hang_up(held) == 200  # its owner ends it within the grace
            assert await callee.wait(hung_up(callee))
            # Long before the 120 s grace: the process exits once no call is left.
            code = await asyncio.to_thread(handle.process.wait, STOP_BOUND)
            assert code == 0
        finally:
            callee.close()
            caller.close()
        return finish(handle)

    output = asyncio.run(main())
    assert "drained: no call in progress" in output


def test_drain_grace_over_ends_the_calls_left_with_bye(tmp_path):
    async def main() -> str:
        callee, caller = await phones(("callee", CALLEE), ("caller", CALLER))
        handle = await asyncio.to_thread(
            start, tmp_path, config=ops_config(callee.address.port, grace=0.5)
        )
        try:
            v1 = await session_v1(handle)
            held = await caller.call(sip_address(handle), v1)
            assert answered(held), held.statuses
            handle.process.send_signal(signal.SIGTERM)
            assert await caller.wait(lambda: held.ended_by_remote)
            assert await callee.wait(hung_up(callee))
            code = await asyncio.to_thread(handle.process.wait, STOP_BOUND)
            assert code == 0
        finally:
            callee.close()
            caller.close()
        return finish(handle)

    output = asyncio.run(main())
    assert "drain grace over: 1 call(s) left" in output


# --- /metrics and /readyz ----------------------------------------------------------------------


@needs_sipp
def test_metrics_move_after_a_sipp_call_and_carry_no_number(tmp_path):
    port = harness_free_port()
    config = harness_config([port]).replace(
        "[metrics]\nenabled = false", '[metrics]\nlisten = "127.0.0.1:0"'
    )
    with running_sipmask(tmp_path, config) as handle:
        before = scrape(handle)
        assert metric(before, 'sipmask_calls_total{outcome="completed"}') is None
        status, body = http(handle.ports["api"], "GET", "/readyz", token=None)
        assert (status, body) == (200, {"status": "ok"})
        session = create_session(handle.ports["api"])
        callee = start_callee(tmp_path, "callee0", "uas_basic.xml", port)
        caller = run_caller(
            tmp_path, "uac_basic.xml", sipmask_port=handle.ports["udp"],
            service=session.proxies[CALLER],
        )
        assert callee.wait() == 0, callee.diagnostics()
        assert caller.status == 0, caller.diagnostics()
        text = scrape(handle)
    assert metric(text, 'sipmask_calls_total{outcome="completed"}') == 1
    assert metric(text, "sipmask_calls_started_total") == 1
    assert metric(text, "sipmask_calls_answered_total") == 1
    assert metric(text, "sipmask_calls_active") == 0
    assert metric(text, "sipmask_store_lookup_seconds_count") == 1
    assert metric(text, 'sipmask_pool_numbers{pool="default",state="assignable"}') == 2
    assert metric(text, 'sipmask_sip_responses_total{code="200"}') >= 2  # INVITE and BYE
    assert (metric(text, "sipmask_sip_transactions_in_flight") or 0) >= 1  # Timer J/K linger
    for number in (CALLER, CALLEE):
        assert number[3:] not in text


# --- demo and Docker ---------------------------------------------------------------------------


def test_demo_exits_0_showing_only_virtual_numbers(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "sipmask", "demo"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, env=clean_env(), check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "OK:" in result.stdout
    for number in (CALLER, CALLEE):
        assert number[3:] not in output, "a real number in full"
    shown = set(re.findall(r"\+\d{7,}", result.stdout))
    assert shown == set(POOL_NUMBERS), shown  # the virtual numbers, and only they, in full
    assert "Traceback" not in output


def test_compose_file_parses_and_its_paths_exist():
    yaml = pytest.importorskip("yaml")
    compose_dir = ROOT / "docker"
    compose = yaml.safe_load((compose_dir / "compose.yaml").read_text())
    services = compose["services"]
    assert {"sipmask", "redis", "sipp-callee"} <= set(services)
    assert services["sipp-callee"]["profiles"] == ["demo"]
    build = services["sipmask"]["build"]
    context = (compose_dir / build["context"]).resolve()
    assert (context / build["dockerfile"]).is_file()
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith((".", "/")):
                assert (compose_dir / source).exists(), f"compose mounts missing {source}"
            else:
                assert source in compose["volumes"], f"undeclared volume {source}"
    mounted = compose_dir / "sipmask.toml"
    env = {**clean_env(), "SIPMASK_REDIS_URL": "redis://redis:6379/0"}
    check = subprocess.run(
        [sys.executable, "-m", "sipmask", "check-config", str(mounted)],
        capture_output=True, text=True, timeout=30, env=env, check=False,
    )
    assert check.returncode == 0, check.stderr
    assert services["sipmask"]["command"][-1] == "/etc/sipmask/sipmask.toml"
    assert os.path.basename(services["sipmask"]["volumes"][0].split(":")[1]) == "sipmask.toml"
