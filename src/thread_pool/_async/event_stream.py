"""An upstream event stream read as it comes: each event's name and its data as plain JSON.

A run's stream is asked for with ``with_streaming_response`` (``stream=True``), so the request is
the SDK's own (its headers, auth, status errors, timeouts) and only the reading is done here: the
SDK's stream builds a pydantic model of every event (some 17 a turn, each walked against every
member of the event union), which was about half of a streamed Assistants turn's client CPU,
while a turn reads only its run at a pause or end, its reply and, for a caller who streams, the
text deltas. The stream ends at ``[DONE]``, as the SDK's does; the asyncio client then reads what
is left of the body for a moment at most (as the SDK's asyncio stream does), so that its
connection goes back to the client's pool; the blocking client cannot bound a read by time, so it
closes the connection there (as the SDK's blocking stream does).
"""

from __future__ import annotations

import json
from collections import deque
from types import TracebackType
from typing import Any

import openai

from thread_pool._acompat import drain
from thread_pool._model.sse import EventParser, LineSplitter

# How long what follows [DONE] is read before the response is closed anyway: a server that keeps
# the body open (or sends keep-alive comments) after it must not hold the turn.
DRAIN_S = 0.1


class AsyncEventStream:
    """The events of a streamed response, as ``(name, data)``: iterate it (once), and close it
    (``async with`` does) to let the connection go. The stream ends at ``[DONE]``. A transport
    failure while reading (a dropped connection, a silent stream past the request's timeout)
    raises ``openai.APIConnectionError``; an ``error`` event carrying ``{"error": ...}``, or an
    event whose data is not JSON, raises ``openai.APIError``."""

    __slots__ = ("_chunks", "_done", "_lines", "_parser", "_splitter", "response")

    def __init__(self, response: openai.AsyncAPIResponse[Any]) -> None:
        self.response = response
        """The SDK's streamed response (its headers, its ``request_id``)."""
        self._chunks = response.iter_bytes()
        self._splitter = LineSplitter()
        self._parser = EventParser()
        self._lines: deque[str] = deque()
        self._done = False  # [DONE] seen: the events are all there

    def __aiter__(self) -> AsyncEventStream:
        return self

    async def __anext__(self) -> tuple[str, Any]:
        while not self._done:
            while self._lines:
                event = self._parser.feed(self._lines.popleft())
                if event is None:
                    continue
                name, text = event
                if text.startswith("[DONE]"):
                    self._done = True
                    raise StopAsyncIteration
                return name, self._decoded(name, text)
            try:
                chunk = await self._chunks.__anext__()
            except StopAsyncIteration:
                break  # an event the body ends before completing is dropped (the standard)
            except Exception as exc:
                # httpx's read errors and timeouts, whichever client the SDK was given: the
                # stream is broken either way.
                raise openai.APIConnectionError(request=self.response.http_request) from exc
            self._lines.extend(self._splitter.feed(chunk))
        raise StopAsyncIteration

    def _decoded(self, name: str, text: str) -> Any:
        request = self.response.http_request
        try:
            data = json.loads(text)
        except ValueError:
            raise openai.APIError(f"a {name!r} event is not JSON", request, body=None) from None
        if not name.startswith("thread.") and isinstance(data, dict) and data.get("error"):
            error = data["error"]
            message = error.get("message") if isinstance(error, dict) else None
            raise openai.APIError(
                message if isinstance(message, str) and message else "the stream failed",
                request,
                body=error,
            )
        return data

    async def close(self) -> None:
        """Let the response (and its connection) go. After ``[DONE]``, what is left of the body
        is read first, for a moment at most, so that the connection can be reused."""
        try:
            if self._done:
                await drain(self._chunks, DRAIN_S)
        finally:
            await self.response.close()

    async def __aenter__(self) -> AsyncEventStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
