"""The pool: leases of upstream threads per key, coordinated through Redis."""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any

import redis.asyncio as redis

from thread_pool._acompat import call_handler, holder_name, shield, sleep
from thread_pool._async.backend import AsyncBackend, ToolHandler
from thread_pool._async.factory import AsyncSettler, AsyncThreadFactory
from thread_pool._async.lease import AsyncLease
from thread_pool._async.store import AsyncStore, open_client
from thread_pool._async.turn import run_turn
from thread_pool._model.log import (
    Compactor,
    LogEntry,
    MergePolicy,
    Missing,
    check_cap,
    checked_messages,
    default_compact,
    entry_of,
    fold,
    log_pairs,
    messages_for,
    parse_missing,
    retention_marker,
    validate_merge,
    validate_role,
)
from thread_pool._model.turns import Turn, check_text, validate_message, validate_metadata
from thread_pool._model.validation import MAX_SIZE, check_positive, validate_key, validate_thread_id
from thread_pool._store.errors import mapped
from thread_pool._store.replies import (
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
from thread_pool.errors import (
    CorruptState,
    InvalidArgument,
    LeaseLost,
    LeaseNotOwned,
    PoolClosed,
    PoolDraining,
    PoolFull,
    PoolStateLost,
    PoolTimeout,
    StoreUnavailable,
    TooManyWaiters,
    UnknownPool,
)
from thread_pool.settings import Settings

logger = logging.getLogger("thread_pool")

# Reads the log as a thread that made none of it, to seed a new thread (no thread has this id:
# upstream ids have no spaces).
_NEW_THREAD = "new thread"

# Outcomes after which a failed acquire holds nothing, so there is nothing to abandon.
_NOTHING_HELD = (PoolTimeout, TooManyWaiters, UnknownPool, PoolClosed, PoolDraining)


# How long a grower whose thread could not be registered keeps asking Redis whether it was.
_CONFIRM_S = 3.0

# A waiter's queue entry lapses this long after the waiter last said it is still there (and a
# hand-off skips a lapsed entry), so a waiter that died costs no thread more than this; a live
# waiter says so every _WAIT_REFRESH_S.
_WAIT_LIVE_S = 5.0
_WAIT_REFRESH_S = 2.0

# How often a settler reads a stopped holder's in-flight record while waiting for it to name
# the request it sent (a rare wait: the holder stopped in the instant of a send).
_IN_FLIGHT_POLL_S = 0.1

# Clean-ups kept for a retry when Redis is away (beyond this, leases expire by their TTL).
_MAX_PENDING = 10_000


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))


