"""The measured failure, reproduced: 5 workers x 10 iterations, no delays, one shared thread.

Each iteration does what the original PHP worker did: add a message to the shared thread, create
a run (each step with a small retry-on-error loop), then wait for the run to finish. The upstream
allows one active run per thread, so the workers trip over each other: most iterations fail, and
the lock errors pile up. Runs against the emulator started in-process (no key, no network).

    .venv/bin/python examples/naive_shared_thread.py [--workers 5] [--iterations 10]
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import TypeVar

import openai

from thread_pool.emulator import start_emulator

# The scenario speaks the Assistants API on purpose; its deprecation warning is noise here.
warnings.filterwarnings("ignore", category=DeprecationWarning)

T = TypeVar("T")


@dataclass
class Tally:
    """What the workers saw (client side), guarded by a lock."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    successes: int = 0
    failures: int = 0
    lock_errors: int = 0
    other_errors: int = 0

    def add(self, **counts: int) -> None:
        with self.lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)


def with_retries(attempts: int, pause: float, tally: Tally, call: Callable[[], T]) -> T | None:
    """Call ``call`` up to ``attempts`` times, pausing a little after each error; ``None`` if
    every attempt failed (the PHP worker's loop, minus its unbounded waits)."""
    for attempt in range(attempts):
        try:
            return call()
        except openai.BadRequestError as error:
            if "active" in error.message:
                tally.add(lock_errors=1)
            else:
                tally.add(other_errors=1)
        except openai.APIError:
            tally.add(other_errors=1)
        if attempt + 1 < attempts:
            time.sleep(pause * (attempt + 1))
    return None


def worker(
    client: openai.OpenAI,
    assistant_id: str,
    thread_id: str,
    number: int,
    args: argparse.Namespace,
    tally: Tally,
) -> None:
    """One worker's iterations, back to back."""
    for iteration in range(args.iterations):
        content = f"worker {number}, iteration {iteration}"
        added = with_retries(
            args.attempts,
            args.retry_pause,
            tally,
            partial(client.beta.threads.messages.create, thread_id, role="user", content=content),
        )
        run = None
        if added is not None:
            run = with_retries(
                args.attempts,
                args.retry_pause,
                tally,
                partial(client.beta.threads.runs.create, thread_id, assistant_id=assistant_id),
            )
        if run is None:
            tally.add(failures=1)
            continue
        done = client.beta.threads.runs.poll(run.id, thread_id=thread_id)
        tally.add(**({"successes": 1} if done.status == "completed" else {"failures": 1}))


def main() -> None:
    """Run the scenario and print what happened."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--workers", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--latency", default="0.3-0.8", help="emulated run time, seconds")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--attempts", type=int, default=3, help="tries per step")
    parser.add_argument("--retry-pause", type=float, default=0.05, help="seconds, grows linearly")
    parser.add_argument("--json", action="store_true", help="print one JSON line instead")
    args = parser.parse_args()

    tally = Tally()
    started = time.monotonic()
    with start_emulator(latency=args.latency, seed=args.seed) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key=server.api_key, max_retries=0)
        assistant = client.beta.assistants.create(model="gpt-4o", name="naive")
        thread = client.beta.threads.create()
        with ThreadPoolExecutor(args.workers) as pool:
            for number in range(1, args.workers + 1):
                pool.submit(worker, client, assistant.id, thread.id, number, args, tally)
        stats = server.admin.stats()
        peak = server.admin.peaks().get(thread.id, 0)
        client.close()
    total = args.workers * args.iterations
    result = {
        "requests": total,
        "successes": tally.successes,
        "failures": tally.failures,
        "lock_errors": tally.lock_errors,
        "other_errors": tally.other_errors,
        "server_lock_errors": stats["lock_errors"],
        "http_calls": stats["requests_total"],
        "peak_active_runs_on_thread": peak,
        "seconds": round(time.monotonic() - started, 2),
    }
    if args.json:
        print(json.dumps(result))
        return
    print(
        f"naive shared thread: {args.workers} workers x {args.iterations} iterations, "
        f"no delays, latency {args.latency} s"
    )
    print(f"requests:     {total}")
    print(f"successes:    {tally.successes} ({100 * tally.successes // total}%)")
    print(f"failures:     {tally.failures} ({100 * tally.failures // total}%)")
    locks = stats["lock_errors"]
    print(
        f"lock errors:  {tally.lock_errors} "
        f"(runs refused: {locks['run']}, messages refused: {locks['message']})"
    )
    print(f"http calls:   {stats['requests_total']} in {result['seconds']} s")
    print(f"peak active runs on the thread (emulator): {peak}")


if __name__ == "__main__":
    main()
