"""Runs: how one is made (plan, timeline, reply, tool calls), continued after tool outputs,
cancelled, and read. The thread a run holds, and the lock rule, are :mod:`.threads`'s."""

from __future__ import annotations

from typing import Any

from thread_pool.emulator import errors
from thread_pool.emulator import validation as v
from thread_pool.emulator.assistants import AssistantsStore
from thread_pool.emulator.core import Core, new_id
from thread_pool.emulator.faults import RunPlan
from thread_pool.emulator.lifecycle import Timeline
from thread_pool.emulator.pagination import paginate
from thread_pool.emulator.replies import expected_reply, find_tool_calls
from thread_pool.emulator.run_events import RunEvents
from thread_pool.emulator.streams import EventStream
from thread_pool.emulator.thread_records import RunRec
from thread_pool.emulator.threads import ThreadsStore, parse_message

Json = dict[str, Any]

#: Statuses in which a run can still be cancelled.
CANCELLABLE = ("queued", "in_progress", "requires_action")


def _tool_outputs(body: Json) -> dict[str, str]:
    """The ``tool_outputs`` of a submission, by call id (validated)."""
    outputs = v.array(body, "tool_outputs")
    if body.get("tool_outputs") is None:
        raise errors.missing("tool_outputs")
    given: dict[str, str] = {}
    for index, item in enumerate(outputs):
        if not isinstance(item, dict):
            raise errors.wrong_type(f"tool_outputs[{index}]", "an object", item)
        call_id = v.string(item, "tool_call_id", param=f"tool_outputs[{index}].tool_call_id")
        output = v.string(item, "output", param=f"tool_outputs[{index}].output")
        if call_id is None:
            raise errors.missing(f"tool_outputs[{index}].tool_call_id")
        given[call_id] = output or ""
    return given


