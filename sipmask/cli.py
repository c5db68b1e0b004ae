"""The `sipmask` command line.

`sipmask run` starts the process (`sipmask.server.serve`: store, API, metrics, SIP listeners
and the masking B2BUA; SIGHUP reloads the file, SIGTERM drains; docs/running.md). `sipmask
demo` shows one masked call end to end on this machine. `sipmask selfcheck` runs the core
self-check.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence

from . import __version__, _core, samples
from .config import ConfigError, default_config, load_config
from .errors import ParseError
from .privacy import mask_number, mask_numbers_in
from .transport import runtime
from .transport.runtime import loop_name


def selfcheck(out=None) -> int:  # type: ignore[no-untyped-def]
    """Parse a sample carrier INVITE, rebuild its SDP through the allow-list, check that the
    caller's real number is gone from it, and time the parser. Returns an exit status."""
    out = out or sys.stdout
    msg = _core.parse(samples.INVITE)
    assert isinstance(msg, _core.Request)
    caller = samples.REAL_CALLER
    print(f"sipmask {__version__} core self-check (event loop: {loop_name()})", file=out)
    print(f"  parsed   {msg.method} to {mask_number(msg.parsed_uri.user or '')}, "
          f"{len(msg.header_items())} header fields, {len(msg.body)} octets of SDP", file=out)
    print(f"  caller   {mask_number(caller)} (P-Asserted-Identity), "
          f"from-tag {msg.from_tag}, CSeq {msg.cseq}", file=out)
    sdp = _core.find_sdp(msg.header("content-type"), msg.body)
    rebuilt = _core.SdpOrigin("192.0.2.1").rebuild(sdp or b"")
    leaked = caller.encode() in rebuilt or caller[1:].encode() in rebuilt
    print(f"  SDP      {len(sdp or b'')} -> {len(rebuilt)} octets through the allow-list; "
          f"real number {'LEAKED' if leaked else 'absent'}", file=out)
    rounds = 20000
    start = time.perf_counter()
    for _ in range(rounds):
        _core.parse(samples.INVITE)
    per = (time.perf_counter() - start) / rounds
    print(f"  speed    {1 / per:,.0f} INVITEs parsed per second ({per * 1e6:.2f} us each)",
          file=out)
    try:
        _core.parse(samples.INVITE.replace(b"CSeq: 314159 INVITE", b"CSeq: 314159 BYE"))
    except ParseError as e:
        print(f"  reject   malformed INVITE -> {e.status_code} ({e.reason})", file=out)
    else:
        print("  reject   malformed INVITE was ACCEPTED", file=out)
        return 1
    return 1 if leaked else 0


def parse_file(path: str, out=None, *, show_numbers: bool = False) -> int:  # type: ignore[no-untyped-def]
    """Print what sipmask reads in a SIP message file, as JSON, phone numbers masked unless
    `show_numbers`."""
    out = out or sys.stdout
    with open(path, "rb") as f:
        data = f.read()
    try:
        msg = _core.parse(data)
    except ParseError as e:
        print(json.dumps({"error": e.reason, "status_code": e.status_code}), file=out)
        return 1
    info: dict[str, object] = {"request": msg.is_request}
    if isinstance(msg, _core.Request):
        info.update(method=msg.method, uri=msg.uri)
    elif isinstance(msg, _core.Response):
        info.update(status=msg.status, reason=msg.reason)
    info.update(
        call_id=msg.call_id,
        cseq=str(msg.cseq) if msg.cseq else None,
        from_tag=msg.from_tag,
        to_tag=msg.to_tag,
        via=[str(v) for v in msg.via],
        headers=[name for name, _ in msg.header_items()],
        body_length=len(msg.body),
    )
    text = json.dumps(info, indent=2)
    print(text if show_numbers else mask_numbers_in(text), file=out)
    return 0


