"""A caller's own upstream calls under a lease: what its thread is missing, as input items of the
thread's API, and the turns those calls made, logged like a turn of the pool's own."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from thread_pool._async.backend import AsyncBackend, request_caps
from thread_pool._async.context_log import AsyncContextLog
from thread_pool._async.lease import AsyncLease
from thread_pool._model.log import TURN_RESERVE
from thread_pool._model.turns import ToolCall, Turn
from thread_pool._model.validation import check_text, validate_record
from thread_pool.errors import InvalidArgument, LeaseNotOwned


@dataclass(frozen=True)
class AsyncOwnCalls:
    """What ``lease.pending_context`` and ``lease.record`` need: the backend (for the API's
    shape of context) and the log."""

    backend: AsyncBackend | None
    log: AsyncContextLog

    async def pending(self, lease: AsyncLease) -> list[dict[str, Any]]:
        """The entries ``lease``'s thread is missing, folded by the merge limits, as the
        backend's input items (see ``AsyncLease.pending_context``). The cursor does not move
        here: ``record`` moves it, once the call that carried them was made."""
        backend = self._usable(lease)
        missing = await self.log.missing(lease.key, lease.thread_id)
        messages = await self.log.messages(missing, request_caps(backend), reserve=TURN_RESERVE)
        lease.context_seq = missing.last_seq
        return backend.context_items(messages)

    async def record(
        self,
        lease: AsyncLease,
        *,
        user: str,
        reply: str,
        run_id: str,
        record_id: str | None,
        tool_calls: Sequence[ToolCall],
    ) -> int:
        """Log a turn made by the caller's own call (see ``AsyncLease.record``)."""
        self._usable(lease)
        user, reply, run_id, record_id, calls = validate_record(
            user, reply, run_id, record_id, tool_calls
        )
        # Idempotent by the caller's id, else by the run's; with neither, by nothing.
        entry_id = record_id or run_id or "record:" + secrets.token_hex(12)
        check_text("record_id", entry_id)
        if lease.context_seq >= 0:
            seen = lease.context_seq
        else:
            # No context was asked for: the thread holds what its cursor says, nothing more.
            seen = (await self.log.missing(lease.key, lease.thread_id)).cursor
        turn = Turn(
            reply=reply,
            thread_id=lease.thread_id,
            run_id=run_id,
            status="completed",
            fence=lease.fence,
            tool_calls=calls,
        )
        seq = await self.log.log_turn(lease.key, lease.thread_id, entry_id, seen, user, turn)
        # Delivered and recorded: a later call on this lease starts from the new cursor.
        lease.context_seq = -1
        return seq

    def _usable(self, lease: AsyncLease) -> AsyncBackend:
        if self.backend is None:
            raise InvalidArgument("this pool has no backend: it cannot shape context for a thread")
        if lease.released:
            raise LeaseNotOwned(f"lease on thread {lease.thread_id!r} was already released")
        lease.alive()
        return self.backend
