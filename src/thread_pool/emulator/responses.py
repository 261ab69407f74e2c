"""Responses: how one is made (history, tool calls or reply, plan), read and cancelled.

A response on a conversation holds it (``conversation_locked`` for any other) until it ends; the
conversation, its items and that rule are :mod:`.conversations`'s.
"""

from __future__ import annotations

from typing import Any

from thread_pool.emulator import errors
from thread_pool.emulator import validation as v
from thread_pool.emulator.conversation_items import (
    entry_of,
    function_call_item,
    message_item,
    parse_items,
)
from thread_pool.emulator.conversation_records import RESPONSE_BLOCKING, ResponseRec
from thread_pool.emulator.conversations import ConversationsStore
from thread_pool.emulator.core import Core, new_id
from thread_pool.emulator.lifecycle import Timeline
from thread_pool.emulator.replies import Entry, expected_reply, find_tool_calls
from thread_pool.emulator.response_events import ResponseEvents
from thread_pool.emulator.streams import EventStream

Json = dict[str, Any]


def _conversation_id(body: Json) -> str | None:
    """``conversation``: an id, or an object with one."""
    conversation_id = body.get("conversation")
    if isinstance(conversation_id, dict):
        conversation_id = conversation_id.get("id")
    if conversation_id is not None and not isinstance(conversation_id, str):
        raise errors.wrong_type("conversation", "a string", conversation_id)
    return conversation_id


def _input_items(body: Json) -> list[Json]:
    """``input``: a string (one user message) or an array of items."""
    raw_input = body.get("input")
    if isinstance(raw_input, str):
        raw_input = [{"role": "user", "content": raw_input}]
    elif raw_input is None:
        raw_input = []
    elif not isinstance(raw_input, list):
        raise errors.wrong_type("input", "one of a string or array of objects", raw_input)
    return parse_items(raw_input, "input")


def _check_tool_pairs(history: list[Json], new: list[Json]) -> None:
    """Every ``function_call_output`` answers a known call, and no call goes unanswered."""
    calls = [i["call_id"] for i in (*history, *new) if i["type"] == "function_call"]
    answered = {i["call_id"] for i in (*history, *new) if i["type"] == "function_call_output"}
    for item in new:
        if item["type"] == "function_call_output" and item["call_id"] not in calls:
            raise errors.ApiError(
                400,
                f"No tool call found for function call output with call_id {item['call_id']}.",
                param="input",
            )
    for call_id in calls:
        if call_id not in answered:
            raise errors.ApiError(
                400, f"No tool output found for function call {call_id}.", param="input"
            )


def _output_items(input_items: list[Json], entries: list[Entry], declared: list[str]) -> list[Json]:
    """What a response answers: one ``function_call`` per tool trigger in the user message it
    answers, or else the deterministic reply (with any tool outputs it was given)."""
    answered = input_items[-1] if input_items else None
    calls = []
    if answered is not None and answered["type"] == "message" and answered["role"] == "user":
        calls = find_tool_calls(entry_of(answered)[1], declared)
    if calls:
        return [function_call_item(call.name, call.arguments) for call in calls]
    outputs = [i["output"] for i in input_items if i["type"] == "function_call_output"]
    reply = expected_reply(answered["id"] if answered else None, entries, outputs)
    return [message_item("assistant", reply)]


