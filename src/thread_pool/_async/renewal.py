"""Keeping a held lease alive in the background: the one renewer, used by a turn while it runs
and by a caller's own calls under ``lease(key, keepalive=True)`` alike."""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING

from thread_pool._acompat import Background, Scheduler
from thread_pool.errors import ConnectionsExhausted, LeaseLost, StoreUnavailable

if TYPE_CHECKING:
    from thread_pool._async.lease import AsyncLease
    from thread_pool._async.leasing import AsyncLeasing


class AsyncRenewer:
    """Renews ``lease`` whenever ``margin`` seconds are left, for as long as the ``async with``
    block runs, and marks it lost (``lease.lost``) the moment a renewal fails. A block inside
    another one on the same lease (a turn under a kept-alive lease) leaves the renewing to the
    outer one: one renewer per lease."""

    def __init__(
        self, lease: AsyncLease, leasing: AsyncLeasing, margin: float, scheduler: Scheduler
    ) -> None:
        self._lease = lease
        self._leasing = leasing
        self._margin = margin
        self._scheduler = scheduler
        self._background: Background | None = None

    async def step(self) -> float | None:
        """One step: renew when ``margin`` is left; returns the seconds until the next step, or
        None (stop) once the lease is lost."""
        lease = self._lease
        if lease.lost is not None:
            return None
        left = lease.remaining()
        if left > self._margin:
            return left - self._margin
        try:
            await self._leasing.renew(lease, None)
        except LeaseLost:
            lease.lose("renewal failed: it expired or was taken over")
            return None
        except (StoreUnavailable, ConnectionsExhausted) as exc:
            # Redis hiccup, or the client's connections all busy: try again soon, and say the
            # lease is lost only once it has run out.
            if lease.remaining() <= 0:
                lease.lose(f"renewal failed: {exc}")
                return None
            return min(0.5, lease.remaining() / 4)
        return max(lease.remaining() - self._margin, 0.01)

    async def __aenter__(self) -> AsyncLease:
        if not self._lease.kept_alive:
            self._lease.kept_alive = True
            self._background = self._scheduler.background(
                self.step, f"renew {self._lease.thread_id}"
            )
            try:
                await self._background.__aenter__()
            except BaseException:
                self._background = None
                self._lease.kept_alive = False
                raise
        return self._lease

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        background, self._background = self._background, None
        if background is None:
            return
        try:
            await background.__aexit__(exc_type, exc, tb)
        finally:
            self._lease.kept_alive = False
