"""The stress test's workers: the ``naive``, ``lock`` and ``pool`` strategies (the package's
docstring says what each does), run by threads or processes, each building its own clients as
separate processes of an application would."""

from __future__ import annotations

import contextlib
import multiprocessing
import threading
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Literal, TypeVar

import openai
import redis
from openai.types.responses import EasyInputMessageParam

from thread_pool import Backend
from thread_pool._store.clients import connect
from thread_pool._store.keys import PoolKeys
from thread_pool.testing.stress.results import Sample

STRATEGIES = ("naive", "lock", "pool")
BACKENDS = ("assistants", "conversations")
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
    api_key: str = field(repr=False)  # reprs and tracebacks show no secret
    backend: BackendName
    model: str
    redis_url: str = field(repr=False)  # may hold a password
    prefix: str  # the configured key prefix: every key the test writes is under it
    pool_key: str  # this run's own pool (and lock) key, so runs never meet
    pool_size: int
    assistant_id: str = ""
    shared_thread: str = ""  # the naive and lock strategies' one thread (or conversation)
    redis_cluster: bool = False  # redis_url is a node of a cluster (setting redis_cluster)


def is_lock_error(error: openai.APIError) -> bool:
    """Whether upstream refused a write because another run (response) holds the thread:
    "... already has an active run ...", "Can't add messages to ... while a run ... is active.",
    or a locked conversation."""
    if not isinstance(error, openai.BadRequestError):
        return False
    return "active" in error.message or getattr(error, "code", None) == "conversation_locked"


def client_of(target: Target) -> openai.OpenAI:
    """The SDK client a worker uses."""
    # The strategies do their own retrying (or none); the SDK's hidden retries would blur that.
    return openai.OpenAI(base_url=target.base_url, api_key=target.api_key, max_retries=0)


def backend_of(client: openai.OpenAI, target: Target) -> Backend:
    """The pool's backend for ``target`` over ``client``."""
    from thread_pool import build_backend

    if target.backend == "assistants":
        return build_backend("assistants", client, assistant_id=target.assistant_id)
    return build_backend("conversations", client, model=target.model)


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
    # What a user's code sends: the message as the response's input, in one request.
    item: EasyInputMessageParam = {"type": "message", "role": "user", "content": text}
    response = _with_retries(
        lambda: client.responses.create(model=target.model, conversation=thread, input=[item]),
        errors,
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
    response = client.responses.create(model=target.model, conversation=thread, input=[item])
    return response.status == "completed"


def lock_name(target: Target) -> str:
    """The Redis key of the lock strategy's lock: beside the run's pool, under the prefix."""
    return f"{PoolKeys.of(target.prefix, target.pool_key).base}lock:{target.shared_thread}"


def _locked_turn(
    client: openai.OpenAI, store: redis.Redis, target: Target, text: str, errors: list[int]
) -> bool:
    # redis-py's Lock as people use it: SET NX PX with a token, retried every 0.1 s (its default).
    lock = store.lock(
        lock_name(target),
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
    with client_of(target) as client:
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
    from thread_pool import ThreadPool
    from thread_pool.errors import ThreadPoolError

    backend = backend_of(client, target)

    def turn(text: str, errors: list[int]) -> bool:
        try:
            return pool.run(target.pool_key, text).status == "completed"
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
