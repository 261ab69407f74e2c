"""Admin operations on pools: status snapshots, drain, backup and restore, delete, pre-warm slots.

What the ``thread-pool`` command line runs; usable from Python too. Every change is one Lua script
call (``scripts/admin_*.lua``) on the same keys the lease scripts use.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import redis.asyncio as redis
from redis.commands.core import AsyncScript

from thread_pool import admin_scripts
from thread_pool._acompat import keep_cancellation, shield, sleep
from thread_pool._async.store import open_client
from thread_pool._model.backup import check_document, decode_export, document, flat_keys
from thread_pool._model.log import entry_of, messages_for, retention_marker
from thread_pool._model.status import PoolStatus, decode_status
from thread_pool._model.validation import validate_key, validate_thread_id
from thread_pool._store.errors import mapped
from thread_pool._store.keys import PoolKeys, registry_key
from thread_pool._store.replies import integers, outcome, strings
from thread_pool.admin_errors import PoolBusy, PoolExists
from thread_pool.errors import CorruptState, PoolStateLost, UnknownPool
from thread_pool.settings import Settings


class AsyncThreadMaker(Protocol):
    """Creates and deletes upstream threads (both backends are one)."""

    async def create_thread(self, key: str, messages: Sequence[Mapping[str, str]] = ()) -> str:
        """Create one upstream thread for pool ``key`` holding ``messages`` (``{"role",
        "content"}``, the pool's log so far) and return its id."""
        ...

    async def delete_thread(self, thread_id: str) -> bool:
        """Delete an upstream thread; False if it did not exist."""
        ...


class AsyncThreadDeleter(Protocol):
    """Deletes upstream threads."""

    async def delete_thread(self, thread_id: str) -> bool:
        """Delete an upstream thread; False if it did not exist."""
        ...


@dataclass
class DeleteReport:
    """What ``delete`` removed."""

    key: str
    threads: list[str] = field(default_factory=list)
    """Every thread the pool knew (retired ones included)."""
    deleted_upstream: list[str] = field(default_factory=list)
    missing_upstream: list[str] = field(default_factory=list)
    """Threads upstream did not know any more."""
    left_upstream: list[str] = field(default_factory=list)
    """Threads not deleted upstream (no backend was given): only this report still names them."""


@dataclass(frozen=True)
class Growth:
    """The outcome of one pre-warm step on a pool."""

    outcome: str
    """``grown`` (a thread was added), ``done`` (the pool has its target), ``pending`` (the
    target is covered only by others' reservations in flight), ``draining``."""
    threads: int
    target: int
    """The target as capped by ``max_size``."""


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))


def _raise_if_lost(key: str, reply: Any) -> None:
    """``PoolStateLost`` when an admin script found pool ``key`` marked lost."""
    if isinstance(reply, list) and reply and strings(reply[:1]) == ["LOSTSTATE"]:
        raise PoolStateLost(
            f"the state of pool {key!r} is gone from redis (a restart without persistence?); "
            f"restore it with 'thread-pool import <backup>', or re-create its threads with "
            f"'thread-pool prewarm {key}'"
        )


