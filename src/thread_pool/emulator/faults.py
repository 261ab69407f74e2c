"""Latency and fault decisions, drawn from seeded generators so a run of tests can be replayed.

Each decision has its own sequence indexed by a counter (the n-th request, the n-th run, the
n-th streaming connection), and each draw uses a generator seeded from ``(seed, sequence, n)``.
So the faults depend only on the seed and the order of requests, not on what else happened in
between (a retrieve does not shift which run fails), and a reset replays the same sequence.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass

from thread_pool.emulator.config import HTTP_FAULTS, RUN_FAULTS, EmulatorConfig

#: How a run ends when nothing else (a tool call, a cancel) intervenes.
Outcome = str  # "completed" | "failed" | "expired" | "stuck"


@dataclass(frozen=True)
class RunPlan:
    """What the fault model decided for one run: how long it takes and how it ends."""

    queued_for: float
    working_for: float
    outcome: Outcome


def _pick(rng: random.Random, config: EmulatorConfig, names: tuple[str, ...]) -> str | None:
    """One uniform draw against the cumulative rates of ``names``."""
    draw = rng.random()
    edge = 0.0
    for name in names:
        edge += float(getattr(config, name))
        if draw < edge:
            return name
    return None


class Planner:
    """Hands out request faults and run plans in sequence; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def reset(self) -> None:
        """Start every sequence again from the first draw."""
        with self._lock:
            self._counts.clear()

    def _next(self, stream: str) -> int:
        with self._lock:
            self._counts[stream] = self._counts.get(stream, 0) + 1
            return self._counts[stream]

    def request_fault(self, config: EmulatorConfig) -> str | None:
        """``http_500``, ``http_503``, ``http_429`` or ``None`` for the next request."""
        n = self._next("request")
        if not any(getattr(config, name) for name in HTTP_FAULTS):
            return None
        return _pick(random.Random(f"{config.seed}:request:{n}"), config, HTTP_FAULTS)

    def run_plan(self, config: EmulatorConfig) -> RunPlan:
        """Latency and outcome of the next run (or response, or tool-output continuation)."""
        rng = random.Random(f"{config.seed}:run:{self._next('run')}")
        latency = rng.uniform(config.latency_min, config.latency_max)
        fault = _pick(rng, config, RUN_FAULTS)
        outcome = "completed" if fault is None else fault.removeprefix("run_")
        queued = latency * config.queued_fraction
        return RunPlan(queued_for=queued, working_for=latency - queued, outcome=outcome)

    def stream_cut(self, config: EmulatorConfig, count: int) -> int | None:
        """How many events the next streaming connection sends before it is cut (``None``:
        it is not), for a stream of ``count`` events as scheduled when it opens: cut with
        probability ``stream_drop`` (always when only ``stream_drop_after`` is set), after
        ``stream_drop_after`` events or else after a random number below ``count``."""
        rng = random.Random(f"{config.seed}:stream:{self._next('stream')}")
        chance = config.stream_drop
        if chance == 0 and config.stream_drop_after is not None:
            chance = 1.0
        if rng.random() >= chance:
            return None
        if config.stream_drop_after is not None:
            return config.stream_drop_after
        return rng.randrange(max(count, 1))