class AsyncThreadPool:
    """Pools of upstream threads, one pool per key, leased to one holder at a time.

    Every argument is optional: settings come from the environment (``THREAD_POOL_*``) and
    ``.env``, and ``**overrides`` (``lease_ttl=30``, ``redis_url=...``) win over them.

    With a ``backend`` (``AsyncAssistantsBackend``, ``AsyncConversationsBackend``) the pool creates
    upstream threads through it, settles them with it, and runs turns (``run``). Without one, a
    ``thread_factory`` (and ``settler``) may be given; with neither, a pool hands out only the
    threads registered with ``add_threads``.

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
    """

    def __init__(
        self,
        *,
        client: redis.Redis | None = None,
        settings: Settings | None = None,
        backend: AsyncBackend | None = None,
        thread_factory: AsyncThreadFactory | None = None,
        settler: AsyncSettler | None = None,
        merge: str | MergePolicy = "full",
        merge_max_entries: int | None = None,
        merge_max_chars: int | None = None,
        compact: Compactor | None = None,
        log_max_entries: int | None = None,
        **overrides: Any,
    ) -> None:
        self.settings = Settings.resolve(settings, overrides)
        self._own_client = client is None
        self._store = AsyncStore(
            client if client is not None else open_client(self.settings), self.settings.key_prefix
        )
        self._backend = backend
        self._factory = thread_factory if thread_factory is not None else backend
        self._settler = settler if settler is not None else backend
        # What acquire sends every time, packed once (see acquire.lua).
        s = self.settings
        grows = int(self._factory is not None)
        self._config = (
            f"{grows}|{grows}|{s.min_size}|{s.max_size}|{_ms(s.lease_ttl)}|{s.max_waiters}"
            f"|{_ms(s.grow_timeout)}|{_ms(s.settle_timeout)}|{_ms(s.reclaim_delay)}"
        )
        self.merge = validate_merge(merge)
        self.merge_max_entries = check_cap("merge_max_entries", merge_max_entries)
        self.merge_max_chars = check_cap("merge_max_chars", merge_max_chars)
        if compact is not None and not callable(compact):
            raise InvalidArgument(f"compact must be callable, not {compact!r}")
        self._compact: Compactor = compact if compact is not None else default_compact
        self.log_max_entries = check_cap("log_max_entries", log_max_entries)
        self._registered: set[str] = set()
        # The epoch (see lost_state in _common.lua) of every pool this object has used: sent with
        # each acquire and log append, so that a pool Redis forgot is noticed and marked lost
        # instead of being silently re-created empty. Learned once per key, after the first grant.
        self._epochs: dict[str, str] = {}
        # Clean-ups (an abandon, a release) that failed because Redis was away, as (script, key,
        # args): run again before the next acquire, so that a Redis that comes back with its data
        # (AOF, a replica) does not keep a queue entry, a lease or a hand-off for a caller that
        # has gone, until its deadline. Each is safe to run late (they act by token only).
        self._pending: list[tuple[str, str, tuple[str | int, ...]]] = []
        self._closed = False

    # -- leases ------------------------------------------------------------------------------

    @asynccontextmanager
    async def lease(self, key: str, timeout: float | None = None) -> AsyncIterator[AsyncLease]:
        """Hold a thread of pool ``key`` for the ``async with`` block; it is released on every
        exit path, cancellation included. Raises ``LeaseLost`` on exit if the lease expired while
        the block ran (its upstream work may have overlapped another holder's)."""
        held = await self.acquire(key, timeout)
        try:
            yield held
        except BaseException:
            if not held.released:
                await shield(self._release_quietly(held))
            raise
        if not held.released:
            await shield(self.release(held))

    async def acquire(self, key: str, timeout: float | None = None) -> AsyncLease:
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
            await self._register(key)
        if self._pending:
            await self._retry_pending()
        try:
            while True:
                asked_at = time.monotonic()
                word, rest = outcome(
                    await self._store.call(
                        "acquire",
                        key,
                        token,
                        holder,
                        _ms(min(give_up - asked_at, _WAIT_LIVE_S)),
                        self._config,
                        self._epochs.get(key, ""),
                    )
                )
                if word == "GRANTED":
                    return await self._learned(self._lease(key, token, rest, asked_at))
                if word == "SETTLE":
                    await self._settle(key, strings(rest))
                    continue
                if word == "GROW":
                    grown = await self._grow(key, token, holder)
                    if grown is not None:
                        return await self._learned(grown)
                    continue
                if word == "WAIT":
                    queued = text(rest[1])
                    waited = await self._wait(key, token, queued, give_up, integers(rest[2:])[0])
                    if waited is not None:
                        return await self._learned(waited)
                    continue
                if word == "LOSTSTATE":
                    raise await self._state_lost(key, rest)
                if word == "TIMEOUT":
                    raise PoolTimeout(f"no thread of pool {key!r} became free within {wait}s")
                if word == "FULL":
                    raise TooManyWaiters(
                        f"pool {key!r} already has {integers(rest)[0]} waiters "
                        f"(max_waiters={self.settings.max_waiters})"
                    )
                if word == "DRAINING":
                    raise PoolDraining(f"pool {key!r} is draining; it grants no new leases")
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
            await shield(self._abandon(key, token))
            raise

    async def release(self, lease: AsyncLease) -> None:
        """Give a leased thread back to its pool (to the oldest waiter, or idle).

        Raises ``LeaseNotOwned`` if the lease is not held by this token any more (released
        already, or reaped and granted again), ``LeaseLost`` if it expired before the release; in
        both cases nothing is changed."""
        args = (lease.thread_id, lease.token, 0, int(lease.dirty))
        try:
            word, _ = outcome(await self._store.call("release", lease.key, *args))
        except StoreUnavailable:
            self._later("release", lease.key, args)
            raise
        lease.released = True
        if word == "SETTLE":
            # A turn was cut short and its run may still be active: settle the thread now, so
            # it reaches the next holder (or waiter) quiet.
            _, claimed = await self._reap_once(lease.key)
            if claimed:
                await self._settle(lease.key, claimed)
            return
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

    async def renew(self, lease: AsyncLease, ttl: float | None = None) -> float:
        """Extend ``lease`` to ``ttl`` seconds from now (default: the pool's TTL)."""
        if ttl is not None:
            check_positive("ttl", ttl)
        asked_at = time.monotonic()
        word, rest = outcome(
            await self._store.call(
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

    async def check(
        self, lease: AsyncLease, min_remaining: float | None = None, *, starts_run: bool = False
    ) -> float:
        """Raise ``LeaseLost`` unless ``lease`` is still current in Redis; renew it first when less
        than ``min_remaining`` seconds (default: the renew_margin setting) are left. Returns the
        seconds left. ``starts_run``: the write that follows starts a run (response), so it is
        recorded as in flight (id not known yet) for a settler to wait on if the holder stops."""
        need = self.settings.renew_margin if min_remaining is None else min_remaining
        check_positive("min_remaining", need, allow_zero=True)
        word, rest = outcome(
            await self._store.call(
                "check", lease.key, lease.thread_id, lease.token, _ms(need), int(starts_run)
            )
        )
        if word == "SHORT":
            await self.renew(lease)
            if starts_run:
                return await self.check(lease, 0, starts_run=True)
            return lease.remaining()
        if word != "OK":
            raise LeaseLost(
                f"lease on thread {lease.thread_id!r} of pool {lease.key!r} "
                f"(fence {lease.fence}) is no longer current"
            )
        return integers(rest)[0] / 1000

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
        # Bad input is refused before any request (leasing may create a thread upstream).
        validate_message(message)
        validate_metadata(metadata)
        async with self.lease(key, timeout) as held:
            return await held.run(message, tool_handler=tool_handler, metadata=metadata, **params)

    async def run_on(
        self,
        lease: AsyncLease,
        message: str,
        *,
        tool_handler: ToolHandler | None = None,
        metadata: Mapping[str, object] | None = None,
        **params: Any,
    ) -> Turn:
        """Run one turn on a held ``lease`` (``lease.run`` calls this)."""
        if self._backend is None:
            raise InvalidArgument("this pool has no backend to run turns with")
        if lease.released:
            raise LeaseNotOwned(f"lease on thread {lease.thread_id!r} was already released")
        return await run_turn(
            self,
            self._backend,
            lease,
            message,
            tool_handler=tool_handler,
            metadata=metadata,
            params=params,
        )

    # -- the canonical log -------------------------------------------------------------------

    async def history(self, key: str) -> list[LogEntry]:
        """Pool ``key``'s canonical conversation: every logged message, oldest first."""
        key = validate_key(key)
        return [entry_of(i, f) for i, f in await self._store.read_log(key)]

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
        await self._register(key)
        return await self._append_log(key, entry_id, "", 0, "", [(role, content)])

    # -- pools -------------------------------------------------------------------------------

    async def add_threads(self, key: str, thread_ids: Iterable[str]) -> int:
        """Register existing upstream threads with pool ``key`` (creating the pool with the
        default sizes if needed). Threads already registered are skipped. Returns how many were
        added; raises ``PoolFull`` (adding none) if they would exceed ``max_size``."""
        self._check_open()
        key = validate_key(key)
        ids = list(dict.fromkeys(validate_thread_id(t) for t in thread_ids))
        if not ids:
            return 0
        await self._register(key)
        word, rest = outcome(
            await self._store.call(
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

    async def configure(
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
                isinstance(size, bool) or not isinstance(size, int) or not least <= size <= MAX_SIZE
            ):
                raise InvalidArgument(
                    f"{name} must be an integer from {least} to {MAX_SIZE}, not {size!r}"
                )
        if ttl is not None:
            check_positive("ttl", ttl)
            if ttl <= self.settings.renew_margin:
                raise InvalidArgument(
                    f"ttl ({ttl}s) must exceed the renew margin ({self.settings.renew_margin}s)"
                )
        if min_size is not None and max_size is not None and min_size > max_size:
            raise InvalidArgument(f"min_size ({min_size}) exceeds max_size ({max_size})")
        await self._register(key)
        word, rest = outcome(
            await self._store.call(
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
        return await self.stats(key)

    async def purge_retired(self, key: str) -> int:
        """Delete upstream, through the backend, the threads retired from pool ``key`` (a shrink
        below its thread count retires them; the registry keeps their ids until then). Returns
        how many were deleted or found gone already; a failure puts the id back for a retry."""
        key = validate_key(key)
        if self._backend is None:
            raise InvalidArgument(f"purging pool {key!r} needs a backend to delete threads with")
        purged = 0
        while (thread_id := await self._store.pop_retired(key)) is not None:
            try:
                await self._backend.delete_thread(thread_id)
            except BaseException:
                await shield(self._store.push_retired(key, thread_id))
                raise
            purged += 1
        return purged

    async def stats(self, key: str) -> PoolStats:
        """A consistent snapshot of pool ``key``'s counts and counters."""
        key = validate_key(key)
        word, rest = outcome(await self._store.call("stats", key))
        if word == "NOPOOL":
            raise UnknownPool(f"unknown pool {key!r}")
        if word == "LOSTSTATE":
            raise await self._state_lost(key, rest)
        return pool_stats(key, rest)

    async def pools(self) -> list[str]:
        """The keys of every pool under this key prefix."""
        return await self._store.pool_keys()

    async def reap(self, key: str | None = None) -> int:
        """Reclaim expired leases (of pool ``key``, or of every pool) now, settle their threads
        and hand them out again. Returns how many threads were reclaimed."""
        keys = [validate_key(key)] if key is not None else await self.pools()
        if self._pending:
            await self._retry_pending()
        total = 0
        for pool_key in keys:
            while True:
                claimed = (await self._reap_once(pool_key))[1]
                if not claimed:
                    break
                total += len(claimed)
                await self._settle(pool_key, claimed)
        return total

    # -- life cycle --------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Stop granting leases and close the Redis connections this pool opened."""
        self._closed = True
        if self._pending:
            with contextlib.suppress(Exception):
                await self._retry_pending()
        if self._own_client:
            await self._store.aclose()

    async def __aenter__(self) -> AsyncThreadPool:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- internals ---------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise PoolClosed("the pool is closed")

    async def _register(self, key: str) -> None:
        if key not in self._registered:
            await self._store.register_pool(key)
            self._registered.add(key)

    async def _learned(self, lease: AsyncLease) -> AsyncLease:
        """Remember the epoch of ``lease``'s pool the first time this object gets a lease on it
        (one read per key and pool object; best effort: unknown, it is learned next time)."""
        if not self._epochs.get(lease.key):
            await self._learn_epoch(lease.key)
        return lease

    async def _learn_epoch(self, key: str) -> None:
        try:
            with mapped(f"read the epoch of pool {key!r}"):
                epoch: Any = await self._store.client.hget(self._store.keys(key).meta, "epoch")
        except StoreUnavailable:
            return
        self._epochs[key] = text(epoch) if epoch is not None else ""

    async def _state_lost(self, key: str, rest: list[Any]) -> PoolStateLost:
        """The error for a pool marked lost. The epoch this object knew is forgotten: once an
        operator has restored or re-created the pool, it is learned afresh. The pool goes back
        into the registry (lost with the rest of Redis), so ``thread-pool status`` names it."""
        self._epochs.pop(key, None)
        self._registered.discard(key)
        with contextlib.suppress(StoreUnavailable):
            await self._store.register_pool(key)
        found = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(integers(rest[:1])[0] / 1000))
        return PoolStateLost(
            f"the state of pool {key!r} is gone from redis (found lost at {found} UTC: redis "
            "restarted without persistence, or the pool's keys were removed while in use); "
            f"restore it with 'thread-pool import <backup>', or re-create its threads with "
            f"'thread-pool prewarm {key}'"
        )

    def _lease(self, key: str, token: str, rest: list[Any], asked_at: float) -> AsyncLease:
        return self._leased(key, token, grant(rest), asked_at)

    def _leased(self, key: str, token: str, g: Grant, asked_at: float) -> AsyncLease:
        return AsyncLease(self, key, g.thread_id, token, g.fence, g.deadline_ms, g.ttl_ms, asked_at)

    async def _wait(
        self, key: str, token: str, queued: str, give_up: float, next_ms: int
    ) -> AsyncLease | None:
        """Block on our mailbox until a thread is handed to us (a lease), a growth slot came free
        (None: ask again), or time runs out (``PoolTimeout``). While waiting, wake when a lease
        is due to expire and reclaim it (its holder may be dead, and nobody else may be asking),
        and every ``_WAIT_REFRESH_S`` to keep our queue entry live."""
        refresh_at = time.monotonic() + _WAIT_REFRESH_S
        due_at = None if next_ms < 0 else time.monotonic() + next_ms / 1000 + 0.001
        while True:
            wake = min(give_up, refresh_at, give_up if due_at is None else due_at)
            message = await self._store.wait_mailbox(key, token, wake - time.monotonic())
            received_at = time.monotonic()
            if message == "R":
                return None
            if message is not None:
                # Granted when the releaser ran, a moment before we read it: the hand-off takes
                # well under a millisecond, so the receipt time stands in for the grant time.
                return self._leased(key, token, mailbox_grant(message), received_at)
            if received_at >= give_up:
                # Out of time; a hand-off may still have raced in, and then it is ours.
                word, rest = outcome(await self._store.call("take_wait", key, token, queued))
                if word == "GRANTED":
                    return self._lease(key, token, rest, received_at)
                if word == "RETRY":
                    return None
                raise PoolTimeout(f"no thread of pool {key!r} became free in time")
            if due_at is not None and received_at >= due_at:
                # A lease is due: reclaim it; settled, it goes to the oldest waiter (maybe us).
                next_ms, claimed = await self._reap_once(key)
                if claimed:
                    await self._settle(key, claimed)
                due_at = None if next_ms < 0 else time.monotonic() + next_ms / 1000 + 0.001
            if received_at >= refresh_at:
                live = _ms(min(give_up - received_at, _WAIT_LIVE_S))
                word, rest = outcome(await self._store.call("wait_alive", key, token, queued, live))
                if word == "GRANTED":
                    return self._lease(key, token, rest, received_at)
                if word in ("RETRY", "GONE"):
                    return None  # ask again: a slot came free, or we were dropped as gone
                queued = text(rest[0])
                refresh_at = time.monotonic() + _WAIT_REFRESH_S

    async def _reap_once(self, key: str) -> tuple[int, list[str]]:
        """Claim up to 100 expired leases of pool ``key``; also the ms until the next is due."""
        token = secrets.token_hex(16)
        s = self.settings
        reply = await self._store.call(
            "reap", key, 100, _ms(s.settle_timeout), token, _ms(s.reclaim_delay)
        )
        return integers(reply[:1])[0], strings(reply[1:])

    async def _grow(self, key: str, token: str, holder: str) -> AsyncLease | None:
        """Create a thread in the slot reserved for ``token`` and lease it to ourselves. None when
        the reservation lapsed and the pool filled up meanwhile (then ask again)."""
        assert self._factory is not None
        seeded: Missing | None = None
        if self._backend is not None and self._factory is self._backend and self.merge != "none":
            # A new thread starts out knowing the conversation: the log so far is its initial
            # messages (within the merge limits), and its cursor is where that read ended.
            seeded = parse_missing(await self._store.call("log_missing", key, _NEW_THREAD))
            context = await self._context(seeded)
            created = await self._backend.create_thread(key, context)
        else:
            created = await self._factory.create_thread(key)
        thread_id = validate_thread_id(created)
        asked_at = time.monotonic()
        try:
            word, rest = outcome(await self._store.call("register", key, token, thread_id, holder))
        except BaseException:
            # Redis went away (or we were cancelled) between creating the thread upstream and
            # registering it: nobody else knows its id, and the upstream API cannot list threads.
            await shield(self._unregistered(key, thread_id))
            raise
        if word == "GRANTED":
            logger.info("pool %r grew by thread %s", key, thread_id)
            if seeded is not None and seeded.last_seq:
                await self._store.set_cursor(key, thread_id, seeded.last_seq)
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

    async def _unregistered(self, key: str, thread_id: str) -> None:
        """A grown thread whose registration failed: keep it if the register script ran after
        all (its reply was lost), else delete it upstream so that it does not leak. Redis may be
        restarting, so the look-up is retried for up to ``_CONFIRM_S``; still unknown after that,
        the thread is deleted (the lesser harm: were it registered, the pool drops it as gone at
        its next settling, and a turn on it fails with upstream's 404)."""
        registered: bool | None = None
        give_up = time.monotonic() + _CONFIRM_S
        while registered is None:
            try:
                with mapped(f"look up thread of pool {key!r}"):
                    registered = bool(
                        await self._store.client.hexists(self._store.keys(key).threads, thread_id)
                    )
            except StoreUnavailable:
                if time.monotonic() >= give_up:
                    break
                await sleep(0.1)
        if registered:
            return
        deleter = getattr(self._factory, "delete_thread", None)
        if deleter is None:
            logger.error(
                "pool %r: thread %s was created upstream but could not be registered, and the "
                "thread factory cannot delete threads: delete it upstream by hand",
                key,
                thread_id,
            )
            return
        try:
            await deleter(thread_id)
            logger.warning(
                "pool %r: thread %s could not be registered; deleted it upstream", key, thread_id
            )
        except Exception as exc:
            logger.error(
                "pool %r: thread %s could not be registered nor deleted upstream (%s): delete it "
                "by hand",
                key,
                thread_id,
                exc,
            )

    async def _settle(self, key: str, thread_ids: list[str]) -> None:
        """Settle claimed threads through the settler (if any) and hand them out again."""
        pending = list(thread_ids)
        try:
            while pending:
                thread_id = pending[0]
                ready = True
                if self._settler is not None:
                    try:
                        if self._backend is not None and self._settler is self._backend:
                            in_flight = await self._in_flight(key, thread_id)
                            ready = await self._backend.settle_thread(key, thread_id, in_flight)
                        else:
                            ready = await self._settler.settle_thread(key, thread_id)
                    except Exception:
                        logger.exception("pool %r: settling %s failed", key, thread_id)
                        await self._store.call("settled", key, thread_id, "retry", 0)
                        pending.pop(0)
                        continue
                await self._store.call("settled", key, thread_id, "ok" if ready else "gone", 0)
                pending.pop(0)
        except BaseException:
            # Interrupted: let other reapers take the rest over at once rather than after the
            # settle timeout.
            for thread_id in pending:
                with contextlib.suppress(Exception):
                    await shield(self._store.call("settled", key, thread_id, "retry", 0))
            raise

    async def _record_in_flight(self, lease: AsyncLease, request_id: str) -> str:
        """Name (``request_id``) or clear (``""``) the request a turn has in flight. ``OK``;
        ``LATE``: the lease was taken over but a settler still waits on this record, which was
        changed for it; ``LOST``: nothing changed."""
        word, _ = outcome(
            await self._store.call(
                "inflight", lease.key, lease.thread_id, lease.token, lease.fence, request_id
            )
        )
        return word

    async def _in_flight(self, key: str, thread_id: str) -> str | None:
        """What the thread's last holder recorded in flight, once it is known. A holder stopped
        while sending a request that starts a run left ``fence|`` (sent, id not known): wait for
        it to name the id (or say nothing started), because its request may still reach upstream
        and must be ended before the thread is handed out. The wait is rare (a holder stopped or
        killed in the instant of a send) and lasts at most a lease TTL, the silence the pool
        allows a holder anyway, and half the settle timeout (the settler's claim lasts that)."""
        value = await self._store.in_flight(key, thread_id)
        if value is None or not value.endswith("|"):
            return value
        s = self.settings
        give_up = time.monotonic() + min(s.lease_ttl, s.settle_timeout / 2)
        while time.monotonic() < give_up:
            await sleep(_IN_FLIGHT_POLL_S)
            named = await self._store.in_flight(key, thread_id)
            if named != value:
                return named
        logger.warning(
            "pool %r: the last holder of %s never said what its last request started (it was "
            "killed while sending it?); settling without it",
            key,
            thread_id,
        )
        return None

    async def _missing(self, lease: AsyncLease) -> Missing:
        """The log entries ``lease``'s thread lacks (none under ``merge="none"``)."""
        if self.merge == "none":
            return Missing(last_seq=0, cursor=0, entries=())
        return parse_missing(await self._store.call("log_missing", lease.key, lease.thread_id))

    async def _context(self, missing: Missing) -> list[dict[str, str]]:
        """The messages that bring a thread up to date with ``missing`` within the limits,
        after a marked gap message if retention trimmed entries the thread never received."""
        dropped = missing.dropped
        gap = [retention_marker(dropped)] if dropped is not None else []
        entries = missing.entries
        if callable(self.merge):
            if not entries:
                return gap
            return gap + checked_messages(
                await call_handler(self.merge, entries, name="merge"), "merge"
            )
        folded, kept = fold(entries, self.merge_max_entries, self.merge_max_chars)
        out = (
            checked_messages(await call_handler(self._compact, folded, name="compact"))
            if folded
            else []
        )
        return gap + out + messages_for(kept)

    async def _advance_cursor(self, lease: AsyncLease, seq: int) -> None:
        """Move the thread's cursor up to ``seq`` (never back); best effort: if Redis is away,
        the entries are sent again, which is the lesser harm."""
        try:
            await self._store.call("log_cursor", lease.key, lease.thread_id, seq)
        except Exception as exc:
            logger.warning(
                "pool %r: could not move the cursor of %s: %s", lease.key, lease.thread_id, exc
            )

    async def _log_turn(
        self, lease: AsyncLease, turn_id: str, seen: int, message: str, turn: Turn
    ) -> None:
        """Append a completed turn (its user message and reply) to the log and move the thread's
        cursor. A lost reply is retried: the turn id makes the append happen once."""
        pairs = [("user", message), ("assistant", turn.reply)]
        await self._append_log(lease.key, turn_id, lease.thread_id, seen, turn.run_id, pairs)

    async def _append_log(
        self,
        key: str,
        entry_id: str,
        origin: str,
        seen: int,
        run_id: str,
        pairs: list[tuple[str, str]],
    ) -> int:
        delay = 0.05
        for attempt in range(5):
            try:
                word, rest = outcome(
                    await self._store.call(
                        "log_append",
                        key,
                        entry_id,
                        origin,
                        seen,
                        run_id,
                        self.log_max_entries or 0,
                        self._epochs.get(key, ""),
                        *log_pairs(pairs),
                    )
                )
            except StoreUnavailable:
                if attempt == 4:
                    raise
                await sleep(delay)
                delay *= 2
                continue
            if word == "LOSTSTATE":
                raise await self._state_lost(key, rest)
            if key not in self._epochs:
                await self._learn_epoch(key)
            return integers(rest)[0]
        raise AssertionError("unreachable")

    async def _count(self, key: str, counter: str) -> None:
        await self._store.call("count", key, counter)

    async def _settle_held(self, lease: AsyncLease) -> None:
        """Settle the thread of a lease we hold (after upstream said it is busy)."""
        if self._backend is None:
            return
        await lease.check()
        in_flight = await self._store.in_flight(lease.key, lease.thread_id)
        if not await self._backend.settle_thread(lease.key, lease.thread_id, in_flight):
            raise LeaseLost(f"thread {lease.thread_id!r} of pool {lease.key!r} is gone upstream")

    async def _abandon(self, key: str, token: str) -> None:
        try:
            await self._store.call("abandon", key, token)
        except Exception as exc:
            # Tried again before the next acquire; else the lease (if any) expires and is reaped,
            # and a reservation lapses after grow_timeout.
            if isinstance(exc, StoreUnavailable) and self._later("abandon", key, (token,)):
                # Expected while Redis is away (every interrupted acquire comes here): not a
                # warning each, or an outage floods the log.
                logger.info("pool %r: an interrupted acquire is undone later: %s", key, exc)
            else:
                logger.warning("pool %r: could not undo an interrupted acquire: %s", key, exc)

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
        )
        return False

    async def _retry_pending(self) -> None:
        """Run the clean-ups that failed while Redis was away; those that fail again stay."""
        pending, self._pending = self._pending, []
        for n, (script, key, args) in enumerate(pending):
            try:
                reply = await self._store.call(script, key, *args)
            except StoreUnavailable:
                self._pending.extend(pending[n:])
                return
            except Exception as exc:
                logger.warning("pool %r: a late %s failed: %s", key, script, exc)
                continue
            # A late dirty release leaves the thread to be settled: the next acquire claims it.
            logger.info("pool %r: a late %s answered %r", key, script, outcome(reply)[0])

    async def _release_quietly(self, lease: AsyncLease) -> None:
        try:
            await self.release(lease)
        except (LeaseLost, LeaseNotOwned, StoreUnavailable) as exc:
            # The error that ended the turn says as much already (a lost lease, Redis away: the
            # release is retried later); the reaper settles an expired lease's thread.
            logger.info("pool %r: release after an error: %s", lease.key, exc)
        except Exception as exc:
            logger.warning("pool %r: release after an error failed: %s", lease.key, exc)
