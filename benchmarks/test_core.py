"""Core micro-benchmarks: sipmask's parser and rewriter beside the sippy peer.

Each case is a function of the raw datagram that does the whole job being measured and returns
what it read, so every benchmark also checks its result once (the figures are for work that was
really done). Cases in one `benchmark.group` do the same job, so pytest-benchmark prints them side
by side and `conftest.py` prints messages/s and the sipmask/sippy ratio.

Cases (see README.md):
  parse         `sipmask.parse` only  |  sippy: decode + `SipRequest`/`SipResponse`
  read          parse, then start line, all Via values, From tag, To, Call-ID, CSeq, Contact
                  sipmask "strings": header()/headers() values
                  sipmask "typed":   via / from_ / to / cseq / contact objects
                  sippy:             getHFBody()/getHFBodys() objects
  mask          the B-leg INVITE: parse, new Via/From/To/Call-ID/Contact, allow-listed headers
                only, SDP rebuilt through the allow-list with a fixed o=, serialise
                  sipmask "build": a fresh `Request` (the design's way)
                  sipmask "edit":  set_header/remove_header on the parsed message
                  sippy:           a fresh `SipRequest` with a rebuilt `SdpBody`
"""

from __future__ import annotations

import os

import pytest
from messages import INVITE, MESSAGES

import sipmask

try:
    from sippy.SdpOrigin import SdpOrigin as SippySdpOrigin
    from sippy.SipCallId import SipCallId
    from sippy.SipConf import SipConf
    from sippy.SipContact import SipContact
    from sippy.SipFrom import SipFrom
    from sippy.SipMaxForwards import SipMaxForwards
    from sippy.SipRequest import SipRequest
    from sippy.SipResponse import SipResponse
    from sippy.SipTo import SipTo
    from sippy.SipURL import SipURL
except ImportError:  # the peer is in the `bench` extra; sipmask's cases run without it
    HAVE_SIPPY = False
else:
    HAVE_SIPPY = True
    # sippy's Via and SDP origin defaults read its global config.
    SipConf.my_address = "203.0.113.5"
    SipConf.my_port = 5060

needs_sippy = pytest.mark.skipif(
    not HAVE_SIPPY, reason="sippy not installed: pip install -e .[bench]"
)

# Sub-microsecond cases need several calls per timed round for the timer's own cost to vanish.
pytestmark = pytest.mark.benchmark(min_time=0.0002, warmup=True, warmup_iterations=1000)

MESSAGE_IDS = list(MESSAGES)
REAL_CALLER = b"9876543210"  # the caller's real number in messages.INVITE

# The B leg of the masked call.
LOCAL = "203.0.113.5"
B_URI = "sip:+919812345678@192.0.2.44:5060"
B_FROM = "<sip:+918045670001@203.0.113.5;user=phone>"  # the caller's virtual number
B_TO = "<sip:+919812345678@192.0.2.44;user=phone>"
B_CONTACT = "<sip:203.0.113.5:5060>"
ALLOWED = frozenset(["allow", "supported", "session-expires", "min-se", "content-type"])
DROPPED = ("Record-Route", "P-Asserted-Identity", "User-Agent", "Via")


def _label(benchmark, group: str, msg: str, impl: str, case: str) -> None:
    benchmark.group = f"{group}:{msg}"
    benchmark.extra_info.update(impl=impl, case=case, message=msg)


# --- parse ------------------------------------------------------------------------------------


@pytest.mark.parametrize("msg", MESSAGE_IDS)
def test_parse_sipmask(benchmark, msg):
    _label(benchmark, "parse", msg, "sipmask", "parse")
    m = benchmark(sipmask.parse, MESSAGES[msg])
    assert m.call_id is not None


def sippy_parse(raw: bytes):
    # sippy's SipTransactionManager decodes the datagram to str before parsing.
    data = raw.decode()
    if data.startswith("SIP/2.0 "):
        return SipResponse(data)
    return SipRequest(data)


@needs_sippy
@pytest.mark.parametrize("msg", MESSAGE_IDS)
def test_parse_sippy(benchmark, msg):
    _label(benchmark, "parse", msg, "sippy", "parse")
    m = benchmark(sippy_parse, MESSAGES[msg])
    assert m.countHFs("via") == 2


