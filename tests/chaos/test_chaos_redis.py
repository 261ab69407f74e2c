"""Redis restarts under load (tracker issue 8): a private Redis is killed in the middle of a run
of turns against the emulator, and restarted without persistence (all pool state gone) or on its
append-only file (nothing lost). What the library did is read back afterwards from the emulator
(every write with its ``tp_fence``, lock errors, peak active runs per thread) and from Redis.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import openai
import pytest

from tests.support.evidence import assert_one_run_at_a_time
from tests.support.upstream import FAST_RETRY, make_assistant
from thread_pool import (
    AsyncAssistantsBackend,
    AsyncThreadPool,
    LeaseLost,
    PoolStateLost,
    StoreUnavailable,
    ThreadPoolError,
    Turn,
)
from thread_pool._async.admin import AsyncPoolAdmin
from thread_pool.admin import prewarm, targets
from thread_pool.emulator import EmulatorServer
from thread_pool.testing.redis_server import RedisServer

pytestmark = [
    pytest.mark.chaos,
    pytest.mark.slow,
    pytest.mark.filterwarnings(
        r"ignore:(The Assistants API is deprecated|deprecated$):DeprecationWarning"
    ),
    pytest.mark.thread_pool_emulator(latency="0.05-0.15"),
]

T = TypeVar("T")
KEY = "doc-chaos"
PREFIX = "chaos"
# Every test runs on a private single Redis of its own (also when the session runs on a cluster).
WORKERS = 6
SIZE = 3
# What a call may fail with while Redis is away or after it lost the pool's state.
EXPECTED = {"StoreUnavailable", "PoolStateLost", "LeaseLost"}


@dataclass
class Load:
    """What the workers saw: the turns that completed, and the errors by type."""

    done: list[tuple[str, str, int, float]] = field(default_factory=list)
    """(message, thread, fence, wall time it ended) of every completed turn."""
    errors: Counter[str] = field(default_factory=Counter)
    slowest_failure: float = 0.0
    lost: asyncio.Event = field(default_factory=asyncio.Event)
    lost_at: float = 0.0
    """Wall time a worker first got ``PoolStateLost``."""

    def completed_after(self, wall: float) -> int:
        return sum(1 for d in self.done if d[3] > wall)


async def _worker(pool: AsyncThreadPool, name: str, stop: asyncio.Event, load: Load) -> None:
    n = 0
    while not stop.is_set():
        n += 1
        message = f"{name} turn {n}"
        started = time.monotonic()
        try:
            turn = await pool.run(KEY, message, timeout=10)
        except ThreadPoolError as exc:
            load.errors[type(exc).__name__] += 1
            load.slowest_failure = max(load.slowest_failure, time.monotonic() - started)
            if isinstance(exc, PoolStateLost) and not load.lost.is_set():
                load.lost_at = time.time()
                load.lost.set()
            await asyncio.sleep(0.05)
            continue
        load.done.append((message, turn.thread_id, turn.fence, time.time()))


@dataclass
class Rig:
    server: RedisServer
    emulator: EmulatorServer
    backend: AsyncAssistantsBackend
    pool: AsyncThreadPool
    admin: AsyncPoolAdmin

    def new_pool(self) -> AsyncThreadPool:
        """A pool object as a process arriving later would have (it knows no epoch)."""
        return AsyncThreadPool(
            backend=self.backend,
            redis_url=self.server.url,
            key_prefix=PREFIX,
            redis_cluster=False,
            max_size=SIZE,
        )


@pytest.fixture
async def rig(
    request: pytest.FixtureRequest,
    thread_pool_emulator: EmulatorServer,
    thread_pool_async_openai_client: openai.AsyncOpenAI,
) -> AsyncIterator[Rig]:
    args: Sequence[str] = getattr(request, "param", ())
    server = RedisServer(extra_args=args).start()
    backend = AsyncAssistantsBackend(
        thread_pool_async_openai_client,
        assistant_id=make_assistant(thread_pool_emulator),
        retry=FAST_RETRY,
        poll_interval=0.02,
        settle_wait=0.2,
    )
    pool = AsyncThreadPool(
        backend=backend, redis_url=server.url, key_prefix=PREFIX, redis_cluster=False, max_size=SIZE
    )
    admin = AsyncPoolAdmin(
        redis_url=server.url, key_prefix=PREFIX, redis_cluster=False, max_size=SIZE
    )
    try:
        yield Rig(server, thread_pool_emulator, backend, pool, admin)
    finally:
        await pool.aclose()
        await admin.aclose()
        server.stop()


async def _prewarmed(rig: Rig) -> set[str]:
    """Grow the pool to its full size first, so no thread is created after the backup."""
    await prewarm(rig.admin, rig.backend, await targets(rig.admin, [KEY], SIZE))
    threads = {t.thread_id for t in (await rig.admin.status(KEY)).threads}
    assert len(threads) == SIZE
    return threads


async def _restart(server: RedisServer, down: float) -> tuple[float, float]:
    """SIGKILL Redis (a crash), keep it down ``down`` seconds, start it again on its data dir.
    Returns the wall times it went down and answered again."""
    server.kill()
    killed = time.time()
    await asyncio.sleep(down)
    await asyncio.to_thread(server.start)
    return killed, time.time()


async def _after_restart(call: Callable[[], Awaitable[T]]) -> T:
    """An admin call right after a restart: each connection the client pooled before the crash
    fails once ("Connection closed by server"; nothing retries a script that may have run), so
    the operator's first commands may need a second try."""
    for _ in range(10):
        try:
            return await call()
        except StoreUnavailable as exc:
            if isinstance(exc, PoolStateLost):
                raise
            await asyncio.sleep(0.05)
    return await call()


