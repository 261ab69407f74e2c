"""A turn on a held lease: input checks, auto-renewal, fenced writes, the lock-error fallback."""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from thread_pool._acompat import shield
from thread_pool._async.backend import AsyncBackend, EventSink, ToolHandler, request_caps
from thread_pool._async.context_log import ONE_DIGEST, AsyncContextLog
from thread_pool._async.lease import AsyncLease
from thread_pool._async.leasing import AsyncLeasing
from thread_pool._async.settling import AsyncSettling
from thread_pool._model.log import TURN_RESERVE, Missing
from thread_pool._model.log_events import event
from thread_pool._model.stream import TurnDone
from thread_pool._model.turns import FENCE_KEY, Turn
from thread_pool._model.validation import (
    validate_message,
    validate_metadata,
)
from thread_pool._store.replies import Outcome
from thread_pool._telemetry import Scope, note_merged, scope
from thread_pool._traced import traced_turn
from thread_pool._upstream import send_guard
from thread_pool.errors import InvalidArgument, RequestTooLarge, ThreadBusy, TurnFailed
from thread_pool.settings import Settings

logger = logging.getLogger("thread_pool")

# A run (response) that ended in one of these holds no lock: the thread needs no settling.
_ENDED = frozenset({"completed", "failed", "cancelled", "expired", "incomplete"})


class AsyncTurnGuard:
    """The lease as the backend sees it during a turn (``AsyncGuard``)."""

    def __init__(
        self,
        lease: AsyncLease,
        leasing: AsyncLeasing,
        settling: AsyncSettling,
        settings: Settings,
        *,
        granted_checked: bool = False,
    ) -> None:
        self._lease = lease
        self._leasing = leasing
        self._settling = settling
        self._settings = settings
        self.fence = lease.fence
        self.wrote = False
        self.context_delivered = False
        # The grant was the fence check of the first write, its run marked in flight (the lease
        # was taken for this turn: see acquire.lua's ``turn``).
        self._granted_checked = granted_checked
        # A run-starting request is marked in flight in Redis and not yet named or cleared.
        self._unnamed = granted_checked

    async def write(self, *, starts_run: bool = False) -> dict[str, str]:
        """Fence check (renewing if short); the metadata to stamp on the write."""
        self.alive()
        if not (self._granted_checked and self._lease.remaining() >= self._settings.renew_margin):
            # (The grant's check stands only while our own clock, which errs short, leaves the
            # lease the time the check asks for; else this one renews it.)
            await self._leasing.check(
                self._lease, self._settings.renew_margin, starts_run=starts_run
            )
        self._granted_checked = False
        self._unnamed = self._unnamed or starts_run
        self.wrote = True
        return {FENCE_KEY: str(self.fence)}

    def alive(self) -> None:
        """Raise ``LeaseLost`` once renewal failed or the lease ran out by our own clock."""
        if self._lease.remaining() <= 0:
            self._lease.lose("it ran out before it could be renewed")
        self._lease.alive()

    def delivered(self) -> None:
        """Note that upstream took in the turn's context (see ``AsyncGuard.delivered``)."""
        self.context_delivered = True

    async def started(self, request_id: str) -> None:
        """Record the request in flight; a holder that lost the lease raises ``LeaseLost`` (if
        a settler waits on it, the id was recorded for the settler all the same)."""
        named = await self._settling.record(self._lease, request_id)
        self._unnamed = False
        if named is not Outcome.OK:
            self._lease.lose("it was taken over")
            self.alive()

    async def finished(self) -> None:
        """Clear the in-flight record."""
        await self._settling.record(self._lease, "")
        self._unnamed = False

    async def unstarted(self) -> None:
        """The turn failed: clear the in-flight record of a request that was to start a run and
        was never named, so that no settler waits for it (best effort: a settler gives up
        waiting in any case). Nothing to do once the request was named (it was answered)."""
        if not self._unnamed:
            return
        with contextlib.suppress(Exception):
            await self._settling.record(self._lease, "")
        self._unnamed = False


