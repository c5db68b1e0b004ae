"""What the media hook learns of a call (its `MediaContext`), recording per session or per
trunk (a real rtpengine writing pcaps; the reference in the call record and `call.ended`),
and the announcement a pool plays to the caller through rtpengine's `play media`."""

from __future__ import annotations

import asyncio
import math
import struct
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from b2bua_helpers import CALLEE, CALLER, POOL, Rig, answered_call, in_dialog, rig
from rtpengine_helpers import BOUND, RTPENGINE, Rtpengine, offer_sdp, rtp_packet
from test_anchored_calls import CALLER_MEDIA, _flow, anchored_call

from sipmask.b2bua.media import MediaContext, Passthrough
from sipmask.config import PoolConfig
from sipmask.store.events import EventPublisher
from sipmask.store.memory import MemoryStore
from sipmask.store.model import Interaction, ParticipantSpec, Session, SessionSpec


class Told(Passthrough):
    """Keeps every context the engine passes."""

    def __init__(self) -> None:
        self.contexts: list[MediaContext] = []
        self.ended: list[MediaContext] = []

    async def offer(self, call: MediaContext, leg: str, sdp: bytes) -> bytes:
        self.contexts.append(call)
        return sdp

    async def answer(self, call: MediaContext, leg: str, sdp: bytes) -> bytes:
        self.contexts.append(call)
        return sdp

    async def end(self, call: MediaContext) -> None:
        self.ended.append(call)


async def _store_with_session(*, record: bool = False, announcement: str | None = None,
                              ) -> tuple[MemoryStore, Session]:
    store = MemoryStore(None)
    await store.set_pool("default", POOL)
    session = await store.create_session(SessionSpec(
        participants=(ParticipantSpec(CALLER), ParticipantSpec(CALLEE)), record=record,
        announcement=announcement))
    return store, session


def _with(session: Session, then: Callable[[Rig], None] | None = None,
          ) -> Callable[[Rig], None]:
    """Before the call: the rig is told the session it did not open itself."""
    def before(r: Rig) -> None:
        r.session = session
        if then is not None:
            then(r)
    return before


async def _records(store: MemoryStore, session_id: str) -> list[Interaction]:
    for _ in range(int(BOUND / 0.02)):  # records are written in batches
        if found := await store.list_interactions(session_id):
            return found
        await asyncio.sleep(0.02)
    raise AssertionError("no call record")


@pytest.mark.parametrize("record", [False, True])
def test_the_hook_is_told_the_call_once_per_call(record: bool) -> None:
    async def main() -> None:
        hook = Told()
        store, session = await _store_with_session(record=record)
        session_id = session.id
        async with rig(media=hook, store=store, session=False) as r:
            r.session = session
            invite, ok, _, _ = await answered_call(r)
            in_dialog(r.caller, invite, ok, "BYE", 2, r.sipmask)
            await r.callee.request("BYE")
            (call_id,) = {c.call_id for c in hook.contexts}
            for _ in range(int(BOUND / 0.02)):
                if hook.ended:
                    break
                await asyncio.sleep(0.02)
            # one object for the whole call: every offer and answer, and the end
            assert len({id(c) for c in hook.contexts + hook.ended}) == 1
            assert hook.contexts[0] == MediaContext(
                call_id=call_id, session_id=session_id, caller_trunk="carrier",
                callee_trunk="carrier", record=record, announcement=None)
            (kept,) = await _records(r.store, session_id)
            assert kept.recording is None  # Passthrough records nothing

    asyncio.run(main())


