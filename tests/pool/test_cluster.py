"""The pool on a Redis Cluster of three masters: every pool's keys stay in one slot, and leasing,
hand-off, growth and expiry work through cluster clients (blocking and asyncio)."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
import redis
import redis.asyncio.cluster as acluster
from redis.cluster import RedisCluster

from tests.support.backends import RecordingBackend
from thread_pool import AsyncThreadPool, InvalidSettings, ThreadPool
from thread_pool.testing.redis_server import LocalCluster


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    with LocalCluster(masters=3) as started:
        yield started


@pytest.fixture
def prefix() -> str:
    return f"tpc-{uuid.uuid4().hex[:8]}"


def Factory() -> RecordingBackend:
    return RecordingBackend()  # distinct ids: a thread is in one pool


def slots_of_pools(cluster: LocalCluster, prefix: str) -> dict[str, set[tuple[int, int]]]:
    """For each pool key: the (node port, slot) of every key written under it, read node by node."""
    found: dict[str, set[tuple[int, int]]] = {}
    for node in cluster.nodes:
        with redis.Redis.from_url(node.url, decode_responses=True) as client:
            for name in client.scan_iter(match=f"{prefix}:*"):
                if name in (f"{prefix}:pools", f"{prefix}:owners"):
                    continue  # the two keys outside every pool
                pool = name[name.index("{") + 1 : name.index("}")]
                slot = int(client.execute_command("CLUSTER KEYSLOT", name))
                found.setdefault(pool, set()).add((node.port, slot))
    return found


def test_every_pool_lives_in_one_slot(cluster: LocalCluster, prefix: str) -> None:
    client = RedisCluster.from_url(cluster.url, decode_responses=True)
    keys = [f"doc-{i}" for i in range(12)]
    with ThreadPool(
        client=client,  # type: ignore[arg-type]
        key_prefix=prefix,
        backend=Factory(),
        max_size=2,
        lease_ttl=0.5,
        renew_margin=0.1,
    ) as pool:
        for key in keys:
            held = [pool.acquire(key), pool.acquire(key)]  # grown through the factory
            got: list[int] = []

            def wait_for_one(key: str = key, got: list[int] = got) -> None:
                with pool.lease(key, timeout=5) as lease:
                    got.append(lease.fence)

            waiter = threading.Thread(target=wait_for_one)
            waiter.start()
            while pool.stats(key).waiting == 0:
                pass
            pool.release(held[0])  # handed to the waiter over its mailbox (BLPOP)
            waiter.join()
            assert got == [2]
            pool.release(held[1])
        assert sorted(pool.pools()) == sorted(keys)
        placements = slots_of_pools(cluster, prefix)
        assert sorted(placements) == sorted(keys)
        assert all(len(where) == 1 for where in placements.values()), placements
        # The pools are spread over the nodes, not all on one.
        assert len({port for where in placements.values() for port, _ in where}) > 1
        # A lease whose holder vanished expires and is reclaimed on the cluster too.
        pool.acquire("doc-0")
        time.sleep(0.6)
        assert pool.reap("doc-0") == 1
        stats = pool.stats("doc-0")
        assert (stats.threads, stats.idle, stats.reaped) == (2, 2, 1)
    client.close()


async def test_asyncio_pool_on_the_cluster(cluster: LocalCluster, prefix: str) -> None:
    client = acluster.RedisCluster.from_url(cluster.url, decode_responses=True)
    async with AsyncThreadPool(
        client=client,  # type: ignore[arg-type]
        key_prefix=prefix,
        max_size=3,
    ) as pool:
        await pool.add_threads("user:7", ["thread_a", "thread_b", "thread_c"])

        async def worker(n: int) -> list[int]:
            fences = []
            for _ in range(5):
                async with pool.lease("user:7", timeout=10) as lease:
                    fences.append(lease.fence)
                    await asyncio.sleep(0.001)
            return fences

        results = await asyncio.gather(*(worker(n) for n in range(10)))
        assert sum(len(r) for r in results) == 50
        stats = await pool.stats("user:7")
        assert (stats.granted, stats.idle, stats.leased, stats.waiting) == (50, 3, 0, 0)
    await client.aclose()


async def test_the_setting_opens_cluster_clients_that_many_tasks_can_share_from_the_start(
    cluster: LocalCluster, prefix: str
) -> None:
    # No client given: redis_cluster makes the pool open its own cluster client. 25 tasks send
    # their first commands at once through it, before it has read the slot map (with redis-py
    # 8.1 as it comes, some of them failed with "'NoneType' object has no attribute ...").
    async with AsyncThreadPool(
        redis_url=cluster.url, redis_cluster=True, key_prefix=prefix, max_size=4
    ) as pool:
        await pool.add_threads("doc", ["thread_a", "thread_b", "thread_c", "thread_d"])

    async with AsyncThreadPool(
        redis_url=cluster.url, redis_cluster=True, key_prefix=prefix, acquire_timeout=30
    ) as pool:

        async def task() -> None:
            for _ in range(3):
                async with pool.lease("doc"):
                    await asyncio.sleep(0.001)

        await asyncio.gather(*(task() for _ in range(25)))
        assert (await pool.stats("doc")).granted == 75


def test_a_plain_client_on_a_cluster_names_the_setting(cluster: LocalCluster, prefix: str) -> None:
    keys = [f"doc-{i}" for i in range(8)]  # some of them live on another node than the URL's
    with ThreadPool(redis_url=cluster.url, redis_cluster=False, key_prefix=prefix) as pool:
        errors = {}
        for key in keys:
            try:
                pool.add_threads(key, [f"thread_{key}"])
            except InvalidSettings as exc:
                errors[key] = str(exc)
    assert errors, "every pool (and the registry) landed on the URL's node"
    assert all("THREAD_POOL_REDIS_CLUSTER=1" in e for e in errors.values()), errors
    with ThreadPool(redis_url=cluster.url, redis_cluster=True, key_prefix=prefix) as pool:
        for key in errors:
            pool.add_threads(key, [f"thread_{key}"])  # the ones refused above go in now
        assert all(pool.stats(key).threads == 1 for key in keys)