# --- parse with headers read ------------------------------------------------------------------


def sipmask_read_strings(raw: bytes):
    m = sipmask.parse(raw)
    start = (m.method, m.uri) if m.is_request else (m.status, m.reason)
    return (
        start,
        m.headers("via"),
        m.from_tag,
        m.header("to"),
        m.call_id,
        m.header("cseq"),
        m.header("contact"),
    )


def sipmask_read_typed(raw: bytes):
    m = sipmask.parse(raw)
    start = (m.method, m.uri) if m.is_request else (m.status, m.reason)
    vias = m.via
    return (start, vias, vias[0].branch, m.from_.tag, m.to, m.call_id, m.cseq, m.contact)


def sippy_read(raw: bytes):
    m = sippy_parse(raw)
    start = (m.method, m.ruri) if isinstance(m, SipRequest) else m.getSCode()
    vias = m.getHFBodys("via")
    contact = m.getHFBody("contact") if m.countHFs("contact") else None
    return (
        start,
        vias,
        vias[0].getBranch(),
        m.getHFBody("from").getTag(),
        m.getHFBody("to"),
        str(m.getHFBody("call-id")),
        m.getHFBody("cseq").getCSeq(),
        contact,
    )


EXPECTED_CALL_ID = "8f2c41d0-5e7b-4a10-9c3e-2b6d1f0a9e47@198.51.100.77"


@pytest.mark.parametrize("msg", MESSAGE_IDS)
def test_read_headers_sipmask_strings(benchmark, msg):
    _label(benchmark, "read", msg, "sipmask", "strings")
    start, vias, from_tag, to, call_id, cseq, contact = benchmark(
        sipmask_read_strings, MESSAGES[msg]
    )
    assert len(vias) == 2 and vias[0].startswith("SIP/2.0/UDP 198.51.100.10:5060;branch=")
    assert from_tag == "a73kszlfl"
    assert to.startswith("<sip:+918045671234@203.0.113.5;user=phone>")
    assert call_id == EXPECTED_CALL_ID
    assert cseq in ("102 INVITE", "103 BYE")
    assert (contact is None) == (msg == "bye")


@pytest.mark.parametrize("msg", MESSAGE_IDS)
def test_read_headers_sipmask_typed(benchmark, msg):
    _label(benchmark, "read", msg, "sipmask", "typed")
    start, vias, branch, from_tag, to, call_id, cseq, contact = benchmark(
        sipmask_read_typed, MESSAGES[msg]
    )
    assert len(vias) == 2 and branch.startswith("z9hG4bK-")
    assert from_tag == "a73kszlfl"
    assert to.uri.user == "+918045671234"
    assert call_id == EXPECTED_CALL_ID
    assert cseq.number in (102, 103)
    assert len(contact) == (0 if msg == "bye" else 1)


@needs_sippy
@pytest.mark.parametrize("msg", MESSAGE_IDS)
def test_read_headers_sippy(benchmark, msg):
    _label(benchmark, "read", msg, "sippy", "objects")
    start, vias, branch, from_tag, to, call_id, cseq, contact = benchmark(sippy_read, MESSAGES[msg])
    assert len(vias) == 2 and branch.startswith("z9hG4bK-")
    assert from_tag == "a73kszlfl"
    assert to.getUrl().username == "+918045671234"
    assert call_id == EXPECTED_CALL_ID
    assert cseq[0] in (102, 103)
    assert (contact is None) == (msg == "bye")


# --- mask rewrite of the INVITE ---------------------------------------------------------------


def sipmask_mask_build(raw: bytes, origin: sipmask.SdpOrigin) -> bytes:
    a = sipmask.parse(raw)
    token = os.urandom(12).hex()
    headers = [
        ("Via", f"SIP/2.0/UDP {LOCAL}:5060;branch=z9hG4bK{token[:16]};rport"),
        ("Max-Forwards", str(a.max_forwards - 1)),
        ("From", f"{B_FROM};tag={token[16:]}"),
        ("To", B_TO),
        ("Call-ID", token),
        ("CSeq", f"{a.cseq.number} INVITE"),
        ("Contact", B_CONTACT),
    ]
    b = sipmask.Request("INVITE", B_URI, headers)
    b.copy_headers(a, ALLOWED)
    b.body = origin.rebuild(a.body, connection_address=LOCAL, media_ports=(40000,))
    return bytes(b)


