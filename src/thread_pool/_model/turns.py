"""What a turn gives: the ``Turn`` result, its tool calls, and what is read off upstream's run and
response objects. No I/O here; the backends use these."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from thread_pool.errors import InvalidArgument, TurnFailed

FENCE_KEY = "tp_fence"
"""Metadata key stamped on every write of a turn: the lease's fence, so writes can be ordered."""
POOL_KEY = "tp_pool"
"""Metadata key naming the pool on the threads (conversations) it creates."""
TURN_KEY = "tp_turn"
"""Metadata key carrying a turn's random id, to recognise its run after an ambiguous failure."""

RESERVED_KEYS = (FENCE_KEY, POOL_KEY, TURN_KEY)


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A function call the model asked for; ``tool_handler`` returns its output."""

    id: str
    name: str
    arguments: str
    """The arguments as the model wrote them (a JSON object, as text)."""
    output: str | None = None
    """What ``tool_handler`` answered, as sent upstream (None until it was answered: the call a
    handler receives has none; the calls a ``Turn`` lists have theirs)."""

    def args(self) -> Any:
        """The arguments decoded from JSON (``{}`` when empty)."""
        return json.loads(self.arguments) if self.arguments.strip() else {}


@dataclass(frozen=True, slots=True)
class Turn:
    """The outcome of one completed turn on a leased thread."""

    reply: str
    """The assistant's reply text."""
    thread_id: str
    """The upstream thread (Assistants) or conversation (Conversations) it ran on."""
    run_id: str
    """The run (Assistants) or the last response (Conversations) that produced the reply."""
    status: str
    """Upstream's final status (``completed``)."""
    fence: int
    """The lease's fence, as stamped in the turn's write metadata."""
    usage: dict[str, int] = field(default_factory=dict)
    """Token counts as upstream reported them (summed over the responses of a tool loop)."""
    request_id: str | None = None
    """Upstream's id of the request that started the turn."""
    tool_calls: tuple[ToolCall, ...] = ()
    """The tool calls answered during the turn, in order, each with its ``output``. The pool's
    log keeps them too, so sibling threads receive them (see ``merge_tools``)."""


def usage_of(obj: Any) -> dict[str, int]:
    """Token counts of a run or response object (empty if it has none)."""
    usage = getattr(obj, "usage", None)
    if usage is None:
        return {}
    dumped = usage.model_dump() if hasattr(usage, "model_dump") else dict(usage)
    return {k: v for k, v in dumped.items() if isinstance(v, int) and not isinstance(v, bool)}


def add_usage(total: dict[str, int], more: Mapping[str, int]) -> dict[str, int]:
    """``total`` plus ``more``, key by key."""
    out = dict(total)
    for k, v in more.items():
        out[k] = out.get(k, 0) + v
    return out


def error_of(obj: Any) -> dict[str, str] | None:
    """Upstream's ``last_error`` (run) or ``error`` / ``incomplete_details`` (response)."""
    for name in ("last_error", "error", "incomplete_details"):
        value = getattr(obj, name, None)
        if value is not None:
            dumped = value.model_dump() if hasattr(value, "model_dump") else dict(value)
            return {k: str(v) for k, v in dumped.items() if v is not None}
    return None


def check_turn_time(started: float, limit: float, thread_id: str, run_id: str) -> None:
    """Raise ``TurnFailed`` (status ``timed_out``) once a turn has waited ``limit`` seconds for
    its run: a run stuck upstream must not hold a thread (and renew its lease) forever. The run
    is still active, so the lease's release sends the thread to be settled (the run cancelled)."""
    if time.monotonic() - started > limit:
        raise TurnFailed(
            f"run {run_id} on {thread_id} did not end within {limit:g} s (turn_timeout); "
            "the thread is settled (the run cancelled) before anyone uses it again",
            status="timed_out",
            thread_id=thread_id,
            run_id=run_id,
        )


def reply_of(response: Any) -> tuple[str, str]:
    """The reply text and id of a completed Responses API response (``lease.record_response``),
    else ``InvalidArgument``."""
    text = getattr(response, "output_text", None)
    response_id = getattr(response, "id", None)
    if not isinstance(text, str) or not isinstance(response_id, str):
        raise InvalidArgument(
            f"record_response takes a Responses API Response (with id and output_text), not "
            f"{type(response).__name__}; use record(user=..., reply=..., run_id=...) instead"
        )
    status = getattr(response, "status", None)
    if status not in (None, "completed"):
        raise InvalidArgument(
            f"response {response_id} ended {status}: only a completed one is recorded"
        )
    if not text:
        raise InvalidArgument(
            f"response {response_id} has no reply text (it asks for tool calls?): record the "
            "response that ended the turn"
        )
    return text, response_id
