"""Assistants API state: assistants, threads, messages and runs, with the one-active-run rule.

A run's status is computed from its :class:`~thread_pool.emulator.lifecycle.Timeline` whenever
the thread is touched (:meth:`ThreadsStore._settle`): the run that has ended is retired then, and
a completed run's reply message is added with the time it completed, so readers always see a
consistent thread without any background timer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from thread_pool.emulator import errors
from thread_pool.emulator import validation as v
from thread_pool.emulator.core import Core, new_id
from thread_pool.emulator.faults import RunPlan
from thread_pool.emulator.lifecycle import BLOCKING, TERMINAL, Timeline
from thread_pool.emulator.pagination import paginate
from thread_pool.emulator.replies import expected_reply, find_tool_calls

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

    def render(self, now: float, poll_hint: bool = True) -> Json:
        """The upstream ``thread.run`` object at time ``now``."""
        status, since = self.timeline.status_since(now)
        started = self.timeline.queued_until if status != "queued" else None
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
            "expires_at": None if status in TERMINAL else int(self.timeline.expires),
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
class ThreadRec:
    """One thread: its messages, its runs, and the run holding it (if any)."""

    id: str
    created_at: float
    metadata: dict[str, str]
    messages: list[MessageRec] = field(default_factory=list)
    runs: list[RunRec] = field(default_factory=list)
    active: RunRec | None = None

    def render(self) -> Json:
        """The upstream ``thread`` object."""
        return {
            "id": self.id,
            "object": "thread",
            "created_at": int(self.created_at),
            "metadata": self.metadata,
            "tool_resources": {},
        }


def _parse_message(body: Any, param: str) -> tuple[str, str, dict[str, str]]:
    """``(role, text, metadata)`` of a message in a request (validated)."""
    if not isinstance(body, dict):
        raise errors.wrong_type(param or "body", "an object", body)
    prefix = f"{param}." if param else ""
    role = v.role(body.get("role"), f"{prefix}role", v.MESSAGE_ROLES)
    if body.get("content") is None:
        raise errors.missing(f"{prefix}content")
    text = v.message_text(body["content"], f"{prefix}content", ("text",))
    return role, text, v.metadata(body, f"{prefix}metadata")


class ThreadsStore:
    """The Assistants API's objects, guarded by ``core.lock``."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self.assistants: dict[str, Json] = {}
        self.threads: dict[str, ThreadRec] = {}
        self.runs: dict[str, RunRec] = {}

    def clear(self) -> None:
        """Forget everything."""
        with self.core.lock:
            self.assistants.clear()
            self.threads.clear()
            self.runs.clear()

    # -- assistants -------------------------------------------------------------------------

    def create_assistant(self, body: Json) -> Json:
        """``POST /assistants``."""
        model = v.required_string(body, "model")
        tools = v.array(body, "tools")
        v.function_names(tools)
        metadata = v.metadata(body)
        assistant: Json = {
            "id": new_id("asst"),
            "object": "assistant",
            "created_at": int(self.core.clock()),
            "name": v.string(body, "name"),
            "description": v.string(body, "description"),
            "model": model,
            "instructions": v.string(body, "instructions"),
            "tools": tools,
            "metadata": metadata,
            "top_p": 1.0,
            "temperature": 1.0,
            "response_format": "auto",
            "tool_resources": {},
        }
        with self.core.lock:
            self.assistants[assistant["id"]] = assistant
        return assistant

    def get_assistant(self, assistant_id: str) -> Json:
        """``GET /assistants/{id}``."""
        with self.core.lock:
            assistant = self.assistants.get(assistant_id)
        if assistant is None:
            raise errors.not_found("assistant", assistant_id)
        return assistant

    # -- threads ----------------------------------------------------------------------------

    def _thread(self, thread_id: str) -> ThreadRec:
        thread = self.threads.get(thread_id)
        if thread is None:
            raise errors.not_found("thread", thread_id)
        return thread

    def _settle(self, thread: ThreadRec, now: float) -> None:
        """Retire the thread's active run if it has ended; add its reply if it completed."""
        run = thread.active
        if run is None:
            return
        status, since = run.timeline.status_since(now)
        if status not in TERMINAL:
            return
        if status == "completed":
            thread.messages.append(
                MessageRec(
                    id=new_id("msg"),
                    thread_id=thread.id,
                    role="assistant",
                    text=run.reply,
                    created_at=since,
                    metadata={},
                    run_id=run.id,
                    assistant_id=run.assistant_id,
                )
            )
        thread.active = None
        self.core.stats.deactivate(thread.id)

    def _blocking_run(self, thread: ThreadRec, now: float) -> RunRec | None:
        """The run that holds the thread now, if any (the lock rule)."""
        self._settle(thread, now)
        run = thread.active
        if run is not None and run.timeline.status(now) in BLOCKING:
            return run
        return None

    def create_thread(self, body: Json) -> Json:
        """``POST /threads`` (with optional initial ``messages`` and ``metadata``)."""
        metadata = v.metadata(body)
        parsed = [
            _parse_message(item, f"messages[{index}]")
            for index, item in enumerate(v.array(body, "messages"))
        ]
        with self.core.lock:
            now = self.core.clock()
            thread = ThreadRec(id=new_id("thread"), created_at=now, metadata=metadata)
            for role, text, meta in parsed:
                thread.messages.append(MessageRec(new_id("msg"), thread.id, role, text, now, meta))
            self.threads[thread.id] = thread
            self.core.stats.write(thread.id, "thread.create", thread.id, metadata, now)
            for message in thread.messages:
                self.core.stats.write(
                    thread.id, "message.create", message.id, message.metadata, now
                )
            return thread.render()

    def get_thread(self, thread_id: str) -> Json:
        """``GET /threads/{id}``."""
        with self.core.lock:
            return self._thread(thread_id).render()

    def update_thread(self, thread_id: str, body: Json) -> Json:
        """``POST /threads/{id}`` (metadata)."""
        metadata = v.metadata(body) if "metadata" in body else None
        with self.core.lock:
            thread = self._thread(thread_id)
            if metadata is not None:
                thread.metadata = metadata
                self.core.stats.write(
                    thread.id, "thread.update", thread.id, metadata, self.core.clock()
                )
            return thread.render()

    def delete_thread(self, thread_id: str) -> Json:
        """``DELETE /threads/{id}``."""
        with self.core.lock:
            thread = self._thread(thread_id)
            if thread.active is not None:
                thread.active = None
                self.core.stats.deactivate(thread.id)
            del self.threads[thread_id]
            for run in thread.runs:
                self.runs.pop(run.id, None)
        return {"id": thread_id, "object": "thread.deleted", "deleted": True}

    # -- messages ---------------------------------------------------------------------------

    def create_message(self, thread_id: str, body: Json) -> Json:
        """``POST /threads/{id}/messages``: refused while a run holds the thread."""
        role, text, metadata = _parse_message(body, "")
        with self.core.lock:
            now = self.core.clock()
            thread = self._thread(thread_id)
            blocking = self._blocking_run(thread, now)
            if blocking is not None:
                self.core.stats.refused(
                    thread.id, "message.refused", blocking.id, blocking.metadata, now
                )
                raise errors.message_while_active(thread.id, blocking.id)
            message = MessageRec(new_id("msg"), thread.id, role, text, now, metadata)
            thread.messages.append(message)
            self.core.stats.write(thread.id, "message.create", message.id, metadata, now)
            return message.render()

    def list_messages(self, thread_id: str, query: dict[str, str]) -> Json:
        """``GET /threads/{id}/messages`` (cursor page; ``run_id`` filter)."""
        limit, order = v.limit(query), v.order(query)
        with self.core.lock:
            thread = self._thread(thread_id)
            self._settle(thread, self.core.clock())
            messages = thread.messages
            if "run_id" in query:
                messages = [m for m in messages if m.run_id == query["run_id"]]
            return paginate(
                messages, lambda m: m.id, MessageRec.render, query, limit=limit, order=order
            )

    def get_message(self, thread_id: str, message_id: str) -> Json:
        """``GET /threads/{id}/messages/{message_id}``."""
        with self.core.lock:
            thread = self._thread(thread_id)
            self._settle(thread, self.core.clock())
            for message in thread.messages:
                if message.id == message_id:
                    return message.render()
        raise errors.not_found("message", message_id)

    # -- runs -------------------------------------------------------------------------------

    def _run(self, thread_id: str, run_id: str) -> tuple[ThreadRec, RunRec]:
        thread = self._thread(thread_id)
        run = self.runs.get(run_id)
        if run is None or run.thread_id != thread_id:
            raise errors.not_found("run", run_id)
        return thread, run

    def create_run(self, thread_id: str, body: Json) -> Json:
        """``POST /threads/{id}/runs``: refused while another run holds the thread."""
        if body.get("stream"):
            raise errors.ApiError(
                400, "The emulator does not stream; poll the run instead.", param="stream"
            )
        assistant_id = v.required_string(body, "assistant_id")
        extra = [
            _parse_message(item, f"additional_messages[{index}]")
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
            thread = self._thread(thread_id)
            assistant = self.assistants.get(assistant_id)
            if assistant is None:
                raise errors.not_found("assistant", assistant_id)
            blocking = self._blocking_run(thread, now)
            if blocking is not None:
                self.core.stats.refused(
                    thread.id, "run.refused", blocking.id, blocking.metadata, now
                )
                raise errors.thread_has_active_run(thread.id, blocking.id)
            for role, text, meta in extra:
                message = MessageRec(new_id("msg"), thread.id, role, text, now, meta)
                thread.messages.append(message)
                self.core.stats.write(thread.id, "message.create", message.id, meta, now)
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
            if plan.outcome != "completed":
                self.core.stats.fault(f"run_{plan.outcome}")
            thread.runs.append(run)
            thread.active = run
            self.runs[run.id] = run
            self.core.stats.activate(thread.id)
            self.core.stats.write(thread.id, "run.create", run.id, metadata, now)
            return run.render(now)

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

    def get_run(self, thread_id: str, run_id: str) -> Json:
        """``GET /threads/{id}/runs/{run_id}``."""
        with self.core.lock:
            now = self.core.clock()
            thread, run = self._run(thread_id, run_id)
            self._settle(thread, now)
            return run.render(now)

    def list_runs(self, thread_id: str, query: dict[str, str]) -> Json:
        """``GET /threads/{id}/runs``."""
        limit, order = v.limit(query), v.order(query)
        with self.core.lock:
            now = self.core.clock()
            thread = self._thread(thread_id)
            self._settle(thread, now)
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
            thread, run = self._run(thread_id, run_id)
            self._settle(thread, now)
            status = run.timeline.status(now)
            if status not in ("queued", "in_progress", "requires_action"):
                raise errors.ApiError(400, f"Cannot cancel run with status '{status}'.")
            run.timeline.cancel_asked = now
            run.timeline.cancel_done = now + self.core.config.cancel_delay
            self.core.stats.write(thread.id, "run.cancel", run.id, run.metadata, now)
            return run.render(now)

    def submit_tool_outputs(self, thread_id: str, run_id: str, body: Json) -> Json:
        """``POST .../submit_tool_outputs``: answers a ``requires_action`` run, which then
        goes on (queued → in_progress → completed, or a run fault) with the outputs in its
        reply."""
        if body.get("stream"):
            raise errors.ApiError(
                400, "The emulator does not stream; poll the run instead.", param="stream"
            )
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
        with self.core.lock:
            now = self.core.clock()
            thread, run = self._run(thread_id, run_id)
            self._settle(thread, now)
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
            if plan.outcome != "completed":
                self.core.stats.fault(f"run_{plan.outcome}")
            run.reply = expected_reply(
                run.answered_id, run.entries, [given[call_id] for call_id in expected]
            )
            self.core.stats.write(thread.id, "run.submit_tool_outputs", run.id, run.metadata, now)
            return run.render(now)

    # -- introspection ----------------------------------------------------------------------

    def run_intervals(self, now: float) -> list[tuple[float, float]]:
        """``(created, ended-or-now)`` of every run, for the concurrency peak."""
        with self.core.lock:
            intervals = []
            for run in self.runs.values():
                end = run.timeline.ends_at()
                intervals.append((run.created_at, now if end is None else min(end, now)))
            return intervals
