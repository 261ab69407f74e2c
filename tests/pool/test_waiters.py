"""Waiting without a Redis connection per waiter: one dispatcher per pool object waits for all
of its callers, so many callers wait through a handful of connections, in FIFO order across
processes, and a waiter cancelled at any moment (its grant already pushed or not) loses no
thread. Each test checks Redis itself afterwards (``assert_quiet``, the queue, the fences)."""

from __future__ import annotations

import asyncio
import functools
import random
import threading
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from tests.support import workers
from tests.support.aio_helpers import eventually as eventually_async
from tests.support.evidence import assert_quiet
from tests.support.sync_helpers import eventually
from tests.support.workers import GRANTS, check_key, start
from thread_pool import (
    AsyncThreadPool,
    ConnectionsExhausted,
    PoolTimeout,
    StoreUnavailable,
    ThreadPool,
)
from thread_pool._store.keys import PoolKeys
from thread_pool.testing.plugin import cluster_mode


def named(url: str, name: str) -> str:
    """``url`` with a client name, so that Redis's CLIENT LIST tells its connections apart."""
    return f"{url}{'&' if '?' in url else '?'}client_name={name}"


def connections(client: redis.Redis, name: str) -> int:
    """Connections Redis has from clients named ``name`` (on a cluster: on the node asked)."""
    return sum(1 for c in client.client_list() if c.get("name") == name)


async def test_many_waiting_tasks_share_a_few_connections(
    thread_pool_redis_url: str, thread_pool_prefix: str, redis_client: redis.Redis
) -> None:
    name = f"{thread_pool_prefix}-many"
    settings: dict[str, Any] = {"key_prefix": thread_pool_prefix, "acquire_timeout": 60}
    async with (
        AsyncThreadPool(redis_url=thread_pool_redis_url, **settings) as helper,
        AsyncThreadPool(
            redis_url=named(thread_pool_redis_url, name), max_connections=4, **settings
        ) as pool,
    ):
        await helper.add_threads("many", ["thread_a", "thread_b"])
        held = [await helper.acquire("many"), await helper.acquire("many")]
        served: list[int] = []

        async def task(n: int) -> None:
            async with pool.lease("many"):
                served.append(n)

        tasks = [asyncio.create_task(task(n)) for n in range(300)]

        async def all_queued() -> bool:
            assert not any(t.done() for t in tasks), [t.exception() for t in tasks if t.done()]
            return (await helper.stats("many")).waiting == 300

        await eventually_async(all_queued, timeout=60)
        # All 300 queued at once; the process has no more connections than its bound.
        most = await asyncio.to_thread(connections, redis_client, name)
        for lease in held:
            await helper.release(lease)
        await asyncio.gather(*tasks)
        assert sorted(served) == list(range(300))
    if not cluster_mode():  # a cluster client's bound holds per node; CLIENT LIST asks one
        assert 1 <= most <= 4
    assert_quiet(redis_client, thread_pool_prefix, "many", threads=2)


def test_many_waiting_threads_share_a_few_connections(
    thread_pool_redis_url: str, thread_pool_prefix: str, redis_client: redis.Redis
) -> None:
    settings: dict[str, Any] = {"key_prefix": thread_pool_prefix, "acquire_timeout": 60}
    with (
        ThreadPool(redis_url=thread_pool_redis_url, **settings) as helper,
        ThreadPool(redis_url=thread_pool_redis_url, max_connections=3, **settings) as pool,
    ):
        helper.add_threads("threads", ["thread_a"])
        held = helper.acquire("threads")
        served: list[int] = []

        def task(n: int) -> None:
            with pool.lease("threads"):
                served.append(n)

        threads = [threading.Thread(target=task, args=(n,)) for n in range(40)]
        for t in threads:
            t.start()
        eventually(lambda: helper.stats("threads").waiting == 40, timeout=30)
        helper.release(held)
        for t in threads:
            t.join(60)
        assert sorted(served) == list(range(40))
    assert_quiet(redis_client, thread_pool_prefix, "threads", threads=1)


