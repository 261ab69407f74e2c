"""The demo: the measured contention, then the same work through a thread_pool.

Five workers, ten iterations each, all serving one document. Each iteration adds a message to a
conversation thread and runs the assistant on it (Assistants API, through the official SDK,
against the local emulator, which enforces the upstream's one-active-run rule).

1. naive: every worker uses the document's one shared thread -> most iterations fail with
   "Thread ... already has an active run".
2. thread_pool: every worker runs its turn with ``pool.run("doc-42", message)``: the pool leases it
   a thread of the document's pool (Redis leases; the pool grows to 5 upstream threads on demand)
   and starts the run in one request -> every iteration succeeds, with no lock error.

    python examples/demo.py [--workers 5] [--iterations 10] [--latency 0.3-0.8]

Redis: $THREAD_POOL_REDIS_URL, else 127.0.0.1:6379, else a private redis-server it starts.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
import uuid
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import openai
import redis

from thread_pool import AssistantsBackend, ThreadPool
from thread_pool.emulator import start_emulator
from thread_pool.redis_server import local_redis

# The demo speaks the Assistants API on purpose (it is where the contention was measured); the
# SDK's deprecation warning for it is noise here.
warnings.filterwarnings("ignore", category=DeprecationWarning)


@dataclass
class Outcome:
    """What one strategy's workers saw."""

    name: str
    succeeded: int = 0
    failed: int = 0
    lock_errors: int = 0
    latencies: list[float] = field(default_factory=list)
    wall: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, ok: bool, seconds: float, lock_error: bool) -> None:
        with self.lock:
            if ok:
                self.succeeded += 1
                self.latencies.append(seconds)
            else:
                self.failed += 1
            self.lock_errors += int(lock_error)


def one_turn(client: openai.OpenAI, thread_id: str, assistant_id: str, text: str) -> None:
    """Add a message and run the assistant on it until the run ends (the original code path)."""
    client.beta.threads.messages.create(thread_id, role="user", content=text)
    run = client.beta.threads.runs.create_and_poll(thread_id=thread_id, assistant_id=assistant_id)
    if run.status != "completed":
        raise RuntimeError(f"run ended {run.status}")


def attempt(outcome: Outcome, turn: Callable[[], object]) -> None:
    """Run one iteration and record how it went."""
    start = time.perf_counter()
    try:
        turn()
    except openai.BadRequestError as error:
        # The two lock errors: "... already has an active run ..." (new run) and "Can't add
        # messages to ... while a run ... is active." (new message).
        outcome.record(False, 0, "active" in str(error))
    except Exception as error:
        print("unexpected:", type(error).__name__, error)
        outcome.record(False, 0, False)
    else:
        outcome.record(True, time.perf_counter() - start, False)


def drop_keys(redis_url: str, prefix: str) -> None:
    """Delete the demo's own keys (the Redis may be shared: never anything else)."""
    with redis.Redis.from_url(redis_url) as client:
        names = list(client.scan_iter(match=f"{prefix}:*"))
        if names:
            client.delete(*names)


def run_strategy(outcome: Outcome, workers: int, iterations: int, body: Callable[[], None]) -> None:
    """``workers`` threads, each calling ``body`` ``iterations`` times, timed."""
    start = time.perf_counter()

    def worker() -> None:
        for _ in range(iterations):
            body()

    with ThreadPoolExecutor(max_workers=workers) as executor:
        for _ in range(workers):
            executor.submit(worker)
    outcome.wall = time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--latency", default="0.3-0.8", help="emulated run time, s (or a range)")
    args = parser.parse_args()

    with local_redis() as redis_url, start_emulator(latency=args.latency, seed=1) as emulator:
        client = openai.OpenAI(base_url=emulator.base_url, api_key=emulator.api_key, max_retries=0)
        assistant = client.beta.assistants.create(model="gpt-4o-mini", name="demo")
        print(f"emulator at {emulator.base_url}; Redis at {redis_url}")
        print(f"{args.workers} workers x {args.iterations} iterations on one document\n")

        naive = Outcome("naive (one shared thread)")
        shared = client.beta.threads.create().id
        run_strategy(
            naive,
            args.workers,
            args.iterations,
            lambda: attempt(naive, lambda: one_turn(client, shared, assistant.id, "hello")),
        )

        pooled = Outcome("thread_pool (pool.run)")
        prefix = f"demo-{uuid.uuid4().hex[:8]}"
        with ThreadPool(
            redis_url=redis_url,
            key_prefix=prefix,
            max_size=args.workers,
            backend=AssistantsBackend(client, assistant_id=assistant.id),
        ) as pool:
            run_strategy(
                pooled,
                args.workers,
                args.iterations,
                lambda: attempt(pooled, lambda: pool.run("doc-42", "hello")),
            )
            stats = pool.stats("doc-42")
            drop_keys(redis_url, prefix)

        header = f"{'strategy':30} {'ok':>4} {'failed':>6} {'lock errors':>11} {'wall s':>7}"
        print(header + f" {'p50 turn s':>10}")
        for o in (naive, pooled):
            p50 = f"{statistics.median(o.latencies):.2f}" if o.latencies else "-"
            print(
                f"{o.name:30} {o.succeeded:>4} {o.failed:>6} {o.lock_errors:>11} "
                f"{o.wall:>7.1f} {p50:>10}"
            )
        upstream = emulator.admin.stats()
        print(
            f"\npool 'doc-42': {stats.threads} upstream threads, {stats.granted} leases granted, "
            f"{stats.idle} idle at the end"
        )
        print(
            f"emulator: {upstream['lock_errors']['total']} lock errors returned in all, "
            f"peak active runs on one thread: {upstream['peak_active_per_owner']}"
        )


if __name__ == "__main__":
    main()
