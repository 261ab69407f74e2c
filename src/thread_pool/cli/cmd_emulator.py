"""``thread-pool emulator``: serve the local emulator of the upstream API."""

from __future__ import annotations

import click

from thread_pool.cli.params import Latency, share


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8089,
    show_default=True,
    help="0 picks a free port",
)
@click.option(
    "--latency",
    type=Latency(),
    default="0.5",
    show_default=True,
    help="seconds per run: fixed (0.5) or a range (0.2-0.8)",
)
@click.option(
    "--fault-rate",
    type=share(),
    default=0.0,
    show_default=True,
    help="share of requests failing (500/503/429) and runs ending badly",
)
@click.option("--seed", type=int, default=0, show_default=True, help="seed of latency and faults")
def emulator(host: str, port: int, latency: str, fault_rate: float, seed: int) -> None:
    """Serve the emulator of the Assistants and Conversations/Responses APIs until Ctrl-C.
    Point the SDK (OPENAI_BASE_URL, or --base-url) at the base_url it prints."""
    try:
        from thread_pool.emulator.__main__ import main as serve
    except ImportError:
        raise click.ClickException(
            "the emulator needs its extra: pip install 'openai-thread-pool[emulator]'"
        ) from None
    serve(
        [
            "--host",
            host,
            "--port",
            str(port),
            "--latency",
            latency,
            "--fault-rate",
            str(fault_rate),
            "--seed",
            str(seed),
        ]
    )


COMMANDS = [emulator]
