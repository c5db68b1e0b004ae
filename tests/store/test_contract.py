"""The SessionStore contract (issue 4), run against both backends: `TestMemoryStore` and
`TestRedisStore` (a real redis-server, see conftest.py). Time is a FakeClock: no sleeps."""

from __future__ import annotations

import uuid

import pytest
from store_helpers import FakeClock, RedisServer, with_store

from sipmask.store import (
    ExpiryMode,
    Interaction,
    InvalidParticipant,
    InvalidPool,
    InvalidSession,
    MemoryStore,
    NumberUnavailable,
    ParticipantSpec,
    PoolExhausted,
    PoolInUse,
    SessionNotFound,
    SessionSpec,
    SessionStatus,
    SessionStore,
    UnknownPool,
)

# Virtual numbers (Bengaluru DIDs) and real parties (Indian mobiles).
V = [f"+9180456712{i:02d}" for i in range(10)]
ALICE, BOB, CAROL, DAVE = "+919876543210", "+919812345678", "+919900000001", "+919900000002"


def spec(
    a: str = ALICE,
    b: str = BOB,
    *,
    pool: str = "default",
    ttl: int = 3600,
    expiry: ExpiryMode = ExpiryMode.ABSOLUTE,
    pin_a: str | None = None,
    pin_b: str | None = None,
    **extra: object,
) -> SessionSpec:
    return SessionSpec(
        participants=(ParticipantSpec(a, proxy_identifier=pin_a), ParticipantSpec(b, pin_b)),
        pool=pool,
        ttl=ttl,
        expiry=expiry,
        **extra,  # type: ignore[arg-type]
    )


def numbers_of(session: object) -> tuple[str, str]:
    first, second = session.participants  # type: ignore[attr-defined]
    return first.proxy_identifier, second.proxy_identifier


