"""Streamed answers as schedules: which events a run (response) sends, and when.

A stream is a pure function of its record, like a run's status (see lifecycle.py): the events
of a response or of one leg of a run are laid out on the run's timeline (text deltas spread
over its working time, the final event when its work ends), and a cancel recorded on the
timeline cuts the schedule there. Nothing ticks: :mod:`.sse` sends each event once it is due,
and a client resuming a stream (``starting_after``) gets the very same events again.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

Json = dict[str, Any]
#: What an event's ``data:`` line carries: a JSON object, or a bare marker (``[DONE]``).
Data = Json | str


@dataclass(frozen=True)
class Scheduled:
    """One event: when it is due, its SSE ``event:`` name, and how to build its data (rendered
    only when sent, from the record as it stood at ``at``)."""

    at: float
    name: str
    build: Callable[[], Data]


@dataclass(frozen=True)
class Schedule:
    """Every event a stream has so far, oldest first; ``closed``: none will ever follow."""

    events: list[Scheduled]
    closed: bool


class EventSource(Protocol):
    """What a stream reads (every method is called with ``core.lock`` held)."""

    def schedule(self) -> Schedule:
        """The stream's events as the record stands now."""
        ...

    def dropped(self, sent: int, now: float) -> None:
        """The emulator cut the connection after ``sent`` events (the stream-drop fault)."""
        ...

    def abandoned(self, now: float) -> None:
        """The client went away before the stream ended."""
        ...


@dataclass(frozen=True)
class EventStream:
    """What a handler returns to answer with server-sent events instead of JSON.

    ``after``: the index of the last event the client already has (``-1``: none);
    ``cut``: how many events this connection sends before the emulator drops it (``None``:
    never; see :meth:`~thread_pool.emulator.faults.Planner.stream_cut`)."""

    source: EventSource
    after: int
    cut: int | None


def spread(start: float, end: float, count: int) -> list[float]:
    """``count`` instants evenly inside ``(start, end)``, so a stream's output fills its
    run's working time and its final event comes exactly when the work ends."""
    return [start + (end - start) * (index + 1) / (count + 1) for index in range(count)]


def cut_at_cancel(
    events: list[Scheduled], closed: bool, cancel_asked: float | None
) -> tuple[list[Scheduled], bool]:
    """The events sent before a cancel asked at ``cancel_asked`` (``None``: no cancel), and
    whether that closes the stream; a cancel after a closed stream's last event changes
    nothing (it belongs to a later leg, or was refused)."""
    if cancel_asked is None:
        return events, closed
    if closed and events and events[-1].at < cancel_asked:
        return events, closed
    return [event for event in events if event.at < cancel_asked], True


T = TypeVar("T")


def constant(data: T) -> Callable[[], T]:
    """A builder of data known in advance."""
    return lambda: data


_CHUNK = re.compile(r"\S+\s*|\s+")


def chunks(text: str) -> list[str]:
    """``text`` in word-sized deltas (each word with the spaces after it) that join back to
    exactly ``text``; none for an empty text."""
    return _CHUNK.findall(text)
