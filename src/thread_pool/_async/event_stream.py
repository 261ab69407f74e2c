"""An upstream event stream read as it comes: each event's name and its data as plain JSON.

A run's stream is asked for with ``with_streaming_response`` (``stream=True``), so the request is
the SDK's own (its headers, auth, status errors, timeouts) and only the reading is done here: the
SDK's stream builds a pydantic model of every event (some 17 a turn, each walked against every
member of the event union), which was about half of a streamed Assistants turn's client CPU,
while a turn reads only its run at a pause or end, its reply and, for a caller who streams, the
text deltas. The body is read to its end (past ``[DONE]``), so its connection goes back to the
client's pool instead of being closed; a failure to read what follows ``[DONE]`` ends the stream
as its end would (its events were all there).
"""

from __future__ import annotations

import json
from types import TracebackType
from typing import Any

import openai

from thread_pool._model.sse import EventParser


class AsyncEventStream:
    """The events of a streamed response, as ``(name, data)``: iterate it (once), and close it
    (``async with`` does) to let the connection go. ``[DONE]`` is skipped. A transport failure
    while reading (a dropped connection, a silent stream past the request's timeout) raises
    ``openai.APIConnectionError``, and an ``error`` event carrying ``{"error": ...}`` raises
    ``openai.APIError``, as the SDK's own stream does."""

    __slots__ = ("_done", "_lines", "_parser", "response")

    def __init__(self, response: openai.AsyncAPIResponse[Any]) -> None:
        self.response = response
        """The SDK's streamed response (its headers, its ``request_id``)."""
        self._lines = response.iter_lines()
        self._parser = EventParser()
        self._done = False

    def __aiter__(self) -> AsyncEventStream:
        return self

    async def __anext__(self) -> tuple[str, Any]:
        while True:
            try:
                line = await self._lines.__anext__()
            except StopAsyncIteration:
                raise
            except Exception as exc:
                if self._done:
                    raise StopAsyncIteration from None
                # httpx's (or httpx2's) read errors and timeouts, whichever client the SDK was
                # given: the stream is broken either way, as the SDK's stream would say.
                raise openai.APIConnectionError(request=self.response.http_request) from exc
            event = self._parser.feed(line)
            if event is None:
                continue
            name, text = event
            if text.startswith("[DONE]"):
                self._done = True
                continue  # read on to the body's end, so its connection can be reused
            data = json.loads(text)
            if not name.startswith("thread.") and isinstance(data, dict) and data.get("error"):
                error = data["error"]
                message = error.get("message") if isinstance(error, dict) else None
                raise openai.APIError(
                    message if isinstance(message, str) and message else "the stream failed",
                    self.response.http_request,
                    body=error,
                )
            return name, data

    async def close(self) -> None:
        """Let the response (and its connection) go, read to its end or not."""
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
