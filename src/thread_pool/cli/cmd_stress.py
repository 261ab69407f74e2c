"""``thread-pool stress``: the measured failure reproduced, the usual fix, and the pool."""

from __future__ import annotations

import os
from typing import Literal, cast

import click

from thread_pool._model.redaction import mask_url
from thread_pool.cli.params import Latency
from thread_pool.cli.render import console, print_json, say, stress_table

_STRATEGIES = ("naive", "lock", "pool")


@click.command()
@click.option("--workers", type=click.IntRange(1, 512), default=5, show_default=True)
@click.option("--iterations", type=click.IntRange(1, 10_000), default=10, show_default=True)
@click.option(
    "--strategy",
    type=click.Choice([*_STRATEGIES, "all"]),
    default="all",
    show_default=True,
    help="naive: one shared thread, retries; lock: a redis-py Lock per thread; pool: thread_pool",
)
@click.option(
    "--run-latency",
    type=Latency(),
    default="0.3-0.8",
    show_default=True,
    help="the emulator's seconds per run: fixed (0.5) or a range (0.3-0.8)",
)
@click.option("--processes", is_flag=True, help="workers are processes, not threads")
@click.option(
    "--backend",
    type=click.Choice(["assistants", "conversations"]),
    default="assistants",
    show_default=True,
)
@click.option(
    "--pool-size",
    type=click.IntRange(1, 10_000),
    default=16,
    show_default=True,
    help="the pool strategy's max threads",
)
@click.option(
    "--base-url",
    default=None,
    help="a real endpoint (key from OPENAI_API_KEY) instead of the embedded emulator",
)
@click.option("--model", default="gpt-4o-mini", show_default=True, help="for --base-url")
@click.option("--json", "as_json", is_flag=True, help="a JSON list, one object per strategy")
def stress(
    workers: int,
    iterations: int,
    strategy: str,
    run_latency: str,
    processes: bool,
    backend: str,
    pool_size: int,
    base_url: str | None,
    model: str,
    as_json: bool,
) -> None:
    """WORKERS x ITERATIONS turns on one document, per strategy, one row each.

    Without --base-url it starts an emulator (which refuses a second active run on a thread, as
    upstream does) and uses Redis from THREAD_POOL_REDIS_URL, else 127.0.0.1:6379, else a
    private redis-server; it deletes the keys it wrote."""
    from thread_pool.testing.stress import StressOptions, mean_latency, run_stress

    try:
        mean_latency(run_latency)
    except ValueError:
        raise click.BadParameter(
            f"{run_latency!r} is not seconds (0.5) or a range (0.3-0.8)", param_hint="--run-latency"
        ) from None
    api_key = None
    if base_url is not None:
        api_key = os.environ.get("OPENAI_API_KEY")
        if not api_key:
            raise click.UsageError("--base-url needs the key in OPENAI_API_KEY")
    chosen = _STRATEGIES if strategy == "all" else (strategy,)
    options = StressOptions(
        workers=workers,
        iterations=iterations,
        strategies=cast("tuple[Literal['naive', 'lock', 'pool'], ...]", chosen),
        run_latency=run_latency,
        processes=processes,
        backend=cast("Literal['assistants', 'conversations']", backend),
        base_url=base_url,
        api_key=api_key,
        model=model,
        pool_size=pool_size,
    )
    if not as_json:
        where = mask_url(base_url) if base_url else f"the emulator, runs of {run_latency} s"
        say(
            f"{workers} {'processes' if processes else 'threads'} x {iterations} turns on one "
            f"document, {backend}, against {where}; pool size {pool_size}"
        )
    results = run_stress(options)
    if as_json:
        print_json([r.as_dict() for r in results])
    else:
        console().print(stress_table(results))


COMMANDS = [stress]