class _StoreContract:
    """What every SessionStore does. Subclasses provide `open_store(clock)`."""

    async def open_store(self, clock: FakeClock) -> SessionStore:
        raise NotImplementedError

    # -- pools -------------------------------------------------------------------------------

    @with_store
    async def test_ensure_pool_creates_once(self, store: SessionStore, clock: FakeClock) -> None:
        pool = await store.ensure_pool("default")
        assert (pool.name, pool.numbers, pool.reserved, pool.draining) == ("default", (), (), ())
        await store.set_pool("default", [V[0]])
        assert (await store.ensure_pool("default")).numbers == (V[0],)
        assert await store.list_pools() == ["default"]

    @with_store
    async def test_get_unknown_pool(self, store: SessionStore, clock: FakeClock) -> None:
        with pytest.raises(UnknownPool):
            await store.get_pool("nope")
        with pytest.raises(UnknownPool):
            await store.delete_pool("nope")

    @with_store
    async def test_set_pool_normalises_and_sorts(
        self, store: SessionStore, clock: FakeClock
    ) -> None:
        pool = await store.set_pool(
            "default", ["+91 80 4567 1201", "tel:+918045671200", V[1]], reserved=["+91-80-45671209"]
        )
        assert pool.numbers == (V[0], V[1])
        assert pool.reserved == (V[9],)
        assert await store.get_pool("default") == pool

    @pytest.mark.parametrize(
        ("name", "numbers", "reserved"),
        [
            pytest.param("default", ["12345"], [], id="not-e164"),
            pytest.param("default", ["+0123456"], [], id="leading-zero"),
            pytest.param("default", [V[0]], [V[0]], id="free-and-reserved"),
            pytest.param("bad name", [V[0]], [], id="space-in-name"),
            pytest.param("a{b}", [V[0]], [], id="brace-in-name"),
            pytest.param("", [V[0]], [], id="empty-name"),
        ],
    )
    @with_store
    async def test_set_pool_rejects(
        self, store: SessionStore, clock: FakeClock, name: str, numbers: list[str],
        reserved: list[str],
    ) -> None:
        with pytest.raises(InvalidPool):
            await store.set_pool(name, numbers, reserved)

    @with_store
    async def test_number_belongs_to_one_pool(self, store: SessionStore, clock: FakeClock) -> None:
        await store.set_pool("one", [V[0], V[1]])
        with pytest.raises(NumberUnavailable):
            await store.set_pool("two", [V[1], V[2]])
        with pytest.raises(NumberUnavailable):
            await store.set_pool("two", [], reserved=[V[0]])
        await store.set_pool("one", [V[0]])
        assert (await store.set_pool("two", [V[1], V[2]])).numbers == (V[1], V[2])

    @with_store
    async def test_pool_usage_counts_numbers_of_open_sessions(
        self, store: SessionStore, clock: FakeClock
    ) -> None:
        await store.set_pool("default", V[:4])
        assert await store.pool_usage("default") == 0
        first = await store.create_session(spec(), now=clock())
        assert await store.pool_usage("default") == 2
        second = await store.create_session(spec(CAROL, DAVE), now=clock())
        assert await store.pool_usage("default") == 4  # least recently used: the other two
        await store.close_session(first.id, now=clock())
        assert await store.pool_usage("default") == 2  # Carol's and Dave's
        assert set(numbers_of(second)) == set(V[:4]) - set(numbers_of(first))
        with pytest.raises(UnknownPool):
            await store.pool_usage("nope")

    @with_store
    async def test_delete_pool_refused_while_open(
        self, store: SessionStore, clock: FakeClock
    ) -> None:
        await store.set_pool("default", V[:2])
        session = await store.create_session(spec())
        with pytest.raises(PoolInUse):
            await store.delete_pool("default")
        await store.close_session(session.id)
        await store.delete_pool("default")
        assert await store.list_pools() == []
        with pytest.raises(UnknownPool):
            await store.get_pool("default")
        # Its numbers are free for another pool now.
        assert (await store.set_pool("other", V[:2])).numbers == tuple(V[:2])

    @with_store
    async def test_dropped_number_drains(self, store: SessionStore, clock: FakeClock) -> None:
        await store.set_pool("default", V[:3])
        session = await store.create_session(spec(), now=clock())
        a, b = numbers_of(session)
        assert (a, b) == (V[0], V[1])
        pool = await store.set_pool("default", [V[1], V[2]])
        assert pool.numbers == (V[1], V[2])
        assert pool.draining == (V[0],)
        # Never yanked from the open session ...
        binding = await store.lookup(V[0], ALICE, now=clock())
        assert binding is not None and binding.callee.key == BOB
        # ... never assigned again ...
        other = await store.create_session(spec(CAROL, DAVE), now=clock())
        assert V[0] not in numbers_of(other)
        # ... and released once its last session is closed.
        await store.close_session(session.id, now=clock())
        await store.expire(now=clock())
        assert (await store.get_pool("default")).draining == ()
        assert (await store.set_pool("elsewhere", [V[0]])).numbers == (V[0],)

    # -- creation and the allocation rule ---------------------------------------------------

    @with_store
    async def test_create_session(self, store: SessionStore, clock: FakeClock) -> None:
        await store.set_pool("default", V[:4])
        session = await store.create_session(
            spec(call_time_limit=900, ring_timeout=30, metadata={"order": "A-17", "n": [1, 2]}),
            now=clock(),
        )
        assert session.id.startswith("default.")
        assert session.pool == "default"
        assert session.status is SessionStatus.OPEN
        assert session.created_at == clock()
        assert session.expires_at == clock() + 3600
        assert (session.ttl, session.expiry) == (3600, ExpiryMode.ABSOLUTE)
        assert (session.call_time_limit, session.ring_timeout) == (900, 30)
        assert session.metadata == {"order": "A-17", "n": [1, 2]}
        first, second = session.participants
        assert (first.identifier, first.key, second.key) == (ALICE, ALICE, BOB)
        # LRU over never-used numbers: lowest number first.
        assert numbers_of(session) == (V[0], V[1])
        assert await store.get_session(session.id) == session

    @with_store
    async def test_lookup_both_directions(self, store: SessionStore, clock: FakeClock) -> None:
        # DESIGN.md masking rule: P1 dials V1 -> call P2 from V2, and back.
        await store.set_pool("default", V[:4])
        session = await store.create_session(spec(), now=clock())
        v1, v2 = numbers_of(session)
        there = await store.lookup(v1, ALICE, now=clock())
        assert there is not None
        assert (there.session_id, there.caller.key, there.callee.key) == (session.id, ALICE, BOB)
        assert there.caller_id == v2
        back = await store.lookup(v2, BOB, now=clock())
        assert back is not None
        assert (back.caller.key, back.callee.key, back.caller_id) == (BOB, ALICE, v1)

    @pytest.mark.parametrize(
        ("dialled", "caller"),
        [
            pytest.param(V[0], BOB, id="other-party-on-my-number"),
            pytest.param(V[1], ALICE, id="my-number-is-not-that"),
            pytest.param(V[0], CAROL, id="stranger"),
            pytest.param(V[5], ALICE, id="unused-pool-number"),
            pytest.param("+14155550100", ALICE, id="not-a-pool-number"),
        ],
    )
    @with_store
    async def test_lookup_misses(
        self, store: SessionStore, clock: FakeClock, dialled: str, caller: str
    ) -> None:
        await store.set_pool("default", V[:6])
        assert numbers_of(await store.create_session(spec(), now=clock())) == (V[0], V[1])
        assert await store.lookup(dialled, caller, now=clock()) is None

    @with_store
    async def test_binding_carries_limits_and_route(
        self, store: SessionStore, clock: FakeClock
    ) -> None:
        await store.set_pool("default", V[:2])
        request = SessionSpec(
            participants=(
                ParticipantSpec(ALICE, route="trunk-a"),
                ParticipantSpec("sip:bob@pbx.example.com", route="sip:pbx.example.com;lr"),
            ),
            call_time_limit=600,
            ring_timeout=25,
        )
        await store.create_session(request, now=clock())
        binding = await store.lookup(V[0], ALICE, now=clock())
        assert binding is not None
        assert binding.route == "sip:pbx.example.com;lr"
        assert (binding.call_time_limit, binding.ring_timeout) == (600, 25)
        back = await store.lookup(V[1], "bob@pbx.example.com", now=clock())
        assert back is not None and back.route == "trunk-a"
        assert back.expires_at == clock() + 3600

    @with_store
    async def test_number_unique_per_participant(
        self, store: SessionStore, clock: FakeClock
    ) -> None:
        await store.set_pool("default", V[:3])
        held = []
        for other in ("+919900000011", "+919900000012", "+919900000013"):
            session = await store.create_session(spec(ALICE, other), now=clock())
            held.append(numbers_of(session)[0])
        assert sorted(held) == V[:3]
        with pytest.raises(PoolExhausted) as info:
            await store.create_session(spec(ALICE, "+919900000014"), now=clock())
        assert (info.value.pool, info.value.participant) == ("default", ALICE)
        # Every other pair is still served by the same three numbers (reuse across sessions).
        for i in range(10):
            session = await store.create_session(
                spec(f"+9199000001{i:02d}", f"+9199000002{i:02d}"), now=clock()
            )
            assert set(numbers_of(session)) <= set(V[:3])

    @with_store
    async def test_each_participant_key_is_unique_per_dialled_number(
        self, store: SessionStore, clock: FakeClock
    ) -> None:
        # With a one-number pool both parties get the same number: (number, caller) still
        # names one session.
        await store.set_pool("default", V[:1])
        session = await store.create_session(spec(), now=clock())
        assert numbers_of(session) == (V[0], V[0])
        first = await store.lookup(V[0], ALICE, now=clock())
        second = await store.lookup(V[0], BOB, now=clock())
        assert first is not None and first.callee.key == BOB
        assert second is not None and second.callee.key == ALICE

    @with_store
    async def test_least_recently_used(self, store: SessionStore, clock: FakeClock) -> None:
        await store.set_pool("default", V[:4])
        s1 = await store.create_session(spec(ALICE, BOB), now=clock.advance(1))
        s2 = await store.create_session(spec(CAROL, DAVE), now=clock.advance(1))
        assert numbers_of(s1) == (V[0], V[1])
        assert numbers_of(s2) == (V[2], V[3])
        # All four used once: the least recently used (V0 at t+1) comes first again.
        s3 = await store.create_session(
            spec("+919900000101", "+919900000102"), now=clock.advance(1)
        )
        assert numbers_of(s3) == (V[0], V[1])

    @with_store
    async def test_sticky_pair(self, store: SessionStore, clock: FakeClock) -> None:
        await store.set_pool("default", V[:3])
        first = await store.create_session(spec(ALICE, BOB), now=clock.advance(1))
        assert numbers_of(first) == (V[0], V[1])
        await store.close_session(first.id, now=clock.advance(1))
        other = await store.create_session(spec(CAROL, DAVE), now=clock.advance(1))
        assert numbers_of(other) == (V[2], V[0])
        await store.close_session(other.id, now=clock.advance(1))
        # LRU alone would give V1 now; the pair gets its numbers back, either way round.
        again = await store.create_session(spec(BOB, ALICE), now=clock.advance(1))
        assert numbers_of(again) == (V[1], V[0])

    @with_store
    async def test_sticky_yields_to_uniqueness(self, store: SessionStore, clock: FakeClock) -> None:
        await store.set_pool("default", V[:3])
        first = await store.create_session(spec(ALICE, BOB), now=clock.advance(1))
        assert numbers_of(first) == (V[0], V[1])
        # Still open: the same pair cannot get the same numbers twice.
        second = await store.create_session(spec(ALICE, BOB), now=clock.advance(1))
        assert numbers_of(second) == (V[2], V[0])

    @with_store
    async def test_geo_match(self, store: SessionStore, clock: FakeClock) -> None:
        new_york, san_francisco, london, bengaluru = (
            "+12127365000", "+14152738000", "+442079460000", "+918045671200"
        )
        await store.set_pool("default", [new_york, san_francisco, london, bengaluru])
        session = await store.create_session(
            spec("+14155550123", "+447911123456"), now=clock.advance(1)
        )
        # Same country and area code beats same country beats least recently used.
        assert numbers_of(session) == (san_francisco, london)
        session = await store.create_session(
            spec("+14155550124", "+12025550199"), now=clock.advance(1)
        )
        assert numbers_of(session) == (san_francisco, new_york)
        session = await store.create_session(
            spec("+14155550125", "sip:carol@example.com"), now=clock.advance(1)
        )
        # The second has no country: plain LRU, and V for bengaluru was never used.
        assert numbers_of(session) == (san_francisco, bengaluru)

    @with_store
    async def test_reserved_only_when_pinned(self, store: SessionStore, clock: FakeClock) -> None:
        await store.set_pool("default", [V[0]], reserved=[V[9]])
        session = await store.create_session(spec(), now=clock())
        assert numbers_of(session) == (V[0], V[0])
        with pytest.raises(PoolExhausted):
            await store.create_session(spec(ALICE, CAROL), now=clock())
        pinned = await store.create_session(spec(ALICE, CAROL, pin_a=V[9]), now=clock())
        assert numbers_of(pinned) == (V[9], V[0])
        binding = await store.lookup(V[9], ALICE, now=clock())
        assert binding is not None and binding.callee.key == CAROL

    @pytest.mark.parametrize(
        "pin",
        [
            pytest.param(V[8], id="not-in-pool"),
            pytest.param(V[0], id="already-held"),
            pytest.param("12", id="not-a-number"),
        ],
    )
    @with_store
    async def test_pin_refused(self, store: SessionStore, clock: FakeClock, pin: str) -> None:
        await store.set_pool("default", V[:2])
        assert numbers_of(await store.create_session(spec(), now=clock())) == (V[0], V[1])
        with pytest.raises(NumberUnavailable):
            await store.create_session(spec(ALICE, CAROL, pin_a=pin), now=clock())

    @with_store
    async def test_participant_may_not_be_a_pool_number(
        self, store: SessionStore, clock: FakeClock
    ) -> None:
        await store.set_pool("default", V[:2], reserved=[V[9]])
        await store.set_pool("other", [V[5]])
        for number in (V[1], V[9], V[5]):
            with pytest.raises(InvalidParticipant):
                await store.create_session(spec(ALICE, number), now=clock())

    @pytest.mark.parametrize(
        ("request_", "error"),
        [
            pytest.param(spec(ALICE, ALICE), InvalidSession, id="same-party-twice"),
            pytest.param(spec(ALICE, " +91 98765 43210"), InvalidSession, id="same-party-spaced"),
            pytest.param(spec(ttl=0), InvalidSession, id="ttl-zero"),
            pytest.param(spec(call_time_limit=0), InvalidSession, id="call-time-limit-zero"),
            pytest.param(spec(metadata={"x": "y" * 5000}), InvalidSession, id="metadata-too-big"),
            pytest.param(spec(pool="nope"), UnknownPool, id="unknown-pool"),
            pytest.param(spec(pool="no pe"), UnknownPool, id="bad-pool-name"),
            pytest.param(spec(ALICE, "9876543210"), InvalidParticipant, id="national-number"),
            pytest.param(spec(ALICE, "sip:example.com"), InvalidParticipant, id="uri-no-user"),
            pytest.param(spec(ALICE, "bob"), InvalidParticipant, id="junk"),
        ],
    )
    @with_store
    async def test_create_refused(
        self, store: SessionStore, clock: FakeClock, request_: SessionSpec, error: type
    ) -> None:
        await store.set_pool("default", V[:2])
        with pytest.raises(error) as refused:
            await store.create_session(request_, now=clock())
        assert await store.list_sessions() == []
        assert "9876543210" not in str(refused.value)  # real numbers are masked in errors

    @with_store
    async def test_sip_uri_participant(self, store: SessionStore, clock: FakeClock) -> None:
        await store.set_pool("default", V[:2])
        session = await store.create_session(
            spec(ALICE, "sip:Bob.Smith@PBX.Example.COM:5061;transport=tls"), now=clock()
        )
        bob = session.participants[1]
        assert bob.key == "Bob.Smith@pbx.example.com"
        assert bob.identifier == "sip:Bob.Smith@PBX.Example.COM:5061;transport=tls"
        binding = await store.lookup(V[1], "Bob.Smith@pbx.example.com", now=clock())
        assert binding is not None and binding.callee.key == ALICE
        # The user part is case-sensitive (RFC 3261 §19.1.4).
        assert await store.lookup(V[1], "bob.smith@pbx.example.com", now=clock()) is None

    # -- reading, closing, expiry -----------------------------------------------------------

    @with_store
    async def test_get_unknown_session(self, store: SessionStore, clock: FakeClock) -> None:
        await store.set_pool("default", V[:2])
        for sid in ("default.nothere", "nodot", "bad pool.x", ""):
            with pytest.raises(SessionNotFound):
                await store.get_session(sid)
            with pytest.raises(SessionNotFound):
                await store.close_session(sid)

    @with_store
    async def test_close_removes_bindings(self, store: SessionStore, clock: FakeClock) -> None:
        await store.set_pool("default", V[:2])
        session = await store.create_session(spec(), now=clock())
        closed = await store.close_session(session.id, now=clock.advance(5))
        assert closed.status is SessionStatus.CLOSED
        assert (closed.closed_reason, closed.closed_at) == ("closed", clock())
        assert await store.lookup(V[0], ALICE, now=clock()) is None
        assert await store.lookup(V[1], BOB, now=clock()) is None
        assert await store.get_session(session.id) == closed
        # Idempotent: closing again changes nothing.
        assert await store.close_session(session.id, reason="again", now=clock.advance(1)) == closed
        # The numbers are free for the same participants again.
        again = await store.create_session(spec(ALICE, CAROL), now=clock())
        assert numbers_of(again)[0] in V[:2]

    @with_store
    async def test_lookup_marks_in_progress(self, store: SessionStore, clock: FakeClock) -> None:
        await store.set_pool("default", V[:2])
        session = await store.create_session(spec(), now=clock())
        assert await store.lookup(V[0], ALICE, now=clock()) is not None
        assert (await store.get_session(session.id)).status is SessionStatus.IN_PROGRESS

    @with_store
    async def test_absolute_expiry(self, store: SessionStore, clock: FakeClock) -> None:
        await store.set_pool("default", V[:1])
        t0 = clock()
        session = await store.create_session(spec(ttl=60), now=t0)
        assert await store.lookup(V[0], ALICE, now=t0 + 59.999) is not None
        assert (await store.get_session(session.id)).expires_at == t0 + 60  # not renewed
        assert await store.lookup(V[0], ALICE, now=t0 + 60) is None
        expired = await store.get_session(session.id)
        assert expired.status is SessionStatus.CLOSED
        assert expired.closed_reason == "expired"
        assert await store.lookup(V[0], BOB, now=t0 + 61) is None

    @with_store
    async def test_sliding_expiry(self, store: SessionStore, clock: FakeClock) -> None:
        await store.set_pool("default", V[:2])
        t0 = clock()
        session = await store.create_session(spec(ttl=60, expiry=ExpiryMode.SLIDING), now=t0)
        renewed = await store.lookup(V[0], ALICE, now=t0 + 50)
        assert renewed is not None and renewed.expires_at == t0 + 110
        assert (await store.get_session(session.id)).expires_at == t0 + 110
        assert await store.lookup(V[1], BOB, now=t0 + 100) is not None
        assert await store.lookup(V[0], ALICE, now=t0 + 159.999) is not None
        assert await store.lookup(V[0], ALICE, now=t0 + 219.999 + 0.001) is None
        assert (await store.get_session(session.id)).closed_reason == "expired"

    @with_store
    async def test_expired_numbers_are_freed_at_creation(
        self, store: SessionStore, clock: FakeClock
    ) -> None:
        await store.set_pool("default", V[:1])
        old = await store.create_session(spec(ttl=60), now=clock())
        # No lookup and no housekeeping ran: creation itself prunes the expired session.
        new = await store.create_session(spec(ALICE, CAROL), now=clock.advance(60))
        assert numbers_of(new) == (V[0], V[0])
        assert (await store.get_session(old.id)).closed_reason == "expired"
        binding = await store.lookup(V[0], ALICE, now=clock())
        assert binding is not None and binding.session_id == new.id

    @with_store
    async def test_housekeeping(self, store: SessionStore, clock: FakeClock) -> None:
        await store.set_pool("default", V[:4])
        t0 = clock()
        short = await store.create_session(spec(ttl=60), now=t0)
        long = await store.create_session(spec(CAROL, DAVE, ttl=600), now=t0)
        assert await store.expire(now=t0 + 59) == 0
        assert await store.expire(now=t0 + 60) == 1
        assert await store.expire(now=t0 + 61) == 0
        assert (await store.get_session(short.id)).closed_reason == "expired"
        assert await store.lookup(V[0], ALICE, now=t0 + 61) is None
        assert [s.id for s in await store.list_sessions()] == [long.id]
        # Closed sessions stay readable for the retention period (a day), then go.
        await store.expire(now=t0 + 60 + 86399)
        assert (await store.get_session(short.id)).status is SessionStatus.CLOSED
        await store.expire(now=t0 + 60 + 86400)
        with pytest.raises(SessionNotFound):
            await store.get_session(short.id)

    @with_store
    async def test_list_sessions(self, store: SessionStore, clock: FakeClock) -> None:
        await store.set_pool("default", V[:4])
        await store.set_pool("other", V[4:8])
        ab = await store.create_session(spec(ALICE, BOB), now=clock.advance(1))
        ac = await store.create_session(spec(ALICE, CAROL, pool="other"), now=clock.advance(1))
        cd = await store.create_session(spec(CAROL, DAVE), now=clock.advance(1))
        closed = await store.create_session(spec(ALICE, DAVE), now=clock.advance(1))
        await store.close_session(closed.id, now=clock())

        async def ids(**query: str) -> list[str]:
            return [s.id for s in await store.list_sessions(**query)]  # type: ignore[arg-type]

        assert await ids() == [ab.id, ac.id, cd.id]
        assert await ids(participant=ALICE) == [ab.id, ac.id]
        assert await ids(participant="+91 98765 43210") == [ab.id, ac.id]
        assert await ids(participant=CAROL, pool="default") == [cd.id]
        assert await ids(pool="other") == [ac.id]
        assert await ids(participant="+919000000000") == []
        with pytest.raises(UnknownPool):
            await store.list_sessions(pool="nope")
        with pytest.raises(InvalidParticipant):
            await store.list_sessions(participant="junk")

    @with_store
    async def test_interactions(self, store: SessionStore, clock: FakeClock) -> None:
        await store.set_pool("default", V[:2])
        session = await store.create_session(spec(), now=clock())
        records = [
            Interaction(
                id=f"call-{i}", session_id=session.id, caller=ALICE, callee=BOB, dialled=V[0],
                presented=V[1], started_at=clock() + i, answered_at=clock() + i + 2,
                ended_at=clock() + i + 30, status="completed", cause="200",
            )
            for i in range(3)
        ]
        for record in records:
            await store.record_interaction(record)
        assert await store.list_interactions(session.id) == records
        await store.close_session(session.id, now=clock())
        assert await store.list_interactions(session.id) == records
        other = Interaction(
            id="x", session_id="default.nothere", caller=ALICE, callee=BOB, dialled=V[0],
            presented=V[1], started_at=clock(),
        )
        with pytest.raises(SessionNotFound):
            await store.record_interaction(other)
        with pytest.raises(SessionNotFound):
            await store.list_interactions("default.nothere")

    @with_store
    async def test_interactions_in_a_batch(self, store: SessionStore, clock: FakeClock) -> None:
        await store.set_pool("default", V[:4])
        first = await store.create_session(spec(), now=clock())
        second = await store.create_session(spec(CAROL, DAVE), now=clock())

        def record(n: int, session_id: str) -> Interaction:
            return Interaction(id=f"call-{n}", session_id=session_id, caller=ALICE, callee=BOB,
                               dialled=V[0], presented=V[1], started_at=clock() + n)

        batch = [record(0, first.id), record(1, second.id), record(2, "default.nothere"),
                 record(3, first.id)]
        assert await store.record_interactions(batch) == 3  # the unknown session's skipped
        assert await store.list_interactions(first.id) == [batch[0], batch[3]]
        assert await store.list_interactions(second.id) == [batch[1]]
        assert await store.record_interactions([]) == 0

    @with_store
    async def test_record_flag_and_recording_reference(self, store: SessionStore,
                                                       clock: FakeClock) -> None:
        await store.set_pool("default", [V[0], V[1], V[2], V[3]])
        recorded = await store.create_session(spec(record=True, announcement="notice"))
        plain = await store.create_session(spec(CAROL, DAVE))
        assert recorded.record and not plain.record
        assert (await store.get_session(recorded.id)).record
        assert (await store.get_session(recorded.id)).announcement == "notice"
        a_number = recorded.participants[0].proxy_identifier
        binding = await store.lookup(a_number, ALICE)
        assert binding is not None and binding.record and binding.announcement == "notice"
        c_number = plain.participants[0].proxy_identifier
        other = await store.lookup(c_number, CAROL)
        assert other is not None and not other.record and other.announcement is None
        kept = Interaction(id="call-r", session_id=recorded.id, caller=ALICE, callee=BOB,
                           dialled=a_number, presented=V[1], started_at=clock(),
                           recording="call-r")
        await store.record_interactions([kept])
        assert await store.list_interactions(recorded.id) == [kept]


class TestMemoryStore(_StoreContract):
    async def open_store(self, clock: FakeClock) -> SessionStore:
        return MemoryStore(clock=clock)


class TestJournaledMemoryStore(_StoreContract):
    """The same contract with the journal on (every change goes through the file)."""

    @pytest.fixture(autouse=True)
    def _data_dir(self, tmp_path: object) -> None:
        self.data_dir = tmp_path

    async def open_store(self, clock: FakeClock) -> SessionStore:
        return MemoryStore(self.data_dir, clock=clock)  # type: ignore[arg-type]


class TestRedisStore(_StoreContract):
    @pytest.fixture(autouse=True)
    def _server(self, redis_server: RedisServer) -> None:
        self.server = redis_server

    async def open_store(self, clock: FakeClock) -> SessionStore:
        from sipmask.store.redis import RedisStore

        # A fresh key prefix per test: no test sees another's keys.
        return RedisStore(self.server.url, prefix=f"t{uuid.uuid4().hex[:12]}", clock=clock)