class ResponsesStore:
    """The responses of the Responses API, guarded by ``core.lock``."""

    def __init__(self, core: Core, conversations: ConversationsStore) -> None:
        self.core = core
        self.conversations = conversations
        self.responses: dict[str, ResponseRec] = {}

    def clear(self) -> None:
        """Forget everything."""
        with self.core.lock:
            self.responses.clear()

    def _response(self, response_id: str) -> ResponseRec:
        response = self.responses.get(response_id)
        if response is None:
            raise errors.response_not_found(response_id)
        return response

    def create_response(self, body: Json) -> ResponseRec:
        """``POST /responses``: refused with ``conversation_locked`` while another response
        holds the conversation. Returns the record; the route waits for it unless
        ``background``."""
        model = v.required_string(body, "model")
        conversation_id = _conversation_id(body)
        previous_id = v.string(body, "previous_response_id")
        if conversation_id is not None and previous_id is not None:
            raise errors.ApiError(
                400,
                "Mutually exclusive parameters: Ensure you are only providing one of: "
                "'previous_response_id' or 'conversation'.",
                code="mutually_exclusive_parameters",
            )
        if self.core.config.require_input and not body.get("input"):
            raise errors.missing("input")
        input_items = _input_items(body)
        background = v.boolean(body, "background")
        stream = v.boolean(body, "stream")
        tools = v.array(body, "tools")
        declared = v.function_names(tools)
        metadata = v.metadata(body)
        instructions = v.string(body, "instructions")
        config = self.core.config
        with self.core.lock:
            now = self.core.clock()
            conversation = None
            history: list[Entry] = []
            history_items: list[Json] = []
            if conversation_id is not None:
                conversation = self.conversations.conversation(conversation_id)
                self.conversations.settle(conversation, now)
                blocker = conversation.active
                if blocker is not None and config.conversation_lock:
                    self.core.stats.refused(
                        conversation.id, "response.refused", blocker.id, blocker.metadata, now
                    )
                    raise errors.conversation_locked()
                history_items = self.conversations.model_items(conversation)
                history = [entry_of(item) for item in history_items]
            elif previous_id is not None:
                previous = self.responses.get(previous_id)
                if previous is None:
                    raise errors.ApiError(
                        400,
                        f"Previous response with id '{previous_id}' not found.",
                        param="previous_response_id",
                        code="previous_response_not_found",
                    )
                history = previous.context + [entry_of(i) for i in previous.output_items]
            _check_tool_pairs(history_items, input_items)
            entries = history + [entry_of(item) for item in input_items]
            output_items = _output_items(input_items, entries, declared)
            unsaved = None
            cap, count = config.max_response_items, len(input_items) + len(output_items)
            if cap is not None and count > cap:
                if not background:
                    raise errors.too_many_items(cap, count)
                unsaved = errors.too_many_items(cap, count).message
            plan = self.core.planner.run_plan(config)
            outcome = plan.outcome
            if outcome == "expired" or (outcome == "stuck" and not background):
                # Responses do not expire: an expiry becomes a failure, and a synchronous
                # request cannot hang forever, so it is not made stuck.
                outcome = "failed" if outcome == "expired" else "completed"
            if outcome != "completed":
                self.core.stats.fault(f"run_{outcome}")
            queued_until = now + plan.queued_for
            response = ResponseRec(
                id=new_id("resp"),
                created_at=now,
                model=model,
                background=background,
                conversation_id=conversation_id,
                previous_response_id=previous_id,
                instructions=instructions,
                tools=tools,
                metadata=metadata,
                timeline=Timeline(
                    queued_until, queued_until + plan.working_for, outcome, float("inf")
                ),
                input_items=input_items,
                output_items=output_items,
                context=entries,
                prompt_chars=sum(len(text) for _, text in entries),
                stream=stream,
                unsaved=unsaved,
                read_items=list(history_items),
            )
            self.responses[response.id] = response
            if conversation is not None:
                if config.conversation_lock:
                    conversation.hold(response, self.core.stats)
                else:
                    conversation.unlocked.append(response)
                self.core.stats.write(
                    conversation.id, "response.create", response.id, metadata, now
                )
            return response

    def render_response(self, response_id: str) -> Json:
        """``GET /responses/{id}`` (settling its conversation first)."""
        with self.core.lock:
            now = self.core.clock()
            response = self._response(response_id)
            self.conversations.settle_if_present(response.conversation_id, now)
            return response.render(now)

    def retrieve_response(self, response_id: str, query: dict[str, str]) -> Json | EventStream:
        """``GET /responses/{id}``, or with ``stream=true`` its events again after
        ``starting_after`` (a background response created with ``stream=true`` only)."""
        stream, after = v.stream_query(query)
        if not stream:
            return self.render_response(response_id)
        with self.core.lock:
            response = self._response(response_id)
            if not (response.background and response.stream):
                raise errors.ApiError(
                    400,
                    f"Response {response_id} cannot be streamed: only a response created with "
                    "background=true and stream=true can be.",
                    param="stream",
                )
            return self.open_stream(response, after=after, creating=False)

    def open_stream(self, response: ResponseRec, *, after: int, creating: bool) -> EventStream:
        """The stream of ``response``'s events after index ``after``, with the stream-drop
        fault drawn for it."""
        with self.core.lock:
            source = ResponseEvents(
                response, creating=creating, end=self._end_unheard, stalled=self._stalled
            )
            count = len(source.schedule().events) - (after + 1)
            cut = self.core.planner.stream_cut(self.core.config, count)
            return EventStream(source, after, cut)

    def _end_unheard(self, response: ResponseRec, now: float) -> None:
        """A synchronous streamed response whose client went away ends there (``cancelled``,
        nothing added to its conversation), releasing the conversation at once."""
        response.timeline.cancel_asked = now
        response.timeline.cancel_done = now
        if response.conversation_id is not None:
            self.core.stats.write(
                response.conversation_id,
                "response.disconnect",
                response.id,
                response.metadata,
                now,
            )
            self.conversations.settle_if_present(response.conversation_id, now)

    def _stalled(self, response: ResponseRec) -> None:
        self.core.stats.fault("stream_stall")

    def cancel_response(self, response_id: str) -> Json:
        """``POST /responses/{id}/cancel``: background responses only; idempotent once done
        (``cancel_conflict``: always refused with 409)."""
        with self.core.lock:
            now = self.core.clock()
            response = self._response(response_id)
            if not response.background:
                raise errors.ApiError(
                    400, "Only responses created with background=true can be cancelled."
                )
            status, _ = response.status_since(now)
            if self.core.config.cancel_conflict:
                raise errors.cancel_conflict(response.id, status)
            if status in RESPONSE_BLOCKING:
                response.timeline.cancel_asked = now
                response.timeline.cancel_done = now
                if response.conversation_id is not None:
                    self.core.stats.write(
                        response.conversation_id,
                        "response.cancel",
                        response.id,
                        response.metadata,
                        now,
                    )
                    self.conversations.settle_if_present(response.conversation_id, now)
            return response.render(now)

    def response_intervals(self, now: float) -> list[tuple[float, float]]:
        """``(created, ended-or-now)`` of every response on a conversation."""
        with self.core.lock:
            intervals = []
            for response in self.responses.values():
                if response.conversation_id is None:
                    continue
                end = response.timeline.ends_at()
                if response.timeline.outcome == "stuck" and response.timeline.cancel_done is None:
                    end = None
                intervals.append((response.created_at, now if end is None else min(end, now)))
            return intervals
