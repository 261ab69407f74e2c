"""The asyncio side of the vocabulary shared with ``_compat`` (the generated sync code's side)."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from types import TracebackType
from typing import Any, Generic, TypeVar

from thread_pool._model.log_events import event
from thread_pool._store import clients
from thread_pool.errors import WrongEventLoop

open_client = clients.open_async
"""The asyncio Redis client a pool or admin object opens for itself when given none."""

T = TypeVar("T")

# Marks the end of what an ``EventPump`` produced.
_END: Any = object()

_HOST = socket.gethostname()


async def shield(aw: Awaitable[T]) -> T:
    """Run ``aw`` to its end even if the caller is cancelled meanwhile, then let the cancellation
    through. For clean-up that must not be cut in half (giving back a lease or a reservation)."""
    task = asyncio.ensure_future(aw)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        while not task.done():
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                continue
        raise


async def finish_first(aw: Awaitable[T], then: Callable[[T], Awaitable[object]]) -> T:
    """Run ``aw`` to its end even if the caller is cancelled meanwhile; if it was, hand what
    ``aw`` returned to ``then`` (run to its end as well) before the cancellation goes through.
    For a request whose answer is the only record of what it started upstream: cut in half, it
    may have started a run that nobody could name."""
    task = asyncio.ensure_future(aw)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        while not task.done():
            with contextlib.suppress(BaseException):
                await asyncio.wait({task})
        if not task.cancelled() and task.exception() is None:
            with contextlib.suppress(Exception):
                await shield(then(task.result()))
        raise


@contextlib.contextmanager
def keep_cancellation() -> Iterator[None]:
    """Give back a cancellation that the Redis client swallowed.

    redis-py's asyncio client (seen with 8.1) can let a command that is cancelled in flight
    complete and return normally, the cancellation lost; the caller would then go on as if it had
    never been cancelled. If the task was cancelled while the block ran and the block still
    ended normally, raise the cancellation here, after the command's effect is known.
    """
    task = asyncio.current_task()
    before = task.cancelling() if task is not None else 0
    yield
    if task is not None and task.cancelling() > before:
        raise asyncio.CancelledError


def holder_name() -> str:
    """Who is asking: host, process and task, as shown in a pool's status."""
    task = asyncio.current_task()
    name = task.get_name() if task is not None else "main"
    return f"{_HOST}:{os.getpid()}:{name}".replace("|", "/")


