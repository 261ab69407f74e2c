"""Routes of the Conversations + Responses API family."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request

from thread_pool.emulator.service import Emulator

Json = dict[str, Any]


async def create_conversation(emulator: Emulator, request: Request, body: Json) -> Json:
    """``POST /v1/conversations``."""
    return emulator.conversations.create_conversation(body)


async def get_conversation(emulator: Emulator, request: Request, body: Json) -> Json:
    """``GET /v1/conversations/{conversation_id}``."""
    return emulator.conversations.get_conversation(request.path_params["conversation_id"])


async def update_conversation(emulator: Emulator, request: Request, body: Json) -> Json:
    """``POST /v1/conversations/{conversation_id}``."""
    conversation_id = request.path_params["conversation_id"]
    return emulator.conversations.update_conversation(conversation_id, body)


async def delete_conversation(emulator: Emulator, request: Request, body: Json) -> Json:
    """``DELETE /v1/conversations/{conversation_id}``."""
    return emulator.conversations.delete_conversation(request.path_params["conversation_id"])


async def create_items(emulator: Emulator, request: Request, body: Json) -> Json:
    """``POST /v1/conversations/{conversation_id}/items``."""
    return emulator.conversations.create_items(request.path_params["conversation_id"], body)


async def list_items(emulator: Emulator, request: Request, body: Json) -> Json:
    """``GET /v1/conversations/{conversation_id}/items``."""
    conversation_id = request.path_params["conversation_id"]
    return emulator.conversations.list_items(conversation_id, dict(request.query_params))


async def get_item(emulator: Emulator, request: Request, body: Json) -> Json:
    """``GET /v1/conversations/{conversation_id}/items/{item_id}``."""
    params = request.path_params
    return emulator.conversations.get_item(params["conversation_id"], params["item_id"])


async def create_response(emulator: Emulator, request: Request, body: Json) -> Json:
    """``POST /v1/responses``: a background response returns at once (``queued``); any other
    returns when it has ended, holding its conversation meanwhile."""
    store = emulator.responses
    response = store.create_response(body)
    if not response.background:
        # The only await in the emulator's request path; the state lock is not held across it.
        delay = response.timeline.work_ends - emulator.core.clock()
        if delay > 0:
            await asyncio.sleep(delay)
    return store.render_response(response.id)


async def get_response(emulator: Emulator, request: Request, body: Json) -> Json:
    """``GET /v1/responses/{response_id}``."""
    return emulator.responses.render_response(request.path_params["response_id"])


async def cancel_response(emulator: Emulator, request: Request, body: Json) -> Json:
    """``POST /v1/responses/{response_id}/cancel``."""
    return emulator.responses.cancel_response(request.path_params["response_id"])


ROUTES = [
    ("POST", "/conversations", create_conversation),
    ("GET", "/conversations/{conversation_id}", get_conversation),
    ("POST", "/conversations/{conversation_id}", update_conversation),
    ("DELETE", "/conversations/{conversation_id}", delete_conversation),
    ("POST", "/conversations/{conversation_id}/items", create_items),
    ("GET", "/conversations/{conversation_id}/items", list_items),
    ("GET", "/conversations/{conversation_id}/items/{item_id}", get_item),
    ("POST", "/responses", create_response),
    ("GET", "/responses/{response_id}", get_response),
    ("POST", "/responses/{response_id}/cancel", cancel_response),
]
