"""The stress test: many workers serving one document, three ways, measured side by side.

- ``naive``: the original code path. Each worker adds its message to the document's one shared
  thread, then creates a run (each step in a small retry-on-error loop), then waits for the run.
  The upstream allows one active run per thread, so the workers trip over each other.
- ``lock``: the usual fix. The same two writes, under a redis-py ``Lock`` named after the thread:
  nothing is lost, but the document's turns run one at a time.
- ``pool``: thread_pool. ``pool.run(key, message)`` leases each turn its own thread of the key's
  pool, so up to ``pool_size`` turns run at once and no two meet on a thread.

Workers are threads, or processes (``processes=True``); each builds its own clients, as separate
processes of an application would. Every strategy reports one :class:`StressResult`.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import statistics
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any, Literal, TypeVar

import openai
import redis
from openai.types.responses import EasyInputMessageParam

from thread_pool._store.clients import connect
from thread_pool.settings import Settings

STRATEGIES = ("naive", "lock", "pool")
BACKENDS = ("assistants", "conversations")
POOL_KEY = "doc-42"
# The original worker's loop: a few tries per step, pausing a little longer after each error.
NAIVE_ATTEMPTS = 3
NAIVE_PAUSE = 0.05
# Long enough that a lock never expires under a turn, or a waiter never gives up, in this test.
LOCK_TTL = 120.0
WAIT_LIMIT = 900.0
START_TIMEOUT = 120.0  # for every worker to build its clients (64 spawned processes: ~30 s)

Strategy = Literal["naive", "lock", "pool"]
BackendName = Literal["assistants", "conversations"]
T = TypeVar("T")


@dataclass(frozen=True)
class Target:
    """Where the workers send their turns: all a worker (thread or process) needs, picklable."""

    base_url: str
    api_key: str
    backend: BackendName
    model: str
    redis_url: str
    prefix: str
    pool_size: int
    assistant_id: str = ""
    shared_thread: str = ""  # the naive and lock strategies' one thread (or conversation)
    redis_cluster: bool = False  # redis_url is a node of a cluster (setting redis_cluster)


@dataclass(frozen=True)
class Sample:
    """One turn as its worker saw it."""

    ok: bool
    started: float  # time.time(): comparable across processes
    ended: float
    seconds: float
    lock_errors: int


@dataclass(frozen=True)
class StressResult:
    """One strategy's row; ``as_dict`` has exactly the keys of ``thread-pool stress --json``."""

    strategy: str
    requests: int
    succeeded: int
    failed: int
    lock_errors: int
    wall_s: float
    turns_per_s: float
    p50_s: float
    p95_s: float

    def as_dict(self) -> dict[str, object]:
        """The row as JSON-ready data."""
        return asdict(self)


def is_lock_error(error: openai.APIError) -> bool:
    """Whether upstream refused a write because another run (response) holds the thread:
    "... already has an active run ...", "Can't add messages to ... while a run ... is active.",
    or a locked conversation."""
    if not isinstance(error, openai.BadRequestError):
        return False
    return "active" in error.message or getattr(error, "code", None) == "conversation_locked"


def _client(target: Target) -> openai.OpenAI:
    # The strategies do their own retrying (or none); the SDK's hidden retries would blur that.
    return openai.OpenAI(base_url=target.base_url, api_key=target.api_key, max_retries=0)


# -- naive --------------------------------------------------------------------------------------


def _with_retries(call: Callable[[], T], errors: list[int]) -> T | None:
    """The PHP worker's loop: up to ``NAIVE_ATTEMPTS`` tries; ``None`` if all failed. Every lock
    error counts, as the original log counted them."""
    for attempt in range(NAIVE_ATTEMPTS):
        try:
            return call()
        except openai.APIError as error:
            errors[0] += int(is_lock_error(error))
        if attempt + 1 < NAIVE_ATTEMPTS:
            time.sleep(NAIVE_PAUSE * (attempt + 1))
    return None


def _naive_turn(client: openai.OpenAI, target: Target, text: str, errors: list[int]) -> bool:
    thread = target.shared_thread
    if target.backend == "assistants":
        beta = client.beta.threads
        added = _with_retries(
            lambda: beta.messages.create(thread, role="user", content=text), errors
        )
        if added is None:
            return False
        run = _with_retries(
            lambda: beta.runs.create(thread, assistant_id=target.assistant_id), errors
        )
        if run is None:
            return False
        return beta.runs.poll(run.id, thread_id=thread).status == "completed"
    item: EasyInputMessageParam = {"type": "message", "role": "user", "content": text}
    stored = _with_retries(lambda: client.conversations.items.create(thread, items=[item]), errors)
    if stored is None:
        return False
    response = _with_retries(
        lambda: client.responses.create(model=target.model, conversation=thread), errors
    )
    return response is not None and response.status == "completed"