class RunsStore:
    """The runs of the Assistants API, guarded by ``core.lock``; kept in ``threads.runs``."""

    def __init__(self, core: Core, threads: ThreadsStore, assistants: AssistantsStore) -> None:
        self.core = core
        self.threads = threads
        self.assistants = assistants

    def create_run(self, thread_id: str, body: Json) -> Json | EventStream:
        """``POST /threads/{id}/runs``: refused while another run holds the thread; with
        ``stream=true``, answered with the run's events."""
        stream = self._streams(body)
        assistant_id = v.required_string(body, "assistant_id")
        extra = [
            parse_message(item, f"additional_messages[{index}]")
            for index, item in enumerate(v.array(body, "additional_messages"))
        ]
        metadata = v.metadata(body)
        instructions = v.string(body, "instructions")
        additional = v.string(body, "additional_instructions")
        model = v.string(body, "model")
        tools_given = body.get("tools") is not None
        tools = v.array(body, "tools")
        config = self.core.config
        with self.core.lock:
            now = self.core.clock()
            thread = self.threads.thread(thread_id)
            assistant = self.assistants.get_assistant(assistant_id)
            blocking = self.threads.blocking_run(thread, now)
            if blocking is not None:
                self.core.stats.refused(
                    thread.id, "run.refused", blocking.id, blocking.metadata, now
                )
                raise errors.thread_has_active_run(thread.id, blocking.id)
            for role, text, meta in extra:
                self.threads.add_message(thread, role, text, meta, now)
            if not tools_given:
                tools = list(assistant["tools"])
            base = instructions if instructions is not None else assistant["instructions"] or ""
            plan = self.core.planner.run_plan(config)
            answered = thread.messages[-1] if thread.messages else None
            calls = []
            if answered is not None and answered.role == "user":
                calls = find_tool_calls(answered.text, v.function_names(tools))
            entries = [(m.role, m.text) for m in thread.messages]
            run = RunRec(
                id=new_id("run"),
                thread_id=thread.id,
                assistant_id=assistant_id,
                created_at=now,
                model=model or assistant["model"],
                instructions=base + ("\n" + additional if additional else ""),
                tools=tools,
                metadata=metadata,
                timeline=self._timeline(now, plan, tool_wait=bool(calls)),
                answered_id=answered.id if answered else None,
                entries=entries,
                reply=expected_reply(answered.id if answered else None, entries),
                tool_calls=[
                    {
                        "id": new_id("call"),
                        "type": "function",
                        "function": {"name": call.name, "arguments": call.arguments},
                    }
                    for call in calls
                ],
                prompt_chars=sum(len(text) for _, text in entries),
            )
            self._count_fault(plan)
            self.threads.start_run(thread, run)
            self.core.stats.write(thread.id, "run.create", run.id, metadata, now)
            if stream:
                return self._open_stream(RunEvents(run, first=True, start=now))
            return run.render(now)

    def _streams(self, body: Json) -> bool:
        """Whether to answer with events: ``stream=true``, unless the configuration makes the
        emulator a server that refuses (400) or ignores it."""
        stream = v.boolean(body, "stream")
        streaming = self.core.config.run_streaming
        if stream and streaming == "refused":
            raise errors.ApiError(400, "Streaming is not supported by this server.", param="stream")
        return stream and streaming == "on"

    def _open_stream(self, source: RunEvents) -> EventStream:
        """A run leg's stream, with the stream-drop fault drawn for it."""
        count = len(source.schedule().events)
        return EventStream(source, -1, self.core.planner.stream_cut(self.core.config, count))

    def _timeline(self, now: float, plan: RunPlan, *, tool_wait: bool) -> Timeline:
        """The timeline of a run created at ``now`` under ``plan``."""
        queued_until = now + plan.queued_for
        work_ends = queued_until + plan.working_for
        expires = now + self.core.config.run_ttl
        outcome = plan.outcome
        if outcome == "completed" and tool_wait:
            outcome = "requires_action"
        if outcome == "expired":
            # The fault model makes the run hit its expiry early, at the end of its work.
            expires = work_ends
        return Timeline(queued_until, work_ends, outcome, expires)

    def _count_fault(self, plan: RunPlan) -> None:
        if plan.outcome != "completed":
            self.core.stats.fault(f"run_{plan.outcome}")

    def get_run(self, thread_id: str, run_id: str) -> Json:
        """``GET /threads/{id}/runs/{run_id}``."""
        with self.core.lock:
            now = self.core.clock()
            thread, run = self.threads.run(thread_id, run_id)
            self.threads.settle(thread, now)
            return run.render(now)

    def list_runs(self, thread_id: str, query: dict[str, str]) -> Json:
        """``GET /threads/{id}/runs``."""
        limit, order = v.limit(query), v.order(query)
        with self.core.lock:
            now = self.core.clock()
            thread = self.threads.thread(thread_id)
            self.threads.settle(thread, now)
            return paginate(
                thread.runs,
                lambda r: r.id,
                lambda r: r.render(now),
                query,
                limit=limit,
                order=order,
            )

    def cancel_run(self, thread_id: str, run_id: str) -> Json:
        """``POST /threads/{id}/runs/{run_id}/cancel``: ``cancelling``, then ``cancelled``."""
        with self.core.lock:
            now = self.core.clock()
            thread, run = self.threads.run(thread_id, run_id)
            self.threads.settle(thread, now)
            status = run.timeline.status(now)
            if status not in CANCELLABLE:
                raise errors.ApiError(400, f"Cannot cancel run with status '{status}'.")
            run.timeline.cancel_asked = now
            run.timeline.cancel_done = now + self.core.config.cancel_delay
            self.core.stats.write(thread.id, "run.cancel", run.id, run.metadata, now)
            return run.render(now)

    def submit_tool_outputs(self, thread_id: str, run_id: str, body: Json) -> Json | EventStream:
        """``POST .../submit_tool_outputs``: answers a ``requires_action`` run, which then
        goes on (queued → in_progress → completed, or a run fault) with the outputs in its
        reply; with ``stream=true``, answered with the run's events from here."""
        stream = self._streams(body)
        given = _tool_outputs(body)
        with self.core.lock:
            now = self.core.clock()
            thread, run = self.threads.run(thread_id, run_id)
            self.threads.settle(thread, now)
            status = run.timeline.status(now)
            if status != "requires_action":
                raise errors.ApiError(400, f'Runs in status "{status}" do not accept tool outputs.')
            expected = [call["id"] for call in run.tool_calls]
            if sorted(given) != sorted(expected):
                raise errors.ApiError(
                    400,
                    f"Expected tool outputs for call_ids {sorted(expected)}, got {sorted(given)}",
                    param="tool_outputs",
                )
            plan = self.core.planner.run_plan(self.core.config)
            timeline = self._timeline(now, plan, tool_wait=False)
            # The run keeps its original expiry: tool outputs do not buy it more time.
            timeline.expires = min(timeline.expires, run.timeline.expires)
            run.timeline = timeline
            self._count_fault(plan)
            run.reply = expected_reply(
                run.answered_id, run.entries, [given[call_id] for call_id in expected]
            )
            run.tool_outputs = given
            self.core.stats.write(thread.id, "run.submit_tool_outputs", run.id, run.metadata, now)
            if stream:
                return self._open_stream(RunEvents(run, first=False, start=now))
            return run.render(now)

    def run_intervals(self, now: float) -> list[tuple[float, float]]:
        """``(created, ended-or-now)`` of every run, for the concurrency peak."""
        with self.core.lock:
            intervals = []
            for run in self.threads.runs.values():
                end = run.timeline.ends_at()
                intervals.append((run.created_at, now if end is None else min(end, now)))
            return intervals
