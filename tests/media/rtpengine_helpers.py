"""A real rtpengine (Debian's rtpengine-daemon, userspace only) for the media tests: ng on a
free loopback UDP port, media ports from a range of its own on 127.0.0.1; and scripted RTP
endpoints on their own loopback addresses."""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time
from pathlib import Path

RTPENGINE = shutil.which("rtpengine") or (
    "/usr/bin/rtpengine" if os.path.exists("/usr/bin/rtpengine") else None)

BOUND = 5.0
"""Safety bound so a broken test fails instead of hanging; never an assertion on time."""

_ranges = itertools.count(0)


def free_udp_port(host: str = "127.0.0.1") -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class Rtpengine:
    """One rtpengine process; `stop` kills it (an outage), `start` brings it back on the same
    ports."""

    def __init__(self, recording_dir: Path | None = None) -> None:
        assert RTPENGINE is not None
        self.recording_dir = recording_dir
        self.ng_port = free_udp_port()
        # A block of media ports per instance, spread by pid so parallel runs rarely meet.
        base = 20_000 + ((os.getpid() * 7 + next(_ranges) * 400) % 30_000)
        self.port_min, self.port_max = base, base + 399
        self.process: subprocess.Popen[bytes] | None = None
        self.log = Path(tempfile.mkdtemp(prefix="rtpengine-")) / "rtpengine.log"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.ng_port}"

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [RTPENGINE, "--table=-1", "--config-file=none", "--foreground",
                 "--log-stderr", "--no-log-timestamps", "--interface=127.0.0.1",
                 *(["--interface=::1"] if loopback_bindable("::1") else []),
                 f"--listen-ng=127.0.0.1:{self.ng_port}",
                 f"--port-min={self.port_min}", f"--port-max={self.port_max}",
                 "--log-level=6", *self._recording()],
                stdout=subprocess.DEVNULL, stderr=log,
                cwd=self.log.parent,  # anything it writes (a core dump) stays out of the repo
            )
        deadline = time.monotonic() + 10
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(0.1)
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"rtpengine exited: {self.log.read_text()[-2000:]}")
                try:
                    sock.sendto(b"ready d7:command4:pinge", ("127.0.0.1", self.ng_port))
                    if b"pong" in sock.recv(1000):
                        return
                except OSError:
                    time.sleep(0.05)
        raise RuntimeError("rtpengine did not answer a ping")

    def _recording(self) -> list[str]:
        if self.recording_dir is None:
            return []
        return [f"--recording-dir={self.recording_dir}", "--recording-method=pcap"]

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


def offer_sdp(host: str, port: int, *, owner: str = "alice", direction: str = "sendrecv",
              proto: str = "RTP/AVP") -> bytes:
    family = "IP6" if ":" in host else "IP4"
    return (
        f"v=0\r\no={owner} 2890844526 2890844526 IN {family} {host}\r\ns=call\r\n"
        f"c=IN {family} {host}\r\nt=0 0\r\nm=audio {port} {proto} 0\r\n"
        f"a=rtpmap:0 PCMU/8000\r\na={direction}\r\n"
    ).encode()


def rtp_packet(seq: int, ssrc: int) -> bytes:
    return struct.pack("!BBHII", 0x80, 0, seq & 0xFFFF, seq * 160, ssrc) + b"\xff" * 160


def rtcp_with_identity(ssrc: int, cname: bytes, *, bye: bool = True,
                       bye_first: bool = False) -> bytes:
    """A compound RTCP packet as a phone sends it: SR, SDES (CNAME, NAME, EMAIL, PHONE, TOOL,
    NOTE all holding `cname`), and BYE with a reason holding it too (the final one).
    bye_first: the final packet as libre (baresip) sends it, BYE then SDES, no report."""
    sr = struct.pack("!BBHIIIIII", 0x80, 200, 6, ssrc, 0, 0, 0, 0, 0)
    items = b"".join(bytes([kind, len(cname)]) + cname for kind in (1, 2, 3, 4, 6, 7))
    chunk = struct.pack("!I", ssrc) + items + b"\x00"
    chunk += b"\x00" * (-len(chunk) % 4)
    sdes = struct.pack("!BBH", 0x81, 202, len(chunk) // 4) + chunk
    if not bye:
        return sr + sdes
    reason = bytes([len(cname)]) + cname
    reason += b"\x00" * (-len(reason) % 4)
    goodbye = struct.pack("!BBHI", 0x81, 203, 1 + len(reason) // 4, ssrc) + reason
    return goodbye + sdes if bye_first else sr + sdes + goodbye


class MediaEndpoint(asyncio.DatagramProtocol):
    """A scripted RTP endpoint: an RTP socket and the RTCP socket beside it (port + 1) on one
    loopback address; keeps every datagram received on each."""

    def __init__(self) -> None:
        self.rtp_in: list[bytes] = []
        self.rtcp_in: list[bytes] = []
        self.host = ""
        self.port = 0
        self._rtp: asyncio.DatagramTransport | None = None
        self._rtcp: asyncio.DatagramTransport | None = None

    async def start(self, host: str) -> MediaEndpoint:
        loop = asyncio.get_running_loop()
        for _ in range(50):
            port = free_udp_port(host) & ~1
            try:
                self._rtp, _ = await loop.create_datagram_endpoint(
                    lambda: _Sink(self.rtp_in), local_addr=(host, port))
                self._rtcp, _ = await loop.create_datagram_endpoint(
                    lambda: _Sink(self.rtcp_in), local_addr=(host, port + 1))
            except OSError:
                if self._rtp is not None:
                    self._rtp.close()
                self._rtp = None
                continue
            self.host, self.port = host, port
            return self
        raise RuntimeError("no free even/odd port pair")

    def send_rtp(self, packet: bytes, dest: tuple[str, int]) -> None:
        assert self._rtp is not None
        self._rtp.sendto(packet, dest)

    def send_rtcp(self, packet: bytes, dest: tuple[str, int]) -> None:
        assert self._rtcp is not None
        self._rtcp.sendto(packet, dest)

    def close(self) -> None:
        for transport in (self._rtp, self._rtcp):
            if transport is not None:
                transport.close()


class _Sink(asyncio.DatagramProtocol):
    def __init__(self, into: list[bytes]) -> None:
        self.into = into

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.into.append(data)


def loopback_bindable(host: str) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.bind((host, 0))
    except OSError:
        return False
    return True
