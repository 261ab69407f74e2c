"""The Assistants API backend (threads, messages, runs) over the official ``openai`` SDK."""

from __future__ import annotations

import secrets
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Unpack

import openai

from thread_pool._acompat import finish_first
from thread_pool._async.assistants_stream import BUSY, AsyncRunsInFlight, emit_rest
from thread_pool._async.backend import AsyncGuard, EventSink, ToolHandler
from thread_pool._async.backend_base import (
    BackendOptions,
    answer,
    poll_hint,
    sdk_params,
    sent_as_built,
)
from thread_pool._model.limits import MAX_METADATA_VALUE
from thread_pool._model.record import TOOL_ROLE, tool_text
from thread_pool._model.run_progress import RunProgress, reply_text, streamed_reply
from thread_pool._model.stream import ToolCallEvent
from thread_pool._model.turns import (
    POOL_KEY,
    TURN_KEY,
    ToolCall,
    Turn,
    error_of,
    usage_of,
)
from thread_pool._upstream.retry_policy import refuses_streaming
from thread_pool.errors import InvalidArgument, TurnFailed, UpstreamError

if TYPE_CHECKING:
    from openai.types.beta.threads.run_submit_tool_outputs_params import ToolOutput

# The SDK marks every Assistants method deprecated (OpenAI shut the API down; compatible servers
# still speak it). Choosing this backend is choosing that API, so its warning is noise: ignored
# for this module's calls only.
warnings.filterwarnings(
    "ignore",
    message=r"(The Assistants API is deprecated|deprecated$)",
    category=DeprecationWarning,
    module=r"thread_pool\._(async|sync)\.assistants\Z",
)

TERMINAL = frozenset({"completed", "failed", "cancelled", "expired", "incomplete"})


def thread_message(message: Mapping[str, str]) -> dict[str, str]:
    """A context message as a thread takes it: the Assistants API has no tool-call items, so a
    tool call made on a sibling thread arrives as marked text."""
    if message["role"] == TOOL_ROLE:
        return {"role": "assistant", "content": tool_text(message["content"])}
    return {"role": message["role"], "content": message["content"]}


