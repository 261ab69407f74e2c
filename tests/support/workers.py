"""Worker processes for the multi-process tests, and the pieces the chaos worker is built on.

A worker uses pools as a process of its own would, and reports what it saw under keys of the
test's prefix outside the pool's keys (``check_key``), written with plain commands: the checks
read what holders saw, not what the pool believes.

* Leasing workers (no upstream): ``async_worker`` and ``sync_worker`` hold threads and record
  each hold (``Hold``, see ``tests.support.evidence``); ``hold_forever`` and ``wait_forever``
  are there for their test to kill.
* Turn workers (the emulator upstream, see ``Site``): ``run_turns`` and ``stall_in_tool_call``
  record the outcome of each turn.
* ``start`` runs a worker in a process of its own, ``join`` waits for workers to succeed.

The chaos worker (``tests.chaos.worker``) stays next to its driver: it is a load program of its
own, configured together with the driver, recording to a Redis the driver never restarts.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING, Any

from tests.support.backends import AsyncRecordingBackend, RecordingBackend
from tests.support.evidence import Hold
from thread_pool import AsyncThreadPool, ThreadPool, ThreadPoolError
from thread_pool._store.clients import connect

if TYPE_CHECKING:
    from thread_pool import Backend, ToolCall

# This module does not import the openai SDK (half a second): a leasing worker, started as a
# fresh interpreter while its test holds a lease of a second, only leases. Turn workers import
# it when they build their backend (``tests.support.upstream``).
UPSTREAM = "tests.support.upstream"

# Workers fork from a server process that imported this module and the SDK once: 32 processes
# start in a moment instead of importing openai 32 times over.
FORKSERVER = multiprocessing.get_context("forkserver")
FORKSERVER.set_forkserver_preload([__name__, UPSTREAM])
# Fresh interpreters, each reading the environment as it is when the worker starts.
SPAWN = multiprocessing.get_context("spawn")

# What workers report (see ``check_key``).
HOLDS = "holds"  # list of ``Hold`` lines, one per lease a leasing worker held
CREATED = "created"  # list of the thread ids the leasing workers' factories created
OVERLAPS = "overlaps"  # counter of times a holder found its thread already occupied
TURNS = "turns"  # list of ``ok <fence> <thread>`` / ``err <ErrorType>`` lines, one per turn
READY = "ready"  # ``<thread> <fence>`` of the lease a worker holds, once it holds it
GRANTS = "grants"  # list of ``<token> <fence>`` lines, one per lease a queueing worker got


def check_key(prefix: str, name: str) -> str:
    """The key of report ``name`` under a test's ``prefix``, outside the pool's keys."""
    return f"{prefix}:check:{name}"


def start(
    target: Callable[..., None], *args: Any, fresh: bool = False, name: str | None = None
) -> BaseProcess:
    """Run ``target(*args)`` in a process of its own, forked from the server process (or, with
    ``fresh``, in a new interpreter); returns the started process."""
    process = (SPAWN if fresh else FORKSERVER).Process(target=target, args=args, name=name)
    process.start()
    return process


def join(processes: Iterable[BaseProcess], timeout: float = 120) -> None:
    """Wait up to ``timeout`` seconds in all for ``processes`` to end; each must exit with 0."""
    end = time.monotonic() + timeout
    for process in processes:
        process.join(max(0.1, end - time.monotonic()))
        assert process.exitcode == 0, f"worker {process.pid} exited with {process.exitcode}"


def pid(process: BaseProcess) -> int:
    """The id of a started process."""
    assert process.pid is not None
    return process.pid


# -- leasing workers -------------------------------------------------------------------------


class _Evidence:
    """A leasing worker's reports: the threads its factory creates, and each hold."""

    def __init__(self, url: str, prefix: str) -> None:
        self.client = connect(url, decode_responses=True)
        self.prefix = prefix

    def create_thread(self) -> str:
        thread_id = f"thread_{uuid.uuid4().hex[:16]}"
        self.client.rpush(check_key(self.prefix, CREATED), thread_id)
        return thread_id

    @contextmanager
    def holding(self, thread_id: str, fence: int, holder: str) -> Iterator[None]:
        """Record the block as ``holder``'s hold of ``thread_id`` under ``fence``."""
        start = time.monotonic_ns()
        # An occupancy counter of our own: more than one holder inside means overlap.
        occupancy = check_key(self.prefix, f"occ:{thread_id}")
        if self.client.incr(occupancy) != 1:
            self.client.incr(check_key(self.prefix, OVERLAPS))
        yield
        end = time.monotonic_ns()
        self.client.decr(occupancy)
        hold = Hold(thread_id, fence, start, end, holder)
        self.client.rpush(check_key(self.prefix, HOLDS), hold.encode())


class _AsyncFactory(AsyncRecordingBackend):
    def __init__(self, evidence: _Evidence) -> None:
        super().__init__()
        self.evidence = evidence

    async def create_thread(self, key: str, messages: Sequence[Mapping[str, str]] = ()) -> str:
        await asyncio.sleep(random.uniform(0, 0.005))  # an upstream round trip
        return await asyncio.to_thread(self.evidence.create_thread)


class _SyncFactory(RecordingBackend):
    def __init__(self, evidence: _Evidence) -> None:
        super().__init__()
        self.evidence = evidence

    def create_thread(self, key: str, messages: Sequence[Mapping[str, str]] = ()) -> str:
        time.sleep(random.uniform(0, 0.005))
        return self.evidence.create_thread()


def _leasing_pool(url: str, prefix: str, max_size: int) -> dict[str, Any]:
    """The settings of a leasing worker's pool (its backend aside)."""
    return {"redis_url": url, "key_prefix": prefix, "max_size": max_size, "acquire_timeout": 60}


