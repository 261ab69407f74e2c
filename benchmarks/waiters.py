"""Waiters benchmark: many callers waiting on one pool, without a Redis connection each.

    python benchmarks/waiters.py [--quick] [--processes P] [--per-process W]

(a) 10,000 asyncio tasks of one process queued at once on one pool of 4 threads, the pool object's
    client bounded at max_connections=8: all served? errors? the most connections Redis saw from
    that process (CLIENT LIST, by the client name the process's Redis URL sets);
(b) hand-off with 10,000 waiters queued (a pool of 1 thread, the waiters in one process): from a
    holder's release to the next holder holding it, for the first 500 hand-offs (at least 9,500
    still queued), in PING round trips measured in the same run, and against the same with only
    501 queued; and Redis's commands per grant (INFO commandstats deltas over the whole drain);
(c) P processes x W asyncio waiters (default 20 x 2,000) queued at once on one pool of 1 thread:
    all served? the growth of ``connected_clients`` (most seen while they wait and drain, minus
    before they started); FIFO across processes: the queue's order when all were queued (Redis's
    own list) against the grant order (the thread's fence, which goes up by one per grant).

Runs on a private ``redis-server`` (so ``connected_clients`` counts this benchmark only).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import redis

from thread_pool import AsyncThreadPool, ThreadPool, ThreadPoolError
from thread_pool._store.keys import PoolKeys
from thread_pool.testing.redis_server import RedisServer

CONNECTIONS = 8  # max_connections of every waiting process's pool object


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


class Watch:
    """Samples, in a thread, how many connections Redis has: all of them, and those of clients
    named ``<name>...``; keeps the most of each."""

    def __init__(self, url: str, name: str) -> None:
        self._client = redis.Redis.from_url(url, decode_responses=True)
        self._name = name
        self.most_named = 0
        self.most_total = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def connected(self) -> int:
        """Redis's ``connected_clients`` now (this watcher's own connection included)."""
        return int(self._client.info("clients")["connected_clients"])

    def sample(self) -> None:
        """Take one sample."""
        clients = self._client.client_list()
        named = sum(1 for c in clients if c.get("name", "").startswith(self._name))
        self.most_named = max(self.most_named, named)
        self.most_total = max(self.most_total, len(clients))

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.sample()

    def __enter__(self) -> Watch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()
        self._client.close()


def hold_all(url: str, prefix: str, key: str, threads: int) -> tuple[ThreadPool, list[Any]]:
    """A pool of ``threads`` threads, all of them held by the benchmark."""
    pool = ThreadPool(redis_url=url, key_prefix=prefix, lease_ttl=600)
    pool.add_threads(key, [f"thread_{key}_{n}" for n in range(threads)])
    return pool, [pool.acquire(key) for _ in range(threads)]


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``check`` until it holds."""
    end = time.monotonic() + timeout
    while not check():
        if time.monotonic() > end:
            raise SystemExit(f"gave up waiting for {what}")
        time.sleep(0.05)


async def queue_and_serve(
    url: str, prefix: str, key: str, n: int, name: str
) -> tuple[list[tuple[str, str, int, float, float]], Counter[str]]:
    """``n`` tasks of this process each lease once (waiting as long as it takes): each records
    (token, thread, fence, when it got the thread, when it released it)."""
    pool = AsyncThreadPool(
        redis_url=f"{url}?client_name={name}",
        key_prefix=prefix,
        max_connections=CONNECTIONS,
        max_waiters=1_000_000,
        lease_ttl=600,
    )
    got: list[tuple[str, str, int, float, float]] = []
    errors: Counter[str] = Counter()

    async def one() -> None:
        try:
            lease = await pool.acquire(key, timeout=600)
            at = time.perf_counter()
            released_at = time.perf_counter()
            await pool.release(lease)
            got.append((lease.token, lease.thread_id, lease.fence, at, released_at))
        except ThreadPoolError as exc:
            errors[type(exc).__name__] += 1

    await asyncio.gather(*(one() for _ in range(n)))
    await pool.aclose()
    return got, errors


def waiter_process(url: str, prefix: str, key: str, n: int, name: str, conn: Connection) -> None:
    """A process of waiters: sends back what ``queue_and_serve`` recorded."""
    got, errors = asyncio.run(queue_and_serve(url, prefix, key, n, name))
    conn.send((got, dict(errors)))
    conn.close()


def run_waiters(
    url: str, prefix: str, key: str, processes: int, per: int, threads: int, tag: str
) -> dict[str, Any]:
    """``processes`` x ``per`` waiters queued at once on a pool of ``threads`` held threads, then
    served: what they saw, the queue's order when all were queued, and Redis's view."""
    holder, held = hold_all(url, prefix, key, threads)
    context = multiprocessing.get_context("spawn")
    client = redis.Redis.from_url(url, decode_responses=True)
    client.ping()  # connected before the count starts (it connects on its first command)
    with Watch(url, f"{tag}-") as watch:
        before = watch.connected()
        stats_before = client.info("commandstats")
        pipes, procs = [], []
        for i in range(processes):
            ours, theirs = context.Pipe()
            proc = context.Process(
                target=waiter_process, args=(url, prefix, key, per, f"{tag}-{i}", theirs)
            )
            proc.start()
            pipes.append(ours)
            procs.append(proc)
        total = processes * per
        wait_until(lambda: holder.stats(key).waiting == total, 600, f"{total} waiters queued")
        entries: list[str] = client.lrange(PoolKeys.of(prefix, key).waiters, 0, -1)  # type: ignore[assignment]
        queue = [entry.split("|", 1)[0] for entry in entries]
        queued_at = time.perf_counter()
        for lease in held:
            holder.release(lease)
        got: list[tuple[str, str, int, float, float]] = []
        errors: Counter[str] = Counter()
        for pipe in pipes:
            their_got, their_errors = pipe.recv()
            got += their_got
            errors.update(their_errors)
        drained = time.perf_counter() - queued_at
        for proc in procs:
            proc.join(60)
        stats_after = client.info("commandstats")
        client.close()
    holder.close()
    return {
        "got": got,
        "errors": errors,
        "queue": queue,
        "drained_s": drained,
        "most_named": watch.most_named,
        "growth": watch.most_total - before,
        "commands": _command_deltas(stats_before, stats_after),
    }


