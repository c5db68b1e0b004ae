"""Realistic carrier traffic (tests/vectors/carrier/*.sip) through sipmask's core.

Each file is one message with CRLF line ends and a correct Content-Length; `expected.toml` in the
same folder lists the fields that must come out right (key schema at the top of that file).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from vector_fields import field_problems, load_entries, resolve, sdp_of

import sipmask

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "carrier"
BY_FILE = load_entries(VECTORS)
EXPECTED = list(BY_FILE.values())
FILES = sorted(path.name for path in VECTORS.glob("*.sip"))


def _id(name: str) -> str:
    return name.removesuffix(".sip")


def _data(name: str) -> bytes:
    return (VECTORS / name).read_bytes()


def _parse(name: str) -> sipmask.Request | sipmask.Response:
    try:
        return sipmask.parse(_data(name))
    except sipmask.ParseError as exc:
        pytest.fail(f"{name} must parse: ParseError({exc.reason!r})")


# --- the vectors themselves -----------------------------------------------------------------


def test_every_file_has_exactly_one_entry():
    files = [entry["file"] for entry in EXPECTED]
    assert len(files) == len(set(files))
    assert set(files) == set(FILES)


@pytest.mark.parametrize("name", FILES, ids=_id)
def test_vector_file_is_well_formed(name):
    """CRLF everywhere in the header section, and Content-Length counts the body exactly."""
    data = _data(name)
    head, sep, body = data.partition(b"\r\n\r\n")
    assert sep, "no empty line"
    assert b"\n" not in head.replace(b"\r\n", b""), "bare LF in the header section"
    assert b"\r" not in head.replace(b"\r\n", b""), "bare CR in the header section"
    lengths = re.findall(rb"(?im)^content-length: (\d+)$", head)
    assert lengths == [str(len(body)).encode()]
    for number in BY_FILE[name].get("numbers", []):
        assert re.fullmatch(r"\+(91|1|44)\d{9,10}", number), number
        assert number.encode() in data


def test_register_digest_response_is_correct():
    """The Authorization in register_auth.sip answers the 401's challenge (RFC 2617 qop=auth)."""
    entry = BY_FILE["register_auth.sip"]
    value = _parse("register_auth.sip").header("authorization")
    assert value is not None and value.startswith("Digest ")
    params = {
        key: quoted or bare
        for key, quoted, bare in re.findall(r'(\w+)=(?:"([^"]*)"|([^,\s]+))', value[7:])
    }
    challenge = _parse("401_unauthorized.sip").header("www-authenticate")
    assert f'nonce="{params["nonce"]}"' in challenge
    ha1 = hashlib.md5(
        f"{params['username']}:{params['realm']}:{entry['digest_password']}".encode()
    ).hexdigest()
    ha2 = hashlib.md5(f"REGISTER:{params['uri']}".encode()).hexdigest()
    expected = hashlib.md5(
        f"{ha1}:{params['nonce']}:{params['nc']}:{params['cnonce']}:{params['qop']}:{ha2}".encode()
    ).hexdigest()
    assert params["response"] == expected


# --- parsing --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FILES, ids=_id)
def test_fields(name):
    problems = field_problems(_parse(name), BY_FILE[name])
    assert not problems, f"{name}:\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("name", FILES, ids=_id)
def test_round_trip(name):
    msg = _parse(name)
    again = sipmask.parse(bytes(msg))
    assert again == msg
    assert bytes(again) == bytes(msg)


@pytest.mark.parametrize("name", FILES, ids=_id)
def test_untouched_message_keeps_its_bytes(name):
    data = _data(name)
    msg = _parse(name)
    assert bytes(msg) == data
    copy = msg.copy()
    assert copy == msg and copy is not msg
    assert bytes(copy) == data


