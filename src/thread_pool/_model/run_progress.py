"""What an Assistants run's events have told of it so far, and its reply read from them. No I/O
here."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from openai.types.beta.threads import Run


@dataclass
class RunProgress:
    """A run as its event streams (the start, then one per tool-output round) showed it."""

    deltas: list[str] = field(default_factory=list)
    """The reply's text deltas, as streamed."""
    messages: list[Any] = field(default_factory=list)
    """The messages the streams completed (``thread.message.completed``), oldest first."""
    polled: bool = False
    """Some part of the run was polled (its stream dropped, or the server does not stream):
    its events do not hold the whole reply."""
    _run: Any = field(default=None, init=False, repr=False)
    _latest: dict[str, Any] | None = field(default=None, init=False, repr=False)

    @property
    def run(self) -> Any:
        """The run as last seen (None until an event named it). A stream's run events are kept
        as their data, and the run object is built from the latest only when asked for: one is
        read at each pause or end, and building one per event cost more than the rest of the
        event's handling."""
        if self._latest is not None:
            self._run, self._latest = Run.construct(**self._latest), None
        return self._run

    @run.setter
    def run(self, run: Any) -> None:
        self._run, self._latest = run, None

    @property
    def seen(self) -> bool:
        """Whether an event (or a poll) has named the run."""
        return self._run is not None or self._latest is not None

    def saw(self, data: dict[str, Any]) -> None:
        """A run event's data: the run as it is now."""
        self._latest = data


def delta_texts(data: Mapping[str, Any]) -> list[str]:
    """The text pieces of a ``thread.message.delta`` event's data (its other parts, such as
    images, carry none)."""
    delta = data.get("delta")
    parts = delta.get("content") if isinstance(delta, dict) else None
    texts = []
    for part in parts or ():
        text = part.get("text") if isinstance(part, dict) else None
        value = text.get("value") if isinstance(text, dict) else None
        if isinstance(value, str) and value:
            texts.append(value)
    return texts


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
