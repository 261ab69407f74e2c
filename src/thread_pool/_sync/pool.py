# WARNING: this file is generated from src/thread_pool/_async/pool.py by tools/async_to_sync.py.
# DO NOT CHANGE IT: change the source and run the tool.
"""The pool: leases of upstream threads per key, coordinated through Redis."""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any

import redis

from thread_pool._compat import holder_name
from thread_pool._sync.factory import Settler, ThreadFactory
from thread_pool._sync.lease import Lease
from thread_pool._sync.store import Store
from thread_pool.errors import (
    CorruptState,
    InvalidArgument,
    LeaseLost,
    LeaseNotOwned,
    PoolClosed,
    PoolFull,
    PoolTimeout,
    TooManyWaiters,
    UnknownPool,
)
from thread_pool.protocol import (
    Grant,
    PoolStats,
    grant,
    integers,
    mailbox_grant,
    outcome,
    pool_stats,
    strings,
    text,
)
from thread_pool.settings import Settings
from thread_pool.validation import check_positive, validate_key, validate_thread_id

logger = logging.getLogger("thread_pool")

# Outcomes after which a failed acquire holds nothing, so there is nothing to abandon.
_NOTHING_HELD = (PoolTimeout, TooManyWaiters, UnknownPool, PoolClosed)


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))


