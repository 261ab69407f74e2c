"""Leasing: acquire (take an idle thread, settle expired ones, grow, or wait), release, renew and
the fence check, each one script call; and the clean-ups kept for when Redis is back."""

from __future__ import annotations

import logging
import time
from typing import Any

from thread_pool._acompat import holder_name, shield
from thread_pool._async.backend import AsyncBackend
from thread_pool._async.growth import AsyncGrower
from thread_pool._async.known import AsyncKnownPools
from thread_pool._async.lease import AsyncLease
from thread_pool._async.settling import AsyncSettling
from thread_pool._async.store import AsyncStore
from thread_pool._async.waiting import WAIT_LIVE_S, wait
from thread_pool._model.log_events import event
from thread_pool._store.replies import (
    Grant,
    Outcome,
    TurnStart,
    grant,
    integers,
    outcome,
    pool_stats,
    strings,
    turn_grant,
)
from thread_pool._store.scripts import ms
from thread_pool._telemetry import scope
from thread_pool._traced import traced_acquire
from thread_pool.errors import (
    ConnectionsExhausted,
    CorruptState,
    LeaseLost,
    LeaseNotOwned,
    PoolClosed,
    PoolDraining,
    PoolTimeout,
    StoreUnavailable,
    ThreadPoolError,
    TooManyWaiters,
    UnknownPool,
)
from thread_pool.settings import Settings

logger = logging.getLogger("thread_pool")

# Outcomes after which a failed acquire holds nothing, so there is nothing to abandon.
_NOTHING_HELD = (PoolTimeout, TooManyWaiters, UnknownPool, PoolClosed, PoolDraining)

# Clean-ups kept for a retry when Redis is away (beyond this, leases expire by their TTL).
_MAX_PENDING = 10_000