# -- lock ---------------------------------------------------------------------------------------


def _plain_turn(client: openai.OpenAI, target: Target, text: str) -> bool:
    """Add the message and run the assistant on it until the run ends; errors propagate."""
    thread = target.shared_thread
    if target.backend == "assistants":
        beta = client.beta.threads
        beta.messages.create(thread, role="user", content=text)
        run = beta.runs.create_and_poll(thread_id=thread, assistant_id=target.assistant_id)
        return run.status == "completed"
    item: EasyInputMessageParam = {"type": "message", "role": "user", "content": text}
    client.conversations.items.create(thread, items=[item])
    return client.responses.create(model=target.model, conversation=thread).status == "completed"


def _locked_turn(
    client: openai.OpenAI, store: redis.Redis, target: Target, text: str, errors: list[int]
) -> bool:
    # redis-py's Lock as people use it: SET NX PX with a token, retried every 0.1 s (its default).
    lock = store.lock(
        f"{target.prefix}:lock:{target.shared_thread}",
        timeout=LOCK_TTL,
        blocking_timeout=WAIT_LIMIT,
    )
    if not lock.acquire():
        return False
    try:
        return _plain_turn(client, target, text)
    except openai.APIError as error:
        errors[0] += int(is_lock_error(error))
        return False
    finally:
        lock.release()


# -- workers ------------------------------------------------------------------------------------


def _timed(turn: Callable[[list[int]], bool]) -> Sample:
    errors = [0]
    started, begun = time.time(), time.perf_counter()
    try:
        ok = turn(errors)
    except (openai.APIError, redis.RedisError):
        ok = False
    return Sample(ok, started, time.time(), time.perf_counter() - begun, errors[0])


def _start(barrier: threading.Barrier | None) -> None:
    """Wait until every worker has built its clients, so that set-up (slow with ``spawn``) is
    not timed and no worker starts its turns seconds before the others."""
    if barrier is None:
        return
    # A worker that failed to start breaks the barrier: the others go on without it.
    with contextlib.suppress(threading.BrokenBarrierError):
        barrier.wait(START_TIMEOUT)


def run_worker(
    strategy: Strategy,
    target: Target,
    number: int,
    iterations: int,
    barrier: threading.Barrier | None = None,
) -> list[Sample]:
    """One worker's ``iterations`` turns, back to back (a top-level function: processes run it)."""
    # The Assistants API is deprecated upstream; this test speaks it on purpose.
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    texts = [f"worker {number}, iteration {i}" for i in range(iterations)]
    with _client(target) as client:
        # The SDK imports its resources on first use (a second, under spawn): not a turn's time.
        _ = client.beta.threads.runs, client.conversations.items, client.responses
        if strategy == "naive":
            _start(barrier)
            return [_timed(partial(_naive_turn, client, target, t)) for t in texts]
        if strategy == "lock":
            with connect(target.redis_url, cluster=target.redis_cluster) as store:
                store.ping()
                _start(barrier)
                return [_timed(partial(_locked_turn, client, store, target, t)) for t in texts]
        return _pool_worker(client, target, texts, barrier)


def _pool_worker(
    client: openai.OpenAI, target: Target, texts: list[str], barrier: threading.Barrier | None
) -> list[Sample]:
    from thread_pool import AssistantsBackend, Backend, ConversationsBackend, ThreadPool
    from thread_pool.errors import ThreadPoolError

    backend: Backend = (
        AssistantsBackend(client, assistant_id=target.assistant_id)
        if target.backend == "assistants"
        else ConversationsBackend(client, model=target.model)
    )

    def turn(text: str, errors: list[int]) -> bool:
        try:
            return pool.run(POOL_KEY, text).status == "completed"
        except ThreadPoolError as error:
            errors[0] += int(
                isinstance(error.__cause__, openai.APIError) and is_lock_error(error.__cause__)
            )
            return False

    with ThreadPool(
        backend=backend,
        redis_url=target.redis_url,
        redis_cluster=target.redis_cluster,
        key_prefix=target.prefix,
        max_size=target.pool_size,
        acquire_timeout=WAIT_LIMIT,
    ) as pool:
        _start(barrier)
        return [_timed(partial(turn, t)) for t in texts]


