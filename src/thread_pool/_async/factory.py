"""What a pool needs from the upstream side: make threads, settle them. Backends implement both."""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class AsyncThreadFactory(Protocol):
    """Creates upstream threads for a pool that has to grow."""

    async def create_thread(self, key: str) -> str:
        """Create one upstream thread for pool ``key`` and return its id."""
        ...


@runtime_checkable
class AsyncSettler(Protocol):
    """Settles a thread whose lease expired, before it is handed out again."""

    async def settle_thread(self, key: str, thread_id: str) -> bool:
        """Wait for or cancel the thread's active upstream run until none is left.

        Return True when the thread is ready for a new run, False when it no longer exists
        upstream (it is then dropped from the pool). Raise to leave it for a later attempt.
        """
        ...