class AsyncLeasing:
    """The lease operations of one pool object."""

    def __init__(
        self,
        store: AsyncStore,
        settings: Settings,
        known: AsyncKnownPools,
        settling: AsyncSettling,
        growth: AsyncGrower,
        backend: AsyncBackend | None,
    ) -> None:
        self._store = store
        self._settings = settings
        self._known = known
        self._settling = settling
        self._growth = growth
        self._backend = backend
        self.telemetry = scope(settings.otel_pool_key)
        # What acquire sends every time, packed once (see acquire.lua).
        s = settings
        grows = int(backend is not None)
        self._config = (
            f"{grows}|{grows}|{s.min_size}|{s.max_size}|{ms(s.lease_ttl)}|{s.max_waiters}"
            f"|{ms(s.grow_timeout)}|{ms(s.settle_timeout)}|{ms(s.reclaim_delay)}"
        )
        # Clean-ups (an abandon, a release) that failed because Redis was away, as (script, key,
        # args): run again before the next acquire, so that a Redis that comes back with its data
        # (AOF, a replica) does not keep a queue entry, a lease or a hand-off for a caller that
        # has gone, until its deadline. Each is safe to run late (they act by token only).
        self._pending: list[tuple[str, str, tuple[str | int, ...]]] = []

    @traced_acquire
    async def acquire(self, key: str, wait_s: float, turn: str = "") -> tuple[str, Grant, float]:
        """Lease a thread of pool ``key`` (see ``AsyncThreadPool.acquire``): the token, the
        grant, and when it was asked for (by this process's clock). ``turn`` (see acquire.lua):
        "" a plain lease; "1" a turn starts its run at once, so an idle thread is granted
        fence-checked and marked in flight (``Grant.turn``); "2" that, and with the thread's
        context read from the log."""
        started = time.monotonic()
        give_up = started + wait_s
        token = self._store.dispatcher.ticket()
        holder = holder_name()
        if self._backend is not None:
            await self._known.register(key)
        if self._pending:
            await self.retry_pending()
        try:
            while True:
                asked_at = time.monotonic()
                reply, missing = turn_grant(
                    await self._store.call(
                        "acquire",
                        key,
                        token,
                        holder,
                        ms(min(give_up - asked_at, WAIT_LIVE_S)),
                        self._config,
                        self._known.epoch(key),
                        turn,
                    )
                )
                word, rest = outcome(reply)
                if word is Outcome.GRANTED:
                    # Only an idle thread is granted here: marked for the turn if it asked.
                    g = grant(rest, TurnStart(missing) if turn else None)
                    return await self._granted(key, token, g, asked_at)
                if word is Outcome.SETTLE:
                    await self._settling.settle(key, strings(rest))
                elif word is Outcome.GROW:
                    assert self._backend is not None
                    word, rest = await self._growth.grow(self._backend, key, token, holder)
                    if word is Outcome.GRANTED:
                        return await self._granted(key, token, grant(rest), asked_at)
                    if word is Outcome.ABANDONED:
                        raise CorruptState(f"pool {key!r} saw this growth as abandoned")
                elif word is Outcome.WAIT:
                    waited = await wait(
                        self._store,
                        self._settling,
                        key,
                        token,
                        give_up,
                        integers(rest[2:])[0],
                    )
                    if waited is not None:
                        return await self._granted(key, token, *waited)
                else:
                    raise await self._refused(key, word, rest, wait_s)
        except PoolTimeout:
            raise await self._timed_out(key, wait_s, time.monotonic() - started) from None
        except _NOTHING_HELD:
            raise
        except BaseException:
            # Cancelled or failed anywhere above: a script may have granted, queued or reserved
            # something for our token without our seeing the reply. Undo all of it.
            await shield(self.abandon(key, token))
            raise

    async def _granted(
        self, key: str, token: str, g: Grant, asked_at: float
    ) -> tuple[str, Grant, float]:
        # Inside acquire's clean-up: cancelled while learning the epoch, the grant is undone.
        await self._known.learn(key)
        return token, g, asked_at

    async def _refused(self, key: str, word: Outcome, rest: list[Any], wait_s: float) -> Exception:
        """The error for an acquire that got no thread and will not ask again."""
        if word is Outcome.LOSTSTATE:
            return await self._known.lost(key, rest)
        if word is Outcome.TIMEOUT:
            return PoolTimeout(f"no thread of pool {key!r} became free")  # see _timed_out
        if word is Outcome.FULL:
            return TooManyWaiters(
                f"pool {key!r} already has {integers(rest)[0]} waiters "
                f"(max_waiters={self._settings.max_waiters})"
            )
        if word is Outcome.DRAINING:
            return PoolDraining(f"pool {key!r} is draining; it grants no new leases")
        if word is Outcome.ABANDONED:
            return CorruptState(f"pool {key!r} saw this acquire as abandoned")
        if word is Outcome.NOPOOL:
            return UnknownPool(
                f"unknown pool {key!r}: register threads with add_threads() or give the pool a "
                "backend"
            )
        return CorruptState(f"acquire on pool {key!r} answered {word!r}")

    async def _timed_out(self, key: str, wait_s: float, waited: float) -> PoolTimeout:
        """The ``PoolTimeout`` of an acquire that waited ``waited`` seconds: with the pool's
        size and waiters, which say whether the pool is too small or a holder is slow."""
        try:
            word, rest = outcome(await self._store.call("stats", key))
            stats = pool_stats(key, rest) if word is Outcome.OK else None
        except ThreadPoolError:  # the counts are a courtesy; the timeout is the news
            stats = None
        message = f"no thread of pool {key!r} became free within {wait_s:g}s (waited {waited:.2f}s"
        if stats is None:
            return PoolTimeout(message + ")", waited=waited)
        return PoolTimeout(
            f"{message}; {stats.leased} of {stats.threads} thread(s) leased, max_size "
            f"{stats.max_size}, {stats.waiting} other caller(s) waiting)",
            waited=waited,
            threads=stats.threads,
            max_size=stats.max_size,
            waiting=stats.waiting,
        )

    async def release(self, lease: AsyncLease) -> None:
        """Give a leased thread back (see ``AsyncThreadPool.release``)."""
        if lease.released:
            # Said as it is: the token would be refused by the script as "not held" too, which
            # reads as if someone else held it.
            raise LeaseNotOwned(f"{_named(lease)} was already released")
        args = (lease.thread_id, lease.token, 0, int(lease.dirty))
        try:
            word, _ = outcome(await self._store.call("release", lease.key, *args))
        except StoreUnavailable:
            self._later("release", lease.key, args)
            raise
        lease.released = True
        self.telemetry.released(lease.key, lease.held_for())
        if word is Outcome.SETTLE:
            # A turn was cut short and its run may still be active: settle the thread now, so
            # it reaches the next holder (or waiter) quiet.
            await self._settling.reap_due(lease.key)
        elif word is Outcome.NOTOWNED:
            raise LeaseNotOwned(f"{_named(lease)} is not held by this holder")
        elif word is Outcome.LOST:
            lease.lose("it expired before it was released")
            raise LeaseLost(f"{_named(lease)} expired before it was released")

    async def renew(self, lease: AsyncLease, ttl: float | None) -> float:
        """Extend ``lease`` (see ``AsyncThreadPool.renew``)."""
        lease.alive()
        asked_at = time.monotonic()
        word, rest = outcome(
            await self._store.call(
                "renew", lease.key, lease.thread_id, lease.token, 0 if ttl is None else ms(ttl)
            )
        )
        if word is not Outcome.OK:
            lease.lose("renewal failed: it expired or was taken over")
            raise LeaseLost(f"{_named(lease)} is lost; it cannot be renewed")
        deadline_ms, ttl_ms = integers(rest)
        lease.extended(deadline_ms, ttl_ms, asked_at)
        return lease.deadline

    async def check(self, lease: AsyncLease, need: float, *, starts_run: bool = False) -> float:
        """The fence check (see ``AsyncThreadPool.check``)."""
        lease.alive()
        word, rest = outcome(
            await self._store.call(
                "check", lease.key, lease.thread_id, lease.token, ms(need), int(starts_run)
            )
        )
        if word is Outcome.SHORT:
            await self.renew(lease, None)
            if starts_run:
                return await self.check(lease, 0, starts_run=True)
            return lease.remaining()
        if word is not Outcome.OK:
            lease.lose("a fence check found it expired or taken over")
            raise LeaseLost(f"{_named(lease)} is no longer current")
        return integers(rest)[0] / 1000

    async def abandon(self, key: str, token: str) -> None:
        """Undo whatever ``token`` holds in pool ``key`` (its acquire was interrupted)."""
        try:
            await self._store.call("abandon", key, token)
        except Exception as exc:
            # Tried again before the next acquire; else the lease (if any) expires and is reaped,
            # and a reservation lapses after grow_timeout.
            passing = (StoreUnavailable, ConnectionsExhausted)
            if isinstance(exc, passing) and self._later("abandon", key, (token,)):
                # Expected while Redis is away (every interrupted acquire comes here): not a
                # warning each, or an outage floods the log.
                logger.info(
                    "pool %r: an interrupted acquire is undone later: %s",
                    key,
                    exc,
                    extra=event("acquire.undo_later", key),
                )
            else:
                logger.warning(
                    "pool %r: could not undo an interrupted acquire: %s",
                    key,
                    exc,
                    extra=event("acquire.undo_failed", key),
                )

    def _later(self, script: str, key: str, args: tuple[str | int, ...]) -> bool:
        """Keep a clean-up for a retry; False when too many are kept already (it is dropped)."""
        if len(self._pending) < _MAX_PENDING:
            self._pending.append((script, key, args))
            return True
        logger.warning(
            "pool %r: %d clean-ups already wait for redis; a %s is dropped (a lease it held "
            "expires by its TTL, a reservation lapses)",
            key,
            len(self._pending),
            script,
            extra=event("cleanup.dropped", key),
        )
        return False

    async def retry_pending(self) -> None:
        """Run the clean-ups that failed while Redis was away; those that fail again stay."""
        pending, self._pending = self._pending, []
        for n, (script, key, args) in enumerate(pending):
            try:
                reply = await self._store.call(script, key, *args)
            except StoreUnavailable:
                self._pending.extend(pending[n:])
                return
            except Exception as exc:
                logger.warning(
                    "pool %r: a late %s failed: %s",
                    key,
                    script,
                    exc,
                    extra=event("cleanup.late_failed", key),
                )
                continue
            # A late dirty release leaves the thread to be settled: the next acquire claims it.
            # (An abandon answers counts, not an outcome word: the reply is logged as it is.)
            logger.info(
                "pool %r: a late %s answered %r",
                key,
                script,
                reply,
                extra=event("cleanup.late_done", key),
            )

    @property
    def has_pending(self) -> bool:
        """Whether clean-ups wait for Redis."""
        return bool(self._pending)


def _named(lease: AsyncLease) -> str:
    return f"lease on thread {lease.thread_id!r} of pool {lease.key!r} (fence {lease.fence})"