def run_workers(
    strategy: Strategy, target: Target, workers: int, iterations: int, processes: bool
) -> list[Sample]:
    """``workers`` workers (threads, or processes) each running ``iterations`` turns."""
    if processes:
        # spawn: a fresh interpreter per worker, as separate application processes would be.
        context = multiprocessing.get_context("spawn")
        with context.Manager() as manager, context.Pool(workers) as procs:
            barrier = manager.Barrier(workers)
            jobs = [(strategy, target, n, iterations, barrier) for n in range(1, workers + 1)]
            batches = procs.starmap(run_worker, jobs)
    else:
        local = threading.Barrier(workers)
        with ThreadPoolExecutor(max_workers=workers) as threads:
            batches = list(
                threads.map(
                    lambda n: run_worker(strategy, target, n, iterations, local),
                    range(1, workers + 1),
                )
            )
    return [sample for batch in batches for sample in batch]


# -- results ------------------------------------------------------------------------------------


def _percentile(values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, round(share * len(ordered) + 0.5 - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


def summarise(strategy: str, samples: Sequence[Sample], extra_lock_errors: int = 0) -> StressResult:
    """The row of ``strategy``: wall time runs from the first turn's start to the last turn's
    end (worker start-up, which ``spawn`` makes slow, is not counted); latencies are those of the
    turns that succeeded."""
    succeeded = [s.seconds for s in samples if s.ok]
    wall = max((s.ended for s in samples), default=0.0) - min(
        (s.started for s in samples), default=0.0
    )
    return StressResult(
        strategy=strategy,
        requests=len(samples),
        succeeded=len(succeeded),
        failed=len(samples) - len(succeeded),
        lock_errors=sum(s.lock_errors for s in samples) + extra_lock_errors,
        wall_s=round(wall, 3),
        turns_per_s=round(len(succeeded) / wall, 3) if wall > 0 else 0.0,
        p50_s=round(statistics.median(succeeded), 3) if succeeded else 0.0,
        p95_s=round(_percentile(succeeded, 0.95), 3),
    )


# -- the whole test -----------------------------------------------------------------------------


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
    api_key: str | None = None
    model: str = "gpt-4o-mini"
    pool_size: int = 16
    poll_after_ms: int | None = None  # the emulator's poll hint; None: a twentieth of a run
    seed: int = 1


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
    """Delete this run's own keys (the Redis may be shared: never anything else). A cluster
    client scans every master and deletes the keys slot by slot."""
    with connect(target.redis_url, cluster=target.redis_cluster) as client:
        names = list(client.scan_iter(match=f"{target.prefix}:*", count=1000))
        if names:
            client.delete(*names)


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
        return pool.stats(POOL_KEY).lock_errors


def _delete_upstream(client: openai.OpenAI, target: Target, strategy: Strategy) -> None:
    """Delete the threads (conversations) this strategy created upstream: on a real endpoint
    they would otherwise stay. A failed delete is left for upstream's own expiry."""
    from thread_pool import AssistantsBackend, Backend, ConversationsBackend
    from thread_pool.admin import PoolAdmin

    backend: Backend = (
        AssistantsBackend(client, assistant_id=target.assistant_id)
        if target.backend == "assistants"
        else ConversationsBackend(client, model=target.model)
    )
    with contextlib.suppress(openai.APIError):
        if strategy != "pool":
            backend.delete_thread(target.shared_thread)
            return
        with PoolAdmin(**_redis_settings(target)) as admin:
            admin.delete(POOL_KEY, backend, force=True)


def _run_one(strategy: Strategy, base: Target, options: StressOptions) -> StressResult:
    client = _client(base)
    try:
        shared = ""
        if strategy != "pool":
            # A fresh thread per strategy: runs one strategy left behind must not hit the next.
            if base.backend == "assistants":
                shared = client.beta.threads.create().id
            else:
                shared = client.conversations.create().id
        target = Target(**{**asdict(base), "shared_thread": shared})
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
    with found as url, _upstream(options) as (base_url, api_key):
        base = Target(
            base_url=base_url,
            api_key=api_key,
            backend=options.backend,
            model=options.model,
            redis_url=url,
            prefix=f"stress-{uuid.uuid4().hex[:10]}",
            pool_size=options.pool_size,
            redis_cluster=Settings.load().redis_cluster,
        )
        try:
            if options.backend == "assistants":
                with _client(base) as client:
                    assistant = client.beta.assistants.create(model=options.model, name="stress")
                base = Target(**{**asdict(base), "assistant_id": assistant.id})
            return [_run_one(strategy, base, options) for strategy in options.strategies]
        finally:
            if base.assistant_id:
                with _client(base) as client, contextlib.suppress(openai.APIError):
                    client.beta.assistants.delete(base.assistant_id)
            _drop_keys(base)
