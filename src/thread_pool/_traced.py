"""The library's operations in OpenTelemetry spans and metrics: one decorator per operation
(``@traced_acquire`` on leasing's acquire, ``@traced_turn`` on the turn runner's ``run``,
``@traced_settle``, ``@traced_growth``), so that the operation's own code is not re-indented
under a ``with``. Without the OpenTelemetry API installed each decorator returns the function it
was given. What is recorded and where: ``thread_pool._telemetry``.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

from thread_pool._telemetry import (
    INSTALLED,
    NOTES,
    OFF,
    POOL,
    Scope,
    TurnNotes,
    instruments,
)
from thread_pool.errors import LeaseLost, PoolTimeout, TooManyWaiters, TurnFailed

F = TypeVar("F", bound=Callable[..., Any])

# Token counts of a turn as upstream names them (Responses, Assistants) -> gen_ai.token.type.
_TOKEN_TYPES = {
    "input_tokens": "input",
    "prompt_tokens": "input",
    "output_tokens": "output",
    "completion_tokens": "output",
}


# -- the operations' decorators -------------------------------------------------------------
#
# Each wraps a method whose object has a ``telemetry`` attribute (a ``Scope``) and whose first
# argument after ``self`` names the pool (a key, or a lease). A decorator is the call site: the
# operation's own code is not re-indented under a ``with``.


def _wrap(
    fn: F,
    name: str,
    start: Callable[[Any, Scope, tuple[Any, ...], dict[str, Any]], Mapping[str, Any]],
    end: Callable[[Any, Scope, Any, Mapping[str, Any], tuple[Any, ...], TurnNotes, float], None],
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
        i = instruments()
        if not (root or i.current_span().is_recording()):
            return tel, attrs, args, i.no_span, None, NOTES.set(TurnNotes()), time.monotonic()
        span_name = str(attrs.get("span.name", name))
        span = i.tracer.start_span(
            span_name, attributes={k: v for k, v in attrs.items() if k != "span.name"}
        )
        attached = i.attach(i.in_context(span))
        return tel, attrs, args, span, attached, NOTES.set(TurnNotes()), time.monotonic()

    def finish(state: Any, result: Any) -> None:
        tel, attrs, args, span, attached, notes_set, started = state
        took = time.monotonic() - started
        notes = NOTES.get() or TurnNotes()
        NOTES.reset(notes_set)
        i = instruments()
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
    i = instruments()
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
    i = instruments()
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
    instruments().settle_count.add(1, {**_pool_of(attrs), "how": how})
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
    instruments().create_time.record(took, {**attrs, "outcome": outcome})
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
