"""Conversations + Responses state: conversations, items, responses, and ``conversation_locked``.

A response on a conversation holds it while ``queued`` or ``in_progress``. Its input items and
output items join the conversation when it completes (UPSTREAM.md); a failed or cancelled
response adds nothing. Status is computed from a timeline, as for runs (see lifecycle.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from thread_pool.emulator import errors
from thread_pool.emulator import validation as v
from thread_pool.emulator.core import Core, new_id
from thread_pool.emulator.lifecycle import Timeline
from thread_pool.emulator.pagination import paginate
from thread_pool.emulator.replies import Entry, expected_reply, find_tool_calls

Json = dict[str, Any]

#: Response statuses that hold the conversation.
RESPONSE_BLOCKING = frozenset({"queued", "in_progress"})


def entry_of(item: Json) -> Entry:
    """The digest entry of a conversation item (see replies.py)."""
    kind = item["type"]
    if kind == "message":
        return item["role"], "\n".join(part["text"] for part in item["content"])
    if kind == "function_call":
        return "function_call", f"{item['name']} {item['arguments']}"
    return "function_call_output", item["output"]


def _message_item(role: str, text: str) -> Json:
    part_type = "output_text" if role == "assistant" else "input_text"
    part: Json = {"type": part_type, "text": text}
    if role == "assistant":
        part["annotations"] = []
    return {
        "id": new_id("msg"),
        "type": "message",
        "status": "completed",
        "role": role,
        "content": [part],
    }


def parse_items(raw: list[Any], param: str, *, allow_outputs: bool = True) -> list[Json]:
    """Validate input items (messages, ``function_call``, ``function_call_output``) into
    conversation items with fresh ids."""
    items: list[Json] = []
    for index, item in enumerate(raw):
        where = f"{param}[{index}]"
        if not isinstance(item, dict):
            raise errors.wrong_type(where, "an object", item)
        kind = item.get("type", "message")
        if kind == "message":
            role = v.role(item.get("role"), f"{where}.role", v.CONVERSATION_ROLES)
            if item.get("content") is None:
                raise errors.missing(f"{where}.content")
            text = v.message_text(
                item["content"], f"{where}.content", ("input_text", "output_text", "text")
            )
            items.append(_message_item(role, text))
        elif kind == "function_call_output" and allow_outputs:
            call_id = v.required_string(item, "call_id", param=f"{where}.call_id")
            output = v.content_string(item, "output", f"{where}.output")
            items.append(
                {
                    "id": new_id("fco"),
                    "type": "function_call_output",
                    "status": "completed",
                    "call_id": call_id,
                    "output": output,
                }
            )
        elif kind == "function_call":
            call_id = v.required_string(item, "call_id", param=f"{where}.call_id")
            name = v.required_string(item, "name", param=f"{where}.name")
            arguments = v.required_string(item, "arguments", param=f"{where}.arguments")
            items.append(
                {
                    "id": new_id("fc"),
                    "type": "function_call",
                    "status": "completed",
                    "call_id": call_id,
                    "name": name,
                    "arguments": arguments,
                }
            )
        else:
            supported = ("message", "function_call", "function_call_output")
            raise errors.invalid_value(f"{where}.type", kind, supported)
    return items


@dataclass
class ConversationRec:
    """One conversation: its items and the response holding it (if any)."""

    id: str
    created_at: float
    metadata: dict[str, str]
    items: list[Json] = field(default_factory=list)
    active: ResponseRec | None = None

    def render(self) -> Json:
        """The upstream ``conversation`` object."""
        return {
            "id": self.id,
            "object": "conversation",
            "created_at": int(self.created_at),
            "metadata": self.metadata,
        }


@dataclass
class ResponseRec:
    """One response; its status is ``timeline.status(now)`` (no expiry for responses)."""

    id: str
    created_at: float
    model: str
    background: bool
    conversation_id: str | None
    previous_response_id: str | None
    instructions: str | None
    tools: list[Any]
    metadata: dict[str, str]
    timeline: Timeline
    input_items: list[Json]
    output_items: list[Json]
    context: list[Entry]
    prompt_chars: int

    def status_since(self, now: float) -> tuple[str, float]:
        """Status at ``now``; a stuck response stays ``in_progress`` until cancelled."""
        status, since = self.timeline.status_since(now)
        if status == "cancelling":
            return "cancelled", since
        return status, since

    def render(self, now: float) -> Json:
        """The upstream ``response`` object at time ``now``."""
        status, since = self.status_since(now)
        done = status == "completed"
        usage = None
        if done:
            prompt = self.prompt_chars // 4 + 1
            completion = sum(len(entry_of(i)[1]) for i in self.output_items) // 4 + 1
            usage = {
                "input_tokens": prompt,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": completion,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": prompt + completion,
            }
        return {
            "id": self.id,
            "object": "response",
            "created_at": int(self.created_at),
            "status": status,
            "background": self.background,
            "completed_at": int(since) if done else None,
            "error": (
                {"code": "server_error", "message": "Sorry, something went wrong."}
                if status == "failed"
                else None
            ),
            "incomplete_details": None,
            "instructions": self.instructions,
            "max_output_tokens": None,
            "model": self.model,
            "output": self.output_items if done else [],
            "parallel_tool_calls": True,
            "previous_response_id": self.previous_response_id,
            "conversation": {"id": self.conversation_id} if self.conversation_id else None,
            "reasoning": {"effort": None, "summary": None},
            "store": True,
            "temperature": 1.0,
            "text": {"format": {"type": "text"}},
            "tool_choice": "auto",
            "tools": self.tools,
            "top_p": 1.0,
            "truncation": "disabled",
            "usage": usage,
            "user": None,
            "metadata": self.metadata,
        }


class ConversationsStore:
    """The Conversations + Responses API's objects, guarded by ``core.lock``."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self.conversations: dict[str, ConversationRec] = {}
        self.responses: dict[str, ResponseRec] = {}

    def clear(self) -> None:
        """Forget everything."""
        with self.core.lock:
            self.conversations.clear()
            self.responses.clear()

    def _conversation(self, conversation_id: str) -> ConversationRec:
        conversation = self.conversations.get(conversation_id)
        if conversation is None:
            raise errors.conversation_not_found(conversation_id)
        return conversation

    def _settle(self, conversation: ConversationRec, now: float) -> None:
        """Retire the active response if it has ended; add its items if it completed."""
        response = conversation.active
        if response is None:
            return
        status, _ = response.status_since(now)
        if status in RESPONSE_BLOCKING:
            return
        if status == "completed":
            conversation.items.extend(response.input_items)
            conversation.items.extend(response.output_items)
        conversation.active = None
        self.core.stats.deactivate(conversation.id)

    # -- conversations ----------------------------------------------------------------------

    def create_conversation(self, body: Json) -> Json:
        """``POST /conversations`` (≤ 20 initial items, metadata)."""
        metadata = v.metadata(body)
        raw = v.array(body, "items")
        if len(raw) > v.MAX_ITEMS:
            raise errors.array_too_long("items", v.MAX_ITEMS, len(raw))
        items = parse_items(raw, "items")
        with self.core.lock:
            now = self.core.clock()
            conversation = ConversationRec(new_id("conv"), now, metadata, items)
            self.conversations[conversation.id] = conversation
            self.core.stats.write(
                conversation.id, "conversation.create", conversation.id, metadata, now
            )
            return conversation.render()

    def get_conversation(self, conversation_id: str) -> Json:
        """``GET /conversations/{id}``."""
        with self.core.lock:
            return self._conversation(conversation_id).render()

    def update_conversation(self, conversation_id: str, body: Json) -> Json:
        """``POST /conversations/{id}`` (metadata)."""
        if body.get("metadata") is None:
            raise errors.missing("metadata")
        metadata = v.metadata(body)
        with self.core.lock:
            conversation = self._conversation(conversation_id)
            conversation.metadata = metadata
            self.core.stats.write(
                conversation.id,
                "conversation.update",
                conversation.id,
                metadata,
                self.core.clock(),
            )
            return conversation.render()

    def delete_conversation(self, conversation_id: str) -> Json:
        """``DELETE /conversations/{id}``."""
        with self.core.lock:
            conversation = self._conversation(conversation_id)
            if conversation.active is not None:
                conversation.active = None
                self.core.stats.deactivate(conversation.id)
            del self.conversations[conversation_id]
        return {"id": conversation_id, "object": "conversation.deleted", "deleted": True}

    # -- items ------------------------------------------------------------------------------

    def create_items(self, conversation_id: str, body: Json) -> Json:
        """``POST /conversations/{id}/items`` (≤ 20 items)."""
        if body.get("items") is None:
            raise errors.missing("items")
        raw = v.array(body, "items")
        if len(raw) > v.MAX_ITEMS:
            raise errors.array_too_long("items", v.MAX_ITEMS, len(raw))
        items = parse_items(raw, "items")
        with self.core.lock:
            now = self.core.clock()
            conversation = self._conversation(conversation_id)
            self._settle(conversation, now)
            conversation.items.extend(items)
            for item in items:
                self.core.stats.write(conversation.id, "item.create", item["id"], {}, now)
        return {
            "object": "list",
            "data": items,
            "first_id": items[0]["id"] if items else None,
            "last_id": items[-1]["id"] if items else None,
            "has_more": False,
        }

    def list_items(self, conversation_id: str, query: dict[str, str]) -> Json:
        """``GET /conversations/{id}/items`` (default newest first, like upstream)."""
        limit, order = v.limit(query), v.order(query)
        with self.core.lock:
            conversation = self._conversation(conversation_id)
            self._settle(conversation, self.core.clock())
            return paginate(
                list(conversation.items), lambda i: i["id"], dict, query, limit=limit, order=order
            )

    def get_item(self, conversation_id: str, item_id: str) -> Json:
        """``GET /conversations/{id}/items/{item_id}``."""
        with self.core.lock:
            conversation = self._conversation(conversation_id)
            self._settle(conversation, self.core.clock())
            for item in conversation.items:
                if item["id"] == item_id:
                    return dict(item)
        raise errors.item_not_found(item_id)

    # -- responses --------------------------------------------------------------------------

    def create_response(self, body: Json) -> ResponseRec:
        """``POST /responses``: refused with ``conversation_locked`` while another response
        holds the conversation. Returns the record; the route waits for it unless
        ``background``."""
        model = v.required_string(body, "model")
        conversation_id = body.get("conversation")
        if isinstance(conversation_id, dict):
            conversation_id = conversation_id.get("id")
        if conversation_id is not None and not isinstance(conversation_id, str):
            raise errors.wrong_type("conversation", "a string", conversation_id)
        previous_id = v.string(body, "previous_response_id")
        if conversation_id is not None and previous_id is not None:
            raise errors.ApiError(
                400,
                "Mutually exclusive parameters: Ensure you are only providing one of: "
                "'previous_response_id' or 'conversation'.",
                code="mutually_exclusive_parameters",
            )
        raw_input = body.get("input")
        if isinstance(raw_input, str):
            raw_input = [{"role": "user", "content": raw_input}]
        elif raw_input is None:
            raw_input = []
        elif not isinstance(raw_input, list):
            raise errors.wrong_type("input", "one of a string or array of objects", raw_input)
        input_items = parse_items(raw_input, "input")
        background = v.boolean(body, "background")
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
                conversation = self._conversation(conversation_id)
                self._settle(conversation, now)
                blocker = conversation.active
                if blocker is not None:
                    self.core.stats.refused(
                        conversation.id, "response.refused", blocker.id, blocker.metadata, now
                    )
                    raise errors.conversation_locked()
                history_items = conversation.items
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
            self._check_tool_pairs(history_items, input_items)
            entries = history + [entry_of(item) for item in input_items]
            answered = input_items[-1] if input_items else None
            calls = []
            if (
                answered is not None
                and answered["type"] == "message"
                and answered["role"] == "user"
            ):
                calls = find_tool_calls(entry_of(answered)[1], declared)
            outputs = [i["output"] for i in input_items if i["type"] == "function_call_output"]
            if calls:
                output_items = [
                    {
                        "id": new_id("fc"),
                        "type": "function_call",
                        "status": "completed",
                        "call_id": new_id("call"),
                        "name": call.name,
                        "arguments": call.arguments,
                    }
                    for call in calls
                ]
            else:
                reply = expected_reply(answered["id"] if answered else None, entries, outputs)
                output_items = [_message_item("assistant", reply)]
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
            )
            self.responses[response.id] = response
            if conversation is not None:
                conversation.active = response
                self.core.stats.activate(conversation.id)
                self.core.stats.write(
                    conversation.id, "response.create", response.id, metadata, now
                )
            return response

    @staticmethod
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

    def render_response(self, response_id: str) -> Json:
        """``GET /responses/{id}`` (settling its conversation first)."""
        with self.core.lock:
            now = self.core.clock()
            response = self.responses.get(response_id)
            if response is None:
                raise errors.response_not_found(response_id)
            if response.conversation_id in self.conversations:
                self._settle(self.conversations[response.conversation_id], now)
            return response.render(now)

    def cancel_response(self, response_id: str) -> Json:
        """``POST /responses/{id}/cancel``: background responses only; idempotent once done."""
        with self.core.lock:
            now = self.core.clock()
            response = self.responses.get(response_id)
            if response is None:
                raise errors.response_not_found(response_id)
            if not response.background:
                raise errors.ApiError(
                    400, "Only responses created with background=true can be cancelled."
                )
            status, _ = response.status_since(now)
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
                    if response.conversation_id in self.conversations:
                        self._settle(self.conversations[response.conversation_id], now)
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
