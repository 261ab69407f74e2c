"""The measured scenario again, through the pool: 5 worker processes x 10 iterations, no
delays, one key. Each worker runs its turns with ``pool.run(key, message)``; the pool leases
each turn its own thread of the key's pool, so no two runs ever meet on one thread.

Compare with ``examples/naive_shared_thread.py`` (same emulator settings): there most
iterations fail on lock errors; here all succeed and the emulator returns none.

    .venv/bin/python examples/pool_turns.py [--workers 5] [--iterations 10] [--backend assistants]

Needs the Redis of ``THREAD_POOL_REDIS_URL`` (default 127.0.0.1:6379); its keys are deleted
afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import time
import uuid
import warnings

import openai

from thread_pool import (
    PoolAdmin,
    ThreadPool,
    ThreadPoolError,
    UnknownPool,
    build_backend,
)
from thread_pool.emulator import start_emulator

# Creating the assistant below speaks the Assistants API on purpose.
warnings.filterwarnings("ignore", category=DeprecationWarning)


def worker(base_url: str, kind: str, assistant_id: str, prefix: str, iterations: int) -> int:
    """One process: ``iterations`` turns on key "doc-42", back to back; returns successes."""
    client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0)
    options = {"assistant_id": assistant_id} if kind == "assistants" else {"model": "emulated"}
    backend = build_backend(kind, client, **options)
    ok = 0
    with ThreadPool(backend=backend, key_prefix=prefix) as pool:
        for i in range(iterations):
            try:
                pool.run("doc-42", f"iteration {i}")
                ok += 1
            except ThreadPoolError as exc:
                print(f"turn failed: {exc}")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--latency", default="0.3-0.8", help="emulated run time, seconds")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--backend", choices=["assistants", "conversations"], default="assistants")
    args = parser.parse_args()
    prefix = f"example-{uuid.uuid4().hex[:8]}"
    server = start_emulator(latency=args.latency, seed=args.seed)
    try:
        with openai.OpenAI(base_url=server.base_url, api_key="unused") as client:
            assistant_id = client.beta.assistants.create(model="emulated").id
        started = time.monotonic()
        jobs = [
            (server.base_url, args.backend, assistant_id, prefix, args.iterations)
        ] * args.workers
        with multiprocessing.get_context("spawn").Pool(args.workers) as procs:
            succeeded = sum(procs.starmap(worker, jobs))
        elapsed = time.monotonic() - started
        stats = server.admin.stats()
        with ThreadPool(key_prefix=prefix) as pool:
            threads = pool.stats("doc-42").threads
    finally:
        server.stop()
        with PoolAdmin(key_prefix=prefix) as admin, contextlib.suppress(UnknownPool):
            admin.delete("doc-42", force=True)  # its keys; the emulator's threads went with it
    total = args.workers * args.iterations
    print(f"{args.workers} workers x {args.iterations} iterations, one key, {args.backend}:")
    print(f"  succeeded {succeeded}/{total}, failed {total - succeeded}")
    print(f"  lock errors returned by the emulator: {stats['lock_errors']['total']}")
    print(f"  most active runs ever on one thread: {stats['peak_active_per_owner']}")
    print(f"  threads in the pool: {threads}; {elapsed:.1f} s")


if __name__ == "__main__":
    main()
