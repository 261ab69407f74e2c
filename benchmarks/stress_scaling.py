"""Turns per second against the number of workers, lock vs pool, at a fixed run latency.

Each point runs ``thread-pool stress``'s strategies (``thread_pool.testing.stress``) with N worker
threads on one document: ``lock`` (a redis-py ``Lock`` around add-message + run on the one shared
thread) and ``pool`` (``pool.run`` over a pool of ``--pool-size`` threads). The emulator runs in its
own process (its own core and interpreter lock), every run takes exactly ``--latency`` seconds, and
it hints polls every ``--poll-ms``. The lock serialises the document's turns, so a point of it takes
N x latency: it runs one turn per worker (at least 8 turns in all), with the first backend only;
the pool runs ``--iterations`` turns per worker, with each backend of ``--backends``:
``assistants`` (streamed runs), ``assistants-polled`` (the same against an emulator that refuses
``stream``, as servers that do not stream: the backend polls) and ``conversations``.

Prints a table per backend, with pool / lock and pool / ideal, where ideal = min(N, pool size) /
latency, and the upstream requests per pool turn (the emulator's own counts, less the threads and
assistants made and deleted), and writes ``benchmarks/out/stress_scaling.png``.

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
from typing import Literal

from thread_pool.emulator.client import IntrospectionClient
from thread_pool.testing.redis_server import local_redis
from thread_pool.testing.stress import StressOptions, StressResult, run_stress

OUT = Path(__file__).resolve().parent / "out"


@contextmanager
def emulator(latency: float, poll_ms: int, streaming: str = "on") -> Iterator[tuple[str, int]]:
    """``python -m thread_pool.emulator`` in a child process; yields its base URL and pid."""
    command = [sys.executable, "-m", "thread_pool.emulator", "--port", "0"]
    command += ["--latency", str(latency), "--poll-after-ms", str(poll_ms)]
    command += ["--run-streaming", streaming]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if "base_url=" not in line:
            raise RuntimeError(f"the emulator did not start: {line!r}")
        yield line.strip().split("base_url=")[1].split()[0], process.pid
    finally:
        process.terminate()
        process.wait(10)


# Requests that make or delete what a stress run needs, not turns.
SETUP = frozenset({"POST /v1/threads", "POST /v1/assistants", "POST /v1/conversations"})


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def turn_requests(base_url: str) -> int:
    """The emulator's count of requests so far, less those of set-up and clean-up."""
    counts = IntrospectionClient(base_url.removesuffix("/v1")).stats()["requests"]
    return sum(n for name, n in counts.items() if name not in SETUP and "DELETE" not in name)


def point(
    strategy: str,
    workers: int,
    iterations: int,
    base_url: str,
    redis_url: str,
    args: argparse.Namespace,
    backend: Literal["assistants", "conversations"],
) -> tuple[StressResult, float]:
    """One strategy at one number of workers; with the upstream requests per turn."""
    options = StressOptions(
        workers=workers,
        iterations=iterations,
        strategies=("lock",) if strategy == "lock" else ("pool",),
        base_url=base_url,
        api_key="unused",
        pool_size=args.pool_size,
        backend=backend,
        prewarm=not args.cold,
    )
    before = turn_requests(base_url)
    (result,) = run_stress(options, redis_url=redis_url)
    return result, (turn_requests(base_url) - before) / max(1, result.succeeded)


