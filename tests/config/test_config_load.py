"""The TOML configuration: the sample, the defaults, every kind of error and its key path."""

from pathlib import Path

import msgspec
import pytest

from sipmask.config import (
    DEFAULT_ALLOW_HEADERS,
    Config,
    ConfigError,
    Destination,
    default_config,
    load_config,
    parse_config,
    parse_destination,
)
from sipmask.privacy import mask_number
from sipmask.sip.timers import TimerConfig
from sipmask.transport.endpoint import ListenSpec, parse_hostport

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "config" / "sipmask.toml"
NO_ENV: dict[str, str] = {}
REAL = "+919876543210"  # a "real" subscriber number that must never appear in full


def errors_of(text: str, **kwargs: object) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, env=kwargs.pop("env", NO_ENV), **kwargs)  # type: ignore[arg-type]
    return info.value.errors


def only_error(text: str, **kwargs: object) -> str:
    errors = errors_of(text, **kwargs)
    assert len(errors) == 1, errors
    return errors[0]


# --- the sample and the defaults ---------------------------------------------------------------


def test_sample_loads_with_the_shape_of_issue_7():
    config = load_config(SAMPLE, env=NO_ENV)
    assert config.sip.listen == ("udp:127.0.0.1:5060", "tcp:127.0.0.1:5060")
    assert config.api.listen == "127.0.0.1:8080"
    assert config.api.tokens == ("change-me",)
    assert config.store.backend == "memory"
    assert config.store.redis_url == "redis://127.0.0.1:6379/0"
    assert config.store.data_dir == "var/sipmask"
    [pool] = config.pools
    assert (pool.name, pool.numbers) == ("default", ("+918000000001", "+918000000002"))
    [trunk] = config.trunks
    assert trunk.name == "carrier-a"
    assert trunk.inbound == ("127.0.0.1/32",)
    assert trunk.outbound == ("udp:127.0.0.1:5080",)
    assert config.readonly_pools == {"default"}
    assert config.logging.show_numbers is False


def test_sample_and_embedded_default_are_equal():
    assert load_config(SAMPLE, env=NO_ENV) == default_config(env=NO_ENV)


def test_empty_file_is_valid_and_gives_the_defaults():
    config = parse_config("", env=NO_ENV)
    assert config == Config()
    assert config.sip.timers == TimerConfig()
    assert config.masking.allow_headers == DEFAULT_ALLOW_HEADERS
    assert config.pools == () and config.trunks == ()
    assert config.api.tokens == ()
    assert config.process.workers == 1


def test_config_is_frozen():
    config = default_config(env=NO_ENV)
    with pytest.raises(AttributeError):
        config.sip = None  # type: ignore[misc]


def test_listen_specs_feed_the_transport():
    config = default_config(env=NO_ENV)
    assert config.sip.listen_specs() == (
        ListenSpec.parse("udp:127.0.0.1:5060"),
        ListenSpec.parse("tcp:127.0.0.1:5060"),
    )


@pytest.mark.parametrize(
    "advertise, expected",
    [
        pytest.param("203.0.113.5", ["203.0.113.5:5060", "203.0.113.5:5070"], id="host-only"),
        pytest.param("203.0.113.5:7000", ["203.0.113.5:7000"] * 2, id="host-port"),
        pytest.param("sbc.example.net", ["sbc.example.net:5060", "sbc.example.net:5070"],
                     id="name"),
        pytest.param("[2001:db8::5]", ["[2001:db8::5]:5060", "[2001:db8::5]:5070"], id="ipv6"),
    ],
)
def test_advertise_applies_to_every_listener(advertise, expected):
    config = parse_config(
        f'[sip]\nlisten = ["udp:0.0.0.0:5060", "tcp:[::]:5070"]\nadvertise = "{advertise}"\n',
        env=NO_ENV,
    )
    specs = config.sip.listen_specs()
    assert [s.advertise for s in specs] == [parse_hostport(e) for e in expected]


