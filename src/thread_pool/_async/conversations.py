"""The Conversations + Responses API backend over the official ``openai`` SDK."""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping, Sequence
from typing import Any, Unpack

import openai

from thread_pool._acompat import finish_first, sleep
from thread_pool._async.backend import AsyncGuard, EventSink, ToolHandler
from thread_pool._async.backend_base import (
    BackendOptions,
    answer,
    poll_hint,
    sdk_params,
    sent_as_built,
)
from thread_pool._async.conversations_stream import BUSY, AsyncResponsesInFlight
from thread_pool._model.limits import MAX_ITEMS, MAX_METADATA_VALUE
from thread_pool._model.record import TOOL_ROLE, tool_of, tool_text
from thread_pool._model.stream import ToolCallEvent
from thread_pool._model.turns import (
    POOL_KEY,
    ToolCall,
    Turn,
    add_usage,
    check_turn_time,
    error_of,
    usage_of,
)
from thread_pool._upstream.retry_policy import is_size_refusal
from thread_pool.errors import InvalidArgument, RequestTooLarge, TurnFailed, UpstreamError

# The output given to a function call whose turn was cut short (upstream needs one before the
# conversation can go on).
INTERRUPTED = "error: this call was not answered; the turn that asked for it was interrupted"


def conversation_items(messages: Sequence[Mapping[str, str]]) -> list[dict[str, Any]]:
    """Context messages as conversation items: a tool call made on a sibling conversation is
    sent as the API's own pair of items (``function_call``, then its ``function_call_output``),
    so the model sees it as it would have on the conversation that made it."""
    items: list[dict[str, Any]] = []
    for m in messages:
        call = tool_of(m["content"]) if m["role"] == TOOL_ROLE else None
        if call is not None:
            items.append(
                {
                    "type": "function_call",
                    "call_id": call.id,
                    "name": call.name,
                    "arguments": call.arguments,
                }
            )
            items.append(
                {"type": "function_call_output", "call_id": call.id, "output": call.output or ""}
            )
        elif m["role"] == TOOL_ROLE:
            items.append(
                {"type": "message", "role": "assistant", "content": tool_text(m["content"])}
            )
        else:
            items.append({"type": "message", "role": m["role"], "content": m["content"]})
    return items


