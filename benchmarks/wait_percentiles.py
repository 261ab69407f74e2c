"""Lease wait-time percentiles against workers, read from the OpenTelemetry metrics the stress
test's pool recorded.

For each number of workers, ``thread-pool stress``'s ``pool`` strategy runs on one document (a
pool of ``--pool-size`` threads, runs of ``--latency`` seconds on the emulator in a process of its
own) with a fresh OpenTelemetry ``MeterProvider`` and an in-memory reader; the percentiles come
from the run's ``thread_pool.lease.wait_time{outcome="granted"}`` histogram (linear within a
bucket, as Prometheus's ``histogram_quantile`` does). Prints the table and writes
``docs/wait_percentiles.png``.

    .venv/bin/python benchmarks/wait_percentiles.py [--latency 0.2] [--pool-size 4]
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from stress_scaling import emulator, point

from thread_pool import use_telemetry_providers
from thread_pool.testing.redis_server import local_redis

DOCS = Path(__file__).resolve().parent.parent / "docs"
QUANTILES = (0.5, 0.9, 0.99)


def quantile(q: float, bounds: list[float], counts: list[int], low: float, high: float) -> float:
    """The ``q`` quantile of a histogram: linear within the bucket that holds it, the bucket's
    edges clamped to the smallest and largest value recorded."""
    total = sum(counts)
    rank = q * total
    seen = 0
    edges = [low, *bounds, high]
    for i, count in enumerate(counts):
        if count and seen + count >= rank:
            lo = max(edges[i], low)
            hi = min(edges[i + 1], high)
            return lo + (hi - lo) * (rank - seen) / count
        seen += count
    return high


def waits(reader: InMemoryMetricReader) -> dict[str, Any]:
    """The granted wait-time histogram of the run: count, percentiles, mean."""
    data = reader.get_metrics_data()
    assert data is not None
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name != "thread_pool.lease.wait_time":
                    continue
                points: list[Any] = list(metric.data.data_points)
                for p in points:
                    if p.attributes.get("outcome") == "granted":
                        b, c = list(p.explicit_bounds), list(p.bucket_counts)
                        return {
                            "count": p.count,
                            "mean": p.sum / p.count,
                            **{
                                f"p{round(q * 100)}": quantile(q, b, c, p.min, p.max)
                                for q in QUANTILES
                            },
                        }
    raise AssertionError("the run recorded no granted wait")


def plot(rows: list[dict[str, Any]], args: argparse.Namespace, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display: write the file only
    import matplotlib.pyplot as plt

    workers = [r["workers"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for q, style in zip(QUANTILES, ("o-", "s-", "^-"), strict=True):
        name = f"p{round(q * 100)}"
        ax.plot(workers, [r[name] for r in rows], style, label=name)
    ax.axvline(args.pool_size, color="k", linestyle=":", label=f"pool size ({args.pool_size})")
    ax.set_xscale("log", base=2)
    ax.set_xticks(workers, [str(w) for w in workers])
    ax.set_xlabel("workers (one document)")
    ax.set_ylabel("lease wait (s)")
    ax.set_title(
        f"thread_pool.lease.wait_time, runs of {args.latency:g} s "
        f"({args.iterations} turns per worker)"
    )
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--latency", type=float, default=0.2, help="seconds per run")
    parser.add_argument("--poll-ms", type=int, default=25, help="the emulator's poll hint")
    parser.add_argument("--pool-size", type=int, default=4)
    parser.add_argument("--iterations", type=int, default=6, help="turns per worker")
    parser.add_argument("--workers", default="1,2,4,8,16")
    parser.add_argument("--backend", choices=["assistants", "conversations"], default="assistants")
    parser.add_argument("--out", type=Path, default=DOCS / "wait_percentiles.png")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=DeprecationWarning)

    started = time.monotonic()
    rows: list[dict[str, Any]] = []
    with local_redis() as redis_url, emulator(args.latency, args.poll_ms) as (base_url, _):
        for n in (int(w) for w in args.workers.split(",")):
            reader = InMemoryMetricReader()
            use_telemetry_providers(MeterProvider(metric_readers=[reader]), None)
            result, _ = point("pool", n, args.iterations, base_url, redis_url, args, args.backend)
            rows.append({"workers": n, "turns_per_s": result.turns_per_s, **waits(reader)})
    use_telemetry_providers()

    print(f"pool of {args.pool_size}, runs of {args.latency:g} s, {args.iterations} turns/worker")
    print(
        f"{'workers':>7} {'turns/s':>8} {'waits':>6} {'mean':>8} {'p50':>8} {'p90':>8} {'p99':>8}"
    )
    for r in rows:
        print(
            f"{r['workers']:>7} {r['turns_per_s']:>8.1f} {r['count']:>6} {r['mean']:>8.3f} "
            f"{r['p50']:>8.3f} {r['p90']:>8.3f} {r['p99']:>8.3f}"
        )
    plot(rows, args, args.out)
    print(f"wrote {args.out} in {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
