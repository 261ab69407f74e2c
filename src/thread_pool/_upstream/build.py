"""Building a backend from its name: the one way the CLI, the stress test, the examples and the
tests turn ``"assistants"`` / ``"conversations"`` into a backend."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, overload

import openai

from thread_pool.errors import InvalidArgument

if TYPE_CHECKING:
    from thread_pool._async.backend import AsyncBackend
    from thread_pool._sync.backend import Backend

BACKENDS = ("assistants", "conversations")
"""The upstream APIs a pool can speak."""


@overload
def build_backend(name: str, client: openai.AsyncOpenAI, **options: Any) -> AsyncBackend: ...


@overload
def build_backend(name: str, client: openai.OpenAI, **options: Any) -> Backend: ...


def build_backend(
    name: str, client: openai.OpenAI | openai.AsyncOpenAI, **options: Any
) -> Backend | AsyncBackend:
    """The backend of API ``name`` (``"assistants"`` or ``"conversations"``) over ``client``:
    an asyncio backend for an ``openai.AsyncOpenAI``, a blocking one for an ``openai.OpenAI``.
    ``options`` go to its constructor (``assistant_id``, ``model``, ``settle_wait``, ...)."""
    if name not in BACKENDS:
        raise InvalidArgument(f"backend must be one of {', '.join(BACKENDS)}, not {name!r}")
    if isinstance(client, openai.AsyncOpenAI):
        from thread_pool._async.assistants import AsyncAssistantsBackend
        from thread_pool._async.conversations import AsyncConversationsBackend

        async_kind = AsyncAssistantsBackend if name == "assistants" else AsyncConversationsBackend
        return async_kind(client, **options)
    if isinstance(client, openai.OpenAI):
        from thread_pool._sync.assistants import AssistantsBackend
        from thread_pool._sync.conversations import ConversationsBackend

        kind = AssistantsBackend if name == "assistants" else ConversationsBackend
        return kind(client, **options)
    raise InvalidArgument(f"client must be an openai.OpenAI or AsyncOpenAI, not {client!r:.80}")
