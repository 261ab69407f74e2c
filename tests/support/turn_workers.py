"""Worker processes for the multi-process turn tests: each runs turns through its own pool and
records what happened in a Redis list of the test's own prefix."""

from __future__ import annotations

import os
import time
from typing import Any

import openai

from thread_pool import (
    AssistantsBackend,
    Backend,
    ConversationsBackend,
    RetryPolicy,
    ThreadPool,
    ThreadPoolError,
    ToolCall,
)
from thread_pool._store.clients import connect

TOOLS = {
    "assistants": [
        {"type": "function", "function": {"name": "ping", "parameters": {"type": "object"}}}
    ],
    "conversations": [{"type": "function", "name": "ping", "parameters": {"type": "object"}}],
}


def results_key(prefix: str) -> str:
    """List of ``ok <fence> <thread>`` / ``err <ErrorType>`` lines, one per turn."""
    return f"{prefix}:check:turns"


def backend(kind: str, base_url: str, api_key: str, assistant_id: str) -> Backend:
    """A blocking backend of the emulator: ``assistants``, ``conversations`` or ``background``
    (Conversations with background responses), with quick retries and settling."""
    client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0)
    retry = RetryPolicy(base_delay=0.02, max_delay=0.5)
    if kind == "assistants":
        return AssistantsBackend(client, assistant_id=assistant_id, retry=retry, settle_wait=0.2)
    return ConversationsBackend(
        client, model="emulated", background=kind == "background", retry=retry, settle_wait=0.2
    )


def run_turns(
    kind: str,
    base_url: str,
    api_key: str,
    assistant_id: str,
    redis_url: str,
    prefix: str,
    key: str,
    iterations: int,
    settings: dict[str, Any],
) -> None:
    """``iterations`` turns back to back on pool ``key``, no delays."""
    log = connect(redis_url)
    made = backend(kind, base_url, api_key, assistant_id)
    with ThreadPool(backend=made, redis_url=redis_url, key_prefix=prefix, **settings) as pool:
        for i in range(iterations):
            try:
                turn = pool.run(key, f"worker {os.getpid()} turn {i}")
            except ThreadPoolError as exc:
                log.rpush(results_key(prefix), f"err {type(exc).__name__}")
            else:
                log.rpush(results_key(prefix), f"ok {turn.fence} {turn.thread_id}")


def stall_in_tool_call(
    kind: str,
    base_url: str,
    api_key: str,
    assistant_id: str,
    redis_url: str,
    prefix: str,
    key: str,
    settings: dict[str, Any],
    ready: str,
    stall: float,
) -> None:
    """One turn whose tool call says ``ready`` (``thread fence``), then stalls ``stall`` seconds
    (the test kills or pauses this process meanwhile); the outcome goes to the results list."""
    log = connect(redis_url)
    made = backend(kind, base_url, api_key, assistant_id)
    with ThreadPool(backend=made, redis_url=redis_url, key_prefix=prefix, **settings) as pool:
        try:
            with pool.lease(key) as lease:

                def handler(call: ToolCall) -> str:
                    log.set(ready, f"{lease.thread_id} {lease.fence}")
                    time.sleep(stall)
                    return "late answer"

                lease.run("call:ping()", tool_handler=handler, tools=TOOLS[kind])
        except ThreadPoolError as exc:
            log.rpush(results_key(prefix), f"err {type(exc).__name__} {time.time()}")
        else:
            log.rpush(results_key(prefix), "ok")
