"""``export`` and ``import``: the registry of threads, backed up and restored.

The upstream API cannot list threads, so without this backup a lost Redis loses every thread.
"""

from __future__ import annotations

import json
from typing import Any

import click

from thread_pool.cli.render import print_json, say
from thread_pool.cli.target import Target, run, target_options


async def _export(target: Target, keys: list[str] | None) -> dict[str, Any]:
    async with target.admin() as admin:
        return await admin.export(keys)


@click.command(name="export")
@click.argument("keys", nargs=-1)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, allow_dash=True),
    default="-",
    help="file to write (default: stdout)",
)
@target_options
def export_(target: Target, keys: tuple[str, ...], output: str) -> None:
    """Back up pools KEYS (default: all) to a JSON file: every key of each pool verbatim
    (threads and fences, sizes and TTL, counters, leases), restorable with import."""
    doc = run(_export(target, list(keys) or None))
    if output == "-":
        print_json(doc)
        return
    with open(output, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    say(f"exported {len(doc['pools'])} pool(s) to {output}", stderr=True)


async def _import(target: Target, doc: Any, keys: list[str] | None, exact: bool) -> list[str]:
    async with target.admin() as admin:
        return await admin.restore(doc, keys, exact=exact)


@click.command(name="import")
@click.argument("file", type=click.File("r", encoding="utf-8"))
@click.option("--key", "keys", multiple=True, help="restore only this pool (repeatable)")
@click.option(
    "--exact",
    is_flag=True,
    help="write the backup verbatim, leases included (only if nobody used the pools since)",
)
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@target_options
def import_(target: Target, file: Any, keys: tuple[str, ...], exact: bool, as_json: bool) -> None:
    """Restore the pools of an export FILE ('-': stdin). A pool that exists is left alone and
    reported (delete it first); a pool marked lost is replaced; the others are restored, each at
    once. Unless --exact, fences jump above any granted since the export, and every thread is
    settled before its next lease (the backup's leases are void)."""
    try:
        doc = json.load(file)
    except json.JSONDecodeError as exc:
        raise click.ClickException(f"{file.name} is not JSON: {exc}") from None
    restored = run(_import(target, doc, list(keys) or None, exact))
    if as_json:
        print_json({"restored": restored})
    else:
        say(f"restored {len(restored)} pool(s): {', '.join(restored)}")


COMMANDS = [export_, import_]
