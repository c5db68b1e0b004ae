"""`sipmask session ...` and `sipmask pool ...`: the provisioning API from the command line
(issue 4). Each command sets `args.api_command` to the function that runs it.

The API's URL and token come from `--api`/`--token`, else `SIPMASK_API_TOKEN` (first token),
else the config file given with `-c` (`[api] listen` and its first token), else
`http://127.0.0.1:8080`. Output is readable with participants' numbers masked unless
`--show-numbers`; `--json` prints the API's JSON as it came. Exit status: 0 done, 1 the API
refused (its problem detail is printed), 2 a usage or connection error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from typing import Any

from .privacy import mask_numbers_in, mask_structure

DEFAULT_API = "http://127.0.0.1:8080"
ENV_API_TOKEN = "SIPMASK_API_TOKEN"

OK, API_ERROR, USAGE = 0, 1, 2


class _Usage(Exception):
    """A usage or connection problem: exit 2 with this message."""


class _Problem(Exception):
    """The API answered an error: exit 1."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


def add_api_commands(sub: Any) -> None:
    """Register the API commands on the `sipmask` subparsers (`sub`)."""
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("API access")
    group.add_argument("--api", metavar="URL",
                       help=f"the API's base URL (default: [api] listen of -c, else {DEFAULT_API})")
    group.add_argument("--token", help=f"bearer token (default: ${ENV_API_TOKEN}, else the "
                       "first token of -c)")
    group.add_argument("-c", "--config", metavar="FILE", help="take URL and token from this "
                       "configuration file")
    group.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                       help="HTTP timeout (default 10)")
    out = common.add_argument_group("output")
    out.add_argument("--json", action="store_true", help="print the API's JSON as it came")
    out.add_argument("--show-numbers", action="store_true",
                     help="print participants' numbers in full (masked by default)")

    session = sub.add_parser("session", help="open, show, list and close masking sessions")
    ssub = session.add_subparsers(dest="session_command", required=True)
    create = ssub.add_parser("create", parents=[common], help="open a session")
    create.add_argument("participants", nargs=2, metavar="PARTICIPANT",
                        help="E.164 number or SIP URI (two)")
    create.add_argument("--pool", default="default")
    create.add_argument("--ttl", type=int, help="seconds until expiry (API default 3600)")
    create.add_argument("--sliding", action="store_true",
                        help="sliding expiry: each call renews the ttl")
    create.add_argument("--call-time-limit", type=int, metavar="SECONDS", help="per call")
    create.add_argument("--ring-timeout", type=int, metavar="SECONDS")
    create.add_argument("--pin", nargs=2, action="append", metavar=("INDEX", "NUMBER"),
                        help="pin a pool number for participant 1 or 2 (repeatable)")
    create.add_argument("--metadata", metavar="JSON", help="a JSON object kept with the session")
    create.add_argument("--record", action="store_true",
                        help="record the session's calls (media anchored through rtpengine)")
    create.add_argument("--announcement", metavar="NAME",
                        help="a prompt of [media.announcements] played to the caller first")
    create.set_defaults(api_command=_session_create)
    show = ssub.add_parser("show", parents=[common], help="show a session")
    show.add_argument("id")
    show.add_argument("--interactions", action="store_true", help="also its call records")
    show.set_defaults(api_command=_session_show)
    listing = ssub.add_parser("list", parents=[common], help="list open sessions")
    listing.add_argument("--participant", help="of this participant")
    listing.add_argument("--pool", help="of this pool")
    listing.set_defaults(api_command=_session_list)
    close = ssub.add_parser("close", parents=[common], help="close a session")
    close.add_argument("id")
    close.set_defaults(api_command=_session_close)

    pool = sub.add_parser("pool", help="show and set number pools")
    psub = pool.add_subparsers(dest="pool_command", required=True)
    pshow = psub.add_parser("show", parents=[common], help="a pool's numbers (all pools' "
                            "names without NAME)")
    pshow.add_argument("name", nargs="?")
    pshow.set_defaults(api_command=_pool_show)
    pset = psub.add_parser("set", parents=[common], help="create a pool or replace its numbers")
    pset.add_argument("name")
    pset.add_argument("numbers", nargs="*", metavar="NUMBER", help="assignable numbers")
    pset.add_argument("--reserved", nargs="+", default=[], metavar="NUMBER",
                      help="numbers assigned only when pinned")
    pset.set_defaults(api_command=_pool_set)


# --- plumbing ----------------------------------------------------------------------------------


