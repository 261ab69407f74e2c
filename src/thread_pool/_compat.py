"""The blocking side of the vocabulary shared with ``_acompat``, used by the generated sync code."""

from __future__ import annotations

import contextlib
import contextvars
import heapq
import inspect
import itertools
import logging
import os
import queue
import socket
import threading
import time
import weakref
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


def drain(chunks: Iterator[bytes], seconds: float) -> None:
    """Nothing: a blocking read cannot be bounded by time here, and a server that keeps a body
    open would hold the caller until the read's timeout; the connection is closed instead."""


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
    """Run ``step`` again and again on ``scheduler``'s threads until the block ends or ``step``
    returns None (see ``_acompat.Background``)."""

    def __init__(self, step: Callable[[], float | None], name: str, scheduler: Scheduler) -> None:
        self.step = step
        self.name = name
        self._scheduler = scheduler
        # Guarded by the scheduler's lock.
        self.entry: list[Any] | None = None  # its place in the scheduler's queue, while due
        self.running_on: threading.Thread | None = None  # the thread running its step now
        self.stopped = False

    def __enter__(self) -> Background:
        self._scheduler.start(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._scheduler.stop(self)


class Scheduler:
    """The threads that run the steps of every open ``Background`` block of one pool object,
    each when it is due (see ``_acompat.Scheduler``). A thread per block (a turn's renewal) cost
    every turn a thread start and join, which under load was a visible share of its time.

    Runners share one queue. A runner about to run a step makes sure another one is free to
    keep time (starting one if none is), so a step stuck in a slow Redis call delays no other
    block's step; with quick steps this settles at two threads. A runner ends once it has been
    free for ``IDLE_S`` seconds while another is free too, or with nothing left to run; after
    ``close`` once no block is open. A process forked from this one starts afresh (its threads
    were not copied)."""

    IDLE_S = 10.0

    def __init__(self, name: str) -> None:
        self._name = name
        self._order = itertools.count()
        self.after_fork()
        _SCHEDULERS.add(self)

    def after_fork(self) -> None:
        """Start afresh: nothing queued, no runner (also what a forked child gets: the threads
        of its parent were not copied, and a lock may have been held by one of them)."""
        self._due: list[list[Any]] = []  # heap of [when, order, block]
        self._changed = threading.Condition()
        self._runners = 0  # threads running _loop
        self._free = 0  # of them, those waiting for a step to come due
        self._closed = False

    def background(self, step: Callable[[], float | None], name: str) -> Background:
        """A block that runs ``step`` at once, then after each delay it returns."""
        return Background(step, name, self)

    def start(self, block: Background) -> None:
        """Run ``block``'s first step at once (``Background.__enter__``)."""
        with self._changed:
            block.stopped = False
            self._closed = False
            self._queue(block, 0.0)
            if self._free == 0:
                self._spawn()

    def stop(self, block: Background) -> None:
        """Run no more steps of ``block``; wait for one running now (``Background.__exit__``)."""
        with self._changed:
            block.stopped = True
            if block.entry is not None and block.entry in self._due:  # not: forked since
                self._due.remove(block.entry)
                heapq.heapify(self._due)
            block.entry = None
            while (
                (runner := block.running_on) is not None
                and runner is not threading.current_thread()
                and runner.is_alive()  # a runner of the process this one was forked from is not
            ):
                self._changed.wait()

    def close(self) -> None:
        """End the threads once no block is open (a later block starts another)."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def _spawn(self) -> None:
        """Start a runner. Called holding the lock."""
        self._runners += 1
        self._free += 1  # free from the start: no other runner starts one for it meanwhile
        threading.Thread(target=self._loop, name=self._name, daemon=True).start()

    def _queue(self, block: Background, delay: float) -> None:
        block.entry = [time.monotonic() + delay, next(self._order), block]
        heapq.heappush(self._due, block.entry)
        self._changed.notify_all()

    def _next(self) -> Background | None:
        """The next block due, once it is (None: this runner ends). Called holding the lock, by
        a runner counted free; it is counted busy again when a block is returned."""
        idle_until = time.monotonic() + self.IDLE_S
        while True:
            now = time.monotonic()
            if self._due and self._due[0][0] <= now:
                block: Background = heapq.heappop(self._due)[2]
                block.entry = None
                self._free -= 1
                return block
            if not self._due and (self._closed or now >= idle_until):
                break
            if self._due and now >= idle_until and self._free > 1:
                break  # another free runner keeps time
            wait = self._due[0][0] - now if self._due else idle_until - now
            if self._due and self._free > 1:
                wait = min(wait, idle_until - now)
            self._changed.wait(max(wait, 0.0))
        self._free -= 1
        self._runners -= 1
        return None

    def _loop(self) -> None:
        with self._changed:
            while (block := self._next()) is not None:
                if self._free == 0 and self._due:
                    self._spawn()  # someone keeps time while this step runs
                block.running_on = threading.current_thread()
                self._changed.release()
                delay: float | None = None
                try:
                    delay = block.step()
                except BaseException as exc:
                    # Whatever it was (SystemExit, gevent's Timeout), it ends this block only:
                    # a runner that died here would still be counted free.
                    logging.getLogger("thread_pool").warning(
                        "background %s failed: %s",
                        block.name,
                        exc,
                        extra=event("background.failed"),
                    )
                finally:
                    self._changed.acquire()
                    block.running_on = None
                    self._free += 1
                    self._changed.notify_all()
                if delay is not None and not block.stopped:
                    self._queue(block, delay)


def _forked() -> None:
    for scheduler in list(_SCHEDULERS):
        scheduler.after_fork()


_SCHEDULERS: weakref.WeakSet[Scheduler] = weakref.WeakSet()
os.register_at_fork(after_in_child=_forked)


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


class Inbox:
    """Where one waiter receives its message from the dispatcher (see ``_acompat.Inbox``)."""

    def __init__(self) -> None:
        self._message: str | None = None
        self._arrived = threading.Event()
        self._lock = threading.Lock()

    def put(self, message: str) -> None:
        """Leave ``message`` (called by the dispatcher's thread, never blocks)."""
        with self._lock:
            if self._message is None:
                self._message = message
                self._arrived.set()

    def get(self, timeout: float) -> str | None:
        """The message, waiting up to ``timeout`` seconds for it (None: none came)."""
        if timeout > 0:
            self._arrived.wait(timeout)
        with self._lock:
            message, self._message = self._message, None
            self._arrived.clear()
        return message


def mutex() -> contextlib.AbstractContextManager[object]:
    """Guards state shared between the dispatcher's thread and the waiting threads."""
    return threading.Lock()


class Spawned:
    """Run ``run()`` in a daemon thread until it returns (see ``_acompat.Spawned``)."""

    def __init__(self, run: Callable[[], None], name: str) -> None:
        self._thread = threading.Thread(target=run, name=name, daemon=True)
        self._thread.start()

    def stop(self) -> bool:
        """A thread cannot be cut short (False): it sees its owner closed at its next check."""
        return False

    def join(self) -> None:
        """Wait (a few seconds at most) for the thread to end."""
        if self._thread is not threading.current_thread():
            self._thread.join(5.0)
