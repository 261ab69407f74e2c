"""A run in flight on an Assistants thread: naming it for a settler, cancelling it, waiting
for it, and following its events (``runs.create(stream=True)`` /
``submit_tool_outputs(stream=True)``), which every turn does, streamed to a caller or not: the
events carry the run's pauses, its end and its reply, so a turn needs no polls and no reply read.
An Assistants stream cannot be resumed: when its connection drops (or stays silent), the run
goes on upstream and is polled to its end instead; so is every run of a server that does not
stream. The events are read as plain JSON (``AsyncEventStream``): the run object is built only
where a turn reads it, the reply message once."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import openai
from openai.resources.beta.threads.runs import AsyncRuns
from openai.types.beta.threads import Message, Run

from thread_pool._acompat import finish_first, shield, sleep
from thread_pool._async.backend import AsyncGuard, EventSink
from thread_pool._async.backend_base import AsyncBackendBase, poll_hint
from thread_pool._async.event_stream import AsyncEventStream
from thread_pool._model.run_progress import RunProgress, delta_texts
from thread_pool._model.stream import TextDelta
from thread_pool._model.turns import TURN_KEY, check_turn_time
from thread_pool._upstream import send_guard
from thread_pool._upstream.retry_policy import upstream_error
from thread_pool.errors import StoreUnavailable, UpstreamError

# A thread refuses new runs while one is in these states ("cancelling" too: cancelling is tried,
# not guaranteed).
BUSY = frozenset({"queued", "in_progress", "requires_action", "cancelling"})
# The longest silence of a run's stream before the run is polled instead: a run queued or
# stuck upstream sends nothing, and the turn must still see its turn_timeout and a lost lease.
STREAM_QUIET = 5.0


class AsyncRunsInFlight(AsyncBackendBase):
    """What the Assistants backend does with a run it started."""

    streams = True
    """Whether runs are streamed (else polled); False once the server refused or ignored
    ``stream=true``."""

    @property
    def _runs(self) -> AsyncRuns:
        return self.client.beta.threads.runs

    async def _name(self, thread_id: str, run_id: str, guard: AsyncGuard) -> None:
        """Record the run now in flight: its settler waits for the name."""
        try:
            await guard.started(run_id)
        except StoreUnavailable:
            # Redis is away for a moment: a settler finds an Assistants run by listing the
            # thread's runs (the name only spares it a wait), so the turn goes on.
            return
        except BaseException:
            # Taken over while the request was on its way: a settler that listed the thread's
            # runs before this one arrived did not see it. End it now, while we know it.
            await shield(self._cancel_late(thread_id, run_id))
            raise

    async def _cancel_run(self, thread_id: str, run_id: str) -> None:
        await self._cancel(
            f"cancel run {run_id}", lambda: self._runs.cancel(run_id, thread_id=thread_id)
        )

    async def _cancel_late(self, thread_id: str, run_id: str) -> None:
        with send_guard.unguarded(), contextlib.suppress(UpstreamError):
            await self._cancel_run(thread_id, run_id)

    async def _find_turn(self, thread_id: str, nonce: str) -> Any:
        """The run of this turn (by its ``tp_turn`` stamp) among the thread's latest, if any."""
        page = await self._runs.list(thread_id=thread_id, limit=5, order="desc")
        for run in page.data:
            if (run.metadata or {}).get(TURN_KEY) == nonce:
                return run
        return None

    async def _wait(
        self, thread_id: str, run: Any, hint: float, guard: AsyncGuard, started: float
    ) -> tuple[Any, float]:
        """Poll until the run needs us or ended; stop at once if the lease is lost or the turn
        ran past ``turn_timeout``."""
        run_id = run.id
        while run.status in ("queued", "in_progress", "cancelling"):
            guard.alive()
            check_turn_time(started, self.turn_timeout, thread_id, run_id)
            await sleep(hint)
            guard.alive()
            raw = await self._request(
                f"retrieve run {run_id}",
                lambda: self._runs.with_raw_response.retrieve(run_id, thread_id=thread_id),
            )
            run, hint = raw.parse(), poll_hint(raw.headers, self.poll_interval)
        return run, hint

    def _quiet(self, started: float) -> float:
        """How long a run's stream may stay silent before it is polled instead (so that a run
        stuck upstream still meets ``turn_timeout``, and a lost lease is noticed)."""
        left = self.turn_timeout - (time.monotonic() - started)
        return max(0.05, min(STREAM_QUIET, left))

    async def _open(
        self,
        thread_id: str,
        opened: Any,
        progress: RunProgress,
        guard: AsyncGuard,
        emit: EventSink | None,
    ) -> AsyncEventStream | None:
        """The stream a ``stream=True`` request opened (its streamed response), with its first
        event absorbed; None when the server answered with the run itself (a server that
        ignores ``stream``: the run is named, marked polled, and streams are not asked of this
        server again)."""
        if not isinstance(opened, openai.AsyncAPIResponse):
            await self._seen(thread_id, opened, progress, guard)  # a retried create adopted it
            progress.polled = True
            return None
        stream = AsyncEventStream(opened)
        try:
            if not opened.headers.get("content-type", "").startswith("text/event-stream"):
                body = await opened.read()
                self.streams = False
                await self._seen(thread_id, Run.construct(**json.loads(body)), progress, guard)
                progress.polled = True
                await stream.close()
                return None
            first = await stream.__anext__()
            await self._absorb(thread_id, first, progress, guard, emit)
        except StopAsyncIteration:
            return stream
        except BaseException:
            await stream.close()
            raise
        return stream

    async def _seen(
        self, thread_id: str, run: Any, progress: RunProgress, guard: AsyncGuard
    ) -> None:
        """Keep ``run`` as the latest; the first time, name it (its messages are on the thread)."""
        await self._first(thread_id, run.id, progress, guard)
        progress.run = run

    async def _first(
        self, thread_id: str, run_id: str, progress: RunProgress, guard: AsyncGuard
    ) -> None:
        """Name the run the first time anything shows it (its messages are on the thread)."""
        if not progress.seen:
            guard.delivered()  # a created run added its additional_messages to the thread
            await self._name(thread_id, run_id, guard)

    async def _absorb(
        self,
        thread_id: str,
        event: tuple[str, Any],
        progress: RunProgress,
        guard: AsyncGuard,
        emit: EventSink | None,
    ) -> None:
        """One event: a text delta (to ``emit``, if streaming), a completed message, or the run
        (kept as its data: the run object is built when the turn reads it)."""
        kind, data = event
        if kind == "thread.message.delta":
            for value in delta_texts(data):
                progress.deltas.append(value)
                if emit is not None:
                    await emit(TextDelta(value))
        elif kind == "thread.message.completed":
            progress.messages.append(Message.construct(**data))
        elif kind.startswith("thread.run.") and not kind.startswith("thread.run.step"):
            await self._first(thread_id, data["id"], progress, guard)
            progress.saw(data)
        guard.alive()

    async def _follow(
        self,
        stream: AsyncEventStream,
        thread_id: str,
        progress: RunProgress,
        guard: AsyncGuard,
        emit: EventSink | None,
    ) -> None:
        """Read a run's event stream to its pause (``requires_action``) or its end. A stream
        that drops or stays silent past ``_quiet`` leaves the run as upstream has it now, to be
        polled on. Stopped early, the run is cancelled."""
        try:
            async with stream:
                async for event in stream:
                    await self._absorb(thread_id, event, progress, guard, emit)
        except openai.APIConnectionError:  # timeouts included: a silent stream
            run = progress.run
            if run is None:
                return
            progress.polled = True
            run_id = run.id
            progress.run = await self._request(
                f"retrieve run {run_id}",
                lambda: self._runs.retrieve(run_id, thread_id=thread_id),
            )
        except openai.APIError as exc:
            raise upstream_error(exc, f"stream a run on {thread_id}") from exc
        except BaseException:
            run = progress.run
            if run is not None and run.status in BUSY:
                await shield(self._cancel_late(thread_id, run.id))
            raise

    async def _stream_start(
        self,
        thread_id: str,
        nonce: str,
        start: Callable[[], Awaitable[Any]],
        progress: RunProgress,
        guard: AsyncGuard,
        emit: EventSink | None,
    ) -> str | None:
        """Start the run with ``start`` (a ``stream=True`` create) and follow its stream to its
        pause or end; returns the request id. Cancelled while the run is being created, it waits
        for the run's first event (at once) and names the run, so that its settler waits for the
        run, not the list."""

        async def begin() -> AsyncEventStream | None:
            return await self._open(thread_id, await start(), progress, guard, emit)

        async def abandon(stream: AsyncEventStream | None) -> None:
            if stream is not None:
                await stream.close()

        stream = await self._request(
            f"start a run on {thread_id}", lambda: finish_first(begin(), abandon)
        )
        if stream is None:
            return None
        request_id = stream.response.request_id
        await self._follow(stream, thread_id, progress, guard, emit)
        if not progress.seen:
            # Ended before an event named the run: find it by the turn's stamp, and poll it.
            run = await self._find_turn(thread_id, nonce)
            if run is None:
                raise UpstreamError(f"the run stream on {thread_id} ended before naming its run")
            await self._seen(thread_id, run, progress, guard)
            progress.polled = True
        return request_id

    async def _submit_stream(
        self,
        thread_id: str,
        outputs: list[Any],
        progress: RunProgress,
        guard: AsyncGuard,
        emit: EventSink | None,
        started: float,
    ) -> None:
        """Submit tool outputs and stream the run on from there."""
        run_id = progress.run.id

        async def submit() -> Any:
            await guard.write()
            return await self._runs.with_streaming_response.submit_tool_outputs(
                run_id,
                thread_id=thread_id,
                tool_outputs=outputs,
                stream=True,
                timeout=self._quiet(started),
            ).__aenter__()

        opened = await self._request(f"submit tool outputs to {run_id}", submit)
        stream = await self._open(thread_id, opened, progress, guard, emit)
        if stream is not None:
            await self._follow(stream, thread_id, progress, guard, emit)


async def emit_rest(reply: str, streamed: list[str], emit: EventSink) -> None:
    """Send the part of ``reply`` a dropped stream did not deliver (the run was polled to its
    end), so that a stream's deltas still join to its reply."""
    sent = "".join(streamed)
    if len(reply) > len(sent) and reply.startswith(sent):
        await emit(TextDelta(reply[len(sent) :]))