def _command_deltas(before: dict[str, Any], after: dict[str, Any]) -> dict[str, int]:
    """Calls per command between two INFO commandstats (the watcher's own included)."""
    out = {}
    for name, stats in after.items():
        calls = int(stats["calls"]) - int(before.get(name, {}).get("calls", 0))
        if calls:
            out[name.removeprefix("cmdstat_")] = calls
    return out


def handoffs(got: list[tuple[str, str, int, float, float]], first: int) -> list[float]:
    """Seconds from each release to the next holder of the same thread holding it (consecutive
    fences of one thread), for the first ``first`` grants."""
    by_thread: dict[str, dict[int, tuple[float, float]]] = {}
    for _, thread, fence, at, released_at in got:
        by_thread.setdefault(thread, {})[fence] = (at, released_at)
    samples = []
    for _, thread, fence, at, _ in sorted(got, key=lambda g: g[3])[:first]:
        previous = by_thread[thread].get(fence - 1)
        if previous is not None:
            samples.append(at - previous[1])
    return samples


def fifo_kept(queue: list[str], got: list[tuple[str, str, int, float, float]]) -> bool:
    """On a pool of one thread, the grant order is the fence order: is it the queue's order?"""
    granted = [token for token, *_ in sorted(got, key=lambda g: g[2])]
    return granted == queue


def main() -> None:
    """Run (a), (b) and (c) and print the figures against their targets."""
    parser = argparse.ArgumentParser(description="waiters benchmark")
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--processes", type=int, default=20)
    parser.add_argument("--per-process", type=int, default=2000)
    args = parser.parse_args()
    many = 1000 if args.quick else 10_000
    processes, per = (4, 200) if args.quick else (args.processes, args.per_process)
    first = min(500, many // 20)

    with RedisServer() as server:
        url = server.url
        prefix = "tpbench-waiters"
        rtt = ping_rtt(url)
        print(f"private redis-server; PING round trip from Python: median {rtt * 1e6:.0f} µs")
        print(f"every waiting process: one pool object, max_connections={CONNECTIONS}\n")

        a = run_waiters(url, prefix, "many", 1, many, 4, "bench-a")
        print(f"(a) {many} waiters in one process, pool of 4 threads")
        print(f"    served {len(a['got'])} of {many}, errors {dict(a['errors']) or 0}")
        print(
            f"    most connections from that process: {a['most_named']} "
            f"(target <= {CONNECTIONS}); drained in {a['drained_s']:.2f} s "
            f"({many / a['drained_s']:.0f} grants/s)"
        )

        short = run_waiters(url, prefix, "short", 1, first + 1, 1, "bench-b0")
        b = run_waiters(url, prefix, "chain", 1, many, 1, "bench-b")
        samples = handoffs(b["got"], first)
        p50 = statistics.median(samples)
        p50_short = statistics.median(handoffs(short["got"], first))
        per_grant = {c: round(n / many, 2) for c, n in b["commands"].items() if n >= many // 2}
        print(f"\n(b) hand-off with {many} waiters queued (pool of 1 thread, one process)")
        print(
            f"    first {len(samples)} hand-offs: p50 {p50 * 1e6:.0f} µs = {p50 / rtt:.2f} round "
            f"trips (target <= 3); p90 {statistics.quantiles(samples, n=10)[-1] * 1e6:.0f} µs"
        )
        print(
            f"    the same with {first + 1} queued: p50 {p50_short * 1e6:.0f} µs = "
            f"{p50_short / rtt:.2f} round trips; {many} queued / {first + 1} queued: "
            f"{p50 / p50_short:.2f}"
        )
        print(f"    Redis commands per grant over the drain: {per_grant}")
        print(f"    served {len(b['got'])} of {many}, errors {dict(b['errors']) or 0}")

        c = run_waiters(url, prefix, "fleet", processes, per, 1, "bench-c")
        total = processes * per
        print(f"\n(c) {processes} processes x {per} waiters = {total}, pool of 1 thread")
        print(f"    served {len(c['got'])} of {total}, errors {dict(c['errors']) or 0}")
        print(
            f"    connected_clients growth {c['growth']} (target <= {processes} x {CONNECTIONS} "
            f"= {processes * CONNECTIONS}); most named connections {c['most_named']}"
        )
        print(
            f"    FIFO across processes (queue order == fence order): "
            f"{fifo_kept(c['queue'], c['got'])}"
            f"; drained in {c['drained_s']:.2f} s ({total / c['drained_s']:.0f} grants/s)"
        )


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
