"""Worker processes for the multi-process tests: they hold threads and record evidence.

Evidence goes to Redis lists of the test's own prefix, written with plain commands outside the
pool's keys, so the checker reads what holders saw, not what the pool believes.
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
import uuid

from tests.support.evidence import Hold
from thread_pool import AsyncThreadPool, ThreadPool
from thread_pool.redis_clients import connect


def evidence_key(prefix: str) -> str:
    """List of ``Hold`` lines."""
    return f"{prefix}:check:holds"


def created_key(prefix: str) -> str:
    """List of thread ids the factories created."""
    return f"{prefix}:check:created"


def overlap_key(prefix: str) -> str:
    """Counter of times a holder found its thread already occupied."""
    return f"{prefix}:check:overlaps"


class _Evidence:
    def __init__(self, url: str, prefix: str) -> None:
        self.client = connect(url, decode_responses=True)
        self.prefix = prefix

    def create_thread(self) -> str:
        thread_id = f"thread_{uuid.uuid4().hex[:16]}"
        self.client.rpush(created_key(self.prefix), thread_id)
        return thread_id

    def enter(self, thread_id: str) -> None:
        # An occupancy counter of our own: more than one holder inside means overlap.
        if self.client.incr(f"{self.prefix}:check:occ:{thread_id}") != 1:
            self.client.incr(overlap_key(self.prefix))

    def leave(self, thread_id: str, fence: int, start: int, holder: str) -> None:
        end = time.monotonic_ns()
        self.client.decr(f"{self.prefix}:check:occ:{thread_id}")
        hold = Hold(thread_id, fence, start, end, holder)
        self.client.rpush(evidence_key(self.prefix), hold.encode())


class _AsyncFactory:
    def __init__(self, evidence: _Evidence) -> None:
        self.evidence = evidence

    async def create_thread(self, key: str) -> str:
        await asyncio.sleep(random.uniform(0, 0.005))  # an upstream round trip
        return await asyncio.to_thread(self.evidence.create_thread)


class _SyncFactory:
    def __init__(self, evidence: _Evidence) -> None:
        self.evidence = evidence

    def create_thread(self, key: str) -> str:
        time.sleep(random.uniform(0, 0.005))
        return self.evidence.create_thread()


def async_worker(url: str, prefix: str, key: str, tasks: int, cycles: int, max_size: int) -> None:
    """One process: ``tasks`` asyncio tasks, each leasing ``cycles`` times."""
    evidence = _Evidence(url, prefix)

    async def main() -> None:
        async with AsyncThreadPool(
            redis_url=url,
            key_prefix=prefix,
            max_size=max_size,
            acquire_timeout=60,
            thread_factory=_AsyncFactory(evidence),
        ) as pool:

            async def task(n: int) -> None:
                for _ in range(cycles):
                    async with pool.lease(key) as lease:
                        start = time.monotonic_ns()
                        evidence.enter(lease.thread_id)
                        await asyncio.sleep(random.uniform(0, 0.002))
                        evidence.leave(lease.thread_id, lease.fence, start, f"{os.getpid()}/{n}")

            await asyncio.gather(*(task(n) for n in range(tasks)))

    asyncio.run(main())


def sync_worker(url: str, prefix: str, key: str, tasks: int, cycles: int, max_size: int) -> None:
    """One process: ``tasks`` threads using the blocking pool, each leasing ``cycles`` times."""
    evidence = _Evidence(url, prefix)
    with ThreadPool(
        redis_url=url,
        key_prefix=prefix,
        max_size=max_size,
        acquire_timeout=60,
        thread_factory=_SyncFactory(evidence),
    ) as pool:

        def task(n: int) -> None:
            for _ in range(cycles):
                with pool.lease(key) as lease:
                    start = time.monotonic_ns()
                    evidence.enter(lease.thread_id)
                    time.sleep(random.uniform(0, 0.002))
                    evidence.leave(lease.thread_id, lease.fence, start, f"{os.getpid()}/t{n}")

        threads = [threading.Thread(target=task, args=(n,)) for n in range(tasks)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()


def hold_forever(url: str, prefix: str, key: str, ready: str) -> None:
    """Lease a thread, say so, and never release it (the test kills this process)."""
    with ThreadPool(redis_url=url, key_prefix=prefix) as pool:
        lease = pool.acquire(key)
        connect(url).set(ready, f"{lease.thread_id} {lease.fence}")
        time.sleep(600)


def wait_forever(url: str, prefix: str, key: str) -> None:
    """Wait for a thread of a pool whose only thread is held (the test kills this process)."""
    with ThreadPool(redis_url=url, key_prefix=prefix) as pool:
        pool.acquire(key, timeout=600)
        time.sleep(600)
