"""The events a streamed response sends (upstream's names and shapes, UPSTREAM.md).

``response.created`` (and ``response.queued`` for a background response) when it is made,
``response.in_progress`` when it leaves ``queued``, then per output item
``response.output_item.added`` … ``response.output_item.done`` (a message's text as
``response.output_text.delta`` events, a function call's arguments as
``response.function_call_arguments.delta`` events) spread over its working time, and
``response.completed`` (or ``response.failed``) when its work ends. Every event carries
``sequence_number``, its index in the stream. A cancelled response's stream ends at the cancel
with no further event: upstream defines no stream event for a cancellation, and the response
itself then reads ``cancelled``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from thread_pool.emulator.conversation_records import RESPONSE_BLOCKING, ResponseRec
from thread_pool.emulator.streams import (
    Data,
    Schedule,
    Scheduled,
    chunks,
    constant,
    cut_at_cancel,
    spread,
)

Json = dict[str, Any]
Maker = Callable[[], Json]


def _lifecycle(response: ResponseRec, kind: str, at: float) -> Maker:
    return lambda: {"type": kind, "response": response.render(at)}


def _message_events(item: Json, index: int) -> list[tuple[str, Maker]]:
    """A message item's events: added, its text part, the deltas, and the ``done`` events."""
    text = item["content"][0]["text"]
    where = {"item_id": item["id"], "output_index": index, "content_index": 0}
    empty_part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
    full_part = {**empty_part, "text": text}
    started = {**item, "status": "in_progress", "content": []}
    events: list[tuple[str, Maker]] = [
        (
            "response.output_item.added",
            lambda: {"output_index": index, "item": started},
        ),
        ("response.content_part.added", lambda: {**where, "part": empty_part}),
    ]
    for piece in chunks(text):
        events.append(
            (
                "response.output_text.delta",
                constant({**where, "delta": piece, "logprobs": []}),
            )
        )
    events += [
        ("response.output_text.done", lambda: {**where, "text": text, "logprobs": []}),
        ("response.content_part.done", lambda: {**where, "part": full_part}),
        ("response.output_item.done", lambda: {"output_index": index, "item": item}),
    ]
    return events


def _function_call_events(item: Json, index: int) -> list[tuple[str, Maker]]:
    """A function call item's events: added (empty arguments), argument deltas, done."""
    where = {"item_id": item["id"], "output_index": index}
    started = {**item, "status": "in_progress", "arguments": ""}
    events: list[tuple[str, Maker]] = [
        ("response.output_item.added", lambda: {"output_index": index, "item": started}),
    ]
    for piece in chunks(item["arguments"]):
        events.append(
            (
                "response.function_call_arguments.delta",
                constant({**where, "delta": piece}),
            )
        )
    events += [
        (
            "response.function_call_arguments.done",
            lambda: {**where, "name": item["name"], "arguments": item["arguments"]},
        ),
        ("response.output_item.done", lambda: {"output_index": index, "item": item}),
    ]
    return events


def _output_events(response: ResponseRec) -> list[tuple[str, Maker]]:
    events: list[tuple[str, Maker]] = []
    for index, item in enumerate(response.output_items):
        if item["type"] == "function_call":
            events += _function_call_events(item, index)
        else:
            events += _message_events(item, index)
    return events


def _numbered(kind: str, sequence_number: int, make: Maker) -> Callable[[], Data]:
    return lambda: {"type": kind, "sequence_number": sequence_number, **make()}


def response_schedule(response: ResponseRec) -> Schedule:
    """Every event of ``response``'s stream, as its timeline stands."""
    timeline = response.timeline
    start = response.created_at
    planned: list[tuple[float, str, Maker]] = [
        (start, "response.created", _lifecycle(response, "response.created", start))
    ]
    if response.background:
        planned.append((start, "response.queued", _lifecycle(response, "response.queued", start)))
    closed = False
    # A response whose stream stalled at its first event never leaves queued (its
    # queued_until is infinite), so it has nothing more to schedule.
    if math.isfinite(timeline.queued_until):
        begin, end = timeline.queued_until, timeline.work_ends
        planned.append(
            (begin, "response.in_progress", _lifecycle(response, "response.in_progress", begin))
        )
        if timeline.outcome == "completed":
            output = _output_events(response)
            for at, (kind, make) in zip(spread(begin, end, len(output)), output, strict=True):
                planned.append((at, kind, make))
            planned.append(
                (end, "response.completed", _lifecycle(response, "response.completed", end))
            )
            closed = True
        elif timeline.outcome == "failed":
            planned.append((end, "response.failed", _lifecycle(response, "response.failed", end)))
            closed = True
    events = [
        Scheduled(at, kind, _numbered(kind, number, make))
        for number, (at, kind, make) in enumerate(planned)
    ]
    events, closed = cut_at_cancel(events, closed, timeline.cancel_asked)
    return Schedule(events, closed)


class ResponseEvents:
    """A response's stream as an :class:`~thread_pool.emulator.streams.EventSource`.

    ``creating``: this is the stream of the request that made the response (the one upstream's
    first-event stall concerns). ``end`` cancels the response (and settles its conversation):
    what happens to a synchronous streamed response whose connection closes (UPSTREAM.md:
    closing a plain stream ends the generation); a background one goes on.
    """

    def __init__(
        self,
        response: ResponseRec,
        *,
        creating: bool,
        end: Callable[[ResponseRec, float], None],
        stalled: Callable[[ResponseRec], None],
    ) -> None:
        self.response = response
        self.creating = creating
        self._end = end
        self._stalled = stalled

    def schedule(self) -> Schedule:
        """The response's events (see :func:`response_schedule`)."""
        return response_schedule(self.response)

    def dropped(self, sent: int, now: float) -> None:
        """Upstream's known edge: a background response whose creating stream drops right
        after its first event stays ``queued`` for good (until cancelled)."""
        response = self.response
        status, _ = response.status_since(now)
        if response.background and self.creating and sent == 1 and status == "queued":
            response.timeline.queued_until = math.inf
            response.timeline.work_ends = math.inf
            self._stalled(response)
            return
        self.abandoned(now)

    def abandoned(self, now: float) -> None:
        """A synchronous response ends with its connection; a background one goes on."""
        response = self.response
        if response.background:
            return
        status, _ = response.status_since(now)
        if status in RESPONSE_BLOCKING:
            self._end(response, now)
