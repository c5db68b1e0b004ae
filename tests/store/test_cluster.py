"""The Redis store on a three-node Redis Cluster (issue 4: "a three-node Redis Cluster on
loopback ports (`redis-cli --cluster create`) for the cluster key design") and on a Sentinel
service: the whole store contract, pools spread over every node, concurrent creations, the
event stream, and fail-fast outages of both client kinds."""

from __future__ import annotations

import asyncio
import multiprocessing
import random
import subprocess
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot
from store_helpers import (
    REDIS_CLI,
    REDIS_SERVER,
    ClusterServers,
    FakeClock,
    RedisServer,
    SentinelServer,
    free_port,
)
from test_contract import ALICE, BOB, CAROL, DAVE, V, _StoreContract, numbers_of, spec

from sipmask.store import (
    Interaction,
    ParticipantSpec,
    PoolExhausted,
    PoolInUse,
    SessionSpec,
    SessionStore,
    StoreUnavailable,
)
from sipmask.store.events import EventPublisher, stream_key
from sipmask.store.redis import RedisStore, RedisTarget

# Guards against a hang; measures nothing.
BOUND = 30.0

needs_cluster_tools = pytest.mark.skipif(
    REDIS_SERVER is None or REDIS_CLI is None,
    reason="redis-server and redis-cli are needed (Debian package redis-server)",
)
pytestmark = needs_cluster_tools


@pytest.fixture(scope="module")
def cluster() -> Iterator[ClusterServers]:
    """Three masters on free loopback ports, slots split by `redis-cli --cluster create`."""
    servers = ClusterServers()
    try:
        servers.start()
        yield servers
    finally:
        servers.cleanup()


@pytest.fixture(scope="module")
def sentinel() -> Iterator[SentinelServer]:
    """One master and one Sentinel watching it as `mymaster`."""
    master = RedisServer()
    watcher = SentinelServer(master)
    try:
        master.start()
        watcher.start()
        yield watcher
    finally:
        watcher.cleanup()
        master.cleanup()


def prefix() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


def cluster_store(cluster: ClusterServers, clock: FakeClock | None = None,
                  **options: Any) -> RedisStore:
    target = RedisTarget(cluster.url, "cluster")
    if clock is not None:
        options["clock"] = clock
    return RedisStore(target, prefix=prefix(), **options)


def node_of_slot(cluster: ClusterServers) -> list[int]:
    """slot -> index of the node serving it, from CLUSTER NODES (`<id> <ip:port@bus> <flags>
    <master> <ping> <pong> <epoch> <link> <slot ranges...>`)."""
    assert REDIS_CLI is not None
    out = subprocess.run(
        [REDIS_CLI, "-p", str(cluster.nodes[0].port), "cluster", "nodes"],
        capture_output=True, text=True, check=True, timeout=10,
    ).stdout
    ports = [node.port for node in cluster.nodes]
    owner = [-1] * 16384
    for line in out.splitlines():
        fields = line.split()
        port = int(fields[1].split("@")[0].rsplit(":", 1)[1])
        for ranged in fields[8:]:
            first, _, last = ranged.partition("-")
            for slot in range(int(first), int(last or first) + 1):
                owner[slot] = ports.index(port)
    assert -1 not in owner
    return owner


def pools_on_every_node(cluster: ClusterServers) -> list[str]:
    """One pool name per node: its `{name}` hash tag lands in that node's slots."""
    owner = node_of_slot(cluster)
    names: dict[int, str] = {}
    for i in range(1000):
        name = f"pool{i}"
        names.setdefault(owner[key_slot(name.encode())], name)
        if len(names) == len(cluster.nodes):
            return [names[n] for n in range(len(cluster.nodes))]
    raise AssertionError("no pool name for some node")


class TestClusterStore(_StoreContract):
    """The whole store contract with the store's client on the cluster."""

    @pytest.fixture(autouse=True)
    def _cluster(self, cluster: ClusterServers) -> None:
        self.cluster = cluster

    async def open_store(self, clock: FakeClock) -> SessionStore:
        return cluster_store(self.cluster, clock)


