"""Conversations and their items, and the ``conversation_locked`` rule that guards them.

A response on a conversation holds it while ``queued`` or ``in_progress``. Its input items and
output items join the conversation when it completes (UPSTREAM.md); a failed or cancelled
response adds nothing. Status is computed from a timeline, as for runs (see lifecycle.py), and
settled here whenever the conversation is touched. Responses themselves are made by
:class:`~thread_pool.emulator.responses.ResponsesStore`.
"""

from __future__ import annotations

from typing import Any

from thread_pool.emulator import errors
from thread_pool.emulator import validation as v
from thread_pool.emulator.conversation_items import parse_items
from thread_pool.emulator.conversation_records import (
    RESPONSE_BLOCKING,
    ConversationRec,
    ResponseRec,
)
from thread_pool.emulator.core import Core, new_id
from thread_pool.emulator.pagination import paginate

Json = dict[str, Any]


def _items_of(body: Json) -> list[Json]:
    """The request's ``items`` (≤ 20), validated into new items."""
    raw = v.array(body, "items")
    if len(raw) > v.MAX_ITEMS:
        raise errors.array_too_long("items", v.MAX_ITEMS, len(raw))
    return parse_items(raw, "items")


class ConversationsStore:
    """The conversations, guarded by ``core.lock``.

    :meth:`conversation`, :meth:`find` and :meth:`settle` expect the caller to hold ``core.lock``
    already.
    """

    def __init__(self, core: Core) -> None:
        self.core = core
        self.conversations: dict[str, ConversationRec] = {}

    def clear(self) -> None:
        """Forget everything."""
        with self.core.lock:
            self.conversations.clear()

    # -- the lock rule ----------------------------------------------------------------------

    def conversation(self, conversation_id: str) -> ConversationRec:
        """The conversation, or the upstream's 404."""
        conversation = self.conversations.get(conversation_id)
        if conversation is None:
            raise errors.conversation_not_found(conversation_id)
        return conversation

    def settle(self, conversation: ConversationRec, now: float) -> None:
        """Retire the responses on it that have ended; add the items of those that completed
        (and were saved)."""
        response = conversation.active
        if response is not None and self._ended(conversation, response, now):
            conversation.release(self.core.stats)
        if conversation.unlocked:
            ended = [r for r in conversation.unlocked if self._ended(conversation, r, now)]
            conversation.unlocked = [r for r in conversation.unlocked if r not in ended]

    def _ended(self, conversation: ConversationRec, response: ResponseRec, now: float) -> bool:
        """Whether ``response`` has ended; if it completed and could be saved, its items join
        the conversation (and, on a server that keeps one context snapshot, replace it)."""
        status, _ = response.status_since(now)
        if status in RESPONSE_BLOCKING:
            return False
        if status == "completed" and response.unsaved is None:
            new = [*response.input_items, *response.output_items]
            conversation.items.extend(new)
            if self.core.config.first_response_reads is not None:
                # The snapshot of the response that ends last wins (llama-stack's overwrite).
                conversation.context = [*response.read_items, *new]
        return True

    def model_items(self, conversation: ConversationRec) -> list[Json]:
        """What a new response on ``conversation`` reads: all its items, or (a server that keeps
        one snapshot) the oldest ``first_response_reads`` before its first completed response,
        the last snapshot after."""
        cap = self.core.config.first_response_reads
        if cap is None:
            return conversation.items
        if conversation.context is None:
            return conversation.items[:cap]
        return conversation.context

    def settle_if_present(self, conversation_id: str | None, now: float) -> None:
        """:meth:`settle` the conversation if it (still) exists."""
        if conversation_id is None:
            return
        conversation = self.conversations.get(conversation_id)
        if conversation is not None:
            self.settle(conversation, now)

    # -- conversations ----------------------------------------------------------------------

    def create_conversation(self, body: Json) -> Json:
        """``POST /conversations`` (≤ 20 initial items, metadata)."""
        metadata = v.metadata(body)
        items = _items_of(body)
        with self.core.lock:
            now = self.core.clock()
            conversation = ConversationRec(
                id=new_id("conv"), created_at=now, metadata=metadata, items=items
            )
            self.conversations[conversation.id] = conversation
            self.core.stats.write(
                conversation.id, "conversation.create", conversation.id, metadata, now
            )
            return conversation.render()

    def get_conversation(self, conversation_id: str) -> Json:
        """``GET /conversations/{id}``."""
        with self.core.lock:
            return self.conversation(conversation_id).render()

    def update_conversation(self, conversation_id: str, body: Json) -> Json:
        """``POST /conversations/{id}`` (metadata)."""
        if body.get("metadata") is None:
            raise errors.missing("metadata")
        metadata = v.metadata(body)
        with self.core.lock:
            conversation = self.conversation(conversation_id)
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
            conversation = self.conversation(conversation_id)
            conversation.release(self.core.stats)
            del self.conversations[conversation_id]
        return {"id": conversation_id, "object": "conversation.deleted", "deleted": True}

    # -- items ------------------------------------------------------------------------------

    def create_items(self, conversation_id: str, body: Json) -> Json:
        """``POST /conversations/{id}/items`` (≤ 20 items)."""
        if body.get("items") is None:
            raise errors.missing("items")
        items = _items_of(body)
        with self.core.lock:
            now = self.core.clock()
            conversation = self.conversation(conversation_id)
            self.settle(conversation, now)
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
            conversation = self.conversation(conversation_id)
            self.settle(conversation, self.core.clock())
            return paginate(
                list(conversation.items), lambda i: i["id"], dict, query, limit=limit, order=order
            )

    def get_item(self, conversation_id: str, item_id: str) -> Json:
        """``GET /conversations/{id}/items/{item_id}``."""
        with self.core.lock:
            conversation = self.conversation(conversation_id)
            self.settle(conversation, self.core.clock())
            for item in conversation.items:
                if item["id"] == item_id:
                    return dict(item)
        raise errors.item_not_found(item_id)