def test_a_full_trunk_decodes():
    config = parse_config(
        """
        [[trunks]]
        name = "carrier-b"
        inbound = ["198.51.100.0/24", "2001:db8::/32"]
        outbound = ["tcp:198.51.100.7:5060", "sip.carrier.example", "udp:[2001:db8::7]:5062"]
        transport = "tls"
        trusted_identity = true
        max_calls = 200
        calls_per_second = 12.5
        [trunks.digest]
        username = "acct"
        password = "pw"
        [trunks.number_rules]
        country_code = "44"
        national_prefix = "0"
        international_prefix = "00"
        """,
        env=NO_ENV,
    )
    [trunk] = config.trunks
    assert trunk.trusted_identity is True
    assert trunk.digest is not None and trunk.digest.username == "acct"
    assert trunk.number_rules.country_code == "44"
    assert [parse_destination(d, trunk.transport) for d in trunk.outbound] == [
        Destination("tcp", "198.51.100.7", 5060),
        Destination("tls", "sip.carrier.example", None),
        Destination("udp", "2001:db8::7", 5062),
    ]


# --- one error of each kind, with its key path -------------------------------------------------

BAD = [
    pytest.param('[[trunks]]\nname = "a"\ninbound = ["10.0.0.300/8"]\n',
                 "trunks[0].inbound[0]: not an IP network", id="network"),
    pytest.param('[[trunks]]\nname = "a"\ninbound = ["10.0.0.1/8"]\n',
                 "trunks[0].inbound[0]: not an IP network (10.0.0.1/8 has host bits set)",
                 id="network-host-bits"),
    pytest.param('[sip]\nlisten = ["sctp:127.0.0.1:5060"]\n',
                 "sip.listen[0]: not a listen address (unknown transport", id="listen-transport"),
    pytest.param('[sip]\nlisten = ["udp:localhost:5060"]\n',
                 "sip.listen[0]: not a listen address", id="listen-host"),
    pytest.param('[sip]\nlisten = ["udp:127.0.0.1"]\n',
                 "sip.listen[0]: not a listen address", id="listen-no-port"),
    pytest.param('[sip]\nlisten = ["udp:127.0.0.1:70000"]\n',
                 "sip.listen[0]: not a listen address (port must be 0-65535", id="listen-port"),
    pytest.param('[sip]\nlisten = []\n', "sip.listen: at least one listener", id="no-listener"),
    pytest.param('[sip]\nlisten = ["udp:127.0.0.1:5060", "udp:127.0.0.1:5060"]\n',
                 "sip.listen[1]: same as sip.listen[0]", id="listen-twice"),
    pytest.param('[sip]\nlisten = ["tls:127.0.0.1:5061"]\n',
                 "sip.tls_cert: a tls: listener needs tls_cert and tls_key", id="tls-no-cert"),
    pytest.param('[sip]\nadvertise = "bad host!"\n', "sip.advertise: not host or host:port",
                 id="advertise"),
    pytest.param('[sip.timers]\nt1 = 0.0\n', "sip.timers.t1: expected `float` > 0.0",
                 id="timer-zero"),
    pytest.param('[sip.timers]\nt2 = 120.0\n', "sip.timers.t2: expected `float` <= 60.0",
                 id="timer-big"),
    pytest.param('[sip.timers]\nt1 = 5.0\nt2 = 1.0\n',
                 "sip.timers: t2 must not be smaller than t1", id="timer-order"),
    pytest.param('[sip]\nmax_message_size = 100\n',
                 "sip.max_message_size: expected `int` >= 1500", id="message-size"),
    pytest.param('[sip]\nmax_transactions = 0\n',
                 "sip.max_transactions: expected `int` >= 1", id="transactions"),
    pytest.param('[sip]\noverload_status = 486\n',
                 "sip.overload_status: invalid enum value 486", id="overload-status"),
    pytest.param('[sip]\nretry_after = -1\n', "sip.retry_after: expected `int` >= 0",
                 id="retry-after"),
    pytest.param('[sip]\nlisten = "udp:127.0.0.1:5060"\n',
                 "sip.listen: expected `array`, got `str`", id="listen-not-array"),
    pytest.param('[api]\nlisten = "127.0.0.1"\n', "api.listen: not ip:port", id="api-listen"),
    pytest.param('[api]\ntokens = [""]\n', "api.tokens[0]: a token must be non-empty",
                 id="empty-token"),
    pytest.param('[metrics]\nlisten = "0.0.0.0:99999"\n', "metrics.listen: not ip:port",
                 id="metrics-listen"),
    pytest.param('[store]\nbackend = "postgres"\n',
                 "store.backend: invalid enum value 'postgres'", id="backend"),
    pytest.param('[store]\nbackend = "redis"\nredis_url = "http://127.0.0.1:6379"\n',
                 "store.redis_url: must start with redis://", id="redis-url"),
    pytest.param('[process]\nworkers = 4\n',
                 'process.workers: 4 workers need store.backend = "redis"', id="workers-memory"),
    pytest.param('[process]\nworkers = 0\n', "process.workers: expected `int` >= 1",
                 id="workers-zero"),
    pytest.param('[[pools]]\nname = "p"\nnumbers = ["+918000000001", "08000000002"]\n',
                 "pools[0].numbers[1]: not an E.164 number ('08000000002'", id="pool-e164"),
    pytest.param('[[pools]]\nname = "p"\nreserved = ["+0123"]\n',
                 "pools[0].reserved[0]: not an E.164 number", id="reserved-e164"),
    pytest.param('[[pools]]\nname = "a"\nnumbers = ["+918000000001"]\n'
                 '[[pools]]\nname = "b"\nreserved = ["+918000000001"]\n',
                 "pools[1].reserved[0]: +918000000001 is already in pools[0].numbers[0]",
                 id="number-in-two-pools"),
    pytest.param('[[pools]]\nname = "a"\nnumbers = ["+918000000001"]\n'
                 'reserved = ["+918000000001"]\n',
                 "pools[0].reserved[0]: +918000000001 is already in pools[0].numbers[0]",
                 id="number-free-and-reserved"),
    pytest.param('[[pools]]\nname = "a"\n[[pools]]\nname = "a"\n',
                 "pools[1].name: duplicate pool name 'a' (also pools[0])", id="pool-twice"),
    pytest.param('[[pools]]\nname = "has space"\n', "pools[0].name: expected `str` matching",
                 id="pool-name"),
    pytest.param('[[pools]]\nnumbers = []\n', "pools[0].name: missing (required)",
                 id="pool-no-name"),
    pytest.param('[[trunks]]\nname = "a"\ninbound = ["10.0.0.0/8"]\n'
                 '[[trunks]]\nname = "a"\ninbound = ["192.0.2.0/24"]\n',
                 "trunks[1].name: duplicate trunk name 'a' (also trunks[0])", id="trunk-twice"),
    pytest.param('[[trunks]]\nname = "a"\ninbound = ["10.0.0.0/8"]\n'
                 '[[trunks]]\nname = "b"\ninbound = ["10.1.0.0/16"]\n',
                 "trunks[1].inbound[0]: overlaps trunks[0].inbound[0]", id="trunks-overlap"),
    pytest.param('[[trunks]]\nname = "a"\n',
                 "trunks[0]: a trunk needs inbound networks, outbound destinations",
                 id="trunk-empty"),
    pytest.param('[[trunks]]\nname = "a"\noutbound = ["udp:198.51.100.7:0"]\n',
                 "trunks[0].outbound[0]: not a destination (port must be 1-65535",
                 id="destination-port"),
    pytest.param('[[trunks]]\nname = "a"\noutbound = ["udp:[2001:db8::1:5060"]\n',
                 "trunks[0].outbound[0]: not a destination (unclosed '['", id="destination-v6"),
    pytest.param('[[trunks]]\nname = "a"\noutbound = ["bad_host:5060"]\n',
                 "trunks[0].outbound[0]: not a destination (not a host name or IP address",
                 id="destination-host"),
    pytest.param('[[trunks]]\nname = "a"\noutbound = ["h.example"]\ntransport = "sctp"\n',
                 "trunks[0].transport: invalid enum value 'sctp'", id="trunk-transport"),
    pytest.param('[[trunks]]\nname = "a"\noutbound = ["h.example"]\n[trunks.digest]\n'
                 'username = "u"\n', "trunks[0].digest.password: missing (required)",
                 id="digest-half"),
    pytest.param('[[trunks]]\nname = "a"\noutbound = ["h.example"]\ntrusted_identity = "yes"\n',
                 "trunks[0].trusted_identity: expected `bool`, got `str`", id="trusted-bool"),
    pytest.param('[[trunks]]\nname = "a"\noutbound = ["h.example"]\n[trunks.number_rules]\n'
                 'country_code = "+91"\n', "trunks[0].number_rules.country_code: expected `str`"
                 " matching", id="country-code"),
    pytest.param('[[trunks]]\nname = "a"\noutbound = ["h.example"]\nmax_calls = 0\n',
                 "trunks[0].max_calls: expected `int` >= 1", id="max-calls"),
    pytest.param('[masking]\nallow_headers = ["P-Asserted-Identity"]\n',
                 "masking.allow_headers[0]: P-Asserted-Identity is built by sipmask or carries "
                 "identities; it never crosses", id="allow-pai"),
    pytest.param('[masking]\nallow_headers = ["f"]\n', "masking.allow_headers[0]: f is built",
                 id="allow-compact-from"),
    pytest.param('[masking]\nallow_headers = ["X-Custom"]\n',
                 "masking.allow_headers[0]: sipmask has no grammar to rebuild X-Custom from",
                 id="allow-without-grammar"),
    pytest.param('[masking]\nallow_headers = ["X Custom"]\n',
                 "masking.allow_headers[0]: not a header name", id="allow-not-token"),
    pytest.param('[masking]\nallow_headers = ["Supported", "supported"]\n',
                 "masking.allow_headers[1]: listed twice", id="allow-twice"),
    pytest.param('[masking]\ndisplay_name = "a\\"b"\n',
                 "masking.display_name: no quotes", id="display-name"),
    pytest.param('[logging]\nlevel = "verbose"\n', "logging.level: invalid enum value",
                 id="log-level"),
    pytest.param("[sip]\nlisten = [\n", "not valid TOML", id="toml-syntax"),
    pytest.param("sip = 5\n", "sip: expected a table, got int", id="section-not-table"),
]


