"""What context merging costs a turn, at log sizes 10, 1,000 and 100,000 entries.

For each size a pool's log is filled with that many entries (pipelined XADD, the fields
``log_append.lua`` writes, made by a sibling thread), and a thread that holds all but the last
few is leased for turns, as in a busy pool whose siblings ran meanwhile. Between its turns a
sibling's turn (two entries) is logged, so every turn has something to merge.

- Extra upstream requests per turn: the emulator's request counters with ``merge="full"`` minus
  the same turns with ``merge="none"`` (target 0: the missing entries ride in the turn's request).
- Time merging adds per turn: the Redis work merging does, timed on the pool's own calls: reading
  what the thread is missing (``log_missing.lua``) and logging the turn with its cursor
  (``log_append.lua``). Medians; the upstream part is the same request either way.
- Also the read for a thread that holds nothing of the log yet (a full catch-up of the whole
  log), which is what seeding a new thread reads.

    .venv/bin/python benchmarks/merge.py [--turns 30]
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid

import openai
import redis

from thread_pool import ThreadPool, build_backend
from thread_pool._store.keys import PoolKeys
from thread_pool.emulator import EmulatorServer, start_emulator

SIZES = (10, 1_000, 100_000)


def requests(server: EmulatorServer) -> int:
    return sum(int(v) for v in server.admin.stats()["requests"].values())


def fill(r: redis.Redis, keys: PoolKeys, size: int, origin: str) -> None:
    """``size`` entries in the log, as sibling ``origin``'s turns would have left them."""
    pipe = r.pipeline(transaction=False)
    for seq in range(1, size + 1):
        role = "user" if seq % 2 else "assistant"
        pipe.xadd(
            keys.log,
            {
                "role": role,
                "content": f"entry {seq} " + "x" * 60,
                "origin": origin,
                "run": "",
                "turn": f"t{(seq + 1) // 2}",
                "time": "0",
            },
            id=f"{seq}-0",
        )
        if seq % 5000 == 0:
            pipe.execute()
    pipe.execute()


def median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def bench(
    server: EmulatorServer,
    client: openai.OpenAI,
    r: redis.Redis,
    prefix: str,
    size: int,
    turns: int,
    merge: str,
) -> dict[str, float]:
    key = f"merge-{merge}-{size}"
    keys = PoolKeys.of(prefix, key)
    with ThreadPool(
        backend=build_backend("conversations", client, model="emulated"),
        key_prefix=prefix,
        merge=merge,
        max_size=1,
    ) as pool:
        # The thread is created (seeded) while the log is empty; then the log fills up, and
        # the thread's first read catches up on all of it: time that read alone.
        held = pool.acquire(key)
        fill(r, keys, size, "sibling")
        started = time.perf_counter()
        full_entries = len(pool.log.missing(held.key, held.thread_id).entries)
        full_read = time.perf_counter() - started
        # Then say it holds all but the last 4 entries: the steady state of a busy pool.
        r.hset(keys.cursors, held.thread_id, max(size - 4, 0))
        pool.release(held)
        reads: list[float] = []
        appends: list[float] = []
        before = requests(server)
        for i in range(turns):
            with pool.lease(key) as lease:
                started = time.perf_counter()
                missing = pool.log.missing(lease.key, lease.thread_id)
                reads.append(time.perf_counter() - started)
                turn = lease.run(f"turn {i}")
                # The turn logged itself inside run(); time the same append (its XADDs and the
                # cursor move) once more under a fresh id, from outside.
                started = time.perf_counter()
                pool.log.log_turn(
                    lease.key, lease.thread_id, f"again-{i}", missing.last_seq, f"turn {i}", turn
                )
                appends.append(time.perf_counter() - started)
            # A sibling's turn lands meanwhile: two more entries to merge next time.
            pool.append(key, "user", f"sibling question {i}")
            pool.append(key, "assistant", f"sibling answer {i}")
        per_turn = (requests(server) - before) / turns
    return {
        "requests": per_turn,
        "read_ms": median_ms(reads),
        "append_ms": median_ms(appends),
        "full_read_ms": full_read * 1000,
        "full_entries": float(full_entries),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=30)
    args = parser.parse_args()
    prefix = f"bench-merge-{uuid.uuid4().hex[:8]}"
    server = start_emulator(latency="0.005", seed=1)
    client = openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0)
    r = redis.Redis(decode_responses=True)
    rows = []
    try:
        for size in SIZES:
            full = bench(server, client, r, prefix, size, args.turns, "full")
            none = bench(server, client, r, prefix, size, args.turns, "none")
            rows.append((size, full, none))
    finally:
        client.close()
        server.stop()
        stale = list(r.scan_iter(match=f"{prefix}:*"))
        if stale:
            r.delete(*stale)
        r.close()
    print(f"{args.turns} turns per row (Conversations, synchronous responses); medians\n")
    print(
        "| log entries | upstream requests/turn (full) | (none) | extra | read missing (ms) "
        "| log turn + cursor (ms) | full catch-up read (ms, entries) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for size, full, none in rows:
        print(
            f"| {size:,} | {full['requests']:.2f} | {none['requests']:.2f} "
            f"| {full['requests'] - none['requests']:+.2f} | {full['read_ms']:.3f} "
            f"| {full['append_ms']:.3f} | {full['full_read_ms']:.1f} "
            f"({int(full['full_entries']):,}) |"
        )


if __name__ == "__main__":
    main()
