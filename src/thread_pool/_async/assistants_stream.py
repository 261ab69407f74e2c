"""A run in flight on an Assistants thread: naming it for a settler, cancelling it, waiting
for it, and streaming it (``runs.create(stream=True)`` / ``submit_tool_outputs(stream=True)``).
An Assistants stream cannot be resumed: when its connection drops, the run goes on upstream and
is polled to its end instead."""

from __future__ import annotations

import contextlib
from typing import Any

import openai
from openai.resources.beta.threads.runs import AsyncRuns

from thread_pool._acompat import shield, sleep
from thread_pool._async.backend import AsyncGuard, EventSink
from thread_pool._async.backend_base import AsyncBackendBase, poll_hint
from thread_pool._model.stream import TextDelta
from thread_pool._model.turns import TURN_KEY, check_turn_time
from thread_pool._upstream import send_guard
from thread_pool._upstream.retry_policy import upstream_error
from thread_pool.errors import StoreUnavailable, UpstreamError

# A thread refuses new runs while one is in these states ("cancelling" too: cancelling is tried,
# not guaranteed).
BUSY = frozenset({"queued", "in_progress", "requires_action", "cancelling"})


class AsyncRunsInFlight(AsyncBackendBase):
    """What the Assistants backend does with a run it started."""

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

    async def _follow(
        self,
        stream: Any,
        thread_id: str,
        run: Any,
        guard: AsyncGuard,
        emit: EventSink,
        streamed: list[str],
    ) -> Any:
        """Read a run's event stream to its pause (``requires_action``) or its end: text deltas
        to ``emit`` (and ``streamed``), the run named as soon as an event names it. Returns the
        run as last seen (None: the stream named none); a dropped stream returns the run as
        upstream has it now, to be polled on. Stopped early, the run is cancelled."""
        try:
            async with stream:
                async for event in stream:
                    kind = event.event
                    if kind == "thread.message.delta":
                        for part in event.data.delta.content or ():
                            value = getattr(getattr(part, "text", None), "value", None)
                            if value:
                                streamed.append(value)
                                await emit(TextDelta(value))
                    elif kind.startswith("thread.run.") and not kind.startswith("thread.run.step"):
                        if run is None:
                            guard.delivered()  # a created run added its messages to the thread
                            await self._name(thread_id, event.data.id, guard)
                        run = event.data
                    guard.alive()
        except openai.APIConnectionError:
            if run is None:
                return None
            run_id = run.id
            raw = await self._request(
                f"retrieve run {run_id}",
                lambda: self._runs.with_raw_response.retrieve(run_id, thread_id=thread_id),
            )
            return raw.parse()
        except openai.APIError as exc:
            raise upstream_error(exc, f"stream a run on {thread_id}") from exc
        except BaseException:
            if run is not None and run.status in BUSY:
                await shield(self._cancel_late(thread_id, run.id))
            raise
        return run

    async def _stream_start(
        self,
        thread_id: str,
        nonce: str,
        opened: Any,
        guard: AsyncGuard,
        emit: EventSink,
        streamed: list[str],
    ) -> Any:
        """Follow the stream a run create opened (or the run a retried create adopted)."""
        if not isinstance(opened, openai.AsyncStream):
            guard.delivered()
            await self._name(thread_id, opened.id, guard)
            return opened
        run = await self._follow(opened, thread_id, None, guard, emit, streamed)
        if run is None:
            # Dropped before the run was named: find it by the turn's stamp, and poll it.
            run = await self._find_turn(thread_id, nonce)
            if run is None:
                raise UpstreamError(f"the run stream on {thread_id} ended before naming its run")
            guard.delivered()
            await self._name(thread_id, run.id, guard)
        return run

    async def _submit_stream(
        self,
        thread_id: str,
        run: Any,
        outputs: list[Any],
        guard: AsyncGuard,
        emit: EventSink,
        streamed: list[str],
    ) -> Any:
        """Submit tool outputs and stream the run on from there."""
        run_id = run.id

        async def submit() -> Any:
            await guard.write()
            return await self._runs.submit_tool_outputs(
                run_id, thread_id=thread_id, tool_outputs=outputs, stream=True
            )

        stream = await self._request(f"submit tool outputs to {run_id}", submit)
        return await self._follow(stream, thread_id, run, guard, emit, streamed)


async def emit_rest(reply: str, streamed: list[str], emit: EventSink) -> None:
    """Send the part of ``reply`` a dropped stream did not deliver (the run was polled to its
    end), so that a stream's deltas still join to its reply."""
    sent = "".join(streamed)
    if len(reply) > len(sent) and reply.startswith(sent):
        await emit(TextDelta(reply[len(sent) :]))
