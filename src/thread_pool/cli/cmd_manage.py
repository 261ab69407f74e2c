"""``resize``, ``reap``, ``drain`` and ``delete``: changing a pool."""

from __future__ import annotations

import dataclasses

import click

from thread_pool.admin import DeleteReport
from thread_pool.cli.params import IdleExpiry, count, seconds, ttl
from thread_pool.cli.render import print_json, say
from thread_pool.cli.target import Target, run, target_options

_json_option = click.option("--json", "as_json", is_flag=True, help="print JSON")


async def _resize(
    target: Target,
    key: str,
    low: int | None,
    high: int | None,
    ttl: float | None,
    idle_expiry: float | None,
    create: bool,
) -> dict[str, object]:
    async with target.admin() as admin:
        if not create:
            await admin.status(key)  # UnknownPool: a typo must not create a pool
    async with target.pool() as pool:
        stats = await pool.configure(
            key, min_size=low, max_size=high, ttl=ttl, idle_expiry=idle_expiry
        )
        if target.backend_name is not None and stats.retired:
            # With a backend, threads retired by the shrink are deleted upstream at once.
            await pool.purge_retired(key)
            stats = await pool.stats(key)
    return dataclasses.asdict(stats)


@click.command()
@click.argument("key")
@click.option("--min", "low", type=count(0), help="minimum threads")
@click.option("--max", "high", type=count(1), help="maximum threads")
@click.option("--ttl", type=ttl(), help="lease TTL (seconds)")
@click.option(
    "--idle-expiry",
    type=IdleExpiry(),
    help="retire the pool once idle this long (7d; `maintain` and `gc` read it, overriding "
    "their default); none removes it",
)
@click.option("--create", is_flag=True, help="create the pool if it does not exist")
@_json_option
@target_options
def resize(
    target: Target,
    key: str,
    low: int | None,
    high: int | None,
    ttl: float | None,
    idle_expiry: float | None,
    create: bool,
    as_json: bool,
) -> None:
    """Set pool KEY's sizes (and lease TTL). Shrinking retires idle threads now and leased ones
    as they come back; with --backend the retired threads are deleted upstream, else they stay
    listed in status (the upstream cannot list threads: nothing else remembers them)."""
    if low is None and high is None and ttl is None and idle_expiry is None:
        raise click.UsageError("give --min, --max, --ttl or --idle-expiry")
    stats = run(_resize(target, key, low, high, ttl, idle_expiry, create))
    if as_json:
        print_json(stats)
        return
    say(
        f"pool {key}: min {stats['min_size']} max {stats['max_size']} "
        f"ttl {stats['lease_ttl']}s, {stats['threads']} threads ({stats['retired']} retired)"
        + (f", idle expiry {stats['idle_expiry']:g}s" if stats["idle_expiry"] else "")
    )


async def _reap(target: Target, key: str | None) -> int:
    async with target.pool() as pool:
        return await pool.reap(key)


@click.command()
@click.argument("key", required=False)
@_json_option
@target_options
def reap(target: Target, key: str | None, as_json: bool) -> None:
    """Reclaim expired leases now (of pool KEY, or of every pool) and settle their threads
    through --backend before they are handed out again (without one they go straight back)."""
    reaped = run(_reap(target, key))
    if as_json:
        print_json({"reaped": reaped})
    else:
        say(f"reclaimed {reaped} expired lease(s)")


async def _drain(target: Target, key: str, timeout: float, off: bool) -> dict[str, int]:
    async with target.admin() as admin:
        if off:
            await admin.set_draining(key, False)
            s = (await admin.status(key)).stats
        else:
            s = (await admin.drain(key, timeout)).stats
    return {"leased": s.leased, "settling": s.settling, "waiting": s.waiting}


@click.command()
@click.argument("key")
@click.option(
    "--timeout",
    type=seconds(0),
    default=30.0,
    show_default=True,
    help="seconds to wait for holders to release",
)
@click.option("--off", is_flag=True, help="clear the draining mark")
@_json_option
@target_options
def drain(target: Target, key: str, timeout: float, off: bool, as_json: bool) -> None:
    """Mark pool KEY draining and wait until no thread is leased. A draining pool grants no new
    lease (callers get PoolDraining) and is not pre-warmed; --off clears the mark."""
    left = run(_drain(target, key, timeout, off))
    if as_json:
        print_json({"key": key, "draining": not off, **left})
    if off:
        if not as_json:
            say(f"pool {key}: no longer draining")
        return
    if left["leased"] or left["settling"]:
        raise click.ClickException(
            f"pool {key!r} still has {left['leased']} leased and {left['settling']} settling "
            f"thread(s) after {timeout}s; it stays marked draining"
        )
    if not as_json:
        say(f"pool {key}: drained (no leases; {left['waiting']} waiting)")


async def _delete(target: Target, key: str, yes: bool, force: bool) -> DeleteReport:
    backend = target.backend()
    async with target.admin() as admin:
        count = len(await admin.threads(key))  # works on a pool whose state was lost too
        if not yes:
            where = "upstream and in Redis" if backend else "in Redis only (no --backend)"
            click.confirm(
                f"delete pool {key!r} with {count} thread(s) {where}?", abort=True, err=True
            )
        return await admin.delete(key, backend, force=force)


@click.command()
@click.argument("key")
@click.option("--yes", "-y", is_flag=True, help="do not ask for confirmation")
@click.option("--force", is_flag=True, help="delete even while threads are leased")
@_json_option
@target_options
def delete(target: Target, key: str, yes: bool, force: bool, as_json: bool) -> None:
    """Delete pool KEY: its threads upstream (with --backend) and all its keys. Without
    --backend the threads stay upstream and only this output names them: export first."""
    report = run(_delete(target, key, yes, force))
    if as_json:
        print_json(dataclasses.asdict(report))
        return
    text = f"deleted pool {key}: {len(report.threads)} thread(s)"
    if report.left_upstream:
        text += f"; left upstream (no --backend): {', '.join(report.left_upstream)}"
    else:
        text += (
            f", {len(report.deleted_upstream)} deleted upstream"
            f", {len(report.missing_upstream)} already gone"
        )
    say(text)


COMMANDS = [resize, reap, drain, delete]