class TestSentinelStore(_StoreContract):
    """The whole store contract with the master found through a Sentinel."""

    @pytest.fixture(autouse=True)
    def _sentinel(self, sentinel: SentinelServer) -> None:
        self.sentinel = sentinel

    async def open_store(self, clock: FakeClock) -> SessionStore:
        target = RedisTarget("redis:///0", "sentinel", (self.sentinel.address,), "mymaster")
        return RedisStore(target, prefix=prefix(), clock=clock)


def test_pools_spread_over_every_node(cluster: ClusterServers) -> None:
    """Every script runs with its pool's keys on the node serving that pool's slot (redis-py
    and the server refuse a call whose keys span slots), and reads across pools (listing,
    expiry, the directory) gather them from every node."""
    names = pools_on_every_node(cluster)

    async def run() -> None:
        clock = FakeClock()
        store = cluster_store(cluster, clock)
        try:
            for i, name in enumerate(names):
                await store.set_pool(name, V[3 * i : 3 * i + 3])
            created = []
            for name in names:
                created.append(await store.create_session(spec(ALICE, BOB, pool=name, ttl=60)))
                created.append(await store.create_session(spec(CAROL, DAVE, pool=name)))
            assert sorted(await store.list_pools()) == sorted(names)
            assert len(await store.list_sessions()) == 2 * len(names)
            assert sorted(s.id for s in await store.list_sessions(participant=ALICE)) == sorted(
                s.id for s in created[::2]
            )
            for session in created:
                a, b = session.participants
                found = await store.lookup(a.proxy_identifier, a.key)
                assert found is not None and found.session_id == session.id
                assert found.callee.key == b.key
                await store.record_interaction(Interaction(
                    id=uuid.uuid4().hex, session_id=session.id, caller=a.key, callee=b.key,
                    dialled=a.proxy_identifier, presented=b.proxy_identifier,
                    started_at=clock(),
                ))
                assert len(await store.list_interactions(session.id)) == 1
            clock.advance(61)
            assert await store.expire() == len(names)  # the ttl=60 ones, one per node
            for session in created[::2]:
                a = session.participants[0]
                assert await store.lookup(a.proxy_identifier, a.key) is None
            await store.close_session(created[1].id)
            await store.set_pool(names[0], V[:1])  # V1 and V2 drain, one still in use
            pool = await store.get_pool(names[0])
            assert pool.numbers == (V[0],) and set(pool.draining) <= {V[1], V[2]}
            await store.close_session(created[3].id)
            with pytest.raises(PoolInUse):
                await store.delete_pool(names[2])
            await store.close_session(created[5].id)
            await store.delete_pool(names[2])
            assert sorted(await store.list_pools()) == sorted(names[:2])
        finally:
            await store.close()

        # Each node holds the keys of the pool whose slot it serves.
        owner = node_of_slot(cluster)
        for i, name in enumerate(names[:2]):
            assert owner[key_slot(name.encode())] == i
            node = aioredis.Redis.from_url(cluster.nodes[i].url, decode_responses=True)
            try:
                keys = await node.keys(f"{store._keys.prefix}:{{{name}}}:*")
                assert f"{store._keys.prefix}:{{{name}}}:meta" in keys
            finally:
                await node.aclose()

    asyncio.run(asyncio.wait_for(run(), BOUND))


PROCESSES = 3
PER_PROCESS = 200
IN_FLIGHT = 40
PEOPLE = [f"+9199000{i:05d}" for i in range(20)]
NUMBERS = [f"+9180456712{i:02d}" for i in range(25)]


async def _create_many(url: str, prefix: str, pool: str, seed: int) -> tuple[int, list[str]]:
    rng = random.Random(seed)
    store = RedisStore(RedisTarget(url, "cluster"), prefix=prefix, socket_timeout=10,
                       connect_timeout=10)
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def one() -> str | None:
        a, b = rng.sample(PEOPLE, 2)
        request = SessionSpec(participants=(ParticipantSpec(a), ParticipantSpec(b)),
                              pool=pool, ttl=3600)
        async with gate:
            try:
                await store.create_session(request)
            except PoolExhausted as exc:
                return exc.participant
        return None

    try:
        outcomes = await asyncio.gather(*(one() for _ in range(PER_PROCESS)))
    finally:
        await store.close()
    exhausted = [who for who in outcomes if who is not None]
    return PER_PROCESS - len(exhausted), exhausted


