"""The pool: leases of upstream threads per key, coordinated through Redis.

A façade: each job is done by a module of its own (``leasing``, ``waiting``, ``growth``,
``settling``, ``context_log``, ``turn``) over one ``AsyncStore``; this class checks what callers
hand in and wires the parts together.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio as redis

from thread_pool._acompat import LoopBound, open_client, shield
from thread_pool._async.backend import AsyncBackend, ToolHandler, checked_backend
from thread_pool._async.context_log import AsyncContextLog
from thread_pool._async.growth import AsyncGrower
from thread_pool._async.known import AsyncKnownPools
from thread_pool._async.lease import AsyncLease, checked_lease
from thread_pool._async.lease_work import AsyncLeaseWork
from thread_pool._async.leasing import AsyncLeasing
from thread_pool._async.settling import AsyncSettling
from thread_pool._async.sizing import AsyncSizing
from thread_pool._async.store import AsyncStore
from thread_pool._async.streaming import AsyncTurnStream
from thread_pool._model.log import Compactor, LogEntry, MergePolicy, default_compact, validate_merge
from thread_pool._model.log_events import event
from thread_pool._model.status import PoolStats
from thread_pool._model.turns import Turn
from thread_pool._model.validation import (
    check_cap,
    check_flag,
    check_positive,
    check_size,
    check_text,
    check_ttl,
    validate_key,
    validate_role,
    validate_thread_ids,
)
from thread_pool._telemetry import scope
from thread_pool.errors import (
    InvalidArgument,
    LeaseLost,
    LeaseNotOwned,
    PoolClosed,
    StoreUnavailable,
)
from thread_pool.settings import Settings

logger = logging.getLogger("thread_pool")


class AsyncThreadPool:
    """Pools of upstream threads, one pool per key, leased to one holder at a time.

    Every argument is optional: settings come from the environment (``THREAD_POOL_*``) and
    ``.env``, and ``**overrides`` (``lease_ttl=30``, ``redis_url=...``) win over them.

    With a ``backend`` (``AsyncAssistantsBackend``, ``AsyncConversationsBackend``, or any object
    implementing ``AsyncBackend``) the pool creates upstream threads through it, settles them
    with it, and runs turns (``run``). Without one, a pool hands out only the threads registered
    with ``add_threads``.

    Turns of one key share one conversation: each completed turn is appended to the pool's
    canonical log, and a thread receives what it is missing from the log in its next turn's own
    request (``merge="full"``, the default). ``merge="none"`` keeps threads isolated: each holds
    only its own turns (the log is still written, for ``history``). When a thread misses more
    than ``merge_max_entries`` entries or ``merge_max_chars`` characters, the oldest of them are
    folded by ``compact(entries) -> messages`` (default: one clearly marked digest message).
    ``merge`` may also be a callable ``policy(entries) -> messages``: it is given all the entries
    a thread is missing and its messages are sent instead (the merge limits and ``compact`` do
    not apply then). ``log_max_entries`` caps the log: each append trims it to its newest
    entries, and a thread that lost entries to the trim first receives a marked gap message.
    ``merge``, the limits and the retention default to the settings of the same names, which
    every process (and ``thread-pool prewarm``) reads.
    """

    def __init__(
        self,
        *,
        client: redis.Redis | None = None,
        settings: Settings | None = None,
        backend: AsyncBackend | None = None,
        merge: str | MergePolicy | None = None,
        merge_max_entries: int | None = None,
        merge_max_chars: int | None = None,
        compact: Compactor | None = None,
        log_max_entries: int | None = None,
        **overrides: Any,
    ) -> None:
        self.settings = s = Settings.resolve(settings, overrides)
        if backend is not None:
            checked_backend(backend)
        if compact is not None and not callable(compact):
            raise InvalidArgument(f"compact must be callable, not {compact!r}")
        self._own_client = client is None
        self._store = AsyncStore(client if client is not None else open_client(s), s.key_prefix)
        self._backend = backend
        self._known = AsyncKnownPools(self._store)
        self.log = AsyncContextLog(
            self._store,
            self._known,
            merge=validate_merge(s.merge if merge is None else merge),
            max_entries=_cap("merge_max_entries", merge_max_entries, s.merge_max_entries),
            max_chars=_cap("merge_max_chars", merge_max_chars, s.merge_max_chars),
            compact=compact if compact is not None else default_compact,
            log_max_entries=_cap("log_max_entries", log_max_entries, s.log_max_entries),
            log_max_age=s.log_max_age,
            tools=s.merge_tools,
            entry_cap=s.log_entry_max_chars,
            turn_cap=s.log_turn_max_chars,
        )
        self._settling = AsyncSettling(self._store, s, backend)
        self._sizing = AsyncSizing(self._store, s, self._known)
        growth = AsyncGrower(self._store, self.log, scope(s.otel_pool_key))
        self._leasing = AsyncLeasing(self._store, s, self._known, self._settling, growth, backend)
        self.work = AsyncLeaseWork(backend, self.log, self._leasing, self._settling, s)
        """What the pool's leases do with their threads: turns, own calls, renewal."""
        self.telemetry = self._leasing.telemetry  # its OpenTelemetry metrics and spans
        self._closed = False
        self._loop = LoopBound(f"the {type(self).__name__}")

    @property
    def backend(self) -> AsyncBackend | None:
        """The backend this pool runs turns with (None: it has none)."""
        return self._backend

    # -- leases ------------------------------------------------------------------------------

    @asynccontextmanager
    async def lease(
        self, key: str, timeout: float | None = None, *, keepalive: bool = False
    ) -> AsyncIterator[AsyncLease]:
        """Hold a thread of pool ``key`` for the ``async with`` block; it is released on every
        exit path, cancellation included. Raises ``LeaseLost`` on exit if the lease expired while
        the block ran (its upstream work may have overlapped another holder's).

        ``keepalive=True`` renews the lease in the background for the whole block (as a turn
        does while it runs): for calls of your own that may outlast the TTL. A failed renewal
        marks the lease lost at once: ``lease.lost`` says why, and ``check``, ``run``,
        ``pending_context`` and ``record`` raise ``LeaseLost``."""
        async with self._hold(await self.acquire(key, timeout), keepalive) as held:
            yield held

    @asynccontextmanager
    async def _hold(self, held: AsyncLease, keepalive: bool = False) -> AsyncIterator[AsyncLease]:
        """``held`` for the block (see ``lease``)."""
        try:
            if keepalive:
                async with self.work.renewer(held):
                    yield held
            else:
                yield held
        except BaseException:
            if not held.released:
                await shield(self._release_quietly(held))
            raise
        if held.lost is not None:
            await shield(self._release_quietly(held))
            held.alive()  # the block's work may have overlapped another holder's: say so
        if not held.released:
            await shield(self.release(held))

    async def acquire(self, key: str, timeout: float | None = None) -> AsyncLease:
        """Lease a thread of pool ``key``: an idle one, a new one if the pool may grow, else the
        first one released, waiting up to ``timeout`` seconds (default: the acquire_timeout
        setting). Pair it with ``release``."""
        return await self._acquire(key, timeout, "")

    async def _acquire(self, key: str, timeout: float | None, turn: str) -> AsyncLease:
        self._check_open()
        key = validate_key(key)
        wait = self.settings.acquire_timeout if timeout is None else timeout
        check_positive("timeout", wait, allow_zero=True)
        token, g, asked_at = await self._leasing.acquire(key, wait, turn)
        held = AsyncLease(self, key, g.thread_id, token, g.fence, g.deadline_ms, g.ttl_ms, asked_at)
        held.turn_start = g.turn
        return held

    async def release(self, lease: AsyncLease) -> None:
        """Give a leased thread back to its pool (to the oldest waiter, or idle).

        Raises ``LeaseNotOwned`` if the lease is not held by this token any more (released
        already, or reaped and granted again), ``LeaseLost`` if it expired before the release; in
        both cases nothing is changed."""
        await self._leasing.release(checked_lease(lease))

    async def renew(self, lease: AsyncLease, ttl: float | None = None) -> float:
        """Extend ``lease`` to ``ttl`` seconds from now (default: the pool's TTL)."""
        if ttl is not None:
            check_ttl("ttl", ttl)
        return await self._leasing.renew(checked_lease(lease), ttl)

    async def check(
        self, lease: AsyncLease, min_remaining: float | None = None, *, starts_run: bool = False
    ) -> float:
        """Raise ``LeaseLost`` unless ``lease`` is still current in Redis; renew it first when less
        than ``min_remaining`` seconds (default: the renew_margin setting) are left. Returns the
        seconds left. ``starts_run``: the write that follows starts a run (response), so it is
        recorded as in flight (id not known yet) for a settler to wait on if the holder stops."""
        need = self.settings.renew_margin if min_remaining is None else min_remaining
        check_positive("min_remaining", need, allow_zero=True)
        starts_run = check_flag("starts_run", starts_run)
        return await self._leasing.check(checked_lease(lease), need, starts_run=starts_run)

    # -- turns -------------------------------------------------------------------------------

    async def run(
        self,
        key: str,
        message: str,
        *,
        tool_handler: ToolHandler | None = None,
        metadata: Mapping[str, object] | None = None,
        timeout: float | None = None,
        **params: Any,
    ) -> Turn:
        """Lease a thread of pool ``key``, run one turn on it (see ``AsyncLease.run``), release
        it. ``timeout`` bounds the wait for a free thread."""
        self.work.check_call(message, metadata, params)  # bad input: refused before any request
        async with self._hold(await self._acquire(key, timeout, self.work.turn_grant)) as held:
            return await held.run(message, tool_handler=tool_handler, metadata=metadata, **params)

    @asynccontextmanager
    async def stream(
        self,
        key: str,
        message: str,
        *,
        tool_handler: ToolHandler | None = None,
        metadata: Mapping[str, object] | None = None,
        timeout: float | None = None,
        **params: Any,
    ) -> AsyncIterator[AsyncTurnStream]:
        """Lease a thread of pool ``key`` and stream one turn on it (see ``AsyncLease.stream``);
        the thread is released when the block ends::

            async with pool.stream("doc-42", "Summarise section 3") as events:
                async for event in events:
                    if isinstance(event, TextDelta):
                        print(event.text, end="")
        """
        self.work.check_call(message, metadata, params, streaming=True)
        async with self._hold(await self._acquire(key, timeout, self.work.turn_grant)) as held:
            async with held.stream(
                message, tool_handler=tool_handler, metadata=metadata, **params
            ) as events:
                yield events

    # -- the canonical log -------------------------------------------------------------------

    async def history(self, key: str) -> list[LogEntry]:
        """Pool ``key``'s canonical conversation: every logged message, oldest first."""
        return await self.log.history(validate_key(key))

    async def append(
        self, key: str, role: str, content: str, *, append_id: str | None = None
    ) -> int:
        """Add a message to pool ``key``'s log that every thread will receive with its next turn
        (a document's text, say). Content over upstream's limit is sent in marked pieces.
        ``append_id`` makes a retried append safe: an id already logged adds nothing. Returns the
        log seq of the entry."""
        self._check_open()
        key = validate_key(key)
        role = validate_role(role)
        if not isinstance(content, str) or not content.strip():
            raise InvalidArgument("content must be a non-empty string")
        check_text("content", content)
        entry_id = append_id if append_id is not None else "append:" + secrets.token_hex(12)
        if not isinstance(entry_id, str) or not entry_id:
            raise InvalidArgument("append_id must be a non-empty string")
        check_text("append_id", entry_id)
        await self._known.register(key)
        return await self.log.append(key, entry_id, "", 0, "", [(role, content)])

    # -- pools -------------------------------------------------------------------------------

    async def add_threads(self, key: str, thread_ids: Iterable[str]) -> int:
        """Register existing upstream threads with pool ``key`` (creating the pool with the
        default sizes if needed). Threads already registered are skipped. Returns how many were
        added; raises ``PoolFull`` (adding none) if they would exceed ``max_size``, and
        ``ThreadOwned`` (adding none) if another pool under the prefix owns one of them. A
        thread the pool had retired comes back (a purge no longer deletes it); a pool whose
        state was lost (``PoolStateLost``) is revived with these threads. Either way their
        fences go on above any they can have had."""
        self._check_open()
        key = validate_key(key)
        ids = validate_thread_ids(thread_ids)
        if not ids:
            return 0
        return await self._sizing.add(key, ids)

    async def configure(
        self,
        key: str,
        *,
        min_size: int | None = None,
        max_size: int | None = None,
        ttl: float | None = None,
        idle_expiry: float | None = None,
    ) -> PoolStats:
        """Set pool ``key``'s sizes, lease TTL and idle expiry (creating the pool if needed);
        ``None`` keeps a value. Shrinking below the thread count retires idle threads at once and
        leased ones as they come back (``stats().retired`` counts them; they may still exist
        upstream). ``idle_expiry``: seconds with no lease granted after which ``thread-pool
        maintain`` and ``gc`` retire the pool, whatever their own default; 0 removes it."""
        self._check_open()
        key = validate_key(key)
        low = None if min_size is None else check_size("min_size", min_size)
        high = None if max_size is None else check_size("max_size", max_size, least=1)
        if ttl is not None:
            check_ttl("ttl", ttl)
            if ttl <= self.settings.renew_margin:
                raise InvalidArgument(
                    f"ttl ({ttl}s) must exceed the renew margin ({self.settings.renew_margin}s)"
                )
        if low is not None and high is not None and low > high:
            raise InvalidArgument(f"min_size ({low}) exceeds max_size ({high})")
        await self._sizing.configure(key, low, high, ttl, idle_expiry)
        return await self.stats(key)

    async def purge_retired(self, key: str) -> int:
        """Delete upstream, through the backend, the threads retired from pool ``key`` (a shrink
        below its thread count retires them; the registry keeps their ids until then). Returns
        how many were deleted or found gone already; a failure puts the id back for a retry."""
        key = validate_key(key)
        if self._backend is None:
            raise InvalidArgument(f"purging pool {key!r} needs a backend to delete threads with")
        return await self._sizing.purge_retired(key, self._backend)

    async def stats(self, key: str) -> PoolStats:
        """A consistent snapshot of pool ``key``'s counts and counters."""
        return await self._sizing.stats(validate_key(key))

    async def pools(self) -> list[str]:
        """The keys of every pool under this key prefix."""
        return await self._store.pool_keys()

    async def reap(self, key: str | None = None) -> int:
        """Reclaim expired leases (of pool ``key``, or of every pool) now, settle their threads
        and hand them out again. Returns how many threads were reclaimed."""
        keys = [validate_key(key)] if key is not None else await self.pools()
        if self._leasing.has_pending:
            await self._leasing.retry_pending()
        total = 0
        for pool_key in keys:
            total += await self._settling.reap(pool_key)
        return total

    # -- life cycle --------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Stop granting leases and close the Redis connections this pool opened. A client given
        to the pool stays open, and the pool uses it no more (its dispatcher's readers stop)."""
        self._closed = True
        await self.work.aclose()
        if self._leasing.has_pending:
            with contextlib.suppress(Exception):
                await self._leasing.retry_pending()
        await self._store.aclose(close_client=self._own_client)

    async def __aenter__(self) -> AsyncThreadPool:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _check_open(self) -> None:
        self._loop.check()
        if self._closed:
            raise PoolClosed("the pool is closed")

    async def _release_quietly(self, lease: AsyncLease) -> None:
        try:
            await self.release(lease)
        except (LeaseLost, LeaseNotOwned, StoreUnavailable) as exc:
            # The error that ended the turn says as much already (a lost lease, Redis away: the
            # release is retried later); the reaper settles an expired lease's thread.
            why = event("release.after_error", lease.key, lease.thread_id, fence=lease.fence)
            logger.info("pool %r: release after an error: %s", lease.key, exc, extra=why)
        except Exception as exc:
            why = event("release.after_error_failed", lease.key, lease.thread_id, fence=lease.fence)
            logger.warning("pool %r: release after an error failed: %s", lease.key, exc, extra=why)


def _cap(name: str, given: int | None, setting: int | None) -> int | None:
    """A merge limit given to the pool object (checked), else the setting's."""
    return check_cap(name, given) if given is not None else setting
