"""Routes of the Conversations + Responses API family.

Each route is served by the store method named beside it (see endpoints.py for how path
parameters, ``body`` and ``query`` reach it), except ``POST /responses``, which waits.
"""

from __future__ import annotations

import asyncio
from typing import Any

from thread_pool.emulator.endpoints import RouteSpec
from thread_pool.emulator.service import Emulator
from thread_pool.emulator.streams import EventStream

Json = dict[str, Any]


def routes(emulator: Emulator) -> list[RouteSpec]:
    """The Conversations and Responses APIs' routes (paths under ``/v1``) bound to
    ``emulator``'s stores."""
    conversations, responses = emulator.conversations, emulator.responses

    async def create_response(body: Json) -> Json | EventStream:
        """A streamed response answers with its events as they happen; a background response
        returns at once (``queued``); any other returns when it has ended, holding its
        conversation meanwhile."""
        response = responses.create_response(body)
        if response.stream:
            return responses.open_stream(response, after=-1, creating=True)
        if not response.background:
            # The only await in the emulator's request path; the state lock is not held across it.
            # Checked again on waking: uvloop's timers round to the millisecond and may wake a
            # little before the response has ended by the emulator's clock.
            for _ in range(100):  # bounded: each wake is at most a millisecond early
                delay = response.timeline.work_ends - emulator.core.clock()
                if delay <= 0:
                    break
                await asyncio.sleep(delay)
        return responses.render_response(response.id)

    return [
        ("POST", "/conversations", conversations.create_conversation),
        ("GET", "/conversations/{conversation_id}", conversations.get_conversation),
        ("POST", "/conversations/{conversation_id}", conversations.update_conversation),
        ("DELETE", "/conversations/{conversation_id}", conversations.delete_conversation),
        ("POST", "/conversations/{conversation_id}/items", conversations.create_items),
        ("GET", "/conversations/{conversation_id}/items", conversations.list_items),
        ("GET", "/conversations/{conversation_id}/items/{item_id}", conversations.get_item),
        ("POST", "/responses", create_response),
        ("GET", "/responses/{response_id}", responses.retrieve_response),
        ("POST", "/responses/{response_id}/cancel", responses.cancel_response),
    ]
