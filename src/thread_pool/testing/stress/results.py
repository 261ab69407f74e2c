"""What a stress run measures: one sample per turn, one summary row per strategy. No I/O."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Sample:
    """One turn as its worker saw it."""

    ok: bool
    started: float  # time.time(): comparable across processes
    ended: float
    seconds: float
    lock_errors: int


@dataclass(frozen=True)
class StressResult:
    """One strategy's row; ``as_dict`` has exactly the keys of ``thread-pool stress --json``."""

    strategy: str
    requests: int
    succeeded: int
    failed: int
    lock_errors: int
    wall_s: float
    turns_per_s: float
    p50_s: float
    p95_s: float

    def as_dict(self) -> dict[str, object]:
        """The row as JSON-ready data."""
        return asdict(self)


def percentile(values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, round(share * len(ordered) + 0.5 - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


def summarise(strategy: str, samples: Sequence[Sample], extra_lock_errors: int = 0) -> StressResult:
    """The row of ``strategy``: wall time runs from the first turn's start to the last turn's
    end (worker start-up, which ``spawn`` makes slow, is not counted); latencies are those of the
    turns that succeeded."""
    succeeded = [s.seconds for s in samples if s.ok]
    wall = max((s.ended for s in samples), default=0.0) - min(
        (s.started for s in samples), default=0.0
    )
    return StressResult(
        strategy=strategy,
        requests=len(samples),
        succeeded=len(succeeded),
        failed=len(samples) - len(succeeded),
        lock_errors=sum(s.lock_errors for s in samples) + extra_lock_errors,
        wall_s=round(wall, 3),
        turns_per_s=round(len(succeeded) / wall, 3) if wall > 0 else 0.0,
        p50_s=round(statistics.median(succeeded), 3) if succeeded else 0.0,
        p95_s=round(percentile(succeeded, 0.95), 3),
    )
