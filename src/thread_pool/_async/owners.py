"""One pool per upstream thread: the owner record every way into a pool goes through.

Under one key prefix a thread belongs to at most one pool, whichever way it enters (an add, a
growth or pre-warm, an import), so that no two pools lease it at once and deleting a pool can only
delete its own threads upstream. The record (``<prefix>:owners``, thread id -> pool key) cannot
share a cluster slot with every pool, so it is not written in the pool's script: a thread is
claimed for the pool first, atomically (``owners.lua``: all of the threads, or none if another
pool owns one), and registered after. A registration that is refused gives back what it claimed;
one that fails half-way (Redis gone) keeps the claim, which only the same pool can use, so a
retry completes it. The record goes when the thread leaves: a purge of a retired thread, or a
delete of the pool (which drops every record naming it, those of a lost state included).
"""

from __future__ import annotations

from thread_pool._async.store import AsyncStore
from thread_pool._store.replies import Outcome, outcome, strings
from thread_pool.errors import ThreadOwned


class AsyncOwners:
    """Claims and gives back the threads of the pools under one prefix."""

    def __init__(self, store: AsyncStore) -> None:
        self._store = store

    async def claim(self, key: str, thread_ids: list[str]) -> list[str]:
        """Make every thread of ``thread_ids`` pool ``key``'s; returns those it did not own
        before (to give back if their registration is refused). ``ThreadOwned`` (claiming none)
        if another pool owns one of them."""
        if not thread_ids:
            return []
        word, rest = outcome(await self._store.owners("claim", key, thread_ids))
        if word is Outcome.OWNED:
            thread_id, owner = strings(rest)
            raise ThreadOwned(
                f"thread {thread_id!r} belongs to pool {owner!r}; a thread is in one pool at a "
                f"time (delete pool {owner!r} to free it, or add the thread there)",
                thread_id=thread_id,
                owner=owner,
            )
        return strings(rest)

    async def release(self, key: str, thread_ids: list[str]) -> None:
        """Drop the records of those of ``thread_ids`` that pool ``key`` owns."""
        for start in range(0, len(thread_ids), 1000):
            await self._store.owners("release", key, thread_ids[start : start + 1000])

    async def release_all(self, key: str) -> None:
        """Drop every record naming pool ``key`` (it is being deleted): those of the threads it
        knows, and those of threads it no longer knows (its state was lost, or a registration
        was cut off after the claim)."""
        await self.release(key, await self._store.owned_by(key))
