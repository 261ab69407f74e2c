"""What an Assistants run's events have told of it so far, and its reply read from them. No I/O
here."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RunProgress:
    """A run as its event streams (the start, then one per tool-output round) showed it."""

    run: Any = None
    """The run as last seen (None until an event named it)."""
    deltas: list[str] = field(default_factory=list)
    """The reply's text deltas, as streamed."""
    messages: list[Any] = field(default_factory=list)
    """The messages the streams completed (``thread.message.completed``), oldest first."""
    polled: bool = False
    """Some part of the run was polled (its stream dropped, or the server does not stream):
    its events do not hold the whole reply."""


def reply_text(messages: Iterable[Any]) -> str:
    """The text parts of ``messages`` (oldest first), one line each."""
    texts = []
    for msg in messages:
        for part in msg.content:
            text = getattr(part, "text", None)
            if text is not None:
                texts.append(text.value)
    return "\n".join(texts)


def streamed_reply(progress: RunProgress, run_id: str) -> str | None:
    """The reply as the run's own streams completed it: its assistant messages that name this
    run (or no run: a run's stream carries only its own messages). A server may send other
    runs' messages, and a reply made of them would be logged and copied into every sibling, so
    each message's own ``run_id`` is checked. None when the streams cannot tell: part of the run
    was polled, or they completed no message of it (the reply is then read from the thread)."""
    if progress.polled:
        return None
    mine = [
        m
        for m in progress.messages
        if getattr(m, "role", None) == "assistant"
        and getattr(m, "run_id", None) in (None, "", run_id)
    ]
    return reply_text(mine) if mine else None
