"""The TOML configuration: typed, validated before anything starts.

`load_config(path)` decodes the file with msgspec into the frozen Structs below and then runs
the checks msgspec cannot express (networks, listen specs, E.164 numbers, a number in two
pools, duplicate names, several workers without Redis). Every problem is collected, not just
the first, and each names its key path and the reason, e.g.

    trunks[1].inbound[0]: not an IP network ('10.0.0.300/8' does not appear to be ...)

They are raised together as one `ConfigError`. `default_config()` is the embedded default
(the same as `config/sipmask.toml`), so `sipmask run` works with no file at all.

Secrets may come from the environment instead of the file: `SIPMASK_API_TOKEN` (comma-separated
tokens) replaces `[api] tokens`, and `SIPMASK_REDIS_URL` replaces `[store] redis_url`.

Privacy: error messages never print a real phone number in full (values are passed through
`mask_numbers_in`); only pool numbers, the operator's own virtual numbers, are shown as written.
"""

from __future__ import annotations

import ipaddress
import os
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import msgspec
from msgspec import Meta

from .b2bua.settings import (
    DEFAULT_ALLOW_HEADERS,
    CallsConfig,
    Destination,
    Digest,
    MaskingConfig,
    MediaConfig,
    MediaSide,
    Name,
    NumberRules,
    RtpengineInstance,
    TrunkConfig,
    parse_destination,
    split_host_port,
)
from .privacy import mask_numbers_in
from .sip.timers import TimerConfig
from .transport.endpoint import ListenSpec, parse_hostport
from .transport.udp import Network

__all__ = [
    "ApiConfig",
    "CallsConfig",
    "Config",
    "ConfigError",
    "DEFAULT_ALLOW_HEADERS",
    "DEFAULT_TOML",
    "Destination",
    "Digest",
    "LoggingConfig",
    "MaskingConfig",
    "MediaConfig",
    "MediaSide",
    "MetricsConfig",
    "NumberRules",
    "PoolConfig",
    "ProcessConfig",
    "RtpengineInstance",
    "SipConfig",
    "StoreConfig",
    "TrunkConfig",
    "WebhooksConfig",
    "default_config",
    "load_config",
    "parse_config",
    "parse_destination",
]

ENV_API_TOKEN = "SIPMASK_API_TOKEN"
ENV_REDIS_URL = "SIPMASK_REDIS_URL"

# --- bounded scalar types ----------------------------------------------------------------------

_Workers = Annotated[int, Meta(ge=1, le=256)]
_GraceSeconds = Annotated[float, Meta(ge=0.0, le=86_400.0)]
_MessageSize = Annotated[int, Meta(ge=1_500, le=1_048_576)]
_Transactions = Annotated[int, Meta(ge=1, le=10_000_000)]
_RetryAfter = Annotated[int, Meta(ge=0, le=86_400)]
_IdleSeconds = Annotated[float, Meta(gt=0.0, le=86_400.0)]

# Headers the B2BUA always builds itself or that carry identities: listing them in the
# allow-list would let a real number cross, so the config refuses them (compact forms too).
NEVER_CROSS: frozenset[str] = frozenset(
    name.lower()
    for name in (
        "Via", "v", "From", "f", "To", "t", "Call-ID", "i", "CSeq", "Contact", "m",
        "Route", "Record-Route", "Max-Forwards", "Content-Length", "l",
        "P-Asserted-Identity", "P-Preferred-Identity", "Remote-Party-ID", "Identity", "y",
        "Identity-Info", "Diversion", "History-Info", "Referred-By", "b", "Refer-To", "r",
        "Reply-To", "Call-Info", "Alert-Info", "Error-Info", "Authorization",
        "Proxy-Authorization", "WWW-Authenticate", "Proxy-Authenticate", "Organization",
        "Subject", "s", "Server", "User-Agent", "Warning", "P-Charging-Vector",
        "P-Called-Party-ID", "P-Associated-URI", "Privacy", "Path", "Service-Route",
    )
)
REBUILT_HEADERS: frozenset[str] = frozenset(
    # The headers masking.py has a grammar for (full and compact forms); nothing else crosses.
    ("content-type", "c", "supported", "k", "require", "reason", "session-expires", "x",
     "min-se")
)
_TOKEN = re.compile(r"[A-Za-z0-9.!%*_+`'~-]+")  # RFC 3261 §25.1 token
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")
_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