@dataclass(frozen=True)
class AsyncTurnRunner:
    """What a turn needs of its pool: the backend, the log, and the lease operations."""

    backend: AsyncBackend
    log: AsyncContextLog
    leasing: AsyncLeasing
    settling: AsyncSettling
    settings: Settings

    @property
    def telemetry(self) -> Scope:
        """Where the turn's metrics and span go."""
        return scope(self.settings.otel_pool_key)

    @traced_turn
    async def run(
        self,
        lease: AsyncLease,
        message: str,
        *,
        tool_handler: ToolHandler | None,
        metadata: Mapping[str, object] | None,
        params: Mapping[str, Any],
        emit: EventSink | None = None,
    ) -> Turn:
        """Run one turn on ``lease`` (see ``AsyncLease.run``). With ``emit`` (``stream()``) the
        turn's events go to it as they come, and its last is ``TurnDone`` once the turn is
        logged; the lease is renewed until then, however slowly ``emit`` takes them."""
        message = validate_message(message)
        checked = validate_metadata(metadata)
        # A lease taken for this turn (pool.run, pool.stream) brings its first request's fence
        # check and, most often, the thread's context from its grant: no round trips for them.
        start, lease.turn_start = lease.turn_start, None
        guard = AsyncTurnGuard(
            lease, self.leasing, self.settling, self.settings, granted_checked=start is not None
        )
        # What the thread is missing from the pool's log rides in the turn's own request.
        if start is not None and start.missing is not None:
            missing = start.missing
        else:
            missing = await self.log.missing(lease.key, lease.thread_id)
        caps = request_caps(self.backend)
        context = await self.log.messages(missing, caps, reserve=TURN_RESERVE)
        note_merged(len(missing.entries))
        turn_id = secrets.token_hex(12)
        # Until the turn ends cleanly its run may still be active upstream: if we leave early,
        # the release sends the thread to be settled instead of straight back to use.
        lease.dirty = True
        async with lease.keepalive():  # the pool's one renewer, as for a kept-alive lease
            try:
                with send_guard.turn_requests(lease):
                    turn = await self._guarded(
                        lease, message, guard, tool_handler, checked, params, context, emit, missing
                    )
            except BaseException:
                # A request that was to start a run and failed: no settler should wait for it.
                await shield(guard.unstarted())
                if guard.context_delivered and missing.last_seq > missing.cursor:
                    # The turn failed, but its context reached the thread: sending it again
                    # next time would give the thread those entries twice.
                    await shield(self.log.advance(lease.key, lease.thread_id, missing.last_seq))
                raise
            await self.log.log_turn(
                lease.key, lease.thread_id, turn_id, missing.last_seq, message, turn
            )
            if emit is not None:
                await emit(TurnDone(turn))
        return turn

    async def _guarded(
        self,
        lease: AsyncLease,
        message: str,
        guard: AsyncTurnGuard,
        tool_handler: ToolHandler | None,
        checked: Mapping[str, str],
        params: Mapping[str, Any],
        context: Sequence[Mapping[str, str]],
        emit: EventSink | None,
        missing: Missing,
    ) -> Turn:
        """The turn, with the lock-error and size fallbacks and the dirty flag kept."""

        async def turn(context: Sequence[Mapping[str, str]] = context) -> Turn:
            if emit is None:  # a backend written before streaming need not know ``emit``
                return await self.backend.run_turn(
                    lease.thread_id,
                    message,
                    guard,
                    tool_handler=tool_handler,
                    metadata=checked,
                    params=params,
                    context=context,
                )
            return await self.backend.run_turn(
                lease.thread_id,
                message,
                guard,
                tool_handler=tool_handler,
                metadata=checked,
                params=params,
                context=context,
                emit=emit,
            )

        try:
            done = await turn()
        except ThreadBusy as exc:
            # Should never happen while the pool holds the thread: a bug signal. Count it,
            # make the thread quiet, and try once more.
            logger.error(
                "pool %r: upstream says %s is busy: %s",
                lease.key,
                lease.thread_id,
                exc,
                extra=event("turn.lock_error", lease.key, lease.thread_id, fence=lease.fence),
            )
            await self.settling.settle_busy(lease)
            done = await turn()
        except RequestTooLarge as exc:
            # The server refused the request (or could not save the response) for its size, so
            # sending the same context again would fail forever, and the thread fall further
            # behind. Try once more with everything it misses folded into one marked digest:
            # the thread catches up in this turn.
            smaller = await self.log.messages(missing, ONE_DIGEST)
            if not missing.entries or len(smaller) >= len(context):
                raise
            logger.warning(
                "pool %r: upstream refused the turn on %s for its size (%s); sending its %d "
                "missing entries folded into one digest",
                lease.key,
                lease.thread_id,
                exc,
                len(missing.entries),
                extra=event("turn.too_large", lease.key, lease.thread_id, fence=lease.fence),
            )
            done = await turn(smaller)
        except TurnFailed as exc:
            if exc.status in _ENDED:
                lease.dirty = False
            raise
        except InvalidArgument:
            if not guard.wrote:
                lease.dirty = False  # refused before any request: nothing to settle
            raise
        lease.dirty = False
        return done
