"""One pool per upstream thread (under a key prefix), and fences that never go down for a thread
id, whichever way it comes (back) into a pool."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from collections.abc import Iterator

import pytest
import redis

from tests.support.backends import RecordingBackend
from tests.support.redis_state import keys_under, pool_problems
from tests.support.workers import SPAWN
from thread_pool import AsyncThreadPool, ThreadOwned, ThreadPool
from thread_pool._store.keys import PoolKeys, owners_key
from thread_pool.admin import PoolAdmin


@pytest.fixture
def admin(thread_pool_redis_url: str, thread_pool_prefix: str) -> Iterator[PoolAdmin]:
    with PoolAdmin(redis_url=thread_pool_redis_url, key_prefix=thread_pool_prefix) as a:
        yield a


@pytest.fixture
def pool(thread_pool_redis_url: str, thread_pool_prefix: str) -> Iterator[ThreadPool]:
    with ThreadPool(redis_url=thread_pool_redis_url, key_prefix=thread_pool_prefix) as p:
        yield p


def pools_holding(client: redis.Redis, prefix: str, keys: list[str], thread: str) -> list[str]:
    """The pools among ``keys`` whose threads hash holds ``thread`` (read raw)."""
    return [k for k in keys if client.hexists(PoolKeys.of(prefix, k).threads, thread)]


def test_a_thread_added_to_one_pool_cannot_be_added_to_another(
    pool: ThreadPool, redis_client: redis.Redis, thread_pool_prefix: str
) -> None:
    assert pool.add_threads("a", ["thread_1"]) == 1
    before = keys_under(redis_client, thread_pool_prefix)
    with pytest.raises(ThreadOwned, match="pool 'a'") as caught:
        pool.add_threads("b", ["thread_2", "thread_1"])
    assert (caught.value.thread_id, caught.value.owner) == ("thread_1", "a")
    # All or nothing: thread_2 was not taken either, and pool b was not even created.
    assert keys_under(redis_client, thread_pool_prefix) == before
    assert pool.pools() == ["a"]
    assert pool.add_threads("a", ["thread_1"]) == 0  # its own pool: skipped as before
    with pool.lease("a", timeout=0) as lease:
        with pytest.raises(ThreadOwned):
            pool.add_threads("b", ["thread_1"])
        assert lease.thread_id == "thread_1"
    assert pool_problems(redis_client, thread_pool_prefix, "a") == []


def test_an_import_under_another_key_cannot_take_a_pools_threads(
    admin: PoolAdmin, pool: ThreadPool, redis_client: redis.Redis, thread_pool_prefix: str
) -> None:
    pool.add_threads("a", ["thread_1", "thread_2"])
    copy = admin.export(["a"])
    copy["pools"][0]["key"] = "b"
    before = keys_under(redis_client, thread_pool_prefix)
    with pytest.raises(ThreadOwned, match="pool 'a'"):
        admin.restore(copy)
    assert keys_under(redis_client, thread_pool_prefix) == before
    assert admin.pools() == ["a"]


def test_a_delete_frees_only_its_own_threads_upstream(
    admin: PoolAdmin, pool: ThreadPool, redis_client: redis.Redis, thread_pool_prefix: str
) -> None:
    upstream = RecordingBackend()
    upstream.threads |= {"thread_1", "thread_2"}
    pool.add_threads("a", ["thread_1"])
    with pytest.raises(ThreadOwned):
        pool.add_threads("b", ["thread_1", "thread_2"])
    pool.add_threads("b", ["thread_2"])
    report = admin.delete("b", upstream)
    assert report.deleted_upstream == ["thread_2"]
    assert upstream.threads == {"thread_1"}  # pool a's thread is untouched
    # Deleting a frees thread_1 for another pool.
    admin.delete("a")
    assert pool.add_threads("c", ["thread_1"]) == 1
    assert redis_client.hgetall(owners_key(thread_pool_prefix)) == {"thread_1": "c"}


def test_growth_never_registers_a_thread_another_pool_owns(
    admin: PoolAdmin, pool: ThreadPool, redis_client: redis.Redis, thread_pool_prefix: str
) -> None:
    # Two upstreams that hand out the same ids (a buggy or shared backend).
    first, second = RecordingBackend(unique=False), RecordingBackend(unique=False)
    assert admin.grow_one("a", 1, first).outcome == "grown"
    with pytest.raises(ThreadOwned, match="pool 'a'"):
        admin.grow_one("b", 1, second)
    assert "thread_1" in second.threads  # not deleted: it is pool a's thread
    stats = pool.stats("b")
    assert (stats.threads, stats.reserved) == (0, 0)  # the slot was given back
    assert pools_holding(redis_client, thread_pool_prefix, ["a", "b"], "thread_1") == ["a"]


def test_a_retired_thread_added_back_keeps_rising_fences_and_is_not_purged(
    thread_pool_redis_url: str, thread_pool_prefix: str, redis_client: redis.Redis
) -> None:
    upstream = RecordingBackend()
    upstream.threads |= {"thread_1", "thread_2"}
    with ThreadPool(
        redis_url=thread_pool_redis_url, key_prefix=thread_pool_prefix, backend=upstream
    ) as pool:
        pool.add_threads("doc", ["thread_1"])
        for _ in range(3):
            pool.release(pool.acquire("doc"))
        pool.add_threads("doc", ["thread_2"])
        held = pool.acquire("doc")
        assert held.thread_id == "thread_2"
        assert pool.configure("doc", max_size=1).retired == 1  # thread_1 (fence 3) retires
        pool.release(held)
        pool.configure("doc", max_size=2)
        assert pool.add_threads("doc", ["thread_1"]) == 1
        assert pool.stats("doc").retired == 0  # off the retired list...
        assert pool.purge_retired("doc") == 0  # ...so a purge leaves it upstream
        assert upstream.threads == {"thread_1", "thread_2"}
        fences = []
        for _ in range(2):
            with pool.lease("doc", timeout=0) as a, pool.lease("doc", timeout=0) as b:
                fences += [lease.fence for lease in (a, b) if lease.thread_id == "thread_1"]
        assert fences[0] > 3, fences  # never back to 1
        assert fences[1] == fences[0] + 1
        assert fences[1] < 2**53
        assert pool_problems(redis_client, thread_pool_prefix, "doc") == []


def test_a_purged_thread_is_free_again(
    thread_pool_redis_url: str, thread_pool_prefix: str, redis_client: redis.Redis
) -> None:
    upstream = RecordingBackend()
    with ThreadPool(
        redis_url=thread_pool_redis_url, key_prefix=thread_pool_prefix, backend=upstream
    ) as pool:
        pool.add_threads("doc", ["thread_1", "thread_2"])
        pool.configure("doc", max_size=1)
        assert pool.purge_retired("doc") == 1
        owners = redis_client.hgetall(owners_key(thread_pool_prefix))
        assert list(owners.values()) == ["doc"]
        (gone,) = {"thread_1", "thread_2"} - set(owners)
        assert pool.add_threads("other", [gone]) == 1


# -- racing claims -----------------------------------------------------------------------------

ROUNDS = 30
POOLS = 8


async def test_racing_adds_of_one_thread_leave_it_in_exactly_one_pool(
    thread_pool_redis_url: str, thread_pool_prefix: str, redis_client: redis.Redis
) -> None:
    keys = [f"pool-{n}" for n in range(POOLS)]
    # A pool object (with its own connections) per racer.
    racers = [
        AsyncThreadPool(
            redis_url=thread_pool_redis_url, key_prefix=thread_pool_prefix, max_size=ROUNDS
        )
        for _ in keys
    ]
    won: set[str] = set()
    try:
        for round_ in range(ROUNDS):
            thread = f"thread_{round_}"

            async def add(racer: AsyncThreadPool, key: str, thread: str = thread) -> str | None:
                try:
                    await racer.add_threads(key, [thread])
                except ThreadOwned as exc:
                    return exc.owner
                return None

            owners = await asyncio.gather(*(add(r, k) for r, k in zip(racers, keys, strict=True)))
            winners = [k for k, owner in zip(keys, owners, strict=True) if owner is None]
            assert len(winners) == 1, (thread, owners)
            assert {o for o in owners if o is not None} == set(winners)
            # Checked apart from the library: the raw keys of every pool, and the owners hash.
            assert pools_holding(redis_client, thread_pool_prefix, keys, thread) == winners
            assert redis_client.hget(owners_key(thread_pool_prefix), thread) == winners[0]
            won.add(winners[0])
    finally:
        for racer in racers:
            await racer.aclose()
    for key in won:
        assert pool_problems(redis_client, thread_pool_prefix, key) == []


def claim_in_process(url: str, prefix: str, key: str, threads: list[str]) -> None:
    """A racer process: add each thread to its own pool, in an order of its own; refusals are
    expected."""
    order = list(threads)
    random.Random(key).shuffle(order)
    with ThreadPool(redis_url=url, key_prefix=prefix, max_size=len(threads)) as pool:
        for thread in order:
            with contextlib.suppress(ThreadOwned):
                pool.add_threads(key, [thread])


@pytest.mark.slow
def test_racing_processes_never_share_a_thread(
    thread_pool_redis_url: str, thread_pool_prefix: str, redis_client: redis.Redis
) -> None:
    keys = [f"proc-{n}" for n in range(4)]
    threads = [f"thread_{n}" for n in range(200)]
    procs = [
        SPAWN.Process(
            target=claim_in_process,
            args=(thread_pool_redis_url, thread_pool_prefix, key, threads),
        )
        for key in keys
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
        assert proc.exitcode == 0
    owners = redis_client.hgetall(owners_key(thread_pool_prefix))
    won: set[str] = set()
    for thread in threads:
        holding = pools_holding(redis_client, thread_pool_prefix, keys, thread)
        assert len(holding) == 1, (thread, holding)
        assert owners[thread] == holding[0]
        won.add(holding[0])
    for key in won:  # a racer that won nothing made no pool
        assert pool_problems(redis_client, thread_pool_prefix, key) == []
    print(f"\nracing processes: threads won per pool {dict(Counter(owners.values()))}")