# --- sections ----------------------------------------------------------------------------------


class SipConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`[sip]`: listeners, transaction timers and overload limits."""

    listen: tuple[str, ...] = ("udp:127.0.0.1:5060", "tcp:127.0.0.1:5060")
    """`transport:host:port` with transport udp, tcp or tls; host an IP literal (IPv6 in
    brackets); port 0 picks a free port."""
    advertise: str | None = None
    """Address put in Via/Contact instead of the bound one (behind NAT): `host` (each
    listener's own port) or `host:port`."""
    tls_cert: str | None = None
    """PEM certificate chain for `tls:` listeners."""
    tls_key: str | None = None
    """PEM private key for `tls:` listeners."""
    tls_ca: str | None = None
    """PEM certificates trusted for outbound TLS (`tls:` destinations); the system's
    trusted certificates when not set."""
    timers: TimerConfig = TimerConfig()
    """`[sip.timers]`: t1, t2, t4 and timer_d, seconds (RFC 3261 Table 4)."""
    max_message_size: _MessageSize = 65_535
    """Largest SIP message accepted, octets (UDP datagram or TCP frame)."""
    max_transactions: _Transactions = 10_000
    """Transactions in flight beyond which a new INVITE is refused statelessly."""
    overload_status: Literal[503, 500, 480] = 503
    """Status of that refusal (503 makes RFC 3263 clients fail over)."""
    retry_after: _RetryAfter = 5
    overload_lag: Annotated[float, Meta(ge=0.0, le=10.0)] = 0.05
    """Event-loop lag (seconds, smoothed) beyond which new INVITEs are refused with
    `overload_status` before any work is spent on them; 0 turns this off."""
    """Retry-After seconds on the refusal; 0 sends none."""
    tcp_idle_timeout: _IdleSeconds = 60.0
    """Seconds after which a silent TCP/TLS connection is closed."""
    max_connections: Annotated[int, Meta(ge=1, le=1_000_000)] = 10_000
    """Open TCP/TLS connections beyond which new ones are refused."""
    max_connections_per_source: Annotated[int, Meta(ge=1, le=1_000_000)] = 100
    """The same, from one IP address (one address cannot take every slot)."""
    tcp_message_timeout: Annotated[float, Meta(gt=0.0, le=3_600.0)] = 10.0
    """Seconds a begun TCP/TLS message may take to arrive completely (slowloris)."""
    tcp_max_buffered: Annotated[int, Meta(ge=65_536, le=1 << 32)] = 4 * 1024 * 1024
    """Octets of unfinished TCP/TLS messages held over all connections; the connection whose
    data would pass it is closed."""
    tcp_close_timeout: Annotated[float, Meta(gt=0.0, le=60.0)] = 1.0
    """Seconds a closing TCP/TLS connection gets for its goodbye (close_notify) at shutdown."""
    max_transactions_per_source: _Transactions | None = None
    """Server transactions in progress from one IP address beyond which its new INVITEs are
    refused like beyond `max_transactions`; none by default (a trunk is often one address)."""
    answer_timeout: Annotated[float, Meta(ge=1.0, le=3_600.0)] = 64.0
    """Seconds a non-INVITE request may wait for sipmask's answer before its transaction is
    freed (a backstop for bugs: sipmask answers at once or within Timer F)."""
    invite_answer_timeout: Annotated[float, Meta(ge=1.0, le=86_400.0)] = 900.0
    """Seconds an INVITE may wait for sipmask's final response, ringing included, before it
    is answered 500 and freed (keep it above `[calls] ring_timeout` and `timer_c`)."""
    unknown_source: Literal["drop", "reject"] = "drop"
    """Requests from an address outside every trunk's inbound networks: silently dropped, or
    rejected with 403 (dropping teaches a scanner nothing)."""

    def listen_specs(self) -> tuple[ListenSpec, ...]:
        """The listeners as `ListenSpec`s, with `advertise` applied (call on a checked
        config only)."""
        specs = []
        for text in self.listen:
            spec = ListenSpec.parse(text)
            advertise = None
            if self.advertise is not None:
                host, port = split_host_port(self.advertise)
                advertise = _join_hostport(host, port if port is not None else spec.bind.port)
            specs.append(ListenSpec.parse(text, advertise))
        return tuple(specs)


class ApiConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`[api]`: the HTTP provisioning API."""

    listen: str = "127.0.0.1:8080"
    """`host:port` of the API listener."""
    tokens: tuple[str, ...] = ()
    """Bearer tokens accepted; with none every call but /healthz answers 401.
    `SIPMASK_API_TOKEN` (comma-separated) replaces them."""
    max_body_bytes: Annotated[int, Meta(ge=1024, le=64 * 1024 * 1024)] = 4 * 1024 * 1024
    """Largest request body; a bigger one answers 413 (a pool of 100,000 numbers fits)."""
    max_json_depth: Annotated[int, Meta(ge=4, le=256)] = 32
    """Deepest nesting of arrays and objects in a body (metadata included); deeper: 422."""


class MetricsConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`[metrics]`: the Prometheus listener (no token, loopback by default)."""

    enabled: bool = True
    listen: str = "127.0.0.1:9090"


class StoreConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`[store]`: where sessions, pools and bindings live."""

    backend: Literal["memory", "redis"] = "memory"
    redis_url: str = "redis://127.0.0.1:6379/0"
    """Used when backend is redis; `SIPMASK_REDIS_URL` replaces it. The server (single), one
    seed node (cluster), or only the database, credentials and TLS (sentinel)."""
    redis_mode: Literal["single", "cluster", "sentinel"] = "single"
    """One Redis server, a Redis Cluster, or the master of a Sentinel service."""
    sentinels: tuple[str, ...] = ()
    """`host:port` of the Sentinels to ask for the master (redis_mode sentinel)."""
    sentinel_service: Annotated[str, Meta(min_length=1, max_length=256)] = "mymaster"
    """The master's name at the Sentinels."""
    data_dir: str = "var/sipmask"
    """The memory store's journal directory, relative to the working directory; "" keeps
    everything in memory only (lost on restart)."""


class PoolConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`[[pools]]`: a named set of virtual numbers (E.164). Pools declared here are read-only
    through the API."""

    name: Name
    numbers: tuple[str, ...] = ()
    """Numbers the allocation rule may assign."""
    reserved: tuple[str, ...] = ()
    """Numbers never auto-assigned, only pinned at session creation."""
    announcement: Name | None = None
    """With media anchored: the name of a `[media.announcements]` prompt played to the
    caller of this pool's sessions before the parties are bridged (docs/media.md)."""


class WebhooksConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`[webhooks]`: session and call events POSTed to the platform, and the two synchronous
    hooks the call path may ask (docs/config.md). Every request is signed with `secret`."""

    url: str | None = None
    """Where events (`session.created`, `call.ended`...) are POSTed; none sends no events."""
    secret: str = ""
    """HMAC-SHA256 key of the `X-Sipmask-Signature` header; required with any URL."""
    timeout_ms: Annotated[int, Meta(ge=10, le=10_000)] = 500
    """How long a call waits for the intercept or out-of-session hook before the default."""
    event_timeout_ms: Annotated[int, Meta(ge=100, le=60_000)] = 5_000
    """Timeout of one event POST."""
    retries: Annotated[int, Meta(ge=0, le=20)] = 5
    """Event POSTs retried after the first on a 5xx, 429, timeout or connection error, with
    exponential backoff (0.5 s doubling, at most 30 s)."""
    intercept_url: str | None = None
    """Asked before each call of an open session: allow or block."""
    intercept_on_failure: Literal["allow", "block"] = "allow"
    """The answer when the intercept hook fails or times out."""
    out_of_session_url: str | None = None
    """Asked for a call with no session binding: reject, fallback or create a session."""
    out_of_session_on_failure: str = "reject"
    """The answer when that hook fails: `"reject"` or a `sip:` URI to fall back to."""


class LoggingConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`[logging]`."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["json", "text"] = "json"
    show_numbers: bool = False
    """Log real numbers in full; they are masked (`+91******3210`) unless this is true."""


class ProcessConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`[process]`: workers and shutdown."""

    workers: _Workers = 1
    """Worker processes; more than one requires `[store] backend = "redis"`."""
    drain_grace: _GraceSeconds = 30.0
    """Seconds calls in progress may continue after SIGTERM before the process exits."""


class Config(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The whole configuration file."""

    sip: SipConfig = SipConfig()
    api: ApiConfig = ApiConfig()
    metrics: MetricsConfig = MetricsConfig()
    store: StoreConfig = StoreConfig()
    pools: tuple[PoolConfig, ...] = ()
    trunks: tuple[TrunkConfig, ...] = ()
    masking: MaskingConfig = MaskingConfig()
    calls: CallsConfig = CallsConfig()
    webhooks: WebhooksConfig = WebhooksConfig()
    logging: LoggingConfig = LoggingConfig()
    process: ProcessConfig = ProcessConfig()
    media: MediaConfig = MediaConfig()

    @property
    def readonly_pools(self) -> frozenset[str]:
        """Names of the pools declared here (the API refuses writes to them)."""
        return frozenset(pool.name for pool in self.pools)

    def summary(self) -> str:
        """One line for `sipmask check-config`."""
        numbers = sum(len(p.numbers) + len(p.reserved) for p in self.pools)
        return (
            f"{len(self.sip.listen)} SIP listener(s) ({', '.join(self.sip.listen)}), "
            f"{len(self.trunks)} trunk(s), {len(self.pools)} pool(s) with {numbers} number(s), "
            f"store {self.store.backend}, API on {self.api.listen}, "
            f"{self.process.workers} worker(s)"
        )


# --- errors ------------------------------------------------------------------------------------


class ConfigError(ValueError):
    """The configuration is invalid. `errors` lists every problem as `path: reason`."""

    def __init__(self, errors: list[str], source: str = "config") -> None:
        self.errors = list(errors)
        self.source = source
        lines = "\n".join(f"  {e}" for e in self.errors)
        super().__init__(f"{source}: {len(self.errors)} error(s)\n{lines}")


# --- addresses (parse_destination, split_host_port: b2bua/settings.py) -------------------------


def _join_hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# --- loading -----------------------------------------------------------------------------------


def load_config(
    path: str | os.PathLike[str],
    *,
    env: Mapping[str, str] | None = None,
    workers: int | None = None,
) -> Config:
    """Read, decode and check a TOML configuration file.

    Args:
        path: the file.
        env: environment for the secret overrides (`os.environ` when None).
        workers: the `--workers` of the command line, overriding `[process] workers`.

    Raises:
        ConfigError: every problem found, each as `key.path: reason`.
        OSError: the file cannot be read.
    """
    data = Path(path).read_bytes()
    return parse_config(data, env=env, workers=workers, source=str(path))


def default_config(
    *, env: Mapping[str, str] | None = None, workers: int | None = None
) -> Config:
    """The embedded default (`config/sipmask.toml`), with the environment overrides."""
    return parse_config(DEFAULT_TOML, env=env, workers=workers, source="<embedded default>")


def parse_config(
    data: str | bytes,
    *,
    env: Mapping[str, str] | None = None,
    workers: int | None = None,
    source: str = "config",
) -> Config:
    """Decode and check TOML text; see `load_config`."""
    try:
        raw = msgspec.toml.decode(data)
    except msgspec.DecodeError as exc:
        raise ConfigError([f"not valid TOML: {exc}"], source) from None
    env = os.environ if env is None else env
    errors: list[str] = []
    _apply_env(raw, env)
    if workers is not None:
        raw.setdefault("process", {})
        if isinstance(raw["process"], dict):
            raw["process"]["workers"] = workers
    kept: dict[str, list[int]] = {}
    cleaned = _validate(raw, Config, "", errors, kept)
    # The semantic checks run on what is left, so one run reports every error.
    config = msgspec.convert(cleaned, Config)
    _semantic(config, errors, env, kept, workers_from_cli=workers is not None)
    if errors:
        raise ConfigError(errors, source)
    return config


def _apply_env(raw: dict[str, Any], env: Mapping[str, str]) -> None:
    tokens = env.get(ENV_API_TOKEN)
    if tokens:
        api = raw.setdefault("api", {})
        if isinstance(api, dict):
            api["tokens"] = [t.strip() for t in tokens.split(",") if t.strip()]
    url = env.get(ENV_REDIS_URL)
    if url:
        store = raw.setdefault("store", {})
        if isinstance(store, dict):
            store["redis_url"] = url


# --- structural validation: every field on its own, so every error is reported -----------------

_AT = re.compile(r" - at `\$(.*)`$")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _struct_of(tp: Any) -> type[msgspec.Struct] | None:
    """The Struct type in `tp` or `tp | None`, else None."""
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return tp
    if typing.get_origin(tp) in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return _struct_of(args[0])
    return None


class _Bad:
    """Marks a value that failed validation (its error is already recorded)."""


_BAD = _Bad()
_INVALID_NAME = "--invalid-name--"


def _validate(value: Any, tp: Any, path: str, errors: list[str], kept: dict[str, list[int]]) -> Any:
    """Check `value` against `tp`, recording every error. Returns the value with the bad
    optional parts dropped (so their defaults apply and the semantic checks can still run),
    or `_BAD`. For arrays of tables, `kept[path]` lists the indices of the elements kept."""
    struct = _struct_of(tp)
    if struct is not None:
        return _validate_struct(value, struct, path, errors, kept)
    if typing.get_origin(tp) is tuple and isinstance(value, list):
        args = typing.get_args(tp)
        item = _struct_of(args[0]) if len(args) == 2 and args[1] is Ellipsis else None
        if item is not None:
            good, indices = [], []
            for i, element in enumerate(value):
                checked = _validate(element, item, f"{path}[{i}]", errors, kept)
                if checked is not _BAD:
                    good.append(checked)
                    indices.append(i)
            kept[path] = indices
            return good
    try:
        msgspec.convert(value, tp)
    except msgspec.ValidationError as exc:
        errors.append(_located(path, str(exc)))
        return _BAD
    return value


def _validate_struct(
    value: Any,
    struct: type[msgspec.Struct],
    path: str,
    errors: list[str],
    kept: dict[str, list[int]],
) -> Any:
    if not isinstance(value, dict):
        kind = "array" if isinstance(value, list) else type(value).__name__
        errors.append(f"{path or '(top level)'}: expected a table, got {kind}")
        return _BAD
    fields = {f.encode_name: f for f in msgspec.structs.fields(struct)}
    cleaned: dict[str, Any] = {}
    bad = False
    for key in value:
        if key not in fields:
            errors.append(mask_numbers_in(f"{_join(path, key)}: unknown key{_hint(key, fields)}"))
    for name, field in fields.items():
        if name in value:
            checked = _validate(value[name], field.type, _join(path, name), errors, kept)
            if checked is not _BAD:
                cleaned[name] = checked
            elif name == "name" and struct in (PoolConfig, TrunkConfig):
                # Keep checking the rest of this pool or trunk under a stand-in name.
                cleaned[name] = f"{_INVALID_NAME}{len(errors)}"
            elif field.required:
                bad = True
        elif field.required:
            errors.append(f"{_join(path, name)}: missing (required)")
            if name == "name" and struct in (PoolConfig, TrunkConfig):
                cleaned[name] = f"{_INVALID_NAME}{len(errors)}"
            else:
                bad = True
    if bad:
        return _BAD
    try:  # the fields are fine one by one; now the Struct's own checks (__post_init__)
        msgspec.convert(cleaned, struct)
    except msgspec.ValidationError as exc:
        errors.append(_located(path, str(exc)))
        return _BAD
    return cleaned


def _hint(key: str, fields: Mapping[str, Any]) -> str:
    fixed = key.replace("-", "_").lower()
    if fixed in fields:
        return f" (did you mean {fixed!r}?)"
    return f" (known keys: {', '.join(sorted(fields))})"


def _located(path: str, message: str) -> str:
    """'Expected `int` >= 1 - at `$.x[0]`' under `path` -> 'path.x[0]: expected `int` >= 1'."""
    match = _AT.search(message)
    if match:
        message = message[: match.start()]
        path = path + match.group(1) if path else match.group(1).lstrip(".")
    reason = mask_numbers_in(message[:1].lower() + message[1:])
    return f"{path or '(top level)'}: {reason}"


# --- semantic checks ---------------------------------------------------------------------------


def _semantic(
    config: Config,
    errors: list[str],
    env: Mapping[str, str],
    kept: dict[str, list[int]],
    *,
    workers_from_cli: bool = False,
) -> None:
    def err(path: str, reason: str) -> None:
        errors.append(f"{path}: {mask_numbers_in(reason)}")

    sip = config.sip
    if not sip.listen:
        err("sip.listen", "at least one listener is needed")
    seen_listen: dict[tuple[str, str, int], int] = {}
    has_tls = False
    for i, text in enumerate(sip.listen):
        try:
            spec = ListenSpec.parse(text)
            ipaddress.ip_address(spec.bind.host)
            if not 0 <= spec.bind.port <= 65535:
                raise ValueError(f"port must be 0-65535, got {spec.bind.port}")
        except ValueError as exc:
            err(f"sip.listen[{i}]", f"not a listen address ({_reason(exc)}); "
                "expected transport:ip:port, e.g. udp:127.0.0.1:5060")
            continue
        has_tls |= spec.transport == "tls"
        key = (spec.transport, spec.bind.host, spec.bind.port)
        if key in seen_listen and spec.bind.port != 0:
            err(f"sip.listen[{i}]", f"same as sip.listen[{seen_listen[key]}]")
        seen_listen.setdefault(key, i)
    if sip.advertise is not None:
        try:
            split_host_port(sip.advertise)
        except ValueError as exc:
            err("sip.advertise", f"not host or host:port ({_reason(exc)})")
    if has_tls and not (sip.tls_cert and sip.tls_key):
        err("sip.tls_cert", "a tls: listener needs tls_cert and tls_key")
    if bool(sip.tls_cert) != bool(sip.tls_key):
        err("sip.tls_key" if sip.tls_cert else "sip.tls_cert",
            "tls_cert and tls_key go together")

    api_from_env = bool(env.get(ENV_API_TOKEN))
    _check_hostport(config.api.listen, "api.listen", err)
    for i, token in enumerate(config.api.tokens):
        where = f"{ENV_API_TOKEN} token {i}" if api_from_env else f"api.tokens[{i}]"
        if not token or token != token.strip() or any(c.isspace() for c in token):
            err(where, "a token must be non-empty, without spaces")  # never print the token
    if config.metrics.enabled:
        _check_hostport(config.metrics.listen, "metrics.listen", err)

    store = config.store
    if not store.redis_url.startswith(_REDIS_SCHEMES):
        where = ENV_REDIS_URL if env.get(ENV_REDIS_URL) else "store.redis_url"
        # The URL may hold a password: name the problem, not the value.
        err(where, "must start with redis://, rediss:// or unix://")
    elif store.redis_mode != "single":
        where = ENV_REDIS_URL if env.get(ENV_REDIS_URL) else "store.redis_url"
        if store.redis_url.startswith("unix://"):
            err(where, f"redis_mode {store.redis_mode} needs redis:// or rediss://")
        elif store.redis_mode == "cluster":
            from urllib.parse import parse_qs, urlsplit

            parts = urlsplit(store.redis_url)
            db = parts.path.strip("/") or parse_qs(parts.query).get("db", [""])[0]
            if db not in ("", "0"):
                err(where, "a Redis Cluster has only database 0")
    if store.redis_mode == "sentinel" and not store.sentinels:
        err("store.sentinels", 'redis_mode "sentinel" needs at least one sentinel')
    if store.sentinels and store.redis_mode != "sentinel":
        err("store.sentinels", 'used only with redis_mode "sentinel"')
    for i, text in enumerate(store.sentinels):
        try:
            address = parse_hostport(text)
            if not 1 <= address.port <= 65535:
                raise ValueError(f"port must be 1-65535, got {address.port}")
        except ValueError as exc:
            err(f"store.sentinels[{i}]", f"not host:port ({_reason(exc)})")
    if config.process.workers > 1 and store.backend != "redis":
        where = "--workers" if workers_from_cli else "process.workers"
        err(where, f"{config.process.workers} workers need "
            'store.backend = "redis" (the memory store lives in one process)')

    _check_pools(config, kept.get("pools", list(range(len(config.pools)))), errors)
    for i, pool in zip(kept.get("pools", range(len(config.pools))), config.pools, strict=True):
        if pool.announcement is not None and pool.announcement not in config.media.announcements:
            err(f"pools[{i}].announcement", "not a name of [media.announcements]")
    _check_trunks(config, kept.get("trunks", list(range(len(config.trunks)))), err)

    for i, header in enumerate(config.masking.allow_headers):
        path = f"masking.allow_headers[{i}]"
        if not _TOKEN.fullmatch(header):
            err(path, f"not a header name: {header!r}")
        elif header.lower() in NEVER_CROSS:
            err(path, f"{header} is built by sipmask or carries identities; it never crosses")
        elif header.lower() not in REBUILT_HEADERS:
            # Only headers with a grammar to rebuild them from cross (issue 11): a name
            # outside it would be silently ignored, which an operator should hear about.
            err(path, f"sipmask has no grammar to rebuild {header} from; it never crosses")
    lowered = [h.lower() for h in config.masking.allow_headers]
    for i, h in enumerate(lowered):
        if h in lowered[:i]:
            err(f"masking.allow_headers[{i}]", "listed twice")
    for field_name in ("display_name", "user_agent"):
        value = getattr(config.masking, field_name)
        if any(c in value for c in '"\\') or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
            err(f"masking.{field_name}", "no quotes, backslashes or control characters")

    calls = config.calls
    if calls.fallback is not None:
        if not calls.fallback.lower().startswith(("sip:", "sips:")):
            err("calls.fallback", "must be a sip: or sips: URI")
    elif calls.no_binding == "fallback":
        err("calls.fallback", 'no_binding = "fallback" needs a fallback URI')

    _check_webhooks(config.webhooks, err)
    _check_media(config.media, err)


def _check_media(media: MediaConfig, err: Any) -> None:
    for i, instance in enumerate(media.rtpengine):
        _check_hostport(instance.address, f"media.rtpengine[{i}].address", err)
    if media.backend == "rtpengine" and not media.rtpengine:
        err("media.rtpengine", 'backend = "rtpengine" needs at least one [[media.rtpengine]]')
    if (media.caller.interface is None) != (media.callee.interface is None):
        err("media.callee.interface" if media.caller.interface else "media.caller.interface",
            "name both sides' interfaces or neither")


def _check_webhooks(hooks: WebhooksConfig, err: Any) -> None:
    urls = ("url", "intercept_url", "out_of_session_url")
    for key in urls:
        value = getattr(hooks, key)
        # A URL may hold credentials: name the problem, not the value.
        if value is not None and not re.fullmatch(r"https?://[^\s/?#]+[^\s]*", value):
            err(f"webhooks.{key}", "must be an http:// or https:// URL")
    if any(getattr(hooks, key) is not None for key in urls) and not hooks.secret:
        err("webhooks.secret", "required when a webhook URL is set (requests are signed)")
    if hooks.secret and any(c.isspace() for c in hooks.secret):
        err("webhooks.secret", "no spaces")  # never print the secret
    fallback = hooks.out_of_session_on_failure
    if fallback != "reject" and not fallback.lower().startswith(("sip:", "sips:")):
        err("webhooks.out_of_session_on_failure", '"reject" or a sip: or sips: URI')


def _reason(exc: Exception) -> str:
    return str(exc) or type(exc).__name__


def _check_hostport(text: str, path: str, err: Any) -> None:
    try:
        address = parse_hostport(text)
        ipaddress.ip_address(address.host)
        if not 0 <= address.port <= 65535:
            raise ValueError(f"port must be 0-65535, got {address.port}")
    except ValueError as exc:
        err(path, f"not ip:port ({_reason(exc)})")


def _check_pools(config: Config, index: list[int], errors: list[str]) -> None:
    # Pool numbers are the operator's own virtual numbers: shown as written.
    owner: dict[str, str] = {}
    names: dict[str, int] = {}
    for i, pool in zip(index, config.pools, strict=True):
        if pool.name.startswith(_INVALID_NAME):
            pass
        elif pool.name in names:
            errors.append(f"pools[{i}].name: duplicate pool name {pool.name!r} "
                          f"(also pools[{names[pool.name]}])")
        names.setdefault(pool.name, i)
        for key in ("numbers", "reserved"):
            for j, number in enumerate(getattr(pool, key)):
                path = f"pools[{i}].{key}[{j}]"
                if not _E164.fullmatch(number):
                    errors.append(f"{path}: not an E.164 number ({number!r}; expected + and "
                                  "up to 15 digits, e.g. +918000000001)")
                    continue
                if number in owner:
                    errors.append(f"{path}: {number} is already in {owner[number]}")
                    continue
                owner[number] = path


def _check_trunks(config: Config, index: list[int], err: Any) -> None:
    names: dict[str, int] = {}
    nets: list[tuple[Network, str]] = []
    for i, trunk in zip(index, config.trunks, strict=True):
        base = f"trunks[{i}]"
        if trunk.name.startswith(_INVALID_NAME):
            pass
        elif trunk.name in names:
            first = names[trunk.name]
            err(f"{base}.name", f"duplicate trunk name {trunk.name!r} (also trunks[{first}])")
        names.setdefault(trunk.name, i)
        for j, text in enumerate(trunk.inbound):
            path = f"{base}.inbound[{j}]"
            try:
                net = ipaddress.ip_network(text, strict=True)
            except ValueError as exc:
                err(path, f"not an IP network ({_reason(exc)})")
                continue
            for other, other_path in nets:
                if net.version == other.version and net.overlaps(other):
                    err(path, f"overlaps {other_path}: a source must name one trunk")
            nets.append((net, path))
        if not trunk.outbound and not trunk.inbound:
            err(base, "a trunk needs inbound networks, outbound destinations, or both")
        for j, text in enumerate(trunk.outbound):
            path = f"{base}.outbound[{j}]"
            try:
                parse_destination(text, trunk.transport)
            except ValueError as exc:
                err(path, f"not a destination ({_reason(exc)}); expected "
                    "[transport:]host[:port], e.g. udp:198.51.100.7:5060")
                continue
        if trunk.digest is not None and trunk.digest.realm == "":
            err(f"{base}.digest.realm", "empty; leave it out to answer any realm")


# --- the embedded default: keep equal to config/sipmask.toml (a test checks) -------------------

DEFAULT_TOML = """\
[sip]
listen = ["udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"]
max_message_size = 65535
max_transactions = 10000
overload_status = 503
retry_after = 5
tcp_idle_timeout = 60.0
unknown_source = "drop"

[sip.timers]
t1 = 0.5
t2 = 4.0
t4 = 5.0

[api]
listen = "127.0.0.1:8080"
tokens = ["change-me"]

[metrics]
enabled = true
listen = "127.0.0.1:9090"

[store]
backend = "memory"
redis_url = "redis://127.0.0.1:6379/0"
data_dir = "var/sipmask"

[[pools]]
name = "default"
numbers = ["+918000000001", "+918000000002"]
reserved = []

[[trunks]]
name = "carrier-a"
inbound = ["127.0.0.1/32"]
outbound = ["udp:127.0.0.1:5080"]
transport = "udp"
trusted_identity = false
assert_identity = false
probe_interval = 30.0

[trunks.number_rules]
country_code = "91"
national_prefix = "0"
international_prefix = "00"

[masking]
allow_headers = ["Content-Type", "Supported", "Session-Expires", "Min-SE", "Reason"]
display_name = ""
user_agent = ""

[logging]
level = "info"
format = "json"
show_numbers = false

[process]
workers = 1
drain_grace = 30.0
"""
