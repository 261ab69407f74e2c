"""Cancellation at every await point of acquire and release leaks nothing.

A store wrapper counts the pool's awaits on Redis (and the factory counts its own); the test runs
a scenario once to count them, then once per await point and side (before the command reaches
Redis, or after Redis ran it but before the reply is seen), cancelling the task right there with
``Task.cancel()``. Afterwards the pool must be exactly as it was: every thread idle, no lease,
waiter, mailbox or reservation left.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, cast

import pytest
import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from tests.support.backends import AsyncRecordingBackend
from tests.support.evidence import assert_quiet
from thread_pool import AsyncThreadPool, InvalidArgument, LeaseNotOwned, ThreadPool
from thread_pool._store.keys import PoolKeys
from thread_pool.testing.plugin import cluster_mode


class CancelAt:
    """Cancels the scenario's task at the ``n``-th await point (``side``: before/after the call).

    The cancellation goes to the scenario's own task, as ``Task.cancel()`` from outside would:
    when the await point runs inside a shielded clean-up, the clean-up goes on and the scenario's
    task receives the cancellation at its next await."""

    def __init__(self, n: int, side: str) -> None:
        self.n = n
        self.side = side
        self.seen = 0
        self.fired = False
        self.target: asyncio.Task[Any] | None = None

    async def point(self, call: Callable[[], Awaitable[Any]]) -> Any:
        if self.target is not None and asyncio.current_task() is not self.target:
            # Another task's command (the dispatcher reading hand-offs for the waiters): not an
            # await of the scenario, and its timing varies from run to run.
            return await call()
        self.seen += 1
        hit = self.seen == self.n
        if hit and self.side == "before":
            await self._cancel_target()
        try:
            result = await call()
        except Exception:
            # Redis answered with an error (a server refusing FCALL: the store goes on with the
            # script): the cancellation arrives with that reply instead.
            if hit and self.side == "after":
                await self._cancel_target()
            raise
        if hit and self.side == "after":
            await self._cancel_target()
        return result

    async def _cancel_target(self) -> None:
        assert self.target is not None
        self.fired = True
        self.target.cancel()
        await asyncio.sleep(0)  # delivered here when this is the scenario's task


class CancellingRedis(aioredis.Redis):
    """The real client; every Redis command is an await point of ``CancelAt``."""

    at: CancelAt

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        call = super().execute_command
        return await self.at.point(lambda: call(*args, **options))  # type: ignore[no-untyped-call]


class CancellingCluster(RedisCluster):
    """The same for the cluster pass: a cluster client whose every command is an await point."""

    at: CancelAt

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        # Set up once before the first command (see _AsyncRedisCluster in _store/clients.py).
        await self.initialize()
        call = super().execute_command
        return await self.at.point(lambda: call(*args, **options))


def cancelling_client(url: str, at: CancelAt) -> aioredis.Redis:
    """A client of ``url`` whose commands are ``at``'s await points (a cluster one in the
    cluster pass, as the pool would open)."""
    if cluster_mode():
        cluster = cast(CancellingCluster, CancellingCluster.from_url(url, decode_responses=True))
        cluster.at = at
        return cast(aioredis.Redis, cluster)
    client = cast(CancellingRedis, CancellingRedis.from_url(url, decode_responses=True))
    client.at = at
    return client


class Factory(AsyncRecordingBackend):
    """Creates threads; its upstream request is an await point too."""

    def __init__(self, at: CancelAt) -> None:
        super().__init__(unique=True)  # a thread is in one pool: each pool grows its own
        self.at = at

    async def create_thread(self, key: str, messages: Sequence[Mapping[str, str]] = ()) -> str:
        async def create() -> str:
            await asyncio.sleep(0.001)
            return self._create(messages)

        return await self.at.point(create)  # type: ignore[no-any-return]


Scenario = Callable[[AsyncThreadPool, AsyncThreadPool, str], Awaitable[None]]


async def idle_grant(pool: AsyncThreadPool, helper: AsyncThreadPool, key: str) -> None:
    await helper.add_threads(key, [f"thread_{key}_a", f"thread_{key}_b"])  # a thread is in one pool
    async with pool.lease(key):
        pass


async def turn_grant(pool: AsyncThreadPool, helper: AsyncThreadPool, key: str) -> None:
    # A lease taken for a turn: its grant marks the turn's request in flight; the test
    # backend then refuses the turn before any request (cancelled after the grant, the mark
    # must go with the lease: nothing was sent).
    await helper.add_threads(key, [f"thread_{key}_a", f"thread_{key}_b"])
    with pytest.raises(InvalidArgument, match="runs no turns"):
        await pool.run(key, "refused by the backend")


async def growth(pool: AsyncThreadPool, helper: AsyncThreadPool, key: str) -> None:
    async with pool.lease(key):
        pass


async def hand_off(pool: AsyncThreadPool, helper: AsyncThreadPool, key: str) -> None:
    await helper.add_threads(key, [f"thread_{key}_a"])
    held = await helper.acquire(key)

    async def release_when_queued() -> None:
        while (await helper.stats(key)).waiting == 0:  # noqa: ASYNC110 (state lives in Redis)
            await asyncio.sleep(0.002)
        await helper.release(held)

    releaser = asyncio.create_task(release_when_queued())
    try:
        async with pool.lease(key, timeout=5):
            pass
    finally:
        if not releaser.done():
            releaser.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await releaser
        if not held.released:
            with contextlib.suppress(LeaseNotOwned):
                await helper.release(held)


async def reclaim(pool: AsyncThreadPool, helper: AsyncThreadPool, key: str) -> None:
    await helper.add_threads(key, [f"thread_{key}_a"])
    await helper.configure(key, ttl=0.2)
    await helper.acquire(key)  # abandoned by a "dead" holder
    await asyncio.sleep(0.25)
    async with pool.lease(key, timeout=5):
        pass


SCENARIOS: dict[str, tuple[Scenario, bool, int | None]] = {
    # name: (scenario, pool has a factory, threads at the end; None: 0 or 1, as far as it got)
    "idle_grant": (idle_grant, False, 2),
    "turn_grant": (turn_grant, True, 2),
    "growth": (growth, True, None),
    "hand_off": (hand_off, False, 1),
    "reclaim": (reclaim, False, 1),
}


async def _run(
    url: str, prefix: str, key: str, name: str, at: CancelAt
) -> tuple[bool, AsyncThreadPool]:
    scenario, with_factory, _ = SCENARIOS[name]
    settings: dict[str, Any] = {"redis_url": url, "key_prefix": prefix, "renew_margin": 0.1}
    client = cancelling_client(url, at)
    pool = AsyncThreadPool(client=client, backend=Factory(at) if with_factory else None, **settings)
    helper = AsyncThreadPool(**settings)
    at.target = asyncio.current_task()
    cancelled = False
    try:
        await scenario(pool, helper, key)
    except asyncio.CancelledError:
        cancelled = True
        task = asyncio.current_task()
        assert task is not None
        task.uncancel()  # the test goes on in this task
    finally:
        try:
            await pool.aclose()
        finally:
            await client.aclose()
    return cancelled, helper


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_cancel_at_every_await_point_leaks_nothing(
    name: str, thread_pool_redis_url: str, thread_pool_prefix: str, redis_client: redis.Redis
) -> None:
    # A first run loads the scripts into Redis, so that every run after it makes the same calls.
    _, warm = await _run(
        thread_pool_redis_url, thread_pool_prefix, f"{name}-warm", name, CancelAt(0, "never")
    )
    await warm.aclose()
    counter = CancelAt(0, "never")
    cancelled, helper = await _run(
        thread_pool_redis_url, thread_pool_prefix, f"{name}-count", name, counter
    )
    await helper.aclose()
    assert not cancelled
    points = counter.seen
    assert points >= 2
    runs = 0
    for n in range(1, points + 1):
        for side in ("before", "after"):
            key = f"{name}-{n}-{side}"
            at = CancelAt(n, side)
            cancelled, helper = await _run(thread_pool_redis_url, thread_pool_prefix, key, name, at)
            try:
                assert at.fired, (key, at.seen)
                assert cancelled, (key, at.seen)
                # An interrupted settle leaves its thread for any reaper to take at once.
                await helper.reap(key)
                assert_quiet(redis_client, thread_pool_prefix, key, threads=SCENARIOS[name][2])
                # And the pool still works.
                if redis_client.hlen(PoolKeys.of(thread_pool_prefix, key).threads):
                    async with helper.lease(key, timeout=0) as lease:
                        assert lease.thread_id.startswith("thread_")
            finally:
                await helper.aclose()
            runs += 1
    assert runs == 2 * points


async def test_cancelling_tasks_at_random_moments_leaks_nothing(
    thread_pool_redis_url: str, thread_pool_prefix: str, redis_client: redis.Redis
) -> None:
    async with AsyncThreadPool(
        redis_url=thread_pool_redis_url, key_prefix=thread_pool_prefix
    ) as pool:
        await pool.add_threads("doc", ["t1", "t2", "t3"])

        async def worker() -> None:
            while True:
                async with pool.lease("doc", timeout=10):
                    await asyncio.sleep(0.001)

        running = [asyncio.create_task(worker()) for _ in range(20)]
        every = list(running)
        for delay in (0.0, 0.0005, 0.001, 0.003, 0.01, 0.02, 0.05) * 3:
            await asyncio.sleep(delay)
            for task in running[:3]:
                task.cancel()
            fresh = [asyncio.create_task(worker()) for _ in range(3)]
            every += fresh
            running = running[3:] + fresh
        for task in running:
            task.cancel()
        outcomes = await asyncio.gather(*every, return_exceptions=True)
        # Each worker ends by its cancellation, none by an error or by carrying on regardless.
        assert all(isinstance(o, asyncio.CancelledError) for o in outcomes), outcomes
        stats = await pool.stats("doc")
        assert stats.granted > 20
    assert_quiet(redis_client, thread_pool_prefix, "doc", threads=3)


def test_keyboard_interrupt_while_waiting_leaks_nothing(
    thread_pool_redis_url: str, thread_pool_prefix: str, redis_client: redis.Redis
) -> None:
    assert threading.current_thread() is threading.main_thread()

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        with ThreadPool(redis_url=thread_pool_redis_url, key_prefix=thread_pool_prefix) as pool:
            pool.add_threads("doc", ["thread_a"])
            held = pool.acquire("doc")
            signal.setitimer(signal.ITIMER_REAL, 0.3)
            started = time.monotonic()
            with pytest.raises(KeyboardInterrupt):
                pool.acquire("doc", timeout=10)
            assert time.monotonic() - started < 5
            pool.release(held)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert_quiet(redis_client, thread_pool_prefix, "doc", threads=1)
