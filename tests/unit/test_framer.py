"""`StreamFramer`: cutting a TCP/TLS byte stream into SIP messages (RFC 3261 §18.3) with
RFC 5626 CRLF keep-alives between them."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sipmask
from sipmask import ParseError

SETTINGS = settings(
    deadline=None,
    max_examples=200,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

PING = b"\r\n\r\n"  # RFC 5626 §4.4.1: the client's keep-alive ping


def message(
    start: str = "OPTIONS sip:bob@example.com SIP/2.0",
    body: bytes = b"",
    *,
    length_name: str = "Content-Length",
    extra: str = "",
) -> bytes:
    head = (
        f"{start}\r\n"
        "Via: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bK74bf9\r\n"
        "From: <sip:alice@example.com>;tag=9fxced76sl\r\n"
        "To: <sip:bob@example.com>\r\n"
        "Call-ID: 3848276298220188511@atlanta.example.com\r\n"
        f"CSeq: 1 {'OPTIONS' if start.startswith('SIP/') else start.split()[0]}\r\n"
        f"{extra}"
        f"{length_name}: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


SDP = (
    b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
    b"m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)
SAMPLES = [
    message(),
    message("INVITE sip:bob@example.com SIP/2.0", SDP, extra="Content-Type: application/sdp\r\n"),
    message("SIP/2.0 200 OK", SDP, length_name="l"),
    message("MESSAGE sip:bob@example.com SIP/2.0", b"\r\n\r\nbody that starts with CRLFs\r\n"),
    message("INFO sip:bob@example.com SIP/2.0", bytes(range(256)), length_name="content-length"),
    message("SIP/2.0 180 Ringing"),
]


def feed_all(framer: sipmask.StreamFramer, chunks: list[bytes]) -> list[bytes]:
    out: list[bytes] = []
    for chunk in chunks:
        got = framer.feed(chunk)
        assert all(type(m) is bytes for m in got)
        out += got
    return out


def cut(data: bytes, points: list[int]) -> list[bytes]:
    bounds = [0, *sorted(points), len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


@st.composite
def streams(draw) -> tuple[bytes, list[bytes], int]:
    """(stream, messages in it, keep-alive pings in it)."""
    msgs = draw(st.lists(st.sampled_from(SAMPLES), min_size=1, max_size=6))
    stream = b""
    pings = 0
    for msg in msgs:
        n = draw(st.integers(0, 2))
        stream += PING * n + msg
        pings += n
    n = draw(st.integers(0, 2))
    return stream + PING * n, msgs, pings + n


@SETTINGS
@given(streams(), st.data())
def test_same_messages_however_the_stream_is_cut(case, data):
    stream, msgs, pings = case
    points = data.draw(st.lists(st.integers(0, len(stream)), max_size=12))
    framer = sipmask.StreamFramer()
    assert feed_all(framer, cut(stream, points)) == msgs
    assert framer.buffered == 0
    assert framer.keepalives == pings


@SETTINGS
@given(streams())
def test_byte_at_a_time(case):
    stream, msgs, pings = case
    framer = sipmask.StreamFramer()
    assert feed_all(framer, [stream[i : i + 1] for i in range(len(stream))]) == msgs
    assert framer.buffered == 0
    assert framer.keepalives == pings


@SETTINGS
@given(streams(), st.data())
def test_memoryview_and_bytearray_input(case, data):
    stream, msgs, _ = case
    points = data.draw(st.lists(st.integers(0, len(stream)), max_size=6))
    pieces = cut(stream, points)
    framer = sipmask.StreamFramer()
    out: list[bytes] = []
    for i, piece in enumerate(pieces):
        backing = bytearray(b"#" + piece + b"#")
        view = memoryview(backing)[1:-1]
        out += framer.feed(view if i % 2 == 0 else bytearray(piece))
        # The framer must have copied what it keeps: scribbling over the caller's buffer
        # afterwards changes nothing.
        backing[:] = b"X" * len(backing)
    assert out == msgs


@SETTINGS
@given(st.lists(st.sampled_from(SAMPLES), min_size=1, max_size=4), st.data())
def test_partial_tail_stays_buffered(msgs, data):
    last = msgs[-1]
    keep = data.draw(st.integers(1, len(last) - 1))
    stream = b"".join(msgs[:-1]) + last[:keep]
    framer = sipmask.StreamFramer()
    assert framer.feed(stream) == msgs[:-1]
    assert framer.buffered == keep
    assert framer.feed(b"") == []
    assert framer.buffered == keep
    assert framer.feed(last[keep:]) == [last]
    assert framer.buffered == 0


@pytest.mark.parametrize("sample", range(len(SAMPLES)), ids=lambda i: f"sample{i}")
def test_every_prefix_of_a_message_is_buffered(sample):
    msg = SAMPLES[sample]
    for keep in range(1, len(msg)):
        framer = sipmask.StreamFramer()
        assert framer.feed(msg[:keep]) == []
        assert framer.buffered == keep
        assert framer.feed(msg[keep:]) == [msg]


def test_keepalives_are_counted_and_not_delivered():
    framer = sipmask.StreamFramer()
    assert framer.feed(PING) == []
    assert framer.keepalives == 1
    assert framer.buffered == 0
    assert framer.feed(b"\r\n") == []
    assert framer.feed(b"\r\n") == []
    assert framer.keepalives == 2
    assert framer.feed(PING + SAMPLES[0] + PING) == [SAMPLES[0]]
    assert framer.keepalives == 4
    assert framer.buffered == 0


def test_a_lone_crlf_between_messages_is_skipped():
    framer = sipmask.StreamFramer()
    assert framer.feed(b"\r\n" + SAMPLES[0] + b"\r\n" + SAMPLES[1]) == [SAMPLES[0], SAMPLES[1]]
    assert framer.buffered == 0


@pytest.mark.parametrize(
    "stream",
    [
        pytest.param(message().replace(b"Content-Length: 0\r\n", b""), id="no-content-length"),
        pytest.param(
            message().replace(b"Content-Length: 0", b"Content-Length: abc"), id="not-a-number"
        ),
        pytest.param(message().replace(b"Content-Length: 0", b"Content-Length: -1"), id="negative"),
        pytest.param(message().replace(b"Content-Length: 0", b"Content-Length: "), id="empty"),
    ],
)
def test_unframeable_message_raises(stream):
    framer = sipmask.StreamFramer()
    with pytest.raises(ParseError):
        framer.feed(stream)


@given(st.integers(1, 60))
@settings(deadline=None, max_examples=30)
def test_missing_content_length_raises_however_cut(piece):
    stream = message().replace(b"Content-Length: 0\r\n", b"")
    framer = sipmask.StreamFramer()
    with pytest.raises(ParseError):
        for i in range(0, len(stream), piece):
            framer.feed(stream[i : i + piece])


def test_message_over_max_size_raises():
    big = message("INFO sip:bob@example.com SIP/2.0", b"x" * 500)
    framer = sipmask.StreamFramer(max_size=len(big) - 1)
    with pytest.raises(ParseError):
        framer.feed(big)


def test_message_of_exactly_max_size_passes():
    big = message("INFO sip:bob@example.com SIP/2.0", b"x" * 500)
    framer = sipmask.StreamFramer(max_size=len(big))
    assert framer.feed(big) == [big]


def test_declared_content_length_over_max_size_raises_before_the_body_arrives():
    head = message().replace(b"Content-Length: 0", b"Content-Length: 100000000")
    framer = sipmask.StreamFramer(max_size=65535)
    with pytest.raises(ParseError):
        framer.feed(head)


def test_endless_header_block_raises_at_max_size():
    framer = sipmask.StreamFramer(max_size=4096)
    framer.feed(b"OPTIONS sip:bob@example.com SIP/2.0\r\n")
    with pytest.raises(ParseError):
        for _ in range(1000):
            framer.feed(b"X-Filler: " + b"y" * 50 + b"\r\n")


def test_endless_keepalives_do_not_grow_the_buffer():
    framer = sipmask.StreamFramer(max_size=1024)
    for _ in range(2000):
        assert framer.feed(PING) == []
    assert framer.keepalives == 2000
    assert framer.buffered == 0


def test_framer_hands_out_messages_that_parse():
    framer = sipmask.StreamFramer()
    for msg in framer.feed(b"".join(SAMPLES)):
        m = sipmask.parse(msg)
        assert m.body == msg[msg.index(b"\r\n\r\n") + 4 :]
        assert sipmask.parse(bytes(m)) == m
