"""``thread-pool status``: what the pools are doing."""

from __future__ import annotations

import asyncio
import json
import sys

import click
from rich.console import RenderableType
from rich.live import Live

from thread_pool import AsyncPoolAdmin, PoolStatus
from thread_pool.cli.params import seconds
from thread_pool.cli.render import cell, console, pool_detail, pools_table, print_json
from thread_pool.cli.target import Target, run, target_options
from thread_pool.errors import UnknownPool


async def snapshot(admin: AsyncPoolAdmin, key: str | None) -> list[PoolStatus]:
    """Pool ``key`` (``UnknownPool`` if missing), or every registered pool."""
    if key is not None:
        return [await admin.status(key)]
    out = []
    for name in await admin.pools():
        try:
            out.append(await admin.status(name))
        except UnknownPool:
            continue  # deleted since it was listed
    return out


def _json(statuses: list[PoolStatus], key: str | None) -> object:
    if key is not None:
        return statuses[0].to_json()
    return {"pools": [s.to_json() for s in statuses]}


def _view(statuses: list[PoolStatus], key: str | None) -> RenderableType:
    if key is not None:
        return pool_detail(statuses[0])
    if not statuses:
        return cell("no pools")
    return pools_table(statuses)


async def _status(
    target: Target, key: str | None, as_json: bool, watch: bool, every: float
) -> None:
    async with target.admin() as admin:
        statuses = await snapshot(admin, key)
        if not watch:
            if as_json:
                print_json(_json(statuses, key))
            else:
                console().print(_view(statuses, key))
            return
        if as_json:
            # One JSON document per line and tick, for a script to follow.
            while True:
                sys.stdout.write(json.dumps(_json(statuses, key)) + "\n")
                sys.stdout.flush()
                await asyncio.sleep(every)
                statuses = await snapshot(admin, key)
        with Live(_view(statuses, key), console=console(), auto_refresh=False) as live:
            while True:
                await asyncio.sleep(every)
                statuses = await snapshot(admin, key)
                live.update(_view(statuses, key), refresh=True)


@click.command()
@click.argument("key", required=False)
@click.option("--json", "as_json", is_flag=True, help="print JSON (stats() fields and details)")
@click.option("--watch", is_flag=True, help="refresh until Ctrl-C")
@click.option(
    "--interval",
    type=seconds(0.1),
    default=1.0,
    show_default=True,
    help="seconds between refreshes with --watch",
)
@target_options
def status(target: Target, key: str | None, as_json: bool, watch: bool, interval: float) -> None:
    """Show every pool, or pool KEY in full: threads (idle, leased, settling), each lease's
    holder, age, time left and fence, and the waiters."""
    try:
        run(_status(target, key, as_json, watch, interval))
    except KeyboardInterrupt:
        if not watch:
            raise


COMMANDS = [status]
