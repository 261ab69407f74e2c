"""What a held lease does with its thread, for the pool that granted it: turns (``run``,
``stream``), a caller's own calls (``pending_context``, ``record``), and the background renewer
(``keepalive``). The pool façade hands each lease this object; leasing itself (grant, release,
renew, check) stays with the pool."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

from thread_pool._acompat import Scheduler
from thread_pool._async.backend import AsyncBackend, ToolHandler
from thread_pool._async.context_log import AsyncContextLog
from thread_pool._async.lease import AsyncLease, checked_lease
from thread_pool._async.leasing import AsyncLeasing
from thread_pool._async.own_calls import AsyncOwnCalls
from thread_pool._async.renewal import AsyncRenewer
from thread_pool._async.settling import AsyncSettling
from thread_pool._async.streaming import AsyncTurnStream, stream_turn
from thread_pool._async.turn import AsyncTurnRunner
from thread_pool._model.turns import ToolCall, Turn
from thread_pool._model.validation import (
    validate_message,
    validate_metadata,
    validate_params,
)
from thread_pool.errors import InvalidArgument, LeaseNotOwned
from thread_pool.settings import Settings


class AsyncLeaseWork:
    """Turns, own calls and renewal on the leases of one pool object."""

    def __init__(
        self,
        backend: AsyncBackend | None,
        log: AsyncContextLog,
        leasing: AsyncLeasing,
        settling: AsyncSettling,
        settings: Settings,
    ) -> None:
        self._backend = backend
        self._log = log
        self._leasing = leasing
        self._settings = settings
        self._turns = (
            None if backend is None else AsyncTurnRunner(backend, log, leasing, settling, settings)
        )
        self._own = AsyncOwnCalls(backend, log)
        # One scheduler runs every renewal of this pool object's leases (turns, keepalive).
        self._renewals = Scheduler("thread_pool renewals")

    def check_call(
        self,
        message: str,
        metadata: Mapping[str, object] | None,
        params: Mapping[str, Any],
        *,
        streaming: bool = False,
    ) -> None:
        """Refuse a bad turn of ``pool.run``/``stream`` before its lease is taken (leasing may
        create a thread upstream)."""
        validate_message(message)
        validate_metadata(metadata)
        self.check_turn(params, streaming=streaming)

    def check_turn(self, params: Mapping[str, Any], *, streaming: bool = False) -> AsyncTurnRunner:
        """The turn runner, once ``params`` are known to be what the backend's request takes."""
        if self._turns is None:
            raise InvalidArgument("this pool has no backend to run turns with")
        validate_params(params, getattr(self._backend, "run_params", None), streaming=streaming)
        return self._turns

    @property
    def turn_grant(self) -> str:
        """What a lease taken for a turn asks of its grant (acquire.lua's ``turn``): the fence
        check of the turn's first request, and the thread's context unless nothing is merged."""
        return "1" if self._log.merge == "none" else "2"

    def renewer(self, lease: AsyncLease) -> AsyncRenewer:
        """The background renewer of ``lease`` (``lease.keepalive()`` returns it)."""
        return AsyncRenewer(lease, self._leasing, self._settings.renew_margin, self._renewals)

    async def aclose(self) -> None:
        """Let the renewals' scheduler end once no lease of this pool object is being renewed."""
        await self._renewals.aclose()

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
        turns = self.check_turn(params)
        if checked_lease(lease).released:
            raise LeaseNotOwned(f"lease on thread {lease.thread_id!r} was already released")
        return await turns.run(
            lease, message, tool_handler=tool_handler, metadata=metadata, params=params
        )

    async def pending_context(self, lease: AsyncLease) -> list[dict[str, Any]]:
        """What ``lease``'s thread is missing, as input items (``lease.pending_context``)."""
        return await self._own.pending(lease)

    async def record_on(
        self,
        lease: AsyncLease,
        *,
        user: str,
        reply: str,
        run_id: str = "",
        record_id: str | None = None,
        tool_calls: Sequence[ToolCall] = (),
    ) -> int:
        """Log a turn made by a call of the caller's own on ``lease`` (``lease.record``)."""
        return await self._own.record(
            lease,
            user=user,
            reply=reply,
            run_id=run_id,
            record_id=record_id,
            tool_calls=tool_calls,
        )

    def stream_on(
        self,
        lease: AsyncLease,
        message: str,
        *,
        tool_handler: ToolHandler | None = None,
        metadata: Mapping[str, object] | None = None,
        **params: Any,
    ) -> contextlib.AbstractAsyncContextManager[AsyncTurnStream]:
        """Stream one turn on a held ``lease`` (``lease.stream`` calls this)."""
        turns = self.check_turn(params, streaming=True)
        if checked_lease(lease).released:
            raise LeaseNotOwned(f"lease on thread {lease.thread_id!r} was already released")
        return stream_turn(
            turns, lease, message, tool_handler=tool_handler, metadata=metadata, params=params
        )
