"""OpenTelemetry metrics and spans, read back with the SDK's in-memory reader and exporter: the
numbers match what the run did (grants, timeouts, turns by status, token sums)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.support.aio_helpers import eventually, pause
from tests.support.pools import AsyncMakePool
from thread_pool import (
    AsyncThreadPool,
    LeaseLost,
    PoolTimeout,
    ThreadPool,
    TooManyWaiters,
    TurnFailed,
    use_telemetry_providers,
)
from thread_pool._model.redaction import key_digest
from thread_pool.emulator import EmulatorServer

pytestmark = pytest.mark.filterwarnings(
    r"ignore:(The Assistants API is deprecated|deprecated$):DeprecationWarning"
)


class Recorded:
    """What the library sent to OpenTelemetry during one test."""

    def __init__(self) -> None:
        self.reader = InMemoryMetricReader()
        self.exporter = InMemorySpanExporter()
        self.meters = MeterProvider(metric_readers=[self.reader])
        self.tracers = TracerProvider()
        self.tracers.add_span_processor(SimpleSpanProcessor(self.exporter))

    def points(self, name: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        found: list[Any] = []
        for rm in data.resource_metrics if data is not None else []:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    if metric.name == name:
                        found.extend(metric.data.data_points)
        return found

    def count(self, name: str, **attrs: Any) -> int:
        """Histogram: recordings; counter: its value; over the points with ``attrs``."""
        total = 0
        for p in self.points(name):
            if all(p.attributes.get(k) == v for k, v in attrs.items()):
                total += p.count if hasattr(p, "count") else p.value
        return total

    def sum(self, name: str, **attrs: Any) -> float:
        return sum(  # type: ignore[no-any-return]
            p.sum
            for p in self.points(name)
            if all(p.attributes.get(k) == v for k, v in attrs.items())
        )

    def request(self) -> Any:
        """A span of the application's around what the test does (acquire spans are made
        only within a recorded trace)."""
        return self.tracers.get_tracer("app").start_as_current_span("request")

    def spans(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.exporter.get_finished_spans() if s.name.startswith(name)]


def attr(span: ReadableSpan, name: str) -> Any:
    """A span's attribute (KeyError if it has none of that name)."""
    return (span.attributes or {})[name]


@pytest.fixture
def otel() -> Iterator[Recorded]:
    recorded = Recorded()
    use_telemetry_providers(recorded.meters, recorded.tracers)
    yield recorded
    use_telemetry_providers()


async def _waiting(pool: AsyncThreadPool, n: int) -> bool:
    return (await pool.stats("doc")).waiting >= n


async def test_grants_timeouts_and_refusals_are_counted_as_they_happened(
    otel: Recorded, make_async_pool: AsyncMakePool
) -> None:
    pool = make_async_pool(None, max_waiters=1)
    await pool.add_threads("doc", ["thread-a"])
    grants = 5
    timeouts = 3
    with otel.request():
        for _ in range(grants):
            await pool.release(await pool.acquire("doc"))
        held = await pool.acquire("doc")
        for _ in range(timeouts):
            with pytest.raises(PoolTimeout):
                await pool.acquire("doc", timeout=0.05)
        # One caller waits; the next is refused at once (max_waiters=1).
        waiter = asyncio.create_task(pool.acquire("doc", timeout=30))
        await eventually(lambda: _waiting(pool, 1), timeout=30)
        with pytest.raises(TooManyWaiters):
            await pool.acquire("doc", timeout=30)
        await pool.release(held)
        await pool.release(await waiter)

    pool_attr = {"thread_pool.pool": "doc"}
    wait = "thread_pool.lease.wait_time"
    assert otel.count(wait, outcome="granted", **pool_attr) == grants + 2
    assert otel.count(wait, outcome="timeout", **pool_attr) == timeouts
    assert otel.count(wait, outcome="too_many_waiters", **pool_attr) == 1
    assert otel.count("thread_pool.lease.timeouts", **pool_attr) == timeouts
    assert otel.count("thread_pool.lease.use_time", **pool_attr) == grants + 2
    spans = otel.spans("thread_pool.acquire")
    assert len(spans) == grants + 2 + timeouts + 1
    granted = [s for s in spans if attr(s, "thread_pool.outcome") == "granted"]
    assert sorted(attr(s, "thread_pool.fence") for s in granted) == list(range(1, grants + 3))
    assert {attr(s, "thread_pool.thread.id") for s in granted} == {"thread-a"}
    # The waiter's span covers its wait: it began before the holder released.
    assert max(attr(s, "thread_pool.wait_time") for s in granted) > 0


