"""The [media] section: defaults, values, and errors named by their key paths."""

import pytest

from sipmask.config import ConfigError, parse_config


def test_media_section_and_its_error_paths():
    config = parse_config(
        '[media]\nbackend = "rtpengine"\non_failure = "direct"\n'
        '[[media.rtpengine]]\naddress = "127.0.0.1:2223"\nweight = 3\n'
        '[media.callee]\ntransport_protocol = "RTP/SAVP"\naddress_family = "IP6"\n',
        env={},
    )
    assert config.media.rtpengine[0].weight == 3
    assert config.media.callee.transport_protocol == "RTP/SAVP"
    assert config.media.on_failure == "direct"
    assert parse_config("", env={}).media.backend == "none"
    with pytest.raises(ConfigError) as info:
        parse_config(
            '[media]\nbackend = "rtpengine"\n[media.caller]\ninterface = "pub"\n', env={})
    assert any(e.startswith("media.rtpengine:") for e in info.value.errors)
    assert any(e.startswith("media.callee.interface:") for e in info.value.errors)
    with pytest.raises(ConfigError) as info:
        parse_config('[[media.rtpengine]]\naddress = "nowhere"\n', env={})
    assert any(e.startswith("media.rtpengine[0].address:") for e in info.value.errors)
    with pytest.raises(ConfigError) as info:
        parse_config('[media]\non_failure = "maybe"\n', env={})
    assert "media.on_failure" in str(info.value)


def test_prompts_by_name_and_a_pool_naming_one():
    config = parse_config(
        '[[pools]]\nname = "city"\nannouncement = "notice"\n'
        '[media.announcements]\nnotice = "/srv/prompts/notice.wav"\n', env={})
    assert config.pools[0].announcement == "notice"
    assert config.media.announcements == {"notice": "/srv/prompts/notice.wav"}
    with pytest.raises(ConfigError) as info:
        parse_config('[[pools]]\nname = "city"\nannouncement = "notice"\n', env={})
    assert any(e.startswith("pools[0].announcement:") for e in info.value.errors)
    with pytest.raises(ConfigError) as info:
        parse_config('[[pools]]\nname = "city"\nannouncement = "/etc/passwd"\n', env={})
    assert any(e.startswith("pools[0].announcement") for e in info.value.errors)