def sipmask_mask_edit(raw: bytes, origin: sipmask.SdpOrigin) -> bytes:
    m = sipmask.parse(raw)
    token = os.urandom(12).hex()
    m.uri = B_URI
    for name in DROPPED:
        m.remove_header(name)
    m.add_header("Via", f"SIP/2.0/UDP {LOCAL}:5060;branch=z9hG4bK{token[:16]};rport", first=True)
    m.set_header("Max-Forwards", str(m.max_forwards - 1))
    m.set_header("From", f"{B_FROM};tag={token[16:]}")
    m.set_header("To", B_TO)
    m.set_header("Call-ID", token)
    m.set_header("Contact", B_CONTACT)
    m.body = origin.rebuild(m.body, connection_address=LOCAL, media_ports=(40000,))
    return bytes(m)


SIPPY_SDP_ATTRIBUTES = frozenset(
    ["rtpmap", "fmtp", "ptime", "maxptime", "sendrecv", "sendonly", "recvonly", "inactive",
     "silencesupp", "rtcp"]
)  # fmt: skip


def sippy_mask(raw: bytes, origin: list[int]) -> bytes:
    """The same B leg with sippy's objects, as its B2BUA builds an outgoing INVITE."""
    a = sippy_parse(raw)
    token = os.urandom(12).hex()
    body = a.getBody()
    body.parse()
    sdp = body.content
    for name in ("i", "u", "e", "p", "k", "z", "r"):
        setattr(sdp, name + "_header", None)
    sdp.o_header = SippySdpOrigin(f"- {origin[0]} {origin[1]} IN IP4 {LOCAL}")
    sdp.s_header = "-"
    sdp.c_header = None
    sdp.a_headers = [h for h in sdp.a_headers if h.name.lower() in SIPPY_SDP_ATTRIBUTES]
    for section in sdp.sections:
        section.i_header = section.k_header = None
        section.c_header.addr = LOCAL
        section.m_header.port = 40000
        section.a_headers = [h for h in section.a_headers if h.name.lower() in SIPPY_SDP_ATTRIBUTES]
    max_forwards = a.getHFBody("max-forwards").getNum() - 1
    b = SipRequest(
        method="INVITE",
        ruri=SipURL(B_URI),
        fr0m=SipFrom(f"{B_FROM};tag={token[16:]}"),
        to=SipTo(B_TO),
        callid=SipCallId(token),
        cseq=a.getHFBody("cseq").getCSeqNum(),
        maxforwards=SipMaxForwards(number=max_forwards),
        contact=SipContact(B_CONTACT),
        body=body,
        target=(LOCAL, 5060),
    )
    b.appendHeaders([h.getCopy() for h in a.headers if h.name in ALLOWED])
    return str(b).encode()


def _check_masked(out: bytes) -> sipmask.Message:
    assert REAL_CALLER not in out
    assert b"Asha" not in out and b"198.51.100" not in out
    m = sipmask.parse(out)
    assert m.method == "INVITE" and m.uri == B_URI
    assert m.count("via") == 1 and m.header("record-route") is None
    assert m.from_.uri.user == "+918045670001"
    sdp = sipmask.parse_sdp(m.body)
    assert [md.port for md in sdp.media] == [40000]
    assert sdp.media[0].formats == ["0", "8", "18", "111", "101"]
    return m


@pytest.mark.parametrize("how", ["build", "edit"])
def test_mask_invite_sipmask(benchmark, how):
    _label(benchmark, "mask", "invite", "sipmask", how)
    origin = sipmask.SdpOrigin(LOCAL)
    fn = sipmask_mask_build if how == "build" else sipmask_mask_edit
    out = benchmark(fn, INVITE, origin)
    m = _check_masked(out)
    assert m.header("session-expires") == "1800;refresher=uac"


@needs_sippy
def test_mask_invite_sippy(benchmark):
    _label(benchmark, "mask", "invite", "sippy", "build")
    out = benchmark(sippy_mask, INVITE, [1234567, 1])
    _check_masked(out)
