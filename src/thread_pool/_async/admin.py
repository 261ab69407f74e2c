"""Admin operations on pools: status snapshots, drain, backup and restore, delete, pre-warm.

What the ``thread-pool`` command line runs; usable from Python too. It works on the same store
(the same Lua scripts, ``scripts/admin_*.lua`` among them) and grows pools through the same
growth path as the pool itself, so the two cannot drift apart.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as redis

from thread_pool._acompat import open_client, shield, sleep
from thread_pool._async.backend import AsyncBackend, checked_backend
from thread_pool._async.context_log import AsyncContextLog
from thread_pool._async.growth import AsyncGrower
from thread_pool._async.known import AsyncKnownPools
from thread_pool._async.owners import AsyncOwners
from thread_pool._async.store import AsyncStore
from thread_pool._model.backup import (
    SCRIPT_LIMITS,
    check_document,
    document,
    flat_keys,
    pool_threads,
)
from thread_pool._model.limits import MAX_LOG_AGE
from thread_pool._model.log import default_compact
from thread_pool._model.status import DeleteReport, Growth, PoolMetrics, PoolStatus
from thread_pool._model.validation import (
    check_flag,
    check_positive,
    check_size,
    validate_key,
    validate_keys,
)
from thread_pool._store.keys import PoolKeys
from thread_pool._store.replies import (
    Outcome,
    decode_export,
    decode_metrics,
    decode_status,
    integers,
    outcome,
    strings,
)
from thread_pool._store.scripts import ms
from thread_pool._telemetry import scope
from thread_pool.errors import InvalidBackup, PoolBusy, PoolExists, PoolStateLost, UnknownPool
from thread_pool.settings import Settings


def _raise_if_lost(key: str, reply: Any) -> None:
    """``PoolStateLost`` when an admin script found pool ``key`` marked lost."""
    if isinstance(reply, list) and reply and strings(reply[:1]) == ["LOSTSTATE"]:
        raise PoolStateLost.of(key, None)


class AsyncPoolAdmin:
    """Operator's view and controls of the pools under one key prefix.

    Settings come from the environment like the pool's (``THREAD_POOL_*``, ``.env``), with
    ``**overrides`` on top; ``client`` may be an existing ``redis.asyncio.Redis``. A pre-warmed
    thread is seeded like one the pool grows, with the ``merge`` settings and their limits.
    """

    def __init__(
        self,
        *,
        client: redis.Redis | None = None,
        settings: Settings | None = None,
        **overrides: Any,
    ) -> None:
        self.settings = s = Settings.resolve(settings, overrides)
        self._own_client = client is None
        self._store = AsyncStore(client if client is not None else open_client(s), s.key_prefix)
        self.prefix = s.key_prefix
        log = AsyncContextLog(
            self._store,
            AsyncKnownPools(self._store),
            merge=s.merge,
            max_entries=s.merge_max_entries,
            max_chars=s.merge_max_chars,
            compact=default_compact,
            log_max_entries=s.log_max_entries,
            log_max_age=s.log_max_age,
            tools=s.merge_tools,
            entry_cap=s.log_entry_max_chars,
            turn_cap=s.log_turn_max_chars,
        )
        self._growth = AsyncGrower(self._store, log, scope(s.otel_pool_key))
        self._owners = AsyncOwners(self._store)
        # The key names of a pool after its base ("meta", "threads", ...), from keys.py, so a key
        # added to the model there is exported, imported and deleted here too.
        sample = PoolKeys.of(self.prefix, "k")
        self.key_names = [name[len(sample.base) :] for name in sample.all_fixed()]

    # -- looking ---------------------------------------------------------------------------------

    async def pools(self) -> list[str]:
        """Every pool key in the registry, sorted."""
        return await self._store.pool_keys()

    async def status(self, key: str) -> PoolStatus:
        """One consistent snapshot of pool ``key``: ``stats()``, threads, leases, waiters."""
        key = validate_key(key)
        reply = await self._store.call("admin_inspect", key)
        _raise_if_lost(key, reply)
        found = decode_status(key, reply)
        if found is None:
            raise UnknownPool(f"unknown pool {key!r}")
        return found

    async def statuses(self, batch: int = 500) -> AsyncIterator[PoolStatus]:
        """``status`` of every registered pool, in key order, read with one script call per
        pool, pipelined ``batch`` pools at a time, and yielded as each batch arrives: a caller
        that writes each out as it comes (``thread-pool status --json``) never holds them all.
        A pool deleted since it was listed is left out; one whose Redis state was lost raises
        ``PoolStateLost``."""
        check_size("batch", batch, least=1)
        keys = await self.pools()
        for start in range(0, len(keys), batch):
            chunk = keys[start : start + batch]
            replies = await self._store.call_each("admin_inspect", chunk, batch)
            for key, reply in zip(chunk, replies, strict=True):
                _raise_if_lost(key, reply)
                found = decode_status(key, reply)
                if found is not None:
                    yield found

    async def metrics(self) -> list[PoolMetrics]:
        """Every registered pool's ``stats()`` with its log's length and worst lag, read with
        one script call per pool (pipelined): what the metrics endpoint serves. A pool deleted
        since it was listed is left out; one whose Redis state was lost raises
        ``PoolStateLost``."""
        keys = await self.pools()
        out = []
        for key, reply in zip(
            keys, await self._store.call_each("admin_metrics", keys), strict=True
        ):
            _raise_if_lost(key, reply)
            found = decode_metrics(key, reply)
            if found is not None:
                out.append(found)
        return out

    # -- draining --------------------------------------------------------------------------------

    async def set_draining(self, key: str, draining: bool = True) -> None:
        """Mark pool ``key`` as draining (pre-warm adds nothing to it), or clear the mark."""
        key = validate_key(key)
        check_flag("draining", draining)
        word, _ = outcome(await self._store.call("admin_drain", key, int(draining)))
        if word is Outcome.NOPOOL:
            raise UnknownPool(f"unknown pool {key!r}")

    async def drain(self, key: str, timeout: float, poll: float = 0.2) -> PoolStatus:
        """Mark pool ``key`` draining and wait up to ``timeout`` seconds until no thread is
        leased or being settled; returns the last snapshot (check its ``stats.leased``)."""
        check_positive("timeout", timeout, allow_zero=True)
        check_positive("poll", poll)
        await self.set_draining(key, True)
        give_up = time.monotonic() + timeout
        while True:
            now = await self.status(key)
            if (now.stats.leased == 0 and now.stats.settling == 0) or time.monotonic() >= give_up:
                return now
            await sleep(min(poll, max(0.0, give_up - time.monotonic())))

    # -- backup ----------------------------------------------------------------------------------

    async def export(self, keys: list[str] | None = None) -> dict[str, Any]:
        """A backup of pools ``keys`` (default: all): every key of each, verbatim, as JSON-ready
        data. Each pool is read in one step; pools are read one after the other."""
        chosen = validate_keys(keys) if keys is not None else await self.pools()
        entries = []
        for key in chosen:
            reply = await self._store.call("admin_export", key, *self.key_names)
            _raise_if_lost(key, reply)
            entry = decode_export(key, reply)
            if entry is None:
                if keys is not None:
                    raise UnknownPool(f"unknown pool {key!r}")
                continue  # deleted since it was listed
            entries.append(entry)
        return document(self.prefix, entries)

    async def restore(
        self, doc: Any, keys: list[str] | None = None, *, exact: bool = False
    ) -> list[str]:
        """Write back the pools of backup ``doc`` (or only ``keys`` of them). The file is checked
        whole first; a pool is written all at once. ``PoolExists`` (naming them) if any pool is
        there already; the others are restored. Returns the keys restored.

        A pool marked lost (``PoolStateLost``) is replaced, and the threads it had gained since
        are kept on its retired list. By default the backup is taken for an old picture of pools
        that lived on after it: fences jump above any the pool can have granted since the
        export, and the backup's leases are void — every thread is settled before its next
        lease (see admin_import.lua). ``exact=True`` writes it verbatim, leases included: only
        for pools nobody used since the export."""
        entries = check_document(doc, set(self.key_names), recover=not exact)
        if keys is not None:
            entries = [e for e in entries if e["key"] in set(keys)]
        mode = "exact" if exact else "recover"
        # Every pool's threads are claimed for it (ThreadOwned if another pool has one), and
        # every pool checked by the script, before the first pool is written.
        claimed: dict[str, list[str]] = {}
        calls: list[tuple[str, str, int]] = []
        try:
            for entry in entries:
                key = entry["key"]
                claimed[key] = await self._owners.claim(key, pool_threads(entry))
                calls.append((key, json.dumps(flat_keys(entry)), ms(entry["exported_at"])))
            for key, payload, exported_ms in calls:
                await self._import(key, payload, mode, exported_ms, check_only=True)
        except BaseException:
            for key, threads in claimed.items():
                await shield(self._owners.release(key, threads))
            raise
        restored, existing = [], []
        for key, payload, exported_ms in calls:
            if not await self._import(key, payload, mode, exported_ms, check_only=False):
                await self._owners.release(key, claimed[key])
                existing.append(key)
                continue
            await self._store.register_pool(key)
            restored.append(key)
        if existing:
            raise PoolExists(
                f"{len(existing)} pool(s) exist already and were not restored: "
                f"{', '.join(existing)} (restored {len(restored)})"
            )
        return restored

    async def _import(
        self, key: str, payload: str, mode: str, exported_ms: int, *, check_only: bool
    ) -> bool:
        """Run admin_import for one pool (only its checks if ``check_only``): False if the pool
        exists already, ``InvalidBackup`` if the script refused it (nothing written)."""
        word, rest = outcome(
            await self._store.call(
                "admin_import", key, payload, mode, exported_ms, SCRIPT_LIMITS, int(check_only)
            )
        )
        if word is Outcome.INVALID:
            raise InvalidBackup(f"pool {key!r}: {strings(rest)[0]}; nothing was restored")
        return word is not Outcome.EXISTS

    # -- deleting --------------------------------------------------------------------------------

    async def delete(
        self,
        key: str,
        backend: AsyncBackend | None = None,
        *,
        force: bool = False,
        idle_for: float | None = None,
    ) -> DeleteReport:
        """Delete pool ``key``: its threads upstream through ``backend`` (if given), then all its
        keys. First, in one step, the pool is marked draining (no lease is granted from then on)
        unless a thread is leased or being grown: then ``PoolBusy``, changing nothing, unless
        ``force``. If an upstream delete fails, the pool is left in Redis, draining (a re-run
        carries on where it stopped). A pool whose state was lost is deleted like any other.
        ``idle_for``: delete only if no lease was granted for that many seconds, decided in the
        same step (else ``PoolBusy``, changing nothing)."""
        key = validate_key(key)
        force = check_flag("force", force)
        if backend is not None:
            checked_backend(backend)
        idle_ms = (
            0 if idle_for is None else ms(check_positive("idle_for", idle_for, at_most=MAX_LOG_AGE))
        )
        word, rest = outcome(
            await self._store.call(
                "admin_delete", key, "begin", int(force), idle_ms, *self.key_names
            )
        )
        if word is Outcome.NOPOOL:
            raise UnknownPool(f"unknown pool {key!r}")
        if word is Outcome.USED:
            raise PoolBusy(
                f"pool {key!r} was used {integers(rest)[0] / 1000:.1f} s ago: not idle for "
                f"{idle_for} s"
            )
        if word is Outcome.BUSY:
            leased, growing = integers(rest)
            raise PoolBusy(
                f"pool {key!r} has {leased} leased thread(s) and {growing} being created; drain "
                "it first or force the delete"
            )
        report = DeleteReport(key)
        known = strings(rest)
        await self._delete_upstream(known, backend, report)
        word, rest = outcome(
            await self._store.call("admin_delete", key, "end", 0, 0, *self.key_names)
        )
        await self._store.unregister_pool(key)
        if word is Outcome.OK:
            # Threads that joined while the upstream deletes ran (a forced delete).
            late = [t for t in strings(rest) if t not in set(known)]
            await self._delete_upstream(late, backend, report)
        await self._owners.release_all(key)
        return report

    async def threads(self, key: str) -> list[str]:
        """Every thread id pool ``key`` knows, registered and retired (what a delete deletes
        upstream); a pool whose state was lost too. ``UnknownPool`` if there is none."""
        key = validate_key(key)
        found = await self._store.known_threads(key)
        if found is None:
            raise UnknownPool(f"unknown pool {key!r}")
        return found

    async def _delete_upstream(
        self, thread_ids: list[str], backend: AsyncBackend | None, report: DeleteReport
    ) -> None:
        for thread_id in thread_ids:
            report.threads.append(thread_id)
            if backend is None:
                report.left_upstream.append(thread_id)
            elif await backend.delete_thread(thread_id):
                report.deleted_upstream.append(thread_id)
            else:
                report.missing_upstream.append(thread_id)

    # -- pre-warming -----------------------------------------------------------------------------

    async def grow_one(self, key: str, target: int, backend: AsyncBackend) -> Growth:
        """Add one upstream thread to pool ``key`` if it has fewer than ``target`` (capped at its
        ``max_size``), counting threads being created by anyone. The slot is reserved before
        the thread is created and the thread registered in it, so racing pre-warms (and pools
        growing under load) never pass the cap. Interrupted anywhere, it leaves neither a
        reservation nor an unregistered upstream thread."""
        key = validate_key(key)
        check_size("target", target)
        checked_backend(backend)
        ticket = secrets.token_hex(16)
        # Listed first (reserving creates the pool): nothing may come between a reservation and
        # the shielded step below, or an interruption there would strand the slot.
        await self._store.register_pool(key)
        try:
            word, counts = await self._growth.reserve(key, ticket, target, self.settings)
        except BaseException:
            await shield(self._growth.unreserve(key, ticket))
            raise
        if word is Outcome.DRAINING:
            return Growth("draining", 0, 0)
        threads, _reserved, cap = counts
        if word is Outcome.DONE:
            return Growth("done" if threads >= cap else "pending", threads, cap)
        word, _ = await self._growth.grow(backend, key, ticket)
        if word is not Outcome.OK:
            return Growth("done", 0, cap)  # the slot lapsed and was taken, or the pool is gone
        stats = await self.status(key)
        return Growth("grown", stats.stats.threads, cap)

    # -- life cycle ------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the Redis connections this object opened (a client given to it stays open)."""
        await self._store.aclose(close_client=self._own_client)

    async def __aenter__(self) -> AsyncPoolAdmin:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
