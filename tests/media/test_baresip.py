"""Real phones: two baresip instances call each other through sipmask (in this process) with
media anchored on a real rtpengine; every UDP datagram on the loopback is captured (dumpcap)
and each datagram rtpengine sent is searched for the other party's number. baresip (libre)
puts its SIP address in the RTCP SDES CNAME and sends its final BYE as BYE + SDES.

Skipped where baresip or dumpcap (Debian packages baresip-core, tshark) is missing or the
capture cannot start (it needs root or the capture capabilities)."""

from __future__ import annotations

import asyncio
import contextlib
import math
import shutil
import struct
import subprocess
import tempfile
import time
import wave
from pathlib import Path

import pytest
from b2bua_helpers import CALLEE, CALLER, POOL, config_for
from rtpengine_helpers import Rtpengine

from sipmask.b2bua import B2BUA
from sipmask.b2bua.anchoring import Anchoring
from sipmask.config import MediaConfig, RtpengineInstance
from sipmask.media.ng import NgClient
from sipmask.sip.events import Address
from sipmask.sip.layer import TransactionLayer
from sipmask.store import MemoryStore
from sipmask.store.model import ParticipantSpec, SessionSpec
from sipmask.transport.endpoint import SipEndpoint

BARESIP = shutil.which("baresip")
DUMPCAP = shutil.which("dumpcap")
MODULES = Path("/usr/lib/baresip/modules")
CALL_SECONDS = 6  # long enough for baresip's first RTCP reports and its final BYE
# baresip's RTP/RTCP ports, above Linux's ephemeral range and rtpengine's test ranges, so the
# capture (which sees every test's loopback traffic) tells the phones' packets apart
PHONE_PORTS = (61000, 61999)

pytestmark = pytest.mark.skipif(
    BARESIP is None or DUMPCAP is None or not MODULES.is_dir(),
    reason="baresip and dumpcap are needed (apt-get install baresip-core tshark)",
)


def _free_pair() -> int:
    """A port p with p and p+1 free on TCP and UDP (baresip's SIP listens on p, TLS p+1)."""
    import socket

    for _ in range(100):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        try:
            for offset in (0, 1):
                for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                    with socket.socket(socket.AF_INET, kind) as sock:
                        sock.bind(("127.0.0.1", port + offset))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair")


def _baresip_dir(root: Path, name: str, port: int, aor: str, *, answer: bool) -> Path:
    home = root / name
    home.mkdir()
    tone = home / "tone.wav"
    with wave.open(str(tone), "wb") as out:  # 8 kHz like PCMU: aufile does not resample
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"".join(
            struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / 8000)))
            for i in range(8000 * (CALL_SECONDS + 4))))
    (home / "config").write_text(
        f"poll_method epoll\nsip_listen 127.0.0.1:{port}\naudio_source aufile,{tone}\n"
        f"rtp_ports {PHONE_PORTS[0]}-{PHONE_PORTS[1]}\nrtcp_mux no\n"
        f"module_path {MODULES}\nmodule g711.so\nmodule aufile.so\n"
        "module_app account.so\nmodule_app menu.so\n"
    )
    mode = ";answermode=auto" if answer else ""
    (home / "accounts").write_text(f"<sip:{aor}@127.0.0.1:{port}>;regint=0{mode}\n")
    return home


