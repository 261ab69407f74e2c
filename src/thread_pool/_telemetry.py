"""OpenTelemetry metrics and spans of the library: the one module that speaks to OpenTelemetry.

Everything goes through the OpenTelemetry *API* (the optional extra ``otel``); the application
picks the SDK and exporters. Without the API installed nothing here imports it, the decorators
below hand back the function they were given (no wrapper on the lease path at all) and
``scope()`` returns ``OFF``, whose methods do nothing.

Call sites stay one line: a decorator on the operation (``thread_pool._traced``) or one call on
the ``telemetry`` attribute of the object that does the job (a ``Scope``: the pool key attribute
chosen by the ``otel_pool_key`` setting). What a turn's requests and a settling's cancel say
travels in a context variable (``note_*``), so the backends need no telemetry object.
"""

from __future__ import annotations

import contextvars
import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from thread_pool._model.redaction import key_digest

PoolKeyMode = Literal["key", "hash", "none"]

INSTALLED = importlib.util.find_spec("opentelemetry") is not None
"""Whether the OpenTelemetry API can be imported (found without importing it)."""

POOL = "thread_pool.pool"
"""The pool key attribute (as it is, hashed, or left out: the ``otel_pool_key`` setting)."""


@dataclass
class TurnNotes:
    """What a running turn or settling learns from code that has no telemetry object."""

    requests: int = 0
    merged: int = 0
    cancelled: bool = False


NOTES: contextvars.ContextVar[TurnNotes | None] = contextvars.ContextVar(
    "thread_pool_telemetry_notes", default=None
)


def note_request() -> None:
    """An upstream request of the running turn left the process (the send guard's hook)."""
    notes = NOTES.get()
    if notes is not None:
        notes.requests += 1


def note_merged(entries: int) -> None:
    """The running turn carried ``entries`` log entries its thread was missing."""
    notes = NOTES.get()
    if notes is not None:
        notes.merged = entries


def note_cancelled() -> None:
    """The running settling had to cancel a run (response) rather than wait for its end."""
    notes = NOTES.get()
    if notes is not None:
        notes.cancelled = True


# Bucket bounds of the histograms in seconds (the SDK's default bounds suit milliseconds): from
# a lease cycle (a fraction of a millisecond) to a long turn.
_SECONDS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    120,
)


class Instruments:
    """The instruments and the tracer, made once per pair of providers."""

    def __init__(self, meter_provider: Any, tracer_provider: Any) -> None:
        from opentelemetry import context, metrics, trace

        from thread_pool import __version__

        meter = metrics.get_meter("thread_pool", __version__, meter_provider)
        self.tracer = trace.get_tracer("thread_pool", __version__, tracer_provider)
        self.status_error = trace.StatusCode.ERROR
        self.current_span = trace.get_current_span
        self.in_context = trace.set_span_in_context
        self.attach = context.attach
        self.detach = context.detach
        self.no_span = trace.INVALID_SPAN
        self.wait_time = meter.create_histogram(
            "thread_pool.lease.wait_time",
            "s",
            "Time callers waited for a lease",
            explicit_bucket_boundaries_advisory=_SECONDS,
        )
        self.use_time = meter.create_histogram(
            "thread_pool.lease.use_time",
            "s",
            "Time from a lease's grant to its release",
            explicit_bucket_boundaries_advisory=_SECONDS,
        )
        self.timeouts = meter.create_counter(
            "thread_pool.lease.timeouts", "{acquire}", "Acquires that timed out"
        )
        self.lost = meter.create_counter(
            "thread_pool.lease.lost", "{lease}", "Leases found lost by their holder"
        )
        self.create_time = meter.create_histogram(
            "thread_pool.thread.create_time",
            "s",
            "Time to create and register a thread",
            explicit_bucket_boundaries_advisory=_SECONDS,
        )
        self.turn_duration = meter.create_histogram(
            "thread_pool.turn.duration",
            "s",
            "Duration of a turn",
            explicit_bucket_boundaries_advisory=_SECONDS,
        )
        self.turn_requests = meter.create_histogram(
            "thread_pool.turn.requests", "{request}", "Upstream requests sent by one turn"
        )
        self.lock_errors = meter.create_counter(
            "thread_pool.upstream.lock_errors", "{error}", "Thread busy errors met by turns"
        )
        self.settle_count = meter.create_counter(
            "thread_pool.settle.count", "{thread}", "Threads settled after an expired lease"
        )
        self.entries_merged = meter.create_histogram(
            "thread_pool.context.entries_merged", "{entry}", "Log entries a turn carried"
        )
        self.token_usage = meter.create_histogram(
            "gen_ai.client.token.usage", "{token}", "Tokens used by a turn"
        )


_instruments: Instruments | None = None
# Instruments made for each pair of providers used so far: going back to a pair reuses its
# instruments (an SDK warns about an instrument created twice).
_made: dict[tuple[int, int], tuple[Any, Any, Instruments]] = {}


def instruments() -> Instruments:
    if _instruments is None:
        use_providers()
    assert _instruments is not None
    return _instruments


def use_providers(meter_provider: Any = None, tracer_provider: Any = None) -> None:
    """Send the library's metrics and spans to these providers (None: OpenTelemetry's global
    ones, the default). For applications that keep providers of their own, and for tests."""
    global _instruments
    pair = (id(meter_provider), id(tracer_provider))
    made = _made.get(pair)
    if made is None or made[0] is not meter_provider or made[1] is not tracer_provider:
        made = _made[pair] = (
            meter_provider,
            tracer_provider,
            Instruments(meter_provider, tracer_provider),
        )
    _instruments = made[2]


class Scope:
    """The telemetry of the objects of one pool (its ``otel_pool_key`` setting)."""

    def __init__(self, mode: PoolKeyMode) -> None:
        self._mode = mode
        self._attrs: dict[tuple[str, ...], Mapping[str, str]] = {}

    def pool(self, key: str, **more: str) -> Mapping[str, str]:
        """The attributes naming pool ``key`` (per the mode), plus ``more``; kept for the next
        time (not to be changed: the metrics' hot path records them as they are)."""
        cached = (key, *more.values())
        found = self._attrs.get(cached)
        if found is None:
            found = {**({} if self._mode == "none" else {POOL: self._value(key)}), **more}
            if len(self._attrs) < 10_000:  # one pool per document: do not keep them all
                self._attrs[cached] = found
        return found

    def _value(self, key: str) -> str:
        return key if self._mode == "key" else key_digest(key)

    def released(self, key: str, held_for: float) -> None:
        """A lease was given back after ``held_for`` seconds."""
        instruments().use_time.record(held_for, self.pool(key))

    def lost(self, key: str) -> None:
        """A holder found its lease lost."""
        instruments().lost.add(1, self.pool(key))

    def lock_error(self, key: str) -> None:
        """Upstream said a thread the pool holds is busy."""
        instruments().lock_errors.add(1, self.pool(key))


class _Off(Scope):
    """No telemetry: the API is not installed."""

    def released(self, key: str, held_for: float) -> None:
        pass

    def lost(self, key: str) -> None:
        pass

    def lock_error(self, key: str) -> None:
        pass


OFF: Scope = _Off("none")

_scopes: dict[str, Scope] = {}


def scope(mode: PoolKeyMode) -> Scope:
    """The ``Scope`` for pools whose ``otel_pool_key`` is ``mode`` (``OFF`` without the API)."""
    if not INSTALLED:
        return OFF
    found = _scopes.get(mode)
    if found is None:
        found = _scopes[mode] = Scope(mode)
    return found
