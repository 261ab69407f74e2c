"""Shared machinery of the emulator's stores: the state lock, the clock, ids, config, stats."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable

from thread_pool.emulator.config import EmulatorConfig
from thread_pool.emulator.faults import Planner
from thread_pool.emulator.stats import Stats


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
