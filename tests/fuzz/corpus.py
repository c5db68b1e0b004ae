"""Fuzz inputs (issue 13): whole SIP datagrams built from realistic templates and then
mutated the ways an attacker would (CR/LF/NUL in echoed values, odd Via transports and
maddr, broken numbers, truncation, random bytes), as hypothesis strategies and as a seeded
generator for the end-to-end runs. `SIPMASK_FUZZ_SCALE` multiplies every budget (1 in CI)."""

from __future__ import annotations

import os
import random

from hypothesis import strategies as st

SCALE = max(1, int(os.environ.get("SIPMASK_FUZZ_SCALE", "1")))

METHODS = ("INVITE", "OPTIONS", "BYE", "CANCEL", "ACK", "INFO", "MESSAGE", "UPDATE", "PRACK",
           "REGISTER", "FOO")
# What the issue found, and its neighbours: values a response would echo.
POISON = (b"\x00", b"\r", b"\n", b"\r\n", b"\\\x00", b"\xff\xfe", b'"', b"<", b">", b";", b",",
          b" ", b"\t", b"%00", b"\r\n\r\n", b"\r\n ")
VIA_TRANSPORTS = ("UDP", "TCP", "TLS", "SCTP", "WS", "XYZ")
VIA_PARAMS = ("", ";rport", ";maddr=203.0.113.9", ";maddr=not.an.ip", ";maddr=[::1]",
              ";received=198.51.100.1", ";rport=0", ";maddr=", ";ttl=1;maddr=224.0.0.1")


def template(method: str, *, port: int = 5060, host: str = "127.0.0.1", user: str = "+918000000001",
             branch: str = "z9hG4bKfuzz", transport: str = "UDP", via_params: str = ";rport",
             to_tag: str = "", call_id: str = "fuzz-1", body: bytes = b"",
             extra: bytes = b"", eol: bytes = b"\r\n") -> bytes:
    """A well-formed request from `host:port` to sipmask (the pieces hypothesis varies)."""
    cseq_method = method  # RFC 3261 §9.1, §17.1.1.3: a CANCEL or ACK names itself
    lines = [
        f"{method} sip:{user}@127.0.0.1 SIP/2.0".encode(),
        f"Via: SIP/2.0/{transport} {host}:{port};branch={branch}{via_params}".encode(),
        b"Max-Forwards: 70",
        f"From: \"Alice\" <sip:+919876543210@{host}>;tag=fz1".encode(),
        f"To: <sip:{user}@127.0.0.1>{';tag=' + to_tag if to_tag else ''}".encode(),
        f"Call-ID: {call_id}".encode(),
        f"CSeq: 1 {cseq_method}".encode(),
        f"Contact: <sip:alice@{host}:{port}>".encode(),
    ]
    if extra:
        lines.append(extra)
    if body:
        lines.append(b"Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body)}".encode())
    return eol.join(lines) + eol + eol + body


SDP = (b"v=0\r\no=a 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       b"m=audio 4000 RTP/AVP 0\r\n")


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One of the mutations, chosen by `rng`."""
    choice = rng.randrange(7)
    if choice == 0 or not data:  # poison inside a header value
        lines = data.split(b"\n")
        i = rng.randrange(len(lines))
        line = lines[i]
        at = rng.randrange(len(line) + 1)
        lines[i] = line[:at] + rng.choice(POISON) + line[at:]
        return b"\n".join(lines)
    if choice == 1:  # flip bytes
        out = bytearray(data)
        for _ in range(rng.randrange(1, 4)):
            out[rng.randrange(len(out))] = rng.randrange(256)
        return bytes(out)
    if choice == 2:  # truncate
        return data[: rng.randrange(len(data))]
    if choice == 3:  # duplicate or drop a header line
        lines = data.split(b"\r\n")
        if len(lines) < 3:
            return data
        i = rng.randrange(1, len(lines) - 1)
        if rng.random() < 0.5:
            lines.insert(i, lines[i])
        else:
            del lines[i]
        return b"\r\n".join(lines)
    if choice == 4:  # an odd header
        extra = rng.choice((b"Require: 100rel\x00x", b"Require: " + b"a," * 200,
                            b"Content-Length: 99999", b"Content-Length: -1",
                            b"Max-Forwards: 0", b"Route: <sip:6.6.6.6;lr>",
                            b"To: \"\x00\" <sip:x@y>", b"Via: SIP/2.0/TLS 1.2.3.4;branch=z9hG4bKx"))
        return data.replace(b"\r\n\r\n", b"\r\n" + extra + b"\r\n\r\n", 1)
    if choice == 5:  # LF-only line ends
        return data.replace(b"\r\n", b"\n")
    return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))  # noise


def generated(rng: random.Random, *, port: int = 5060, host: str = "127.0.0.1",
              user: str = "+918000000001") -> bytes:
    """A seeded datagram for the end-to-end runs: a template, then 0-2 mutations."""
    method = rng.choice(METHODS)
    data = template(
        method, port=port, host=host, user=user, branch=f"z9hG4bK{rng.getrandbits(40):x}",
        transport=rng.choice(VIA_TRANSPORTS), via_params=rng.choice(VIA_PARAMS),
        to_tag=rng.choice(("", "", "t1")), call_id=f"fz-{rng.getrandbits(32):x}",
        body=SDP if method == "INVITE" and rng.random() < 0.7 else b"",
        eol=b"\n" if rng.random() < 0.1 else b"\r\n",
    )
    for _ in range(rng.choice((0, 1, 1, 2))):
        data = mutate(data, rng)
    return data


@st.composite
def datagrams(draw: st.DrawFn, *, host: str = "127.0.0.1", port: int = 5060) -> bytes:
    """A hypothesis datagram: the same templates and mutations, driven by hypothesis."""
    seed = draw(st.integers(min_value=0, max_value=2**32 - 1))
    return generated(random.Random(seed), host=host, port=port)
