"""Backends for pool tests that need no upstream: made-up thread ids, every call recorded.

``RecordingBackend`` (blocking) and ``AsyncRecordingBackend`` (asyncio) implement the whole
``Backend`` protocol, so a pool given one grows, settles and deletes through it exactly as through
a real backend; it runs no turns.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from thread_pool import InvalidArgument, Turn


class _Recorder:
    """The state both kinds share. ``fail_first``: that many creations fail before reaching
    upstream (an outage); ``fail_create``: raised after the thread was created (the answer is
    lost); ``fail_delete``: deletes fail; ``ready``: what settling says (False: gone)."""

    def __init__(self, fail_first: int = 0, ready: bool = True, unique: bool = True) -> None:
        self.fail_first = fail_first
        self.fail_create: BaseException | None = None
        self.fail_delete = False
        self.ready = ready
        self.unique = unique
        self.created: list[str] = []
        self.threads: set[str] = set()
        """Threads that exist upstream now."""
        self.seeded: dict[str, list[dict[str, str]]] = {}
        self.settled: list[str] = []
        self._ids = itertools.count(1)

    def _create(self, messages: Sequence[Mapping[str, str]]) -> str:
        if self.fail_first:
            self.fail_first -= 1
            raise RuntimeError("upstream unavailable")
        n = next(self._ids)
        thread_id = f"thread_{n}_{uuid.uuid4().hex[:8]}" if self.unique else f"thread_{n}"
        self.created.append(thread_id)
        self.threads.add(thread_id)
        self.seeded[thread_id] = [dict(m) for m in messages]
        if self.fail_create is not None:
            raise self.fail_create  # created upstream, but the answer never arrives
        return thread_id

    def _delete(self, thread_id: str) -> bool:
        if self.fail_delete:
            raise RuntimeError("upstream down")
        if thread_id not in self.threads:
            return False
        self.threads.discard(thread_id)
        return True

    def _settle(self, thread_id: str) -> bool:
        self.settled.append(thread_id)
        return self.ready

    def context_items(self, messages: Sequence[Mapping[str, str]]) -> list[dict[str, Any]]:
        return [dict(m) for m in messages]


class RecordingBackend(_Recorder):
    """A blocking ``Backend`` without an upstream."""

    def create_thread(self, key: str, messages: Sequence[Mapping[str, str]] = ()) -> str:
        return self._create(messages)

    def delete_thread(self, thread_id: str) -> bool:
        return self._delete(thread_id)

    def settle_thread(self, key: str, thread_id: str, in_flight: str | None = None) -> bool:
        return self._settle(thread_id)

    def run_turn(self, *args: Any, **kwargs: Any) -> Turn:
        raise InvalidArgument("this test backend runs no turns")


class AsyncRecordingBackend(_Recorder):
    """An asyncio ``AsyncBackend`` without an upstream."""

    async def create_thread(self, key: str, messages: Sequence[Mapping[str, str]] = ()) -> str:
        return self._create(messages)

    async def delete_thread(self, thread_id: str) -> bool:
        return self._delete(thread_id)

    async def settle_thread(self, key: str, thread_id: str, in_flight: str | None = None) -> bool:
        return self._settle(thread_id)

    async def run_turn(self, *args: Any, **kwargs: Any) -> Turn:
        raise InvalidArgument("this test backend runs no turns")


class Gate:
    """Holds a creation until the test opens it (a thread event: the sync tests' creations run
    in other threads)."""

    def __init__(self) -> None:
        self._open = threading.Event()

    def open(self) -> None:
        self._open.set()

    async def wait(self) -> None:
        await asyncio.to_thread(self._open.wait, 10)

    def wait_blocking(self) -> None:
        self._open.wait(10)


class AsyncGatedBackend(AsyncRecordingBackend):
    """An upstream whose creations wait for ``gate`` and then fail (an outage)."""

    def __init__(self, gate: Gate) -> None:
        super().__init__()
        self.gate = gate

    async def create_thread(self, key: str, messages: Sequence[Mapping[str, str]] = ()) -> str:
        await self.gate.wait()
        raise RuntimeError("upstream unavailable")


class GatedBackend(RecordingBackend):
    """The blocking twin of ``AsyncGatedBackend``."""

    def __init__(self, gate: Gate) -> None:
        super().__init__()
        self.gate = gate

    def create_thread(self, key: str, messages: Sequence[Mapping[str, str]] = ()) -> str:
        self.gate.wait_blocking()
        raise RuntimeError("upstream unavailable")
