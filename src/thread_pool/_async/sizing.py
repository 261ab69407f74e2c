"""A pool's threads and sizes: registering existing threads, setting sizes and TTL, deleting
retired threads upstream, and the counts of ``stats()``. The pool checks what callers hand in;
this does the Redis side."""

from __future__ import annotations

from thread_pool._acompat import shield
from thread_pool._async.backend import AsyncBackend
from thread_pool._async.known import AsyncKnownPools
from thread_pool._async.owners import AsyncOwners
from thread_pool._async.store import AsyncStore
from thread_pool._model.limits import FENCES_PER_MS, MAX_LOG_AGE
from thread_pool._model.status import PoolStats
from thread_pool._model.validation import check_positive
from thread_pool._store.replies import Outcome, integers, outcome, pool_stats
from thread_pool._store.scripts import ms
from thread_pool.errors import InvalidArgument, PoolFull, UnknownPool
from thread_pool.settings import Settings


class AsyncSizing:
    """The size-keeping side of one pool object (defaults for a new pool from ``settings``)."""

    def __init__(self, store: AsyncStore, settings: Settings, known: AsyncKnownPools) -> None:
        self._store = store
        self._settings = settings
        self._known = known
        self._owners = AsyncOwners(store)

    def _defaults(self) -> tuple[int, int, int]:
        s = self._settings
        return s.min_size, s.max_size, ms(s.lease_ttl)

    async def add(self, key: str, ids: list[str]) -> int:
        """Register threads ``ids`` (see ``AsyncThreadPool.add_threads``): claimed for the pool
        first (``ThreadOwned`` if another pool has one), given back if the pool refuses them."""
        claimed = await self._owners.claim(key, ids)
        await self._known.register(key)
        word, rest = outcome(
            await self._store.call("add", key, 1, *self._defaults(), FENCES_PER_MS, *ids)
        )
        if word is Outcome.FULL:
            await self._owners.release(key, claimed)
            size, max_size = integers(rest)
            raise PoolFull(
                f"pool {key!r} has {size} threads of at most {max_size}; "
                f"adding {len(ids)} would exceed max_size"
            )
        return integers(rest)[0]

    async def configure(
        self,
        key: str,
        min_size: int | None,
        max_size: int | None,
        ttl: float | None,
        idle_expiry: float | None = None,
    ) -> None:
        """Set sizes, TTL and idle expiry (see ``AsyncThreadPool.configure``); None keeps a
        value."""
        if idle_expiry is not None:
            check_positive("idle_expiry", idle_expiry, allow_zero=True, at_most=MAX_LOG_AGE)
        await self._known.register(key)
        word, rest = outcome(
            await self._store.call(
                "configure",
                key,
                "" if min_size is None else min_size,
                "" if max_size is None else max_size,
                "" if ttl is None else ms(ttl),
                *self._defaults(),
                "" if idle_expiry is None else ms(idle_expiry),
            )
        )
        if word is Outcome.BADSIZE:
            low, high = integers(rest)
            raise InvalidArgument(
                f"pool {key!r} would have min_size {low} above max_size {high}; nothing changed"
            )

    async def purge_retired(self, key: str, backend: AsyncBackend) -> int:
        """Delete retired threads upstream (see ``AsyncThreadPool.purge_retired``)."""
        purged = 0
        while (thread_id := await self._store.pop_retired(key)) is not None:
            try:
                await backend.delete_thread(thread_id)
            except BaseException:
                await shield(self._store.push_retired(key, thread_id))
                raise
            await self._owners.release(key, [thread_id])
            # A retired thread kept its cursor while it could still come back (add_threads);
            # deleted upstream, it cannot.
            await self._store.forget_cursor(key, thread_id)
            purged += 1
        return purged

    async def stats(self, key: str) -> PoolStats:
        """A consistent snapshot of pool ``key``'s counts and counters."""
        word, rest = outcome(await self._store.call("stats", key))
        if word is Outcome.NOPOOL:
            raise UnknownPool(f"unknown pool {key!r}")
        if word is Outcome.LOSTSTATE:
            raise await self._known.lost(key, rest)
        return pool_stats(key, rest)