def async_worker(url: str, prefix: str, key: str, tasks: int, cycles: int, max_size: int) -> None:
    """One process: ``tasks`` asyncio tasks, each leasing ``cycles`` times."""
    evidence = _Evidence(url, prefix)

    async def main() -> None:
        factory = _AsyncFactory(evidence)
        async with AsyncThreadPool(backend=factory, **_leasing_pool(url, prefix, max_size)) as pool:

            async def task(n: int) -> None:
                for _ in range(cycles):
                    async with pool.lease(key) as lease:
                        with evidence.holding(lease.thread_id, lease.fence, f"{os.getpid()}/{n}"):
                            await asyncio.sleep(random.uniform(0, 0.002))

            await asyncio.gather(*(task(n) for n in range(tasks)))

    asyncio.run(main())


def sync_worker(url: str, prefix: str, key: str, tasks: int, cycles: int, max_size: int) -> None:
    """One process: ``tasks`` threads using the blocking pool, each leasing ``cycles`` times."""
    evidence = _Evidence(url, prefix)
    factory = _SyncFactory(evidence)
    with ThreadPool(backend=factory, **_leasing_pool(url, prefix, max_size)) as pool:

        def task(n: int) -> None:
            for _ in range(cycles):
                with (
                    pool.lease(key) as lease,
                    evidence.holding(lease.thread_id, lease.fence, f"{os.getpid()}/t{n}"),
                ):
                    time.sleep(random.uniform(0, 0.002))

        threads = [threading.Thread(target=task, args=(n,)) for n in range(tasks)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()


def hold_forever(url: str, prefix: str, key: str) -> None:
    """Lease a thread, report it as ``READY``, and never release it (the test kills this
    process)."""
    with ThreadPool(redis_url=url, key_prefix=prefix) as pool:
        lease = pool.acquire(key)
        connect(url).set(check_key(prefix, READY), f"{lease.thread_id} {lease.fence}")
        time.sleep(600)


def queue_and_record(url: str, prefix: str, key: str, tasks: int) -> None:
    """One process: ``tasks`` asyncio tasks each lease once (queueing behind a held thread),
    report the lease as ``<token> <fence>`` under ``GRANTS`` while holding it, and give it back."""

    async def main() -> None:
        record = connect(url, decode_responses=True)
        async with AsyncThreadPool(
            redis_url=url, key_prefix=prefix, max_connections=4, acquire_timeout=60
        ) as pool:

            async def task() -> None:
                async with pool.lease(key) as lease:
                    await asyncio.to_thread(
                        record.rpush, check_key(prefix, GRANTS), f"{lease.token} {lease.fence}"
                    )

            await asyncio.gather(*(task() for _ in range(tasks)))
        record.close()

    asyncio.run(main())


def wait_forever(url: str, prefix: str, key: str) -> None:
    """Wait for a thread of a pool whose only thread is held (the test kills this process)."""
    with ThreadPool(redis_url=url, key_prefix=prefix) as pool:
        pool.acquire(key, timeout=600)
        time.sleep(600)


# -- turn workers ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Site:
    """Where turn workers work: the emulator (and an assistant on it), and the test's Redis and
    key prefix. Picklable: it crosses into the worker processes."""

    base_url: str
    api_key: str
    assistant_id: str
    redis_url: str
    prefix: str

    def backend(self, kind: str) -> Backend:
        """A blocking backend of the emulator (``assistants``, ``conversations`` or
        ``background``), with quick retries and settling."""
        import openai

        from tests.support.upstream import backend
        from thread_pool import RetryPolicy

        client = openai.OpenAI(base_url=self.base_url, api_key=self.api_key, max_retries=0)
        retry = RetryPolicy(base_delay=0.02, max_delay=0.5)
        return backend(kind, client, self.assistant_id, retry=retry, settle_wait=0.2)

    def pool(self, kind: str, settings: dict[str, Any]) -> ThreadPool:
        """A blocking pool of backend ``kind`` with ``settings``, on this site's Redis and
        prefix."""
        return ThreadPool(
            backend=self.backend(kind), redis_url=self.redis_url, key_prefix=self.prefix, **settings
        )


def run_turns(site: Site, kind: str, key: str, iterations: int, settings: dict[str, Any]) -> None:
    """``iterations`` turns back to back on pool ``key``, no delays."""
    log = connect(site.redis_url)
    with site.pool(kind, settings) as pool:
        for i in range(iterations):
            try:
                turn = pool.run(key, f"worker {os.getpid()} turn {i}")
            except ThreadPoolError as exc:
                log.rpush(check_key(site.prefix, TURNS), f"err {type(exc).__name__}")
            else:
                log.rpush(check_key(site.prefix, TURNS), f"ok {turn.fence} {turn.thread_id}")


def stall_in_tool_call(
    site: Site, kind: str, key: str, settings: dict[str, Any], stall: float
) -> None:
    """One turn whose tool call reports its lease as ``READY``, then stalls ``stall`` seconds
    (the test kills or pauses this process meanwhile); the outcome goes to ``TURNS``."""
    from tests.support.upstream import tools_for

    log = connect(site.redis_url)
    with site.pool(kind, settings) as pool:
        try:
            with pool.lease(key) as lease:

                def handler(call: ToolCall) -> str:
                    log.set(check_key(site.prefix, READY), f"{lease.thread_id} {lease.fence}")
                    time.sleep(stall)
                    return "late answer"

                lease.run("call:ping()", tool_handler=handler, tools=tools_for(kind))
        except ThreadPoolError as exc:
            log.rpush(check_key(site.prefix, TURNS), f"err {type(exc).__name__} {time.time()}")
        else:
            log.rpush(check_key(site.prefix, TURNS), "ok")