def check_config(path: str, out=None, err=None) -> int:  # type: ignore[no-untyped-def]
    """Validate a configuration file: a one-line summary and 0, or every error with its key
    path and 2."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        config = load_config(path)
    except ConfigError as e:
        print(f"{path}: {len(e.errors)} error(s)", file=err)
        for line in e.errors:
            print(f"  {line}", file=err)
        return 2
    except OSError as e:
        print(f"{path}: cannot read: {e.strerror or e}", file=err)
        return 2
    print(f"{path}: OK: {config.summary()}", file=out)
    return 0


def run_server(path: str | None, workers: int | None = None, out=None, err=None) -> int:  # type: ignore[no-untyped-def]
    """`sipmask run`: load the config (the embedded default without `path`), print its
    summary, serve until SIGINT or a drained SIGTERM (SIGHUP re-reads `path`). Prints
    `listening <kind> <host> <port>` for each listener, then `ready`, to `out`. Returns 0
    after a clean stop, 2 for a bad configuration, 1 when the process could not start."""
    out = out or sys.stdout
    err = err or sys.stderr
    source = path or "<embedded default>"
    try:
        config = load_config(path, workers=workers) if path else default_config(workers=workers)
    except ConfigError as e:
        print(f"{source}: {len(e.errors)} error(s)", file=err)
        for line in e.errors:
            print(f"  {line}", file=err)
        return 2
    except OSError as e:
        print(f"{source}: cannot read: {e.strerror or e}", file=err)
        return 2
    from .server import configure_logging, serve  # aiohttp is imported only to serve
    from .store import StoreError

    configure_logging(config.logging, err)
    print(f"sipmask {__version__} ({loop_name()}): {config.summary()}", file=out, flush=True)

    def listening(kind: str, address) -> None:  # type: ignore[no-untyped-def]
        print(f"listening {kind} {address.host} {address.port}", file=out, flush=True)

    def ready() -> None:
        print("ready", file=out, flush=True)

    log = logging.getLogger("sipmask.cli")
    try:
        if config.process.workers > 1:
            from .supervisor import run_workers

            return run_workers(config, path, config.process.workers, listening=listening,
                               ready=ready)
        runtime.run(serve(config, config_path=path, ready=ready, listening=listening))
    except OSError as e:
        log.error("cannot start: %s", e.strerror or e)
        return 1
    except StoreError as e:
        log.error("cannot start: store: %s", e)
        return 1
    except RuntimeError as e:  # a worker failed to start
        log.error("cannot start: %s", e)
        return 1
    except KeyboardInterrupt:  # SIGINT before the handlers were installed
        return 130
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sipmask", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run sipmask (store, API, SIP listeners)")
    run.add_argument("-c", "--config", help="configuration file (the embedded default if none)")
    run.add_argument("--workers", type=int, metavar="N",
                     help="worker processes (overrides [process] workers; more than one "
                          "needs the Redis store)")
    sub.add_parser("selfcheck", help="parse, mask-rebuild and time a sample INVITE")
    parse = sub.add_parser("parse", help="show what sipmask reads in a SIP message file")
    parse.add_argument("file")
    parse.add_argument("--show-numbers", action="store_true",
                       help="print phone numbers in full (they are masked by default)")
    check = sub.add_parser("check-config", help="validate a configuration file")
    check.add_argument("file")
    sub.add_parser("version", help="print the version")
    sub.add_parser("demo", help="show one masked call end to end on this machine")
    from .cli_api import add_api_commands  # session/pool commands against a running API

    add_api_commands(sub)
    args = parser.parse_args(argv)
    if getattr(args, "api_command", None) is not None:
        return int(args.api_command(args))
    if args.command == "version":
        print(f"sipmask {__version__} (event loop: {loop_name()})")
        return 0
    if args.command == "check-config":
        return check_config(args.file)
    if args.command == "parse":
        return parse_file(args.file, show_numbers=args.show_numbers)
    if args.command == "run":
        return run_server(args.config, args.workers)
    if args.command == "demo":
        from .demo import run_demo

        return run_demo()
    return selfcheck()


if __name__ == "__main__":
    sys.exit(main())
