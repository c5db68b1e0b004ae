"""The memory store's call records are bounded over all sessions together (issue 13,
defect 7: a soak over many sessions grew ~490 B per call, the records, since the bound per
session multiplied by the sessions)."""

from __future__ import annotations

import asyncio

import sipmask.store.memory as memory
from sipmask.store import MemoryStore
from sipmask.store.model import Interaction, ParticipantSpec, SessionSpec


def test_call_records_are_bounded_over_all_sessions(monkeypatch) -> None:
    monkeypatch.setattr(memory, "MAX_INTERACTIONS_KEPT", 50, raising=False)

    async def main() -> None:
        store = MemoryStore(None)
        await store.set_pool("default", [f"+91800000{n:04d}" for n in range(40)])
        sessions = []
        for n in range(10):
            session = await store.create_session(SessionSpec(participants=(
                ParticipantSpec(f"+9198765{n:05d}"), ParticipantSpec(f"+9198123{n:05d}"))))
            sessions.append(session)
        records = []
        for call in range(30):  # 300 calls, 30 per session: 6 times the bound
            for session in sessions:
                records.append(_record(session.id, f"c{call}"))
        await store.record_interactions(records)
        kept = [await store.list_interactions(s.id) for s in sessions]
        assert sum(map(len, kept)) <= 50
        assert all(kept)  # each session keeps its newest
        assert all(r[-1].id == "c29" for r in kept)
        await store.close()

    asyncio.run(main())


def _record(session_id: str, call_id: str) -> Interaction:
    return Interaction(id=call_id, session_id=session_id, caller="a", callee="b",
                       dialled="+918000000001", presented="+918000000002", started_at=1.0)
