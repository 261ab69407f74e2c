"""Operating pools from Python: what the ``thread-pool`` command line runs.

``PoolAdmin`` (blocking) and ``AsyncPoolAdmin`` (asyncio) give status snapshots, drain, backup and
restore, delete and pre-warm steps; ``PoolStatus`` is what a status snapshot holds. ``prewarm``
grows many pools at once, concurrently and paced (asyncio only): each step is
``AsyncPoolAdmin.grow_one``, which reserves a slot before creating a thread, so racing pre-warms
never pass a pool's cap, and which leaves nothing half-done when interrupted; a re-run simply
tops the pools up.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from thread_pool._async.admin import AsyncPoolAdmin
from thread_pool._async.backend import AsyncBackend, checked_backend
from thread_pool._model.status import (
    DeleteReport,
    Growth,
    LeaseInfo,
    PoolMetrics,
    PoolStatus,
    ThreadInfo,
    WaiterInfo,
)
from thread_pool._model.validation import check_positive, check_size, validate_keys
from thread_pool._sync.admin import PoolAdmin
from thread_pool.errors import PoolBusy, PoolExists, PoolStateLost, UnknownPool

__all__ = [
    "AsyncPoolAdmin",
    "DeleteReport",
    "Growth",
    "LeaseInfo",
    "Pacer",
    "PoolAdmin",
    "PoolBusy",
    "PoolExists",
    "PoolMetrics",
    "PoolProgress",
    "PoolStatus",
    "ThreadInfo",
    "WaiterInfo",
    "prewarm",
    "targets",
]


@dataclass
class PoolProgress:
    """How far one pool is."""

    key: str
    threads: int
    target: int
    grown: int = 0
    """Threads this pre-warm created."""
    outcome: str = ""
    """``done``, ``draining``, or empty while it runs."""

    @classmethod
    def toward(cls, key: str, threads: int, size: int, max_size: int) -> PoolProgress:
        """A pool of ``threads`` to be grown to ``size``, never beyond its ``max_size``."""
        return cls(key, threads, min(size, max_size))


class Pacer:
    """Spaces request starts at least ``1 / rate`` seconds apart, across all workers, so a
    pre-warm stays under the upstream's request limits (the backend's retries handle a 429
    that gets through anyway)."""

    def __init__(self, rate: float) -> None:
        self._gap = 1.0 / check_positive("rate", rate, at_most=1e6)
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        """Return when the next request may start."""
        async with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self._gap
        if start > now:
            await asyncio.sleep(start - now)


async def targets(admin: AsyncPoolAdmin, keys: list[str], size: int | None) -> list[PoolProgress]:
    """Each pool's starting point; the target is ``size``, else the pool's ``min_size``, capped
    at its ``max_size`` (a new pool has the default sizes of the settings)."""
    if size is not None:
        check_size("size", size)
    out = []
    for key in validate_keys(keys):
        try:
            stats = (await admin.status(key)).stats
            threads, low, high = stats.threads, stats.min_size, stats.max_size
        except (UnknownPool, PoolStateLost):
            # A lost pool is re-created by the pre-warm (its first reservation clears the mark).
            threads, low, high = 0, admin.settings.min_size, admin.settings.max_size
        out.append(PoolProgress.toward(key, threads, low if size is None else size, high))
    return out


async def prewarm(
    admin: AsyncPoolAdmin,
    backend: AsyncBackend,
    pools: list[PoolProgress],
    *,
    concurrency: int = 4,
    rate: float = 10.0,
    on_progress: Callable[[PoolProgress], None] | None = None,
    poll: float = 0.1,
) -> list[PoolProgress]:
    """Grow every pool in ``pools`` to its target with up to ``concurrency`` creations in flight
    in all, started at most ``rate`` per second. The first failure cancels the rest (each
    cancelled step undoes itself) and is raised."""
    checked_backend(backend)
    check_size("concurrency", concurrency, least=1)
    check_positive("poll", poll)
    slots = asyncio.Semaphore(concurrency)
    pacer = Pacer(rate)

    async def worker(p: PoolProgress) -> None:
        while not p.outcome:
            async with slots:
                if p.outcome:
                    return
                await pacer.wait()
                step = await admin.grow_one(p.key, p.target, backend)
            if step.outcome == "grown":
                p.grown += 1
                p.threads = max(p.threads, step.threads)
            elif step.outcome == "pending":
                # Someone's creation is in flight for the last slots: see whether it lands.
                p.threads = step.threads
                await asyncio.sleep(poll)
            else:
                p.threads = max(p.threads, step.threads)
                p.outcome = step.outcome
            if on_progress is not None:
                on_progress(p)

    try:
        async with asyncio.TaskGroup() as group:
            for p in pools:
                for _ in range(max(1, min(concurrency, p.target - p.threads))):
                    group.create_task(worker(p))
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None
    return pools