async def test_cancelling_waiters_at_random_moments_loses_no_thread(
    thread_pool_redis_url: str, thread_pool_prefix: str, redis_client: redis.Redis
) -> None:
    rng = random.Random(17)
    settings: dict[str, Any] = {"key_prefix": thread_pool_prefix, "acquire_timeout": 30}
    async with AsyncThreadPool(
        redis_url=thread_pool_redis_url, max_connections=4, **settings
    ) as pool:
        await pool.add_threads("cancel", ["t1", "t2", "t3"])

        async def worker() -> None:
            while True:
                async with pool.lease("cancel"):
                    await asyncio.sleep(rng.choice((0, 0, 0.001)))

        async def granted_past(count: int) -> bool:
            return (await pool.stats("cancel")).granted > count

        # Ten waiters per thread: most are queued, and a cancellation often lands between a
        # grant pushed to the dispatcher and the waiter receiving it.
        running = [asyncio.create_task(worker()) for _ in range(30)]
        every = list(running)
        granted = 0
        for _ in range(40):
            await asyncio.sleep(rng.choice((0, 0.0002, 0.001, 0.003)))
            # Leases go on being granted between the rounds of cancellations.
            await eventually_async(functools.partial(granted_past, granted), timeout=30)
            granted = (await pool.stats("cancel")).granted
            rng.shuffle(running)
            for task in running[:5]:
                task.cancel()
            fresh = [asyncio.create_task(worker()) for _ in range(5)]
            every += fresh
            running = running[5:] + fresh
        for task in running:
            task.cancel()
        outcomes = await asyncio.gather(*every, return_exceptions=True)
        assert all(isinstance(o, asyncio.CancelledError) for o in outcomes), outcomes
    # Checked in Redis: every thread idle, no lease, waiter or message left...
    assert_quiet(redis_client, thread_pool_prefix, "cancel", threads=3)
    # ...and another pool object gets all three at once.
    with ThreadPool(redis_url=thread_pool_redis_url, **settings) as other:
        leases = [other.acquire("cancel", timeout=0) for _ in range(3)]
        assert sorted(lease.thread_id for lease in leases) == ["t1", "t2", "t3"]
        for lease in leases:
            other.release(lease)


def test_waiters_of_many_processes_are_served_in_queue_order(
    thread_pool_redis_url: str, thread_pool_prefix: str, redis_client: redis.Redis
) -> None:
    key, processes, tasks = "fifo", 2, 10
    with ThreadPool(redis_url=thread_pool_redis_url, key_prefix=thread_pool_prefix) as helper:
        helper.add_threads(key, ["thread_only"])
        held = helper.acquire(key)
        procs = [
            start(workers.queue_and_record, thread_pool_redis_url, thread_pool_prefix, key, tasks)
            for _ in range(processes)
        ]

        def all_queued() -> bool:
            held.renew()  # held until every waiter is queued, however slow processes start
            return helper.stats(key).waiting == processes * tasks

        eventually(all_queued, timeout=60)
        queue = redis_client.lrange(PoolKeys.of(thread_pool_prefix, key).waiters, 0, -1)
        arrival = [str(entry).split("|", 1)[0] for entry in queue]
        helper.release(held)
        workers.join(procs, timeout=60)
    grants = [
        str(line).split()
        for line in redis_client.lrange(check_key(thread_pool_prefix, GRANTS), 0, -1)
    ]
    # One thread: its fence goes up by one per grant, so the fences give the grant order.
    by_fence = [token for token, _ in sorted(grants, key=lambda g: int(g[1]))]
    assert len(set(arrival)) == processes * tasks
    assert by_fence == arrival
    assert_quiet(redis_client, thread_pool_prefix, key, threads=1)


