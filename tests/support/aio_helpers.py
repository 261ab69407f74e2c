"""Concurrency helpers for the asyncio tests; ``sync_helpers`` is their blocking twin."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Spawned(Generic[T]):
    """A function running concurrently with the test."""

    def __init__(self, fn: Callable[..., Awaitable[T]], *args: Any) -> None:
        self._task = asyncio.ensure_future(fn(*args))

    async def join(self, timeout: float = 10.0) -> T:
        """Wait for the function's result (or exception)."""
        return await asyncio.wait_for(self._task, timeout)


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    """Wait until ``check()`` is true; fail the test if it does not become true in time."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not await check():
        if loop.time() > end:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


async def pause(seconds: float) -> None:
    """Let time pass (leases expire by Redis's clock, so this really sleeps)."""
    await asyncio.sleep(seconds)
