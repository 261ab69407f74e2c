"""Growth: the one way a pool gains a thread, whether it grows under load or is pre-warmed.

A slot is reserved first (acquire's ``GROW``, or ``reserve`` for a pre-warm), counting threads
and reservations in one step, so racing growers never pass ``max_size``. Then the thread is
created upstream holding the log so far (within the merge limits) and registered in the slot,
its log cursor placed in the same step. Interrupted anywhere, growth leaves neither a
reservation nor an upstream thread that no pool knows (the upstream API cannot list threads).
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

from thread_pool._acompat import shield, sleep
from thread_pool._async.backend import AsyncBackend, request_caps
from thread_pool._async.context_log import AsyncContextLog
from thread_pool._async.owners import AsyncOwners
from thread_pool._async.store import AsyncStore
from thread_pool._model.limits import FENCES_PER_MS
from thread_pool._model.log_events import event
from thread_pool._model.validation import validate_thread_id
from thread_pool._store.replies import Outcome, integers, outcome
from thread_pool._store.scripts import ms
from thread_pool._telemetry import OFF, Scope
from thread_pool._traced import traced_growth
from thread_pool.errors import CorruptState, StoreUnavailable, ThreadOwned
from thread_pool.settings import Settings

logger = logging.getLogger("thread_pool")

# How long a grower whose thread could not be registered keeps asking Redis whether it was.
_CONFIRM_S = 3.0


class AsyncGrower:
    """Reserves slots, creates threads through a backend and registers them."""

    def __init__(self, store: AsyncStore, log: AsyncContextLog, tel: Scope = OFF) -> None:
        self.telemetry = tel
        self._store = store
        self._log = log
        self._owners = AsyncOwners(store)

    async def reserve(
        self, key: str, ticket: str, target: int, settings: Settings
    ) -> tuple[Outcome, list[int]]:
        """Reserve a slot for ``ticket`` if pool ``key`` has fewer than ``target`` threads
        (capped at its ``max_size``), creating the pool with ``settings``' sizes if needed.
        ``GROW`` or ``DONE`` with ``[threads, reserved, cap]``, or ``DRAINING``."""
        word, rest = outcome(
            await self._store.call(
                "admin_reserve",
                key,
                ticket,
                target,
                ms(settings.grow_timeout),
                settings.min_size,
                settings.max_size,
                ms(settings.lease_ttl),
            )
        )
        return word, integers(rest)

    async def unreserve(self, key: str, ticket: str) -> None:
        """Give back a reservation that will not be used (a waiter may grow in its place)."""
        await self._store.call("admin_unreserve", key, ticket)

    async def grow(
        self, backend: AsyncBackend, key: str, ticket: str, holder: str = ""
    ) -> tuple[Outcome, list[Any]]:
        """Create a thread in the slot reserved for ``ticket`` and register it: leased to
        ``holder`` (``GRANTED``), or for none (``""``) handed to the oldest waiter or idle
        (``OK``). ``RETIRED``: the reservation lapsed and the pool filled up meanwhile (the
        thread is listed as retired); ``NOPOOL``: the pool was deleted meanwhile (the thread
        was deleted upstream again); ``ABANDONED``: the grower's acquire was given up.

        It runs to its end even if cancelled meanwhile: a thread created upstream must be either
        registered or deleted again before the cancellation goes on."""
        return await shield(self._fill(backend, key, ticket, holder))

    @traced_growth
    async def _fill(
        self, backend: AsyncBackend, key: str, ticket: str, holder: str
    ) -> tuple[Outcome, list[Any]]:
        thread_id: str | None = None
        try:
            # A new thread starts out knowing the conversation: the log so far is its initial
            # messages, and its cursor is where that read ended.
            messages, seq = await self._log.seed(key, request_caps(backend))
            thread_id = validate_thread_id(await backend.create_thread(key, messages))
            await self._owners.claim(key, [thread_id])
            word, rest = outcome(
                await self._store.call(
                    "register", key, ticket, thread_id, holder, seq, FENCES_PER_MS
                )
            )
        except ThreadOwned:
            # Upstream handed out an id another pool holds: it is that pool's, never deleted here.
            with contextlib.suppress(StoreUnavailable):
                await shield(self.unreserve(key, ticket))
            raise
        except BaseException:
            await shield(self._undo(backend, key, ticket, thread_id))
            raise
        if word in (Outcome.GRANTED, Outcome.OK):
            logger.info(
                "pool %r grew by thread %s",
                key,
                thread_id,
                extra=event("growth.grew", key, thread_id),
            )
        elif word is Outcome.DUPLICATE:
            raise CorruptState(
                f"the backend of pool {key!r} returned thread {thread_id!r}, already in the pool"
            )
        elif word is Outcome.NOPOOL:
            await backend.delete_thread(thread_id)
            await self._owners.release(key, [thread_id])
        elif word is Outcome.RETIRED:
            logger.warning(
                "pool %r: creating %s took longer than grow_timeout and the pool filled up; "
                "the thread is listed as retired",
                key,
                thread_id,
                extra=event("growth.late_retired", key, thread_id),
            )
        return word, rest

    async def _undo(
        self, backend: AsyncBackend, key: str, ticket: str, thread_id: str | None
    ) -> None:
        """After a failure: give the slot back, and keep the new thread if the register script
        ran after all (its reply was lost), else delete it upstream so that it does not leak.
        Redis may be restarting, so the look-up is retried for up to ``_CONFIRM_S``; still
        unknown after that, the thread is deleted (the lesser harm: were it registered, the pool
        drops it as gone at its next settling, and a turn on it fails with upstream's 404)."""
        with contextlib.suppress(StoreUnavailable):  # else it lapses after grow_timeout
            await self.unreserve(key, ticket)
        if thread_id is None:
            return
        registered: bool | None = None
        give_up = time.monotonic() + _CONFIRM_S
        while registered is None:
            try:
                registered = await self._store.has_thread(key, thread_id)
            except StoreUnavailable:
                if time.monotonic() >= give_up:
                    break
                await sleep(0.1)
        if registered:
            return
        try:
            await backend.delete_thread(thread_id)
            with contextlib.suppress(StoreUnavailable):  # else only this pool can reuse the id
                await self._owners.release(key, [thread_id])
            logger.warning(
                "pool %r: thread %s could not be registered; deleted it upstream",
                key,
                thread_id,
                extra=event("growth.undone", key, thread_id),
            )
        except Exception as exc:
            logger.error(
                "pool %r: thread %s could not be registered nor deleted upstream (%s): delete it "
                "by hand",
                key,
                thread_id,
                exc,
                extra=event("growth.leaked", key, thread_id),
            )
