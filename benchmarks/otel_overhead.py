"""What OpenTelemetry adds to the lease path: acquire+release cycles side by side in one run.

    python benchmarks/otel_overhead.py [--quick]

Two worker processes, each with a pool of one thread on the same Redis, run the same cycle:

- ``absent`` (process 1): the OpenTelemetry API hidden from the import system, as if not
  installed;
- in process 2, switching between round by round (``use_telemetry_providers``), so that what
  differs between processes does not enter their comparison:
  ``api``, the API installed and no SDK configured (its no-op providers);
  ``sdk``, an SDK: metrics to a periodic reader that exports nowhere, spans through a batch
  processor to an exporter that drops them (the work an application pays before its exporter's);
  ``traced``, the same inside a recorded span of the application's (a web request's), so that
  each acquire makes a span too.

The coordinator asks for the variants' rounds in turn (the order reversed every other round) so
that the machine's noise falls on all alike, and prints the median cycle of each and its ratio
to ``absent``; target: ``sdk`` adds at most 5 %. Each worker also times two calls of a trivial
script with redis-py (which the library does not touch): a difference there is the process's,
not the instrumentation's. And each times the instrumentation's calls alone, in CPU time, which
a loaded machine blurs less than wall time.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.machinery
import multiprocessing
import os
import statistics
import sys
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

VARIANTS = ("absent", "api", "sdk", "traced")


class _Hidden(importlib.machinery.PathFinder):
    """The path finder, blind to ``opentelemetry``: as if it were not installed."""

    @classmethod
    def find_spec(
        cls, fullname: str, path: Sequence[str] | None = None, target: Any = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname.partition(".")[0] == "opentelemetry":
            return None
        return importlib.machinery.PathFinder.find_spec(fullname, path, target)


def _sdk_providers() -> tuple[Any, Any]:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import (
        MetricExporter,
        MetricExportResult,
        PeriodicExportingMetricReader,
    )
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    class DropSpans(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    class DropMetrics(MetricExporter):
        def export(self, metrics_data: Any, timeout_millis: float = 0, **kw: Any) -> Any:
            return MetricExportResult.SUCCESS

        def force_flush(self, timeout_millis: float = 0) -> bool:
            return True

        def shutdown(self, timeout_millis: float = 0, **kw: Any) -> None:
            pass

    reader = PeriodicExportingMetricReader(DropMetrics(), export_interval_millis=1000)
    tracers = TracerProvider()
    tracers.add_span_processor(BatchSpanProcessor(DropSpans()))
    return MeterProvider(metric_readers=[reader]), tracers


def worker(absent: bool, url: str, prefix: str, conn: Connection) -> None:
    """In a child process: on each message (variant, N), run N cycles as that variant and send
    back their times, the instrumentation's alone, and the trivial scripts'."""
    if absent:
        sys.meta_path[:] = [
            _Hidden if f is importlib.machinery.PathFinder else f for f in sys.meta_path
        ]
    import redis

    from thread_pool import ThreadPool, use_telemetry_providers
    from thread_pool._telemetry import INSTALLED

    assert absent != INSTALLED
    meters, tracers = (None, None) if absent else _sdk_providers()
    pool = ThreadPool(redis_url=url, key_prefix=prefix)
    key = "absent" if absent else "installed"
    pool.add_threads(key, [f"thread-{key}"])
    client = redis.Redis.from_url(url)
    trivial = client.register_script("return 1")
    instrumented = _instrumentation_only(key)
    for variant in ("api", "sdk", "traced") if not absent else ("absent",):
        _use(variant, meters, tracers, use_telemetry_providers)
        for _ in range(200):  # warm up: connections, script cache, instruments
            pool.release(pool.acquire(key))
    conn.send("ready")
    while (message := conn.recv()) != "stop":
        variant, n = message
        _use(variant, meters, tracers, use_telemetry_providers)
        in_request = contextlib.nullcontext()
        if variant == "traced":
            assert tracers is not None
            in_request = tracers.get_tracer("app").start_as_current_span("request")
        times, floor = [], []
        with in_request:
            for _ in range(n):
                t0 = time.perf_counter()
                pool.release(pool.acquire(key))
                t1 = time.perf_counter()
                trivial()
                trivial()
                floor.append(time.perf_counter() - t1)
                times.append(t1 - t0)
            alone = instrumented(n)
        conn.send((times, alone, floor))
    client.close()
    pool.close()


def _use(variant: str, meters: Any, tracers: Any, use: Any) -> None:
    if variant in ("sdk", "traced"):
        use(meters, tracers)
    elif variant == "api":
        use()  # the global providers: no SDK is configured, so the API's no-op ones


def _instrumentation_only(mode: str) -> Any:
    """What the instrumentation alone costs a cycle, without Redis: the decorated acquire
    (returning a grant at once) and the release's record, as in a cycle. CPU time only, so it
    holds on a loaded machine where the cycles' wall time does not."""
    from thread_pool._store.replies import Grant
    from thread_pool._telemetry import scope as scope_of
    from thread_pool._traced import traced_acquire

    scope = scope_of("key")

    class Leasing:
        telemetry = scope

        @traced_acquire
        def acquire(self, key: str, wait_s: float) -> tuple[str, Grant, float]:
            return "token", Grant("thread", 1, 0, 0), 0.0

    leasing = Leasing()

    def run(n: int) -> list[float]:
        times = []
        for _ in range(n):
            t0 = time.process_time()
            leasing.acquire(mode, 1.0)
            scope.released(mode, 0.001)
            times.append(time.process_time() - t0)
        return times

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run)")
    args = parser.parse_args()
    rounds, per_round = (6, 200) if args.quick else (40, 500)
    print(f"(load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")

    from thread_pool.testing.redis_server import local_redis, scratch_prefix

    ctx = multiprocessing.get_context("spawn")
    with local_redis() as url, scratch_prefix(url) as prefix:
        pipes: dict[bool, Connection] = {}
        children = []
        for absent in (True, False):
            ours, theirs = ctx.Pipe()
            child = ctx.Process(target=worker, args=(absent, url, prefix, theirs))
            child.start()
            pipes[absent] = ours
            children.append(child)
        for pipe in pipes.values():
            assert pipe.recv() == "ready"
        samples: dict[str, list[float]] = {v: [] for v in VARIANTS}
        alone: dict[str, list[float]] = {v: [] for v in VARIANTS}
        floor: dict[str, list[float]] = {v: [] for v in VARIANTS}
        for r in range(rounds):
            for variant in VARIANTS if r % 2 == 0 else tuple(reversed(VARIANTS)):
                pipe = pipes[variant == "absent"]
                pipe.send((variant, per_round))
                cycles, instrumentation, scripts = pipe.recv()
                samples[variant].extend(cycles)
                alone[variant].extend(instrumentation)
                floor[variant].extend(scripts)
        for pipe in pipes.values():
            pipe.send("stop")
        for child in children:
            child.join()

    base = statistics.median(samples["absent"])
    print(f"lease cycle (acquire+release), {rounds} rounds x {per_round} cycles per variant")
    for variant in VARIANTS:
        med = statistics.median(samples[variant])
        low = statistics.median(floor[variant])
        print(
            f"  {variant:<7} median {med * 1e6:7.1f} us  x{med / base:.3f}"
            f"   (two trivial scripts in that process: {low * 1e6:6.1f} us)"
        )
    api = statistics.median(samples["api"])
    for variant in ("sdk", "traced"):
        added = statistics.median(samples[variant]) / base - 1
        same = statistics.median(samples[variant]) / api - 1
        print(
            f"{variant}: {added * 100:+.1f} % against absent, {same * 100:+.1f} % against api in "
            f"the same process ({'meets' if added <= 0.05 else 'MISSES'} the 5 % target)"
        )
    print("the instrumentation alone (CPU time of its calls in one cycle, no Redis; mean):")
    for variant in VARIANTS:
        cost = statistics.fmean(alone[variant])
        print(
            f"  {variant:<7} {cost * 1e6:6.2f} us = {cost / base * 100:5.1f} % of the absent cycle"
        )


if __name__ == "__main__":
    main()
