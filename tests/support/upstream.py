"""The upstream as the tests use it: the emulator, assistants on it, backends of it, tool
declarations, and what it counted."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, overload

import openai

from thread_pool import (
    AsyncBackend,
    Backend,
    RetryPolicy,
    build_backend,
)

if TYPE_CHECKING:
    from thread_pool.emulator import EmulatorServer

# Tool declarations in the two APIs' shapes; a message "call:ping()" makes the emulator call it.
ASSISTANT_TOOLS: list[Any] = [
    {"type": "function", "function": {"name": "ping", "parameters": {"type": "object"}}}
]
RESPONSE_TOOLS: list[Any] = [{"type": "function", "name": "ping", "parameters": {"type": "object"}}]

# The turn tests' retries: quick, and enough of them to ride over a storm of faults.
FAST_RETRY = RetryPolicy(attempts=8, deadline=20, base_delay=0.01, max_delay=0.1)


def tools_for(kind: str) -> list[Any]:
    """The tool declarations of backend ``kind``'s API."""
    return ASSISTANT_TOOLS if kind == "assistants" else RESPONSE_TOOLS


def hooked_client(server: EmulatorServer, **hooks: list[Any]) -> openai.AsyncOpenAI:
    """An asyncio SDK client of the emulator whose HTTP client runs httpx event ``hooks``
    (``request=[...]``, ``response=[...]``): a test's way to act at a request's exact moment."""
    return openai.AsyncOpenAI(
        base_url=server.base_url,
        api_key="unused",
        max_retries=0,
        http_client=openai.DefaultAsyncHttpxClient(event_hooks=hooks),
    )


def create_assistant(base_url: str, api_key: str = "unused") -> str:
    """Create an assistant on the emulator at ``base_url`` (a blocking client: works from any
    test, and from a process that has no emulator object)."""
    with (
        openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0) as client,
        warnings.catch_warnings(),
    ):
        # The Assistants API is deprecated upstream; this test set-up uses it on purpose.
        warnings.simplefilter("ignore", DeprecationWarning)
        return client.beta.assistants.create(model="emulated").id


def make_assistant(server: EmulatorServer) -> str:
    """Create an assistant on the emulator."""
    return create_assistant(server.base_url, server.api_key or "unused")


@overload
def backend(
    kind: str, client: openai.AsyncOpenAI, assistant_id: str | None = None, **options: Any
) -> AsyncBackend: ...


@overload
def backend(
    kind: str, client: openai.OpenAI, assistant_id: str | None = None, **options: Any
) -> Backend: ...


def backend(
    kind: str,
    client: openai.OpenAI | openai.AsyncOpenAI,
    assistant_id: str | None = None,
    **options: Any,
) -> Backend | AsyncBackend:
    """A backend of the emulator, asyncio or blocking as ``client`` is: ``assistants`` (on
    ``assistant_id``), ``conversations``, or ``background`` (Conversations with background
    responses); ``options`` (retry, settle_wait, ...) go to the backend as they are."""
    if kind == "assistants":
        return build_backend("assistants", client, assistant_id=assistant_id, **options)
    background = kind == "background"
    return build_backend(
        "conversations", client, model="emulated", background=background, **options
    )


@overload
def make_backend(kind: str, client: openai.AsyncOpenAI, server: EmulatorServer) -> AsyncBackend: ...


@overload
def make_backend(kind: str, client: openai.OpenAI, server: EmulatorServer) -> Backend: ...


def make_backend(
    kind: str, client: openai.OpenAI | openai.AsyncOpenAI, server: EmulatorServer
) -> Backend | AsyncBackend:
    """The turn tests' backend of kind ``kind`` (an assistant of its own for ``assistants``),
    with ``FAST_RETRY`` and a short settling wait."""
    assistant_id = make_assistant(server) if kind == "assistants" else None
    return backend(kind, client, assistant_id, retry=FAST_RETRY, settle_wait=0.2)


def lock_errors(server: EmulatorServer) -> int:
    """How many "thread busy" 400s the emulator answered."""
    return int(server.admin.stats()["lock_errors"]["total"])


def requests_made(server: EmulatorServer) -> int:
    """Every /v1 request the emulator has answered."""
    return int(server.admin.stats()["requests_total"])
