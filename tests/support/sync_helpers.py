"""Concurrency helpers for the blocking tests; the twin of ``aio_helpers``."""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")

_executor = concurrent.futures.ThreadPoolExecutor(max_workers=32, thread_name_prefix="spawned")


class Spawned(Generic[T]):
    """A function running concurrently with the test (in a thread)."""

    def __init__(self, fn: Callable[..., T], *args: Any) -> None:
        self._future = _executor.submit(fn, *args)

    def join(self, timeout: float = 10.0) -> T:
        """Wait for the function's result (or exception)."""
        return self._future.result(timeout)


def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait until ``check()`` is true; fail the test if it does not become true in time."""
    end = time.monotonic() + timeout
    while not check():
        if time.monotonic() > end:
            raise AssertionError("condition not reached in time")
        time.sleep(0.005)


def pause(seconds: float) -> None:
    """Let time pass (leases expire by Redis's clock, so this really sleeps)."""
    time.sleep(seconds)
