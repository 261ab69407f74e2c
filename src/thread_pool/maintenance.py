"""Keeping pools in shape between callers: expired leases reaped as they fall due (not only when a
caller next acquires), and every pool kept at its ``min_size``. What ``thread-pool maintain``
runs; embed it in a service of your own with ``maintain``.

Several maintainers may run at once (one per host, say) without doing anything twice: a reap is
one atomic script per pool, and growth reserves its slot atomically against the pool's target,
as pre-warm does (see ``admin.prewarm``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from thread_pool._async.admin import AsyncPoolAdmin
from thread_pool._async.backend import AsyncBackend
from thread_pool._async.pool import AsyncThreadPool
from thread_pool._model.limits import MAX_LOG_AGE
from thread_pool._model.log_events import event
from thread_pool._model.status import DeleteReport, PoolMetrics
from thread_pool._model.validation import check_positive
from thread_pool.admin import PoolProgress, prewarm
from thread_pool.errors import PoolBusy, UnknownPool

logger = logging.getLogger("thread_pool.maintenance")


@dataclass
class MaintenancePass:
    """What one pass did."""

    reaped: int = 0
    """Expired leases reclaimed (their threads settled and handed out again)."""
    grown: dict[str, int] | None = None
    """Threads created per pool to reach its ``min_size`` (None: no backend, nothing grown)."""
    retired: list[str] | None = None
    """Pools retired for being idle longer than ``idle_expiry`` (None: not asked to)."""


@dataclass(frozen=True)
class IdlePool:
    """A pool nobody has leased a thread of for ``idle`` seconds."""

    key: str
    idle: float
    threads: int
    limit: float
    """The idle time after which it is retired: its own ``idle_expiry``, else the default."""


async def idle_pools(admin: AsyncPoolAdmin, idle_for: float | None) -> list[IdlePool]:
    """The pools with no lease, waiter, reservation or thread being settled, whose last lease
    was granted at least their own ``idle_expiry`` ago (``configure``), else ``idle_for``
    seconds ago (None: only pools with an idle expiry of their own); never used since created
    counts from their creation."""
    return idle_among(await admin.metrics(), idle_for)


def idle_among(metrics: list[PoolMetrics], idle_for: float | None) -> list[IdlePool]:
    """``idle_pools`` over metrics read already."""
    if idle_for is not None:
        idle_for = check_positive("idle_for", idle_for, at_most=MAX_LOG_AGE)
    now = time.time()
    out = []
    for m in metrics:
        s = m.stats
        limit = s.idle_expiry if s.idle_expiry is not None else idle_for
        if limit is None or s.leased or s.waiting or s.reserved or s.settling:
            continue
        if now - s.last_used >= limit:
            out.append(IdlePool(s.key, now - s.last_used, s.threads, limit))
    return out


async def retire_idle(
    admin: AsyncPoolAdmin,
    backend: AsyncBackend | None,
    idle_for: float | None,
    found: list[IdlePool] | None = None,
) -> list[DeleteReport]:
    """Delete every pool idle for its own ``idle_expiry`` or else ``idle_for`` seconds (the
    pools ``found`` idle, else ``idle_pools``): its threads upstream through ``backend`` first,
    then its keys (see ``AsyncPoolAdmin.delete``). A pool leased since it was found idle is left
    alone (``PoolBusy``); a run stopped half-way is finished by the next one (the pool stays in
    Redis, draining, until its upstream deletes are done)."""
    reports = []
    for pool in found if found is not None else await idle_pools(admin, idle_for):
        try:
            # Idle is decided again in the delete's first step, atomically with marking the
            # pool draining: a pool used since it was listed is kept.
            reports.append(await admin.delete(pool.key, backend, idle_for=pool.limit))
        except (PoolBusy, UnknownPool):
            continue  # used (or deleted) since it was found idle
    return reports


async def maintain_once(
    pool: AsyncThreadPool,
    admin: AsyncPoolAdmin,
    backend: AsyncBackend | None,
    *,
    concurrency: int = 4,
    rate: float = 10.0,
    idle_expiry: float | None = None,
) -> MaintenancePass:
    """One pass over every pool: reap expired leases, then (with a ``backend``) retire the pools
    idle for ``idle_expiry`` seconds (if given; see ``retire_idle``) and grow each pool that has
    fewer threads than its ``min_size`` (never beyond its ``max_size``), at most ``concurrency``
    creations in flight and ``rate`` per second."""
    done = MaintenancePass(reaped=await pool.reap())
    if backend is None:
        return done
    metrics = await admin.metrics()
    # Pools with an idle expiry of their own are retired even without a default.
    idle = idle_among(metrics, idle_expiry)
    if idle or idle_expiry is not None:
        retired = await retire_idle(admin, backend, idle_expiry, idle)
        done.retired = [r.key for r in retired]
        metrics = [m for m in metrics if m.stats.key not in done.retired]
    toward = [
        PoolProgress.toward(m.stats.key, m.stats.threads, m.stats.min_size, m.stats.max_size)
        for m in metrics
    ]
    short = [p for p in toward if p.threads < p.target]
    grown = (
        await prewarm(admin, backend, short, concurrency=concurrency, rate=rate) if short else []
    )
    done.grown = {p.key: p.grown for p in grown if p.grown}
    return done


async def maintain(
    pool: AsyncThreadPool,
    admin: AsyncPoolAdmin,
    backend: AsyncBackend | None,
    *,
    interval: float = 1.0,
    concurrency: int = 4,
    rate: float = 10.0,
    idle_expiry: float | None = None,
    on_pass: Callable[[MaintenancePass], None] | None = None,
) -> None:
    """Run ``maintain_once`` every ``interval`` seconds until cancelled. A pass that fails (Redis
    away, upstream refusing) is logged and the next one tries again: a maintainer outlives the
    outages it is there to clean up after."""
    interval = check_positive("interval", interval)
    while True:
        try:
            done = await maintain_once(
                pool, admin, backend, concurrency=concurrency, rate=rate, idle_expiry=idle_expiry
            )
        except Exception as exc:  # logged; the next pass retries
            logger.warning(
                "maintenance pass failed: %s: %s",
                type(exc).__name__,
                exc,
                extra=event("maintenance.failed"),
            )
        else:
            if done.reaped:
                logger.info(
                    "maintenance: reaped %d expired lease(s)",
                    done.reaped,
                    extra=event("maintenance.reaped"),
                )
            for key, count in (done.grown or {}).items():
                logger.info(
                    "maintenance: pool %r grew by %d toward its min_size",
                    key,
                    count,
                    extra=event("maintenance.grew", key),
                )
            for key in done.retired or []:
                logger.info(
                    "maintenance: pool %r retired (idle)",
                    key,
                    extra=event("maintenance.retired", key),
                )
            if on_pass is not None:
                on_pass(done)
        await asyncio.sleep(interval)
