"""How long a Prometheus scrape of many pools takes: ``thread-pool metrics`` over HTTP, and the
library call it makes (``PoolAdmin.metrics()``), with 100, 1,000 and 10,000 pools.

    python benchmarks/metrics_scrape.py [--quick]

Each pool has 4 threads (one leased) and 10 log entries. A scrape makes one script call per pool,
pipelined in batches of 500 on a single Redis. Medians of 5 scrapes per size; the pools live
under a scratch prefix that is removed afterwards.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from thread_pool import PoolAdmin, ThreadPool
from thread_pool.testing.redis_server import local_redis, scratch_prefix

COMMAND = [str(Path(sys.executable).with_name("thread-pool")), "metrics", "--port", "0"]


def fill(url: str, prefix: str, first: int, count: int) -> None:
    """Pools ``first`` .. ``first + count - 1``: 4 threads each, one leased, 10 log entries."""
    with ThreadPool(redis_url=url, key_prefix=prefix, lease_ttl=3600) as pool:
        for n in range(first, first + count):
            key = f"doc-{n}"
            pool.add_threads(key, [f"t{n}-{i}" for i in range(4)])
            pool.acquire(key)
            for i in range(10):
                pool.append(key, "user", f"entry {i} of pool {n}")


def scrape_seconds(base: str, times: int) -> tuple[float, int]:
    """Median seconds of ``times`` HTTP scrapes, and the size of the last one in bytes."""
    took, size = [], 0
    for _ in range(times):
        started = time.perf_counter()
        with urllib.request.urlopen(f"{base}/metrics", timeout=120) as reply:
            size = len(reply.read())
        took.append(time.perf_counter() - started)
    return statistics.median(took), size


def library_seconds(url: str, prefix: str, times: int) -> float:
    with PoolAdmin(redis_url=url, key_prefix=prefix) as admin:
        took = []
        for _ in range(times):
            started = time.perf_counter()
            admin.metrics()
            took.append(time.perf_counter() - started)
    return statistics.median(took)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 and 1,000 pools only")
    args = parser.parse_args()
    sizes = [100, 1_000] if args.quick else [100, 1_000, 10_000]
    with local_redis() as url, scratch_prefix(url) as prefix:
        env = {**os.environ, "THREAD_POOL_REDIS_URL": url, "THREAD_POOL_KEY_PREFIX": prefix}
        server = subprocess.Popen(COMMAND, env=env, stderr=subprocess.PIPE, text=True)
        try:
            assert server.stderr is not None
            base = server.stderr.readline().split(" at ", 1)[1].split("/metrics", 1)[0]
            print(f"Redis at {url}; medians of 5 scrapes\n")
            head = ("pools", "library s", "HTTP scrape s", "µs/pool", "bytes")
            print("  ".join(f"{h:>{w}}" for h, w in zip(head, (7, 9, 13, 7, 9), strict=True)))
            made = 0
            for size in sizes:
                fill(url, prefix, made, size - made)
                made = size
                lib = library_seconds(url, prefix, 5)
                http, length = scrape_seconds(base, 5)
                print(
                    f"{size:>7}  {lib:>9.3f}  {http:>13.3f}  {http / size * 1e6:>7.0f}  {length:>9}"
                )
        finally:
            server.terminate()
            server.wait(10)
            if server.stderr is not None:
                server.stderr.close()


if __name__ == "__main__":
    main()
