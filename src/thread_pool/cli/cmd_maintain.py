"""``thread-pool maintain``: reap expired leases as they fall due and keep pools at min_size,
until Ctrl-C; optionally serve the metrics from the same process."""

from __future__ import annotations

import threading

import click

from thread_pool.cli.cmd_metrics import metrics_server, pool_label_option
from thread_pool.cli.params import Duration, FiniteFloat
from thread_pool.cli.render import say
from thread_pool.cli.target import Target, run, target_options
from thread_pool.maintenance import MaintenancePass, maintain


async def _maintain(
    target: Target, interval: float, concurrency: int, rate: float, idle_expiry: float | None
) -> None:
    backend = target.backend()
    if idle_expiry is not None and backend is None:
        raise click.UsageError("--idle-expiry needs --backend (it deletes threads upstream)")

    def report(done: MaintenancePass) -> None:
        # A line per pass that did something; a quiet pass says nothing.
        if done.reaped:
            say(f"reaped {done.reaped} expired lease(s)", stderr=True)
        for key, count in (done.grown or {}).items():
            say(f"pool {key!r}: created {count} thread(s) toward its min_size", stderr=True)
        for key in done.retired or []:
            say(f"pool {key!r}: retired, idle for over {idle_expiry:g} s", stderr=True)

    async with target.pool() as pool, target.admin() as admin:
        growth = "" if backend is None else ", and keeping each at its min_size"
        say(
            f"maintaining the pools under prefix {admin.prefix!r} every {interval:g} s: "
            f"reaping expired leases{growth}",
            stderr=True,
        )
        await maintain(
            pool,
            admin,
            backend,
            interval=interval,
            concurrency=concurrency,
            rate=rate,
            idle_expiry=idle_expiry,
            on_pass=report,
        )


@click.command()
@click.option(
    "--interval",
    type=FiniteFloat(min=0.05, max=3600),
    default=1.0,
    show_default=True,
    help="seconds between passes (an expired lease is reaped within about this long)",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 64),
    default=4,
    show_default=True,
    help="thread creations in flight at once, over all pools",
)
@click.option(
    "--rate",
    type=FiniteFloat(min=0.1, max=1000),
    default=10.0,
    show_default=True,
    help="thread creations started per second, at most",
)
@click.option(
    "--idle-expiry",
    type=Duration(),
    default=None,
    help="also retire pools with no lease granted for this long (7d, 12h, ...; needs --backend)",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="also serve the metrics on this port (see `thread-pool metrics`)",
)
@click.option("--metrics-host", default="127.0.0.1", show_default=True, help="metrics address")
@pool_label_option
@target_options
def maintain_(
    target: Target,
    interval: float,
    concurrency: int,
    rate: float,
    idle_expiry: float | None,
    metrics_port: int | None,
    metrics_host: str,
    pool_label: str,
) -> None:
    """Keep the pools in shape until Ctrl-C: reap expired leases as they fall due and, with
    --backend, create threads for pools below their min_size. Several may run at once."""
    if metrics_port is None:
        run(_maintain(target, interval, concurrency, rate, idle_expiry))
        return
    with metrics_server(target, metrics_host, metrics_port, pool_label) as server:
        threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
        try:
            run(_maintain(target, interval, concurrency, rate, idle_expiry))
        finally:
            server.shutdown()


maintain_.name = "maintain"
COMMANDS = [maintain_]
