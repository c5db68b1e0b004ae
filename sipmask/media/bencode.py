"""Bencode, as rtpengine's ng protocol uses it: dictionaries, lists, byte strings, integers.

Small and strict on purpose: ng replies come from the network, so anything malformed raises
`BencodeError` (never another exception, never a hang), and only the four bencode types are
produced. Strings are encoded as UTF-8; dictionary keys are sorted as bencode requires.
"""

from __future__ import annotations

from typing import Union

Value = Union[bytes, int, list["Value"], dict[bytes, "Value"]]
Encodable = Union[str, bytes, int, bool, list["Encodable"], tuple["Encodable", ...],
                  dict[str, "Encodable"], dict[bytes, "Encodable"]]

MAX_DEPTH = 32
"""Nesting deeper than this is refused (a reply is a few levels deep at most)."""


class BencodeError(ValueError):
    """Malformed bencode input, or a value that cannot be encoded."""


def encode(value: Encodable) -> bytes:
    out: list[bytes] = []
    _encode(value, out)
    return b"".join(out)


def _encode(value: Encodable, out: list[bytes]) -> None:
    if isinstance(value, bool):  # before int: bool is an int; ng wants "yes"/"no" strings
        raise BencodeError("bencode has no booleans")
    if isinstance(value, int):
        out.append(b"i%de" % value)
    elif isinstance(value, (bytes, str)):
        data = value.encode() if isinstance(value, str) else value
        out.append(b"%d:" % len(data))
        out.append(data)
    elif isinstance(value, (list, tuple)):
        out.append(b"l")
        for item in value:
            _encode(item, out)
        out.append(b"e")
    elif isinstance(value, dict):
        out.append(b"d")
        items = sorted(
            (key.encode() if isinstance(key, str) else key, item) for key, item in value.items()
        )
        for key, item in items:
            out.append(b"%d:" % len(key))
            out.append(key)
            _encode(item, out)
        out.append(b"e")
    else:
        raise BencodeError(f"cannot bencode {type(value).__name__}")


def decode(data: bytes) -> Value:
    """Decode exactly one value filling `data` (raises BencodeError)."""
    value, end = _decode(data, 0, 0)
    if end != len(data):
        raise BencodeError("trailing data")
    return value


def _decode(data: bytes, pos: int, depth: int) -> tuple[Value, int]:
    if depth > MAX_DEPTH:
        raise BencodeError("nested too deep")
    if pos >= len(data):
        raise BencodeError("truncated")
    lead = data[pos]
    if lead == 0x69:  # i<digits>e
        end = data.find(b"e", pos + 1)
        if end < 0:
            raise BencodeError("truncated integer")
        text = data[pos + 1:end]
        if not text or not text.lstrip(b"-").isdigit() or len(text) > 20:
            raise BencodeError("bad integer")
        return int(text), end + 1
    if lead == 0x6C:  # l...e
        items: list[Value] = []
        pos += 1
        while pos < len(data) and data[pos] != 0x65:
            item, pos = _decode(data, pos, depth + 1)
            items.append(item)
        if pos >= len(data):
            raise BencodeError("truncated list")
        return items, pos + 1
    if lead == 0x64:  # d...e
        table: dict[bytes, Value] = {}
        pos += 1
        while pos < len(data) and data[pos] != 0x65:
            key, pos = _decode(data, pos, depth + 1)
            if not isinstance(key, bytes):
                raise BencodeError("dictionary key is not a string")
            table[key], pos = _decode(data, pos, depth + 1)
        if pos >= len(data):
            raise BencodeError("truncated dictionary")
        return table, pos + 1
    if 0x30 <= lead <= 0x39:  # <length>:<bytes>
        colon = data.find(b":", pos)
        if colon < 0 or colon - pos > 10 or not data[pos:colon].isdigit():
            raise BencodeError("bad string length")
        start = colon + 1
        end = start + int(data[pos:colon])
        if end > len(data):
            raise BencodeError("truncated string")
        return data[start:end], end
    raise BencodeError(f"unexpected byte {lead:#x} at {pos}")
