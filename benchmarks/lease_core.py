"""Lease core benchmarks: everything measured side by side on the same Redis in one run.

    python benchmarks/lease_core.py [--quick]

(a) lease+release cycle latency vs a redis-py ``Lock`` acquire+release vs two calls of a trivial
    Lua script (the two-round-trip floor);
(b) hand-off latency: from a release to a blocked waiter holding the thread, vs redis-py ``Lock``
    with its default blocking;
(c) lease/release cycles per second with 1, 16 and 256 asyncio tasks in one process, vs the
    trivial script's throughput / 2 with as many tasks;
(d) Redis memory per idle thread and per empty pool (``MEMORY USAGE``).

Medians throughout; the variants of (a) are interleaved round by round so that the machine's
noise falls on all of them alike.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import secrets
import statistics
import time
from collections.abc import Callable
from multiprocessing.connection import Connection

import redis
import redis.asyncio as aredis

from thread_pool import AsyncThreadPool, ThreadPool
from thread_pool._store.keys import PoolKeys
from thread_pool.testing.redis_server import local_redis, scratch_prefix

TRIVIAL = "return 1"


def upstream_like_id() -> str:
    """A thread id as long as OpenAI's (``thread_`` + 24 characters)."""
    return "thread_" + secrets.token_urlsafe(18)[:24].replace("-", "a").replace("_", "b")


def median_us(samples: list[float]) -> float:
    """Median of seconds, in microseconds."""
    return statistics.median(samples) * 1e6


def verdict(ok: bool) -> str:
    """How a figure compares with its target."""
    return "meets target" if ok else "MISSES target"


# -- (a) cycle latency -------------------------------------------------------------------------


def bench_cycle(url: str, prefix: str, rounds: int, per_round: int) -> dict[str, float]:
    """Median seconds of one cycle for the pool, redis-py Lock and two trivial scripts."""
    client = redis.Redis.from_url(url)
    trivial = client.register_script(TRIVIAL)
    lock = client.lock(f"{prefix}:bench-lock", timeout=60)
    pool = ThreadPool(redis_url=url, key_prefix=prefix)
    pool.add_threads("cycle", [upstream_like_id()])

    def pool_cycle() -> None:
        pool.release(pool.acquire("cycle"))

    def lock_cycle() -> None:
        lock.acquire()
        lock.release()

    def floor_cycle() -> None:
        trivial()
        trivial()

    variants: dict[str, Callable[[], None]] = {
        "pool": pool_cycle,
        "lock": lock_cycle,
        "floor": floor_cycle,
    }
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for fn in variants.values():  # warm up: connections, script cache
        for _ in range(50):
            fn()
    for r in range(rounds):
        order = list(variants.items())
        if r % 2:
            order.reverse()
        for name, fn in order:
            for _ in range(per_round):
                t0 = time.perf_counter()
                fn()
                samples[name].append(time.perf_counter() - t0)
    pool.close()
    client.close()
    return {name: statistics.median(s) for name, s in samples.items()}


# -- (b) hand-off latency ----------------------------------------------------------------------
# The waiter runs in a process of its own, as it would in production: a waiter thread in the
# releaser's process would also measure the GIL's switching interval. time.perf_counter() is
# CLOCK_MONOTONIC on Linux, one clock for every process of the machine.


def handoff_waiter(url: str, prefix: str, conn: Connection) -> None:
    """In a child process: on each "pool"/"lock" message, block until the thread (or the lock)
    is ours, send back the time we got it, and give it back."""
    pool = ThreadPool(redis_url=url, key_prefix=prefix)
    client = redis.Redis.from_url(url)
    while (what := conn.recv()) != "stop":
        if what == "pool":
            lease = pool.acquire("handoff", timeout=30)
            conn.send(time.perf_counter())
            pool.release(lease)
        else:
            lock = client.lock(f"{prefix}:handoff-lock", timeout=60)
            lock.acquire()  # redis-py's default: blocking, polling every 0.1 s
            conn.send(time.perf_counter())
            lock.release()
    pool.close()
    client.close()


