"""Checks shared by the vector suites (RFC 4475 and carrier traffic): compare a parsed message
with the fields its `expected.toml` entry names, collecting every mismatch at once."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sipmask

_FAILED = object()


def load_entries(folder: Path) -> dict[str, dict[str, Any]]:
    """The `[[vector]]` entries of `folder/expected.toml`, by file name."""
    entries = tomllib.loads((folder / "expected.toml").read_text("utf-8"))["vector"]
    return {entry["file"]: entry for entry in entries}


def resolve(obj: Any, path: str) -> Any:
    """Follow an attribute path such as 'contact[0].uri.params.lr' (see expected.toml)."""
    for step in path.split("."):
        index = None
        match = re.fullmatch(r"(.+)\[(\d+)\]", step)
        if match:
            step, index = match.group(1), int(match.group(2))
        obj = obj[step] if isinstance(obj, dict) else getattr(obj, step)
        if index is not None:
            obj = obj[index]
    return obj


def sdp_of(msg: sipmask.Message) -> bytes | None:
    return sipmask.find_sdp(msg.header("content-type"), msg.body)


def field_problems(msg: sipmask.Message, entry: dict[str, Any]) -> list[str]:
    """Every way `msg` differs from what `entry` expects (empty when it matches)."""
    problems: list[str] = []

    def check(what: str, got: Any, expected: Any) -> None:
        if got != expected:
            problems.append(f"{what}: expected {expected!r}, got {got!r}")

    def attempt(what: str, func: Callable[[], Any]) -> Any:
        try:
            return func()
        except Exception as exc:  # a crash is one more mismatch to report
            problems.append(f"{what}: raised {type(exc).__name__}: {exc}")
            return _FAILED

    def compare(what: str, func: Callable[[], Any], expected: Any) -> None:
        got = attempt(what, func)
        if got is not _FAILED:
            check(what, got, expected)

    expected_class = sipmask.Request if entry["kind"] == "request" else sipmask.Response
    check("class", type(msg), expected_class)
    check("version", msg.version, entry.get("version", "SIP/2.0"))
    simple: dict[str, Callable[[], Any]] = {
        "method": lambda: msg.method,
        "uri": lambda: msg.uri,
        "status": lambda: msg.status,
        "reason": lambda: msg.reason,
        "call_id": lambda: msg.call_id,
        "cseq_number": lambda: msg.cseq.number,
        "cseq_method": lambda: msg.cseq.method,
        "from_tag": lambda: msg.from_tag,
        "to_tag": lambda: msg.to_tag,
        "via_count": lambda: len(msg.via),
        "via_host": lambda: msg.top_via.host,
        "via_port": lambda: msg.top_via.port,
        "via_transport": lambda: msg.top_via.transport,
        "via_branch": lambda: msg.top_via.branch,
        "max_forwards": lambda: msg.max_forwards,
        "content_type": lambda: msg.content_type,
        "body_length": lambda: len(msg.body),
        "sdp_length": lambda: len(sdp_of(msg) or b""),
        "body": lambda: msg.body.decode(),
    }
    for key, get in simple.items():
        if key in entry:
            compare(key, get, entry[key])
    for path in entry.get("none", []):
        compare(path, lambda: resolve(msg, path), None)
    for path, expected in entry.get("attrs", {}).items():
        compare(path, lambda: resolve(msg, path), expected)
    for path, expected in entry.get("unescaped", {}).items():
        compare(f"unescape({path})", lambda: sipmask.unescape(resolve(msg, path)), expected)
    for path, expected in entry.get("len", {}).items():
        compare(f"len({path})", lambda: len(resolve(msg, path)), expected)
    for name, expected in entry.get("header", {}).items():
        check(f"header({name!r})", msg.header(name), expected)
    for name, expected in entry.get("headers", {}).items():
        check(f"headers({name!r})", msg.headers(name), expected)
    for name, expected in entry.get("count", {}).items():
        check(f"count({name!r})", msg.count(name), expected)
    return problems
