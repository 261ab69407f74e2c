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
#: How runs answer ``stream=true``: they stream; they refuse it (400, ``param: "stream"``); or
#: they ignore it and answer with the run object, as servers that never stream do.
RUN_STREAMING = ("on", "refused", "ignored")
#: The longest duration a field may hold, in seconds (about 30 years): values derived from it
#: (``Retry-After`` in milliseconds, the poll hint) stay finite.
MAX_SECONDS = 1e9
#: The deviations of llama-stack 0.7.3's Conversations API that matter to a pool (UPSTREAM.md),
#: as configuration fields: ``EmulatorConfig(**LLAMA_STACK)``, ``--like-llama-stack``.
LLAMA_STACK: dict[str, object] = {
    "require_input": True,
    "max_response_items": 20,
    "cancel_conflict": True,
    "conversation_lock": False,
    "first_response_reads": 20,
}


class ConfigError(ValueError):
    """A configuration value the emulator refuses; :attr:`field` names the field at fault."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field} {problem}")
        self.field = field


def _number(field: str, value: object, *, high: float = MAX_SECONDS) -> float:
    """``value`` if it is a real number in ``[0, high]`` (so not NaN, not infinite, not a bool
    or a string), else a :class:`ConfigError` naming ``field``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(field, f"must be a number, got {value!r}")
    if not 0.0 <= value <= high:  # also refuses NaN, which compares false with everything
        raise ConfigError(field, f"must be in [0, {high:g}], got {value!r}")
    return value


