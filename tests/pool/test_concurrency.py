"""Many processes and tasks at once: leases stay exclusive, the pool stays within max_size, and
crashed holders or waiters leak nothing. Evidence is checked by ``tests.support.evidence``."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from tests.support import workers
from tests.support.evidence import Hold, assert_quiet, hold_violations
from tests.support.sync_helpers import eventually
from tests.support.workers import CREATED, HOLDS, OVERLAPS, READY, check_key, pid, start
from thread_pool import ThreadPool
from thread_pool._store.keys import PoolKeys

PROCESSES = 8
TASKS = 25
CYCLES = 4
POOL_SIZE = 4


@pytest.mark.slow
def test_many_processes_and_tasks_never_share_a_thread(
    thread_pool_redis_url: str, thread_pool_prefix: str, redis_client: redis.Redis
) -> None:
    key = "stress"
    args = (thread_pool_redis_url, thread_pool_prefix, key, TASKS, CYCLES, POOL_SIZE)
    targets = [
        workers.async_worker if i % 2 == 0 else workers.sync_worker for i in range(PROCESSES)
    ]
    workers.join([start(target, *args, fresh=True) for target in targets], timeout=240)

    holds = [
        Hold.decode(str(line))
        for line in redis_client.lrange(check_key(thread_pool_prefix, HOLDS), 0, -1)
    ]
    assert len(holds) == PROCESSES * TASKS * CYCLES
    assert hold_violations(holds) == []
    assert redis_client.get(check_key(thread_pool_prefix, OVERLAPS)) is None
    created = redis_client.lrange(check_key(thread_pool_prefix, CREATED), 0, -1)
    # Growth raced from 8 processes at once and still stopped at max_size.
    assert len(created) == POOL_SIZE
    assert {h.thread_id for h in holds} == set(created)
    with ThreadPool(redis_url=thread_pool_redis_url, key_prefix=thread_pool_prefix) as pool:
        stats = pool.stats(key)
    assert stats.granted == len(holds)
    assert (stats.threads, stats.idle, stats.timeouts, stats.lost) == (POOL_SIZE, POOL_SIZE, 0, 0)
    assert_quiet(redis_client, thread_pool_prefix, key, threads=POOL_SIZE)


@pytest.fixture
def one_thread_pool(thread_pool_redis_url: str, thread_pool_prefix: str) -> Iterator[ThreadPool]:
    """A pool object with 1 s leases; a test adds its pool's one thread, "thread_only"."""
    with ThreadPool(
        redis_url=thread_pool_redis_url,
        key_prefix=thread_pool_prefix,
        lease_ttl=1,
        renew_margin=0.2,
    ) as pool:
        yield pool


def test_a_killed_holder_loses_its_thread_to_the_next_caller(
    one_thread_pool: ThreadPool,
    thread_pool_redis_url: str,
    thread_pool_prefix: str,
    redis_client: redis.Redis,
) -> None:
    key = "crash"
    pool = one_thread_pool
    pool.add_threads(key, ["thread_only"])
    ready = check_key(thread_pool_prefix, READY)
    proc = start(workers.hold_forever, thread_pool_redis_url, thread_pool_prefix, key, fresh=True)
    eventually(lambda: bool(redis_client.exists(ready)), timeout=20.0)
    os.kill(pid(proc), signal.SIGKILL)
    proc.join()
    assert redis_client.get(ready) == "thread_only 1"
    # The next caller waits out the dead holder's TTL, then gets the thread with a new fence.
    with pool.lease(key, timeout=5) as lease:
        assert (lease.thread_id, lease.fence) == ("thread_only", 2)
    stats = pool.stats(key)
    assert (stats.reaped, stats.idle) == (1, 1)
    assert_quiet(redis_client, thread_pool_prefix, key, threads=1)


def test_a_thread_handed_to_a_waiter_that_died_comes_back(
    one_thread_pool: ThreadPool,
    thread_pool_redis_url: str,
    thread_pool_prefix: str,
    redis_client: redis.Redis,
) -> None:
    key = "vanished"
    pool = one_thread_pool
    pool.add_threads(key, ["thread_only"])
    held = pool.acquire(key)
    proc = start(workers.wait_forever, thread_pool_redis_url, thread_pool_prefix, key, fresh=True)

    def queued() -> bool:
        # Held (renewed) until the waiter is queued: a 1 s lease could expire while a fresh
        # interpreter starts, and the waiter would reclaim it instead of queueing.
        held.renew()
        return pool.stats(key).waiting == 1

    eventually(queued, timeout=20.0)
    os.kill(pid(proc), signal.SIGKILL)
    proc.join()
    # The waiter's ticket is still live, so the release hands the thread to it...
    pool.release(held)
    assert pool.stats(key).leased == 1
    # ...and once that lease runs out, the thread comes back to the living.
    with pool.lease(key, timeout=5) as lease:
        assert (lease.thread_id, lease.fence) == ("thread_only", 3)
    assert_quiet(redis_client, thread_pool_prefix, key, threads=1)


@pytest.mark.slow
def test_a_dead_waiters_place_in_the_queue_lapses_and_costs_no_thread(
    thread_pool_redis_url: str, thread_pool_prefix: str, redis_client: redis.Redis
) -> None:
    key = "lapsed"
    pool = ThreadPool(
        redis_url=thread_pool_redis_url, key_prefix=thread_pool_prefix, lease_ttl=4, renew_margin=1
    )
    pool.add_threads(key, ["thread_only"])
    held = pool.acquire(key)

    def holding_until(condition: Any, timeout: float = 15.0) -> None:
        end = time.monotonic() + timeout
        while not condition():
            held.renew()
            assert time.monotonic() < end, "condition not reached in time"
            time.sleep(0.1)

    args = (thread_pool_redis_url, thread_pool_prefix, key)
    procs = [start(workers.wait_forever, *args, fresh=True)]
    holding_until(lambda: pool.stats(key).waiting == 1)
    procs.append(start(workers.wait_forever, *args, fresh=True))
    holding_until(lambda: pool.stats(key).waiting == 2)
    # Both wait past a refresh of their entries; then the first in the queue dies.
    pause = time.monotonic() + 3
    holding_until(lambda: time.monotonic() > pause)
    os.kill(pid(procs[0]), signal.SIGKILL)
    procs[0].join()
    # The living waiter keeps its entry live; the dead one's lapses within seconds.
    holding_until(lambda: pool.stats(key).waiting == 1)
    pool.release(held)
    # The release skipped the lapsed entry: the living waiter holds the thread now.
    holds = redis_client.hgetall(PoolKeys.of(thread_pool_prefix, key).holds)
    assert len(holds) == 1
    (hold,) = holds.values()
    assert f":{pid(procs[1])}:" in hold, hold
    os.kill(pid(procs[1]), signal.SIGKILL)
    procs[1].join()
    with pool.lease(key, timeout=20) as lease:
        assert (lease.thread_id, lease.fence) == ("thread_only", 3)
    pool.close()
    assert_quiet(redis_client, thread_pool_prefix, key, threads=1)