def batches(items: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """``items`` in requests of at most ``MAX_ITEMS``, never parting a function call from its
    output (a server may check that every call in a request is answered)."""
    out: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    for item in items:
        # A call reserves room for its output, which always follows it.
        size = 2 if item.get("type") == "function_call" else 1
        if current and len(current) + size > MAX_ITEMS:
            out.append(current)
            current = []
        current.append(item)
    out.append(current)
    return out


class AsyncConversationsBackend(AsyncResponsesInFlight):
    """Runs turns as responses on a conversation: one ``responses.create(conversation=...,
    input=[...])`` starts a turn. Synchronous by default (the reply comes with the request);
    ``background=True`` returns at once and polls, which suits long turns and lets a settler
    find and cancel a dead holder's response (the pool records its id in Redis).

    ``client`` is an ``openai.AsyncOpenAI``; its own retries are turned off and ``retry``
    applies. ``model`` and ``instructions`` may also be given per turn. A response that has not
    ended after ``turn_timeout`` seconds (a background response can stay ``in_progress`` for
    good) fails the turn (``TurnFailed``, status ``timed_out``) and is cancelled when its thread
    is settled.
    """

    def __init__(
        self,
        client: openai.AsyncOpenAI,
        *,
        model: str | None = None,
        instructions: str | None = None,
        background: bool = False,
        **options: Unpack[BackendOptions],
    ) -> None:
        super().__init__(client, **options)
        self.model = model
        self.instructions = instructions
        self.background = background
        self.run_params = sdk_params(
            self.client.responses.create, ("conversation", "input", "metadata")
        )
        """What ``run()`` may pass on to ``responses.create``."""

    def context_items(self, messages: Sequence[Mapping[str, str]]) -> list[dict[str, Any]]:
        """Context messages as items for ``responses.create(input=...)``, exactly as a turn
        sends them (``conversation_items``)."""
        return conversation_items(messages)

    # -- threads (conversations) -------------------------------------------------------------

    async def create_thread(self, key: str, messages: Sequence[Mapping[str, str]] = ()) -> str:
        """Create a conversation whose metadata names pool ``key``, seeded with ``messages``:
        the first ``MAX_ITEMS`` items with the create, the rest in as few ``items.create`` calls
        as upstream allows (``MAX_ITEMS`` each)."""
        first, *rest = batches(conversation_items(messages))
        seed: list[Any] = first
        conv = await self._request(
            "create a conversation",
            lambda: self.client.conversations.create(
                metadata={POOL_KEY: key[:MAX_METADATA_VALUE]}, items=seed
            ),
        )
        for batch in rest:
            await self._add_items(conv.id, batch)
        return conv.id

    async def _add_items(self, conv_id: str, items: list[Any]) -> None:
        await self._request(
            f"seed conversation {conv_id}",
            lambda: self.client.conversations.items.create(conv_id, items=items),
        )

    async def delete_thread(self, thread_id: str) -> bool:
        """Delete a conversation upstream; False if it was not there."""
        return await self._found(
            f"delete conversation {thread_id}", lambda: self.client.conversations.delete(thread_id)
        )

    async def settle_thread(self, key: str, thread_id: str, in_flight: str | None = None) -> bool:
        """Make the conversation ready for a new turn after its holder died or lost its lease:
        end the response it left in flight (``in_flight`` is ``fence|id``: wait ``settle_wait``,
        then cancel it and wait until it ended; ``fence|``, a request never named, ends
        nothing), then answer any function call it left unanswered (upstream refuses the next
        response until every call has an output). False if the conversation is gone."""
        response_id = (in_flight or "").rpartition("|")[2]
        if response_id:
            await self._end_response(response_id)
        try:
            page = await self._request(
                f"list items of {thread_id}",
                lambda: self.client.conversations.items.list(thread_id, limit=20, order="desc"),
            )
        except UpstreamError as exc:
            if exc.status_code == 404:
                return False
            raise
        # Item types are a wide union; only the two function-call kinds matter here.
        items: list[Any] = list(page.data)
        answered = {i.call_id for i in items if getattr(i, "type", None) == "function_call_output"}
        dangling = [
            i.call_id
            for i in items
            if getattr(i, "type", None) == "function_call" and i.call_id not in answered
        ]
        if dangling:
            outputs: list[Any] = [
                {"type": "function_call_output", "call_id": call_id, "output": INTERRUPTED}
                for call_id in dangling
            ]
            await self._request(
                f"close unanswered calls on {thread_id}",
                lambda: self.client.conversations.items.create(thread_id, items=outputs),
            )
        return True

    # -- turns -------------------------------------------------------------------------------

    async def run_turn(
        self,
        thread_id: str,
        message: str,
        guard: AsyncGuard,
        *,
        tool_handler: ToolHandler | None,
        metadata: Mapping[str, str],
        params: Mapping[str, Any],
        context: Sequence[Mapping[str, str]] = (),
        emit: EventSink | None = None,
    ) -> Turn:
        """Create a response with ``context`` and ``message`` on the conversation (one request:
        the context rides as ``input`` messages before the user message), wait for it, and
        answer function calls with ``function_call_output`` in the next response. With
        ``emit`` every response is streamed (and sent in the background: resumable,
        cancellable)."""
        options = dict(params)
        model = options.pop("model", None) or self.model
        if not model:
            raise InvalidArgument("no model: give it to ConversationsBackend or to run()")
        instructions = options.pop("instructions", None) or self.instructions
        if instructions is not None:
            options["instructions"] = instructions
        background = emit is not None or bool(options.pop("background", self.background))
        items: list[dict[str, Any]] = [
            *self.context_items(context),
            {"role": "user", "content": message},
        ]
        usage: dict[str, int] = {}
        answered: list[ToolCall] = []
        request_id: str | None = None
        started = time.monotonic()
        while True:
            resp, rid = await self._respond(
                thread_id, model, items, metadata, options, background, guard, started, emit
            )
            request_id = request_id or rid
            usage = add_usage(usage, usage_of(resp))
            if background and resp.status == "completed":
                resp = await self._confirm_saved(thread_id, resp)
            if resp.status != "completed":
                error = error_of(resp) or {}
                if is_size_refusal(error.get("code"), error.get("message")):
                    raise RequestTooLarge(
                        f"response {resp.id} on {thread_id} could not be saved: "
                        f"{error.get('message')}",
                        code=error.get("code"),
                        request_id=request_id,
                    )
                raise TurnFailed(
                    f"response {resp.id} on {thread_id} ended {resp.status}",
                    status=resp.status,
                    thread_id=thread_id,
                    run_id=resp.id,
                    last_error=error_of(resp),
                    code=(error_of(resp) or {}).get("code"),
                    request_id=request_id,
                )
            guard.delivered()  # a completed response added its input items to the conversation
            calls = [
                ToolCall(item.call_id, item.name, item.arguments)
                for item in resp.output
                if getattr(item, "type", None) == "function_call"
            ]
            if not calls:
                break
            if tool_handler is None:
                raise TurnFailed(
                    f"response {resp.id} on {thread_id} asked for tool calls and no "
                    "tool_handler was given",
                    status="requires_action",
                    thread_id=thread_id,
                    run_id=resp.id,
                    request_id=request_id,
                )
            done = []
            for call in calls:
                done.append(await answer(tool_handler, call))
                if emit is not None:
                    await emit(ToolCallEvent(done[-1]))
            items = [
                {"type": "function_call_output", "call_id": call.id, "output": call.output}
                for call in done
            ]
            answered += done
        return Turn(
            reply=resp.output_text,
            thread_id=thread_id,
            run_id=resp.id,
            status=resp.status,
            fence=guard.fence,
            usage=usage,
            request_id=request_id,
            tool_calls=tuple(answered),
        )

    async def _confirm_saved(self, thread_id: str, resp: Any) -> Any:
        """A background response reads ``completed`` before its items join the conversation,
        and a server may then fail to save them and turn it ``failed`` (llama-stack, over its
        item cap): the turn counts only once its last output item is on the conversation, or
        the response as it ended otherwise. Waits at most ``settle_timeout``."""
        if not resp.output:
            return resp
        item_id = resp.output[-1].id
        give_up = time.monotonic() + self.settle_timeout
        while True:
            try:
                await self._request(
                    f"confirm response {resp.id} on {thread_id}",
                    lambda: self.client.conversations.items.retrieve(
                        item_id, conversation_id=thread_id
                    ),
                )
                return resp
            except UpstreamError as exc:
                if exc.status_code not in (400, 404):
                    raise
            resp = await self._request(
                f"retrieve response {resp.id}",
                functools.partial(self.client.responses.retrieve, resp.id),
            )
            if resp.status != "completed":
                return resp
            if time.monotonic() >= give_up:
                raise TurnFailed(
                    f"response {resp.id} on {thread_id} reads completed but its reply never "
                    f"reached the conversation within {self.settle_timeout:g} s",
                    status="unconfirmed",
                    thread_id=thread_id,
                    run_id=resp.id,
                )
            await sleep(self.poll_interval)

    async def _respond(
        self,
        thread_id: str,
        model: str,
        items: list[dict[str, Any]],
        metadata: Mapping[str, str],
        options: Mapping[str, Any],
        background: bool,
        guard: AsyncGuard,
        started: float,
        emit: EventSink | None,
    ) -> tuple[Any, str | None]:
        """One response on the conversation, waited for (or streamed to ``emit``) to its end
        (or ``turn_timeout``)."""

        async def request() -> dict[str, Any]:
            # The same request streamed or not: fenced, stamped, context and message in input.
            stamp = await guard.write(starts_run=True)
            return sent_as_built(
                {
                    "model": model,
                    "conversation": thread_id,
                    "metadata": {**metadata, **stamp},
                    "background": background,
                    **options,
                },
                input=items,
            )

        if emit is not None:

            async def open_stream() -> Any:
                return await self.client.responses.create(**await request(), stream=True)

            return await self._stream_response(thread_id, open_stream, guard, emit, started)

        async def start() -> Any:
            create = self.client.responses.with_raw_response.create(**await request())
            if not background:
                return await create
            # Cancelled mid-request, the response may have started all the same, and only the
            # answer names it: wait for the answer (at once, in background) and record it.
            return await finish_first(create, lambda raw: self._name(raw.parse(), guard))

        raw = await self._request(f"start a response on {thread_id}", start)
        resp, hint = raw.parse(), poll_hint(raw.headers, self.poll_interval)
        if resp.status not in BUSY:
            await guard.finished()  # it ended with the request: nothing is in flight
            return resp, raw.request_id
        response_id = resp.id
        await self._name(resp, guard)
        while resp.status in BUSY:
            guard.alive()
            check_turn_time(started, self.turn_timeout, thread_id, response_id)
            await sleep(hint)
            guard.alive()
            polled = await self._request(
                f"retrieve response {response_id}",
                lambda: self.client.responses.with_raw_response.retrieve(response_id),
            )
            resp, hint = polled.parse(), poll_hint(polled.headers, self.poll_interval)
        await guard.finished()
        return resp, raw.request_id
