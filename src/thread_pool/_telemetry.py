"""OpenTelemetry metrics and spans of the library: the one module that speaks to OpenTelemetry.

Everything goes through the OpenTelemetry *API* (the optional extra ``otel``); the application
picks the SDK and exporters. Without the API installed nothing here imports it, the decorators
below hand back the function they were given (no wrapper on the lease path at all) and
``scope()`` returns ``OFF``, whose methods do nothing.

Call sites stay one line: a decorator on the operation (``@traced_acquire`` on leasing's acquire,
``@traced_turn`` on the turn runner's ``run``, ``@traced_settle``, ``@traced_growth``) or one
call on the ``telemetry`` attribute of the object that does the job (a ``Scope``: the pool key
attribute chosen by the ``otel_pool_key`` setting). What a turn's requests and a settling's
cancel say travels in a context variable, so the backends need no telemetry object.
"""

from __future__ import annotations

import contextvars
import functools
import importlib.util
import inspect
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, cast

from thread_pool._model.redaction import key_digest
from thread_pool.errors import LeaseLost, PoolTimeout, TooManyWaiters, TurnFailed

PoolKeyMode = Literal["key", "hash", "none"]

F = TypeVar("F", bound=Callable[..., Any])

INSTALLED = importlib.util.find_spec("opentelemetry") is not None
"""Whether the OpenTelemetry API can be imported (found without importing it)."""

POOL = "thread_pool.pool"
"""The pool key attribute (as it is, hashed, or left out: the ``otel_pool_key`` setting)."""

# Token counts of a turn as upstream names them (Responses, Assistants) -> gen_ai.token.type.
_TOKEN_TYPES = {
    "input_tokens": "input",
    "prompt_tokens": "input",
    "output_tokens": "output",
    "completion_tokens": "output",
}


@dataclass
class _TurnNotes:
    """What a running turn or settling learns from code that has no telemetry object."""

    requests: int = 0
    merged: int = 0
    cancelled: bool = False


_NOTES: contextvars.ContextVar[_TurnNotes | None] = contextvars.ContextVar(
    "thread_pool_telemetry_notes", default=None
)


def request_sent() -> None:
    """An upstream request of the running turn left the process (the send guard's hook)."""
    notes = _NOTES.get()
    if notes is not None:
        notes.requests += 1


def merged(entries: int) -> None:
    """The running turn carried ``entries`` log entries its thread was missing."""
    notes = _NOTES.get()
    if notes is not None:
        notes.merged = entries


def cancelled() -> None:
    """The running settling had to cancel a run (response) rather than wait for its end."""
    notes = _NOTES.get()
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


class _Instruments:
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


_instruments: _Instruments | None = None
# Instruments made for each pair of providers used so far: going back to a pair reuses its
# instruments (an SDK warns about an instrument created twice).
_made: dict[tuple[int, int], tuple[Any, Any, _Instruments]] = {}


def _get() -> _Instruments:
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
            _Instruments(meter_provider, tracer_provider),
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
        _get().use_time.record(held_for, self.pool(key))

    def lost(self, key: str) -> None:
        """A holder found its lease lost."""
        _get().lost.add(1, self.pool(key))

    def lock_error(self, key: str) -> None:
        """Upstream said a thread the pool holds is busy."""
        _get().lock_errors.add(1, self.pool(key))


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


# -- the operations' decorators -------------------------------------------------------------
#
# Each wraps a method whose object has a ``telemetry`` attribute (a ``Scope``) and whose first
# argument after ``self`` names the pool (a key, or a lease). A decorator is the call site: the
# operation's own code is not re-indented under a ``with``.


