"""A small deterministic model behind an OpenAI chat-completions endpoint, for the interop tier:
a third-party Responses/Conversations server (llama-stack) calls it as its inference provider,
and the tests read back exactly what it was given.

``python -m interop.model_stub --port 8390 [--latency 0.05]``

- ``POST /v1/chat/completions`` (``stream`` or not): the reply to the request's messages is
  ``[stub] N messages; last: <the last user message, up to 60 characters>`` — so a test can
  tell how much context reached the model. When ``tools`` are declared and the last message is a
  user message containing ``call:<name>()``, it answers one function call instead; after a tool
  output (a ``tool`` message last) it replies ``[stub] N messages; tool output: <output>``.
- ``GET /v1/models``: the one model, ``stub``.
- ``GET /_stub/requests``: every request's messages, oldest first; ``POST /_stub/reset`` forgets
  them; ``POST /_stub/latency`` (``{"seconds": 0.5}``) changes the latency.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

MODEL = "stub"
_CALL = re.compile(r"call:([A-Za-z0-9_-]{1,64})\(\)")


def text_of(message: dict[str, Any]) -> str:
    """A chat message's text (a string, or text parts joined)."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def answer(messages: list[dict[str, Any]], tools: list[Any]) -> dict[str, Any]:
    """The assistant message the stub gives to ``messages``."""
    count = len(messages)
    last = messages[-1] if messages else {}
    declared = {t.get("function", {}).get("name") for t in tools if isinstance(t, dict)}
    if last.get("role") == "tool":
        return {
            "role": "assistant",
            "content": f"[stub] {count} messages; tool output: {text_of(last)[:60]}",
        }
    if last.get("role") == "user":
        match = _CALL.search(text_of(last))
        if match and match.group(1) in declared:
            call = {
                "id": f"call_{uuid.uuid4().hex[:16]}",
                "type": "function",
                "function": {"name": match.group(1), "arguments": "{}"},
            }
            return {"role": "assistant", "content": None, "tool_calls": [call]}
    users = [m for m in messages if m.get("role") == "user"]
    tail = text_of(users[-1])[:60] if users else ""
    return {"role": "assistant", "content": f"[stub] {count} messages; last: {tail}"}


class Stub:
    """The stub's state: what it was asked, and its latency."""

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.requests: list[list[dict[str, Any]]] = []

    async def completions(self, request: Request) -> Any:
        body = await request.json()
        messages = list(body.get("messages") or [])
        self.requests.append(messages)
        reply = answer(messages, list(body.get("tools") or []))
        await asyncio.sleep(self.latency)
        ident, created = f"chatcmpl-{uuid.uuid4().hex[:20]}", int(time.time())
        finish = "tool_calls" if reply.get("tool_calls") else "stop"
        usage = {
            "prompt_tokens": 10 * len(messages),
            "completion_tokens": 10,
            "total_tokens": 10 * len(messages) + 10,
        }
        if not body.get("stream"):
            return JSONResponse(
                {
                    "id": ident,
                    "object": "chat.completion",
                    "created": created,
                    "model": MODEL,
                    "choices": [{"index": 0, "message": reply, "finish_reason": finish}],
                    "usage": usage,
                }
            )

        def chunk(delta: dict[str, Any], reason: str | None) -> str:
            data = {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": created,
                "model": MODEL,
                "choices": [{"index": 0, "delta": delta, "finish_reason": reason}],
            }
            return f"data: {json.dumps(data)}\n\n"

        async def events() -> AsyncIterator[str]:
            yield chunk({"role": "assistant", "content": ""}, None)
            if reply.get("tool_calls"):
                calls = [{"index": i, **c} for i, c in enumerate(reply["tool_calls"])]
                yield chunk({"tool_calls": calls}, None)
            else:
                text = reply["content"]
                for start in range(0, len(text), 16):
                    yield chunk({"content": text[start : start + 16]}, None)
            yield chunk({}, finish)
            final = {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": created,
                "model": MODEL,
                "choices": [],
                "usage": usage,
            }
            yield f"data: {json.dumps(final)}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    async def models(self, request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "object": "list",
                "data": [{"id": MODEL, "object": "model", "created": 0, "owned_by": "interop"}],
            }
        )

    async def seen(self, request: Request) -> JSONResponse:
        return JSONResponse(self.requests)

    async def reset(self, request: Request) -> JSONResponse:
        self.requests.clear()
        return JSONResponse({"ok": True})

    async def set_latency(self, request: Request) -> JSONResponse:
        self.latency = float((await request.json())["seconds"])
        return JSONResponse({"latency": self.latency})


def app(latency: float) -> Starlette:
    stub = Stub(latency)
    return Starlette(
        routes=[
            Route("/v1/chat/completions", stub.completions, methods=["POST"]),
            Route("/v1/models", stub.models, methods=["GET"]),
            Route("/_stub/requests", stub.seen, methods=["GET"]),
            Route("/_stub/reset", stub.reset, methods=["POST"]),
            Route("/_stub/latency", stub.set_latency, methods=["POST"]),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m interop.model_stub")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8390)
    parser.add_argument("--latency", type=float, default=0.02, help="seconds per completion")
    args = parser.parse_args()
    uvicorn.run(app(args.latency), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