def _worker(url: str, prefix: str, pool: str, seed: int, barrier: Any, results: Any) -> None:
    barrier.wait()  # all processes start creating together
    try:
        results.put(asyncio.run(_create_many(url, prefix, pool, seed)))
    except BaseException as exc:
        results.put(repr(exc))  # the test fails at once instead of waiting for a result
        raise


def test_concurrent_creations_on_the_cluster_never_clash(cluster: ClusterServers) -> None:
    """Several processes (sipmask nodes), each with many creations in flight, against the
    cluster: nobody ever holds a number twice, and only those who hold every number of the
    pool are refused."""
    p = prefix()
    pool = pools_on_every_node(cluster)[1]  # not the seed node: requests are redirected

    async def setup() -> None:
        store = RedisStore(RedisTarget(cluster.url, "cluster"), prefix=p)
        try:
            await store.set_pool(pool, NUMBERS)
        finally:
            await store.close()

    asyncio.run(setup())
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES)
    results = ctx.Queue()
    workers = [
        ctx.Process(target=_worker, args=(cluster.url, p, pool, seed, barrier, results))
        for seed in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    try:
        outcomes = [results.get(timeout=300) for _ in workers]
    finally:
        for worker in workers:
            worker.join(timeout=60)
        results.close()
        results.join_thread()
    assert [o for o in outcomes if isinstance(o, str)] == []
    assert [worker.exitcode for worker in workers] == [0] * PROCESSES
    created = sum(ok for ok, _ in outcomes)
    exhausted = {who for _, refused in outcomes for who in refused}

    async def check() -> None:
        store = RedisStore(RedisTarget(cluster.url, "cluster"), prefix=p)
        try:
            sessions = await store.list_sessions(pool=pool)
            assert len(sessions) == created
            held: dict[str, list[str]] = defaultdict(list)
            for session in sessions:
                for part in session.participants:
                    held[part.key].append(part.proxy_identifier)
            for person, numbers in held.items():
                repeated = [n for n, c in Counter(numbers).items() if c > 1]
                assert repeated == [], f"a participant holds {repeated} twice"
            for person in exhausted:
                assert sorted(held[person]) == NUMBERS
        finally:
            await store.close()

    asyncio.run(check())
    # The load really contended: some creations succeeded and some met a full pool.
    assert created > len(NUMBERS) and exhausted


def test_events_reach_the_stream_on_the_cluster(cluster: ClusterServers, tmp_path: Path) -> None:
    """`for_store` with redis_mode cluster: batches (MULTI/EXEC on the `{events}` slot) land
    in order."""

    async def run() -> None:
        p = prefix()
        publisher = EventPublisher.for_store(
            "redis", redis_url=cluster.url, redis_mode="cluster", data_dir=tmp_path, prefix=p
        )
        await publisher.start()
        for seq in range(600):  # more than one batch
            publisher.publish("call.ended", {"seq": seq})
        await publisher.close()
        assert publisher.stats.written == 600 and publisher.stats.spooled == 0
        raw = RedisCluster.from_url(cluster.url, decode_responses=True)
        try:
            rows = await raw.xrange(stream_key(p))
        finally:
            await raw.aclose()
        assert [int(fields["data"][len('{"seq":'):-1]) for _, fields in rows] == list(
            range(600))

    asyncio.run(asyncio.wait_for(run(), BOUND))


def test_cluster_store_lookup_is_one_script_call(cluster: ClusterServers) -> None:
    async def run() -> None:
        store = cluster_store(cluster, FakeClock())
        try:
            pool = pools_on_every_node(cluster)[2]
            await store.set_pool(pool, V[:2])
            session = await store.create_session(spec(ALICE, BOB, pool=pool))
            first, second = numbers_of(session)
            assert await store.lookup(first, ALICE) is not None  # loads the script and cache
            sent: list[object] = []
            execute = store._redis.execute_command

            async def counting(*args: object, **options: object) -> object:
                sent.append(args[0])
                return await execute(*args, **options)

            store._redis.execute_command = counting
            found = await store.lookup(second, BOB)
            assert found is not None and found.callee.key == ALICE
            assert sent == ["EVALSHA"]
        finally:
            await store.close()

    asyncio.run(asyncio.wait_for(run(), BOUND))


def test_dead_cluster_and_dead_sentinel_fail_fast() -> None:
    """Nothing listens: every kind of client answers StoreUnavailable, not a hang and not a
    redis-py exception (the bound only guards against a hang)."""

    async def run() -> None:
        dead = f"redis://127.0.0.1:{free_port()}/0"
        for target in (
            RedisTarget(dead, "cluster"),
            RedisTarget("redis:///0", "sentinel", (f"127.0.0.1:{free_port()}",)),
        ):
            store = RedisStore(target, prefix=prefix())
            try:
                with pytest.raises(StoreUnavailable):
                    await store.ping()
                with pytest.raises(StoreUnavailable):
                    await store.lookup(V[0], ALICE)
            finally:
                await store.close()

    asyncio.run(asyncio.wait_for(run(), BOUND))


def test_cluster_target_rejects_what_a_cluster_cannot_do() -> None:
    with pytest.raises(ValueError, match="db"):
        RedisTarget("redis://127.0.0.1:7000/3", "cluster").connect(
            socket_timeout=1, connect_timeout=1, retries=0)
    with pytest.raises(ValueError, match="sentinel"):
        RedisTarget("redis:///0", "sentinel").connect(
            socket_timeout=1, connect_timeout=1, retries=0)
    with pytest.raises(ValueError, match="host:port"):
        RedisTarget("redis:///0", "sentinel", ("nope",)).connect(
            socket_timeout=1, connect_timeout=1, retries=0)


@pytest.mark.parametrize(
    "store_table, error",
    [
        ('redis_mode = "sentinel"', "store.sentinels: redis_mode \"sentinel\" needs"),
        ('sentinels = ["127.0.0.1:26379"]', "store.sentinels: used only with"),
        ('redis_mode = "sentinel"\nsentinels = ["nope"]', "store.sentinels[0]: not host:port"),
        ('redis_mode = "cluster"\nredis_url = "redis://10.0.0.1:6379/2"',
         "store.redis_url: a Redis Cluster has only database 0"),
        ('redis_mode = "cluster"\nredis_url = "unix:///run/redis.sock"',
         "store.redis_url: redis_mode cluster needs redis://"),
    ],
)
def test_config_checks_the_redis_mode(store_table: str, error: str) -> None:
    from sipmask.config import ConfigError, parse_config

    with pytest.raises(ConfigError) as caught:
        parse_config(f'[store]\nbackend = "redis"\n{store_table}\n', env={})
    assert any(e.startswith(error) for e in caught.value.errors), caught.value.errors


def test_server_opens_the_store_the_config_names(
    cluster: ClusterServers, sentinel: SentinelServer
) -> None:
    """`open_store` builds the cluster and the sentinel clients from `[store]`, applies the
    `[[pools]]` through them, and both answer."""
    from sipmask.config import parse_config
    from sipmask.server import open_store

    tables = [
        f'redis_mode = "cluster"\nredis_url = "{cluster.url}"',
        f'redis_mode = "sentinel"\nredis_url = "redis:///0"\n'
        f'sentinels = ["{sentinel.address}"]\nsentinel_service = "{sentinel.service}"',
    ]
    pool = f"p{uuid.uuid4().hex[:8]}"

    async def run() -> None:
        for table in tables:
            config = parse_config(
                f'[store]\nbackend = "redis"\n{table}\n'
                f'[[pools]]\nname = "{pool}"\nnumbers = ["{V[7]}"]\n',
                env={},
            )
            store = await open_store(config)
            try:
                assert isinstance(store, RedisStore) and await store.ping()
                assert (await store.get_pool(pool)).numbers == (V[7],)
            finally:
                await store.close()

    asyncio.run(asyncio.wait_for(run(), BOUND))