@pytest.mark.parametrize("text, message", BAD)
def test_each_kind_of_error_names_its_path_and_reason(text, message):
    assert only_error(text).startswith(message)


@pytest.mark.parametrize(
    "text, message",
    [
        pytest.param("[sipp]\n", "sipp: unknown key", id="section"),
        pytest.param("[sip]\nlisten_on = []\n", "sip.listen_on: unknown key", id="sip-key"),
        pytest.param("[sip.timers]\nt3 = 1.0\n", "sip.timers.t3: unknown key", id="nested"),
        pytest.param('[[trunks]]\nname = "a"\noutbound = ["h.example"]\nport = 5060\n',
                     "trunks[0].port: unknown key", id="array-of-tables"),
        pytest.param("[store]\nredis-url = \"redis://x\"\n",
                     "store.redis-url: unknown key (did you mean 'redis_url'?)", id="kebab-hint"),
    ],
)
def test_unknown_keys_are_rejected_with_their_path(text, message):
    assert only_error(text).startswith(message)


def test_all_errors_are_reported_together():
    errors = errors_of(
        """
        [sip]
        listen = ["udp:127.0.0.1:5060", "udp:nowhere"]
        max_message_size = 10
        typo = 1
        [sip.timers]
        t1 = 5.0
        t2 = 1.0
        [store]
        backend = "memory"
        [process]
        workers = 2
        [[pools]]
        name = "p"
        numbers = ["+918000000001", "nope"]
        [[trunks]]
        name = "bad name"
        inbound = ["10.0.0.0/33"]
        [[trunks]]
        name = "b"
        inbound = ["192.0.2.0/24"]
        outbound = ["udp:198.51.100.7:99999"]
        [masking]
        allow_headers = ["Diversion"]
        """
    )
    paths = [e.split(":", 1)[0] for e in errors]
    assert sorted(paths) == sorted([
        "sip.listen[1]",
        "sip.max_message_size",
        "sip.typo",
        "sip.timers",
        "process.workers",
        "pools[0].numbers[1]",
        "trunks[0].name",
        "trunks[0].inbound[0]",  # still checked though the trunk's name is bad
        "trunks[1].outbound[0]",
        "masking.allow_headers[0]",
    ]), errors