def _wrap(
    fn: F,
    name: str,
    start: Callable[[Any, Scope, tuple[Any, ...], dict[str, Any]], Mapping[str, Any]],
    end: Callable[[Any, Scope, Any, Mapping[str, Any], tuple[Any, ...], _TurnNotes, float], None],
    *,
    root: bool = True,
) -> F:
    """``fn`` in a span named ``name``: ``start`` gives the span's first attributes, ``end``
    records the metrics and the last attributes from the result or the exception. ``root``
    False: a span only within a trace the application records (a span is current), the
    metrics always."""
    if not INSTALLED:
        return fn

    def begin(obj: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        tel: Scope = obj.telemetry
        attrs = start(obj, tel, args, kwargs)
        i = _get()
        if not (root or i.current_span().is_recording()):
            return tel, attrs, args, i.no_span, None, _NOTES.set(_TurnNotes()), time.monotonic()
        span_name = str(attrs.get("span.name", name))
        span = i.tracer.start_span(
            span_name, attributes={k: v for k, v in attrs.items() if k != "span.name"}
        )
        attached = i.attach(i.in_context(span))
        return tel, attrs, args, span, attached, _NOTES.set(_TurnNotes()), time.monotonic()

    def finish(state: Any, result: Any) -> None:
        tel, attrs, args, span, attached, notes_set, started = state
        took = time.monotonic() - started
        notes = _NOTES.get() or _TurnNotes()
        _NOTES.reset(notes_set)
        i = _get()
        if attached is not None:
            i.detach(attached)
        try:
            end(span, tel, result, attrs, args, notes, took)
            if isinstance(result, BaseException):
                span.record_exception(result)
                span.set_status(i.status_error, type(result).__name__)
        finally:
            span.end()

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def awrapper(obj: Any, *args: Any, **kwargs: Any) -> Any:
            if obj.telemetry is OFF:
                return await fn(obj, *args, **kwargs)
            state = begin(obj, args, kwargs)
            try:
                result = await fn(obj, *args, **kwargs)
            except BaseException as exc:
                finish(state, exc)
                raise
            finish(state, result)
            return result

        return cast(F, awrapper)

    @functools.wraps(fn)
    def wrapper(obj: Any, *args: Any, **kwargs: Any) -> Any:
        if obj.telemetry is OFF:
            return fn(obj, *args, **kwargs)
        state = begin(obj, args, kwargs)
        try:
            result = fn(obj, *args, **kwargs)
        except BaseException as exc:
            finish(state, exc)
            raise
        finish(state, result)
        return result

    return cast(F, wrapper)


def _acquire_start(obj: Any, tel: Scope, args: tuple[Any, ...], kw: dict[str, Any]) -> Any:
    return tel.pool(args[0])


def _acquire_end(
    span: Any, tel: Scope, result: Any, attrs: Mapping[str, Any], args: Any, n: Any, took: float
) -> None:
    i = _get()
    if isinstance(result, PoolTimeout):
        outcome = "timeout"
        i.timeouts.add(1, tel.pool(args[0]))
    elif isinstance(result, TooManyWaiters):
        outcome = "too_many_waiters"
    elif isinstance(result, BaseException):
        span.set_attribute("thread_pool.outcome", "error")
        return  # cancelled, refused: not a wait for a thread
    else:
        outcome = "granted"
        _token, grant, _asked = result
        span.set_attributes(
            {"thread_pool.thread.id": grant.thread_id, "thread_pool.fence": grant.fence}
        )
    i.wait_time.record(took, tel.pool(args[0], outcome=outcome))
    span.set_attributes({"thread_pool.outcome": outcome, "thread_pool.wait_time": took})


def _turn_start(obj: Any, tel: Scope, args: tuple[Any, ...], kw: dict[str, Any]) -> Any:
    lease = args[0]
    model = kw.get("params", {}).get("model")
    backend = type(obj.backend).__name__.removeprefix("Async").removesuffix("Backend").lower()
    attrs: dict[str, Any] = {
        **tel.pool(lease.key),
        "span.name": f"chat {model}" if isinstance(model, str) else "chat",
        "gen_ai.operation.name": "chat",
        "gen_ai.system": "openai",
        "gen_ai.conversation.id": lease.thread_id,
        "thread_pool.thread.id": lease.thread_id,
        "thread_pool.fence": lease.fence,
        "thread_pool.backend": backend,
    }
    if isinstance(model, str):
        attrs["gen_ai.request.model"] = model
    return attrs


def _turn_end(
    span: Any, tel: Scope, result: Any, attrs: Mapping[str, Any], args: Any, n: Any, took: float
) -> None:
    i = _get()
    pool = _pool_of(attrs)
    if isinstance(result, TurnFailed):
        status = result.status or "failed"
    elif isinstance(result, LeaseLost):
        status = "lease_lost"
    elif isinstance(result, BaseException):
        status = "error"
    else:
        status = result.status
        span.set_attribute("gen_ai.response.id", result.run_id)
        model = {k: v for k, v in attrs.items() if k == "gen_ai.request.model"}
        for name, count in result.usage.items():
            kind = _TOKEN_TYPES.get(name)
            if kind is not None:
                span.set_attribute(f"gen_ai.usage.{kind}_tokens", count)
                i.token_usage.record(
                    count,
                    {
                        **pool,
                        **model,
                        "gen_ai.operation.name": "chat",
                        "gen_ai.system": "openai",
                        "gen_ai.token.type": kind,
                    },
                )
        i.entries_merged.record(n.merged, pool)
    backend = attrs["thread_pool.backend"]
    i.turn_duration.record(took, {**pool, "backend": backend, "status": status})
    i.turn_requests.record(n.requests, {**pool, "backend": backend})
    span.set_attributes({"thread_pool.status": status, "thread_pool.requests": n.requests})


def _settle_start(obj: Any, tel: Scope, args: tuple[Any, ...], kw: dict[str, Any]) -> Any:
    return {**tel.pool(args[0]), "thread_pool.thread.id": args[1]}


def _settle_end(
    span: Any, tel: Scope, result: Any, attrs: Mapping[str, Any], args: Any, n: Any, took: float
) -> None:
    if isinstance(result, BaseException):
        how = "failed"
    elif result is False:
        how = "dropped"
    else:
        how = "cancelled" if n.cancelled else "waited"
    _get().settle_count.add(1, {**_pool_of(attrs), "how": how})
    span.set_attribute("thread_pool.settle.how", how)


def _growth_start(obj: Any, tel: Scope, args: tuple[Any, ...], kw: dict[str, Any]) -> Any:
    return tel.pool(args[1])


def _growth_end(
    span: Any, tel: Scope, result: Any, attrs: Mapping[str, Any], args: Any, n: Any, took: float
) -> None:
    if isinstance(result, BaseException):
        return
    word, _rest = result
    outcome = str(getattr(word, "name", word)).lower()
    _get().create_time.record(took, {**attrs, "outcome": outcome})
    span.set_attribute("thread_pool.outcome", outcome)


def _pool_of(attrs: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in attrs.items() if k == POOL}


def traced_acquire(fn: F) -> F:
    """Span ``thread_pool.acquire`` (its wait included) within a recorded trace (a lease cycle
    is a few hundred microseconds: a span of its own for every one would add a tenth);
    ``lease.wait_time`` by outcome and ``lease.timeouts``. Wraps ``acquire(self, key, wait_s)
    -> (token, grant, asked_at)``."""
    return _wrap(fn, "thread_pool.acquire", _acquire_start, _acquire_end, root=False)


def traced_turn(fn: F) -> F:
    """Span ``chat {model}`` with ``gen_ai`` attributes; ``turn.duration``, ``turn.requests``,
    ``context.entries_merged`` and ``gen_ai.client.token.usage``. Wraps ``run(self, lease, ...)``
    of an object with a ``backend``."""
    return _wrap(fn, "chat", _turn_start, _turn_end)


def traced_settle(fn: F) -> F:
    """Span ``thread_pool.settle``; ``settle.count`` by how. Wraps ``settle_one(self, key,
    thread_id) -> bool`` (False: the thread is gone upstream)."""
    return _wrap(fn, "thread_pool.settle", _settle_start, _settle_end)


def traced_growth(fn: F) -> F:
    """Span ``thread_pool.grow``; ``thread.create_time``. Wraps ``_fill(self, backend, key,
    ...) -> (outcome, rest)``."""
    return _wrap(fn, "thread_pool.grow", _growth_start, _growth_end)
