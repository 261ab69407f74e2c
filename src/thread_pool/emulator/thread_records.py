"""The Assistants API's records (message, run, thread) and the upstream JSON they render to."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from thread_pool.emulator.core import new_id
from thread_pool.emulator.lifecycle import TERMINAL, Timeline
from thread_pool.emulator.owners import Owner

Json = dict[str, Any]


@dataclass
class MessageRec:
    """One thread message."""

    id: str
    thread_id: str
    role: str
    text: str
    created_at: float
    metadata: dict[str, str]
    run_id: str | None = None
    assistant_id: str | None = None

    def render(self) -> Json:
        """The upstream ``thread.message`` object."""
        return {
            "id": self.id,
            "object": "thread.message",
            "created_at": int(self.created_at),
            "assistant_id": self.assistant_id,
            "thread_id": self.thread_id,
            "run_id": self.run_id,
            "role": self.role,
            "content": [{"type": "text", "text": {"value": self.text, "annotations": []}}],
            "attachments": [],
            "metadata": self.metadata,
            "status": "completed",
            "completed_at": int(self.created_at),
            "incomplete_at": None,
            "incomplete_details": None,
        }


@dataclass
class RunRec:
    """One run; its status is ``timeline.status(now)``."""

    id: str
    thread_id: str
    assistant_id: str
    created_at: float
    model: str
    instructions: str
    tools: list[Any]
    metadata: dict[str, str]
    timeline: Timeline
    answered_id: str | None
    entries: list[tuple[str, str]]
    reply: str
    tool_calls: list[Json] = field(default_factory=list)
    prompt_chars: int = 0
    reply_id: str = field(default_factory=lambda: new_id("msg"))
    """The id of the reply message, known from the start so a stream can announce it."""
    reply_step_id: str = field(default_factory=lambda: new_id("step"))
    tool_step_id: str = field(default_factory=lambda: new_id("step"))
    tool_outputs: dict[str, str] = field(default_factory=dict)
    """The outputs submitted for :attr:`tool_calls`, by call id."""

    def render(self, now: float, timeline: Timeline | None = None) -> Json:
        """The upstream ``thread.run`` object at time ``now`` (on ``timeline``, by default
        the run's current one; a stream renders an earlier leg's on its own)."""
        timeline = timeline or self.timeline
        status, since = timeline.status_since(now)
        started = timeline.queued_until if status != "queued" else None
        usage = None
        if status == "completed":
            prompt = self.prompt_chars // 4 + 1
            completion = len(self.reply) // 4 + 1
            usage = {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            }
        last_error = None
        if status == "failed":
            last_error = {
                "code": "server_error",
                "message": "Sorry, something went wrong.",
            }
        return {
            "id": self.id,
            "object": "thread.run",
            "created_at": int(self.created_at),
            "assistant_id": self.assistant_id,
            "thread_id": self.thread_id,
            "status": status,
            "started_at": int(started) if started is not None else None,
            "expires_at": None if status in TERMINAL else int(timeline.expires),
            "cancelled_at": int(since) if status == "cancelled" else None,
            "failed_at": int(since) if status == "failed" else None,
            "completed_at": int(since) if status == "completed" else None,
            "required_action": (
                {
                    "type": "submit_tool_outputs",
                    "submit_tool_outputs": {"tool_calls": self.tool_calls},
                }
                if status == "requires_action"
                else None
            ),
            "last_error": last_error,
            "model": self.model,
            "instructions": self.instructions,
            "tools": self.tools,
            "metadata": self.metadata,
            "incomplete_details": None,
            "usage": usage,
            "temperature": 1.0,
            "top_p": 1.0,
            "max_prompt_tokens": None,
            "max_completion_tokens": None,
            "truncation_strategy": {"type": "auto", "last_messages": None},
            "response_format": "auto",
            "tool_choice": "auto",
            "parallel_tool_calls": True,
        }


@dataclass
class ThreadRec(Owner[RunRec]):
    """One thread: its messages, its runs, and (``active``) the run holding it, if any."""

    OBJECT = "thread"

    messages: list[MessageRec] = field(default_factory=list)
    runs: list[RunRec] = field(default_factory=list)

    def render(self) -> Json:
        """The upstream ``thread`` object."""
        return {**super().render(), "tool_resources": {}}
