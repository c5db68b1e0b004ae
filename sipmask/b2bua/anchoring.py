"""Media anchoring through rtpengine: the `MediaHook` that sends every offer and answer of a
call through rtpengine's ng protocol, so each side sees only rtpengine's addresses (and, with
the configured flags, its keys and its RTCP: docs/media.md).

Tags: rtpengine knows a call by the B2BUA's call id and its two parties by the tags `caller`
and `callee` (the legs' names, never a SIP tag that a peer chose). An offer sent on a leg
comes from the other party; an answer sent on a leg answers that leg's offer. So an offer
sent on `callee` is `offer from-tag=caller`, and a re-INVITE the callee sends is `offer
from-tag=callee`: rtpengine takes offers in either direction. Forks of the B leg and failover
to the next destination re-answer or re-offer under the same `callee` tag: the last answer
wins, as in the signalling (the core keeps one B dialog).

What rtpengine returns is rebuilt once more through the core's SDP allow-list (defence in
depth), keeping the o= line the engine gave the leg.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from .._core import parse_sdp, rebuild_sdp
from ..errors import ParseError
from ..media.bencode import Encodable
from ..media.ng import NgClient, NgError, NgUnavailable
from .media import MediaContext, MediaRefused
from .settings import MediaConfig, MediaSide

log = logging.getLogger(__name__)

OTHER = {"caller": "callee", "callee": "caller"}


@dataclass(slots=True)
class AnchoringStats:
    """Counters for metrics (only ever incremented)."""

    offers: int = 0
    answers: int = 0
    calls_anchored: int = 0
    """Calls whose first offer rtpengine took."""
    calls_direct: int = 0
    """Calls whose media flows directly because no rtpengine answered (on_failure=direct)."""
    calls_refused: int = 0
    """Calls ended because no rtpengine answered (on_failure=reject)."""
    failures: int = 0
    """ng commands that failed (timeout, error reply, no instance up)."""
    recordings: int = 0
    """Calls whose recording rtpengine started."""
    announcements: int = 0
    """Prompts rtpengine started playing to a caller."""


class Anchoring:
    """The rtpengine `MediaHook` (`media.py`).

    Args:
        client: the ng client (started by whoever owns it).
        config: the `[media]` section.
    """

    def __init__(self, client: NgClient, config: MediaConfig) -> None:
        self.client = client
        self.config = config
        self.stats = AnchoringStats()
        self._direct: set[str] = set()
        self._last: dict[tuple[str, str], bytes] = {}
        """The last body sent on each (call, leg): resent when rtpengine is gone mid-call."""
        self._recorded: set[str] = set()
        """Calls whose recording rtpengine started."""
        self._answered: set[str] = set()
        """Calls that had their first answer (recording and announcement start then)."""
        self._prompts: dict[str, asyncio.TimerHandle] = {}
        """Calls playing their announcement: the unblock when it is over."""
        self._tasks: set[asyncio.Task[None]] = set()
        self._busy: dict[str, asyncio.Future[None]] = {}
        """The command in flight per call (the engine sends one at a time per call): `end`
        waits for it, or a call ended during its first offer would stay in rtpengine."""

    def recording(self, call: MediaContext) -> str | None:
        """The reference of a call's recording: the call id rtpengine knows it by, which
        names its files (`pcaps/<id>-<random>.pcap`, `metadata/rtpengine-meta-<id>-...`);
        None when rtpengine did not start recording it. (rtpengine's replies name no file.)"""
        return call.call_id if call.call_id in self._recorded else None

    def snapshot(self) -> dict[str, int]:
        """Media metrics, flat, for `metrics.py`: counters (only ever increase) and the
        instances up/down and calls anchored now (gauges)."""
        ng = self.client.stats
        up = sum(1 for instance in self.client.instances if instance.up)
        return {
            "media_offers_total": self.stats.offers,
            "media_answers_total": self.stats.answers,
            "media_calls_anchored_total": self.stats.calls_anchored,
            "media_calls_direct_total": self.stats.calls_direct,
            "media_calls_refused_total": self.stats.calls_refused,
            "media_failures_total": self.stats.failures,
            "media_recordings_total": self.stats.recordings,
            "media_announcements_total": self.stats.announcements,
            "media_ng_requests_total": ng.requests,
            "media_ng_errors_total": ng.errors,
            "media_ng_timeouts_total": ng.timeouts,
            "media_ng_unavailable_total": ng.unavailable,
            "media_calls_anchored_now": sum(i.calls for i in self.client.instances),
            "media_rtpengine_up": up,
            "media_rtpengine_down": len(self.client.instances) - up,
        }

    async def offer(self, call: MediaContext, leg: str, sdp: bytes) -> bytes:
        self.stats.offers += 1
        offerer = OTHER[leg]
        message: dict[str, Encodable] = {
            "command": "offer", "from-tag": offerer, "sdp": sdp,
            **self._options(self._side(call, leg)),
        }
        towards, source = self._side(call, leg), self._side(call, offerer)
        if towards.interface and source.interface:
            message["direction"] = [source.interface, towards.interface]
        if towards.transport_protocol:
            message["transport-protocol"] = towards.transport_protocol
        if towards.address_family:
            message["address family"] = towards.address_family
        return await self._command(call, leg, sdp, message)

    async def answer(self, call: MediaContext, leg: str, sdp: bytes) -> bytes:
        self.stats.answers += 1
        message: dict[str, Encodable] = {
            "command": "answer", "from-tag": leg, "to-tag": OTHER[leg], "sdp": sdp,
            **self._options(self._side(call, leg)),
        }
        return await self._command(call, leg, sdp, message, answered=True)

    async def end(self, call: MediaContext) -> None:
        call_id = call.call_id
        busy = self._busy.get(call_id)
        if busy is not None:
            await busy
        self._direct.discard(call_id)
        self._answered.discard(call_id)
        if (prompt := self._prompts.pop(call_id, None)) is not None:
            prompt.cancel()
        recorded = call_id in self._recorded
        self._recorded.discard(call_id)
        self._last.pop((call_id, "caller"), None)
        self._last.pop((call_id, "callee"), None)
        if not self.client.anchored(call_id):
            return
        if recorded:
            # rtpengine closes the files at delete too; stopping first ends the recording
            # even when the delete is lost.
            try:
                await self.client.call_command(call_id, {"command": "stop recording"})
            except NgError as exc:
                self.stats.failures += 1
                log.warning("call %s: rtpengine stop recording failed: %s", call_id, exc)
        try:
            await self.client.call_command(call_id, {"command": "delete"})
        except NgError as exc:
            # rtpengine forgets the call on its own (its timeouts): nothing leaks by waiting.
            self.stats.failures += 1
            log.warning("call %s: rtpengine delete failed: %s", call_id, exc)
        finally:
            self.client.release(call_id)

    # --- helpers ---------------------------------------------------------------------------

    def _side(self, call: MediaContext, leg: str) -> MediaSide:
        """How media is presented towards `leg`: its trunk's `media`, else `[media.<leg>]`."""
        if leg == "caller":
            return call.caller_media or self.config.caller
        return call.callee_media or self.config.callee

    def _options(self, side: MediaSide) -> dict[str, Encodable]:
        flags: list[Encodable] = [*self.config.flags, *side.flags]
        options: dict[str, Encodable] = {
            "replace": ["origin", "session-connection"],
            "ICE": side.ice,
        }
        if self.config.rtcp != "relay":
            flags.append("generate RTCP")
        if self.config.rtcp == "drop":
            options["rtcp-mux"] = ["reject"]  # RTCP on its own port, the one we point away
        options["flags"] = flags
        return options

    async def _command(self, call: MediaContext, leg: str, sdp: bytes,
                       message: dict[str, Encodable], *, answered: bool = False) -> bytes:
        call_id = call.call_id
        if call_id in self._direct:
            return sdp
        new_call = not self.client.anchored(call_id)
        done = asyncio.get_running_loop().create_future()
        self._busy[call_id] = done
        try:
            reply = await self.client.call_command(call_id, message)
            body = reply.get(b"sdp")
            if not isinstance(body, bytes):
                raise NgError("reply without sdp")
            if self.config.rtcp == "drop":
                body = _rtcp_to_discard(body)
            out = _rebuild_like(sdp, body)
            if answered and call_id not in self._answered:
                self._answered.add(call_id)
                await self._on_first_answer(call)
        except (NgError, ParseError) as exc:
            self.stats.failures += 1
            return self._failed(call_id, leg, sdp, new_call, exc)
        finally:
            del self._busy[call_id]
            done.set_result(None)
        if new_call:
            self.stats.calls_anchored += 1
        self._last[call_id, leg] = out
        return out

    async def _on_first_answer(self, call: MediaContext) -> None:
        """Both parties' media is known to rtpengine: start recording (when the session, a
        trunk or `[media] record` asks) and play the announcement to the caller. A failure
        here is logged and the call goes on (unrecorded, or without the prompt)."""
        call_id = call.call_id
        if call.record or self.config.record:
            metadata = f"sipmask_call:{call_id}"
            if call.session_id is not None:
                metadata += f"|sipmask_session:{call.session_id}"
            try:
                await self.client.call_command(call_id, {
                    "command": "start recording", "from-tag": "caller", "metadata": metadata})
            except NgError as exc:
                self.stats.failures += 1
                log.warning("call %s: rtpengine did not start recording: %s", call_id, exc)
            else:
                self._recorded.add(call_id)
                self.stats.recordings += 1
        if call.announcement is not None:
            await self._announce(call_id, call.announcement)

    async def _announce(self, call_id: str, prompt: str) -> None:
        """Play `prompt` to the caller before the parties are bridged: media from both
        parties is blocked, rtpengine plays the file to the caller (from its own RTP port,
        its own SSRC), and both are unblocked when it reports the prompt over. Without the
        block the callee's media would reach the caller interleaved with the prompt."""
        try:
            for tag in ("callee", "caller"):
                await self.client.call_command(call_id, {"command": "block media",
                                                         "from-tag": tag})
            reply = await self.client.call_command(call_id, {
                "command": "play media", "from-tag": "caller", "file": prompt})
        except NgError as exc:
            self.stats.failures += 1
            log.warning("call %s: rtpengine did not play the announcement: %s", call_id, exc)
            duration = 0.0
        else:
            self.stats.announcements += 1
            value = reply.get(b"duration")
            duration = value / 1000 if isinstance(value, int) and value > 0 else 0.0
        loop = asyncio.get_running_loop()
        self._prompts[call_id] = loop.call_later(duration, self._bridge, call_id)

    def _bridge(self, call_id: str) -> None:
        """The prompt is over: media flows between the parties."""
        self._prompts.pop(call_id, None)
        task = asyncio.ensure_future(self._unblock(call_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _unblock(self, call_id: str) -> None:
        if not self.client.anchored(call_id):
            return  # ended meanwhile (and deleted)
        try:
            for tag in ("callee", "caller"):
                await self.client.call_command(call_id, {"command": "unblock media",
                                                         "from-tag": tag})
        except NgError as exc:
            self.stats.failures += 1
            log.warning("call %s: rtpengine did not unblock media after the announcement: "
                        "%s", call_id, exc)

    def _failed(self, call_id: str, leg: str, sdp: bytes, new_call: bool,
                exc: Exception) -> bytes:
        last = self._last.get((call_id, leg))
        if not new_call and last is not None:
            # Mid-call (a re-INVITE, an UPDATE): the new body on the anchored addresses and
            # ports, so signalling (hold, resume) goes on and no real address crosses.
            log.warning("call %s: rtpengine failed mid-call (%s); anchored addresses kept",
                        call_id, exc)
            try:
                return _on_anchor(sdp, last)
            except ParseError:
                return last
        if new_call and self.config.on_failure == "direct":
            kind = "no rtpengine up" if isinstance(exc, NgUnavailable) else str(exc)
            log.warning("call %s: not anchored (%s); media flows directly", call_id, kind)
            self._direct.add(call_id)
            self.stats.calls_direct += 1
            return sdp
        log.warning("call %s: rtpengine failed (%s); call refused", call_id, exc)
        self.stats.calls_refused += 1
        raise MediaRefused(str(exc))


def _rebuild_like(original: bytes, anchored: bytes) -> bytes:
    """`anchored` through the core's allow-list, with the session id and version of
    `original` (the engine's for the leg) and the o= address rtpengine put (its own)."""
    _, session_id, version = _origin(original)
    address, _, _ = _origin(anchored)
    return rebuild_sdp(anchored, origin_address=address, session_id=session_id,
                       version=version)


DISCARD_PORT = 9
"""RFC 863 discard: where each side is told to send its RTCP when `rtcp = "drop"`."""


def _rtcp_to_discard(sdp: bytes) -> bytes:
    """Each media section's RTCP pointed at the discard port on the section's address, and
    rtcp-mux left out (so RTCP never rides the RTP port): a party's RTCP, whatever compound
    it sends, never reaches rtpengine and so never the other party. rtpengine still sends
    each side reports of its own."""
    lines = sdp.split(b"\r\n") if b"\r\n" in sdp else sdp.split(b"\n")
    out: list[bytes] = []
    in_media = False
    for line in lines:
        if line.startswith(b"m="):
            if in_media:
                out.append(b"a=rtcp:%d" % DISCARD_PORT)
            in_media = True
        elif line.startswith((b"a=rtcp:", b"a=rtcp-mux")):
            continue
        if line:
            out.append(line)
    if in_media:
        out.append(b"a=rtcp:%d" % DISCARD_PORT)
    return b"\r\n".join(out) + b"\r\n"


def _on_anchor(sdp: bytes, anchored: bytes) -> bytes:
    """`sdp` with the connection address and media ports of `anchored` (same m= lines)."""
    description = parse_sdp(anchored)
    connection = description.connection or description.media[0].connection
    if connection is None or len(parse_sdp(sdp).media) != len(description.media):
        raise ParseError("media lines changed")
    address, session_id, version = _origin(sdp)
    # The peer's a=rtcp names its own port (and maybe address): pointed away like rtcp=drop.
    return rebuild_sdp(_rtcp_to_discard(sdp), origin_address=address, session_id=session_id,
                       version=version,
                       connection_address=connection.split()[-1],
                       media_ports=[m.port for m in description.media])


def _origin(sdp: bytes) -> tuple[str, int, int]:
    for line in sdp.split(b"\n"):
        if line.startswith(b"o="):
            parts = line.strip().split()
            if len(parts) == 6 and parts[1].isdigit() and parts[2].isdigit():
                return parts[5].decode("ascii", "replace"), int(parts[1]), int(parts[2])
            break
    raise ParseError("SDP without a usable o= line")