def _endpoint(args: argparse.Namespace) -> tuple[str, str | None]:
    """(base URL, token) from the flags, the environment and the config file."""
    url, token = args.api, args.token
    if token is None:
        env = os.environ.get(ENV_API_TOKEN, "")
        token = next((t.strip() for t in env.split(",") if t.strip()), None)
    if args.config and (url is None or token is None):
        from .config import ConfigError, load_config

        try:
            config = load_config(args.config)
        except ConfigError as e:
            raise _Usage("\n  ".join([f"{args.config}: {len(e.errors)} error(s)", *e.errors]))
        except OSError as e:
            raise _Usage(f"{args.config}: cannot read: {e.strerror or e}") from None
        if url is None:
            url = "http://" + _client_hostport(config.api.listen)
        if token is None and config.api.tokens:
            token = config.api.tokens[0]
    url = (url or DEFAULT_API).rstrip("/")
    if not url.startswith(("http://", "https://")):
        url = "http://" + url
    return url, token


def _client_hostport(listen: str) -> str:
    """`[api] listen` as a client reaches it: a wildcard address means this machine."""
    host, _, port = listen.rpartition(":")
    host = {"0.0.0.0": "127.0.0.1", "[::]": "[::1]"}.get(host, host)
    return f"{host}:{port}"


def _call(args: argparse.Namespace, method: str, path: str, body: Any = None) -> Any:
    """One API request; the decoded JSON answer (None for 204). Raises _Problem, _Usage."""
    base, token = _endpoint(args)
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method)
    request.add_header("Accept", "application/json")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=args.timeout) as resp:
            raw = resp.read()
    except urllib.error.HTTPError as e:
        raise _Problem(e.code, e.read()) from None
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or e
        raise _Usage(f"cannot reach the API at {base}: {reason}") from None
    return json.loads(raw) if raw else None


def _run(args: argparse.Namespace, work: Any) -> int:
    """Run `work()`, turning problems into messages and exit statuses."""
    try:
        result = work()
    except _Usage as e:
        print(f"sipmask {args.command}: {e}", file=sys.stderr)
        return USAGE
    except _Problem as e:
        _print_problem(args, e)
        return API_ERROR
    if args.json and result is not None:
        print(json.dumps(result, indent=2))
    return OK


def _print_problem(args: argparse.Namespace, e: _Problem) -> None:
    try:
        problem = json.loads(e.body)
    except ValueError:
        problem = None
    if args.json and isinstance(problem, dict):
        print(json.dumps(problem, indent=2))
    if not isinstance(problem, dict):
        text = e.body.decode("utf-8", "replace").strip()[:200]
        print(f"error: HTTP {e.status}{': ' + mask_numbers_in(text) if text else ''}",
              file=sys.stderr)
        return
    line = f"error: {problem.get('status', e.status)} {problem.get('title', '')}".rstrip()
    if problem.get("detail"):
        line += f": {problem['detail']}"
    where = problem.get("field") or problem.get("parameter")
    if where:
        line += f" (at {where})"
    kind = str(problem.get("type", ""))
    if kind.startswith("urn:sipmask:problem:"):
        line += f" [{kind.rsplit(':', 1)[1]}]"
    print(mask_numbers_in(line), file=sys.stderr)


def _party(args: argparse.Namespace, text: str | None) -> str:
    if text is None:
        return "-"
    return text if args.show_numbers else mask_numbers_in(text)


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _print_session(args: argparse.Namespace, s: dict[str, Any]) -> None:
    status = s.get("status", "?")
    if s.get("closed_reason"):
        status += f" ({s['closed_reason']} {_when(s.get('closed_at'))})"
    print(f"session  {s['id']}  {status}")
    print(f"  pool {s.get('pool')}, created {_when(s.get('created_at'))}, expires "
          f"{_when(s.get('expires_at'))} ({s.get('expiry')}, ttl {s.get('ttl')} s)")
    limits = []
    if s.get("call_time_limit") is not None:
        limits.append(f"call time limit {s['call_time_limit']} s")
    if s.get("ring_timeout") is not None:
        limits.append(f"ring timeout {s['ring_timeout']} s")
    if limits:
        print("  " + ", ".join(limits))
    for label, p in zip(("A", "B"), s.get("participants", ()), strict=False):
        route = f"  route {p['route']}" if p.get("route") else ""
        # Virtual numbers are the operator's own: shown as they are.
        print(f"  {label}  {_party(args, p.get('identifier')):<24} dials "
              f"{p.get('proxy_identifier')}{route}")
    if s.get("metadata"):
        # Masked field by field (ids whole), not as one line of JSON text.
        metadata = s["metadata"] if args.show_numbers else mask_structure(s["metadata"])
        print("  metadata " + json.dumps(metadata))