async def drain(chunks: AsyncIterator[bytes], seconds: float) -> None:
    """Read what is left of a response body for ``seconds`` at most, so that its connection can
    be reused; give up quietly (the connection is then closed instead)."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(seconds):
            async for _ in chunks:
                pass


async def sleep(seconds: float) -> None:
    """Wait ``seconds`` without blocking the event loop."""
    await asyncio.sleep(seconds)


async def call_handler(handler: Callable[..., Any], *args: Any, name: str = "tool_handler") -> Any:
    """Call a user callback that may be a plain function or a coroutine function (``name``: the
    argument it was given as, for the sync pool's error)."""
    result = handler(*args)
    if inspect.isawaitable(result):
        result = await result
    return result


class LoopBound:
    """The event loop an object (a pool and its Redis connections) first ran on; it must not be
    used from another (asyncio objects and redis-py's asyncio connections belong to one loop,
    and fail in obscure ways on another)."""

    def __init__(self, what: str) -> None:
        self._what = what
        self._loop: asyncio.AbstractEventLoop | None = None

    def check(self) -> None:
        """Bind to the running loop on first use; raise ``WrongEventLoop`` on another."""
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif loop is not self._loop:
            raise WrongEventLoop(
                f"{self._what} was first used on another event loop; it is bound to that loop "
                "(with its Redis connections): create it on the loop that uses it (in a web "
                "app, in the app's lifespan or startup, not at import)"
            )


class Background:
    """Run ``step`` again and again beside the caller (here an asyncio task; in ``_compat`` a
    daemon thread) until the block ends or ``step`` returns None; otherwise it returns how many
    seconds to wait before the next step. Used to renew a lease while a turn runs."""

    def __init__(self, step: Callable[[], Awaitable[float | None]], name: str) -> None:
        self._step = step
        self._name = name
        self._task: asyncio.Task[None] | None = None

    async def _loop(self) -> None:
        while True:
            delay = await self._step()
            if delay is None:
                return
            await asyncio.sleep(delay)

    async def __aenter__(self) -> Background:
        self._task = asyncio.create_task(self._loop(), name=self._name)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._task is not None
        self._task.cancel()
        # Wait for it to end (shielded: a cancelled caller must not leave it running).
        await shield(asyncio.wait([self._task]))
        if not self._task.cancelled() and self._task.exception() is not None:
            logging.getLogger("thread_pool").warning(
                "background %s failed: %s",
                self._name,
                self._task.exception(),
                extra=event("background.failed"),
            )


class Scheduler:
    """Where the ``Background`` blocks of one pool object run: here each as its own asyncio task
    (tasks are cheap); in ``_compat`` all on one thread per pool object, which a blocking turn
    would otherwise start and join for its renewal."""

    def __init__(self, name: str) -> None:
        self._name = name

    def background(self, step: Callable[[], Awaitable[float | None]], name: str) -> Background:
        """A block that runs ``step`` at once, then after each delay it returns."""
        return Background(step, name)

    async def aclose(self) -> None:
        """Nothing to end: each block's task ends with its block."""


class EventPump(Generic[T]):
    """Run ``produce(put)`` beside the consumer (an asyncio task here; a thread in ``_compat``)
    and hand what it ``put``s to ``get``, in order. ``put`` returns once the consumer took the
    item: the producer is never ahead of the consumer, so its work (a turn, its lease renewed)
    lasts as long as the consumer's reading, however slow. ``get`` raises what the producer
    raised, then ``StopAsyncIteration``.
    Leaving the block stops a producer that has not ended (here: cancels its task) and waits for
    it; a failure of the producer that the consumer never read is raised then."""

    def __init__(
        self, produce: Callable[[Callable[[T], Awaitable[None]]], Awaitable[None]], name: str
    ) -> None:
        self._produce = produce
        self._name = name
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._error: BaseException | None = None
        self._told = False

    async def _put(self, item: T) -> None:
        self._queue.put_nowait(item)
        await self._queue.join()

    async def _run(self) -> None:
        try:
            await self._produce(self._put)
        except BaseException as exc:
            self._error = exc
            if not isinstance(exc, Exception):
                raise  # cancelled: the task ends cancelled
        finally:
            self._queue.put_nowait(_END)

    async def get(self) -> T:
        """The next item; the producer's error once it failed; ``StopAsyncIteration`` at the end."""
        item = await self._queue.get()
        self._queue.task_done()
        if item is _END:
            self._queue.put_nowait(_END)  # every later ``get`` ends too
            if self._error is not None and not self._told:
                self._told = True
                raise self._error
            raise StopAsyncIteration
        result: T = item
        return result

    async def __aenter__(self) -> EventPump[T]:
        self._task = asyncio.create_task(self._run(), name=self._name)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._task is not None
        stopped = not self._task.done()
        if stopped:
            self._task.cancel()
        # Wait for it to end (shielded: a cancelled consumer must not leave it running).
        await shield(asyncio.wait([self._task]))
        error = self._error
        if exc_type is None and not stopped and not self._told and isinstance(error, Exception):
            self._told = True
            raise error


class Inbox:
    """Where one waiter receives its message from the dispatcher (see ``_async/dispatch.py``):
    here an asyncio event of the waiter's loop; in ``_compat`` a ``threading.Event``. The first
    message put stays until taken; later ones are dropped (a waiter acts on one message)."""

    def __init__(self) -> None:
        self._message: str | None = None
        self._arrived = asyncio.Event()

    def put(self, message: str) -> None:
        """Leave ``message`` (called by the dispatcher, never blocks)."""
        if self._message is None:
            self._message = message
            self._arrived.set()

    async def get(self, timeout: float) -> str | None:
        """The message, waiting up to ``timeout`` seconds for it (None: none came)."""
        if self._message is None and timeout > 0:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for may drop a cancellation
            # that comes with the message, and the waiter would go on holding a lease.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._arrived.wait()
        message, self._message = self._message, None
        self._arrived.clear()
        return message


def mutex() -> contextlib.AbstractContextManager[object]:
    """Guards state shared between the dispatcher and its waiters: nothing to do on one event
    loop (the guarded blocks never await); a lock in ``_compat``, where they are threads."""
    return contextlib.nullcontext()


class Spawned:
    """Run ``run()`` beside its starter until it returns (here an asyncio task; in ``_compat`` a
    daemon thread); ``stop`` cuts it short (a thread instead ends at its next check)."""

    def __init__(self, run: Callable[[], Coroutine[Any, Any, None]], name: str) -> None:
        self._task: asyncio.Task[None] = asyncio.create_task(run(), name=name)

    def stop(self) -> bool:
        """Cancel the task (True: that stopped it)."""
        self._task.cancel()
        return True

    async def join(self) -> None:
        """Wait for the (cancelled) task to end, so that the Redis command it was in has let go
        of its connection before the client closes (a command still in flight on a closed client
        would make redis-py reopen it). Its own end, error or cancellation, is not raised here."""
        await asyncio.wait([self._task])
