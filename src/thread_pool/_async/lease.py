"""A lease: one thread of a pool, held by one caller until released or expired."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Protocol

from thread_pool._async.backend import ToolHandler
from thread_pool._model.turns import ToolCall, Turn, reply_of
from thread_pool._store.replies import TurnStart
from thread_pool.errors import InvalidArgument, LeaseLost

if TYPE_CHECKING:
    from thread_pool._async.renewal import AsyncRenewer
    from thread_pool._async.streaming import AsyncTurnStream
    from thread_pool._telemetry import Scope


class AsyncLeaseOwner(Protocol):
    """What a lease asks of the pool that granted it (``AsyncThreadPool``): the lease itself,
    and (``work``) what is done with its thread."""

    @property
    def work(self) -> AsyncLeaseWorker: ...

    @property
    def telemetry(self) -> Scope: ...

    async def renew(self, lease: AsyncLease, ttl: float | None = None) -> float: ...

    async def check(self, lease: AsyncLease, min_remaining: float | None = None) -> float: ...

    async def release(self, lease: AsyncLease) -> None: ...


class AsyncLeaseWorker(Protocol):
    """What a lease asks of its pool's ``work`` (``AsyncLeaseWork``): turns, own calls and
    renewal on its thread."""

    async def run_on(
        self,
        lease: AsyncLease,
        message: str,
        *,
        tool_handler: ToolHandler | None = None,
        metadata: Mapping[str, object] | None = None,
        **params: Any,
    ) -> Turn: ...

    def stream_on(
        self,
        lease: AsyncLease,
        message: str,
        *,
        tool_handler: ToolHandler | None = None,
        metadata: Mapping[str, object] | None = None,
        **params: Any,
    ) -> AbstractAsyncContextManager[AsyncTurnStream]: ...

    def renewer(self, lease: AsyncLease) -> AsyncRenewer: ...

    async def pending_context(self, lease: AsyncLease) -> list[dict[str, Any]]: ...

    async def record_on(
        self,
        lease: AsyncLease,
        *,
        user: str,
        reply: str,
        run_id: str,
        record_id: str | None,
        tool_calls: Sequence[ToolCall],
    ) -> int: ...


class AsyncLease:
    """A thread held under a Redis lease.

    ``fence`` grows with every grant of the thread, so writes stamped with it can be ordered and a
    stale holder recognised. ``deadline`` is the Unix time (Redis clock) at which the lease expires
    unless renewed. ``lost`` says why the lease is known lost (a renewal failed, a check found
    it taken over, it ran out during a turn), or is None while it is not known lost.
    """

    __slots__ = (
        "_local_deadline",
        "_pool",
        "context_seq",
        "deadline",
        "dirty",
        "fence",
        "granted_at",
        "kept_alive",
        "key",
        "lost",
        "released",
        "thread_id",
        "token",
        "turn_start",
    )

    def __init__(
        self,
        pool: AsyncLeaseOwner,
        key: str,
        thread_id: str,
        token: str,
        fence: int,
        deadline_ms: int,
        ttl_ms: int,
        asked_at: float,
    ) -> None:
        self._pool = pool
        self.key = key
        self.thread_id = thread_id
        self.token = token
        self.fence = fence
        self.deadline = deadline_ms / 1000
        # The server set the deadline after we asked, so counting the TTL from the moment we asked
        # errs on the safe side without comparing clocks.
        self._local_deadline = asked_at + ttl_ms / 1000
        self.released = False
        # Set while a turn may have left an upstream run active: release then settles the thread.
        self.dirty = False
        self.lost: str | None = None
        # A renewer runs for this lease now (a kept-alive block or a turn): one is enough.
        self.kept_alive = False
        # The log's end as the last ``pending_context`` read it (-1: not read): what the thread
        # holds once the caller's call that carried that context is recorded.
        self.context_seq = -1
        # What the grant did for the turn this lease was taken for (``pool.run``/``stream``);
        # the turn takes it, once.
        self.turn_start: TurnStart | None = None
        self.granted_at = time.monotonic()

    def remaining(self) -> float:
        """Seconds left before the lease expires, by this process's clock (a safe lower bound)."""
        return self._local_deadline - time.monotonic()

    def held_for(self) -> float:
        """Seconds since the lease was granted (this process's clock)."""
        return time.monotonic() - self.granted_at

    def extended(self, deadline_ms: int, ttl_ms: int, asked_at: float) -> None:
        """Record a renewal: the new deadline (Redis clock, ms) and TTL, asked for at
        ``asked_at`` (this process's monotonic clock)."""
        self.deadline = deadline_ms / 1000
        self._local_deadline = asked_at + ttl_ms / 1000

    def lose(self, reason: str) -> None:
        """Mark the lease lost (the first reason is kept): every later fence check, renewal,
        turn, ``pending_context`` and ``record`` raises ``LeaseLost``."""
        if self.lost is None:
            self.lost = reason
            self._pool.telemetry.lost(self.key)

    def alive(self) -> None:
        """Raise ``LeaseLost`` if the lease is known lost (no I/O)."""
        if self.lost is not None:
            raise LeaseLost(
                f"lease on thread {self.thread_id!r} of pool {self.key!r} (fence {self.fence}) "
                f"was lost: {self.lost}"
            )

    def keepalive(self) -> AsyncRenewer:
        """Renew this lease in the background for the ``async with`` block (as a turn does while
        it runs), for work of your own that may outlast the TTL; a failed renewal marks the lease
        lost at once (``lost``; ``check`` and the write helpers raise ``LeaseLost``).
        ``pool.lease(key, keepalive=True)`` does the same for the whole lease."""
        return self._pool.work.renewer(self)

    async def renew(self, ttl: float | None = None) -> float:
        """Extend the lease to ``ttl`` seconds from now (default: the pool's TTL); raise
        ``LeaseLost`` if it already expired or was taken over. Returns the new deadline."""
        return await self._pool.renew(self, ttl)

    async def check(self, min_remaining: float | None = None) -> float:
        """The fence check before an upstream write: raise ``LeaseLost`` unless the lease is still
        current, renewing it first when less than ``min_remaining`` seconds are left."""
        return await self._pool.check(self, min_remaining)

    async def run(
        self,
        message: str,
        *,
        tool_handler: ToolHandler | None = None,
        metadata: Mapping[str, object] | None = None,
        **params: Any,
    ) -> Turn:
        """Run one turn on this thread through the pool's backend: ``message`` goes up in the
        request that starts the run; returns when it ended. Every write is fenced, the lease is
        renewed while the turn runs, and ``tool_handler`` (a function, or with the asyncio pool a
        coroutine function) answers tool calls. ``params`` go to upstream (``assistant_id``,
        ``model``, ``instructions``, ``tools``...). Raises ``TurnFailed`` when the run failed,
        ``LeaseLost`` when the lease was lost meanwhile (nothing more was written)."""
        return await self._pool.work.run_on(
            self, message, tool_handler=tool_handler, metadata=metadata, **params
        )

    async def pending_context(self) -> list[dict[str, Any]]:
        """What this thread is missing from the pool's log, as input items of the thread's API,
        folded by the merge limits like a turn's context: put them before your own input
        (Conversations: ``responses.create(input=[*items, ...])``; Assistants:
        ``runs.create(additional_messages=[*items, ...])``). They count as delivered only once
        the call that carried them is recorded (``record``): a call that never is recorded
        leaves them due."""
        return await self._pool.work.pending_context(self)

    async def record(
        self,
        *,
        user: str,
        reply: str,
        run_id: str = "",
        record_id: str | None = None,
        tool_calls: Sequence[ToolCall] = (),
    ) -> int:
        """Log a turn that your own call made on this thread (its ``user`` message, the
        ``tool_calls`` it answered and its ``reply``), so the sibling threads receive it, and
        move this thread's cursor past the context ``pending_context`` gave it. Idempotent:
        ``record_id`` (default: ``run_id``) is logged at most once. Returns the log seq of the
        turn's last entry."""
        return await self._pool.work.record_on(
            self,
            user=user,
            reply=reply,
            run_id=run_id,
            record_id=record_id,
            tool_calls=tool_calls,
        )

    async def record_response(
        self, user: str, response: Any, *, record_id: str | None = None
    ) -> int:
        """``record`` for a Responses API ``Response`` (what ``responses.create`` returned for
        your call that sent ``user``): its ``output_text`` is the reply, its id the run id."""
        reply, run_id = reply_of(response)
        return await self.record(user=user, reply=reply, run_id=run_id, record_id=record_id)

    def stream(
        self,
        message: str,
        *,
        tool_handler: ToolHandler | None = None,
        metadata: Mapping[str, object] | None = None,
        **params: Any,
    ) -> AbstractAsyncContextManager[AsyncTurnStream]:
        """Run one turn on this thread as ``run`` does, streaming it: ``async with
        lease.stream(message) as events: async for event in events: ...`` yields ``TextDelta``,
        ``ToolCallEvent`` and last ``TurnDone`` (the ``Turn`` that ``run`` returns; the turn is
        logged by then). The lease is renewed however slowly the events are read. Leaving the
        block before ``TurnDone`` stops the turn: its run (response) is cancelled and the thread
        settled before the block is left, and nothing is logged."""
        return self._pool.work.stream_on(
            self, message, tool_handler=tool_handler, metadata=metadata, **params
        )

    async def release(self) -> None:
        """Give the thread back to the pool."""
        await self._pool.release(self)

    def __repr__(self) -> str:
        state = (
            "released"
            if self.released
            else "lost"
            if self.lost is not None
            else f"{self.remaining():.1f}s left"
        )
        return (
            f"<{type(self).__name__} pool={self.key!r} thread={self.thread_id!r} "
            f"fence={self.fence} {state}>"
        )


def checked_lease(lease: object) -> AsyncLease:
    """``lease`` if it is one (``release(None)`` must not fail on a missing attribute)."""
    if not isinstance(lease, AsyncLease):
        raise InvalidArgument(f"expected a lease from acquire(), not {type(lease).__name__}")
    return lease
