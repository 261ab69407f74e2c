"""Shared pieces of the turn tests: assistants on the emulator, tool definitions, checks."""

from __future__ import annotations

import warnings
from typing import Any

import openai

from thread_pool.emulator import EmulatorServer

# Tool declarations in the two APIs' shapes; a message "call:ping()" makes the emulator call it.
ASSISTANT_TOOLS: list[Any] = [
    {"type": "function", "function": {"name": "ping", "parameters": {"type": "object"}}}
]
RESPONSE_TOOLS: list[Any] = [{"type": "function", "name": "ping", "parameters": {"type": "object"}}]


def hooked_client(server: EmulatorServer, **hooks: list[Any]) -> openai.AsyncOpenAI:
    """An asyncio SDK client of the emulator whose HTTP client runs httpx event ``hooks``
    (``request=[...]``, ``response=[...]``): a test's way to act at a request's exact moment."""
    return openai.AsyncOpenAI(
        base_url=server.base_url,
        api_key="unused",
        max_retries=0,
        http_client=openai.DefaultAsyncHttpxClient(event_hooks=hooks),
    )


def make_assistant(server: EmulatorServer) -> str:
    """Create an assistant on the emulator (a blocking client: works from any test)."""
    with (
        openai.OpenAI(
            base_url=server.base_url, api_key=server.api_key or "unused", max_retries=0
        ) as client,
        warnings.catch_warnings(),
    ):
        # The Assistants API is deprecated upstream; this test set-up uses it on purpose.
        warnings.simplefilter("ignore", DeprecationWarning)
        return client.beta.assistants.create(model="emulated").id


def lock_errors(server: EmulatorServer) -> int:
    """How many "thread busy" 400s the emulator answered."""
    return int(server.admin.stats()["lock_errors"]["total"])


def requests_made(server: EmulatorServer) -> int:
    """Every /v1 request the emulator has answered."""
    return int(server.admin.stats()["requests_total"])
