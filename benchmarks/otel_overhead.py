"""What OpenTelemetry adds to the lease path: acquire+release cycles side by side in one run.

    python benchmarks/otel_overhead.py [--quick]

Three worker processes, each with a pool of one thread on the same Redis, run the same cycle:

- ``absent``: the OpenTelemetry API hidden from the import system, as if not installed;
- ``api``: the API installed, no SDK configured (its no-op providers);
- ``sdk``: the SDK configured, metrics to a periodic reader that exports nowhere and every span
  through a batch processor to an exporter that drops it (the work an application pays for
  before its exporter's own).

The coordinator asks them for rounds in turn (the order reversed every other round) so that the
machine's noise falls on all alike, and prints the median cycle time of each and the ratios to
``absent``. Target: ``sdk`` adds at most 5 %.
"""

from __future__ import annotations

import argparse
import importlib.machinery
import multiprocessing
import os
import statistics
import sys
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

MODES = ("absent", "api", "sdk")


class _Hidden(importlib.machinery.PathFinder):
    """The path finder, blind to ``opentelemetry``: as if it were not installed."""

    @classmethod
    def find_spec(
        cls, fullname: str, path: Sequence[str] | None = None, target: Any = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname.partition(".")[0] == "opentelemetry":
            return None
        return importlib.machinery.PathFinder.find_spec(fullname, path, target)


def _configure_sdk() -> None:
    from opentelemetry import metrics, trace
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
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    tracers = TracerProvider()
    tracers.add_span_processor(BatchSpanProcessor(DropSpans()))
    trace.set_tracer_provider(tracers)


def worker(mode: str, url: str, prefix: str, conn: Connection) -> None:
    """In a child process: on each message N, run N cycles and send back their times."""
    if mode == "absent":
        sys.meta_path[:] = [
            _Hidden if f is importlib.machinery.PathFinder else f for f in sys.meta_path
        ]
    elif mode == "sdk":
        _configure_sdk()
    from thread_pool import ThreadPool, _telemetry

    assert (mode != "absent") == _telemetry.INSTALLED
    pool = ThreadPool(redis_url=url, key_prefix=prefix)
    pool.add_threads(mode, [f"thread-{mode}"])
    for _ in range(200):  # warm up: connections, script cache, instruments
        pool.release(pool.acquire(mode))
    conn.send("ready")
    instrumented = _instrumentation_only(mode)
    while (n := conn.recv()) != 0:
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            pool.release(pool.acquire(mode))
            times.append(time.perf_counter() - t0)
        conn.send((times, instrumented(n)))
    pool.close()


def _instrumentation_only(mode: str) -> Any:
    """What the instrumentation alone costs a cycle, without Redis: the decorated acquire
    (returning a grant at once) and the release's record, as in a cycle. CPU time only, so it
    holds on a loaded machine where the cycles' wall time does not."""
    from thread_pool import _telemetry
    from thread_pool._store.replies import Grant

    scope = _telemetry.scope("key")

    class Leasing:
        telemetry = scope

        @_telemetry.traced_acquire
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
        pipes: dict[str, Connection] = {}
        children = []
        for mode in MODES:
            ours, theirs = ctx.Pipe()
            child = ctx.Process(target=worker, args=(mode, url, prefix, theirs))
            child.start()
            pipes[mode] = ours
            children.append(child)
        for mode in MODES:
            assert pipes[mode].recv() == "ready"
        samples: dict[str, list[float]] = {m: [] for m in MODES}
        alone: dict[str, list[float]] = {m: [] for m in MODES}
        for r in range(rounds):
            for mode in MODES if r % 2 == 0 else tuple(reversed(MODES)):
                pipes[mode].send(per_round)
                cycles, instrumentation = pipes[mode].recv()
                samples[mode].extend(cycles)
                alone[mode].extend(instrumentation)
        for mode in MODES:
            pipes[mode].send(0)
        for child in children:
            child.join()

    base = statistics.median(samples["absent"])
    print(f"lease cycle (acquire+release, one process at a time), {rounds} x {per_round} each")
    for mode in MODES:
        med = statistics.median(samples[mode])
        print(f"  {mode:<7} median {med * 1e6:8.1f} us   x{med / base:.3f}")
    added = statistics.median(samples["sdk"]) / base - 1
    verdict = "meets" if added <= 0.05 else "MISSES"
    print(f"SDK configured adds {added * 100:+.1f} % ({verdict} the 5 % target)")
    print("the instrumentation alone (CPU time of its calls in one cycle, no Redis; mean):")
    for mode in MODES:
        cost = statistics.fmean(alone[mode])
        print(f"  {mode:<7} {cost * 1e6:6.2f} us = {cost / base * 100:5.1f} % of the absent cycle")


if __name__ == "__main__":
    main()
