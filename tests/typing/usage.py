"""Typed use of the public core API; `test_typing.py` runs mypy --strict over this file, so a
stub that drifts from how sipmask is used fails the tests (msgspec keeps a similar check)."""

import sipmask


def b_leg_from(invite: bytes) -> bytes:
    msg = sipmask.parse(invite)
    assert isinstance(msg, sipmask.Request)
    method: str = msg.method
    cseq = msg.cseq
    number: int = cseq.number if cseq is not None else 0
    vias: list[sipmask.Via] = msg.via
    branch: str | None = vias[0].branch if vias else None
    caller: sipmask.NameAddr | None = msg.from_
    user: str | None = caller.uri.user if caller is not None else None
    origin = sipmask.SdpOrigin("192.0.2.1")
    sdp: bytes | None = sipmask.find_sdp(msg.header("content-type"), msg.body)
    leg = sipmask.Request(
        method,
        "sip:+919812345678@trunk.example.com",
        [("CSeq", f"{number} {method}"), ("Via", f"SIP/2.0/UDP 192.0.2.1;branch={branch}")],
        origin.rebuild(sdp) if sdp is not None else b"",
    )
    leg.set_header("X-Seen", str(user is not None))
    return bytes(leg)


def answer_of(error: sipmask.ParseError) -> int | None:
    return error.status_code if error.can_respond else None
