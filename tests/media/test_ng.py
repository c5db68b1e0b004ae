"""The ng client against a real rtpengine: ping, offer/answer/delete, timeouts against a port
nobody answers on, and the choice of instance for new and existing calls."""

from __future__ import annotations

import asyncio
import socket

import pytest
from rtpengine_helpers import Rtpengine, free_udp_port, offer_sdp

from sipmask.media.ng import NgClient, NgError, NgTimeout, NgUnavailable


def _client(*instances: tuple[str, int, int], timeout: float = 0.2, retries: int = 1
            ) -> NgClient:
    return NgClient(list(instances), timeout=timeout, retries=retries, ping_interval=0)


def test_ping_offer_answer_delete(rtpengine: Rtpengine) -> None:
    async def main() -> None:
        client = _client(("127.0.0.1", rtpengine.ng_port, 1))
        await client.start()
        try:
            assert await client.ping(client.instances[0])
            offer = await client.call_command("c1", {
                "command": "offer", "from-tag": "caller",
                "sdp": offer_sdp("127.0.0.2", 40000), "replace": ["origin"]})
            sdp = offer[b"sdp"]
            assert isinstance(sdp, bytes)
            assert b"c=IN IP4 127.0.0.1" in sdp and b"127.0.0.2" not in sdp
            assert client.anchored("c1") and client.instances[0].calls == 1
            answer = await client.call_command("c1", {
                "command": "answer", "from-tag": "caller", "to-tag": "callee",
                "sdp": offer_sdp("127.0.0.3", 40002, owner="bob")})
            sdp = answer[b"sdp"]
            assert isinstance(sdp, bytes)
            assert b"127.0.0.3" not in sdp.split(b"s=")[1]  # o= may keep it; c= may not
            await client.call_command("c1", {"command": "delete", "delete delay": 0})
            with pytest.raises(NgError, match="Unknown call-id"):  # gone
                await client.call_command("c1", {"command": "query"})
            client.release("c1")
            assert client.instances[0].calls == 0
            assert client.stats.errors == 1
        finally:
            await client.close()

    asyncio.run(main())


def test_silent_port_times_out_after_retries() -> None:
    async def main() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
            silent.bind(("127.0.0.1", 0))
            client = _client(("127.0.0.1", silent.getsockname()[1], 1), retries=2)
            await client.start()
            try:
                with pytest.raises(NgTimeout):
                    await client.request(client.instances[0], {"command": "ping"})
                silent.setblocking(False)
                received = []
                while True:
                    try:
                        received.append(silent.recv(1000))
                    except BlockingIOError:
                        break
                # the first send and two retransmissions, all with one cookie
                assert len(received) == 3 and len({r.split(b" ")[0] for r in received}) == 1
                assert client.stats.timeouts == 1
            finally:
                await client.close()

    asyncio.run(main())


def test_closed_port_fails_and_is_marked_down_by_ping() -> None:
    async def main() -> None:
        client = _client(("127.0.0.1", free_udp_port(), 1))
        await client.start()
        try:
            assert not await client.ping(client.instances[0])
            assert not client.instances[0].up
            with pytest.raises(NgUnavailable):
                await client.call_command("c", {"command": "offer", "from-tag": "a",
                                                "sdp": offer_sdp("127.0.0.2", 40000)})
        finally:
            await client.close()

    asyncio.run(main())


def test_new_calls_skip_a_dead_instance_and_stick(rtpengine: Rtpengine) -> None:
    async def main() -> None:
        dead = ("127.0.0.1", free_udp_port(), 1)
        client = _client(dead, ("127.0.0.1", rtpengine.ng_port, 1))
        await client.start()
        try:
            for n in range(3):  # the dead one is tried once, marked down, then skipped
                await client.call_command(f"c{n}", {
                    "command": "offer", "from-tag": "caller",
                    "sdp": offer_sdp("127.0.0.2", 40000 + 2 * n)})
            assert not client.instances[0].up
            assert client.instances[1].calls == 3
            assert client.instance_for("c0") is client.instances[1]
        finally:
            await client.close()

    asyncio.run(main())


def test_new_calls_go_to_the_least_loaded_by_weight(rtpengine: Rtpengine) -> None:
    async def main() -> None:
        # Two entries for one rtpengine stand for two instances: the choice is the client's.
        heavy, light = ("127.0.0.1", rtpengine.ng_port, 3), ("127.0.0.1", rtpengine.ng_port, 1)
        client = _client(heavy, light)
        await client.start()
        try:
            for n in range(8):
                await client.call_command(f"w{n}", {
                    "command": "offer", "from-tag": "caller",
                    "sdp": offer_sdp("127.0.0.2", 41000 + 2 * n)})
            assert [i.calls for i in client.instances] == [6, 2]
            # an existing call stays where it is whatever the loads
            first = client.instance_for("w0")
            await client.call_command("w0", {"command": "delete"})
            client.release("w0")
            assert client.instance_for("w0") is not first or first.load <= 5 / 3
        finally:
            await client.close()

    asyncio.run(main())
