"""The Conversations + Responses API's records (response, conversation) and the upstream JSON
they render to."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from thread_pool.emulator.conversation_items import entry_of
from thread_pool.emulator.lifecycle import Timeline
from thread_pool.emulator.owners import Owner
from thread_pool.emulator.replies import Entry

Json = dict[str, Any]

#: Response statuses that hold the conversation.
RESPONSE_BLOCKING = frozenset({"queued", "in_progress"})
#: How long a background response that cannot be saved reads ``completed`` before it turns
#: ``failed`` (``max_response_items``), seconds.
UNSAVED_FLIP_S = 0.2


@dataclass
class ResponseRec:
    """One response; its status is ``timeline.status(now)`` (no expiry for responses)."""

    id: str
    created_at: float
    model: str
    background: bool
    conversation_id: str | None
    previous_response_id: str | None
    instructions: str | None
    tools: list[Any]
    metadata: dict[str, str]
    timeline: Timeline
    input_items: list[Json]
    output_items: list[Json]
    context: list[Entry]
    prompt_chars: int
    stream: bool = False
    """Created with ``stream=true`` (only such a background response can be streamed again)."""
    unsaved: str | None = None
    """Why this (background) response cannot be saved (``max_response_items``): it reads
    ``completed`` for ``UNSAVED_FLIP_S``, then ``failed``, and adds nothing to its
    conversation."""
    read_items: list[Json] = field(default_factory=list)
    """The conversation's items this response read (its model's context before its input)."""

    def status_since(self, now: float) -> tuple[str, float]:
        """Status at ``now``; a stuck response stays ``in_progress`` until cancelled."""
        status, since = self.timeline.status_since(now)
        if status == "cancelling":
            return "cancelled", since
        if status == "completed" and self.unsaved is not None and now >= since + UNSAVED_FLIP_S:
            return "failed", since + UNSAVED_FLIP_S
        return status, since

    def render(self, now: float) -> Json:
        """The upstream ``response`` object at time ``now``."""
        status, since = self.status_since(now)
        done = status == "completed"
        usage = None
        if done:
            prompt = self.prompt_chars // 4 + 1
            completion = sum(len(entry_of(i)[1]) for i in self.output_items) // 4 + 1
            usage = {
                "input_tokens": prompt,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": completion,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": prompt + completion,
            }
        return {
            "id": self.id,
            "object": "response",
            "created_at": int(self.created_at),
            "status": status,
            "background": self.background,
            "completed_at": int(since) if done else None,
            "error": (
                {
                    "code": "server_error" if self.unsaved is None else "processing_error",
                    "message": self.unsaved or "Sorry, something went wrong.",
                }
                if status == "failed"
                else None
            ),
            "incomplete_details": None,
            "instructions": self.instructions,
            "max_output_tokens": None,
            "model": self.model,
            "output": self.output_items if done else [],
            "parallel_tool_calls": True,
            "previous_response_id": self.previous_response_id,
            "conversation": {"id": self.conversation_id} if self.conversation_id else None,
            "reasoning": {"effort": None, "summary": None},
            "store": True,
            "temperature": 1.0,
            "text": {"format": {"type": "text"}},
            "tool_choice": "auto",
            "tools": self.tools,
            "top_p": 1.0,
            "truncation": "disabled",
            "usage": usage,
            "user": None,
            "metadata": self.metadata,
        }


@dataclass
class ConversationRec(Owner[ResponseRec]):
    """One conversation: its items and (``active``) the response holding it, if any."""

    OBJECT = "conversation"

    items: list[Json] = field(default_factory=list)
    context: list[Json] | None = None
    """The model's context as a server that keeps one snapshot per conversation holds it
    (``first_response_reads``): None until a response on it completed."""
    unlocked: list[ResponseRec] = field(default_factory=list)
    """Responses running on it without holding it (``conversation_lock`` off)."""
