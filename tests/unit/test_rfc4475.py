"""RFC 4475 torture-test messages through `sipmask.parse`.

Every `tests/vectors/rfc4475/*.dat` file (exact bytes of the RFC's archive) has an entry in
`expected.toml` saying whether it parses or raises `ParseError`, and which fields must come out
right. The key schema is documented at the top of that file; `docs/rfc4475.md` gives the
verdicts in prose.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from vector_fields import field_problems, load_entries

import sipmask

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "tests" / "vectors" / "rfc4475"
DOC = ROOT / "docs" / "rfc4475.md"

BY_FILE = load_entries(VECTORS)
EXPECTED = list(BY_FILE.values())
DAT_FILES = sorted(path.name for path in VECTORS.glob("*.dat"))
PARSED = [name for name in DAT_FILES if BY_FILE.get(name, {}).get("outcome") == "parse"]
REJECTED = [name for name in DAT_FILES if BY_FILE.get(name, {}).get("outcome") == "parse_error"]


def _id(name: str) -> str:
    return name.removesuffix(".dat")


def _data(name: str) -> bytes:
    return (VECTORS / name).read_bytes()


# --- the table itself -----------------------------------------------------------------------


def test_every_vector_has_exactly_one_entry():
    files = [entry["file"] for entry in EXPECTED]
    assert len(files) == len(set(files)), "duplicate entries in expected.toml"
    assert set(files) == set(DAT_FILES)
    assert len(DAT_FILES) == 49


@pytest.mark.parametrize("entry", EXPECTED, ids=lambda entry: _id(entry["file"]))
def test_entry_is_complete(entry):
    assert re.fullmatch(r"3\.(1\.[12]|2|3|4)\.\d+", entry["section"])
    assert entry["title"] and entry["rfc"]
    assert entry["outcome"] in ("parse", "parse_error")
    if entry["outcome"] == "parse":
        assert entry["kind"] in ("request", "response")
    else:
        assert "kind" not in entry, "fields of a rejected message are never checked"


def test_sections_are_those_of_the_rfc():
    sections = sorted(
        (tuple(int(part) for part in entry["section"].split(".")) for entry in EXPECTED)
    )
    assert sections[0] == (3, 1, 1, 1) and sections[-1] == (3, 4, 1)
    assert sum(1 for s in sections if s[:3] == (3, 1, 1)) == 13
    assert sum(1 for s in sections if s[:3] == (3, 1, 2)) == 19
    assert sum(1 for s in sections if s[:2] == (3, 2)) == 1
    assert sum(1 for s in sections if s[:2] == (3, 3)) == 15
    assert sum(1 for s in sections if s[:2] == (3, 4)) == 1


# --- rejected messages ----------------------------------------------------------------------


@pytest.mark.parametrize("name", REJECTED, ids=_id)
def test_invalid_message_raises_parse_error(name):
    entry = BY_FILE[name]
    try:
        msg = sipmask.parse(_data(name))
    except sipmask.ParseError as exc:
        error = exc
    except Exception as exc:
        pytest.fail(f"{name}: raised {type(exc).__name__}: {exc!r}, not ParseError")
    else:
        pytest.fail(f"{name} (RFC 4475 §{entry['section']}) parsed: {msg!r}")

    assert type(error) is sipmask.ParseError
    assert isinstance(error.reason, str) and error.reason
    if "status_codes" in entry:
        assert error.status_code in entry["status_codes"]
    if "error_method" in entry:
        assert error.method == entry["error_method"]
    if entry.get("error_method_none"):
        assert error.method is None
    if "can_respond" in entry:
        assert error.can_respond is entry["can_respond"]


@pytest.mark.parametrize("name", REJECTED, ids=_id)
def test_invalid_message_raises_parse_error_from_memoryview(name):
    with pytest.raises(sipmask.ParseError):
        sipmask.parse(memoryview(bytearray(_data(name))))


# --- accepted messages ----------------------------------------------------------------------


def _parse(name: str) -> sipmask.Request | sipmask.Response:
    try:
        return sipmask.parse(_data(name))
    except sipmask.ParseError as exc:
        entry = BY_FILE[name]
        pytest.fail(f"{name} (RFC 4475 §{entry['section']}) must parse: ParseError({exc.reason!r})")


@pytest.mark.parametrize("name", PARSED, ids=_id)
def test_valid_message_fields(name):
    entry = BY_FILE[name]
    problems = field_problems(_parse(name), entry)
    assert not problems, f"{name} (RFC 4475 §{entry['section']}):\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("name", PARSED, ids=_id)
def test_valid_message_headers_are_unfolded(name):
    msg = _parse(name)
    items = msg.header_items()
    assert items, "a parsed message has header fields"
    for field, value in items:
        assert "\r" not in value and "\n" not in value, (field, value)
        assert value == value.strip(" \t"), (field, value)


@pytest.mark.parametrize("name", PARSED, ids=_id)
def test_valid_message_round_trips(name):
    msg = _parse(name)
    wire = bytes(msg)
    again = sipmask.parse(wire)
    if msg.count("content-length") == 0:
        # bytes() always writes Content-Length (inv2543 has none), so the reparsed message
        # has one more field; without it the two are the same message.
        assert again.count("content-length") == 1
        assert again.header("content-length") == str(len(msg.body))
        assert again.remove_header("content-length") == 1
    assert again == msg
    # Serialising a serialised message changes nothing.
    assert bytes(sipmask.parse(wire)) == wire


@pytest.mark.parametrize("name", PARSED, ids=_id)
def test_valid_message_keeps_wire_bytes(name):
    entry = BY_FILE[name]
    if not entry.get("exact_bytes", True):
        pytest.skip(entry.get("note", "datagram is not canonical"))
    data = _data(name)
    msg = _parse(name)
    assert bytes(msg) == data
    assert bytes(msg.copy()) == data
    assert msg.copy() == msg


@pytest.mark.parametrize("name", PARSED, ids=_id)
def test_valid_message_parses_from_memoryview_and_bytearray(name):
    data = _data(name)
    msg = _parse(name)
    assert sipmask.parse(bytearray(data)) == msg
    assert sipmask.parse(memoryview(data)) == msg


# --- features a generic key cannot say --------------------------------------------------------


def test_multipart_parts():
    entry = BY_FILE["mpart01.dat"]
    msg = _parse("mpart01.dat")
    parts = sipmask.split_multipart(msg.header("content-type"), msg.body)
    assert len(parts) == len(entry["parts"]) == 2
    for part, expected in zip(parts, entry["parts"], strict=True):
        assert part.content_type == expected["content_type"]
        assert len(part.body) == expected["body_length"]
        if "body" in expected:
            assert part.body == expected["body"].encode()
    # the binary part is DER (a PKCS#7 signature): octets outside ASCII survive untouched
    assert parts[1].body.startswith(b"0\x82\x01R")
    assert parts[1].body in msg.body


def test_esc01_contact_uri_parameters_escaped():
    # RFC 4475 §3.1.1.3: 'n%61me=v%61lue%25%34%31' is name=value%41, which is NOT valueA;
    # '%6C%72' is a parameter named lr.
    uri = _parse("esc01.dat").contact[0].uri
    params = {sipmask.unescape(key).lower(): value for key, value in uri.params.items()}
    assert params == {"lr": None, "name": "v%61lue%25%34%31"}
    assert sipmask.unescape(params["name"]) == "value%41"


def test_regescrt_contact_uri_keeps_escaped_header():
    uri = _parse("regescrt.dat").contact[0].uri
    headers = {key.lower(): value for key, value in uri.headers.items()}
    assert headers == {"route": "%3Csip:sip.example.com%3E"}
    assert sipmask.unescape(headers["route"]) == "<sip:sip.example.com>"


def test_regbadct_contact_accessor_is_liberal_or_parse_error():
    # RFC 4475 §3.1.2.13: a liberal element may infer the <>; a strict one answers 400.
    msg = _parse("regbadct.dat")
    try:
        contacts = msg.contact
    except sipmask.ParseError:
        return
    assert len(contacts) == 1
    assert contacts[0].uri.host == "example.com"
    assert contacts[0].uri.user == "user"


def test_dblreq_trailing_octets_are_dropped():
    msg = _parse("dblreq.dat")
    assert msg.body == b""
    wire = bytes(msg)
    assert b"INVITE" not in wire
    assert _data("dblreq.dat").startswith(wire)


def test_baddn_header_section_may_end_with_the_datagram():
    data = _data("baddn.dat")
    assert data.endswith(b"l: 0\r\n") and b"\r\n\r\n" not in data
    msg = _parse("baddn.dat")
    assert bytes(msg) == data + b"\r\n"


def test_inv2543_body_is_rest_of_datagram():
    data = _data("inv2543.dat")
    msg = _parse("inv2543.dat")
    assert msg.body == data[data.index(b"\r\n\r\n") + 4 :]
    wire = bytes(msg)
    assert wire.startswith(data[: data.index(b"\r\n\r\n") + 2])
    assert wire.endswith(b"Content-Length: 105\r\n\r\n" + msg.body)


def test_multi01_first_value_wins_for_header():
    msg = _parse("multi01.dat")
    assert msg.header("from") == "sip:caller@example.com;tag=3413415"
    assert msg.headers("from") == [
        "sip:caller@example.com;tag=3413415",
        "sip:caller@example.net;tag=2923420123",
    ]


# --- the prose table stays true -------------------------------------------------------------


def test_docs_table_lists_every_vector_with_its_verdict():
    rows = {}
    for line in DOC.read_text("utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[1].startswith("`") and cells[1].endswith(".dat`"):
            rows[cells[1].strip("`")] = (cells[0], cells[2])
    assert set(rows) == set(BY_FILE)
    for name, (section, verdict) in rows.items():
        entry = BY_FILE[name]
        assert section == entry["section"], name
        word = "ParseError" if entry["outcome"] == "parse_error" else "parses"
        assert verdict.startswith(word), (name, verdict)
