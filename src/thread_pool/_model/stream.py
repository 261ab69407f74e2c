"""The events of a streamed turn (``pool.stream`` / ``lease.stream``). No I/O here."""

from __future__ import annotations

from dataclasses import dataclass

from thread_pool._model.turns import ToolCall, Turn


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of the reply as upstream streamed it; a turn's deltas join to its reply."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolCallEvent:
    """A tool call the model asked for, answered by ``tool_handler`` (``call.output`` is what was
    sent upstream); the turn's streaming resumes after it."""

    call: ToolCall


@dataclass(frozen=True, slots=True)
class TurnDone:
    """The last event of a completed turn: the same ``Turn`` that ``run`` returns. The turn is in
    the pool's log by the time this event arrives."""

    turn: Turn


StreamEvent = TextDelta | ToolCallEvent | TurnDone
"""What a streamed turn yields."""
