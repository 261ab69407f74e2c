"""Redis memory of one pool's log against turns, with and without retention.

    python benchmarks/log_soak.py [--turns 100000] [--keep 1000]

Each turn appends a question and a reply (about 200 characters each) from one of the pool's 4
threads, as a turn does (its id recorded for idempotency, its thread's cursor moved). With
``log_max_entries`` set, the log, its idempotency record and the cursors must stay flat once the
log is full; without it, they grow with every turn. Memory is ``MEMORY USAGE`` of the pool's keys
(the shared server's other keys do not count), in KiB.
"""

from __future__ import annotations

import argparse
import secrets
import time

import redis

from thread_pool import ThreadPool
from thread_pool._store.keys import PoolKeys
from thread_pool.testing.redis_server import local_redis, scratch_prefix

THREADS = [f"thread_{n}" for n in range(4)]


def usage_kib(client: redis.Redis, keys: PoolKeys) -> float:
    names = [keys.meta, keys.threads, keys.idle, keys.log, keys.logged, keys.cursors]
    return sum(int(client.memory_usage(name) or 0) for name in names) / 1024


def soak(url: str, prefix: str, key: str, turns: int, keep: int | None, every: int) -> list[str]:
    rows = []
    client = redis.Redis.from_url(url)
    keys = PoolKeys.of(prefix, key)
    with ThreadPool(redis_url=url, key_prefix=prefix, log_max_entries=keep) as pool:
        pool.add_threads(key, THREADS)
        started = time.perf_counter()
        for n in range(1, turns + 1):
            question = f"question {n}: " + secrets.token_hex(96)
            reply = f"reply {n}: " + secrets.token_hex(96)
            seen = n * 2 - 2
            pool.log.append(
                key,
                f"turn-{n}",
                THREADS[n % 4],
                seen,
                f"run-{n}",
                [("user", question), ("assistant", reply)],
            )
            if n % every == 0:
                rows.append(
                    f"{n:>8}  {client.xlen(keys.log):>8}  {client.hlen(keys.logged):>8}  "
                    f"{client.hlen(keys.cursors):>7}  {usage_kib(client, keys):>10.0f}  "
                    f"{(time.perf_counter() - started) / n * 1e6:>9.0f}"
                )
    client.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=100_000)
    parser.add_argument("--keep", type=int, default=1_000, help="log_max_entries")
    args = parser.parse_args()
    names = ("turns", "entries", "logged", "cursors", "memory KiB", "µs/turn")
    head = "  ".join(f"{n:>{w}}" for n, w in zip(names, (8, 8, 8, 7, 10, 9), strict=True))
    with local_redis() as url, scratch_prefix(url) as prefix:
        print(f"Redis at {url}\n\nlog_max_entries={args.keep}:")
        print(head)
        for row in soak(url, prefix, "kept", args.turns, args.keep, args.turns // 10):
            print(row)
        unbounded = max(args.turns // 5, 1)
        print(f"\nno retention (first {unbounded} turns):")
        print(head)
        for row in soak(url, prefix, "unbounded", unbounded, None, unbounded // 4):
            print(row)


if __name__ == "__main__":
    main()
