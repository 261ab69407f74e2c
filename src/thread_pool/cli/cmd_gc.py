"""``thread-pool gc``: retire the pools nobody has used for a while."""

from __future__ import annotations

import dataclasses

import click

from thread_pool.cli.params import Duration
from thread_pool.cli.render import print_json, say
from thread_pool.cli.target import Target, run, target_options
from thread_pool.maintenance import idle_pools, retire_idle


async def _gc(target: Target, idle_for: float, dry_run: bool, as_json: bool) -> None:
    async with target.admin() as admin:
        if dry_run:
            found = await idle_pools(admin, idle_for)
            if as_json:
                print_json({"idle": [dataclasses.asdict(p) for p in found], "dry_run": True})
            else:
                for p in found:
                    say(f"would retire {p.key} ({p.threads} threads, idle {p.idle / 3600:.1f} h)")
                if not found:
                    say("no idle pools")
            return
        backend = target.require_backend("gc (it deletes the pools' threads upstream)")
        reports = await retire_idle(admin, backend, idle_for)
        if as_json:
            print_json({"retired": [dataclasses.asdict(r) for r in reports]})
            return
        for r in reports:
            say(
                f"retired {r.key}: {len(r.deleted_upstream)} threads deleted upstream, "
                f"{len(r.missing_upstream)} already gone"
            )
        if not reports:
            say("no idle pools")


@click.command()
@click.option(
    "--idle-for",
    type=Duration(),
    required=True,
    help="retire pools with no lease granted for this long (90s, 15m, 12h, 7d, 2w)",
)
@click.option("--dry-run", is_flag=True, help="only list the pools that would be retired")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@target_options
def gc(target: Target, idle_for: float, dry_run: bool, as_json: bool) -> None:
    """Retire the pools nobody has leased a thread of for --idle-for: their threads are deleted
    upstream (needs --backend), then their keys. A pool with a lease, a waiter or a thread being
    created or settled is never retired."""
    run(_gc(target, idle_for, dry_run, as_json))


COMMANDS = [gc]
