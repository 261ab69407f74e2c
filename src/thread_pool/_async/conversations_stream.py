"""A response in flight on a conversation: naming it for a settler, cancelling it, and
streaming it (``stream=True, background=True``: its id comes with the first event, and a dropped
connection is resumed from the last event seen)."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import openai

from thread_pool._acompat import finish_first, shield, sleep
from thread_pool._async.backend import AsyncGuard, EventSink
from thread_pool._async.backend_base import AsyncBackendBase
from thread_pool._model.stream import TextDelta
from thread_pool._model.turns import check_turn_time
from thread_pool._upstream import send_guard
from thread_pool._upstream.retry_policy import upstream_error
from thread_pool.errors import UpstreamError

# A response in these states holds its conversation's lock.
BUSY = frozenset({"queued", "in_progress"})


@dataclass
class _Progress:
    """How far a streamed response got: its latest snapshot and the last event read."""

    response: Any = None
    seq: int = -1


class AsyncResponsesInFlight(AsyncBackendBase):
    """What the Conversations backend does with a response it started."""

    async def _name(self, resp: Any, guard: AsyncGuard) -> None:
        """Record the response now in flight, for a settler to find."""
        if resp.status not in BUSY:
            return
        try:
            await guard.started(resp.id)
        except BaseException:
            # Its id did not reach Redis (Redis away, lease taken over), so no settler could find
            # this response, and a background response may run on and lock the conversation for
            # the next holder: end it now, while we still know it.
            await shield(self._cancel_unrecorded(resp.id))
            raise

    async def _end_response(self, response_id: str) -> None:
        """Wait ``settle_wait`` for the response to end, else cancel it (a queued one at once)
        and wait until upstream confirms it ended."""

        async def retrieve() -> str | None:
            try:
                resp = await self._request(
                    f"retrieve response {response_id}",
                    lambda: self.client.responses.retrieve(response_id),
                )
            except UpstreamError as exc:
                if exc.status_code == 404:
                    return None
                raise
            return resp.status

        await self._settle(
            f"response {response_id}",
            BUSY,
            None,
            retrieve,
            lambda: self._cancel_response(response_id),
            # A streamed background response whose stream dropped at its first event can stay
            # queued for good upstream; a queued response has produced nothing: end it now.
            cancel_at_once=("queued",),
        )

    async def _cancel_response(self, response_id: str) -> None:
        await self._cancel(
            f"cancel response {response_id}", lambda: self.client.responses.cancel(response_id)
        )

    async def _cancel_unrecorded(self, response_id: str) -> None:
        with send_guard.unguarded(), contextlib.suppress(UpstreamError):
            await self._cancel_response(response_id)

    async def _stream_response(
        self,
        thread_id: str,
        start: Callable[[], Awaitable[Any]],
        guard: AsyncGuard,
        emit: EventSink,
        started: float,
    ) -> tuple[Any, str | None]:
        """Stream the response ``start`` creates (``stream=True, background=True``) to its end:
        text deltas to ``emit``, the response named as soon as its first event names it. A
        dropped connection is resumed after the last event read (``retrieve(stream=True,
        starting_after=N)``), at most ``retry.attempts`` times, so no delta is lost or sent
        twice. Whatever stops the stream early (the consumer left, the lease was lost, an
        error) cancels the response."""
        progress = _Progress()

        async def begin() -> tuple[Any, Any]:
            stream = await start()
            return stream, await stream.__anext__()  # its first event names the response

        async def abandon(opened: tuple[Any, Any]) -> None:
            # Cancelled while the response was being made: only its first event names it, so
            # end it now, or it would run on (in the background) and lock the conversation.
            stream, first = opened
            await stream.close()
            named = getattr(first, "response", None)
            if named is not None:
                await self._cancel_unrecorded(named.id)

        stream, first = await self._request(
            f"start a response on {thread_id}", lambda: finish_first(begin(), abandon)
        )
        request_id = stream.response.headers.get("x-request-id")
        drops = 0
        try:
            await self._absorb(first, progress, guard, emit)
            while True:
                try:
                    await self._follow(stream, progress, guard, emit)
                except openai.APIConnectionError as exc:
                    drops += 1
                    if progress.response is None or drops >= self.retry.attempts:
                        raise upstream_error(exc, f"stream a response on {thread_id}") from exc
                    await sleep(min(self.retry.max_delay, self.retry.base_delay * 2 ** (drops - 1)))
                    if progress.response.status == "queued":
                        # Dropped before the response left the queue: upstream may keep such a
                        # response queued for good, holding the conversation. It has produced
                        # nothing yet: end it, and make the response again.
                        await self._end_response(progress.response.id)
                        progress = _Progress()
                        stream, first = await self._request(
                            f"start a response on {thread_id} again",
                            lambda: finish_first(begin(), abandon),
                        )
                        await self._absorb(first, progress, guard, emit)
                        continue
                except openai.APIError as exc:
                    raise upstream_error(exc, f"stream a response on {thread_id}") from exc
                else:
                    if progress.response is not None and progress.response.status not in BUSY:
                        break
                    if progress.response is None:
                        raise UpstreamError(f"the response stream on {thread_id} named no response")
                    # The stream ended before the response did (a cancelled response's stream
                    # just ends): ask how it is, and read on from where it stopped if it runs.
                    progress.response = await self._retrieve(progress.response.id)
                    if progress.response.status not in BUSY:
                        break
                    drops += 1
                    if drops >= self.retry.attempts:
                        raise UpstreamError(
                            f"the stream of response {progress.response.id} on {thread_id} kept "
                            "ending before the response did"
                        )
                response_id, after = progress.response.id, progress.seq
                check_turn_time(started, self.turn_timeout, thread_id, response_id)
                guard.alive()
                stream = await self._resume(response_id, after)
        except BaseException:
            resp = progress.response
            if resp is not None and resp.status in BUSY:
                await shield(self._cancel_unrecorded(resp.id))
            raise
        await guard.finished()
        return progress.response, request_id

    async def _retrieve(self, response_id: str) -> Any:
        return await self._request(
            f"retrieve response {response_id}",
            lambda: self.client.responses.retrieve(response_id),
        )

    async def _resume(self, response_id: str, after: int) -> Any:
        """The response's events after the ``after``-th, streamed again."""
        return await self._request(
            f"resume response {response_id}",
            lambda: self.client.responses.retrieve(response_id, stream=True, starting_after=after),
        )

    async def _follow(
        self, stream: Any, progress: _Progress, guard: AsyncGuard, emit: EventSink
    ) -> None:
        """Read ``stream`` to its end, keeping ``progress``; events already read (a resumed
        stream may repeat some) are skipped."""
        async with stream:
            async for event in stream:
                await self._absorb(event, progress, guard, emit)

    async def _absorb(
        self, event: Any, progress: _Progress, guard: AsyncGuard, emit: EventSink
    ) -> None:
        """One event of the stream: a delta to ``emit``, a response snapshot kept (and named
        the first time); an event already read (a resumed stream may repeat some) is skipped."""
        seq = event.sequence_number
        if seq <= progress.seq:
            return
        progress.seq = seq
        kind = event.type
        if kind == "response.output_text.delta":
            await emit(TextDelta(event.delta))
        elif kind == "error":
            raise UpstreamError(f"the response stream failed: {event.message}", code=event.code)
        elif kind.startswith("response.") and hasattr(event, "response"):
            first = progress.response is None
            progress.response = event.response
            if first:
                await self._name(event.response, guard)
        guard.alive()
