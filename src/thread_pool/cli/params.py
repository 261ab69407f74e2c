"""The click types of every numeric option: one place that refuses ``nan``, ``inf`` and numbers
out of range, so no option can make a command wait forever or spin (``--timeout nan``)."""

from __future__ import annotations

import math
import re
from typing import Any

import click

from thread_pool._model.limits import MAX_LOG_AGE, MAX_SECONDS, MAX_SIZE, MIN_SECONDS


class FiniteFloat(click.FloatRange):
    """A ``FloatRange`` that refuses ``nan`` and infinities (click's range check lets ``nan``
    through: every comparison with it is false)."""

    name = "number"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


def seconds(least: float = 0.0, *, open_at_least: bool = False) -> FiniteFloat:
    """A duration option: finite, from ``least`` (excluded with ``open_at_least``) to a day."""
    return FiniteFloat(min=least, max=MAX_SECONDS, min_open=open_at_least)


def ttl() -> FiniteFloat:
    """A lease TTL option: finite, from 1 ms (Lua counts milliseconds) to a day."""
    return FiniteFloat(min=MIN_SECONDS, max=MAX_SECONDS)


def count(least: int = 0) -> click.IntRange:
    """A number of threads: an integer from ``least`` to the largest pool size."""
    return click.IntRange(min=least, max=MAX_SIZE)


def share() -> FiniteFloat:
    """A probability option: finite, from 0 to 1."""
    return FiniteFloat(min=0.0, max=1.0)


class Latency(click.ParamType[str]):
    """Seconds per run, fixed (``0.5``) or a range (``0.2-0.8``): finite, not negative, at most a
    day, the low bound first. Returned as typed, for the emulator to parse."""

    name = "latency"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        low, sep, high = str(value).partition("-")
        try:
            bounds = [float(low), float(high) if sep else float(low)]
        except ValueError:
            self.fail(f"{value!r} is not seconds (0.5) or a range (0.2-0.8)", param, ctx)
        if not all(math.isfinite(b) and 0 <= b <= MAX_SECONDS for b in bounds):
            self.fail(
                f"{value!r}: each bound must be a finite number of seconds, 0 to a day", param, ctx
            )
        if bounds[0] > bounds[1]:
            self.fail(f"{value!r}: the low bound comes first", param, ctx)
        return str(value)


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw]?)")


class Duration(click.ParamType[float]):
    """``90``, ``90s``, ``15m``, ``12h``, ``7d``, ``2w``: seconds, finite, positive, at most ten
    years (how long a pool may sit idle, or a log entry stay)."""

    name = "duration"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, int | float):
            return float(value)
        match = _DURATION.fullmatch(str(value).strip().lower())
        if match is None or float(match[1]) <= 0:
            self.fail(f"{value!r} is not a duration like 90s, 15m, 12h, 7d or 2w", param, ctx)
        seconds = float(match[1]) * _UNITS[match[2] or "s"]
        if seconds > MAX_LOG_AGE:
            self.fail(f"{value!r} is longer than ten years", param, ctx)
        return seconds


class IdleExpiry(Duration):
    """A ``Duration``, or ``none``: 0, which removes a pool's own idle expiry."""

    name = "duration|none"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, str) and value.strip().lower() == "none":
            return 0.0
        return super().convert(value, param, ctx)
