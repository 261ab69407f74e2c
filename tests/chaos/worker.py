"""A chaos worker process: many asyncio tasks running turns through one pool object until the run
has completed enough turns, recording evidence for the checker as they go.

Evidence goes to a Redis server of its own (never the pool's, which the driver restarts), through
a blocking client: a record is written the moment it is known and no cancellation can cut it in
half. Some turns are cancelled at a random moment (while waiting for a thread, while running, or
while releasing), as an impatient caller would.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import sys
import time
from dataclasses import dataclass
from typing import Any

import openai
import redis

from tests.support.evidence import Done, End, Grant
from tests.support.upstream import backend
from tests.support.workers import check_key
from thread_pool import (
    AsyncBackend,
    AsyncThreadPool,
    RetryPolicy,
    StoreUnavailable,
    ThreadPoolError,
)


@dataclass(frozen=True)
class WorkerConfig:
    """What a worker needs; picklable, so it crosses into a spawned process."""

    name: str
    backend: str  # "assistants" | "conversations"
    keys: tuple[str, ...]
    base_url: str
    assistant_id: str
    store_url: str
    cluster: bool
    evidence_url: str
    prefix: str
    tasks: int
    target: int
    max_size: int
    lease_ttl: float
    renew_margin: float
    cancel_rate: float
    settle_timeout: float
    reclaim_delay: float
    seed: int


# What workers record on the evidence server (see ``check_key``).
RECORDS = "records"  # the list of G/E/D records
DONE = "done"  # how many turns completed, over all workers
OUTCOMES = "outcomes"  # a hash of turn outcomes by kind (``ok``, ``cancelled``, error type names)


def _backend(config: WorkerConfig) -> AsyncBackend:
    client = openai.AsyncOpenAI(base_url=config.base_url, api_key="unused", max_retries=0)
    options: dict[str, Any] = {
        "retry": RetryPolicy(attempts=8, deadline=20, base_delay=0.02, max_delay=0.5),
        "settle_wait": 0.2,
        "settle_timeout": 10,
        "turn_timeout": 3.0,  # a stuck background response never ends by itself
    }
    if config.backend == "assistants":
        return backend("assistants", client, config.assistant_id, poll_interval=0.02, **options)
    return backend("background", client, **options)


class _Task:
    """One caller: turn after turn, each on a random pool of the worker's."""

    def __init__(
        self, config: WorkerConfig, pool: AsyncThreadPool, log: redis.Redis, n: int
    ) -> None:
        self.config = config
        self.pool = pool
        self.log = log
        self.holder = f"{config.name}/{os.getpid()}/{n}"
        self.rng = random.Random(f"{config.seed}/{n}")
        self.turns = 0

    def record(self, line: str) -> None:
        self.log.rpush(check_key(self.config.prefix, RECORDS), line)

    async def loop(self) -> None:
        done = check_key(self.config.prefix, DONE)
        while int(self.log.get(done) or 0) < self.config.target:
            self.turns += 1
            label = f"{self.holder}/{self.turns}"
            key = self.rng.choice(self.config.keys)
            outcome = await self.one(key, label)
            self.log.hincrby(check_key(self.config.prefix, OUTCOMES), outcome, 1)
            if outcome == StoreUnavailable.__name__:
                await asyncio.sleep(0.2)  # Redis is away: do not spin

    async def one(self, key: str, label: str) -> str:
        turn = asyncio.create_task(self.turn(key, label))
        if self.rng.random() >= self.config.cancel_rate:
            return await turn
        # An impatient caller: cancel at a random moment of the turn, wherever it is.
        await asyncio.wait({turn}, timeout=self.rng.uniform(0, 0.2))
        if turn.done():
            return turn.result()
        turn.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await turn
        return "cancelled"

    async def turn(self, key: str, label: str) -> str:
        ttl_ms = round(self.config.lease_ttl * 1000)
        try:
            async with self.pool.lease(key) as lease:
                thread, fence = lease.thread_id, lease.fence
                # The grant's moment by the Redis clock: its deadline less the TTL it was given.
                self.record(
                    Grant(thread, fence, round(lease.deadline * 1000) - ttl_ms, label).encode()
                )
                outcome = "running"
                try:
                    turn = await lease.run(label)
                    if turn.thread_id != thread or turn.fence != fence:
                        raise AssertionError(f"turn {label} ran on {turn.thread_id}/{turn.fence}")
                    outcome = "ok"
                except BaseException as exc:
                    outcome = type(exc).__name__
                    raise
                finally:
                    now = int(time.time() * 1000)  # floor, as Redis TIME in ms is
                    end = End(thread, fence, now, round(lease.deadline * 1000), outcome)
                    self.record(end.encode())
            self.record(Done(label, thread, fence).encode())
            self.log.incr(check_key(self.config.prefix, DONE))
            return "ok"
        except ThreadPoolError as exc:
            return type(exc).__name__


# The pool settings of the run: a worker's pools and the driver's (pre-warm, final reap) share
# them, since a pool takes its sizes and lease TTL from whoever creates it.
POOL_SETTINGS = ("max_size", "lease_ttl", "renew_margin", "settle_timeout", "reclaim_delay")


def pool_settings(config: Any) -> dict[str, Any]:
    """The run's pool settings, read from a ``WorkerConfig`` or the driver's ``ChaosConfig``."""
    return {name: getattr(config, name) for name in POOL_SETTINGS}


def _dump_tasks() -> None:
    """Each task's whole await chain (``print_stack`` shows only a task's outermost frame)."""
    for task in asyncio.all_tasks():
        print(f"--- {task.get_name()} ({os.getpid()})", file=sys.stderr)
        awaited: Any = task.get_coro()
        while awaited is not None:
            frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
            if frame is not None:
                print(f"    {frame.f_code.co_filename}:{frame.f_lineno}", file=sys.stderr)
            awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
    sys.stderr.flush()


def main(config: WorkerConfig) -> None:
    """The process: ``config.tasks`` tasks over one pool object until the run is done."""
    log = redis.Redis.from_url(config.evidence_url, decode_responses=True)

    async def run() -> None:
        # A worker that does not finish is asked (SIGUSR1) where each of its tasks is waiting.
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, _dump_tasks)
        async with AsyncThreadPool(
            backend=_backend(config),
            redis_url=config.store_url,
            redis_cluster=config.cluster,
            key_prefix=config.prefix,
            **pool_settings(config),
            acquire_timeout=60,
        ) as pool:
            tasks = [_Task(config, pool, log, n) for n in range(config.tasks)]
            await asyncio.gather(*(t.loop() for t in tasks))

    asyncio.run(run())
