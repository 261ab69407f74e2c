"""Assistants: the model, instructions and tools a run uses unless the run overrides them."""

from __future__ import annotations

from typing import Any

from thread_pool.emulator import errors
from thread_pool.emulator import validation as v
from thread_pool.emulator.core import Core, new_id

Json = dict[str, Any]


class AssistantsStore:
    """The assistants, kept as their upstream JSON, guarded by ``core.lock``."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self.assistants: dict[str, Json] = {}

    def clear(self) -> None:
        """Forget everything."""
        with self.core.lock:
            self.assistants.clear()

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
        """``GET /assistants/{id}`` (also how a run finds its assistant)."""
        with self.core.lock:
            assistant = self.assistants.get(assistant_id)
        if assistant is None:
            raise errors.not_found("assistant", assistant_id)
        return assistant
