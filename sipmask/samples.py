"""Sample carrier traffic used by `sipmask selfcheck` (the real numbers are fictional)."""

REAL_CALLER = "+919876543210"
VIRTUAL_NUMBER = "+918045671234"

SDP_OFFER = (
    b"v=0\r\n"
    b"o=+919876543210 2890844526 2890844526 IN IP4 203.0.113.10\r\n"
    b"s=call from +919876543210\r\n"
    b"i=caller +919876543210\r\n"
    b"c=IN IP4 203.0.113.10\r\n"
    b"t=0 0\r\n"
    b"m=audio 49170 RTP/AVP 0 8 101\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-15\r\n"
    b"a=ptime:20\r\n"
    b"a=x-caller:+919876543210\r\n"
    b"a=sendrecv\r\n"
)

INVITE = (
    b"INVITE sip:+918045671234@sipmask.example.com;user=phone SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 203.0.113.10:5060;branch=z9hG4bK776asdhds;rport\r\n"
    b"Max-Forwards: 69\r\n"
    b'From: "Asha" <sip:+919876543210@carrier.example.net;user=phone>;tag=1928301774\r\n'
    b"To: <sip:+918045671234@sipmask.example.com;user=phone>\r\n"
    b"Call-ID: a84b4c76e66710@pc33.carrier.example.net\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:+919876543210@203.0.113.10:5060>\r\n"
    b"P-Asserted-Identity: <sip:+919876543210@carrier.example.net;user=phone>\r\n"
    b"Diversion: <sip:+919876543210@carrier.example.net>;reason=unconditional\r\n"
    b"Supported: timer, 100rel\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: " + str(len(SDP_OFFER)).encode() + b"\r\n"
    b"\r\n" + SDP_OFFER
)