# --- commands ----------------------------------------------------------------------------------


def _session_create(args: argparse.Namespace) -> int:
    def work() -> Any:
        participants: list[dict[str, Any]] = [{"identifier": p} for p in args.participants]
        for index, number in args.pin or ():
            if index not in ("1", "2"):
                raise _Usage(f"--pin: participant index is 1 or 2, not {index!r}")
            participants[int(index) - 1]["proxy_identifier"] = number
        body: dict[str, Any] = {"participants": participants, "pool": args.pool}
        if args.ttl is not None:
            body["ttl"] = args.ttl
        if args.sliding:
            body["expiry"] = "sliding"
        if args.call_time_limit is not None:
            body["call_time_limit"] = args.call_time_limit
        if args.ring_timeout is not None:
            body["ring_timeout"] = args.ring_timeout
        if args.record:
            body["record"] = True
        if args.announcement is not None:
            body["announcement"] = args.announcement
        if args.metadata is not None:
            try:
                body["metadata"] = json.loads(args.metadata)
            except ValueError as e:
                raise _Usage(f"--metadata: not JSON ({e})") from None
        session = _call(args, "POST", "/v1/sessions", body)
        if not args.json:
            _print_session(args, session)
        return session

    return _run(args, work)


def _quote(part: str) -> str:
    return urllib.parse.quote(part, safe="")


def _session_show(args: argparse.Namespace) -> int:
    def work() -> Any:
        session = _call(args, "GET", f"/v1/sessions/{_quote(args.id)}")
        interactions = None
        if args.interactions:
            interactions = _call(args, "GET", f"/v1/sessions/{_quote(args.id)}/interactions")
            session = {**session, "interactions": interactions["interactions"]}
        if not args.json:
            _print_session(args, session)
            for i in (interactions or {}).get("interactions", ()):
                print(f"  call {i['id']}  {_when(i.get('started_at'))}  "
                      f"{_party(args, i.get('caller'))} -> {_party(args, i.get('callee'))}  "
                      f"{i.get('status')}{' ' + str(i['cause']) if i.get('cause') else ''}")
        return session

    return _run(args, work)


def _session_list(args: argparse.Namespace) -> int:
    def work() -> Any:
        query = {k: v for k, v in (("participant", args.participant), ("pool", args.pool)) if v}
        path = "/v1/sessions" + ("?" + urllib.parse.urlencode(query) if query else "")
        answer = _call(args, "GET", path)
        if not args.json:
            sessions = answer.get("sessions", [])
            for s in sessions:
                parts = "  ".join(
                    f"{_party(args, p.get('identifier'))} via {p.get('proxy_identifier')}"
                    for p in s.get("participants", ())
                )
                print(f"{s['id']}  {s.get('status')}  expires {_when(s.get('expires_at'))}  "
                      f"{parts}")
            print(f"{len(sessions)} open session(s)")
        return answer

    return _run(args, work)


def _session_close(args: argparse.Namespace) -> int:
    def work() -> Any:
        session = _call(args, "DELETE", f"/v1/sessions/{_quote(args.id)}")
        if not args.json:
            _print_session(args, session)
        return session

    return _run(args, work)


def _pool_show(args: argparse.Namespace) -> int:
    def work() -> Any:
        if args.name is None:
            answer = _call(args, "GET", "/v1/pools")
            if not args.json:
                readonly = set(answer.get("readonly", ()))
                for name in answer.get("pools", ()):
                    note = "  (read-only: from the config file)" if name in readonly else ""
                    print(f"{name}{note}")
            return answer
        pool = _call(args, "GET", f"/v1/pools/{_quote(args.name)}")
        if not args.json:
            _print_pool(pool)
        return pool

    return _run(args, work)


def _print_pool(pool: dict[str, Any]) -> None:
    print(f"pool  {pool['name']}")
    for key in ("numbers", "reserved", "draining"):
        numbers = pool.get(key) or []
        print(f"  {key:<9}{len(numbers):>4}  {' '.join(numbers)}".rstrip())


def _pool_set(args: argparse.Namespace) -> int:
    def work() -> Any:
        body = {"numbers": args.numbers, "reserved": args.reserved}
        pool = _call(args, "PUT", f"/v1/pools/{_quote(args.name)}", body)
        if not args.json:
            _print_pool(pool)
        return pool

    return _run(args, work)