@pytest.mark.parametrize("name", FILES, ids=_id)
def test_header_items_in_wire_order(name):
    data = _data(name)
    head = data.partition(b"\r\n\r\n")[0].decode()
    wire = [line.split(":", 1) for line in head.split("\r\n")[1:]]
    items = _parse(name).header_items()
    assert [field for field, _ in items] == [field for field, _ in wire]
    assert [value for _, value in items] == [value.strip() for _, value in wire]


SDP_FILES = [name for name in FILES if "sdp" in BY_FILE[name] or "sdp_attributes" in BY_FILE[name]]


@pytest.mark.parametrize("name", SDP_FILES, ids=_id)
def test_sdp(name):
    entry = BY_FILE[name]
    msg = _parse(name)
    body = sdp_of(msg)
    assert body is not None
    sdp = sipmask.parse_sdp(body)
    problems: list[str] = []
    for path, expected in entry.get("sdp", {}).items():
        try:
            got = resolve(sdp, path)
        except Exception as exc:
            problems.append(f"{path}: raised {type(exc).__name__}: {exc}")
            continue
        if got != expected:
            problems.append(f"{path}: expected {expected!r}, got {got!r}")
    names = {attribute for attribute, _ in sdp.media[0].attributes}
    for attribute in entry.get("sdp_attributes", []):
        if attribute not in names:
            problems.append(f"a={attribute} missing from the first m= line: {sorted(names)}")
    assert not problems, f"{name}:\n  " + "\n  ".join(problems)


def test_hold_reinvite_is_sendonly():
    sdp = sipmask.parse_sdp(_parse("reinvite_hold.sip").body)
    assert ("sendonly", None) in sdp.media[0].attributes
    assert not any(name == "sendrecv" for name, _ in sdp.media[0].attributes)


# --- SIP-I multipart ------------------------------------------------------------------------


def test_sipi_multipart_parts():
    entry = BY_FILE["invite_sipi.sip"]
    msg = _parse("invite_sipi.sip")
    parts = sipmask.split_multipart(msg.header("content-type"), msg.body)
    assert len(parts) == len(entry["parts"]) == 2
    for part, expected in zip(parts, entry["parts"], strict=True):
        assert part.content_type == expected["content_type"]
        assert len(part.body) == expected["body_length"]
    assert parts[1].body == bytes.fromhex(entry["parts"][1]["body_hex"])
    assert dict((k.lower(), v) for k, v in parts[1].headers)["content-disposition"] == (
        "signal;handling=optional"
    )


def test_sipi_find_sdp_returns_the_sdp_part():
    msg = _parse("invite_sipi.sip")
    sdp = sipmask.find_sdp(msg.header("content-type"), msg.body)
    parts = sipmask.split_multipart(msg.header("content-type"), msg.body)
    assert sdp == parts[0].body
    assert sdp.startswith(b"v=0\r\n") and sdp.endswith(b"a=ptime:20\r\n")
    assert b"--unique-boundary-1" not in sdp
    assert bytes.fromhex(BY_FILE["invite_sipi.sip"]["parts"][1]["body_hex"]) not in sdp


def test_find_sdp_on_plain_bodies():
    invite = _parse("invite_pai.sip")
    assert sipmask.find_sdp(invite.header("content-type"), invite.body) == invite.body
    info = _parse("info_dtmf.sip")
    assert sipmask.find_sdp(info.header("content-type"), info.body) is None
    bye = _parse("bye.sip")
    assert sipmask.find_sdp(bye.header("content-type"), bye.body) is None


# --- TCP framing of the TCP call ------------------------------------------------------------


def test_tcp_call_through_stream_framer():
    invite, cancel = _data("invite_tcp.sip"), _data("cancel.sip")
    framer = sipmask.StreamFramer()
    assert framer.feed(invite[:100]) == []
    assert framer.buffered == 100
    assert framer.feed(invite[100:] + cancel[:7]) == [invite]
    assert framer.buffered == 7
    assert framer.feed(cancel[7:]) == [cancel]
    assert framer.buffered == 0
    assert sipmask.parse(invite) == _parse("invite_tcp.sip")