def test_config_error_is_a_value_error_listing_every_error():
    with pytest.raises(ValueError) as info:
        parse_config("[sip]\nmax_transactions = 0\n[api]\nlisten = 'x'\n", env=NO_ENV,
                     source="my.toml")
    error = info.value
    assert isinstance(error, ConfigError)
    assert len(error.errors) == 2
    text = str(error)
    assert text.startswith("my.toml: 2 error(s)")
    for line in error.errors:
        assert line in text


def test_load_config_names_the_file(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[api]\nlisten = 'x'\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env=NO_ENV)
    assert info.value.source == str(path)
    assert str(info.value).startswith(f"{path}: 1 error(s)")


# --- environment overrides ---------------------------------------------------------------------


def test_api_token_from_environment_replaces_the_file():
    config = default_config(env={"SIPMASK_API_TOKEN": " tok-1 ,tok-2,, "})
    assert config.api.tokens == ("tok-1", "tok-2")


def test_redis_url_from_environment_replaces_the_file():
    config = parse_config('[store]\nbackend = "redis"\n',
                          env={"SIPMASK_REDIS_URL": "rediss://:pw@redis.example:6380/2"})
    assert config.store.redis_url == "rediss://:pw@redis.example:6380/2"


def test_empty_environment_variables_are_ignored():
    config = default_config(env={"SIPMASK_API_TOKEN": "", "SIPMASK_REDIS_URL": ""})
    assert config == default_config(env=NO_ENV)


