"""`sipmask session|pool ...` against a real API server on 127.0.0.1 (a MemoryStore served by
aiohttp in a thread of its own, so the blocking CLI can call it from the test thread), and as
a subprocess (`python -m sipmask`) at least once."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web
from api_helpers import ALICE, BOB, CAROL, TOKEN, V

from sipmask.api import MaskingAccessLogger, make_app
from sipmask.cli import main
from sipmask.store import MemoryStore

ROOT = Path(__file__).resolve().parents[2]


class ApiThread:
    """The API over a MemoryStore, served on a free port by a loop in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self.store = MemoryStore()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._start())
        self._ready.set()
        self.loop.run_forever()

    async def _start(self) -> None:
        await self.store.set_pool("default", V[:4])
        await self.store.set_pool("config", [V[9]])
        app = make_app(self.store, tokens=[TOKEN], readonly_pools={"config"})
        self.runner = web.AppRunner(app, access_log_class=MaskingAccessLogger)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def start(self) -> None:
        self._thread.start()
        assert self._ready.wait(20), "API did not start"

    def run(self, coro):  # type: ignore[no-untyped-def]
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(20)

    def stop(self) -> None:
        self.run(self.runner.cleanup())
        self.run(self.store.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(20)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def api() -> Iterator[ApiThread]:
    server = ApiThread()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def no_env_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIPMASK_API_TOKEN", raising=False)


def cli(api: ApiThread, capsys: pytest.CaptureFixture[str], *argv: str,
        auth: bool = True) -> tuple[int, str, str]:
    flags = ["--api", api.url] + (["--token", TOKEN] if auth else [])
    code = main([*argv, *flags])
    out, err = capsys.readouterr()
    return code, out, err


def test_session_lifecycle_readable_and_masked(api: ApiThread, capsys) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli(api, capsys, "session", "create", ALICE, BOB, "--ttl", "600",
                         "--call-time-limit", "900", "--metadata", '{"order": "A-1027"}')
    assert (code, err) == (0, "")
    sid = out.split()[1]
    session = api.run(api.store.get_session(sid))
    assert session.call_time_limit == 900 and session.ttl == 600
    assert session.metadata == {"order": "A-1027"}
    numbers = [p.proxy_identifier for p in session.participants]
    assert ALICE not in out and BOB not in out  # masked by default
    assert "+91******3210" in out and all(n in out for n in numbers)
    assert "call time limit 900 s" in out

    code, out, _ = cli(api, capsys, "session", "show", sid, "--show-numbers")
    assert code == 0 and ALICE in out and BOB in out

    code, out, _ = cli(api, capsys, "session", "list", "--participant", ALICE)
    assert code == 0 and sid in out and ALICE not in out and "1 open session(s)" in out

    code, out, _ = cli(api, capsys, "session", "close", sid)
    assert code == 0 and "closed" in out
    assert api.run(api.store.lookup(numbers[0], session.participants[0].key)) is None
    code, out, _ = cli(api, capsys, "session", "list", "--participant", ALICE)
    assert code == 0 and sid not in out


def test_json_is_the_api_answer(api: ApiThread, capsys) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli(api, capsys, "session", "create", ALICE, CAROL, "--sliding",
                       "--pin", "2", V[3], "--json")
    assert code == 0
    body = json.loads(out)
    assert body["expiry"] == "sliding"
    assert [p["identifier"] for p in body["participants"]] == [ALICE, CAROL]
    assert body["participants"][1]["proxy_identifier"] == V[3]
    code, out, _ = cli(api, capsys, "session", "show", body["id"], "--json", "--interactions")
    assert code == 0 and json.loads(out)["interactions"] == []
    code, out, _ = cli(api, capsys, "session", "list", "--pool", "default", "--json")
    assert body["id"] in [s["id"] for s in json.loads(out)["sessions"]]
    cli(api, capsys, "session", "close", body["id"])


def test_create_with_recording(api: ApiThread, capsys) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli(api, capsys, "session", "create", ALICE, CAROL, "--record", "--json")
    assert code == 0 and json.loads(out)["record"] is True
    cli(api, capsys, "session", "close", json.loads(out)["id"])
    code, out, _ = cli(api, capsys, "session", "create", ALICE, CAROL, "--json")
    assert code == 0 and json.loads(out)["record"] is False


def test_pools(api: ApiThread, capsys) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli(api, capsys, "pool", "set", "city", V[5], V[6], "--reserved", V[7])
    assert code == 0 and V[5] in out and V[7] in out
    pool = api.run(api.store.get_pool("city"))
    assert (pool.numbers, pool.reserved) == ((V[5], V[6]), (V[7],))
    code, out, _ = cli(api, capsys, "pool", "show", "city", "--json")
    assert code == 0 and json.loads(out)["numbers"] == [V[5], V[6]]
    code, out, _ = cli(api, capsys, "pool", "show")
    assert code == 0 and "city" in out and "config  (read-only" in out
    # A pool of the config file is read-only: the API's problem, exit 1.
    code, out, err = cli(api, capsys, "pool", "set", "config", V[8])
    assert code == 1 and "409" in err and "pool-readonly" in err and out == ""


def test_api_errors_exit_1_with_the_problem(api: ApiThread, capsys) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli(api, capsys, "session", "create", ALICE, "+919999")
    assert code == 1 and out == ""
    assert "422" in err and "$.participants[1].identifier" in err and "invalid-number" in err
    code, _, err = cli(api, capsys, "session", "show", "default.nope")
    assert code == 1 and "404" in err and "session-not-found" in err
    code, out, _ = cli(api, capsys, "session", "show", "default.nope", "--json")
    assert code == 1 and json.loads(out)["status"] == 404
    code, _, err = cli(api, capsys, "session", "list", auth=False)
    assert code == 1 and "401" in err
    # The detail of a refusal never prints a real number in full.
    cli(api, capsys, "pool", "set", "tiny", V[8])
    assert cli(api, capsys, "session", "create", ALICE, BOB, "--pool", "tiny")[0] == 0
    code, _, err = cli(api, capsys, "session", "create", ALICE, CAROL, "--pool", "tiny")
    assert code == 1 and "pool-exhausted" in err and ALICE not in err


def test_usage_and_connection_errors_exit_2(api: ApiThread, capsys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    code, _, err = cli(api, capsys, "session", "create", ALICE, BOB, "--metadata", "{nope")
    assert code == 2 and "--metadata" in err
    code, _, err = cli(api, capsys, "session", "create", ALICE, BOB, "--pin", "3", V[0])
    assert code == 2 and "--pin" in err
    with pytest.raises(SystemExit) as exit_info:  # argparse: a missing participant
        main(["session", "create", ALICE])
    assert exit_info.value.code == 2
    capsys.readouterr()
    # Nothing listens on a port just closed.
    code = main(["session", "list", "--api", "http://127.0.0.1:1", "--token", TOKEN])
    assert code == 2 and "cannot reach the API" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text("[api]\nlisten = 'nowhere'\n")
    assert main(["session", "list", "-c", str(bad)]) == 2
    assert "api.listen" in capsys.readouterr().err


def test_url_and_token_from_config_file_and_env(api: ApiThread, capsys, tmp_path,  # type: ignore[no-untyped-def]
                                                monkeypatch) -> None:
    conf = tmp_path / "sipmask.toml"
    conf.write_text(f'[api]\nlisten = "127.0.0.1:{api.port}"\ntokens = ["{TOKEN}", "other"]\n')
    assert main(["pool", "show", "default", "-c", str(conf)]) == 0
    assert V[0] in capsys.readouterr().out
    # SIPMASK_API_TOKEN wins over the file (as for the server), and --token over both.
    monkeypatch.setenv("SIPMASK_API_TOKEN", "wrong")
    assert main(["pool", "show", "default", "-c", str(conf)]) == 1
    assert "401" in capsys.readouterr().err
    assert main(["pool", "show", "default", "-c", str(conf), "--token", TOKEN]) == 0
    monkeypatch.setenv("SIPMASK_API_TOKEN", f"{TOKEN},x")
    assert main(["pool", "show", "default", "--api", api.url]) == 0
    capsys.readouterr()


def test_as_a_subprocess(api: ApiThread) -> None:
    env = {**os.environ, "SIPMASK_API_TOKEN": TOKEN}
    base = [sys.executable, "-m", "sipmask"]
    created = subprocess.run(
        [*base, "session", "create", ALICE, BOB, "--api", api.url, "--json"],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=60,
    )
    assert created.returncode == 0, created.stderr
    sid = json.loads(created.stdout)["id"]
    shown = subprocess.run(
        [*base, "session", "show", sid, "--api", api.url],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=60,
    )
    assert shown.returncode == 0 and sid in shown.stdout and ALICE not in shown.stdout
    closed = subprocess.run(
        [*base, "session", "close", sid, "--api", api.url, "--token", "wrong"],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=60,
    )
    assert closed.returncode == 1 and "401" in closed.stderr
    assert api.run(api.store.get_session(sid)).status.value == "open"
