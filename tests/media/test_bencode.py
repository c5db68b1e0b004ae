"""The ng protocol's bencode: what rtpengine sends and expects, and strictness on bad input."""

from __future__ import annotations

import pytest

from sipmask.media.bencode import BencodeError, decode, encode


def test_encodes_a_command_with_sorted_keys() -> None:
    message = {"sdp": "v=0", "command": "offer", "flags": ["generate RTCP"], "n": 3}
    assert encode(message) == b"d7:command5:offer5:flagsl13:generate RTCPe1:ni3e3:sdp3:v=0e"


def test_round_trip() -> None:
    value = {b"result": b"ok", b"list": [b"a", 1, -2, {b"x": b""}], b"sdp": b"\x00\xff"}
    assert decode(encode(value)) == value


@pytest.mark.parametrize("data", [
    b"", b"i12", b"ie", b"i1xe", b"5:abc", b"l", b"d3:key", b"di1ei2ee", b"x", b"i1ei2e",
    b"l" * 100 + b"e" * 100, b"99999999999:a",
])
def test_malformed_input_raises_bencode_error(data: bytes) -> None:
    with pytest.raises(BencodeError):
        decode(data)


def test_booleans_are_refused() -> None:
    with pytest.raises(BencodeError):
        encode({"flag": True})
