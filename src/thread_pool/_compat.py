"""The blocking side of the vocabulary shared with ``_acompat``, used by the generated sync code."""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, TypeVar

from thread_pool._store import clients
from thread_pool.errors import InvalidArgument

open_client = clients.open_blocking
"""The blocking Redis client a pool or admin object opens for itself when given none."""

T = TypeVar("T")

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
                "background %s failed: %s", self._thread.name, exc
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
