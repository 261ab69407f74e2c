"""The pool's behaviour against a real Redis; ``test_pool_sync.py`` is generated from this file."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis

from tests.support.aio_helpers import Spawned, eventually, pause
from tests.support.backends import AsyncGatedBackend, AsyncRecordingBackend, Gate
from tests.support.evidence import assert_quiet
from thread_pool import (
    AsyncLease,
    AsyncThreadPool,
    CorruptState,
    InvalidArgument,
    InvalidPoolKey,
    InvalidSettings,
    LeaseLost,
    LeaseNotOwned,
    PoolClosed,
    PoolDraining,
    PoolFull,
    PoolTimeout,
    StoreUnavailable,
    TooManyWaiters,
    UnknownPool,
)
from thread_pool._store.keys import PoolKeys
from thread_pool.admin import AsyncPoolAdmin
from thread_pool.testing.redis_server import free_port

MakePool = Callable[..., AsyncThreadPool]


@pytest.fixture
async def make_pool(thread_pool_redis_url: str, thread_pool_prefix: str) -> AsyncIterator[MakePool]:
    pools: list[AsyncThreadPool] = []

    def make(**kwargs: Any) -> AsyncThreadPool:
        kwargs.setdefault("redis_url", thread_pool_redis_url)
        kwargs.setdefault("key_prefix", thread_pool_prefix)
        pool = AsyncThreadPool(**kwargs)
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        await pool.aclose()


# -- leasing ---------------------------------------------------------------------------------


async def test_lease_hands_out_a_registered_thread_and_takes_it_back(
    make_pool: MakePool, redis_client: redis.Redis, thread_pool_prefix: str
) -> None:
    pool = make_pool()
    assert await pool.add_threads("doc-1", ["thread_a", "thread_b"]) == 2
    async with pool.lease("doc-1") as lease:
        assert lease.key == "doc-1"
        assert lease.thread_id in {"thread_a", "thread_b"}
        assert lease.fence == 1
        assert len(lease.token) == 32
        assert 59 < lease.remaining() <= 60
        stats = await pool.stats("doc-1")
        assert (stats.threads, stats.idle, stats.leased) == (2, 1, 1)
    stats = await pool.stats("doc-1")
    assert (stats.idle, stats.leased, stats.granted) == (2, 0, 1)
    assert_quiet(redis_client, thread_pool_prefix, "doc-1", threads=2)


async def test_every_grant_of_a_thread_raises_its_fence(make_pool: MakePool) -> None:
    pool = make_pool()
    await pool.add_threads("doc", ["thread_only"])
    fences = []
    for _ in range(3):
        async with pool.lease("doc") as lease:
            fences.append(lease.fence)
    assert fences == [1, 2, 3]


async def test_two_holders_never_get_the_same_thread(make_pool: MakePool) -> None:
    pool = make_pool()
    await pool.add_threads("doc", ["thread_a", "thread_b"])
    first = await pool.acquire("doc")
    second = await pool.acquire("doc")
    assert first.thread_id != second.thread_id
    with pytest.raises(PoolTimeout, match="'doc'"):
        await pool.acquire("doc", timeout=0)
    await pool.release(first)
    await pool.release(second)
    assert (await pool.stats("doc")).timeouts == 1


async def test_release_by_a_former_holder_changes_nothing(make_pool: MakePool) -> None:
    pool = make_pool()
    await pool.add_threads("doc", ["thread_a"])
    lease = await pool.acquire("doc")
    await pool.release(lease)
    current = await pool.acquire("doc")
    with pytest.raises(LeaseNotOwned, match="'doc'"):
        await pool.release(lease)
    stats = await pool.stats("doc")
    assert (stats.leased, stats.idle) == (1, 0)
    await pool.release(current)


async def test_lease_released_by_hand_inside_the_block_is_not_released_twice(
    make_pool: MakePool,
) -> None:
    pool = make_pool()
    await pool.add_threads("doc", ["thread_a"])
    async with pool.lease("doc") as lease:
        await lease.release()
        assert lease.released
    assert (await pool.stats("doc")).idle == 1


async def test_an_error_in_the_block_releases_the_lease(
    make_pool: MakePool, redis_client: redis.Redis, thread_pool_prefix: str
) -> None:
    pool = make_pool()
    await pool.add_threads("doc", ["thread_a"])
    with pytest.raises(ZeroDivisionError):
        async with pool.lease("doc"):
            _ = 1 / 0
    assert_quiet(redis_client, thread_pool_prefix, "doc", threads=1)


async def test_unknown_pool_without_factory(make_pool: MakePool) -> None:
    pool = make_pool()
    with pytest.raises(UnknownPool, match="'nowhere'"):
        await pool.acquire("nowhere")
    with pytest.raises(UnknownPool):
        await pool.stats("nowhere")


# -- growth ----------------------------------------------------------------------------------


async def test_pool_grows_through_its_factory_up_to_max_size(
    make_pool: MakePool, redis_client: redis.Redis, thread_pool_prefix: str
) -> None:
    factory = AsyncRecordingBackend()
    pool = make_pool(backend=factory, max_size=3)
    leases = [await pool.acquire("doc") for _ in range(3)]
    assert sorted(lease.thread_id for lease in leases) == sorted(factory.created)
    assert all(lease.fence == 1 for lease in leases)
    with pytest.raises(PoolTimeout):
        await pool.acquire("doc", timeout=0)
    assert len(factory.created) == 3
    for lease in leases:
        await pool.release(lease)
    assert "doc" in await pool.pools()
    assert_quiet(redis_client, thread_pool_prefix, "doc", threads=3)


async def test_a_failed_creation_frees_its_slot(
    make_pool: MakePool, redis_client: redis.Redis, thread_pool_prefix: str
) -> None:
    factory = AsyncRecordingBackend(fail_first=1)
    pool = make_pool(backend=factory, max_size=1)
    with pytest.raises(RuntimeError, match="upstream unavailable"):
        await pool.acquire("doc")
    assert (await pool.stats("doc")).reserved == 0
    async with pool.lease("doc") as lease:
        assert lease.thread_id == factory.created[0]
    assert_quiet(redis_client, thread_pool_prefix, "doc", threads=1)


async def test_a_waiter_is_woken_when_a_growth_slot_comes_free(make_pool: MakePool) -> None:
    pool = make_pool(backend=AsyncRecordingBackend(), max_size=1)
    await pool.configure("doc", max_size=1)
    # Another process takes the only slot and is still creating its thread upstream.
    creating = Gate()
    grower = make_pool(backend=AsyncGatedBackend(creating), max_size=1)
    growing = Spawned(grower.acquire, "doc")
    await eventually(lambda: _reserved(pool, "doc", 1))

    async def waiter() -> int:
        async with pool.lease("doc", timeout=5) as lease:
            return lease.fence

    woken = Spawned(waiter)
    await eventually(lambda: _waiting(pool, "doc", 1))
    creating.open()  # its creation fails: the grower gives up the slot
    with pytest.raises(RuntimeError, match="upstream unavailable"):
        await growing.join()
    assert await woken.join() == 1


async def _reserved(pool: AsyncThreadPool, key: str, n: int) -> bool:
    return (await pool.stats(key)).reserved == n


async def _waiting(pool: AsyncThreadPool, key: str, n: int) -> bool:
    return (await pool.stats(key)).waiting == n


# -- waiting ---------------------------------------------------------------------------------


async def test_a_release_hands_the_thread_to_a_waiter(make_pool: MakePool) -> None:
    pool = make_pool()
    await pool.add_threads("doc", ["thread_a"])
    held = await pool.acquire("doc")

    async def wait_for_it() -> tuple[str, int]:
        async with pool.lease("doc", timeout=5) as lease:
            return lease.thread_id, lease.fence

    waiter = Spawned(wait_for_it)
    await eventually(lambda: _waiting(pool, "doc", 1))
    await pool.release(held)
    assert await waiter.join() == ("thread_a", 2)


async def test_waiters_are_served_in_arrival_order(make_pool: MakePool) -> None:
    pool = make_pool()
    await pool.add_threads("doc", ["thread_a"])
    held = await pool.acquire("doc")
    served: list[int] = []

    async def waiter(i: int) -> None:
        async with pool.lease("doc", timeout=10):
            served.append(i)

    waiters = []
    for i in range(6):
        waiters.append(Spawned(waiter, i))
        await eventually(lambda n=i + 1: _waiting(pool, "doc", n))  # type: ignore[misc]
    await pool.release(held)
    for w in waiters:
        await w.join()
    assert served == list(range(6))


async def test_a_waiter_that_times_out_leaves_nothing(
    make_pool: MakePool, redis_client: redis.Redis, thread_pool_prefix: str
) -> None:
    pool = make_pool()
    await pool.add_threads("doc", ["thread_a"])
    held = await pool.acquire("doc")
    with pytest.raises(PoolTimeout):
        await pool.acquire("doc", timeout=0.2)
    stats = await pool.stats("doc")
    assert (stats.waiting, stats.timeouts) == (0, 1)
    await pool.release(held)
    assert_quiet(redis_client, thread_pool_prefix, "doc", threads=1)


async def test_too_many_waiters(make_pool: MakePool) -> None:
    pool = make_pool(max_waiters=1)
    await pool.add_threads("doc", ["thread_a"])
    held = await pool.acquire("doc")
    first = Spawned(pool.acquire, "doc", 5.0)
    await eventually(lambda: _waiting(pool, "doc", 1))
    with pytest.raises(TooManyWaiters, match="'doc'"):
        await pool.acquire("doc", timeout=5)
    await pool.release(held)
    await pool.release(await first.join())


async def test_threads_added_while_callers_wait_go_to_them(make_pool: MakePool) -> None:
    pool = make_pool()
    await pool.add_threads("doc", ["thread_a"])
    held = await pool.acquire("doc")
    waiter = Spawned(pool.acquire, "doc", 5.0)
    await eventually(lambda: _waiting(pool, "doc", 1))
    await pool.add_threads("doc", ["thread_b"])
    got: AsyncLease = await waiter.join()
    assert got.thread_id == "thread_b"
    await pool.release(got)
    await pool.release(held)


async def test_a_draining_pool_grants_nothing_new(
    make_pool: MakePool, thread_pool_redis_url: str, thread_pool_prefix: str
) -> None:
    pool = make_pool()
    await pool.add_threads("doc", ["thread_a", "thread_b"])
    held = await pool.acquire("doc")
    other = await pool.acquire("doc")
    waiter = Spawned(pool.acquire, "doc", 5.0)
    await eventually(lambda: _waiting(pool, "doc", 1))
    async with AsyncPoolAdmin(
        redis_url=thread_pool_redis_url, key_prefix=thread_pool_prefix
    ) as admin:
        await admin.set_draining("doc")
        # The queued caller is sent away at once, and nobody new gets a thread...
        with pytest.raises(PoolDraining, match="'doc'"):
            await waiter.join()
        with pytest.raises(PoolDraining):
            await pool.acquire("doc", timeout=0)
        # ...while holders finish: their threads go idle, to nobody.
        await pool.release(held)
        await pool.release(other)
        stats = await pool.stats("doc")
        assert (stats.idle, stats.leased, stats.waiting) == (2, 0, 0)
        await admin.set_draining("doc", False)
    async with pool.lease("doc", timeout=0) as lease:
        assert lease.thread_id in {"thread_a", "thread_b"}


# -- expiry, renewal, fencing ----------------------------------------------------------------


async def test_expired_lease_is_reaped_settled_and_reused(
    make_pool: MakePool, redis_client: redis.Redis, thread_pool_prefix: str
) -> None:
    settler = AsyncRecordingBackend()
    pool = make_pool(backend=settler, lease_ttl=0.3, renew_margin=0.1, max_size=1)
    await pool.add_threads("doc", ["thread_a"])
    stale = await pool.acquire("doc")
    await pause(0.4)
    assert await pool.reap("doc") == 1
    assert settler.settled == ["thread_a"]
    stats = await pool.stats("doc")
    assert (stats.reaped, stats.idle, stats.settling) == (1, 1, 0)
    with pytest.raises(LeaseLost):
        await stale.renew()
    with pytest.raises(LeaseNotOwned):
        await stale.release()
    async with pool.lease("doc") as fresh:
        assert fresh.fence == stale.fence + 1
    assert_quiet(redis_client, thread_pool_prefix, "doc", threads=1)


async def test_an_expired_lease_is_reclaimed_only_after_the_reclaim_delay(
    make_pool: MakePool, redis_client: redis.Redis, thread_pool_prefix: str
) -> None:
    settler = AsyncRecordingBackend()
    pool = make_pool(
        backend=settler, lease_ttl=0.3, renew_margin=0.1, reclaim_delay=1.0, max_size=1
    )
    await pool.add_threads("doc", ["thread_a"])
    stale = await pool.acquire("doc")
    await pause(0.5)
    # Expired, but within the delay: its holder may be paused with a write on its way.
    with pytest.raises(LeaseLost):
        await stale.renew()
    assert await pool.reap("doc") == 0
    assert settler.settled == []
    # A waiter wakes when the delay is over, reclaims the thread and gets it, settled.
    asked = time.monotonic()
    async with pool.lease("doc", timeout=5) as fresh:
        waited = time.monotonic() - asked
        assert fresh.fence == stale.fence + 1
    assert 0.5 <= waited < 3, waited
    assert settler.settled == ["thread_a"]
    assert_quiet(redis_client, thread_pool_prefix, "doc", threads=1)


async def test_acquire_reclaims_expired_leases_when_nothing_is_idle(make_pool: MakePool) -> None:
    settler = AsyncRecordingBackend()
    pool = make_pool(backend=settler, lease_ttl=0.3, renew_margin=0.1, max_size=1)
    await pool.add_threads("doc", ["thread_a"])
    await pool.acquire("doc")  # never released: its holder "died"
    await pause(0.4)
    async with pool.lease("doc", timeout=2) as lease:
        assert (lease.thread_id, lease.fence) == ("thread_a", 2)
    assert settler.settled == ["thread_a"]


async def test_a_thread_gone_upstream_is_dropped_and_replaced(make_pool: MakePool) -> None:
    factory = AsyncRecordingBackend(ready=False)
    pool = make_pool(
        backend=factory,
        lease_ttl=0.3,
        renew_margin=0.1,
        max_size=1,
    )
    gone = await pool.acquire("doc")
    await pause(0.4)
    async with pool.lease("doc", timeout=2) as lease:
        assert lease.thread_id != gone.thread_id
    assert (await pool.stats("doc")).threads == 1
    assert len(factory.created) == 2


async def test_release_after_expiry_is_lost_and_changes_nothing(make_pool: MakePool) -> None:
    pool = make_pool(lease_ttl=0.3, renew_margin=0.1)
    await pool.add_threads("doc", ["thread_a"])
    lease = await pool.acquire("doc")
    await pause(0.4)
    with pytest.raises(LeaseLost):
        await pool.release(lease)
    stats = await pool.stats("doc")
    # Not idle: the thread must be settled (reaped) before anyone gets it again.
    assert (stats.idle, stats.leased, stats.lost) == (0, 1, 1)


async def test_renew_and_check_keep_a_lease_alive(make_pool: MakePool) -> None:
    pool = make_pool(lease_ttl=0.5, renew_margin=0.1)
    await pool.add_threads("doc", ["thread_a"])
    async with pool.lease("doc") as lease:
        first = lease.deadline
        for _ in range(4):
            await pause(0.2)
            await lease.renew()
        assert lease.deadline > first + 0.7
        await lease.renew(ttl=2)
        assert 1.5 < await lease.check() <= 2
        # Asking for more time than is left renews the lease to the pool's TTL.
        assert await lease.check(min_remaining=3) <= 0.5
    assert (await pool.stats("doc")).lost == 0


async def test_check_fails_once_the_lease_is_gone(make_pool: MakePool) -> None:
    pool = make_pool(lease_ttl=0.3, renew_margin=0.1)
    await pool.add_threads("doc", ["thread_a"])
    lease = await pool.acquire("doc")
    await pause(0.4)
    with pytest.raises(LeaseLost, match="thread_a"):
        await lease.check()
    await pool.reap("doc")
    with pytest.raises(LeaseLost):
        await lease.check()


# -- configuration and validation ------------------------------------------------------------


async def test_configure_sets_sizes_and_shrinking_retires_idle_threads(
    make_pool: MakePool,
) -> None:
    pool = make_pool()
    stats = await pool.configure("doc", min_size=1, max_size=4, ttl=30)
    assert (stats.min_size, stats.max_size, stats.lease_ttl) == (1, 4, 30.0)
    await pool.add_threads("doc", ["t1", "t2", "t3", "t4"])
    held = await pool.acquire("doc")
    stats = await pool.configure("doc", min_size=0, max_size=2)
    assert (stats.threads, stats.retired, stats.max_size) == (2, 2, 2)
    await pool.release(held)  # the pool is at max: the thread comes back
    stats = await pool.configure("doc", max_size=1)
    assert (stats.threads, stats.retired) == (1, 3)


async def test_configure_rejects_bad_values_before_writing(
    make_pool: MakePool, redis_client: redis.Redis, thread_pool_prefix: str
) -> None:
    pool = make_pool()
    bad: list[dict[str, Any]] = [
        {"min_size": 3, "max_size": 2},
        {"max_size": 0},
        {"min_size": -1},
        {"max_size": 2.5},
        {"max_size": True},
        {"ttl": 0},
        {"ttl": float("nan")},
        {"ttl": 5.0},  # not above the default renew margin of 15 s
    ]
    for kwargs in bad:
        with pytest.raises(InvalidArgument):
            await pool.configure("doc", **kwargs)
    await pool.configure("doc", max_size=2)
    with pytest.raises(InvalidArgument, match="min_size 5 above max_size 2"):
        await pool.configure("doc", min_size=5)
    assert (await pool.stats("doc")).min_size == 0
    assert redis_client.hget(PoolKeys.of(thread_pool_prefix, "doc").meta, "max_size") == "2"


@pytest.mark.parametrize(
    "key", ["", "x" * 201, "a b", "doc{1}", "-lead", "tab\t", "ünï", "new\nline"]
)
async def test_bad_pool_keys_are_refused_before_anything_is_written(
    make_pool: MakePool, redis_client: redis.Redis, thread_pool_prefix: str, key: str
) -> None:
    pool = make_pool(backend=AsyncRecordingBackend())
    with pytest.raises(InvalidPoolKey):
        await pool.acquire(key)
    with pytest.raises(InvalidPoolKey):
        await pool.add_threads(key, ["thread_a"])
    with pytest.raises(InvalidPoolKey):
        await pool.configure(key, max_size=2)
    assert list(redis_client.scan_iter(match=f"{thread_pool_prefix}:*")) == []


async def test_bad_arguments_are_refused(make_pool: MakePool) -> None:
    pool = make_pool()
    with pytest.raises(InvalidPoolKey):
        await pool.acquire(42)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument):
        await pool.add_threads("doc", ["bad|id"])
    with pytest.raises(InvalidArgument):
        await pool.add_threads("doc", [""])
    with pytest.raises(InvalidArgument):
        await pool.acquire("doc", timeout=-1)
    await pool.add_threads("doc", ["thread_a"])
    async with pool.lease("doc") as lease:
        with pytest.raises(InvalidArgument):
            await lease.renew(ttl=0)


async def test_adding_beyond_max_size_adds_nothing(make_pool: MakePool) -> None:
    pool = make_pool(max_size=2)
    assert await pool.add_threads("doc", ["t1", "t1"]) == 1
    with pytest.raises(PoolFull, match="'doc'"):
        await pool.add_threads("doc", ["t2", "t3"])
    assert await pool.add_threads("doc", ["t1", "t2"]) == 1
    assert (await pool.stats("doc")).threads == 2


def test_invalid_settings_name_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THREAD_POOL_LEASE_TTL", "-1")
    with pytest.raises(InvalidSettings, match="THREAD_POOL_LEASE_TTL"):
        AsyncThreadPool()
    monkeypatch.setenv("THREAD_POOL_LEASE_TTL", "10")
    with pytest.raises(InvalidSettings, match="renew_margin"):
        AsyncThreadPool(renew_margin=20)
    with pytest.raises(InvalidSettings, match="THREAD_POOL_MAX_SIZE"):
        AsyncThreadPool(max_size=0)
    with pytest.raises(InvalidSettings, match="THREAD_POOL_KEY_PREFIX"):
        AsyncThreadPool(key_prefix="bad{prefix}")


# -- failures of the store -------------------------------------------------------------------


async def test_unreachable_redis_is_a_clear_error(make_pool: MakePool) -> None:
    async def build_and_use() -> None:
        # On a cluster the blocking pool reads the slot map, and so fails, as it is built.
        pool = make_pool(redis_url=f"redis://127.0.0.1:{free_port()}/0")
        await pool.add_threads("doc", ["thread_a"])

    with pytest.raises(StoreUnavailable, match="redis unavailable"):
        await build_and_use()


async def test_corrupt_state_is_a_clear_error(
    make_pool: MakePool, redis_client: redis.Redis, thread_pool_prefix: str
) -> None:
    pool = make_pool()
    redis_client.set(PoolKeys.of(thread_pool_prefix, "doc").meta, "not a hash")
    with pytest.raises(CorruptState, match="'doc'"):
        await pool.acquire("doc", timeout=0)


async def test_a_closed_pool_grants_nothing(make_pool: MakePool) -> None:
    pool = make_pool()
    await pool.aclose()
    with pytest.raises(PoolClosed):
        await pool.acquire("doc")


async def test_reap_without_key_covers_every_pool(make_pool: MakePool) -> None:
    pool = make_pool(lease_ttl=0.3, renew_margin=0.1)
    for key in ("doc-1", "doc-2"):
        await pool.add_threads(key, [f"thread_{key}"])
        await pool.acquire(key)
    await pause(0.4)
    assert await pool.reap() == 2
    assert sorted(await pool.pools()) == ["doc-1", "doc-2"]