@pytest.mark.parametrize("kind", ["conversations", "assistants"])
async def test_turns_by_status_tokens_and_requests_match_the_run(
    otel: Recorded,
    make_async_pool: AsyncMakePool,
    thread_pool_emulator: EmulatorServer,
    kind: str,
) -> None:
    pool = make_async_pool(kind)
    with otel.request():
        turns = [await pool.run("doc", f"question {i}") for i in range(3)]
        thread_pool_emulator.admin.configure(run_failed=1.0)
        try:
            with pytest.raises(TurnFailed):
                await pool.run("doc", "fails")
        finally:
            thread_pool_emulator.admin.configure(run_failed=0.0)

    duration = "thread_pool.turn.duration"
    assert otel.count(duration, backend=kind, status="completed") == 3
    assert otel.count(duration, backend=kind, status="failed") == 1
    usage = "gen_ai.client.token.usage"
    inputs = sum(t.usage.get("input_tokens", t.usage.get("prompt_tokens", 0)) for t in turns)
    outputs = sum(t.usage.get("output_tokens", t.usage.get("completion_tokens", 0)) for t in turns)
    assert inputs > 0
    assert otel.sum(usage, **{"gen_ai.token.type": "input"}) == inputs
    assert otel.sum(usage, **{"gen_ai.token.type": "output"}) == outputs
    # Every turn sent requests upstream; each completed one carried the log it was missing
    # (one thread: none after the first, which the thread was created holding).
    assert otel.count("thread_pool.turn.requests", backend=kind) == 4
    assert otel.sum("thread_pool.turn.requests", backend=kind) >= 4
    assert otel.count("thread_pool.context.entries_merged") == 3
    assert otel.count("thread_pool.thread.create_time", outcome="granted") == 1
    # Spans: one per turn with the gen_ai attributes, the growth nested under an acquire.
    chats = otel.spans("chat")
    assert len(chats) == 4
    ok = [s for s in chats if attr(s, "thread_pool.status") == "completed"]
    assert sorted(attr(s, "gen_ai.response.id") for s in ok) == sorted(t.run_id for t in turns)
    assert {attr(s, "gen_ai.conversation.id") for s in chats} == {turns[0].thread_id}
    assert [attr(s, "thread_pool.fence") for s in chats] == [1, 2, 3, 4]
    (grow,) = otel.spans("thread_pool.grow")
    acquires = {s.context.span_id: s for s in otel.spans("thread_pool.acquire")}
    assert grow.parent is not None
    assert grow.parent.span_id in acquires


def test_the_blocking_pool_is_measured_alike(
    otel: Recorded, thread_pool_redis_url: str, thread_pool_prefix: str
) -> None:
    with ThreadPool(
        redis_url=thread_pool_redis_url, key_prefix=thread_pool_prefix, otel_pool_key="hash"
    ) as pool:
        pool.add_threads("user-7", ["thread-a"])
        for _ in range(4):
            with pool.lease("user-7"):
                pass
    hashed = {"thread_pool.pool": key_digest("user-7")}
    assert otel.count("thread_pool.lease.wait_time", outcome="granted", **hashed) == 4
    assert otel.count("thread_pool.lease.use_time", **hashed) == 4
    for p in otel.points("thread_pool.lease.wait_time"):
        assert "user-7" not in p.attributes.values()


async def test_the_pool_key_can_be_left_out(otel: Recorded, make_async_pool: AsyncMakePool) -> None:
    pool = make_async_pool(None, otel_pool_key="none")
    await pool.add_threads("user-8", ["thread-b"])
    await pool.release(await pool.acquire("user-8"))
    (point,) = otel.points("thread_pool.lease.wait_time")
    assert dict(point.attributes) == {"outcome": "granted"}
    assert otel.spans("thread_pool.acquire") == []  # no trace around it: metrics only
    with otel.request():
        await pool.release(await pool.acquire("user-8"))
    (span,) = otel.spans("thread_pool.acquire")
    assert "thread_pool.pool" not in (span.attributes or {})


async def test_a_lost_lease_and_the_settling_of_its_thread_are_counted(
    otel: Recorded, make_async_pool: AsyncMakePool
) -> None:
    pool = make_async_pool("conversations", lease_ttl=0.5, renew_margin=0.1)
    held = await pool.acquire("doc")
    await pause(max(held.remaining(), 0))
    reaped = 0
    for _ in range(600):  # the Redis clock may lag this process's a little: up to 30 s
        reaped = await pool.reap("doc")
        if reaped:
            break
        await asyncio.sleep(0.05)
    assert reaped == 1
    with pytest.raises(LeaseLost):
        await held.check()
    with pytest.raises(LeaseLost):  # told once, counted once
        await held.check()

    assert otel.count("thread_pool.lease.lost", **{"thread_pool.pool": "doc"}) == 1
    assert otel.count("thread_pool.settle.count", how="waited") == 1
    (span,) = otel.spans("thread_pool.settle")
    assert attr(span, "thread_pool.thread.id") == held.thread_id


NOT_INSTALLED = """
import importlib.machinery
import sys

class Hide(importlib.machinery.PathFinder):
    # As if the package were not installed: the path finder does not find it.
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name.partition(".")[0] == "opentelemetry":
            return None
        return importlib.machinery.PathFinder.find_spec(name, path, target)

sys.meta_path[:] = [Hide if f is importlib.machinery.PathFinder else f for f in sys.meta_path]
try:
    import opentelemetry
    raise SystemExit("still importable")
except ImportError:
    pass
from thread_pool import ThreadPool
from thread_pool._telemetry import INSTALLED, OFF
assert not INSTALLED
with ThreadPool(redis_url=sys.argv[1], key_prefix=sys.argv[2]) as pool:
    pool.add_threads("doc", ["thread-a"])
    for _ in range(3):
        with pool.lease("doc") as held:
            fence = held.fence
    assert fence == 3, fence
    assert pool.telemetry is OFF
print(sorted(m for m in sys.modules if m.startswith("opentelemetry")))
"""


def test_without_opentelemetry_everything_works_and_nothing_is_imported(
    thread_pool_redis_url: str, thread_pool_prefix: str
) -> None:
    args = [thread_pool_redis_url, thread_pool_prefix]
    done = subprocess.run(
        [sys.executable, "-c", NOT_INSTALLED, *args], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
