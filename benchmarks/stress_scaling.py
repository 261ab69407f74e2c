"""Turns per second against the number of workers, lock vs pool, at a fixed run latency.

Each point runs ``thread-pool stress``'s strategies (``thread_pool.testing.stress``) with N worker
threads on one document: ``lock`` (a redis-py ``Lock`` around add-message + run on the one shared
thread) and ``pool`` (``pool.run`` over a pool of ``--pool-size`` threads). The emulator runs in its
own process (its own core and interpreter lock), every run takes exactly ``--latency`` seconds, and
it hints polls every ``--poll-ms``. The lock serialises the document's turns, so a point of it takes
N x latency: it runs one turn per worker (at least 8 turns in all); the pool runs ``--iterations``
turns per worker.

Prints the table, with pool / lock and pool / ideal, where ideal = min(N, pool size) / latency,
and writes ``benchmarks/out/stress_scaling.png``.

    .venv/bin/python benchmarks/stress_scaling.py [--latency 0.5] [--pool-size 16]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from thread_pool.testing.redis_server import local_redis
from thread_pool.testing.stress import StressOptions, StressResult, run_stress

OUT = Path(__file__).resolve().parent / "out"


@contextmanager
def emulator(latency: float, poll_ms: int) -> Iterator[str]:
    """``python -m thread_pool.emulator`` in a child process; yields its base URL."""
    command = [sys.executable, "-m", "thread_pool.emulator", "--port", "0"]
    command += ["--latency", str(latency), "--poll-after-ms", str(poll_ms)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if "base_url=" not in line:
            raise RuntimeError(f"the emulator did not start: {line!r}")
        yield line.strip().split("base_url=")[1].split()[0]
    finally:
        process.terminate()
        process.wait(10)


def point(
    strategy: str,
    workers: int,
    iterations: int,
    base_url: str,
    redis_url: str,
    args: argparse.Namespace,
) -> StressResult:
    """One strategy at one number of workers."""
    options = StressOptions(
        workers=workers,
        iterations=iterations,
        strategies=("lock",) if strategy == "lock" else ("pool",),
        base_url=base_url,
        api_key="unused",
        pool_size=args.pool_size,
        backend=args.backend,
    )
    (result,) = run_stress(options, redis_url=redis_url)
    return result


def plot(rows: list[dict[str, float]], latency: float, pool_size: int, path: Path) -> None:
    """Turns/s of both strategies and the ideal, against workers (log-2 axis)."""
    import matplotlib

    matplotlib.use("Agg")  # no display: write the file only
    import matplotlib.pyplot as plt

    workers = [r["workers"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    ax.plot(workers, [r["ideal"] for r in rows], "k:", label="ideal: min(N, pool size) / latency")
    ax.plot(workers, [r["pool"] for r in rows], "o-", label=f"pool ({pool_size} threads)")
    ax.plot(workers, [r["lock"] for r in rows], "s-", label="lock (redis-py Lock, one thread)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.set_xticks(workers, [str(int(w)) for w in workers])
    ax.set_xlabel("workers")
    ax.set_ylabel("turns / s")
    ax.set_title(f"One document, runs of {latency:g} s (emulator, Assistants API)")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--latency", type=float, default=0.5, help="seconds per run")
    parser.add_argument("--poll-ms", type=int, default=25, help="the emulator's poll hint")
    parser.add_argument("--pool-size", type=int, default=16)
    parser.add_argument("--iterations", type=int, default=8, help="pool turns per worker")
    parser.add_argument("--workers", default="1,2,4,8,16,32,64")
    parser.add_argument("--backend", choices=["assistants", "conversations"], default="assistants")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON too")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=DeprecationWarning)

    started = time.monotonic()
    rows: list[dict[str, float]] = []
    with local_redis() as redis_url, emulator(args.latency, args.poll_ms) as base_url:
        for n in (int(w) for w in args.workers.split(",")):
            lock = point("lock", n, max(1, 8 // n), base_url, redis_url, args)
            pool = point("pool", n, args.iterations, base_url, redis_url, args)
            ideal = min(n, args.pool_size) / args.latency
            rows.append(
                {
                    "workers": n,
                    "lock": lock.turns_per_s,
                    "pool": pool.turns_per_s,
                    "ideal": ideal,
                    "pool_over_lock": pool.turns_per_s / lock.turns_per_s,
                    "pool_over_ideal": pool.turns_per_s / ideal,
                    "lock_lost": lock.failed,
                    "pool_lost": pool.failed,
                    "pool_lock_errors": pool.lock_errors,
                    "lock_p95": lock.p95_s,
                    "pool_p95": pool.p95_s,
                }
            )
    print(
        f"runs of {args.latency:g} s, poll hint {args.poll_ms} ms, pool size {args.pool_size}; "
        f"lock: one turn per worker (>= 8 in all), pool: {args.iterations} per worker"
    )
    print(
        "| workers | lock turns/s | pool turns/s | ideal | pool ÷ lock | pool ÷ ideal "
        "| lost (lock/pool) | pool lock errors | p95 s (lock/pool) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['workers']:.0f} | {r['lock']:.2f} | {r['pool']:.2f} | {r['ideal']:.0f} "
            f"| {r['pool_over_lock']:.1f} | {r['pool_over_ideal']:.2f} "
            f"| {r['lock_lost']:.0f}/{r['pool_lost']:.0f} | {r['pool_lock_errors']:.0f} "
            f"| {r['lock_p95']:.2f}/{r['pool_p95']:.2f} |"
        )
    path = OUT / "stress_scaling.png"
    plot(rows, args.latency, args.pool_size, path)
    print(f"plot: {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
    print(f"{time.monotonic() - started:.0f} s")
    if args.json:
        print(json.dumps(rows))


if __name__ == "__main__":
    main()