class AsyncPoolAdmin:
    """Operator's view and controls of the pools under one key prefix.

    Settings come from the environment like the pool's (``THREAD_POOL_*``, ``.env``), with
    ``**overrides`` on top; ``client`` may be an existing ``redis.asyncio.Redis``.
    """

    def __init__(
        self,
        *,
        client: redis.Redis | None = None,
        settings: Settings | None = None,
        **overrides: Any,
    ) -> None:
        self.settings = Settings.resolve(settings, overrides)
        self._own_client = client is None
        self.client = client = client if client is not None else open_client(self.settings)
        self.prefix = self.settings.key_prefix
        self._scripts: dict[str, AsyncScript] = {
            name: client.register_script(admin_scripts.source(name)) for name in admin_scripts.NAMES
        }
        # The key names of a pool after its base ("meta", "threads", ...), from keys.py, so a key
        # added to the model there is exported, imported and deleted here too.
        sample = PoolKeys.of(self.prefix, "k")
        self.key_names = [name[len(sample.base) :] for name in sample.all_fixed()]

    async def _call(self, name: str, key: str, *args: str | int) -> Any:
        with keep_cancellation(), mapped(f"{name} on pool {key!r}"):
            meta = PoolKeys.of(self.prefix, key).meta
            return await self._scripts[name](keys=[meta], args=list(args))

    # -- looking ---------------------------------------------------------------------------------

    async def pools(self) -> list[str]:
        """Every pool key in the registry, sorted."""
        with mapped("list pools"):
            members = await self.client.smembers(registry_key(self.prefix))
        return sorted(str(m) for m in strings(list(members)))

    async def status(self, key: str) -> PoolStatus:
        """One consistent snapshot of pool ``key``: ``stats()``, threads, leases, waiters."""
        key = validate_key(key)
        reply = await self._call("admin_inspect", key)
        _raise_if_lost(key, reply)
        found = decode_status(key, reply)
        if found is None:
            raise UnknownPool(f"unknown pool {key!r}")
        return found

    # -- draining --------------------------------------------------------------------------------

    async def set_draining(self, key: str, draining: bool = True) -> None:
        """Mark pool ``key`` as draining (pre-warm adds nothing to it), or clear the mark."""
        key = validate_key(key)
        word, _ = outcome(await self._call("admin_drain", key, int(draining)))
        if word == "NOPOOL":
            raise UnknownPool(f"unknown pool {key!r}")

    async def drain(self, key: str, timeout: float, poll: float = 0.2) -> PoolStatus:
        """Mark pool ``key`` draining and wait up to ``timeout`` seconds until no thread is
        leased or being settled; returns the last snapshot (check its ``stats.leased``)."""
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
        chosen = [validate_key(k) for k in keys] if keys is not None else await self.pools()
        entries = []
        for key in chosen:
            reply = await self._call("admin_export", key, *self.key_names)
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
        entries = check_document(doc, set(self.key_names))
        if keys is not None:
            entries = [e for e in entries if e["key"] in set(keys)]
        restored, existing = [], []
        for entry in entries:
            key = entry["key"]
            payload = json.dumps(flat_keys(entry))
            mode = "exact" if exact else "recover"
            exported_ms = _ms(float(entry.get("exported_at", 0)))
            word, _ = outcome(await self._call("admin_import", key, payload, mode, exported_ms))
            if word == "EXISTS":
                existing.append(key)
                continue
            with mapped(f"register pool {key!r}"):
                await self.client.sadd(registry_key(self.prefix), key)
            restored.append(key)
        if existing:
            raise PoolExists(
                f"{len(existing)} pool(s) exist already and were not restored: "
                f"{', '.join(existing)} (restored {len(restored)})"
            )
        return restored

    # -- deleting --------------------------------------------------------------------------------

    async def delete(
        self, key: str, deleter: AsyncThreadDeleter | None = None, *, force: bool = False
    ) -> DeleteReport:
        """Delete pool ``key``: its threads upstream through ``deleter`` (if given), then all its
        keys. Raises ``PoolBusy`` while threads are leased, unless ``force``. If an upstream
        delete fails, the pool is left in Redis (a re-run carries on where it stopped)."""
        status = await self.status(key)
        if status.leases and not force:
            raise PoolBusy(
                f"pool {key!r} has {len(status.leases)} leased thread(s); drain it first "
                "or force the delete"
            )
        report = DeleteReport(key)
        known = [t.thread_id for t in status.threads] + status.retired
        await self._delete_upstream(known, deleter, report)
        word, rest = outcome(await self._call("admin_delete", key, *self.key_names))
        with mapped(f"unregister pool {key!r}"):
            await self.client.srem(registry_key(self.prefix), key)
        if word == "OK":
            # Threads that joined while the upstream deletes ran.
            late = [t for t in strings(rest) if t not in set(known)]
            await self._delete_upstream(late, deleter, report)
        return report

    async def _delete_upstream(
        self, thread_ids: list[str], deleter: AsyncThreadDeleter | None, report: DeleteReport
    ) -> None:
        for thread_id in thread_ids:
            report.threads.append(thread_id)
            if deleter is None:
                report.left_upstream.append(thread_id)
            elif await deleter.delete_thread(thread_id):
                report.deleted_upstream.append(thread_id)
            else:
                report.missing_upstream.append(thread_id)

    # -- pre-warming -----------------------------------------------------------------------------

    async def grow_one(self, key: str, target: int, maker: AsyncThreadMaker) -> Growth:
        """Add one upstream thread to pool ``key`` if it has fewer than ``target`` (capped at its
        ``max_size``), counting threads being created by anyone. The slot is reserved before
        the thread is created and the thread registered in it, so racing pre-warms (and pools
        growing under load) never pass the cap. Interrupted anywhere, it leaves neither a
        reservation nor an unregistered upstream thread."""
        key = validate_key(key)
        s = self.settings
        ticket = secrets.token_hex(16)
        # Listed first (reserving creates the pool): nothing may come between a reservation and
        # the shielded step below, or an interruption there would strand the slot.
        with mapped(f"register pool {key!r}"):
            await self.client.sadd(registry_key(self.prefix), key)
        try:
            word, rest = outcome(
                await self._call(
                    "admin_reserve",
                    key,
                    ticket,
                    target,
                    _ms(s.grow_timeout),
                    s.min_size,
                    s.max_size,
                    _ms(s.lease_ttl),
                )
            )
        except BaseException:
            await shield(self._unreserve(key, ticket))
            raise
        if word == "DRAINING":
            return Growth("draining", 0, 0)
        threads, _reserved, cap = integers(rest)
        if word == "DONE":
            return Growth("done" if threads >= cap else "pending", threads, cap)
        # Run to its end even if cancelled meanwhile: a thread created upstream must be either
        # registered or deleted again before the cancellation goes on.
        return await shield(self._fill(key, ticket, maker, cap))

    async def _fill(self, key: str, ticket: str, maker: AsyncThreadMaker, cap: int) -> Growth:
        thread_id: str | None = None
        try:
            # Like a thread the pool grows: it starts out holding the log so far, and its cursor
            # is where that read ended (entries logged meanwhile reach it with its next turn).
            with mapped(f"read the log of pool {key!r}"):
                read: Any = await self.client.xrange(self._log_key(key))
            log = [entry_of(i, f) for i, f in read or []]
            seq = log[-1].seq if log else 0
            # Entries trimmed by retention are stood for by a marked gap, as the pool does.
            gap = [retention_marker((1, log[0].seq - 1))] if log and log[0].seq > 1 else []
            messages = gap + messages_for(log)
            thread_id = validate_thread_id(await maker.create_thread(key, messages))
            word, _ = outcome(await self._call("admin_register", key, ticket, thread_id, seq))
        except BaseException:
            await self._undo(key, ticket, thread_id, maker)
            raise
        if word == "OK":
            stats = await self.status(key)
            return Growth("grown", stats.stats.threads, cap)
        if word == "DUPLICATE":
            raise CorruptState(f"upstream returned thread {thread_id!r} of pool {key!r} twice")
        # FULL or NOPOOL: our slot lapsed and was taken, or the pool was deleted meanwhile.
        await maker.delete_thread(thread_id)
        return Growth("done", 0, cap)

    async def _undo(
        self, key: str, ticket: str, thread_id: str | None, maker: AsyncThreadMaker
    ) -> None:
        await self._unreserve(key, ticket)
        if thread_id is None:
            return
        # The register script may have run before the failure reached us: then the thread is
        # the pool's, complete, and stays.
        with mapped(f"look up thread of pool {key!r}"):
            registered = await self.client.hexists(PoolKeys.of(self.prefix, key).threads, thread_id)
        if not registered:
            await maker.delete_thread(thread_id)

    def _log_key(self, key: str) -> str:
        return PoolKeys.of(self.prefix, key).log

    async def _unreserve(self, key: str, ticket: str) -> None:
        await self._call("admin_unreserve", key, ticket)

    # -- life cycle ------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the Redis connections this object opened."""
        if self._own_client:
            await self.client.aclose()

    async def __aenter__(self) -> AsyncPoolAdmin:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