def _whole_number(field: str, value: object, *, low: int | None = None) -> int:
    """``value`` if it is an integer (not a bool) and at least ``low``, else a
    :class:`ConfigError` naming ``field``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(field, f"must be a whole number, got {value!r}")
    if low is not None and value < low:
        raise ConfigError(field, f"must be >= {low}, got {value!r}")
    return value


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
    api_key: str | None = dataclasses.field(default=None, repr=False)  # never shown
    ignore_run_id: bool = False
    """``messages.list`` ignores its ``run_id`` filter, as some Assistants-compatible servers do
    (each message still carries its own ``run_id``)."""
    require_input: bool = False
    """``responses.create`` refuses a request without ``input`` (400), as llama-stack does."""
    max_response_items: int | None = None
    """A response whose input plus output exceeds this many items cannot be saved, as on
    llama-stack (20): synchronous → 400 ``{"detail": ...}``; background → it reads
    ``completed``, then turns ``failed``, and nothing joins the conversation. None: no cap."""
    cancel_conflict: bool = False
    """Cancelling a background response that is in progress or has ended is answered 409 (an
    in-progress one runs on to its end), as llama-stack does."""
    conversation_lock: bool = True
    """False: no ``conversation_locked`` rule; concurrent responses on one conversation all
    run (llama-stack). With ``first_response_reads`` set, the one that ends last overwrites the
    model's context of the conversation."""
    first_response_reads: int | None = None
    """A conversation's first response reads only its oldest N items, and later responses read
    the context the last completed one left (items added in between never reach the model), as
    llama-stack does (20). None: every response reads all the conversation's items."""
    run_streaming: str = "on"
    """How ``runs.create`` and ``submit_tool_outputs`` answer ``stream=true``: ``on`` (events),
    ``refused`` (a 400 naming ``stream``) or ``ignored`` (the run object, as if not asked)."""
    stream_drop: float = 0.0
    """Probability that a streaming connection is cut mid-stream (drawn per stream)."""
    stream_drop_after: int | None = None
    """Where a cut stream is cut: after this many events (``None``: at a random event). Set
    alone (``stream_drop`` 0), every stream is cut there."""

    def __post_init__(self) -> None:
        # The one validation of a configuration: the command line, start_emulator() and the
        # /_emulator routes all build one through here, so none can set what another refuses.
        for name in ("latency_min", "latency_max", "retry_after", "run_ttl", "cancel_delay"):
            _number(name, getattr(self, name))
        for name in ("queued_fraction", "stream_drop", *HTTP_FAULTS, *RUN_FAULTS):
            _number(name, getattr(self, name), high=1.0)
        if self.latency_max < self.latency_min:
            raise ConfigError(
                "latency_max",
                f"must be >= latency_min ({self.latency_min}), got {self.latency_max}",
            )
        for group in (HTTP_FAULTS, RUN_FAULTS):
            if sum(getattr(self, name) for name in group) > 1.0:
                raise ConfigError("+".join(group), "add up to more than 1")
        if self.run_ttl == 0:
            raise ConfigError("run_ttl", "must be > 0")
        _whole_number("seed", self.seed)
        if self.poll_after_ms is not None:
            _whole_number("poll_after_ms", self.poll_after_ms, low=0)
        if self.stream_drop_after is not None:
            _whole_number("stream_drop_after", self.stream_drop_after, low=0)
        if self.run_streaming not in RUN_STREAMING:
            raise ConfigError(
                "run_streaming",
                f"must be one of {', '.join(RUN_STREAMING)}, got {self.run_streaming!r}",
            )
        for name in ("max_response_items", "first_response_reads"):
            if getattr(self, name) is not None:
                _whole_number(name, getattr(self, name), low=1)
        for name in ("ignore_run_id", "require_input", "cancel_conflict", "conversation_lock"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(name, f"must be true or false, got {getattr(self, name)!r}")
        if self.api_key is not None and (not isinstance(self.api_key, str) or not self.api_key):
            raise ConfigError("api_key", "must be a non-empty string or null")

    @property
    def effective_poll_after_ms(self) -> int:
        """The ``openai-poll-after-ms`` hint: a quarter of the mean latency, 5..1000 ms."""
        if self.poll_after_ms is not None:
            return self.poll_after_ms
        mean = (self.latency_min + self.latency_max) / 2
        return max(5, min(1000, round(mean * 250)))

    def replace(self, **changes: Any) -> EmulatorConfig:
        """A copy with ``changes`` applied (validated: a :class:`ConfigError` names a refused
        field); unknown names raise ``TypeError``."""
        if "latency" in changes:
            changes.update(
                zip(
                    ("latency_min", "latency_max"),
                    parse_latency(changes.pop("latency")),
                    strict=True,
                )
            )
        if "fault_rate" in changes:
            changes = {**spread_fault_rate(changes.pop("fault_rate")), **changes}
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The configuration as JSON-ready data (the API key masked)."""
        data = dataclasses.asdict(self)
        data["api_key"] = None if self.api_key is None else "***"
        data["poll_after_ms"] = self.effective_poll_after_ms
        return data


def parse_latency(value: object) -> tuple[float, float]:
    """``0.5`` → fixed; ``"0.2-0.8"`` or ``[0.2, 0.8]`` → uniform range (each bound checked
    like any duration, as ``latency``)."""
    bounds: tuple[object, object] = (value, value)
    if isinstance(value, (list, tuple)) and len(value) == 2:
        bounds = (value[0], value[1])
    elif isinstance(value, str):
        low, sep, high = value.partition("-")
        try:
            bounds = (float(low), float(high) if sep else float(low))
        except ValueError:
            problem = f"must be 0.5, '0.2-0.8' or [0.2, 0.8], got {value!r}"
            raise ConfigError("latency", problem) from None
    return float(_number("latency", bounds[0])), float(_number("latency", bounds[1]))


def spread_fault_rate(rate: object) -> dict[str, float]:
    """``--fault-rate R``: a request faults with probability R (500/503/429 alike) and a run
    ends badly with probability R (failed/expired/stuck alike)."""
    share = _number("fault_rate", rate, high=1.0) / 3
    return dict.fromkeys((*HTTP_FAULTS, *RUN_FAULTS), share)