def bench_handoff(url: str, prefix: str, rounds: int, lock_rounds: int) -> dict[str, float]:
    """Median seconds from a release to the blocked waiter holding the thread (or the lock)."""
    pool = ThreadPool(redis_url=url, key_prefix=prefix)
    pool.add_threads("handoff", [upstream_like_id()])
    client = redis.Redis.from_url(url)
    ours, theirs = multiprocessing.get_context("spawn").Pipe()
    child = multiprocessing.get_context("spawn").Process(
        target=handoff_waiter, args=(url, prefix, theirs)
    )
    child.start()
    samples: dict[str, list[float]] = {"pool": [], "lock": []}
    for i in range(rounds + lock_rounds):
        what = "pool" if i < rounds else "lock"
        if what == "pool":
            held = pool.acquire("handoff")
            ours.send(what)
            while pool.stats("handoff").waiting == 0:
                time.sleep(0.0005)
            released_at = time.perf_counter()
            pool.release(held)
        else:
            lock = client.lock(f"{prefix}:handoff-lock", timeout=60)
            lock.acquire()
            ours.send(what)
            # Release at a different phase of the waiter's polling each round.
            time.sleep(0.02 + (i % 10) * 0.01)
            released_at = time.perf_counter()
            lock.release()
        samples[what].append(ours.recv() - released_at)
        # Wait until the waiter gave it back before the next round.
        while what == "pool" and pool.stats("handoff").idle == 0:
            time.sleep(0.0005)
        while what == "lock" and client.exists(f"{prefix}:handoff-lock"):
            time.sleep(0.0005)
    ours.send("stop")
    child.join(timeout=30)
    pool.close()
    client.close()
    return {name: statistics.median(values) for name, values in samples.items()}


def ping_rtt(url: str, n: int = 2000) -> float:
    """Median seconds of one PING round trip from Python."""
    client = redis.Redis.from_url(url)
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        client.ping()
        samples.append(time.perf_counter() - t0)
    client.close()
    return statistics.median(samples)


# -- (c) throughput with many tasks ------------------------------------------------------------


async def cycles_per_second(url: str, prefix: str, tasks: int, seconds: float) -> float:
    """Lease/release cycles per second with ``tasks`` asyncio tasks, one thread each."""
    key = f"tasks-{tasks}"
    async with AsyncThreadPool(redis_url=url, key_prefix=prefix, max_size=tasks) as pool:
        await pool.add_threads(key, [upstream_like_id() for _ in range(tasks)])
        done = 0
        stop_at = 0.0

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < stop_at:
                lease = await pool.acquire(key)
                await pool.release(lease)
                done += 1

        stop_at = time.perf_counter() + 0.3  # warm up the connections
        await asyncio.gather(*(worker() for _ in range(tasks)))
        done = 0
        start = time.perf_counter()
        stop_at = start + seconds
        await asyncio.gather(*(worker() for _ in range(tasks)))
        return done / (time.perf_counter() - start)


async def scripts_per_second(url: str, tasks: int, seconds: float) -> float:
    """Trivial-script calls per second with ``tasks`` asyncio tasks."""
    # As many connections as the pool's own client may open (max_connections=1000).
    client = aredis.Redis.from_url(url, decode_responses=True, max_connections=1000)
    trivial = client.register_script(TRIVIAL)
    done = 0
    stop_at = 0.0

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < stop_at:
            await trivial()
            done += 1

    stop_at = time.perf_counter() + 0.3
    await asyncio.gather(*(worker() for _ in range(tasks)))
    done = 0
    start = time.perf_counter()
    stop_at = start + seconds
    await asyncio.gather(*(worker() for _ in range(tasks)))
    rate = done / (time.perf_counter() - start)
    await client.aclose()
    return rate


# -- (d) memory --------------------------------------------------------------------------------


def pool_bytes(client: redis.Redis, prefix: str, key: str) -> int:
    """Bytes Redis uses for every key of pool ``key``."""
    total = 0
    for name in PoolKeys.of(prefix, key).all_fixed():
        used = client.memory_usage(name, samples=0)
        total += int(used or 0)
    return total


