"""The memory backend's journal: a restart keeps open sessions (issue 4), compaction, and
damaged files. Each test opens the store, closes it, and opens a new one on the same data
directory, as a process restart would."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from store_helpers import FakeClock

from sipmask.store import (
    ExpiryMode,
    Interaction,
    MemoryStore,
    ParticipantSpec,
    SessionSpec,
    SessionStatus,
    StoreError,
    StoreUnavailable,
)
from sipmask.store.journal import JOURNAL_NAME

V = [f"+9180456712{i:02d}" for i in range(10)]
ALICE, BOB, CAROL, DAVE = "+919876543210", "+919812345678", "+919900000001", "+919900000002"


def spec(a: str, b: str, **extra: object) -> SessionSpec:
    return SessionSpec(
        participants=(ParticipantSpec(a), ParticipantSpec(b)),
        **extra,  # type: ignore[arg-type]
    )


def journal_lines(data_dir: Path) -> list[bytes]:
    return (data_dir / JOURNAL_NAME).read_bytes().splitlines()


def test_restart_keeps_sessions(tmp_path: Path) -> None:
    clock = FakeClock()

    async def before() -> dict[str, object]:
        store = MemoryStore(tmp_path, clock=clock)
        await store.set_pool("default", V[:4], reserved=[V[9]])
        open_ = await store.create_session(
            spec(ALICE, BOB, ttl=600, expiry=ExpiryMode.SLIDING, metadata={"ride": 7})
        )
        closed = await store.create_session(spec(CAROL, DAVE))
        await store.close_session(closed.id)
        clock.advance(100)
        assert await store.lookup(V[0], ALICE) is not None  # renews to t+700, in progress
        record = Interaction(
            id="c1", session_id=open_.id, caller=ALICE, callee=BOB, dialled=V[0],
            presented=V[1], started_at=clock(),
        )
        await store.record_interaction(record)
        state = {
            "open": await store.get_session(open_.id),
            "closed": await store.get_session(closed.id),
            "pool": await store.get_pool("default"),
            "records": [record],
        }
        await store.close()
        return state

    async def after(state: dict[str, object]) -> None:
        store = MemoryStore(tmp_path, clock=clock)
        try:
            reopened = await store.get_session(state["open"].id)  # type: ignore[attr-defined]
            assert reopened == state["open"]
            assert reopened.status is SessionStatus.IN_PROGRESS
            assert reopened.expires_at == clock() + 600
            closed = await store.get_session(state["closed"].id)  # type: ignore[attr-defined]
            assert closed == state["closed"]
            assert await store.get_pool("default") == state["pool"]
            assert await store.list_interactions(reopened.id) == state["records"]
            binding = await store.lookup(V[1], BOB)
            assert binding is not None and binding.callee.key == ALICE
            assert await store.lookup(V[2], CAROL) is None
            assert [s.id for s in await store.list_sessions()] == [reopened.id]
        finally:
            await store.close()

    state = asyncio.run(before())
    asyncio.run(after(state))


def test_restart_keeps_allocation_memory(tmp_path: Path) -> None:
    # The sticky pair and the LRU order survive a restart (same outcome as without one).
    clock = FakeClock()

    async def run() -> None:
        store = MemoryStore(tmp_path, clock=clock)
        await store.set_pool("default", V[:3])
        first = await store.create_session(spec(ALICE, BOB), now=clock.advance(1))
        await store.close_session(first.id, now=clock.advance(1))
        other = await store.create_session(spec(CAROL, DAVE), now=clock.advance(1))
        await store.close_session(other.id, now=clock.advance(1))
        await store.close()
        store = MemoryStore(tmp_path, clock=clock)
        try:
            again = await store.create_session(spec(ALICE, BOB), now=clock.advance(1))
            assert [p.proxy_identifier for p in again.participants] == [V[0], V[1]]
            fresh = await store.create_session(spec("+919900000101", "+919900000102"))
            # LRU: V2 (t+3) was used before V0 and V1 (t+5).
            assert fresh.participants[0].proxy_identifier == V[2]
        finally:
            await store.close()

    asyncio.run(run())


def test_compaction_on_start(tmp_path: Path) -> None:
    clock = FakeClock()

    async def run() -> None:
        store = MemoryStore(tmp_path, clock=clock)
        await store.set_pool("default", V[:2])
        session = await store.create_session(spec(ALICE, BOB, expiry=ExpiryMode.SLIDING))
        gone = await store.create_session(spec(CAROL, DAVE, ttl=60))
        for _ in range(60):
            clock.advance(1)
            await store.lookup(V[0], ALICE)
        await store.expire()  # closes `gone`
        await store.close()
        grown = len(journal_lines(tmp_path))
        assert grown > 50

        store = MemoryStore(tmp_path, clock=clock)
        await store.close()
        compacted = journal_lines(tmp_path)
        # One pool, two sessions, one usage line.
        assert len(compacted) == 4
        assert [json.loads(line)["type"] for line in compacted] == [
            "pool", "session", "session", "usage"
        ]

        # Past the retention of the closed session, the next start drops it.
        clock.advance(86400)
        store = MemoryStore(tmp_path, clock=clock)
        try:
            assert [json.loads(line)["type"] for line in journal_lines(tmp_path)] == [
                "pool", "session", "usage"
            ]
            assert (await store.get_session(session.id)).status is SessionStatus.IN_PROGRESS
            with pytest.raises(StoreError):
                await store.get_session(gone.id)
        finally:
            await store.close()

    asyncio.run(run())


def test_torn_last_line_is_skipped(tmp_path: Path) -> None:
    clock = FakeClock()

    async def run() -> None:
        store = MemoryStore(tmp_path, clock=clock)
        await store.set_pool("default", V[:2])
        session = await store.create_session(spec(ALICE, BOB))
        await store.close()
        with open(tmp_path / JOURNAL_NAME, "ab") as journal:
            journal.write(b'{"type":"session","session":{"id":"def')  # crash mid-write
        store = MemoryStore(tmp_path, clock=clock)
        try:
            assert (await store.get_session(session.id)).status is SessionStatus.OPEN
        finally:
            await store.close()
        assert all(line.endswith(b"}") for line in journal_lines(tmp_path))

    asyncio.run(run())


def test_damaged_middle_line_is_an_error(tmp_path: Path) -> None:
    async def run() -> None:
        store = MemoryStore(tmp_path, clock=FakeClock())
        await store.set_pool("default", V[:2])
        await store.create_session(spec(ALICE, BOB))
        await store.close()

    asyncio.run(run())
    lines = journal_lines(tmp_path)
    (tmp_path / JOURNAL_NAME).write_bytes(b"\n".join([lines[0], b"{not json", *lines[1:]]) + b"\n")
    with pytest.raises(StoreError, match=r":2: bad journal line"):
        MemoryStore(tmp_path, clock=FakeClock())


def test_pool_changes_survive_restart(tmp_path: Path) -> None:
    clock = FakeClock()

    async def run() -> None:
        store = MemoryStore(tmp_path, clock=clock)
        await store.set_pool("default", V[:3])
        await store.set_pool("gone", [V[5]])
        session = await store.create_session(spec(ALICE, BOB))
        await store.set_pool("default", [V[2]])  # V0 and V1 drain
        await store.delete_pool("gone")
        await store.close()
        store = MemoryStore(tmp_path, clock=clock)
        try:
            pool = await store.get_pool("default")
            assert (pool.numbers, pool.draining) == ((V[2],), (V[0], V[1]))
            assert await store.list_pools() == ["default"]
            assert await store.lookup(V[0], ALICE) is not None
            await store.close_session(session.id)
            await store.expire()
            assert (await store.get_pool("default")).draining == ()
        finally:
            await store.close()

    asyncio.run(run())


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_full_disk_changes_nothing(tmp_path: Path) -> None:
    async def run() -> None:
        store = MemoryStore(tmp_path, clock=FakeClock())
        try:
            await store.set_pool("default", V[:2])
            # From now on every write fails with ENOSPC.
            store._journal.close()  # type: ignore[union-attr]
            (tmp_path / JOURNAL_NAME).unlink()
            (tmp_path / JOURNAL_NAME).symlink_to("/dev/full")
            with pytest.raises(StoreUnavailable):
                await store.create_session(spec(ALICE, BOB))
            assert await store.list_sessions() == []
            assert await store.lookup(V[0], ALICE) is None
        finally:
            await store.close()

    asyncio.run(run())
