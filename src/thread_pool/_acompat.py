"""The asyncio side of the vocabulary shared with ``_compat`` (the generated sync code's side)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Awaitable, Iterator
from typing import TypeVar

T = TypeVar("T")

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
