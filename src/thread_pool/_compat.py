"""The blocking side of the vocabulary shared with ``_acompat``, used by the generated sync code."""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, Generic, TypeVar

from thread_pool._model.log_events import event
from thread_pool._store import clients
from thread_pool.errors import InvalidArgument

open_client = clients.open_blocking
"""The blocking Redis client a pool or admin object opens for itself when given none."""

T = TypeVar("T")

# Marks the end of what an ``EventPump`` produced.
_END: Any = object()

_HOST = socket.gethostname()


@contextlib.contextmanager
def keep_cancellation() -> Iterator[None]:
    """Blocking calls lose no cancellation (see ``_acompat.keep_cancellation``)."""
    yield


def holder_name() -> str:
    """Who is asking: host, process and thread, as shown in a pool's status."""
    return f"{_HOST}:{os.getpid()}:{threading.current_thread().name}".replace("|", "/")


def sleep(seconds: float) -> None:
    """Block for ``seconds``."""
    time.sleep(seconds)


def call_handler(handler: Callable[..., Any], *args: Any, name: str = "tool_handler") -> Any:
    """Call a user callback (the ``name`` argument it was given as); a coroutine function needs
    the asyncio pool."""
    result = handler(*args)
    if inspect.isawaitable(result):
        close = getattr(result, "close", None)
        if close is not None:
            close()
        raise InvalidArgument(
            f"an async {name} needs AsyncThreadPool; give ThreadPool a plain function as {name}"
        )
    return result


def finish_first(value: T, then: Callable[[T], object]) -> T:
    """A blocking call has run to its end already (see ``_acompat.finish_first``)."""
    return value


class LoopBound:
    """Blocking objects have no event loop to be bound to (see ``_acompat.LoopBound``)."""

    def __init__(self, what: str) -> None:
        self._what = what

    def check(self) -> None:
        """Nothing to check."""


class Background:
    """Run ``step`` again and again in a daemon thread until the block ends or ``step`` returns
    None (see ``_acompat.Background``)."""

    def __init__(self, step: Callable[[], float | None], name: str) -> None:
        self._step = step
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def _loop(self) -> None:
        try:
            while not self._stop.is_set():
                delay = self._step()
                if delay is None or self._stop.wait(delay):
                    return
        except Exception as exc:
            logging.getLogger("thread_pool").warning(
                "background %s failed: %s", self._thread.name, exc, extra=event("background.failed")
            )

    def __enter__(self) -> Background:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()


class StreamClosed(BaseException):
    """Raised in an ``EventPump``'s producer once its consumer left: the producer unwinds (a
    ``BaseException``, like asyncio's cancellation, so that no ``except Exception`` keeps it)."""


class EventPump(Generic[T]):
    """Run ``produce(put)`` in a thread beside the consumer and hand what it ``put``s to ``get``,
    in order, each ``put`` returning once the consumer took the item (see
    ``_acompat.EventPump``). Leaving the block makes the producer's ``put`` raise
    ``StreamClosed`` and waits for the producer to end."""

    def __init__(self, produce: Callable[[Callable[[T], None]], None], name: str) -> None:
        self._produce = produce
        self._queue: queue.Queue[Any] = queue.Queue()
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._told = False
        # The producer runs in the consumer's context (context variables, tracing).
        context = contextvars.copy_context()
        self._thread = threading.Thread(
            target=context.run, args=(self._run,), name=name, daemon=True
        )

    def _put(self, item: T) -> None:
        if self._stop.is_set():
            raise StreamClosed
        self._queue.put(item)
        taken = self._queue.all_tasks_done
        with taken:
            while self._queue.unfinished_tasks:
                if self._stop.is_set():
                    raise StreamClosed
                taken.wait(0.05)

    def _run(self) -> None:
        try:
            self._produce(self._put)
        except BaseException as exc:
            self._error = exc
        finally:
            self._queue.put(_END)

    def get(self) -> T:
        """The next item; the producer's error once it failed; ``StopIteration`` at the end."""
        item = self._queue.get()
        self._queue.task_done()
        if item is _END:
            self._queue.put(_END)  # every later ``get`` ends too
            if self._error is not None and not self._told:
                self._told = True
                raise self._error
            raise StopIteration
        result: T = item
        return result

    def __enter__(self) -> EventPump[T]:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stopped = self._thread.is_alive()
        self._stop.set()
        self._thread.join()
        error = self._error
        if exc_type is None and not stopped and not self._told and isinstance(error, Exception):
            self._told = True
            raise error
