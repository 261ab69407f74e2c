"""Settling: expired leases reclaimed, their threads made quiet upstream (the run a dead holder
left is waited for or cancelled) before anyone gets them again; and the in-flight record a turn
keeps so that a settler knows which run to end."""

from __future__ import annotations

import contextlib
import logging
import secrets
import time

from thread_pool._acompat import shield, sleep
from thread_pool._async.backend import AsyncBackend
from thread_pool._async.lease import AsyncLease
from thread_pool._async.store import AsyncStore
from thread_pool._model.log_events import event
from thread_pool._store.replies import Outcome, integers, outcome, strings
from thread_pool._store.scripts import ms
from thread_pool._telemetry import scope
from thread_pool._traced import traced_settle
from thread_pool.errors import LeaseLost
from thread_pool.settings import Settings

logger = logging.getLogger("thread_pool")

# How often a settler reads a stopped holder's in-flight record while waiting for it to name
# the request it sent (a rare wait: the holder stopped in the instant of a send).
_IN_FLIGHT_POLL_S = 0.1


class AsyncSettling:
    """Reclaims expired leases of a pool and settles their threads through ``backend`` (without
    one, a reclaimed thread is handed out again as it is)."""

    def __init__(self, store: AsyncStore, settings: Settings, backend: AsyncBackend | None) -> None:
        self._store = store
        self._settings = settings
        self._backend = backend
        self.telemetry = scope(settings.otel_pool_key)

    async def reap_once(self, key: str) -> tuple[int, list[str]]:
        """Claim up to 100 expired leases of pool ``key``; also the ms until the next is due."""
        s = self._settings
        reply = await self._store.call(
            "reap", key, 100, ms(s.settle_timeout), secrets.token_hex(16), ms(s.reclaim_delay)
        )
        return integers(reply[:1])[0], strings(reply[1:])

    async def reap(self, key: str) -> int:
        """Reclaim and settle every expired lease of pool ``key``; how many were reclaimed."""
        total = 0
        while claimed := (await self.reap_once(key))[1]:
            total += len(claimed)
            await self.settle(key, claimed)
        return total

    async def reap_due(self, key: str) -> int:
        """Reclaim and settle what is due now (one batch); the ms until the next is due."""
        next_ms, claimed = await self.reap_once(key)
        if claimed:
            await self.settle(key, claimed)
        return next_ms

    async def settle(self, key: str, thread_ids: list[str]) -> None:
        """Settle claimed threads through the backend (if any) and hand them out again."""
        pending = list(thread_ids)
        try:
            while pending:
                thread_id = pending[0]
                ready = True
                if self._backend is not None:
                    try:
                        ready = await self.settle_one(key, thread_id)
                    except Exception:
                        logger.exception(
                            "pool %r: settling %s failed",
                            key,
                            thread_id,
                            extra=event("settle.failed", key, thread_id),
                        )
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

    @traced_settle
    async def settle_one(self, key: str, thread_id: str) -> bool:
        """Settle one claimed thread through the backend; False if it is gone upstream."""
        assert self._backend is not None
        in_flight = await self.in_flight(key, thread_id)
        return await self._backend.settle_thread(key, thread_id, in_flight)

    async def settle_busy(self, lease: AsyncLease) -> None:
        """Upstream said the thread of a lease we hold is busy, which should never happen while
        the pool holds it (a bug signal): count it and make the thread quiet."""
        await self._store.call("count", lease.key, "lock_errors")
        self.telemetry.lock_error(lease.key)
        await self.settle_held(lease)

    async def settle_held(self, lease: AsyncLease) -> None:
        """Make the thread of a lease we hold quiet now: end the run (response) a turn left
        active, so that whoever uses the thread next, this holder included, meets none."""
        if self._backend is None:
            return
        await lease.check()
        in_flight = await self._store.in_flight(lease.key, lease.thread_id)
        if not await self._backend.settle_thread(lease.key, lease.thread_id, in_flight):
            raise LeaseLost(f"thread {lease.thread_id!r} of pool {lease.key!r} is gone upstream")

    async def record(self, lease: AsyncLease, request_id: str) -> Outcome:
        """Name (``request_id``) or clear (``""``) the request a turn has in flight on
        ``lease``'s thread. ``OK``; ``LATE``: the lease was taken over but a settler still waits
        on this record, which was changed for it; ``LOST``: nothing changed."""
        word, _ = outcome(
            await self._store.call(
                "inflight", lease.key, lease.thread_id, lease.token, lease.fence, request_id
            )
        )
        return word

    async def in_flight(self, key: str, thread_id: str) -> str | None:
        """What the thread's last holder recorded in flight, once it is known. A holder stopped
        while sending a request that starts a run left ``fence|`` (sent, id not known): wait for
        it to name the id (or say nothing started), because its request may still reach upstream
        and must be ended before the thread is handed out. The wait is rare (a holder stopped or
        killed in the instant of a send) and lasts at most a lease TTL, the silence the pool
        allows a holder anyway, and half the settle timeout (the settler's claim lasts that)."""
        value = await self._store.in_flight(key, thread_id)
        if value is None or not value.endswith("|"):
            return value
        s = self._settings
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
            extra=event("settle.in_flight_unknown", key, thread_id),
        )
        return None