async def test_an_exhausted_client_is_its_own_error(
    thread_pool_redis_url: str, thread_pool_prefix: str
) -> None:
    if cluster_mode():
        client: Any = aioredis.RedisCluster.from_url(thread_pool_redis_url, max_connections=1)
    else:
        client = aioredis.Redis.from_url(thread_pool_redis_url, max_connections=1)
    async with AsyncThreadPool(client=client, key_prefix=thread_pool_prefix) as pool:
        await pool.add_threads("busy", ["thread_a"])
        # The client's only connection is taken by a blocking read elsewhere in the process.
        blocked = asyncio.create_task(client.blpop([f"{thread_pool_prefix}:{{busy}}:none"], 0.5))
        await asyncio.sleep(0.05)
        with pytest.raises(ConnectionsExhausted) as caught:
            await pool.stats("busy")
        assert not isinstance(caught.value, StoreUnavailable)
        assert "max_connections" in str(caught.value)
        await blocked
    await client.aclose()


# A pool given a client must stop using it when the pool closes: its dispatcher's reader,
# left blocked in BLPOP, went on with commands on a client its owner then closed, which a
# cluster client answered by opening connections that nobody closed (seen as ResourceWarnings
# of the garbage collector, failing whichever test ran then).


class CountingRedis(aioredis.Redis):
    """A real client that counts its commands in flight."""

    in_flight = 0

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        self.in_flight += 1
        try:
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        finally:
            self.in_flight -= 1


class CountingCluster(aioredis.RedisCluster):
    """The same, for the cluster pass."""

    in_flight = 0

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        # Set up once before the first command (see _AsyncRedisCluster in _store/clients.py).
        await self.initialize()
        self.in_flight += 1
        try:
            return await super().execute_command(*args, **options)
        finally:
            self.in_flight -= 1


class BlockingCountingRedis(redis.Redis):
    """The blocking twin of ``CountingRedis``."""

    in_flight = 0

    def execute_command(self, *args: Any, **options: Any) -> Any:
        self.in_flight += 1
        try:
            return super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        finally:
            self.in_flight -= 1


class BlockingCountingCluster(redis.RedisCluster):
    """The blocking twin of ``CountingCluster``."""

    in_flight = 0

    def execute_command(self, *args: Any, **options: Any) -> Any:
        self.in_flight += 1
        try:
            return super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        finally:
            self.in_flight -= 1


async def test_a_closed_pool_leaves_no_command_on_the_client_it_was_given(
    thread_pool_redis_url: str, thread_pool_prefix: str, redis_client: redis.Redis
) -> None:
    kind = CountingCluster if cluster_mode() else CountingRedis
    client: Any = kind.from_url(thread_pool_redis_url, decode_responses=True)
    async with AsyncThreadPool(
        redis_url=thread_pool_redis_url, key_prefix=thread_pool_prefix
    ) as helper:
        await helper.add_threads("given", ["thread_a"])
        held = await helper.acquire("given")
        pool = AsyncThreadPool(client=client, key_prefix=thread_pool_prefix)
        # The caller gives up; its dispatcher's reader outlives it by one quiet read.
        with pytest.raises(PoolTimeout):
            await pool.acquire("given", timeout=0.3)
        await pool.aclose()
        assert client.in_flight == 0
        assert await client.ping()  # the client is still its owner's, open
        await client.aclose()
        await helper.release(held)
    assert_quiet(redis_client, thread_pool_prefix, "given", threads=1)


def test_a_closed_blocking_pool_leaves_no_command_on_the_client_it_was_given(
    thread_pool_redis_url: str, thread_pool_prefix: str, redis_client: redis.Redis
) -> None:
    kind = BlockingCountingCluster if cluster_mode() else BlockingCountingRedis
    client: Any = kind.from_url(thread_pool_redis_url, decode_responses=True)
    with ThreadPool(redis_url=thread_pool_redis_url, key_prefix=thread_pool_prefix) as helper:
        helper.add_threads("given", ["thread_a"])
        held = helper.acquire("given")
        pool = ThreadPool(client=client, key_prefix=thread_pool_prefix)
        with pytest.raises(PoolTimeout):
            pool.acquire("given", timeout=0.3)
        pool.close()
        assert client.in_flight == 0
        assert client.ping()
        client.close()
        helper.release(held)
    assert_quiet(redis_client, thread_pool_prefix, "given", threads=1)