async def _capturing(dumpcap: subprocess.Popen[bytes], capture: Path) -> bool:
    """Whether dumpcap captures: probes (phone port to phone port, no number) until the file
    grows past its header (dumpcap writes the header before it captures)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        header = None
        for _ in range(100):
            if dumpcap.poll() is not None:
                return False
            size = capture.stat().st_size if capture.exists() else None
            if size is not None:
                if header is not None and size > header:
                    return True
                header = size if header is None else header
            probe.sendto(b"probe", ("127.0.0.1", PHONE_PORTS[1]))
            await asyncio.sleep(0.1)
    return False


def _udp_bound(port: int) -> bool:
    """Whether a UDP socket is bound to `port` (from /proc: probing by bind could steal it)."""
    wanted = f":{port:04X}"
    lines = Path("/proc/net/udp").read_text().splitlines()[1:]
    return any(line.split()[1].endswith(wanted) for line in lines)


def _datagrams(capture: Path) -> list[tuple[int, int, bytes]]:
    """(source port, destination port, payload) of every UDP datagram captured."""
    fields = subprocess.run(
        ["tshark", "-r", str(capture), "-T", "fields", "-e", "udp.srcport", "-e",
         "udp.dstport", "-e", "udp.payload"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout
    out = []
    for line in fields.splitlines():
        parts = line.split("\t")
        if len(parts) == 3 and parts[0] and parts[1] and parts[2]:
            out.append((int(parts[0]), int(parts[1]), bytes.fromhex(parts[2])))
    return out


async def _call(rtpengine: Rtpengine, rtcp: str, root: Path) -> list[tuple[int, int, bytes]]:
    """One baresip-to-baresip call through sipmask and rtpengine; the capture of it."""
    a_port, b_port = _free_pair(), _free_pair()

    class Callee:  # what config_for needs of a callee: where it listens
        address = Address("127.0.0.1", b_port)

    config = config_for([Callee()])  # type: ignore[list-item]
    store = MemoryStore(None)
    await store.set_pool("default", POOL)
    session = await store.create_session(SessionSpec(
        participants=(ParticipantSpec(CALLER), ParticipantSpec(CALLEE))))
    client = NgClient([("127.0.0.1", rtpengine.ng_port, 1)], ping_interval=0)
    await client.start()
    media = MediaConfig(backend="rtpengine", rtpengine=(RtpengineInstance(rtpengine.address),),
                        rtcp=rtcp)  # type: ignore[arg-type]
    engine = B2BUA(config, store, media=Anchoring(client, media))
    endpoint = SipEndpoint(engine.handle, layer=TransactionLayer(config.sip.timers),
                           allowed=("0.0.0.0/0",))
    engine.attach(endpoint)
    sipmask = await endpoint.listen("udp:127.0.0.1:0")
    capture = root / f"{rtcp}.pcapng"
    only_phones = f"udp portrange {PHONE_PORTS[0]}-{PHONE_PORTS[1]}"  # nobody else's traffic
    dumpcap = subprocess.Popen([str(DUMPCAP), "-q", "-i", "lo", "-f", only_phones, "-w",
                                str(capture)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    callee = caller = None
    try:
        if not await _capturing(dumpcap, capture):
            pytest.skip("dumpcap cannot capture on lo here")
        b_home = _baresip_dir(root, f"{rtcp}-b", b_port, CALLEE, answer=True)
        a_home = _baresip_dir(root, f"{rtcp}-a", a_port, CALLER, answer=False)
        callee = subprocess.Popen([BARESIP, "-f", str(b_home)], stdin=subprocess.DEVNULL,  # type: ignore[list-item]
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):  # ready once its SIP port is bound
            if _udp_bound(b_port) or callee.poll() is not None:
                break
            await asyncio.sleep(0.05)
        dialled = session.participants[0].proxy_identifier
        caller = subprocess.Popen(
            [BARESIP, "-f", str(a_home), "-t", str(CALL_SECONDS),  # type: ignore[list-item]
             "-e", f"/dial sip:{dialled}@127.0.0.1:{sipmask.port}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + CALL_SECONDS + 10
        while caller.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        await asyncio.sleep(2.0)  # the final RTCP and BYE drain through (a bound)
    finally:
        for process in (caller, callee, dumpcap):
            if process is not None and process.poll() is None:
                process.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(5)
                if process.poll() is None:
                    process.kill()
                    process.wait()
        await engine.close()
        await endpoint.close()
        await client.close()
        await store.close()
    return _datagrams(capture)


def _rtcp_types(payload: bytes) -> list[int]:
    return [payload[1]] if len(payload) > 1 and 200 <= payload[1] <= 204 else []


@pytest.mark.parametrize("rtcp", ["drop", "regenerate", "relay"])
def test_baresip_numbers_in_rtcp_through_rtpengine(rtpengine: Rtpengine, rtcp: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        datagrams = asyncio.run(_call(rtpengine, rtcp, Path(tmp)))
    caller_digits, callee_digits = CALLER[3:].encode(), CALLEE[3:].encode()
    def phone(port: int) -> bool:
        return PHONE_PORTS[0] <= port <= PHONE_PORTS[1]

    def anchor(port: int) -> bool:
        return rtpengine.port_min <= port <= rtpengine.port_max

    from_anchor = [(dst, p) for src, dst, p in datagrams if anchor(src) and phone(dst)]
    to_anchor = [(dst, p) for src, dst, p in datagrams if phone(src) and anchor(dst)]
    assert len(from_anchor) > 20, f"no media through rtpengine ({len(datagrams)} captured)"
    # baresip does put its own number in its RTCP (so the capture would see it cross)
    sent_rtcp = [p for src, _, p in datagrams
                 if PHONE_PORTS[0] <= src <= PHONE_PORTS[1] and _rtcp_types(p)
                 and (caller_digits in p or callee_digits in p)]
    assert sent_rtcp, "the phones sent no RTCP with their number"
    crossing = sorted({p[1] for _, p in from_anchor
                       if caller_digits in p or callee_digits in p})
    if rtcp == "drop":
        assert crossing == [], crossing
        assert not [p for _, p in to_anchor if caller_digits in p or callee_digits in p]
        assert any(dst == 9 for src, dst, p in datagrams  # the phones obeyed a=rtcp:9
                   if PHONE_PORTS[0] <= src <= PHONE_PORTS[1] and _rtcp_types(p))
    elif rtcp == "regenerate":
        # the reports are rtpengine's own; libre's final BYE+SDES (and any compound without
        # an SR/RR) is relayed as it came: the residual docs/media.md describes
        assert crossing and 200 not in crossing and 201 not in crossing
    else:
        assert 200 in crossing  # relayed: SR + SDES with the CNAME
