"""Conversation items (messages, ``function_call``, ``function_call_output``): parsing them from
a request, making new ones, and the digest entry each one counts as (see replies.py)."""

from __future__ import annotations

from typing import Any

from thread_pool.emulator import errors
from thread_pool.emulator import validation as v
from thread_pool.emulator.core import new_id
from thread_pool.emulator.replies import Entry

Json = dict[str, Any]

#: The item types a request may carry.
ITEM_TYPES = ("message", "function_call", "function_call_output")


def entry_of(item: Json) -> Entry:
    """The digest entry of a conversation item (see replies.py)."""
    kind = item["type"]
    if kind == "message":
        return item["role"], "\n".join(part["text"] for part in item["content"])
    if kind == "function_call":
        return "function_call", f"{item['name']} {item['arguments']}"
    return "function_call_output", item["output"]


def message_item(role: str, text: str) -> Json:
    """A completed message item (an assistant's text is ``output_text``, anyone else's is
    ``input_text``)."""
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


def function_call_item(name: str, arguments: str, call_id: str | None = None) -> Json:
    """A completed ``function_call`` item: one a client sent (``call_id`` given) or one a
    response makes (a new call id)."""
    item_id = new_id("fc")
    return {
        "id": item_id,
        "type": "function_call",
        "status": "completed",
        "call_id": new_id("call") if call_id is None else call_id,
        "name": name,
        "arguments": arguments,
    }


def parse_items(raw: list[Any], param: str) -> list[Json]:
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
            items.append(message_item(role, text))
        elif kind == "function_call_output":
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
            items.append(function_call_item(name, arguments, call_id))
        else:
            raise errors.invalid_value(f"{where}.type", kind, ITEM_TYPES)
    return items
