"""What one pool object knows of the pools it used: that they are in the registry, and their
epoch, by which a pool that Redis forgot is told apart from a new one."""

from __future__ import annotations

import contextlib
import time
from typing import Any

from thread_pool._async.store import AsyncStore
from thread_pool._store.replies import integers
from thread_pool.errors import PoolStateLost, StoreUnavailable


class AsyncKnownPools:
    """Registration and epochs of the pools one pool object has used.

    The epoch (see lost_state in _common.lua) of every pool is sent with each acquire and log
    append, so that a pool Redis forgot is noticed and marked lost instead of being silently
    re-created empty. It is learned once per key, after the first grant or append."""

    def __init__(self, store: AsyncStore) -> None:
        self._store = store
        self._registered: set[str] = set()
        self._epochs: dict[str, str] = {}

    async def register(self, key: str) -> None:
        """Put ``key`` in the registry of pools, once per pool object."""
        if key not in self._registered:
            await self._store.register_pool(key)
            self._registered.add(key)

    def epoch(self, key: str) -> str:
        """The epoch of pool ``key`` as this object saw it ("": not known yet)."""
        return self._epochs.get(key, "")

    async def learn(self, key: str) -> None:
        """Remember the epoch of pool ``key`` the first time (best effort: if Redis is away it is
        learned next time)."""
        if self._epochs.get(key):
            return
        with contextlib.suppress(StoreUnavailable):
            self._epochs[key] = await self._store.epoch(key)

    async def lost(self, key: str, rest: list[Any]) -> PoolStateLost:
        """The error for a pool marked lost (``rest``: the LOSTSTATE reply's tail). The epoch
        this object knew is forgotten: once an operator has restored or re-created the pool, it
        is learned afresh. The pool goes back into the registry (lost with the rest of Redis), so
        ``thread-pool status`` names it."""
        self._epochs.pop(key, None)
        self._registered.discard(key)
        with contextlib.suppress(StoreUnavailable):
            await self._store.register_pool(key)
        found = integers(rest[:1])[0] / 1000 if rest else time.time()
        return PoolStateLost.of(key, found)