def test_environment_is_read_when_not_given(monkeypatch):
    monkeypatch.setenv("SIPMASK_API_TOKEN", "from-env")
    monkeypatch.setenv("SIPMASK_REDIS_URL", "redis://10.0.0.9:6379/1")
    config = load_config(SAMPLE)
    assert config.api.tokens == ("from-env",)
    assert config.store.redis_url == "redis://10.0.0.9:6379/1"


def test_bad_secret_from_environment_is_named_but_never_printed():
    secret = "http://user:hunter2@redis.example"
    error = only_error("", env={"SIPMASK_REDIS_URL": secret})
    assert error.startswith("SIPMASK_REDIS_URL: must start with redis://")
    assert "hunter2" not in error


def test_workers_from_the_command_line_override_the_file():
    assert parse_config("[store]\nbackend = 'redis'\n", env=NO_ENV, workers=4).process.workers == 4
    assert only_error("", workers=3).startswith('--workers: 3 workers need store.backend')


# --- privacy -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(f'[[trunks]]\nname = "a"\noutbound = ["udp:{REAL}:5060"]\n', id="destination"),
        pytest.param(f'[[trunks]]\nname = "a"\ninbound = ["{REAL}"]\n', id="network"),
        pytest.param(f'[sip]\nadvertise = "{REAL}:x"\n', id="advertise"),
        pytest.param(f'[sip]\nlisten = ["udp:{REAL}:5060"]\n', id="listen"),
        pytest.param(f'[logging]\nlevel = "{REAL}"\n', id="enum"),
        pytest.param(f'[sip]\n"{REAL}" = 1\n', id="unknown-key"),
        pytest.param(f'[masking]\nallow_headers = ["{REAL} x"]\n', id="header"),
        pytest.param(f'[api]\nlisten = "{REAL}"\n', id="api-listen"),
    ],
)
def test_errors_never_print_a_real_number_in_full(text):
    errors = errors_of(text)
    joined = "\n".join(errors)
    assert REAL not in joined and REAL[1:] not in joined, errors


def test_pool_numbers_are_shown_as_written():
    # The operator's own virtual numbers: showing them helps fix the file.
    error = only_error('[[pools]]\nname = "a"\nnumbers = ["+918000000001", "+918000000001"]\n')
    assert "+918000000001 is already in pools[0].numbers[0]" in error
    assert mask_number("+918000000001") not in error


def test_api_token_is_never_printed():
    error = only_error('[api]\ntokens = ["sec ret"]\n')
    assert error.startswith("api.tokens[0]: a token must be non-empty, without spaces")
    assert "sec ret" not in error


def test_decoding_with_plain_msgspec_gives_the_same_config():
    # The typed structs are ordinary msgspec Structs: the sample decodes directly too.
    assert msgspec.toml.decode(SAMPLE.read_bytes(), type=Config) == default_config(env=NO_ENV)


def test_calls_fallback_needs_a_uri() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config('[calls]\nno_binding = "fallback"\n')
    assert info.value.errors == ['calls.fallback: no_binding = "fallback" needs a fallback URI']
    with pytest.raises(ConfigError) as info:
        parse_config('[calls]\nfallback = "http://ivr.example"\n')
    assert info.value.errors == ["calls.fallback: must be a sip: or sips: URI"]
    config = parse_config('[calls]\nno_binding = "fallback"\nfallback = "sip:ivr@127.0.0.1"\n')
    assert config.calls.fallback == "sip:ivr@127.0.0.1"