def _fences(emulator: EmulatorServer) -> dict[str, list[tuple[float, int]]]:
    """(wall time, tp_fence) of every fenced write, per thread, in arrival order."""
    return {
        owner: [
            (float(w["at"]), int(w["metadata"]["tp_fence"]))
            for w in writes
            if "tp_fence" in (w.get("metadata") or {})
        ]
        for owner, writes in emulator.admin.all_writes().items()
    }


def _assert_upstream_clean(emulator: EmulatorServer) -> dict[str, list[tuple[float, int]]]:
    """The invariants read from the emulator: fences never go back on a thread, no lock error,
    never two active runs on one thread."""
    fences = _fences(emulator)
    for owner, stamped in fences.items():
        seq = [f for _, f in stamped]
        assert seq == sorted(seq), f"fences went backwards on {owner}: {seq}"
    assert_one_run_at_a_time(emulator)
    return fences


async def _run_load(rig: Rig, load: Load) -> tuple[asyncio.Event, list[asyncio.Task[None]]]:
    stop = asyncio.Event()
    tasks = [asyncio.create_task(_worker(rig.pool, f"w{i}", stop, load)) for i in range(WORKERS)]
    return stop, tasks


async def _assert_idle(rig: Rig) -> None:
    """After a reap, the pool holds nothing: no lease, claim, reservation or waiter."""
    await rig.pool.reap(KEY)
    s = await rig.pool.stats(KEY)
    assert (s.leased, s.settling, s.reserved, s.waiting) == (0, 0, 0, 0), s
    assert s.idle == s.threads == SIZE, s


# -- while Redis is down ---------------------------------------------------------------------


async def test_every_call_fails_typed_and_fast_while_redis_is_down(rig: Rig) -> None:
    await _prewarmed(rig)
    held = await rig.pool.acquire(KEY)
    rig.server.kill()
    writes_before = sum(len(w) for w in rig.emulator.admin.all_writes().values())
    calls: dict[str, Any] = {
        "acquire": lambda: rig.pool.acquire(KEY, timeout=1),
        "run": lambda: rig.pool.run(KEY, "hello", timeout=1),
        "lease.run": lambda: held.run("hello"),
        "check": lambda: held.check(),
        "renew": lambda: held.renew(),
        "release": lambda: rig.pool.release(held),
        "stats": lambda: rig.pool.stats(KEY),
        "add_threads": lambda: rig.pool.add_threads(KEY, ["thread_x"]),
        "configure": lambda: rig.pool.configure(KEY, max_size=4),
        "append": lambda: rig.pool.append(KEY, "user", "context"),
        "history": lambda: rig.pool.history(KEY),
        "reap": lambda: rig.pool.reap(KEY),
        "pools": lambda: rig.pool.pools(),
        "status": lambda: rig.admin.status(KEY),
        "export": lambda: rig.admin.export([KEY]),
    }
    for name, call in calls.items():
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="redis unavailable during") as raised:
            await call()
        took = time.monotonic() - started
        # The message names what failed, and the pool (where there is one).
        assert name == "pools" or f"pool {KEY!r}" in str(raised.value), name
        # append retries 5 times over 0.75 s (a turn's log entry is worth a short wait).
        assert took < 1.5, f"{name} took {took:.2f}s"
    # No fence check succeeded, so nothing was written upstream.
    assert sum(len(w) for w in rig.emulator.admin.all_writes().values()) == writes_before
    # Back up (with no persistence): the lease is gone, and its holder is told so.
    await asyncio.to_thread(rig.server.start)
    with pytest.raises(LeaseLost):
        await held.check()