def plot(
    rows: dict[str, list[dict[str, float]]], latency: float, pool_size: int, path: Path
) -> None:
    """Turns/s of the lock, of the pool with each backend, and the ideal, against workers."""
    import matplotlib

    matplotlib.use("Agg")  # no display: write the file only
    import matplotlib.pyplot as plt

    first = next(iter(rows.values()))
    workers = [r["workers"] for r in first]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    ax.plot(workers, [r["ideal"] for r in first], "k:", label="ideal: min(N, pool size) / latency")
    for (backend, points), marker in zip(rows.items(), "o^v", strict=False):
        ax.plot(workers, [r["pool"] for r in points], f"{marker}-", label=f"pool, {backend}")
    ax.plot(workers, [r["lock"] for r in first], "s-", label="lock (redis-py Lock, one thread)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.set_xticks(workers, [str(int(w)) for w in workers])
    ax.set_xlabel("workers")
    ax.set_ylabel("turns / s")
    ax.set_title(f"One document, runs of {latency:g} s, pool of {pool_size} threads (emulator)")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def measure(backend: str, redis_url: str, args: argparse.Namespace) -> list[dict[str, float]]:
    """Every point of one backend (the lock's too for the first backend)."""
    streaming = "refused" if backend == "assistants-polled" else "on"
    kind: Literal["assistants", "conversations"] = (
        "conversations" if backend == "conversations" else "assistants"
    )
    with_lock = backend == args.backends.split(",")[0]
    rows: list[dict[str, float]] = []
    with emulator(args.latency, args.poll_ms, streaming) as (base_url, pid):
        for n in (int(w) for w in args.workers.split(",")):
            lock = None
            if with_lock:
                lock, _ = point("lock", n, max(1, 8 // n), base_url, redis_url, args, kind)
            cpu, wall = cpu_seconds(pid), time.monotonic()
            pool, per_turn = point("pool", n, args.iterations, base_url, redis_url, args, kind)
            emulator_cores = (cpu_seconds(pid) - cpu) / (time.monotonic() - wall)
            ideal = min(n, args.pool_size) / args.latency
            lock_rate = lock.turns_per_s if lock is not None else float("nan")
            rows.append(
                {
                    "workers": n,
                    "lock": lock_rate,
                    "pool": pool.turns_per_s,
                    "ideal": ideal,
                    "pool_over_lock": pool.turns_per_s / lock_rate,
                    "pool_over_ideal": pool.turns_per_s / ideal,
                    "lock_lost": lock.failed if lock is not None else float("nan"),
                    "pool_lost": pool.failed,
                    "pool_lock_errors": pool.lock_errors,
                    "lock_p95": lock.p95_s if lock is not None else float("nan"),
                    "pool_p95": pool.p95_s,
                    "requests_per_turn": per_turn,
                    "emulator_cores": emulator_cores,
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--latency", type=float, default=0.5, help="seconds per run")
    parser.add_argument("--poll-ms", type=int, default=25, help="the emulator's poll hint")
    parser.add_argument("--pool-size", type=int, default=16)
    parser.add_argument("--iterations", type=int, default=8, help="pool turns per worker")
    parser.add_argument("--workers", default="1,2,4,8,16,32,64")
    parser.add_argument(
        "--backends",
        default="assistants,conversations",
        help="comma-separated: assistants, assistants-polled, conversations",
    )
    parser.add_argument(
        "--cold",
        action="store_true",
        help="time the pool's growth too (by default it is grown to its size before each point)",
    )
    parser.add_argument("--json", action="store_true", help="print the rows as JSON too")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=DeprecationWarning)

    started = time.monotonic()
    rows: dict[str, list[dict[str, float]]] = {}
    with local_redis() as redis_url:
        for backend in args.backends.split(","):
            rows[backend] = measure(backend, redis_url, args)
    load = os.getloadavg()
    print(
        f"runs of {args.latency:g} s, poll hint {args.poll_ms} ms, pool size {args.pool_size}; "
        f"lock: one turn per worker (>= 8 in all), pool: {args.iterations} per worker; "
        f"load average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} "
        f"on {os.cpu_count()} cores"
    )
    for backend, points in rows.items():
        print(f"\n{backend}")
        print(
            "| workers | lock turns/s | pool turns/s | ideal | pool ÷ lock | pool ÷ ideal "
            "| lost (lock/pool) | pool lock errors | p95 s (lock/pool) | requests / pool turn "
            "| emulator CPU (cores) |"
        )
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in points:
            print(
                f"| {r['workers']:.0f} | {r['lock']:.2f} | {r['pool']:.2f} | {r['ideal']:.0f} "
                f"| {r['pool_over_lock']:.1f} | {r['pool_over_ideal']:.2f} "
                f"| {r['lock_lost']:.0f}/{r['pool_lost']:.0f} | {r['pool_lock_errors']:.0f} "
                f"| {r['lock_p95']:.2f}/{r['pool_p95']:.2f} | {r['requests_per_turn']:.2f} "
                f"| {r['emulator_cores']:.2f} |"
            )
    path = OUT / "stress_scaling.png"
    plot(rows, args.latency, args.pool_size, path)
    print(f"plot: {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
    print(f"{time.monotonic() - started:.0f} s")
    if args.json:
        print(json.dumps(rows))


if __name__ == "__main__":
    main()
