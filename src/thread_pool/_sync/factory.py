# WARNING: this file is generated from src/thread_pool/_async/factory.py by tools/async_to_sync.py.
# DO NOT CHANGE IT: change the source and run the tool.
"""What a pool needs from the upstream side: make threads, settle them. Backends implement both."""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class ThreadFactory(Protocol):
    """Creates upstream threads for a pool that has to grow."""

    def create_thread(self, key: str) -> str:
        """Create one upstream thread for pool ``key`` and return its id."""
        ...


@runtime_checkable
class Settler(Protocol):
    """Settles a thread whose lease expired, before it is handed out again."""

    def settle_thread(self, key: str, thread_id: str) -> bool:
        """Wait for or cancel the thread's active upstream run until none is left.

        Return True when the thread is ready for a new run, False when it no longer exists
        upstream (it is then dropped from the pool). Raise to leave it for a later attempt.
        """
        ...
