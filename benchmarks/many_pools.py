"""Many pools: what 100,000 pools of 8 threads cost in Redis memory, how long listing them and a
full ``thread-pool status --json`` take, and which operations touch the registry of pools.

    .venv/bin/python benchmarks/many_pools.py [--pools 100000] [--threads 8] [--workers 2]

Everything runs on a private ``redis-server`` started on a free port (never a shared one), and
the pools are made by the library itself: ``ThreadPool.add_threads`` with made-up thread ids,
from ``--workers`` processes, so the Redis state is exactly what an application that adds its
threads makes (meta, threads and idle keys per pool, one registry member per pool, one owners
entry per thread). A tenth of the pools first get one thread, then the other seven: the two
steps give the cost of a pool and of a thread apart (``INFO memory`` before and after).

Then, each once or as a median of 3:

- ``PoolAdmin.pools()`` (the sorted listing) against one plain ``SMEMBERS``, with the longest
  time Redis spent on one call of each (``INFO commandstats``): how long a listing blocks Redis;
- ``thread-pool status --json`` of every pool, as a user runs it: time to its first byte and to
  its end, its size, and the peak RSS of the process;
- ``PoolAdmin.metrics()`` and ``ThreadPool.reap()`` over every pool (what ``maintain`` runs);
- under ``MONITOR``: the commands that name the registry (``<prefix>:pools``) or the owners hash
  during lease cycles (acquire, renew, release) and turns over the emulator, on pools that
  exist, with a pool object that has not used them yet and then again with the same object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import openai
import redis

from thread_pool import PoolAdmin, ThreadPool, build_backend
from thread_pool.emulator import start_emulator
from thread_pool.testing.redis_server import RedisServer

COMMAND = str(Path(sys.executable).with_name("thread-pool"))
PREFIX = "many"


def pool_key(n: int) -> str:
    return f"doc-{n:06d}"


def thread_id(n: int, i: int) -> str:
    """31 characters, as long as an Assistants thread id (``thread_`` + 24)."""
    return f"thread_{n:012d}{i:012d}"


def _fill(url: str, first: int, count: int, threads: range, size: int) -> None:
    with ThreadPool(redis_url=url, key_prefix=PREFIX, max_size=size) as pool:
        for n in range(first, first + count):
            pool.add_threads(pool_key(n), [thread_id(n, i) for i in threads])


def fill(url: str, first: int, count: int, threads: range, size: int, workers: int) -> float:
    """Add threads ``threads`` to pools ``first`` .. ``first + count - 1`` (creating them), split
    between ``workers`` processes; seconds taken."""
    started = time.perf_counter()
    step = -(-count // workers)
    with ProcessPoolExecutor(workers) as pool:
        jobs = [
            pool.submit(_fill, url, start, min(step, first + count - start), threads, size)
            for start in range(first, first + count, step)
        ]
        for job in jobs:
            job.result()
    return time.perf_counter() - started


def used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def key_sizes(client: redis.Redis, n: int) -> dict[str, int]:
    """MEMORY USAGE of every key pool ``n`` has, and of the registry and owners keys."""
    out = {}
    for name in ("meta", "threads", "idle", "cursors", "log", "leases", "holds"):
        size = client.memory_usage(f"{PREFIX}:{{{pool_key(n)}}}:{name}", samples=0)
        if size is not None:
            out[name] = int(size)
    for name in ("pools", "owners"):
        out[name] = int(client.memory_usage(f"{PREFIX}:{name}", samples=0) or 0)
    return out


def command_stats(client: redis.Redis) -> dict[str, dict[str, float]]:
    return {k: dict(v) for k, v in client.info("commandstats").items()}


@contextmanager
def busiest_call(client: redis.Redis, names: tuple[str, ...]) -> Iterator[dict[str, float]]:
    """Fills the dict with the mean µs Redis spent per call of each command in ``names`` while
    the block ran (one kind of call per block: the mean is the typical single call)."""
    found: dict[str, float] = {}
    client.config_resetstat()
    yield found
    stats = command_stats(client)
    for name in names:
        got = stats.get(f"cmdstat_{name}")
        if got:
            found[name] = float(got["usec_per_call"])
            found[f"{name}_calls"] = float(got["calls"])


def median_seconds(times: int, do: Callable[[], object]) -> float:
    took = []
    for _ in range(times):
        started = time.perf_counter()
        do()
        took.append(time.perf_counter() - started)
    return statistics.median(took)


def status_json(env: dict[str, str]) -> dict[str, float]:
    """``thread-pool status --json`` of every pool: seconds to the first byte and to the end,
    bytes, peak RSS (MiB) of the process, and how many pools the output holds."""
    started = time.perf_counter()
    proc = subprocess.Popen([COMMAND, "status", "--json"], env=env, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    first = None
    chunks = []
    while chunk := os.read(proc.stdout.fileno(), 1 << 20):
        if first is None:
            first = time.perf_counter() - started
        chunks.append(chunk)
    total = time.perf_counter() - started
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    proc.stdout.close()
    assert proc.returncode == 0, proc.returncode
    out = b"".join(chunks)
    pools = len(json.loads(out)["pools"])
    return {
        "first_byte_s": first or total,
        "total_s": total,
        "bytes": len(out),
        "max_rss_mib": usage.ru_maxrss / 1024,
        "pools": pools,
    }


class Monitor:
    """Counts, under MONITOR, the commands that name the registry or the owners hash."""

    STOP = "many-pools-monitor-stop"

    def __init__(self, url: str) -> None:
        self._client = redis.Redis.from_url(url, decode_responses=True)
        self._url = url
        self.counts: dict[str, int] = {}
        self.seen: list[str] = []
        self.total = 0
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True)

    def _listen(self) -> None:
        names = {f"{PREFIX}:pools": "registry", f"{PREFIX}:owners": "owners"}
        with self._client.monitor() as m:  # type: ignore[no-untyped-call]
            self._ready.set()
            for event in m.listen():
                command = str(event.get("command", ""))
                if self.STOP in command:
                    return
                self.total += 1
                for name, label in names.items():
                    if name in command.split():
                        self.counts[label] = self.counts.get(label, 0) + 1
                        self.seen.append(command.split()[0])

    def __enter__(self) -> Monitor:
        self._thread.start()
        self._ready.wait(10)
        time.sleep(0.2)
        return self

    def __exit__(self, *exc: object) -> None:
        with redis.Redis.from_url(self._url) as other:
            other.echo(self.STOP)
        self._thread.join(30)
        self._client.close()


def lease_cycles(pool: ThreadPool, keys: list[str]) -> None:
    for key in keys:
        lease = pool.acquire(key, timeout=5)
        lease.renew()
        lease.release()


def registry_touches(url: str, pools: int) -> list[tuple[str, int, int, int, int]]:
    """(what, operations, commands sent, registry commands, owners commands) per step."""
    rows = []
    keys = [pool_key(n) for n in range(0, pools, max(1, pools // 500))][:500]

    def measure(what: str, ops: int, do: Callable[[], None]) -> None:
        with Monitor(url) as m:
            do()
        rows.append((what, ops, m.total, m.counts.get("registry", 0), m.counts.get("owners", 0)))

    with ThreadPool(redis_url=url, key_prefix=PREFIX) as pool:
        for n in (1, 2):
            what = f"lease cycles, no backend, round {n}"
            measure(what, len(keys), lambda: lease_cycles(pool, keys))
    server = start_emulator(latency="0", seed=1)
    client = openai.OpenAI(base_url=server.base_url, api_key=server.api_key, max_retries=0)
    turn_keys = [f"turns-{n}" for n in range(10)]
    try:

        def turns(pool: ThreadPool) -> None:
            for key in turn_keys:
                pool.run(key, "hello")

        backend = build_backend("conversations", client, model="emulated")
        with ThreadPool(redis_url=url, key_prefix=PREFIX, backend=backend) as pool:
            measure("turns creating 10 new pools", len(turn_keys), lambda: turns(pool))
        with ThreadPool(redis_url=url, key_prefix=PREFIX, backend=backend) as pool:
            for n in (1, 2):
                measure(f"turns, fresh pool object, round {n}", len(turn_keys), lambda: turns(pool))
            measure(
                "lease cycles with a backend", len(turn_keys), lambda: lease_cycles(pool, turn_keys)
            )
    finally:
        client.close()
        server.stop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pools", type=int, default=100_000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2, help="processes creating pools")
    args = parser.parse_args()
    total, threads = args.pools, args.threads
    sample = max(1, total // 10)
    server = RedisServer().start()
    client = redis.Redis.from_url(server.url)
    try:
        print(f"private redis-server {client.info('server')['redis_version']} at {server.url}")
        print(f"load average at start: {os.getloadavg()}\n")
        base = used_memory(client)
        took = fill(server.url, 0, sample, range(1), threads, args.workers)
        one = used_memory(client)
        took += fill(server.url, 0, sample, range(1, threads), threads, args.workers)
        full = used_memory(client)
        took += fill(server.url, sample, total - sample, range(threads), threads, args.workers)
        end = used_memory(client)
        assert client.scard(f"{PREFIX}:pools") == total
        per_pool_1 = (one - base) / sample
        per_thread = (full - one) / (sample * (threads - 1)) if threads > 1 else 0.0
        per_pool = (end - base) / total
        print(f"created {total} pools of {threads} threads in {took:.1f} s")
        print(f"used_memory: {base / 2**20:.1f} MiB before, {end / 2**20:.1f} MiB after")
        print(f"  per pool of {threads} threads: {per_pool:.0f} B")
        print(f"  per pool of 1 thread: {per_pool_1:.0f} B; per further thread: {per_thread:.0f} B")
        sizes = key_sizes(client, total - 1)
        print(f"MEMORY USAGE of one pool's keys and the shared keys: {sizes}")
        owners = sizes["owners"] / (total * threads)
        registry = sizes["pools"] / total
        print(f"  registry: {registry:.0f} B per pool; owners hash: {owners:.0f} B per thread\n")

        with PoolAdmin(redis_url=server.url, key_prefix=PREFIX) as admin:
            with busiest_call(client, ("smembers", "sscan")) as listing:
                listed = median_seconds(3, admin.pools)
            assert len(admin.pools()) == total
            with busiest_call(client, ("smembers",)) as plain:
                raw = median_seconds(3, lambda: sorted(client.smembers(f"{PREFIX}:pools")))
            print(f"PoolAdmin.pools(): {listed:.3f} s (Redis per call: {listing})")
            print(f"plain SMEMBERS + sort: {raw:.3f} s (Redis per call: {plain})\n")
            metrics = median_seconds(1, admin.metrics)
            print(f"PoolAdmin.metrics(): {metrics:.2f} s")

        env = {**os.environ, "THREAD_POOL_REDIS_URL": server.url, "THREAD_POOL_KEY_PREFIX": PREFIX}
        found = status_json(env)
        print(
            f"thread-pool status --json: first byte {found['first_byte_s']:.2f} s, "
            f"end {found['total_s']:.2f} s, {found['bytes'] / 2**20:.0f} MiB, "
            f"peak RSS {found['max_rss_mib']:.0f} MiB, {found['pools']:.0f} pools"
        )
        with ThreadPool(redis_url=server.url, key_prefix=PREFIX) as pool:
            reap = median_seconds(1, pool.reap)
        print(f"ThreadPool.reap() of every pool: {reap:.1f} s\n")

        print("commands naming the registry / the owners hash, under MONITOR:")
        for what, ops, sent, reg, own in registry_touches(server.url, total):
            print(f"  {what}: {ops} ops, {sent} commands, registry {reg}, owners {own}")
        print(f"\nload average at end: {os.getloadavg()}")
    finally:
        client.close()
        server.stop()


if __name__ == "__main__":
    main()
