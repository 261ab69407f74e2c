"""A streamed turn: the turn of ``turn.py`` run beside its consumer, its events handed over in
order, and an early stop that ends the turn and settles the thread before the lease goes on."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from thread_pool._acompat import EventPump, shield
from thread_pool._async.backend import ToolHandler
from thread_pool._async.lease import AsyncLease
from thread_pool._async.turn import AsyncTurnRunner
from thread_pool._model.log_events import event
from thread_pool._model.stream import StreamEvent, TurnDone
from thread_pool._model.turns import Turn

logger = logging.getLogger("thread_pool")


class AsyncTurnStream:
    """The events of one streamed turn, in order: ``TextDelta`` pieces of the reply,
    ``ToolCallEvent`` for each tool call answered, and last ``TurnDone`` with the ``Turn`` that
    ``run`` would have returned. Iterate it with ``async for``; a failed turn raises its error
    (``TurnFailed``, ``LeaseLost``, ``UpstreamError``) from the loop."""

    __slots__ = ("_pump", "thread_id", "turn")

    def __init__(self, pump: EventPump[StreamEvent], thread_id: str) -> None:
        self._pump = pump
        self.thread_id = thread_id
        """The upstream thread (conversation) the turn runs on."""
        self.turn: Turn | None = None
        """The completed turn, once ``TurnDone`` went by."""

    def __aiter__(self) -> AsyncTurnStream:
        return self

    async def __anext__(self) -> StreamEvent:
        event = await self._pump.get()
        if isinstance(event, TurnDone):
            self.turn = event.turn
        return event


@asynccontextmanager
async def stream_turn(
    runner: AsyncTurnRunner,
    lease: AsyncLease,
    message: str,
    *,
    tool_handler: ToolHandler | None,
    metadata: Mapping[str, object] | None,
    params: Mapping[str, Any],
) -> AsyncIterator[AsyncTurnStream]:
    """Run a turn on ``lease`` beside the block, its events in the ``AsyncTurnStream`` yielded.
    Leaving the block before the turn ended (a ``break``, an error, a cancellation) stops it:
    the run (response) is cancelled and the thread settled before the block is left, and
    nothing is logged."""

    async def produce(put: Callable[[StreamEvent], Awaitable[None]]) -> None:
        await runner.run(
            lease, message, tool_handler=tool_handler, metadata=metadata, params=params, emit=put
        )

    try:
        async with EventPump(produce, f"stream {lease.thread_id}") as pump:
            yield AsyncTurnStream(pump, lease.thread_id)
    finally:
        if lease.dirty and not lease.released:
            await shield(_settle(runner, lease))


async def _settle(runner: AsyncTurnRunner, lease: AsyncLease) -> None:
    """Settle the thread of a turn cut short while the lease is still ours; if that cannot be
    done now, the lease stays dirty and its release settles the thread instead."""
    try:
        await runner.settling.settle_held(lease)
    except Exception as exc:
        logger.info(
            "pool %r: settling %s after a stopped stream: %s",
            lease.key,
            lease.thread_id,
            exc,
            extra=event(
                "settle.after_stream_failed", lease.key, lease.thread_id, fence=lease.fence
            ),
        )
        return
    lease.dirty = False
