"""Routes of the Assistants API family: assistants, threads, messages, runs.

Each route is served by the store method named beside it (see endpoints.py for how path
parameters, ``body`` and ``query`` reach it).
"""

from __future__ import annotations

from thread_pool.emulator.endpoints import RouteSpec
from thread_pool.emulator.service import Emulator


def routes(emulator: Emulator) -> list[RouteSpec]:
    """The Assistants API's routes (paths under ``/v1``) bound to ``emulator``'s stores."""
    assistants, threads, runs = emulator.assistants, emulator.threads, emulator.runs
    return [
        ("POST", "/assistants", assistants.create_assistant),
        ("GET", "/assistants/{assistant_id}", assistants.get_assistant),
        ("POST", "/threads", threads.create_thread),
        ("GET", "/threads/{thread_id}", threads.get_thread),
        ("POST", "/threads/{thread_id}", threads.update_thread),
        ("DELETE", "/threads/{thread_id}", threads.delete_thread),
        ("POST", "/threads/{thread_id}/messages", threads.create_message),
        ("GET", "/threads/{thread_id}/messages", threads.list_messages),
        ("GET", "/threads/{thread_id}/messages/{message_id}", threads.get_message),
        ("POST", "/threads/{thread_id}/runs", runs.create_run),
        ("GET", "/threads/{thread_id}/runs", runs.list_runs),
        ("GET", "/threads/{thread_id}/runs/{run_id}", runs.get_run),
        ("POST", "/threads/{thread_id}/runs/{run_id}/cancel", runs.cancel_run),
        (
            "POST",
            "/threads/{thread_id}/runs/{run_id}/submit_tool_outputs",
            runs.submit_tool_outputs,
        ),
    ]
