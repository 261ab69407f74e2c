"""``python -m thread_pool.emulator --port 8089 [--latency 0.5 | 0.2-0.8] [--fault-rate R] ...``

Serves the emulator in the foreground and prints the base URL to give the SDK.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

import uvicorn

from thread_pool.emulator.app import create_app
from thread_pool.emulator.config import (
    LLAMA_STACK,
    EmulatorConfig,
    parse_latency,
    spread_fault_rate,
)
from thread_pool.emulator.service import Emulator


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m thread_pool.emulator",
        description="Serve an emulator of the OpenAI Assistants and Conversations/Responses APIs.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089, help="0 picks a free port")
    parser.add_argument(
        "--latency", default="0.5", help="seconds per run: fixed (0.5) or a range (0.2-0.8)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of latency and faults")
    parser.add_argument(
        "--fault-rate",
        type=float,
        default=0.0,
        help="share of requests answered 500/503/429 and of runs ending failed/expired/stuck",
    )
    for name, what in (
        ("http-500", "requests answered HTTP 500"),
        ("http-503", "requests answered HTTP 503"),
        ("http-429", "requests answered HTTP 429 with Retry-After"),
        ("run-failed", "runs ending failed (server_error)"),
        ("run-expired", "runs ending expired"),
        ("run-stuck", "runs stuck in_progress until cancelled"),
    ):
        parser.add_argument(f"--{name}", type=float, default=None, help=f"share of {what}")
    parser.add_argument(
        "--stream-drop",
        type=float,
        default=0.0,
        help="share of streaming connections cut mid-stream",
    )
    parser.add_argument(
        "--stream-drop-after",
        type=int,
        default=None,
        help="cut streams after this many events (every stream, unless --stream-drop is set)",
    )
    parser.add_argument("--retry-after", type=float, default=1.0, help="Retry-After of a 429 (s)")
    parser.add_argument("--run-ttl", type=float, default=600.0, help="run expiry (s), upstream 600")
    parser.add_argument("--poll-after-ms", type=int, default=None, help="openai-poll-after-ms")
    parser.add_argument("--api-key", default=None, help="require this key (401 otherwise)")
    parser.add_argument(
        "--ignore-run-id",
        action="store_true",
        help="messages.list ignores its run_id filter (as some compatible servers do)",
    )
    parser.add_argument(
        "--require-input",
        action="store_true",
        help="responses.create refuses a request without input (as llama-stack does)",
    )
    parser.add_argument(
        "--max-response-items",
        type=int,
        default=None,
        help="a response with more input+output items cannot be saved (llama-stack: 20)",
    )
    parser.add_argument(
        "--cancel-conflict",
        action="store_true",
        help="cancelling an in-progress or ended background response is answered 409",
    )
    parser.add_argument(
        "--no-conversation-lock",
        dest="conversation_lock",
        action="store_false",
        help="concurrent responses on one conversation all run (no conversation_locked)",
    )
    parser.add_argument(
        "--first-response-reads",
        type=int,
        default=None,
        help="a conversation's first response reads only its oldest N items (llama-stack: 20)",
    )
    parser.add_argument(
        "--like-llama-stack",
        action="store_true",
        help="all of llama-stack 0.7.3's deviations: --require-input --max-response-items 20 "
        "--cancel-conflict --no-conversation-lock --first-response-reads 20",
    )
    parser.add_argument(
        "--loop",
        choices=("auto", "asyncio", "uvloop"),
        default="auto",
        help="the event loop (auto: uvloop if installed)",
    )
    parser.add_argument(
        "--http",
        choices=("auto", "h11", "httptools"),
        default="auto",
        help="the HTTP parser (auto: httptools if installed)",
    )
    parser.add_argument(
        "--run-streaming",
        choices=("on", "refused", "ignored"),
        default="on",
        help="how runs answer stream=true: events, a 400, or the run object (not streamed)",
    )
    return parser.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    """The :class:`EmulatorConfig` the command line asks for; ``ValueError`` (a
    :class:`~thread_pool.emulator.config.ConfigError` naming the field) if it cannot be had.

    Values are checked by :class:`EmulatorConfig` itself, as a runtime change through
    ``/_emulator/config`` is, not by the argument parser."""
    low, high = parse_latency(args.latency)
    fields: dict[str, Any] = spread_fault_rate(args.fault_rate)
    for name in ("http_500", "http_503", "http_429", "run_failed", "run_expired", "run_stuck"):
        if getattr(args, name) is not None:
            fields[name] = getattr(args, name)
    return EmulatorConfig(
        latency_min=low,
        latency_max=high,
        seed=args.seed,
        retry_after=args.retry_after,
        run_ttl=args.run_ttl,
        poll_after_ms=args.poll_after_ms,
        api_key=args.api_key,
        ignore_run_id=args.ignore_run_id,
        **(LLAMA_STACK if args.like_llama_stack else _deviations(args)),
        run_streaming=args.run_streaming,
        stream_drop=args.stream_drop,
        stream_drop_after=args.stream_drop_after,
        **fields,
    )


def _deviations(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "require_input": args.require_input,
        "max_response_items": args.max_response_items,
        "cancel_conflict": args.cancel_conflict,
        "conversation_lock": args.conversation_lock,
        "first_response_reads": args.first_response_reads,
    }


def main(argv: Sequence[str] | None = None) -> None:
    """Serve until interrupted."""
    args = parse_args(argv)
    try:
        config = config_from_args(args)
    except ValueError as error:
        sys.exit(f"error: {error}")
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(Emulator(config)),
            host=args.host,
            port=args.port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            backlog=4096,
            timeout_keep_alive=30,
            loop=args.loop,
            http=args.http,
        )
    )

    original_startup = server.startup

    async def startup(sockets: Any = None) -> None:
        await original_startup(sockets)
        # Report the real port (``--port 0``) once the socket is bound.
        port = args.port
        for listener in server.servers:
            for sock in listener.sockets:
                port = sock.getsockname()[1]
        print(f"emulator listening; base_url=http://{args.host}:{port}/v1", flush=True)

    server.startup = startup  # type: ignore[method-assign]
    server.run()


if __name__ == "__main__":
    main()
