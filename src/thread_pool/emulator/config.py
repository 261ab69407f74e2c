"""The emulator's tunable behaviour: latency, fault rates, limits, credentials.

One frozen value object, so a reconfiguration at runtime swaps the whole thing atomically and a
run keeps the plan it was given when it was created.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

#: Faults that answer an HTTP request before it touches any state.
HTTP_FAULTS = ("http_500", "http_503", "http_429")
#: Faults that decide how a run (or a background response) ends.
RUN_FAULTS = ("run_failed", "run_expired", "run_stuck")


@dataclass(frozen=True)
class EmulatorConfig:
    """How the emulator behaves; every field can be changed at runtime through introspection.

    Latency is drawn uniformly from ``[latency_min, latency_max]`` seconds per run (fixed when
    both are equal); the first ``queued_fraction`` of it is spent ``queued``, the rest
    ``in_progress``. Fault rates are probabilities in ``[0, 1]`` drawn from a generator seeded
    with ``seed``, per request (HTTP faults) and per run (run faults), so a given seed and request
    sequence always yields the same faults.
    """

    latency_min: float = 0.5
    latency_max: float = 0.5
    queued_fraction: float = 0.2
    seed: int = 0
    http_500: float = 0.0
    http_503: float = 0.0
    http_429: float = 0.0
    run_failed: float = 0.0
    run_expired: float = 0.0
    run_stuck: float = 0.0
    retry_after: float = 1.0
    run_ttl: float = 600.0
    cancel_delay: float = 0.05
    poll_after_ms: int | None = None
    api_key: str | None = None

    def __post_init__(self) -> None:
        if self.latency_min < 0 or self.latency_max < self.latency_min:
            raise ValueError(f"bad latency range {self.latency_min}..{self.latency_max}")
        if not 0.0 <= self.queued_fraction <= 1.0:
            raise ValueError(f"queued_fraction must be in [0, 1], got {self.queued_fraction}")
        for name in (*HTTP_FAULTS, *RUN_FAULTS):
            rate = getattr(self, name)
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {rate}")
        if sum(getattr(self, name) for name in HTTP_FAULTS) > 1.0:
            raise ValueError("the HTTP fault rates add up to more than 1")
        if sum(getattr(self, name) for name in RUN_FAULTS) > 1.0:
            raise ValueError("the run fault rates add up to more than 1")
        if self.run_ttl <= 0 or self.cancel_delay < 0 or self.retry_after < 0:
            raise ValueError("run_ttl must be > 0; cancel_delay and retry_after >= 0")

    @property
    def effective_poll_after_ms(self) -> int:
        """The ``openai-poll-after-ms`` hint: a quarter of the mean latency, 5..1000 ms."""
        if self.poll_after_ms is not None:
            return self.poll_after_ms
        mean = (self.latency_min + self.latency_max) / 2
        return max(5, min(1000, round(mean * 250)))

    def replace(self, **changes: Any) -> EmulatorConfig:
        """A copy with ``changes`` applied (validated); unknown names raise ``TypeError``."""
        if "latency" in changes:
            changes.update(
                zip(
                    ("latency_min", "latency_max"),
                    parse_latency(changes.pop("latency")),
                    strict=True,
                )
            )
        if "fault_rate" in changes:
            changes = {**spread_fault_rate(float(changes.pop("fault_rate"))), **changes}
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The configuration as JSON-ready data (the API key masked)."""
        data = dataclasses.asdict(self)
        data["api_key"] = None if self.api_key is None else "***"
        data["poll_after_ms"] = self.effective_poll_after_ms
        return data


def parse_latency(value: object) -> tuple[float, float]:
    """``0.5`` → fixed; ``"0.2-0.8"`` or ``[0.2, 0.8]`` → uniform range."""
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return float(value[0]), float(value[1])
    if isinstance(value, (int, float)):
        return float(value), float(value)
    if isinstance(value, str):
        low, sep, high = value.partition("-")
        return (float(low), float(high)) if sep else (float(low), float(low))
    raise ValueError(f"bad latency {value!r}: use 0.5, '0.2-0.8' or [0.2, 0.8]")


def spread_fault_rate(rate: float) -> dict[str, float]:
    """``--fault-rate R``: a request faults with probability R (500/503/429 alike) and a run
    ends badly with probability R (failed/expired/stuck alike)."""
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"fault_rate must be in [0, 1], got {rate}")
    share = rate / 3
    return dict.fromkeys((*HTTP_FAULTS, *RUN_FAULTS), share)
