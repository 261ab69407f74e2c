"""Routes of the Assistants API family: assistants, threads, messages, runs."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from thread_pool.emulator.service import Emulator

Json = dict[str, Any]


def _query(request: Request) -> dict[str, str]:
    return dict(request.query_params)


async def create_assistant(emulator: Emulator, request: Request, body: Json) -> Json:
    """``POST /v1/assistants``."""
    return emulator.assistants.create_assistant(body)


async def get_assistant(emulator: Emulator, request: Request, body: Json) -> Json:
    """``GET /v1/assistants/{assistant_id}``."""
    return emulator.assistants.get_assistant(request.path_params["assistant_id"])


async def create_thread(emulator: Emulator, request: Request, body: Json) -> Json:
    """``POST /v1/threads``."""
    return emulator.threads.create_thread(body)


async def get_thread(emulator: Emulator, request: Request, body: Json) -> Json:
    """``GET /v1/threads/{thread_id}``."""
    return emulator.threads.get_thread(request.path_params["thread_id"])


async def update_thread(emulator: Emulator, request: Request, body: Json) -> Json:
    """``POST /v1/threads/{thread_id}``."""
    return emulator.threads.update_thread(request.path_params["thread_id"], body)


async def delete_thread(emulator: Emulator, request: Request, body: Json) -> Json:
    """``DELETE /v1/threads/{thread_id}``."""
    return emulator.threads.delete_thread(request.path_params["thread_id"])


async def create_message(emulator: Emulator, request: Request, body: Json) -> Json:
    """``POST /v1/threads/{thread_id}/messages``."""
    return emulator.threads.create_message(request.path_params["thread_id"], body)


async def list_messages(emulator: Emulator, request: Request, body: Json) -> Json:
    """``GET /v1/threads/{thread_id}/messages``."""
    return emulator.threads.list_messages(request.path_params["thread_id"], _query(request))


async def get_message(emulator: Emulator, request: Request, body: Json) -> Json:
    """``GET /v1/threads/{thread_id}/messages/{message_id}``."""
    params = request.path_params
    return emulator.threads.get_message(params["thread_id"], params["message_id"])


async def create_run(emulator: Emulator, request: Request, body: Json) -> Json:
    """``POST /v1/threads/{thread_id}/runs``."""
    return emulator.runs.create_run(request.path_params["thread_id"], body)


async def list_runs(emulator: Emulator, request: Request, body: Json) -> Json:
    """``GET /v1/threads/{thread_id}/runs``."""
    return emulator.runs.list_runs(request.path_params["thread_id"], _query(request))


async def get_run(emulator: Emulator, request: Request, body: Json) -> Json:
    """``GET /v1/threads/{thread_id}/runs/{run_id}``."""
    params = request.path_params
    return emulator.runs.get_run(params["thread_id"], params["run_id"])


async def cancel_run(emulator: Emulator, request: Request, body: Json) -> Json:
    """``POST /v1/threads/{thread_id}/runs/{run_id}/cancel``."""
    params = request.path_params
    return emulator.runs.cancel_run(params["thread_id"], params["run_id"])


async def submit_tool_outputs(emulator: Emulator, request: Request, body: Json) -> Json:
    """``POST /v1/threads/{thread_id}/runs/{run_id}/submit_tool_outputs``."""
    params = request.path_params
    return emulator.runs.submit_tool_outputs(params["thread_id"], params["run_id"], body)


ROUTES = [
    ("POST", "/assistants", create_assistant),
    ("GET", "/assistants/{assistant_id}", get_assistant),
    ("POST", "/threads", create_thread),
    ("GET", "/threads/{thread_id}", get_thread),
    ("POST", "/threads/{thread_id}", update_thread),
    ("DELETE", "/threads/{thread_id}", delete_thread),
    ("POST", "/threads/{thread_id}/messages", create_message),
    ("GET", "/threads/{thread_id}/messages", list_messages),
    ("GET", "/threads/{thread_id}/messages/{message_id}", get_message),
    ("POST", "/threads/{thread_id}/runs", create_run),
    ("GET", "/threads/{thread_id}/runs", list_runs),
    ("GET", "/threads/{thread_id}/runs/{run_id}", get_run),
    ("POST", "/threads/{thread_id}/runs/{run_id}/cancel", cancel_run),
    ("POST", "/threads/{thread_id}/runs/{run_id}/submit_tool_outputs", submit_tool_outputs),
]
