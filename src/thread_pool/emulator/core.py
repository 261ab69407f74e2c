"""Shared machinery of the emulator's stores: the state lock, the clock, ids, config, stats."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from thread_pool.emulator import errors
from thread_pool.emulator.config import EmulatorConfig
from thread_pool.emulator.faults import Planner
from thread_pool.emulator.stats import Stats

T = TypeVar("T")


def new_id(prefix: str) -> str:
    """An upstream-looking id: ``thread_`` + 24 hex digits."""
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


class Core:
    """What every store shares. All state changes happen under :attr:`lock`, which is only
    held for in-memory work (never across an ``await``), so it is safe from any thread."""

    def __init__(self, config: EmulatorConfig, clock: Callable[[], float] = time.time) -> None:
        self.lock = threading.RLock()
        self.clock = clock
        self.config = config
        self.planner = Planner()
        self.stats = Stats()

    def reset(self) -> None:
        """Fresh counters and fault sequences (stores clear their own data)."""
        self.planner.reset()
        self.stats = Stats()


def paginate(
    items: Sequence[T],
    ident: Callable[[T], str],
    render: Callable[[T], dict[str, Any]],
    query: dict[str, str],
    *,
    limit: int,
    order: str,
) -> dict[str, Any]:
    """A cursor page (``after``/``before`` ids) over ``items`` (given oldest first)."""
    ordered = list(items) if order == "asc" else list(reversed(items))
    ids = [ident(item) for item in ordered]
    start, stop = 0, len(ordered)
    after, before = query.get("after"), query.get("before")
    if after is not None:
        if after not in ids:
            raise errors.ApiError(
                400, f"Invalid 'after': no object found with id '{after}'.", param="after"
            )
        start = ids.index(after) + 1
    if before is not None:
        if before not in ids:
            raise errors.ApiError(
                400, f"Invalid 'before': no object found with id '{before}'.", param="before"
            )
        stop = ids.index(before)
        start = max(start, stop - limit) if after is None else start
    page = ordered[start:stop][:limit]
    data = [render(item) for item in page]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": start + len(page) < stop,
    }