# -- growth in flight ------------------------------------------------------------------------


class _KillAfterCreate:
    """A backend that creates the thread upstream, then Redis dies before it is
    registered (as if it crashed during the creation request)."""

    def __init__(self, backend: AsyncAssistantsBackend, server: RedisServer) -> None:
        self.backend = backend
        self.server = server
        self.created: list[str] = []

    async def create_thread(self, key: str, messages: Sequence[Mapping[str, str]] = ()) -> str:
        thread_id = await self.backend.create_thread(key, messages)
        self.created.append(thread_id)
        self.server.kill()
        return thread_id

    async def delete_thread(self, thread_id: str) -> bool:
        return await self.backend.delete_thread(thread_id)

    async def settle_thread(self, key: str, thread_id: str, in_flight: str | None = None) -> bool:
        return await self.backend.settle_thread(key, thread_id, in_flight)

    def context_items(self, messages: Sequence[Mapping[str, str]]) -> list[dict[str, Any]]:
        return self.backend.context_items(messages)

    async def run_turn(self, *args: Any, **kwargs: Any) -> Turn:
        return await self.backend.run_turn(*args, **kwargs)


async def test_a_thread_grown_while_redis_dies_is_deleted_upstream(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    factory = _KillAfterCreate(rig.backend, rig.server)
    pool = AsyncThreadPool(
        backend=factory,
        redis_url=rig.server.url,
        key_prefix=PREFIX,
        redis_cluster=False,
    )
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="thread_pool"):
        with pytest.raises(StoreUnavailable, match=r"register on pool|claim threads for pool"):
            await pool.acquire(KEY)
    took = time.monotonic() - started
    await pool.aclose()
    assert len(factory.created) == 1
    # Nobody could register it, and nobody else knows its id: it is gone upstream.
    assert rig.emulator.admin.objects()["threads"] == {}
    assert "could not be registered; deleted it upstream" in caplog.text
    # It asked Redis for up to 3 s whether the registration had gone through after all.
    assert 3.0 <= took < 6.0, took


# -- restart without persistence -------------------------------------------------------------


async def test_restart_without_persistence_marks_the_pool_lost_and_import_recovers(
    rig: Rig,
) -> None:
    began = time.monotonic()
    first_threads = await _prewarmed(rig)
    load = Load()
    stop, tasks = await _run_load(rig, load)
    await asyncio.sleep(1.0)
    backup = await rig.admin.export([KEY])  # the operator's regular backup
    await asyncio.sleep(1.0)
    before_kill = len(load.done)
    killed, back = await _restart(rig.server, down=0.5)
    # The first caller who knew the pool marks it lost; everyone is refused from then on.
    await asyncio.wait_for(load.lost.wait(), timeout=10)
    newcomer = rig.new_pool()
    with pytest.raises(PoolStateLost, match="thread-pool import"):
        await newcomer.run(KEY, "a process that starts now")
    with pytest.raises(PoolStateLost):
        await newcomer.stats(KEY)
    await newcomer.aclose()
    await asyncio.sleep(0.5)  # the load keeps knocking: nothing grows meanwhile
    assert set(rig.emulator.admin.objects()["threads"]) == first_threads
    # Back in the registry, so status names it.
    assert await _after_restart(rig.admin.pools) == [KEY]
    # Recovery: import the backup.
    assert await _after_restart(lambda: rig.admin.restore(backup)) == [KEY]
    recovered = time.time()
    await asyncio.sleep(2.0)
    stop.set()
    await asyncio.gather(*tasks)
    after_recovery = load.completed_after(recovered)

    fences = _assert_upstream_clean(rig.emulator)
    # No upstream write from shortly after the crash until the recovery: no fence check passed.
    quiet = [
        f for stamped in fences.values() for at, f in stamped if killed + 0.25 < at < recovered
    ]
    assert quiet == [], quiet
    # Fences after the recovery are above every fence used before it, on every thread.
    jumps = []
    for owner, stamped in fences.items():
        old = [f for at, f in stamped if at < recovered]
        new = [f for at, f in stamped if at >= recovered]
        if old and new:
            assert min(new) > max(old), owner
            jumps.append(f"{max(old)}->{min(new)}")
    assert after_recovery >= WORKERS, after_recovery
    assert set(load.errors) <= EXPECTED, load.errors
    assert load.errors["PoolStateLost"] > 0
    assert load.slowest_failure < 5.0
    # No thread orphaned upstream: every one the emulator holds is a thread of the pool.
    status = await rig.admin.status(KEY)
    pool_threads = {t.thread_id for t in status.threads} | set(status.retired)
    assert set(rig.emulator.admin.objects()["threads"]) <= pool_threads
    await _assert_idle(rig)
    took = time.monotonic() - began
    print(
        f"\nno persistence: {before_kill} turns before the crash, down {back - killed:.2f}s, "
        f"first PoolStateLost {load.lost_at - back:.2f}s after the restart, "
        f"{after_recovery} turns in 2 s after the import (fences {', '.join(jumps)}); "
        f"errors {dict(load.errors)}; "
        f"slowest failed call {load.slowest_failure:.2f}s; test {took:.1f}s"
    )