class AsyncAssistantsBackend(AsyncRunsInFlight):
    """Runs turns as Assistants runs: one ``runs.create(stream=True)`` with
    ``additional_messages`` starts a turn, and the run's events bring its pauses for tool
    outputs, its end and its reply (one request per turn, plus one per tool-output round). A
    server that refuses ``stream`` (a 501, or a 400/415/422 naming it) or ignores it is polled
    instead, at its hinted interval, and its reply read from the thread.

    ``client`` is an ``openai.AsyncOpenAI`` (any ``base_url``); its own retries are turned off
    here and ``retry`` applies instead, so retries never multiply. ``assistant_id`` may also be
    given per turn (``run(..., assistant_id=...)``). A run that has not ended after
    ``turn_timeout`` seconds fails the turn (``TurnFailed``, status ``timed_out``) and is cancelled
    when its thread is settled.
    """

    def __init__(
        self,
        client: openai.AsyncOpenAI,
        *,
        assistant_id: str | None = None,
        **options: Unpack[BackendOptions],
    ) -> None:
        super().__init__(client, **options)
        self.assistant_id = assistant_id
        self.run_params = sdk_params(
            self._runs.create, ("thread_id", "additional_messages", "metadata")
        )
        """What ``run()`` may pass on to ``runs.create``."""

    def context_items(self, messages: Sequence[Mapping[str, str]]) -> list[dict[str, Any]]:
        """Context messages as a thread takes them (``runs.create(additional_messages=...)``),
        exactly as a turn sends them (``thread_message``)."""
        return [thread_message(m) for m in messages]

    # -- threads -----------------------------------------------------------------------------

    async def create_thread(self, key: str, messages: Sequence[Mapping[str, str]] = ()) -> str:
        """Create a thread whose metadata names pool ``key``, seeded with ``messages`` in the
        same request."""
        seed: list[Any] = [thread_message(m) for m in messages]
        thread = await self._request(
            "create a thread",
            lambda: self.client.beta.threads.create(
                metadata={POOL_KEY: key[:MAX_METADATA_VALUE]}, messages=seed
            ),
        )
        return thread.id

    async def delete_thread(self, thread_id: str) -> bool:
        """Delete a thread upstream; False if it was not there."""
        return await self._found(
            f"delete thread {thread_id}", lambda: self.client.beta.threads.delete(thread_id)
        )

    async def settle_thread(self, key: str, thread_id: str, in_flight: str | None = None) -> bool:
        """End every active run on the thread: wait ``settle_wait`` for it, then cancel it and
        wait until upstream confirms it ended. False if the thread is gone."""
        try:
            page = await self._request(
                f"list runs of {thread_id}",
                lambda: self._runs.list(thread_id=thread_id, limit=20, order="desc"),
            )
        except UpstreamError as exc:
            if exc.status_code == 404:
                return False
            raise
        for run in page.data:
            if run.status in BUSY:
                await self._settle_run(thread_id, run.id, run.status)
        return True

    async def _settle_run(self, thread_id: str, run_id: str, status: str) -> None:
        async def retrieve() -> str | None:
            run = await self._request(
                f"retrieve run {run_id}", lambda: self._runs.retrieve(run_id, thread_id=thread_id)
            )
            return run.status

        # requires_action never ends by itself (until it expires); the others may, briefly.
        await self._settle(
            f"run {run_id} on {thread_id}",
            BUSY,
            status,
            retrieve,
            lambda: self._cancel_run(thread_id, run_id),
            cancel_at_once=("requires_action",),
        )

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
        """Start a run that adds ``context`` and ``message`` (one request: the context rides in
        ``additional_messages`` before the user message), follow its events (to ``emit`` too,
        if given) to its end, answering tool calls; the reply is the run's own completed
        messages. Polled instead where the server does not stream or a stream dropped."""
        options = dict(params)
        assistant_id = options.pop("assistant_id", None) or self.assistant_id
        if not assistant_id:
            raise InvalidArgument("no assistant_id: give it to AssistantsBackend or to run()")
        nonce = secrets.token_hex(8)
        started = time.monotonic()
        tried = False
        adopted: Any = None

        async def request() -> dict[str, Any] | None:
            """The run-creating request, fenced and stamped; None once a retry adopted the
            run an earlier try started (its answer was lost: a timeout, a dropped connection;
            a second run would meet the first on the thread)."""
            nonlocal tried, adopted
            if tried:
                adopted = await self._find_turn(thread_id, nonce)
                if adopted is not None:
                    return None
            tried = True
            stamp = await guard.write(starts_run=True)
            # The thread's missing context first, then the turn's own message, in one request.
            added: list[Any] = self.context_items(context)
            added.append({"role": "user", "content": message, "metadata": stamp})
            return sent_as_built(
                {
                    "assistant_id": assistant_id,
                    "metadata": {**metadata, **stamp, TURN_KEY: nonce},
                    **options,
                },
                additional_messages=added,
            )

        async def start() -> tuple[Any, float, str | None]:
            args = await request()
            if args is None:
                return adopted, self.poll_interval, None
            # Cancelled mid-request, the run may have started all the same: wait for the answer
            # (at once) and record it, so that its settler waits for the run, not the list.
            raw = await finish_first(
                self._runs.with_raw_response.create(thread_id, **args),
                lambda raw: self._name(thread_id, raw.parse().id, guard),
            )
            return raw.parse(), poll_hint(raw.headers, self.poll_interval), raw.request_id

        async def open_stream() -> Any:
            args = await request()
            if args is None:
                return adopted
            # The SDK's request, its body read here (``AsyncEventStream``): no model per event.
            return await self._runs.with_streaming_response.create(
                thread_id, **args, stream=True, timeout=self._quiet(started)
            ).__aenter__()

        # The run's events carry its pauses, its end and its reply: streamed, a turn is one
        # request (and one per tool-output round), whether or not the caller streams it.
        progress = RunProgress()
        request_id: str | None = None
        hint = self.poll_interval
        if self.streams:
            try:
                request_id = await self._stream_start(
                    thread_id, nonce, open_stream, progress, guard, emit
                )
            except UpstreamError as exc:
                if not refuses_streaming(exc):
                    raise
                tried = False  # refused: nothing was started
        if not progress.seen:
            run, hint, request_id = await self._request(f"start a run on {thread_id}", start)
            guard.delivered()  # a created run has added its additional_messages to the thread
            await self._name(thread_id, run.id, guard)
            progress.run, progress.polled = run, True
            self.streams = False  # refused, or not asked: this server is polled from now on
        answered: list[ToolCall] = []
        while True:
            # Polled to its pause or end (a streamed run is there already, unless it dropped).
            run, hint = await self._wait(thread_id, progress.run, hint, guard, started)
            progress.run = run
            if run.status != "requires_action" or tool_handler is None:
                break
            action = run.required_action
            if action is None:
                break
            calls = [
                ToolCall(c.id, c.function.name, c.function.arguments)
                for c in action.submit_tool_outputs.tool_calls
            ]
            done = []
            for call in calls:
                done.append(await answer(tool_handler, call))
                if emit is not None:
                    await emit(ToolCallEvent(done[-1]))
            outputs: list[ToolOutput] = [
                {"tool_call_id": call.id, "output": call.output or ""} for call in done
            ]
            answered += done
            if self.streams:
                await self._submit_stream(thread_id, outputs, progress, guard, emit, started)
            else:
                raw = await self._submit(thread_id, run.id, outputs, guard)
                progress.run, hint = raw.parse(), poll_hint(raw.headers, self.poll_interval)
        if run.status != "completed":
            raise TurnFailed(
                f"run {run.id} on {thread_id} ended {run.status}"
                + (
                    ""
                    if tool_handler is not None or run.status != "requires_action"
                    else " (it asked for tool calls and no tool_handler was given)"
                ),
                status=run.status,
                thread_id=thread_id,
                run_id=run.id,
                last_error=error_of(run),
                code=(error_of(run) or {}).get("code"),
                request_id=request_id,
            )
        reply = streamed_reply(progress, run.id)
        if reply is None:
            reply = await self._reply(thread_id, run.id)
        if emit is not None:
            await emit_rest(reply, progress.deltas, emit)
        return Turn(
            reply=reply,
            thread_id=thread_id,
            run_id=run.id,
            status=run.status,
            fence=guard.fence,
            usage=usage_of(run),
            request_id=request_id,
            tool_calls=tuple(answered),
        )

    async def _submit(
        self, thread_id: str, run_id: str, outputs: list[ToolOutput], guard: AsyncGuard
    ) -> Any:
        async def submit() -> Any:
            await guard.write()
            return await self._runs.with_raw_response.submit_tool_outputs(
                run_id, thread_id=thread_id, tool_outputs=outputs
            )

        return await self._request(f"submit tool outputs to {run_id}", submit)

    async def _reply(self, thread_id: str, run_id: str) -> str:
        """The text of the run's own assistant messages, oldest first. The ``run_id`` filter is
        the server's to apply, and not every compatible server applies it: a reply made of the
        whole thread would be logged and copied into every sibling, so each message's own
        ``run_id`` is checked here. A server that leaves ``run_id`` unset gets the assistant
        messages after the thread's last user message (what the run added)."""
        page = await self._request(
            f"read the reply of {run_id}",
            lambda: self.client.beta.threads.messages.list(
                thread_id, run_id=run_id, order="desc", limit=100
            ),
        )
        newest_first = list(page.data)
        mine = [m for m in newest_first if m.run_id == run_id and m.role == "assistant"]
        if not mine and not any(m.run_id for m in newest_first):
            for msg in newest_first:
                if msg.role != "assistant":
                    break
                mine.append(msg)
        return reply_text(reversed(mine))