def bench_memory(url: str, prefix: str, big: int) -> dict[str, float]:
    """Bytes per idle thread (small and large pools) and per empty pool."""
    client = redis.Redis.from_url(url)
    with ThreadPool(redis_url=url, key_prefix=prefix) as pool:
        pool.configure("empty", max_size=8)
        empty = pool_bytes(client, prefix, "empty")
        pool.configure("small", max_size=8)
        pool.add_threads("small", [upstream_like_id() for _ in range(8)])
        small = (pool_bytes(client, prefix, "small") - empty) / 8
        pool.configure("large", max_size=big)
        ids = [upstream_like_id() for _ in range(big)]
        for i in range(0, big, 1000):
            pool.add_threads("large", ids[i : i + 1000])
        large = (pool_bytes(client, prefix, "large") - empty) / big
    client.close()
    return {"empty_pool": float(empty), "per_thread_small": small, "per_thread_large": large}


# -- report ------------------------------------------------------------------------------------


def main() -> None:
    """Run every benchmark and print the figures and ratios."""
    parser = argparse.ArgumentParser(description="lease core benchmarks")
    parser.add_argument("--quick", action="store_true", help="fewer samples (a smoke run)")
    args = parser.parse_args()
    rounds, per_round = (4, 100) if args.quick else (10, 400)
    handoff_rounds, lock_rounds = (30, 10) if args.quick else (300, 40)
    seconds = 0.5 if args.quick else 2.0

    with local_redis() as url, scratch_prefix(url) as prefix:
        rtt = ping_rtt(url)
        print(f"Redis at {url}; PING round trip from Python: median {rtt * 1e6:.0f} µs\n")

        cycle = bench_cycle(url, prefix, rounds, per_round)
        to_floor = cycle["pool"] / cycle["floor"]
        to_lock = cycle["pool"] / cycle["lock"]
        print("(a) one lease+release cycle (median)")
        print(f"    thread_pool lease+release    {cycle['pool'] * 1e6:8.0f} µs")
        print(f"    redis-py Lock acquire+release{cycle['lock'] * 1e6:8.0f} µs")
        print(f"    two trivial Lua calls (floor){cycle['floor'] * 1e6:8.0f} µs")
        print(f"    pool / floor = {to_floor:.2f} (target <= 1.3: {verdict(to_floor <= 1.3)})")
        print(f"    pool / Lock  = {to_lock:.2f} (target <= 1.1: {verdict(to_lock <= 1.1)})\n")

        hand = bench_handoff(url, prefix, handoff_rounds, lock_rounds)
        in_rtts = hand["pool"] / rtt
        speedup = hand["lock"] / hand["pool"]
        print("(b) hand-off: release -> blocked waiter holds it (median)")
        print(f"    thread_pool        {hand['pool'] * 1e6:10.0f} µs = {in_rtts:.1f} round trips")
        print(f"    redis-py Lock      {hand['lock'] * 1e6:10.0f} µs (polls every 100 ms)")
        print(f"    p50 <= 3 round trips: {verdict(in_rtts <= 3)}; ", end="")
        print(f"Lock / pool = {speedup:.0f}x (target >= 100x: {verdict(speedup >= 100)})\n")

        print("(c) lease/release cycles per second, one process, asyncio")
        last_ratio = 0.0
        for tasks in (1, 16, 256):
            pool_rate = asyncio.run(cycles_per_second(url, prefix, tasks, seconds))
            floor_rate = asyncio.run(scripts_per_second(url, tasks, seconds))
            last_ratio = pool_rate / (floor_rate / 2)
            print(
                f"    {tasks:3d} tasks: {pool_rate:8.0f} cycles/s; trivial scripts "
                f"{floor_rate:8.0f}/s, /2 = {floor_rate / 2:8.0f}; ratio {last_ratio:.2f}"
            )
        print(f"    at 256 tasks, ratio >= 0.7: {verdict(last_ratio >= 0.7)}\n")

        big = 2_000 if args.quick else 10_000
        mem = bench_memory(url, prefix, big)
        print("(d) Redis memory (MEMORY USAGE)")
        print(f"    empty pool                  {mem['empty_pool']:8.0f} bytes")
        print(f"    per idle thread, pool of 8  {mem['per_thread_small']:8.0f} bytes")
        print(f"    per idle thread, pool of {big:,} {mem['per_thread_large']:6.0f} bytes")
        worst = max(mem["per_thread_small"], mem["per_thread_large"])
        print(
            f"    <= 400 bytes per thread: {verdict(worst <= 400)}; "
            f"<= 4 KiB per pool: {verdict(mem['empty_pool'] <= 4096)}"
        )


if __name__ == "__main__":
    main()
