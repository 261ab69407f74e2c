"""The whole stress test: an upstream (the emulator, unless one is given), the strategies run one
after another, the keys and threads they made cleaned up, one summary row each."""

from __future__ import annotations

import contextlib
import uuid
import warnings
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from typing import Any

import openai

from thread_pool._store.clients import connect
from thread_pool._store.keys import PoolKeys, registry_key
from thread_pool.settings import Settings
from thread_pool.testing.stress.results import StressResult, summarise
from thread_pool.testing.stress.workers import (
    BackendName,
    Strategy,
    Target,
    backend_of,
    client_of,
    run_workers,
)


@dataclass(frozen=True)
class StressOptions:
    """What ``thread-pool stress`` runs; without ``base_url`` an embedded emulator serves it."""

    workers: int = 5
    iterations: int = 10
    strategies: tuple[Strategy, ...] = ("naive", "lock", "pool")
    run_latency: str = "0.3-0.8"  # the emulator's seconds per run: fixed ("0.5") or a range
    processes: bool = False
    backend: BackendName = "assistants"
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)  # reprs show no secret
    model: str = "gpt-4o-mini"
    pool_size: int = 16
    poll_after_ms: int | None = None  # the emulator's poll hint; None: a twentieth of a run
    seed: int = 1
    # Grow the pool to ``pool_size`` before the pool's turns are timed, as ``thread-pool
    # prewarm`` does: the steady state of a pool in use, as the lock's thread is made untimed.
    prewarm: bool = False


def mean_latency(spec: str) -> float:
    """The mean of a latency given as ``"0.5"`` or ``"0.3-0.8"``; ``ValueError`` if malformed."""
    low, _, high = spec.partition("-")
    first, last = float(low), float(high or low)
    if first < 0 or last < first:
        raise ValueError(f"bad latency {spec!r}")
    return (first + last) / 2


@contextmanager
def _upstream(options: StressOptions) -> Iterator[tuple[str, str]]:
    """The base URL and key to use: the given endpoint, or an emulator started for the test."""
    if options.base_url is not None:
        yield options.base_url, options.api_key or ""
        return
    from thread_pool.emulator import start_emulator

    # Polling at a twentieth of a run keeps the polling granularity (half a poll per turn, on
    # average) small next to the run itself, for every strategy alike.
    poll = options.poll_after_ms
    if poll is None:
        poll = max(5, round(mean_latency(options.run_latency) * 1000 / 20))
    with start_emulator(
        latency=options.run_latency, seed=options.seed, poll_after_ms=poll
    ) as server:
        yield server.base_url, server.api_key


def _drop_keys(target: Target) -> None:
    """Delete this run's own keys: its pool's and its lock's (they share the pool's hash tag),
    and its pool's entry in the registry. The prefix is the application's: never anything
    else. A cluster client scans every master."""
    with connect(target.redis_url, cluster=target.redis_cluster) as client:
        base = PoolKeys.of(target.prefix, target.pool_key).base
        names = list(client.scan_iter(match=f"{base}*", count=1000))
        if names:
            client.delete(*names)
        client.srem(registry_key(target.prefix), target.pool_key)


def _redis_settings(target: Target) -> dict[str, Any]:
    """The settings of the pool and admin objects that look at the run's pool afterwards."""
    return {
        "redis_url": target.redis_url,
        "redis_cluster": target.redis_cluster,
        "key_prefix": target.prefix,
    }


def _pool_lock_errors(target: Target) -> int:
    """Busy-thread refusals the pool met and absorbed (it retries them), from its counters."""
    from thread_pool import ThreadPool

    with ThreadPool(**_redis_settings(target)) as pool:
        return pool.stats(target.pool_key).lock_errors


def _prewarm(client: openai.OpenAI, target: Target) -> None:
    """Grow the run's pool to ``pool_size`` threads (a few creations at once), untimed."""
    from concurrent.futures import ThreadPoolExecutor

    from thread_pool.admin import PoolAdmin

    backend = backend_of(client, target)
    with PoolAdmin(**_redis_settings(target), max_size=target.pool_size) as admin:

        def grow() -> None:
            while admin.grow_one(target.pool_key, target.pool_size, backend).outcome == "grown":
                pass

        with ThreadPoolExecutor(max_workers=4) as creators:
            for done in [creators.submit(grow) for _ in range(4)]:
                done.result()


def _delete_upstream(client: openai.OpenAI, target: Target, strategy: Strategy) -> None:
    """Delete the threads (conversations) this strategy created upstream: on a real endpoint
    they would otherwise stay. A failed delete is left for upstream's own expiry."""
    from thread_pool.admin import PoolAdmin

    backend = backend_of(client, target)
    with contextlib.suppress(openai.APIError):
        if strategy != "pool":
            backend.delete_thread(target.shared_thread)
            return
        with PoolAdmin(**_redis_settings(target)) as admin:
            admin.delete(target.pool_key, backend, force=True)


def _run_one(strategy: Strategy, base: Target, options: StressOptions) -> StressResult:
    client = client_of(base)
    try:
        shared = ""
        if strategy != "pool":
            # A fresh thread per strategy: runs one strategy left behind must not hit the next.
            if base.backend == "assistants":
                shared = client.beta.threads.create().id
            else:
                shared = client.conversations.create().id
        target = Target(**{**asdict(base), "shared_thread": shared})
        if strategy == "pool" and options.prewarm:
            _prewarm(client, target)
        samples = run_workers(
            strategy, target, options.workers, options.iterations, options.processes
        )
        extra = _pool_lock_errors(target) if strategy == "pool" else 0
        _delete_upstream(client, target, strategy)
        return summarise(strategy, samples, extra)
    finally:
        client.close()


def run_stress(options: StressOptions, redis_url: str | None = None) -> list[StressResult]:
    """Run ``options.strategies`` one after another and return one row each. Redis is
    ``redis_url``, else what :func:`thread_pool.testing.redis_server.local_redis` finds or
    starts; every key written is deleted at the end."""
    from thread_pool.testing.redis_server import local_redis

    warnings.filterwarnings("ignore", category=DeprecationWarning)
    found: AbstractContextManager[str] = (
        nullcontext(redis_url) if redis_url is not None else local_redis()
    )
    settings = Settings.load()
    with found as url, _upstream(options) as (base_url, api_key):
        base = Target(
            base_url=base_url,
            api_key=api_key,
            backend=options.backend,
            model=options.model,
            redis_url=url,
            # Under the application's prefix (an ACL may allow no other), in a pool of its own.
            prefix=settings.key_prefix,
            pool_key=f"stress-{uuid.uuid4().hex[:10]}",
            pool_size=options.pool_size,
            redis_cluster=settings.redis_cluster,
        )
        try:
            if options.backend == "assistants":
                with client_of(base) as client:
                    assistant = client.beta.assistants.create(model=options.model, name="stress")
                base = Target(**{**asdict(base), "assistant_id": assistant.id})
            return [_run_one(strategy, base, options) for strategy in options.strategies]
        finally:
            if base.assistant_id:
                with client_of(base) as client, contextlib.suppress(openai.APIError):
                    client.beta.assistants.delete(base.assistant_id)
            _drop_keys(base)
