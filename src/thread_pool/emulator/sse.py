"""Serving an :class:`~thread_pool.emulator.streams.EventStream` over server-sent events.

Each event goes out when it is due on its run's timeline (the state lock is taken only to read
the schedule, never across a wait). The connection is watched while the stream waits: a client
that goes away is noticed at once (its source decides what that means for the run), and the
stream-drop fault cuts the connection without ending the chunked body, which a client sees as
a broken connection (``openai.APIConnectionError``), exactly like a network failure.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

import anyio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from thread_pool.emulator.core import Core
from thread_pool.emulator.streams import Data, EventStream

#: The longest a waiting stream sleeps before looking at its record again: how soon it sees a
#: cancel (or the end of a stuck run) that nothing scheduled.
POLL_SECONDS = 0.02


class StreamDropped(Exception):
    """Raised to make the server cut a streaming connection (the stream-drop fault)."""


class _QuietDrops(logging.Filter):
    """Keep the server's log free of the tracebacks of deliberately dropped streams."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], StreamDropped))


def quiet_dropped_streams() -> None:
    """Install the filter on uvicorn's error log (once)."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _QuietDrops) for f in logger.filters):
        logger.addFilter(_QuietDrops())


def encode(name: str, data: Data) -> bytes:
    """One SSE event: ``event: <name>`` and its ``data:`` line."""
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return f"event: {name}\ndata: {text}\n\n".encode()


async def _events(core: Core, stream: EventStream) -> AsyncGenerator[bytes, None]:
    """The stream's bytes, each batch of events once due; raises :class:`StreamDropped` when
    the event after the cut falls due (so a drop happens at a moment the run really is in)."""
    source = stream.source
    index = stream.after + 1
    sent = 0
    while True:
        batch: list[bytes] = []
        dropped = False
        with core.lock:
            now = core.clock()
            schedule = source.schedule()
            events = schedule.events
            while index < len(events) and events[index].at <= now:
                if stream.cut is not None and sent >= stream.cut:
                    core.stats.fault("stream_drop")
                    source.dropped(sent, now)
                    dropped = True
                    break
                event = events[index]
                batch.append(encode(event.name, event.build()))
                index += 1
                sent += 1
            finished = index >= len(events) and schedule.closed
            wait = POLL_SECONDS
            if index < len(events):
                wait = min(wait, events[index].at - now)
        if batch:
            yield b"".join(batch)
        if dropped:
            raise StreamDropped
        if finished:
            return
        await asyncio.sleep(max(wait, 0.0))


class SseResponse(Response):
    """A ``text/event-stream`` answer that watches its client while it streams."""

    media_type = "text/event-stream"

    def __init__(self, core: Core, stream: EventStream, headers: dict[str, str]) -> None:
        # As StreamingResponse does: no body attribute, hence no Content-Length (chunked).
        self.status_code = 200
        self.background = None
        self.init_headers({**headers, "cache-control": "no-cache"})
        self.core = core
        self.stream = stream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        outcome: dict[str, Any] = {"finished": False, "dropped": False}

        async def pump(cancel: anyio.CancelScope) -> None:
            try:
                async with aclosing(_events(self.core, self.stream)) as chunks:
                    async for chunk in chunks:
                        body = {"type": "http.response.body", "body": chunk, "more_body": True}
                        await send(body)
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                outcome["finished"] = True
            except StreamDropped:
                outcome["dropped"] = True
            except OSError:
                pass  # the client is gone (the server says so when we write to it)
            cancel.cancel()

        async def listen(cancel: anyio.CancelScope) -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            cancel.cancel()

        async with anyio.create_task_group() as group:
            group.start_soon(pump, group.cancel_scope)
            group.start_soon(listen, group.cancel_scope)
        if outcome["dropped"]:
            raise StreamDropped
        if not outcome["finished"]:
            with self.core.lock:
                self.stream.source.abandoned(self.core.clock())