def _recorded_call(tmp_path: Path, *, session_record: bool, trunk_record: bool) -> None:
    if RTPENGINE is None:
        pytest.skip("rtpengine is not installed (Debian package rtpengine-daemon)")
    recorder = Rtpengine(recording_dir=tmp_path)
    recorder.start()

    def record_the_trunk(r: Rig) -> None:
        # The rig's TOML has no room for a trunk key; set it as a reload would.
        trunk = r.engine.router.by_name["carrier"]
        trunk.config = msgspec.structs.replace(trunk.config, record=True)

    async def main() -> None:
        seen: list[Any] = []
        events = EventPublisher.for_store("memory", data_dir=None, subscribers=[seen.append])
        await events.start()
        store, session = await _store_with_session(record=session_record)
        session_id = session.id
        try:
            async with anchored_call(
                    recorder, store=store, events=events, session=False,
                    before_call=_with(session, record_the_trunk if trunk_record else None),
            ) as call:
                await _flow(call, 0)
                (call_id,) = [c.id for c in call.r.engine.calls]
                in_dialog(call.r.caller, call.invite, call.ok, "BYE", 2, call.r.sipmask)
                await call.r.callee.request("BYE")
                (kept,) = await _records(store, session_id)
        finally:
            await events.close()
        assert kept.recording == call_id
        (ended,) = [e for e in seen if getattr(e, "kind", None) == "call.ended"]
        assert ended.data["recording"] == call_id
        (pcap,) = (tmp_path / "pcaps").glob(f"{kept.recording}-*.pcap")
        data = pcap.read_bytes()
        # RTP from both parties, as rtpengine received it (their SSRCs)
        assert b"\x00\x00\x11\x11" in data and b"\x00\x00\x22\x22" in data
        (meta,) = (tmp_path / "metadata").glob(f"rtpengine-meta-{call_id}-*")
        assert f"sipmask_session:{session_id}" in meta.read_text(errors="replace")

    try:
        asyncio.run(main())
    finally:
        recorder.stop()


def test_a_session_with_record_leaves_a_pcap_and_its_reference(tmp_path: Path) -> None:
    _recorded_call(tmp_path, session_record=True, trunk_record=False)


def test_a_trunk_with_record_leaves_a_pcap_and_its_reference(tmp_path: Path) -> None:
    _recorded_call(tmp_path, session_record=False, trunk_record=True)


def test_an_unrecorded_call_has_no_recording(tmp_path: Path) -> None:
    if RTPENGINE is None:
        pytest.skip("rtpengine is not installed (Debian package rtpengine-daemon)")
    recorder = Rtpengine(recording_dir=tmp_path)
    recorder.start()

    async def main() -> None:
        store, session = await _store_with_session(record=False)
        session_id = session.id
        async with anchored_call(recorder, store=store, session=False,
                                 before_call=_with(session)) as call:
            await _flow(call, 0)
            in_dialog(call.r.caller, call.invite, call.ok, "BYE", 2, call.r.sipmask)
            await call.r.callee.request("BYE")
            (kept,) = await _records(store, session_id)
        assert kept.recording is None
        assert not list((tmp_path / "pcaps").glob("*.pcap"))

    try:
        asyncio.run(main())
    finally:
        recorder.stop()


TONE_HZ, TONE_AMPLITUDE = 1000, 8000


