"""``thread-pool prewarm``: create upstream threads ahead of load."""

from __future__ import annotations

import dataclasses
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from thread_pool.admin import PoolProgress, prewarm, targets
from thread_pool.cli.params import FiniteFloat, count
from thread_pool.cli.render import console, print_json, safe, say
from thread_pool.cli.target import Target, run, target_options


def _keys(keys: tuple[str, ...], from_file: Any) -> list[str]:
    out = list(keys)
    if from_file is not None:
        for line in from_file:
            line = line.split("#", 1)[0].strip()
            if line:
                out.append(line)
    if not out:
        raise click.UsageError("give pool keys, or --from-file")
    return list(dict.fromkeys(out))


async def _prewarm(
    target: Target,
    keys: list[str],
    size: int | None,
    concurrency: int,
    rate: float,
    quiet: bool,
) -> list[PoolProgress]:
    async with target.admin() as admin:
        pools = await targets(admin, keys, size)
        backend = target.require_backend("prewarm")
        bar = Progress(
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console(stderr=True),
            disable=quiet,
        )
        tasks = {
            p.key: bar.add_task(safe(p.key), total=max(p.target, 1), completed=p.threads)
            for p in pools
        }

        def show(p: PoolProgress) -> None:
            bar.update(tasks[p.key], completed=min(p.threads, p.target))

        with bar:
            return await prewarm(
                admin, backend, pools, concurrency=concurrency, rate=rate, on_progress=show
            )


@click.command(name="prewarm")
@click.argument("keys", nargs=-1)
@click.option("--size", type=count(0), help="threads per pool [default: min_size]")
@click.option(
    "--from-file",
    type=click.File("r", encoding="utf-8"),
    help="read pool keys from FILE, one per line ('-': stdin; # comments)",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1, max=256),
    default=4,
    show_default=True,
    help="thread creations in flight at once",
)
@click.option(
    "--rate",
    type=FiniteFloat(min=0.1, max=10_000),
    default=10.0,
    show_default=True,
    help="thread creations started per second, at most",
)
@click.option("--json", "as_json", is_flag=True, help="print JSON (no progress bar)")
@target_options
def prewarm_(
    target: Target,
    keys: tuple[str, ...],
    size: int | None,
    from_file: Any,
    concurrency: int,
    rate: float,
    as_json: bool,
) -> None:
    """Create upstream threads until each pool KEY has --size threads (at most its max_size).
    Safe to run twice at once and to interrupt: nothing half-made is left, a re-run resumes."""
    pools = run(_prewarm(target, _keys(keys, from_file), size, concurrency, rate, as_json))
    if as_json:
        print_json({"pools": [dataclasses.asdict(p) for p in pools]})
        return
    for p in pools:
        note = " (draining: skipped)" if p.outcome == "draining" else ""
        say(f"pool {p.key}: {p.threads}/{p.target} threads, {p.grown} created{note}")


COMMANDS = [prewarm_]
