"""A FastAPI app that streams a pooled turn to its client as server-sent events.

    .venv/bin/python examples/fastapi_stream.py [--port 8000] [--backend conversations]
    curl -N 'http://127.0.0.1:8000/chat/doc-42?message=hello'

Each request leases a thread of the key's pool for one streamed turn (``pool.stream``): the
reply's text arrives as ``delta`` events, tool calls as ``tool`` events, and the end as a
``done`` event with the turn's thread and run. A client that goes away mid-stream stops the turn:
the run is cancelled and the thread settled before anyone else gets it.

The pool is made in the app's lifespan, on the event loop that serves the app: an
``AsyncThreadPool`` (like its Redis connections and its SDK client) belongs to one event loop,
and refuses another with ``WrongEventLoop``. Made at import, it would be bound to whatever loop
first used it.

Without ``OPENAI_BASE_URL`` the app talks to the emulator, started in-process; Redis is
``THREAD_POOL_REDIS_URL`` (default 127.0.0.1:6379). Needs the ``examples`` extra (fastapi,
uvicorn).
"""

from __future__ import annotations

import argparse
import json
import os
import warnings
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import openai
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse

from thread_pool import (
    AsyncBackend,
    AsyncThreadPool,
    TextDelta,
    ThreadPoolError,
    ToolCallEvent,
    TurnDone,
    build_backend,
)

BackendFactory = Callable[[openai.AsyncOpenAI], AsyncBackend]


def sse(event: str, data: dict[str, Any]) -> str:
    """One server-sent event."""
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


def create_app(
    make_backend: BackendFactory, base_url: str, api_key: str, **pool_options: Any
) -> FastAPI:
    """The app: ``GET /chat/{key}?message=...`` streams one turn on pool ``key``. The SDK
    client (of the upstream at ``base_url``), the backend ``make_backend(client)`` and the pool
    are made in the lifespan: they belong to the app's event loop. ``pool_options`` go to
    ``AsyncThreadPool`` (``redis_url``, ``key_prefix``, ...)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with (
            openai.AsyncOpenAI(base_url=base_url, api_key=api_key) as client,
            AsyncThreadPool(backend=make_backend(client), **pool_options) as pool,
        ):
            app.state.pool = pool
            yield

    app = FastAPI(lifespan=lifespan)

    @app.get("/chat/{key}")
    async def chat(key: str, message: str, request: Request) -> StreamingResponse:
        pool: AsyncThreadPool = request.app.state.pool

        async def events() -> AsyncIterator[str]:
            try:
                async with pool.stream(key, message) as stream:
                    async for event in stream:
                        if isinstance(event, TextDelta):
                            yield sse("delta", {"text": event.text})
                        elif isinstance(event, ToolCallEvent):
                            yield sse("tool", {"name": event.call.name})
                        elif isinstance(event, TurnDone):
                            turn = event.turn
                            yield sse("done", {"thread": turn.thread_id, "run": turn.run_id})
            except ThreadPoolError as exc:
                # The response has started: a failure can only be told as an event.
                yield sse("error", {"type": type(exc).__name__, "message": str(exc)})

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


def backend_factory(kind: str, base_url: str, api_key: str) -> BackendFactory:
    """Backends of ``kind`` (an assistant is made first for the Assistants backend)."""
    if kind == "conversations":
        model = os.environ.get("MODEL", "emulated")
        return lambda client: build_backend("conversations", client, model=model)
    with openai.OpenAI(base_url=base_url, api_key=api_key) as sync, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assistant_id = sync.beta.assistants.create(model="emulated").id
    return lambda client: build_backend("assistants", client, assistant_id=assistant_id)


def main() -> None:
    import uvicorn

    from thread_pool.emulator import start_emulator

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--backend", choices=["assistants", "conversations"], default="conversations"
    )
    parser.add_argument("--latency", default="0.5-1.5", help="emulated turn time, seconds")
    args = parser.parse_args()
    base_url = os.environ.get("OPENAI_BASE_URL")
    server = None
    if base_url is None:
        server = start_emulator(latency=args.latency)
        base_url = server.base_url
    try:
        api_key = os.environ.get("OPENAI_API_KEY", "unused")
        app = create_app(backend_factory(args.backend, base_url, api_key), base_url, api_key)
        print(f"try: curl -N 'http://{args.host}:{args.port}/chat/doc-42?message=hello'")
        uvicorn.run(app, host=args.host, port=args.port)
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