def _prompt(path: Path) -> Path:
    """One second of a 1 kHz tone, 8 kHz mono 16-bit: 50 packets of 20 ms."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"".join(
            struct.pack("<h", round(TONE_AMPLITUDE * math.sin(2 * math.pi * TONE_HZ * i / 8000)))
            for i in range(8000)))
    return path


def _ulaw(byte: int) -> int:
    """G.711 mu-law to a linear sample."""
    u = ~byte & 0xFF
    sample = (((u & 0x0F) << 3) + 0x84) << ((u >> 4) & 0x07)
    return 0x84 - sample if u & 0x80 else sample - 0x84


@pytest.mark.parametrize("named_by", ["pool", "session"])
def test_the_announcement_reaches_the_caller_before_the_bridge(
        rtpengine: Rtpengine, tmp_path: Path, named_by: str) -> None:
    prompt = _prompt(tmp_path / "prompt.wav")

    def announce(r: Rig) -> None:
        # The rig's TOML has no prompts; set them as a reload would.
        config = r.engine.config
        pool = PoolConfig(name="default", numbers=POOL,
                          announcement="notice" if named_by == "pool" else None)
        r.engine.config = msgspec.structs.replace(
            config, pools=(pool,), media=msgspec.structs.replace(
                config.media, announcements={"notice": str(prompt), "other": "/nowhere"}))

    async def main() -> None:
        store, session = await _store_with_session(
            announcement="notice" if named_by == "session" else None)
        async with anchored_call(rtpengine, store=store, session=False,
                                 before_call=_with(session, announce)) as call:
            # both parties talk all along; the caller hears the prompt, then the callee
            seq, heard_during_prompt = 0, None
            while not any(p[8:12] == b"\x00\x00\x22\x22" for p in call.alice.rtp_in):
                assert seq < BOUND / 0.02, f"{len(call.alice.rtp_in)} packets, no bridge"
                call.alice.send_rtp(rtp_packet(seq, 0x1111), call.to_anchor_from_alice)
                call.bob.send_rtp(rtp_packet(seq, 0x2222), call.to_anchor_from_bob)
                seq += 1
                await asyncio.sleep(0.02)
                if heard_during_prompt is None and len(call.alice.rtp_in) >= 25:
                    heard_during_prompt = len(call.bob.rtp_in)  # the prompt is half played
            received = list(call.alice.rtp_in)
            # Both directions are unblocked together, but the callee's first packet from the
            # caller may still be on its way when the caller hears the callee: go on a little.
            extra = 0
            while not call.bob.rtp_in and extra < 50:
                call.alice.send_rtp(rtp_packet(seq, 0x1111), call.to_anchor_from_alice)
                seq, extra = seq + 1, extra + 1
                await asyncio.sleep(0.02)
            in_dialog(call.r.caller, call.invite, call.ok, "BYE", 2, call.r.sipmask)
            await call.r.callee.request("BYE")
        assert call.hook.snapshot()["media_announcements_total"] == 1
        first_bob = next(i for i, p in enumerate(received) if p[8:12] == b"\x00\x00\x22\x22")
        packets = received[:first_bob]
        assert len(packets) >= 45, f"{len(packets)} prompt packets"  # 1 s of 20 ms packets
        assert len({p[8:12] for p in packets}) == 1  # one stream: rtpengine's, nothing else
        assert {p[1] & 0x7F for p in packets} == {0}  # PCMU, as alice offered
        # the callee heard nothing of the caller during the prompt, and then did
        assert heard_during_prompt == 0 and call.bob.rtp_in
        for packet in packets[2:-2]:
            samples = [_ulaw(b) for b in packet[12:]]
            assert len(samples) == 160
            rms = math.sqrt(sum(s * s for s in samples) / len(samples))
            crossings = sum(1 for a, b in zip(samples, samples[1:]) if (a < 0) != (b < 0))
            # the tone of the WAV: its loudness, and 1 kHz = 40 sign changes per 20 ms
            assert abs(rms - TONE_AMPLITUDE / math.sqrt(2)) < 0.1 * TONE_AMPLITUDE
            assert 38 <= crossings <= 42

    asyncio.run(main())


def test_a_trunk_media_setting_replaces_the_side_default(rtpengine: Rtpengine) -> None:
    from sipmask._core import Response
    from sipmask.b2bua.anchoring import Anchoring
    from sipmask.config import MediaConfig, MediaSide, RtpengineInstance, parse_config
    from sipmask.media.ng import NgClient

    # the key as an operator writes it
    trunk = parse_config(
        '[[trunks]]\nname = "carrier"\ninbound = ["127.0.0.1/32"]\n'
        '[trunks.media]\ntransport_protocol = "RTP/SAVP"\n', env={}).trunks[0]
    assert trunk.media == MediaSide(transport_protocol="RTP/SAVP")

    async def main() -> None:
        config = MediaConfig(backend="rtpengine", rtpengine=(RtpengineInstance(rtpengine.address),),
                             callee=MediaSide(transport_protocol="RTP/AVP"))
        client = NgClient([("127.0.0.1", rtpengine.ng_port, 1)], ping_interval=0)
        await client.start()
        try:
            async with rig(media=Anchoring(client, config)) as r:
                state = r.engine.router.by_name["carrier"]
                state.config = msgspec.structs.replace(state.config, media=trunk.media)
                r.invite(body=offer_sdp(CALLER_MEDIA, 40000))
                b_invite = await r.callee.request("INVITE")
                # the callee's trunk says SAVP, [media.callee] AVP: the trunk's wins
                assert b" RTP/SAVP 0" in b_invite.body and b"a=crypto:" in b_invite.body
                r.callee.answer(b_invite, 486)
                final = await r.caller.next()
                while not (isinstance(final, Response) and final.status >= 300):
                    final = await r.caller.next()
        finally:
            await client.close()

    asyncio.run(main())
