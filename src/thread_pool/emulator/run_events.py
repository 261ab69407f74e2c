"""The events a streamed run sends (upstream's Assistants names and shapes, UPSTREAM.md).

A run streams in legs: ``runs.create(stream=True)`` streams from its creation, and
``submit_tool_outputs(stream=True)`` from the submission, each until the run ends or stops for
tool outputs. A leg sends ``thread.run.created`` (first leg only), ``thread.run.queued``,
``thread.run.in_progress``, then either

* a reply: ``thread.run.step.created``/``.in_progress`` (a ``message_creation`` step),
  ``thread.message.created``/``.in_progress``, ``thread.message.delta`` events spread over the
  working time, ``thread.message.completed``, ``thread.run.step.completed``,
  ``thread.run.completed``;
* tool calls: a ``tool_calls`` step whose ``thread.run.step.delta`` events carry each call and
  its arguments, then ``thread.run.requires_action``;
* ``thread.run.failed`` or ``thread.run.expired``;

and ``done`` (``data: [DONE]``) last. A cancel ends it with ``thread.run.cancelling``,
``thread.run.cancelled`` and ``done``. The run goes on if its client disconnects.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from thread_pool.emulator.lifecycle import Timeline
from thread_pool.emulator.streams import Data, Schedule, Scheduled, chunks, constant, spread
from thread_pool.emulator.thread_records import MessageRec, RunRec

Json = dict[str, Any]
Maker = Callable[[], Data]

_STEP_END = {"cancelled_at": None, "completed_at": None, "expired_at": None, "failed_at": None}


class RunEvents:
    """One leg of a run's stream as an :class:`~thread_pool.emulator.streams.EventSource`,
    starting at ``start`` (the run's creation for the ``first`` leg, else the submission of
    tool outputs). Its timeline and reply are taken when the leg starts, so a leg that ended
    (``requires_action``) keeps its events after tool outputs give the run a new timeline."""

    def __init__(self, run: RunRec, *, first: bool, start: float) -> None:
        self.run = run
        self.first = first
        self.start = start
        self.timeline: Timeline = run.timeline
        self.reply = run.reply

    # -- objects ----------------------------------------------------------------------------

    def _run(self, at: float) -> Maker:
        return lambda: self.run.render(at, self.timeline)

    def _step(self, step_id: str, kind: str, details: Json, at: float, status: str) -> Json:
        run = self.run
        return {
            "id": step_id,
            "object": "thread.run.step",
            "created_at": int(at),
            "assistant_id": run.assistant_id,
            "thread_id": run.thread_id,
            "run_id": run.id,
            "type": kind,
            "status": status,
            "step_details": details,
            **_STEP_END,
            "completed_at": int(at) if status == "completed" else None,
            "expires_at": None,
            "last_error": None,
            "metadata": None,
            "usage": None,
        }

    def _message(self, at: float, *, done: bool) -> Json:
        run = self.run
        rendered = MessageRec(
            run.reply_id, run.thread_id, "assistant", self.reply, at, {}, run.id, run.assistant_id
        ).render()
        if not done:
            rendered.update(status="in_progress", content=[], completed_at=None)
        return rendered

    # -- the schedule -----------------------------------------------------------------------

    def _reply(self, begin: float, end: float) -> list[tuple[float, str, Maker]]:
        step_id = self.run.reply_step_id
        details = {
            "type": "message_creation",
            "message_creation": {"message_id": self.run.reply_id},
        }
        started = self._step(step_id, "message_creation", details, begin, "in_progress")
        pieces = chunks(self.reply)
        deltas: list[tuple[float, str, Maker]] = [
            (
                at,
                "thread.message.delta",
                constant(
                    {
                        "id": self.run.reply_id,
                        "object": "thread.message.delta",
                        "delta": {
                            "content": [
                                {
                                    "index": 0,
                                    "type": "text",
                                    "text": {"value": piece, "annotations": []},
                                }
                            ]
                        },
                    }
                ),
            )
            for at, piece in zip(spread(begin, end, len(pieces)), pieces, strict=True)
        ]
        return [
            (begin, "thread.run.step.created", lambda: started),
            (begin, "thread.run.step.in_progress", lambda: started),
            (begin, "thread.message.created", lambda: self._message(begin, done=False)),
            (begin, "thread.message.in_progress", lambda: self._message(begin, done=False)),
            *deltas,
            (end, "thread.message.completed", lambda: self._message(end, done=True)),
            (
                end,
                "thread.run.step.completed",
                lambda: self._step(step_id, "message_creation", details, end, "completed"),
            ),
            (end, "thread.run.completed", self._run(end)),
        ]

    def _tool_calls(self, begin: float, end: float) -> list[tuple[float, str, Maker]]:
        step_id = self.run.tool_step_id
        details: Json = {"type": "tool_calls", "tool_calls": []}
        started = self._step(step_id, "tool_calls", details, begin, "in_progress")
        parts: list[Json] = []
        for index, call in enumerate(self.run.tool_calls):
            function = call["function"]
            parts.append(
                {
                    "index": index,
                    "id": call["id"],
                    "type": "function",
                    "function": {"name": function["name"], "arguments": "", "output": None},
                }
            )
            for piece in chunks(function["arguments"]):
                parts.append({"index": index, "type": "function", "function": {"arguments": piece}})
        deltas: list[tuple[float, str, Maker]] = [
            (
                at,
                "thread.run.step.delta",
                constant(
                    {
                        "id": step_id,
                        "object": "thread.run.step.delta",
                        "delta": {"step_details": {"type": "tool_calls", "tool_calls": [part]}},
                    }
                ),
            )
            for at, part in zip(spread(begin, end, len(parts)), parts, strict=True)
        ]
        return [
            (begin, "thread.run.step.created", lambda: started),
            (begin, "thread.run.step.in_progress", lambda: started),
            *deltas,
            (end, "thread.run.requires_action", self._run(end)),
        ]

    def _answered_step(self, at: float) -> Maker:
        """The first leg's ``tool_calls`` step, completed with the outputs now submitted."""
        outputs = self.run.tool_outputs
        calls = [
            {
                "id": call["id"],
                "type": "function",
                "function": {**call["function"], "output": outputs.get(call["id"])},
            }
            for call in self.run.tool_calls
        ]
        details = {"type": "tool_calls", "tool_calls": calls}
        return lambda: self._step(self.run.tool_step_id, "tool_calls", details, at, "completed")

    def schedule(self) -> Schedule:
        """This leg's events as the run's timeline stands."""
        timeline = self.timeline
        start = self.start
        planned: list[tuple[float, str, Maker]] = []
        if self.first:
            planned.append((start, "thread.run.created", self._run(start)))
        planned.append((start, "thread.run.queued", self._run(start)))
        begin, end = timeline.queued_until, timeline.work_ends
        planned.append((begin, "thread.run.in_progress", self._run(begin)))
        if not self.first:
            planned.append((begin, "thread.run.step.completed", self._answered_step(begin)))
        closed = True
        outcome = timeline.outcome
        if outcome == "completed":
            planned += self._reply(begin, end)
        elif outcome == "requires_action":
            planned += self._tool_calls(begin, end)
        elif outcome == "failed":
            planned.append((end, "thread.run.failed", self._run(end)))
        elif outcome == "expired" or math.isfinite(timeline.expires):
            planned.append((timeline.expires, "thread.run.expired", self._run(timeline.expires)))
        else:
            closed = False
        if closed:
            planned.append((planned[-1][0], "done", _done))
        cancel, cancelled = timeline.cancel_asked, timeline.cancel_done
        # A cancel after the leg's last event (a run cancelled in requires_action) is not
        # this leg's; one before cuts it there.
        if (
            cancel is not None
            and cancelled is not None
            and not (closed and planned[-1][0] < cancel)
        ):
            planned = [event for event in planned if event[0] < cancel]
            planned += [
                (cancel, "thread.run.cancelling", self._run(cancel)),
                (cancelled, "thread.run.cancelled", self._run(cancelled)),
                (cancelled, "done", _done),
            ]
            closed = True
        return Schedule([Scheduled(at, kind, make) for at, kind, make in planned], closed)

    def dropped(self, sent: int, now: float) -> None:
        """A run goes on without its stream."""

    def abandoned(self, now: float) -> None:
        """A run goes on without its stream."""


def _done() -> Data:
    return "[DONE]"
