"""``thread-pool status``: what the pools are doing."""

from __future__ import annotations

import asyncio

import click
from rich.console import RenderableType
from rich.live import Live

from thread_pool import AsyncPoolAdmin, PoolStatus
from thread_pool.cli.params import seconds
from thread_pool.cli.render import JsonList, cell, console, pool_detail, pools_table, print_json
from thread_pool.cli.target import Target, run, target_options


async def snapshot(admin: AsyncPoolAdmin, key: str | None) -> list[PoolStatus]:
    """Pool ``key`` (``UnknownPool`` if missing), or every registered pool."""
    if key is not None:
        return [await admin.status(key)]
    return [s async for s in admin.statuses()]


async def _json(admin: AsyncPoolAdmin, key: str | None, indent: int | None) -> None:
    """Pool ``key``, or every pool, as JSON on stdout. Every pool is written as it is read,
    batch by batch: never the whole list in memory at once (it can be hundreds of MB)."""
    if key is not None:
        print_json((await admin.status(key)).to_json(), indent)
        return
    out = JsonList("pools", indent)
    async for found in admin.statuses():
        out.add(found.to_json())
    out.close()


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
        if as_json:
            # Without --watch, indented; with it, one JSON document per line and tick, for a
            # script to follow.
            await _json(admin, key, None if watch else 2)
            while watch:
                await asyncio.sleep(every)
                await _json(admin, key, None)
            return
        statuses = await snapshot(admin, key)
        if not watch:
            console().print(_view(statuses, key))
            return
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