class ThreadPool:
    """Pools of upstream threads, one pool per key, leased to one holder at a time.

    Every argument is optional: settings come from the environment (``THREAD_POOL_*``) and
    ``.env``, and ``**overrides`` (``lease_ttl=30``, ``redis_url=...``) win over them. Without a
    ``thread_factory`` a pool hands out only the threads registered with ``add_threads``.
    """

    def __init__(
        self,
        *,
        client: redis.Redis | None = None,
        settings: Settings | None = None,
        thread_factory: ThreadFactory | None = None,
        settler: Settler | None = None,
        **overrides: Any,
    ) -> None:
        if settings is not None and overrides:
            settings = Settings.load(**{**settings.model_dump(), **overrides})
        self.settings = settings if settings is not None else Settings.load(**overrides)
        self._own_client = client is None
        if client is None:
            client = redis.Redis.from_url(self.settings.redis_url, decode_responses=True)
        self._store = Store(client, self.settings.key_prefix)
        self._factory = thread_factory
        self._settler = settler
        self._registered: set[str] = set()
        self._closed = False

    # -- leases ------------------------------------------------------------------------------

    @contextmanager
    def lease(self, key: str, timeout: float | None = None) -> Iterator[Lease]:
        """Hold a thread of pool ``key`` for the ``with`` block; it is released on every
        exit path, cancellation included. Raises ``LeaseLost`` on exit if the lease expired while
        the block ran (its upstream work may have overlapped another holder's)."""
        held = self.acquire(key, timeout)
        try:
            yield held
        except BaseException:
            if not held.released:
                self._release_quietly(held)
            raise
        if not held.released:
            self.release(held)

    def acquire(self, key: str, timeout: float | None = None) -> Lease:
        """Lease a thread of pool ``key``: an idle one, a new one if the pool may grow, else the
        first one released, waiting up to ``timeout`` seconds (default: the acquire_timeout
        setting). Pair it with ``release``."""
        self._check_open()
        key = validate_key(key)
        wait = self.settings.acquire_timeout if timeout is None else timeout
        check_positive("timeout", wait, allow_zero=True)
        give_up = time.monotonic() + wait
        token = secrets.token_hex(16)
        holder = holder_name()
        if self._factory is not None:
            self._register(key)
        try:
            while True:
                asked_at = time.monotonic()
                word, rest = outcome(
                    self._store.call(
                        "acquire",
                        key,
                        token,
                        holder,
                        int(self._factory is not None),
                        int(self._factory is not None),
                        self.settings.min_size,
                        self.settings.max_size,
                        _ms(self.settings.lease_ttl),
                        self.settings.max_waiters,
                        _ms(give_up - asked_at),
                        _ms(self.settings.grow_timeout),
                        _ms(self.settings.settle_timeout),
                    )
                )
                if word == "GRANTED":
                    return self._lease(key, token, rest, asked_at)
                if word == "SETTLE":
                    self._settle(key, strings(rest))
                    continue
                if word == "GROW":
                    grown = self._grow(key, token, holder)
                    if grown is not None:
                        return grown
                    continue
                if word == "WAIT":
                    queued = text(rest[1])
                    waited = self._wait(key, token, queued, give_up, integers(rest[2:])[0])
                    if waited is not None:
                        return waited
                    continue
                if word == "TIMEOUT":
                    raise PoolTimeout(f"no thread of pool {key!r} became free within {wait}s")
                if word == "FULL":
                    raise TooManyWaiters(
                        f"pool {key!r} already has {integers(rest)[0]} waiters "
                        f"(max_waiters={self.settings.max_waiters})"
                    )
                if word == "ABANDONED":
                    raise CorruptState(f"pool {key!r} saw this acquire as abandoned")
                if word == "NOPOOL":
                    raise UnknownPool(
                        f"unknown pool {key!r}: register threads with add_threads() or give the "
                        "pool a thread_factory"
                    )
                raise CorruptState(f"acquire on pool {key!r} answered {word!r}")
        except _NOTHING_HELD:
            raise
        except BaseException:
            # Cancelled or failed anywhere above: a script may have granted, queued or reserved
            # something for our token without our seeing the reply. Undo all of it.
            self._abandon(key, token)
            raise

    def release(self, lease: Lease) -> None:
        """Give a leased thread back to its pool (to the oldest waiter, or idle).

        Raises ``LeaseNotOwned`` if the lease is not held by this token any more (released
        already, or reaped and granted again), ``LeaseLost`` if it expired before the release; in
        both cases nothing is changed."""
        word, _ = outcome(self._store.call("release", lease.key, lease.thread_id, lease.token, 0))
        lease.released = True
        if word == "NOTOWNED":
            raise LeaseNotOwned(
                f"lease on thread {lease.thread_id!r} of pool {lease.key!r} "
                f"(fence {lease.fence}) is not held by this holder"
            )
        if word == "LOST":
            raise LeaseLost(
                f"lease on thread {lease.thread_id!r} of pool {lease.key!r} "
                f"(fence {lease.fence}) expired before it was released"
            )

    def renew(self, lease: Lease, ttl: float | None = None) -> float:
        """Extend ``lease`` to ``ttl`` seconds from now (default: the pool's TTL)."""
        if ttl is not None:
            check_positive("ttl", ttl)
        asked_at = time.monotonic()
        word, rest = outcome(
            self._store.call(
                "renew", lease.key, lease.thread_id, lease.token, 0 if ttl is None else _ms(ttl)
            )
        )
        if word != "OK":
            raise LeaseLost(
                f"lease on thread {lease.thread_id!r} of pool {lease.key!r} "
                f"(fence {lease.fence}) is lost; it cannot be renewed"
            )
        deadline_ms, ttl_ms = integers(rest)
        lease._extended(deadline_ms, ttl_ms, asked_at)
        return lease.deadline

    def check(self, lease: Lease, min_remaining: float | None = None) -> float:
        """Raise ``LeaseLost`` unless ``lease`` is still current in Redis; renew it first when less
        than ``min_remaining`` seconds (default: the renew_margin setting) are left. Returns the
        seconds left."""
        need = self.settings.renew_margin if min_remaining is None else min_remaining
        check_positive("min_remaining", need, allow_zero=True)
        word, rest = outcome(
            self._store.call("check", lease.key, lease.thread_id, lease.token, _ms(need))
        )
        if word == "SHORT":
            self.renew(lease)
            return lease.remaining()
        if word != "OK":
            raise LeaseLost(
                f"lease on thread {lease.thread_id!r} of pool {lease.key!r} "
                f"(fence {lease.fence}) is no longer current"
            )
        return integers(rest)[0] / 1000

    # -- pools -------------------------------------------------------------------------------

    def add_threads(self, key: str, thread_ids: Iterable[str]) -> int:
        """Register existing upstream threads with pool ``key`` (creating the pool with the
        default sizes if needed). Threads already registered are skipped. Returns how many were
        added; raises ``PoolFull`` (adding none) if they would exceed ``max_size``."""
        self._check_open()
        key = validate_key(key)
        ids = list(dict.fromkeys(validate_thread_id(t) for t in thread_ids))
        if not ids:
            return 0
        self._register(key)
        word, rest = outcome(
            self._store.call(
                "add",
                key,
                1,
                self.settings.min_size,
                self.settings.max_size,
                _ms(self.settings.lease_ttl),
                *ids,
            )
        )
        if word == "FULL":
            size, max_size = integers(rest)
            raise PoolFull(
                f"pool {key!r} has {size} threads of at most {max_size}; "
                f"adding {len(ids)} would exceed max_size"
            )
        return integers(rest)[0]

    def configure(
        self,
        key: str,
        *,
        min_size: int | None = None,
        max_size: int | None = None,
        ttl: float | None = None,
    ) -> PoolStats:
        """Set pool ``key``'s sizes and lease TTL (creating the pool if needed); ``None`` keeps a
        value. Shrinking below the thread count retires idle threads at once and leased ones as
        they come back (``stats().retired`` counts them; they may still exist upstream)."""
        self._check_open()
        key = validate_key(key)
        for name, size, least in (("min_size", min_size, 0), ("max_size", max_size, 1)):
            if size is not None and (
                isinstance(size, bool) or not isinstance(size, int) or size < least
            ):
                raise InvalidArgument(f"{name} must be an integer >= {least}, not {size!r}")
        if ttl is not None:
            check_positive("ttl", ttl)
            if ttl <= self.settings.renew_margin:
                raise InvalidArgument(
                    f"ttl ({ttl}s) must exceed the renew margin ({self.settings.renew_margin}s)"
                )
        if min_size is not None and max_size is not None and min_size > max_size:
            raise InvalidArgument(f"min_size ({min_size}) exceeds max_size ({max_size})")
        self._register(key)
        word, rest = outcome(
            self._store.call(
                "configure",
                key,
                "" if min_size is None else min_size,
                "" if max_size is None else max_size,
                "" if ttl is None else _ms(ttl),
                self.settings.min_size,
                self.settings.max_size,
                _ms(self.settings.lease_ttl),
            )
        )
        if word == "BADSIZE":
            low, high = integers(rest)
            raise InvalidArgument(
                f"pool {key!r} would have min_size {low} above max_size {high}; nothing changed"
            )
        return self.stats(key)

    def stats(self, key: str) -> PoolStats:
        """A consistent snapshot of pool ``key``'s counts and counters."""
        key = validate_key(key)
        word, rest = outcome(self._store.call("stats", key))
        if word == "NOPOOL":
            raise UnknownPool(f"unknown pool {key!r}")
        return pool_stats(key, rest)

    def pools(self) -> list[str]:
        """The keys of every pool under this key prefix."""
        return self._store.pool_keys()

    def reap(self, key: str | None = None) -> int:
        """Reclaim expired leases (of pool ``key``, or of every pool) now, settle their threads
        and hand them out again. Returns how many threads were reclaimed."""
        keys = [validate_key(key)] if key is not None else self.pools()
        total = 0
        for pool_key in keys:
            while True:
                claimed = (self._reap_once(pool_key))[1]
                if not claimed:
                    break
                total += len(claimed)
                self._settle(pool_key, claimed)
        return total

    # -- life cycle --------------------------------------------------------------------------

    def close(self) -> None:
        """Stop granting leases and close the Redis connections this pool opened."""
        self._closed = True
        if self._own_client:
            self._store.close()

    def __enter__(self) -> ThreadPool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise PoolClosed("the pool is closed")

    def _register(self, key: str) -> None:
        if key not in self._registered:
            self._store.register_pool(key)
            self._registered.add(key)

    def _lease(self, key: str, token: str, rest: list[Any], asked_at: float) -> Lease:
        return self._leased(key, token, grant(rest), asked_at)

    def _leased(self, key: str, token: str, g: Grant, asked_at: float) -> Lease:
        return Lease(self, key, g.thread_id, token, g.fence, g.deadline_ms, g.ttl_ms, asked_at)

    def _wait(
        self, key: str, token: str, queued: str, give_up: float, next_ms: int
    ) -> Lease | None:
        """Block on our mailbox until a thread is handed to us (a lease), a growth slot came free
        (None: ask again), or time runs out (``PoolTimeout``). While waiting, wake when a lease
        is due to expire and reclaim it: its holder may be dead, and nobody else may be asking."""
        while True:
            left = give_up - time.monotonic()
            step = left if next_ms < 0 else min(left, next_ms / 1000 + 0.001)
            message = self._store.wait_mailbox(key, token, step)
            received_at = time.monotonic()
            if message == "R":
                return None
            if message is not None:
                # Granted when the releaser ran, a moment before we read it: the hand-off takes
                # well under a millisecond, so the receipt time stands in for the grant time.
                return self._leased(key, token, mailbox_grant(message), received_at)
            if received_at < give_up:
                # A lease is due: reclaim it; settled, it goes to the oldest waiter (maybe us).
                next_ms, claimed = self._reap_once(key)
                if claimed:
                    self._settle(key, claimed)
                continue
            # Out of time; a hand-off may still have raced in, and then it is ours.
            word, rest = outcome(self._store.call("take_wait", key, token, queued))
            if word == "GRANTED":
                return self._lease(key, token, rest, received_at)
            if word == "RETRY":
                return None
            raise PoolTimeout(f"no thread of pool {key!r} became free in time")

    def _reap_once(self, key: str) -> tuple[int, list[str]]:
        """Claim up to 100 expired leases of pool ``key``; also the ms until the next is due."""
        token = secrets.token_hex(16)
        reply = self._store.call("reap", key, 100, _ms(self.settings.settle_timeout), token)
        return integers(reply[:1])[0], strings(reply[1:])

    def _grow(self, key: str, token: str, holder: str) -> Lease | None:
        """Create a thread in the slot reserved for ``token`` and lease it to ourselves. None when
        the reservation lapsed and the pool filled up meanwhile (then ask again)."""
        assert self._factory is not None
        thread_id = validate_thread_id(self._factory.create_thread(key))
        asked_at = time.monotonic()
        word, rest = outcome(self._store.call("register", key, token, thread_id, holder))
        if word == "GRANTED":
            logger.info("pool %r grew by thread %s", key, thread_id)
            return self._lease(key, token, rest, asked_at)
        if word == "ABANDONED":
            raise CorruptState(f"pool {key!r} saw this growth as abandoned")
        if word == "DUPLICATE":
            raise CorruptState(
                f"the thread factory of pool {key!r} returned {thread_id!r}, already in the pool"
            )
        logger.warning(
            "pool %r: creating %s took longer than grow_timeout and the pool filled up; "
            "the thread is listed as retired",
            key,
            thread_id,
        )
        return None

    def _settle(self, key: str, thread_ids: list[str]) -> None:
        """Settle claimed threads through the settler (if any) and hand them out again."""
        pending = list(thread_ids)
        try:
            while pending:
                thread_id = pending[0]
                ready = True
                if self._settler is not None:
                    try:
                        ready = self._settler.settle_thread(key, thread_id)
                    except Exception:
                        logger.exception("pool %r: settling %s failed", key, thread_id)
                        self._store.call("settled", key, thread_id, "retry", 0)
                        pending.pop(0)
                        continue
                self._store.call("settled", key, thread_id, "ok" if ready else "gone", 0)
                pending.pop(0)
        except BaseException:
            # Interrupted: let other reapers take the rest over at once rather than after the
            # settle timeout.
            for thread_id in pending:
                with contextlib.suppress(Exception):
                    self._store.call("settled", key, thread_id, "retry", 0)
            raise

    def _abandon(self, key: str, token: str) -> None:
        try:
            self._store.call("abandon", key, token)
        except Exception:
            logger.exception("pool %r: could not undo an interrupted acquire", key)

    def _release_quietly(self, lease: Lease) -> None:
        try:
            self.release(lease)
        except Exception as exc:
            logger.warning("pool %r: release after an error failed: %s", lease.key, exc)
