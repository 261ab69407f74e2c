"""Run OpenAI Agents SDK agents on pooled conversations (``pip install
'openai-thread-pool[agents]'``).

``run_agent(pool, key, agent, input)`` leases a conversation of pool ``key`` with keepalive (the
lease is renewed however long the agent runs, and a lost lease is reported), hands the agent the
conversation (``conversation_id``) with what it is missing from the pool's log in front of the
input, and records the run (its user input, function calls and final reply) in the log, so every
other conversation of the pool receives it. The pool's backend must be a Conversations backend;
point the SDK at the same upstream (``set_default_openai_client``, or the agent's own model).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, cast

try:
    import agents as _sdk  # noqa: F401  (the SDK is an optional extra)
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        "thread_pool.integrations.agents needs the OpenAI Agents SDK: "
        "pip install 'openai-thread-pool[agents]'"
    ) from exc

from agents import (
    Agent,
    ItemHelpers,
    RawResponsesStreamEvent,
    Runner,
    RunResult,
    RunResultStreaming,
    StreamEvent,
    TResponseInputItem,
)
from agents.items import MessageOutputItem, RunItem, ToolCallItem, ToolCallOutputItem

from thread_pool import AsyncLease, AsyncThreadPool, InvalidArgument, ThreadPool, ToolCall
from thread_pool._acompat import shield

__all__ = ["AgentStream", "run_agent", "run_agent_streamed", "run_agent_sync"]


async def run_agent(
    pool: AsyncThreadPool,
    key: str,
    agent: Agent[Any],
    input: str | list[TResponseInputItem],
    *,
    timeout: float | None = None,
    **kwargs: Any,
) -> RunResult:
    """Run ``agent`` on ``input`` (``Runner.run``) on a conversation of pool ``key``, leased with
    keepalive for the run, with the conversation's missing context merged in, and the run
    recorded in the pool's log. ``timeout`` bounds the wait for a free conversation; ``kwargs``
    go to ``Runner.run`` (``context``, ``max_turns``, ``run_config``...). Returns the SDK's
    ``RunResult``. Raises ``LeaseLost`` if the lease was lost during the run (the run's calls may
    have overlapped another holder's; nothing is recorded)."""
    _check_backend(pool.backend)
    async with pool.lease(key, timeout, keepalive=True) as lease:
        items = _merged(await lease.pending_context(), input)
        try:
            result = await Runner.run(agent, items, conversation_id=lease.thread_id, **kwargs)
        except BaseException:
            # The run stopped part-way (an error, max_turns, a cancellation): its conversation
            # may hold a function call without its output. The release settles it first.
            lease.dirty = True
            raise
        await lease.record(**recorded(input, result))
    return result


def run_agent_sync(
    pool: ThreadPool,
    key: str,
    agent: Agent[Any],
    input: str | list[TResponseInputItem],
    *,
    timeout: float | None = None,
    **kwargs: Any,
) -> RunResult:
    """``run_agent`` for the blocking ``ThreadPool`` (``Runner.run_sync``; not from inside a
    running event loop)."""
    _check_backend(pool.backend)
    with pool.lease(key, timeout, keepalive=True) as lease:
        items = _merged(lease.pending_context(), input)
        try:
            result = Runner.run_sync(agent, items, conversation_id=lease.thread_id, **kwargs)
        except BaseException:
            lease.dirty = True  # as in run_agent: the release settles the conversation first
            raise
        lease.record(**recorded(input, result))
    return result


class AgentStream:
    """A streamed agent run on a leased conversation (``run_agent_streamed``): iterate it for the
    SDK's stream events (``async for event in stream``); ``result`` is the SDK's
    ``RunResultStreaming``. ``completed`` is true once every event was read and the run was
    recorded."""

    def __init__(self, result: RunResultStreaming) -> None:
        self.result = result
        self.completed = False
        self.finished = False
        self.response_id: str | None = None
        """The response now streaming (from its ``response.created`` event), until it ends."""

    async def __aiter__(self) -> AsyncIterator[StreamEvent]:
        async for event in self.result.stream_events():
            if isinstance(event, RawResponsesStreamEvent):
                kind = getattr(event.data, "type", "")
                if kind == "response.created":
                    self.response_id = getattr(getattr(event.data, "response", None), "id", None)
                elif kind in ("response.completed", "response.failed", "response.incomplete"):
                    self.response_id = None
            yield event
        self.finished = True


@asynccontextmanager
async def run_agent_streamed(
    pool: AsyncThreadPool,
    key: str,
    agent: Agent[Any],
    input: str | list[TResponseInputItem],
    *,
    timeout: float | None = None,
    **kwargs: Any,
) -> AsyncIterator[AgentStream]:
    """``run_agent`` streamed (``Runner.run_streamed``): the conversation is leased with keepalive
    for the ``async with`` block, however slowly its events are read, and the run is recorded
    once every event was read. Leaving the block before that (``break``, an exception, a
    cancelled task) cancels the run and settles the conversation (the response in flight ended,
    an unanswered function call closed) before it is released; nothing is recorded then.

    ``async with run_agent_streamed(pool, key, agent, "hi") as stream:
    async for event in stream: ...``"""
    backend = _check_backend(pool.backend)
    async with pool.lease(key, timeout, keepalive=True) as lease:
        items = _merged(await lease.pending_context(), input)
        stream = AgentStream(
            Runner.run_streamed(agent, items, conversation_id=lease.thread_id, **kwargs)
        )
        try:
            yield stream
        finally:
            if not stream.finished:
                await shield(_stop(stream, backend, key, lease))
        if stream.finished:
            await lease.record(**recorded(input, stream.result))
            stream.completed = True


async def _stop(stream: AgentStream, backend: Any, key: str, lease: AsyncLease) -> None:
    """End an agent run left before its end, so the conversation goes back quiet: cancel the
    SDK's run, then let the backend settle the conversation (wait for or cancel the response in
    flight, answer a function call left open)."""
    stream.result.cancel()
    with contextlib.suppress(Exception):
        async for _ in stream.result.stream_events():
            pass
    in_flight = f"{lease.fence}|{stream.response_id}" if stream.response_id else None
    try:
        await backend.settle_thread(key, lease.thread_id, in_flight)
    except Exception:
        lease.dirty = True  # the release sends it to be settled again


def recorded(
    input: str | list[TResponseInputItem], result: RunResult | RunResultStreaming
) -> dict[str, Any]:
    """What the pool's log keeps of a run (``lease.record``'s arguments): the user's text of
    ``input``, the function calls the run answered, its final reply; idempotent by the run's
    last response id."""
    run_id = result.last_response_id or ""
    return {
        "user": _user_text(input),
        "reply": _reply_text(result),
        "run_id": run_id,
        "tool_calls": _tool_calls(result.new_items),
    }


def _check_backend(backend: object) -> Any:
    # Imported here: the backends import the SDK lazily, and only their names matter.
    from thread_pool import AsyncConversationsBackend, ConversationsBackend

    if not isinstance(backend, AsyncConversationsBackend | ConversationsBackend):
        raise InvalidArgument(
            "run_agent needs a pool whose backend is a ConversationsBackend (agents run on "
            f"conversations), not {type(backend).__name__}"
        )
    return backend


def _merged(
    context: list[dict[str, Any]], input: str | list[TResponseInputItem]
) -> list[TResponseInputItem]:
    """The conversation's missing context (conversation items), then the run's own input."""
    if isinstance(input, str):
        own: list[TResponseInputItem] = [{"role": "user", "content": input}]
    elif isinstance(input, list):
        own = list(input)
    else:
        raise InvalidArgument(f"input must be a string or a list of input items, not {input!r:.80}")
    # The items are shaped by the backend as upstream takes them (messages, function calls
    # and their outputs); the SDK's input union cannot name that from a dict.
    return [*cast("list[TResponseInputItem]", context), *own]


def _user_text(input: str | list[TResponseInputItem]) -> str:
    """The text of the user messages in ``input`` (what the log keeps as the turn's message)."""
    if isinstance(input, str):
        return input
    parts: list[str] = []
    for item in input:
        if not isinstance(item, dict) or item.get("role") != "user":
            continue
        content = item.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts += [str(p.get("text", "")) for p in content if isinstance(p, dict)]
    text = "\n".join(p for p in parts if p)
    return text or "[input without user text]"


def _reply_text(result: RunResult | RunResultStreaming) -> str:
    """The final reply as the model wrote it: the text of the run's last message."""
    messages = [i for i in result.new_items if isinstance(i, MessageOutputItem)]
    text = ItemHelpers.text_message_output(messages[-1]) if messages else ""
    return text or str(result.final_output)


def _tool_calls(items: Sequence[RunItem]) -> list[ToolCall]:
    """The function calls of a run with their outputs, in order (unanswered ones left out)."""
    outputs: dict[str, str] = {}
    for item in items:
        if isinstance(item, ToolCallOutputItem):
            raw = item.raw_item
            call_id = raw.get("call_id") if isinstance(raw, dict) else getattr(raw, "call_id", None)
            if isinstance(call_id, str):
                outputs[call_id] = str(item.output)
    calls: list[ToolCall] = []
    for item in items:
        raw_call = item.raw_item if isinstance(item, ToolCallItem) else None
        if getattr(raw_call, "type", None) != "function_call":
            continue
        call_id = getattr(raw_call, "call_id", "")
        if call_id in outputs:
            calls.append(
                ToolCall(
                    call_id,
                    getattr(raw_call, "name", ""),
                    getattr(raw_call, "arguments", ""),
                    outputs[call_id],
                )
            )
    return calls
