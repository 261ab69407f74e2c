"""What a pool needs from an upstream API to run turns: the backend protocol, and the guard a
backend is handed so it can fence its writes without touching Redis itself."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from thread_pool._model.log import RequestCaps
from thread_pool._model.stream import StreamEvent
from thread_pool._model.turns import Turn
from thread_pool.errors import InvalidArgument

ToolHandler = Callable[..., Any]
"""Called with a ``ToolCall``; returns the output (text, or anything JSON-serialisable), or an
awaitable of it (with the asyncio pool)."""

EventSink = Callable[[StreamEvent], Awaitable[None]]
"""Where a streamed turn's events go, in order (the consumer's pace holds it back)."""


class AsyncGuard(Protocol):
    """The lease as a backend sees it during one turn."""

    fence: int

    async def write(self, *, starts_run: bool = False) -> dict[str, str]:
        """The fence check before an upstream write: raise ``LeaseLost`` unless the lease is still
        ours with enough time left. Returns the metadata to stamp on the write. ``starts_run``:
        the write starts a run (response); until ``started`` names it (or the turn fails) a
        settler of this thread waits for it, so that a write sent by a holder stopped in
        mid-send is found and ended before the thread is handed out."""
        ...

    def alive(self) -> None:
        """Raise ``LeaseLost`` if the lease is known lost (cheap, no I/O): stop waiting."""
        ...

    def delivered(self) -> None:
        """The turn's context is on the thread now (upstream took it in), whatever becomes of
        the turn: the thread's log cursor may move past it even if the turn fails."""
        ...

    async def started(self, request_id: str) -> None:
        """Record the upstream request now in flight on the thread (for a settler to find if
        this holder dies)."""
        ...

    async def finished(self) -> None:
        """The request recorded by ``started`` has ended."""
        ...


@runtime_checkable
class AsyncBackend(Protocol):
    """An upstream API adapter: makes threads, settles them, runs turns on them."""

    async def create_thread(self, key: str, messages: Sequence[Mapping[str, str]] = ()) -> str:
        """Create an upstream thread for pool ``key`` (its metadata names the pool), holding
        ``messages`` (``{"role", "content"}``, the pool's log so far) from the start."""
        ...

    async def delete_thread(self, thread_id: str) -> bool:
        """Delete an upstream thread; False if it did not exist."""
        ...

    async def settle_thread(self, key: str, thread_id: str, in_flight: str | None = None) -> bool:
        """Make sure nothing runs on the thread: wait briefly for its active run (response),
        else cancel it and confirm it ended. ``in_flight`` is the id a turn recorded. True when
        ready, False when the thread is gone upstream; raises to be retried later."""
        ...

    def context_items(self, messages: Sequence[Mapping[str, str]]) -> list[dict[str, Any]]:
        """Context messages (``{"role", "content"}``, ``tool`` entries included) as input items
        of this API, as a turn sends them: what ``lease.pending_context`` gives a caller."""
        ...

    async def run_turn(
        self,
        thread_id: str,
        message: str,
        guard: AsyncGuard,
        *,
        tool_handler: ToolHandler | None,
        metadata: Mapping[str, str],
        params: Mapping[str, Any],
        context: Sequence[Mapping[str, str]] = (),
        emit: EventSink | None = None,
    ) -> Turn:
        """Run one turn: one request starts it with ``context`` (messages ``{"role",
        "content"}`` the thread is missing from the pool's log) and then ``message``, then wait
        for its end, answering tool calls through ``tool_handler``. Every write goes through
        ``guard``. With ``emit`` the turn is streamed: its text deltas and answered tool calls
        go to ``emit`` as they come (the pool passes it only for ``stream()``; a backend that
        cannot stream may refuse it with ``InvalidArgument``)."""
        ...


def request_caps(backend: object) -> RequestCaps:
    """What one request to ``backend`` may carry: its ``request_caps`` (both built-in backends
    have them); a backend of your own without that attribute has no limit."""
    caps = getattr(backend, "request_caps", None)
    return caps if isinstance(caps, RequestCaps) else RequestCaps()


def checked_backend(backend: object) -> AsyncBackend:
    """``backend`` if it implements ``AsyncBackend``, else ``InvalidArgument`` (before anything
    is reserved or written, not an ``AttributeError`` halfway through)."""
    if not isinstance(backend, AsyncBackend):
        raise InvalidArgument(
            f"backend must implement AsyncBackend (create_thread, delete_thread, settle_thread, "
            f"run_turn), not {type(backend).__name__}"
        )
    return backend