async def test_restart_without_persistence_then_prewarm_starts_over(rig: Rig) -> None:
    old = await _prewarmed(rig)
    assert (await rig.pool.run(KEY, "before")).reply
    await _restart(rig.server, down=0.2)
    with pytest.raises(PoolStateLost):
        await _after_restart(lambda: rig.pool.run(KEY, "after", timeout=1))
    # No backup: the operator re-creates the pool's threads.
    pools = await _after_restart(lambda: targets(rig.admin, [KEY], SIZE))
    grown = await prewarm(rig.admin, rig.backend, pools)
    assert grown[0].grown == SIZE
    turn = await rig.pool.run(KEY, "after the prewarm", timeout=5)
    status = await rig.admin.status(KEY)
    new = {t.thread_id for t in status.threads}
    assert turn.thread_id in new
    assert not new & old
    # The old threads are unknown to Redis now: they stay upstream (the upstream API cannot list
    # threads; only a backup names them). This is what an import avoids.
    assert set(rig.emulator.admin.objects()["threads"]) == old | new
    # The pool is a fresh one: a new object uses it as usual.
    newcomer = rig.new_pool()
    assert (await newcomer.run(KEY, "newcomer", timeout=5)).reply
    await newcomer.aclose()
    _assert_upstream_clean(rig.emulator)


# -- restart on the append-only file ---------------------------------------------------------


@pytest.mark.parametrize("rig", [("--appendonly", "yes", "--appendfsync", "always")], indirect=True)
async def test_restart_with_aof_loses_nothing(rig: Rig) -> None:
    began = time.monotonic()
    await _prewarmed(rig)
    load = Load()
    stop, tasks = await _run_load(rig, load)
    await asyncio.sleep(1.5)
    before_kill = len(load.done)
    killed, back = await _restart(rig.server, down=0.5)
    await asyncio.sleep(2.0)
    stop.set()
    await asyncio.gather(*tasks)

    fences = _assert_upstream_clean(rig.emulator)
    for owner, stamped in fences.items():
        old = [f for at, f in stamped if at < killed]
        new = [f for at, f in stamped if at > back]
        if old and new:
            assert min(new) > max(old), owner
    assert set(load.errors) <= {"StoreUnavailable", "LeaseLost"}, load.errors
    assert load.completed_after(back) >= WORKERS
    # Every completed turn is in the log exactly once (user message and reply), and the log
    # has no entry twice and no hole.
    history = await rig.pool.history(KEY)
    users = Counter(e.content for e in history if e.role == "user")
    for message, *_ in load.done:
        assert users[message] == 1, message
    assert max(users.values()) == 1
    assert [e.seq for e in history] == list(range(1, len(history) + 1))
    await _assert_idle(rig)
    took = time.monotonic() - began
    print(
        f"\nAOF: {before_kill} turns before the crash, down {back - killed:.2f}s, "
        f"{load.completed_after(back)} turns in 2 s after it, {len(load.done)} in all, "
        f"{len(history)} log entries; errors {dict(load.errors)}; "
        f"slowest failed call {load.slowest_failure:.2f}s; test {took:.1f}s"
    )
