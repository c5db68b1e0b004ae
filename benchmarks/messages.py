"""Realistic SIP messages for the core micro-benchmarks.

One call as a carrier trunk sends it to sipmask: an INVITE with SDP that has passed one proxy
(two Via, a Record-Route, P-Asserted-Identity and the usual capability headers), the callee's
200 OK with SDP, and the BYE that ends the call. Line ends are CRLF and every Content-Length
is computed, so the messages are byte-exact SIP.
"""

from __future__ import annotations

__all__ = ["BYE", "INVITE", "INVITE_SDP", "MESSAGES", "OK_200", "OK_200_SDP"]


def _message(start_line: str, headers: list[str], body: bytes = b"") -> bytes:
    lines = [start_line, *headers, f"Content-Length: {len(body)}", "", ""]
    return "\r\n".join(lines).encode() + body


def _sdp(lines: list[str]) -> bytes:
    return ("\r\n".join(lines) + "\r\n").encode()


# 21 lines: one audio stream offering PCMU, PCMA, G.729, Opus and telephone-event.
INVITE_SDP = _sdp(
    [
        "v=0",
        "o=carrier-sbc 1732716000 1732716000 IN IP4 198.51.100.10",
        "s=SBC call",
        "c=IN IP4 198.51.100.20",
        "b=AS:84",
        "t=0 0",
        "m=audio 30000 RTP/AVP 0 8 18 111 101",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:18 G729/8000",
        "a=fmtp:18 annexb=no",
        "a=rtpmap:111 opus/48000/2",
        "a=fmtp:111 minptime=10;useinbandfec=1",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-16",
        "a=ptime:20",
        "a=maxptime:40",
        "a=sendrecv",
        "a=rtcp:30001",
        "a=silenceSupp:off - - - -",
        "a=x-carrier-leg:7f3a2c",
    ]
)

INVITE = _message(
    "INVITE sip:+918045671234@203.0.113.5:5060;user=phone SIP/2.0",
    [
        "Via: SIP/2.0/UDP 198.51.100.10:5060;branch=z9hG4bK-7f3a2c91e4d05b68;rport",
        "Via: SIP/2.0/UDP 198.51.100.77:5060;received=198.51.100.77;branch=z9hG4bK-1c0e5a2f",
        "Record-Route: <sip:198.51.100.10;lr;ftag=a73kszlfl>",
        "Max-Forwards: 69",
        'From: "Asha Rao" <sip:+919876543210@198.51.100.77;user=phone>;tag=a73kszlfl',
        "To: <sip:+918045671234@203.0.113.5;user=phone>",
        "Call-ID: 8f2c41d0-5e7b-4a10-9c3e-2b6d1f0a9e47@198.51.100.77",
        "CSeq: 102 INVITE",
        "Contact: <sip:+919876543210@198.51.100.77:5060;transport=udp>",
        'P-Asserted-Identity: "Asha Rao" <sip:+919876543210@198.51.100.77;user=phone>',
        "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, PRACK, UPDATE, INFO, REFER, NOTIFY",
        "Supported: 100rel, timer, replaces",
        "Session-Expires: 1800;refresher=uac",
        "Min-SE: 90",
        "User-Agent: CarrierSBC/4.2",
        "Content-Type: application/sdp",
    ],
    INVITE_SDP,
)

OK_200_SDP = _sdp(
    [
        "v=0",
        "o=callee 283746 283747 IN IP4 192.0.2.44",
        "s=-",
        "c=IN IP4 192.0.2.44",
        "t=0 0",
        "m=audio 41000 RTP/AVP 0 101",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-16",
        "a=ptime:20",
        "a=sendrecv",
    ]
)

OK_200 = _message(
    "SIP/2.0 200 OK",
    [
        "Via: SIP/2.0/UDP 198.51.100.10:5060;branch=z9hG4bK-7f3a2c91e4d05b68;rport=5060",
        "Via: SIP/2.0/UDP 198.51.100.77:5060;received=198.51.100.77;branch=z9hG4bK-1c0e5a2f",
        "Record-Route: <sip:198.51.100.10;lr;ftag=a73kszlfl>",
        'From: "Asha Rao" <sip:+919876543210@198.51.100.77;user=phone>;tag=a73kszlfl',
        "To: <sip:+918045671234@203.0.113.5;user=phone>;tag=9d2e7b01",
        "Call-ID: 8f2c41d0-5e7b-4a10-9c3e-2b6d1f0a9e47@198.51.100.77",
        "CSeq: 102 INVITE",
        "Contact: <sip:+918045671234@192.0.2.44:5060>",
        "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS",
        "Supported: timer",
        "Session-Expires: 1800;refresher=uac",
        "Server: CalleePBX/2.0",
        "Content-Type: application/sdp",
    ],
    OK_200_SDP,
)

BYE = _message(
    "BYE sip:+918045671234@192.0.2.44:5060 SIP/2.0",
    [
        "Via: SIP/2.0/UDP 198.51.100.10:5060;branch=z9hG4bK-2b9e0f55a1c3;rport",
        "Via: SIP/2.0/UDP 198.51.100.77:5060;received=198.51.100.77;branch=z9hG4bK-5d7a1e20",
        "Max-Forwards: 69",
        'From: "Asha Rao" <sip:+919876543210@198.51.100.77;user=phone>;tag=a73kszlfl',
        "To: <sip:+918045671234@203.0.113.5;user=phone>;tag=9d2e7b01",
        "Call-ID: 8f2c41d0-5e7b-4a10-9c3e-2b6d1f0a9e47@198.51.100.77",
        "CSeq: 103 BYE",
        "User-Agent: CarrierSBC/4.2",
    ],
)

MESSAGES: dict[str, bytes] = {"invite": INVITE, "ok200": OK_200, "bye": BYE}
"""The benchmark messages by case id."""
