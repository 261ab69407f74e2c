"""Client CPU per pooled turn: one process's CPU time over the turns of ``thread-pool stress``'s
pool strategy, for one or more source trees side by side in one run.

Each measurement is a child process (``PYTHONPATH`` = one ``--src`` tree, so a checkout of
``main`` can be measured beside this one) that grows a pool (untimed), then runs the pool
strategy twice with ``--workers`` worker threads (each its own SDK client and pool object)
against the same emulator (its own process, runs of ``--latency`` s) and a private Redis, and
takes the difference of its ``time.process_time()`` between the longer and the shorter run,
over the difference of their turns: the workers' start-up and clean-up cancel out. The trees take
turns, ``--rounds`` times; the medians are printed, with each tree's ratio to the first.

    git archive main src | tar -x -C /tmp/main-tree
    .venv/bin/python benchmarks/turn_cpu.py --src /tmp/main-tree/src --src src
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve()


def child(args: argparse.Namespace) -> None:
    """One measurement, in this process: prints its CPU seconds per turn as JSON."""
    import uuid

    import openai

    import thread_pool
    from thread_pool.testing.stress.workers import Target, run_workers

    warnings.filterwarnings("ignore", category=DeprecationWarning)
    target = Target(
        base_url=args.base_url,
        api_key="unused",
        backend=args.backend,
        model="gpt-4o-mini",
        redis_url=args.redis_url,
        prefix="tpbench",
        pool_key=f"cpu-{uuid.uuid4().hex[:10]}",
        pool_size=args.pool_size,
    )
    if args.backend == "assistants":
        with openai.OpenAI(base_url=args.base_url, api_key="unused") as client:
            assistant = client.beta.assistants.create(model=target.model, name="turn_cpu")
        target = Target(**{**vars(target), "assistant_id": assistant.id})
    run_workers("pool", target, args.workers, 1, processes=False)  # grows the pool, untimed
    cpu: list[float] = []
    turns: list[int] = []
    for iterations in (int(n) for n in args.iterations.split(",")):
        before = time.process_time()
        samples = run_workers("pool", target, args.workers, iterations, processes=False)
        cpu.append(time.process_time() - before)
        turns.append(sum(s.ok for s in samples))
    per_turn = (cpu[1] - cpu[0]) / max(1, turns[1] - turns[0])
    print(json.dumps({"per_turn": per_turn, "source": thread_pool.__file__, "turns": turns}))


def measure(src: str, args: argparse.Namespace, base_url: str, redis_url: str) -> float:
    """CPU seconds per turn of one child process running the tree ``src``."""
    command = [sys.executable, str(HERE), "--child", "--base-url", base_url]
    command += ["--redis-url", redis_url, "--backend", args.backend]
    command += ["--workers", str(args.workers), "--iterations", args.iterations]
    command += ["--pool-size", str(args.pool_size)]
    env = {**os.environ, "PYTHONPATH": str(Path(src).resolve())}
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    row = json.loads(done.stdout.strip().splitlines()[-1])
    if not row["source"].startswith(str(Path(src).resolve())):
        raise RuntimeError(f"the child imported {row['source']}, not the tree {src}")
    return float(row["per_turn"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--src", action="append", help="a source tree (repeat); default: src")
    parser.add_argument("--backend", default="assistants", help="assistants or conversations")
    parser.add_argument("--workers", type=int, default=32)
    parser.add_argument("--pool-size", type=int, default=16)
    parser.add_argument("--latency", type=float, default=0.25, help="seconds per run")
    parser.add_argument("--iterations", default="2,10", help="turns per worker: short,long")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--redis-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    from thread_pool.testing.redis_server import RedisServer

    sources = args.src or [str(HERE.parent.parent / "src")]
    command = [sys.executable, "-m", "thread_pool.emulator", "--port", "0"]
    command += ["--latency", str(args.latency), "--poll-after-ms", "25"]
    emulator = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    samples: dict[str, list[float]] = {src: [] for src in sources}
    try:
        assert emulator.stdout is not None
        line = emulator.stdout.readline()
        if "base_url=" not in line:
            raise RuntimeError(f"the emulator did not start: {line!r}")
        base_url = line.strip().split("base_url=")[1].split()[0]
        with RedisServer() as redis:  # a private one: its keys go with it
            for _ in range(args.rounds):
                for src in sources:
                    samples[src].append(measure(src, args, base_url, redis.url))
    finally:
        emulator.terminate()
        emulator.wait(10)
    load = os.getloadavg()
    print(
        f"{args.backend}, {args.workers} worker threads, pool of {args.pool_size}, runs of "
        f"{args.latency:g} s, {args.rounds} rounds; load average at the end "
        f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} on {os.cpu_count()} cores"
    )
    first = statistics.median(samples[sources[0]])
    for src, values in samples.items():
        median = statistics.median(values)
        each = ", ".join(f"{v * 1000:.1f}" for v in values)
        print(f"{src}: {median * 1000:.1f} ms/turn (each: {each}); ÷ first {median / first:.2f}")


if __name__ == "__main__":
    main()
