"""Differential test: random programs of store operations give the same outcomes on the
memory and the Redis backend (same numbers, same bindings, same errors). The allocation rule
is written twice, in Python and in Lua; this keeps the two in step."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from store_helpers import FakeClock, RedisServer

from sipmask.store import (
    ExpiryMode,
    MemoryStore,
    ParticipantSpec,
    SessionSpec,
    SessionStore,
    StoreError,
)

NUMBERS = [f"+9180456712{i:02d}" for i in range(6)]
# Four parties, a SIP URI among them, and a pool number (never a valid participant).
PEOPLE = ["+919876543210", "+919812345678", "+14155550123", "sip:dana@example.com", NUMBERS[0]]

operations = st.one_of(
    st.tuples(
        st.just("pool"),
        st.sets(st.sampled_from(NUMBERS), max_size=4),
        st.sets(st.sampled_from(NUMBERS), max_size=2),
    ),
    st.tuples(
        st.just("create"),
        st.sampled_from(PEOPLE),
        st.sampled_from(PEOPLE),
        st.one_of(st.none(), st.sampled_from(NUMBERS)),
        st.sampled_from([30, 60, 3600]),
        st.booleans(),
    ),
    st.tuples(st.just("close"), st.integers(0, 20)),
    st.tuples(st.just("lookup"), st.sampled_from(NUMBERS), st.sampled_from(PEOPLE)),
    st.tuples(st.just("advance"), st.sampled_from([1, 29, 30, 61])),
    st.tuples(st.just("expire")),
    st.tuples(st.just("list"), st.one_of(st.none(), st.sampled_from(PEOPLE))),
)
programs = st.lists(operations, min_size=1, max_size=40)


async def run_program(store: SessionStore, clock: FakeClock, program: list[Any]) -> list[Any]:
    """Run a program; return its outcomes with session ids replaced by creation order."""
    from sipmask.store import participant_key

    index: dict[str, int] = {}
    trace: list[Any] = []
    await store.set_pool("default", NUMBERS[:4])
    for op in program:
        try:
            if op[0] == "pool":
                pool = await store.set_pool("default", op[1], op[2])
                trace.append((pool.numbers, pool.reserved, pool.draining))
            elif op[0] == "create":
                _, a, b, pin, ttl, sliding = op
                session = await store.create_session(
                    SessionSpec(
                        participants=(ParticipantSpec(a, proxy_identifier=pin), ParticipantSpec(b)),
                        ttl=ttl,
                        expiry=ExpiryMode.SLIDING if sliding else ExpiryMode.ABSOLUTE,
                    )
                )
                index[session.id] = len(index)
                numbers = [p.proxy_identifier for p in session.participants]
                trace.append(("created", numbers, session.expires_at))
            elif op[0] == "close":
                ids = list(index)
                if op[1] < len(ids):
                    closed = await store.close_session(ids[op[1]])
                    trace.append((closed.status, closed.closed_reason, closed.closed_at))
            elif op[0] == "lookup":
                caller = participant_key(op[2])
                binding = await store.lookup(op[1], caller)
                trace.append(
                    binding
                    and (
                        index[binding.session_id], binding.callee.key, binding.caller_id,
                        binding.expires_at,
                    )
                )
            elif op[0] == "advance":
                clock.advance(op[1])
            elif op[0] == "expire":
                trace.append(("expired", await store.expire()))
            else:
                sessions = await store.list_sessions(participant=op[1])
                trace.append(sorted(index[s.id] for s in sessions))
        except StoreError as exc:
            trace.append(type(exc).__name__)
    for sid in index:
        session = await store.get_session(sid)
        trace.append((session.status, session.expires_at, session.closed_reason))
    return trace


@settings(
    max_examples=75,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(program=programs)
def test_memory_and_redis_agree(redis_server: RedisServer, program: list[Any]) -> None:
    from sipmask.store.redis import RedisStore

    async def both() -> tuple[list[Any], list[Any]]:
        memory_clock, redis_clock = FakeClock(), FakeClock()
        memory = MemoryStore(clock=memory_clock)
        shared = RedisStore(
            redis_server.url, prefix=f"t{uuid.uuid4().hex[:12]}", clock=redis_clock
        )
        try:
            return (
                await run_program(memory, memory_clock, program),
                await run_program(shared, redis_clock, program),
            )
        finally:
            await memory.close()
            await shared.close()

    on_memory, on_redis = asyncio.run(both())
    assert on_memory == on_redis
