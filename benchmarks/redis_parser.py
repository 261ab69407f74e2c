"""The lease core with redis-py's own reply parser vs ``hiredis`` (the ``fast`` extra), side by
side on the same Redis in one run.

    python benchmarks/redis_parser.py [--rounds 6]

redis-py picks its parser when it is imported, so each measurement runs in a child process, the
two parsers alternating round by round so that the machine's noise falls on both alike. A child
measures lease_core.py's (a) (median lease+release cycle, blocking pool) and (c) (cycles/s with
256 asyncio tasks). Medians of the rounds' figures; the ratios are hiredis / Python parser.
"""

from __future__ import annotations

import sys

if __name__ == "__main__" and "--child" in sys.argv and sys.argv[-1] == "python":
    sys.modules["hiredis"] = None  # type: ignore[assignment]  # redis-py falls back to its own

import argparse
import asyncio
import json
import statistics
import subprocess
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lease_core import Target, bench_cycle, cycles_per_second

from thread_pool.testing.redis_server import RedisServer, scratch_prefix

PARSERS = ("python", "hiredis")


def child(url: str, parser: str) -> None:
    """One round's figures for the parser this process imported redis-py with."""
    import redis.utils

    assert (parser == "hiredis") == redis.utils.HIREDIS_AVAILABLE, "wrong parser loaded"
    target = Target(url, url, cluster=False, nodes=[url])  # the pool's default way only
    with scratch_prefix(url) as prefix:
        cycle = bench_cycle(target, prefix, rounds=2, per_round=400)
        rate = asyncio.run(cycles_per_second(target, "functions", prefix, 256, 1.5))
    print(json.dumps({"cycle_us": cycle["pool"] * 1e6, "rate_256": rate}))


def main() -> None:
    """Alternate the parsers' children and print the medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--url", default=None, help=argparse.SUPPRESS)
    parser.add_argument("which", nargs="?", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.url, args.which)
        return
    figures: dict[str, list[dict[str, float]]] = {name: [] for name in PARSERS}
    # A private server: the pool loads its functions library there.
    with RedisServer() as server:
        url = server.url
        for r in range(args.rounds):
            for name in PARSERS if r % 2 == 0 else reversed(PARSERS):
                out = subprocess.run(
                    [sys.executable, __file__, "--child", "1", "--url", url, name],
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
                figures[name].append(json.loads(out.strip().splitlines()[-1]))
    med = {
        name: {k: statistics.median(f[k] for f in rows) for k in ("cycle_us", "rate_256")}
        for name, rows in figures.items()
    }
    print(f"{args.rounds} rounds, parsers alternating; medians")
    print("| parser | lease+release µs | cycles/s, 256 tasks |")
    print("|---|---:|---:|")
    for name in PARSERS:
        print(f"| {name} | {med[name]['cycle_us']:.0f} | {med[name]['rate_256']:.0f} |")
    print(
        f"hiredis / python: cycle {med['hiredis']['cycle_us'] / med['python']['cycle_us']:.2f}x, "
        f"256-task rate {med['hiredis']['rate_256'] / med['python']['rate_256']:.2f}x"
    )


if __name__ == "__main__":
    main()
