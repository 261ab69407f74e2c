"""The last check before a turn's request leaves the process: is the lease still ours?

The fence check before a write runs in Redis, a moment before the request is built and sent. A
process paused in between (SIGSTOP, a VM stall, a long GC) past its lease's deadline would send
the write late, onto a thread the pool may have settled and handed to the next holder: upstream
has no fence check of its own. So while a turn runs, its requests pass an httpx request hook
that compares the lease's own deadline (by this process's monotonic clock, which keeps counting
through a pause) with the time of sending, and stops a late request before it goes out. What is
left is a pause between this hook and the socket write: microseconds of code, not the
milliseconds of a Redis round trip and of encoding the turn's context.

The hook sits on the SDK client's httpx client (shared with copies made by ``with_options``) and
does nothing outside a turn; the turn's lease travels in a context variable, so concurrent turns
(tasks, threads) each see their own.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any, Protocol

from thread_pool._telemetry import note_request
from thread_pool.errors import LeaseLost


class _Held(Protocol):
    key: str
    thread_id: str
    fence: int

    def remaining(self) -> float: ...


_HELD: ContextVar[_Held | None] = ContextVar("thread_pool_turn_lease", default=None)


@contextlib.contextmanager
def _holding(lease: _Held | None) -> Iterator[None]:
    token = _HELD.set(lease)
    try:
        yield
    finally:
        _HELD.reset(token)


def turn_requests(lease: _Held) -> contextlib.AbstractContextManager[None]:
    """Within this block, this task's (thread's) requests go out only while ``lease`` lasts."""
    return _holding(lease)


def unguarded() -> contextlib.AbstractContextManager[None]:
    """Within this block requests go out whatever the lease: clean-up (cancelling what the turn
    started) must reach upstream even when the lease has run out."""
    return _holding(None)


def _check(request: Any) -> None:
    lease = _HELD.get()
    note_request()
    if lease is not None and lease.remaining() <= 0:
        raise LeaseLost(
            f"lease on thread {lease.thread_id!r} of pool {lease.key!r} (fence {lease.fence}) "
            f"ran out before its request was sent ({request.method} {request.url.path}); "
            "the process was likely paused"
        )


async def _acheck(request: Any) -> None:
    _check(request)


def install(client: Any) -> None:
    """Add the check to an ``openai.OpenAI`` / ``AsyncOpenAI`` client's HTTP client (once).

    Duck-typed: the SDK's HTTP client is httpx's (``httpx2`` in recent releases), whose
    ``event_hooks`` run before a request is sent; an asyncio client wants coroutine hooks."""
    http: Any = getattr(client, "_client", None)
    hooks = getattr(http, "event_hooks", None)
    if not isinstance(hooks, dict) or "request" not in hooks:
        return  # not the SDK's usual make-up: the Redis fence check alone guards the writes
    hook: Any = _acheck if inspect.iscoroutinefunction(getattr(http, "send", None)) else _check
    if hook not in hooks["request"]:
        http.event_hooks = {**hooks, "request": [*hooks["request"], hook]}


def stopped(exc: BaseException) -> LeaseLost | None:
    """The ``LeaseLost`` this check raised, if ``exc`` (the SDK wraps it in a connection error)
    came from it."""
    cause = exc.__cause__
    return cause if isinstance(cause, LeaseLost) else None
