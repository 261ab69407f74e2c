"""What both backends share: the SDK client set up once (its own retries off, the send guard
installed), the retry policy and timings, deletes that tolerate a thread already gone, and the
wait-then-cancel loop that settles a run (response) a dead holder left behind."""

from __future__ import annotations

import inspect
import json
import logging
import time
from collections.abc import Awaitable, Callable, Container, Mapping
from dataclasses import replace
from typing import Any, TypedDict, TypeVar, Unpack

import openai

from thread_pool._acompat import call_handler, sleep
from thread_pool._async.backend import ToolHandler
from thread_pool._async.upstream import request
from thread_pool._model.limits import DEFAULT_REQUEST_CHARS, MIN_LOG_CHARS, MIN_REQUEST_ITEMS
from thread_pool._model.log import RequestCaps
from thread_pool._model.log_events import event
from thread_pool._model.turns import ToolCall
from thread_pool._model.validation import check_cap, check_positive
from thread_pool._telemetry import note_cancelled
from thread_pool._upstream import send_guard
from thread_pool._upstream.retry_policy import RetryPolicy
from thread_pool.errors import InvalidArgument, UpstreamError

T = TypeVar("T")

logger = logging.getLogger("thread_pool")


def poll_hint(headers: Any, default: float) -> float:
    """Seconds to wait before the next poll: the server's ``openai-poll-after-ms``, if given."""
    value = headers.get("openai-poll-after-ms") if headers is not None else None
    try:
        return max(0.001, int(value) / 1000) if value is not None else default
    except ValueError:
        return default


def tool_output(result: Any) -> str:
    """A tool handler's result as the text upstream takes."""
    return result if isinstance(result, str) else json.dumps(result)


async def answer(tool_handler: ToolHandler, call: ToolCall) -> ToolCall:
    """``call`` answered by ``tool_handler``: the same call with its ``output`` (as sent
    upstream), which the turn lists and the pool's log keeps."""
    return replace(call, output=tool_output(await call_handler(tool_handler, call)))


def sdk_params(method: Callable[..., Any], own: Container[str]) -> frozenset[str]:
    """The keyword names of the SDK ``method`` that starts a run, less ``own`` (those the backend
    sets itself) and ``stream``: what ``run()`` may pass on, so a misspelt one is refused before
    anything is leased or sent, not by the SDK's ``TypeError`` halfway through a turn."""
    names = inspect.signature(method).parameters
    return frozenset(n for n in names if n not in own and n != "stream")


def sent_as_built(request: Mapping[str, Any], **fields: Any) -> dict[str, Any]:
    """``request`` (keyword arguments of an SDK method) with ``fields`` sent as they are, in
    ``extra_body``, past the SDK's transform of typed parameters. That transform walks every
    item of a list against every member of the item's union (some 25 for a Responses input
    item) on each request: with a turn's merged context of a few dozen items it was most of the
    turn's client CPU. ``fields`` must be plain JSON that the transform would leave unchanged,
    as the context items and the message that backends build are (tests/units check that)."""
    out = dict(request)
    out["extra_body"] = {**(out.get("extra_body") or {}), **fields}
    return out


class BackendOptions(TypedDict, total=False):
    """What every backend takes besides its client and its API's own options."""

    retry: RetryPolicy | None
    poll_interval: float
    settle_wait: float
    settle_timeout: float
    turn_timeout: float
    max_request_items: int | None
    max_request_chars: int | None


class AsyncBackendBase:
    """The part of a backend that does not depend on the API it speaks.

    ``client`` is an ``openai.AsyncOpenAI`` (any ``base_url``); its own retries are turned off
    here and ``retry`` applies instead, so retries never multiply. ``poll_interval`` (0.5 s) is
    the poll when the server gives no hint. A settler waits ``settle_wait`` (2 s) for a run left
    behind to end by itself, then cancels it and waits up to ``settle_timeout`` (30 s) more for
    upstream to confirm; a turn waits at most ``turn_timeout`` (600 s). ``max_request_items``
    (default: no limit; llama-stack: 20) and ``max_request_chars`` (1,000,000) bound what one
    request carries: a turn's context, and what a new thread is seeded with; older log entries
    are folded into one marked digest."""

    def __init__(self, client: openai.AsyncOpenAI, **options: Unpack[BackendOptions]) -> None:
        if not isinstance(client, openai.AsyncOpenAI):
            raise InvalidArgument(f"client must be an openai.AsyncOpenAI, not {client!r:.80}")
        unknown = set(options) - set(BackendOptions.__annotations__)
        if unknown:
            raise InvalidArgument(
                f"unknown backend option(s): {', '.join(sorted(unknown))} (options: "
                f"{', '.join(BackendOptions.__annotations__)})"
            )
        for name in ("poll_interval", "settle_wait", "settle_timeout"):
            if name in options:
                check_positive(name, options[name], allow_zero=name == "settle_wait")
        self.client = client.with_options(max_retries=0)
        send_guard.install(self.client)
        self.retry = options.get("retry") or RetryPolicy()
        self.poll_interval = options.get("poll_interval", 0.5)
        self.settle_wait = options.get("settle_wait", 2.0)
        self.settle_timeout = options.get("settle_timeout", 30.0)
        # Upstream expires an Assistants run after 10 minutes; a background response has no
        # such bound, and a stuck one would otherwise keep its thread (and lease) forever.
        self.turn_timeout = check_positive("turn_timeout", options.get("turn_timeout", 600.0))
        self.request_caps = RequestCaps(
            check_cap("max_request_items", options.get("max_request_items"), MIN_REQUEST_ITEMS),
            check_cap(
                "max_request_chars",
                options.get("max_request_chars", DEFAULT_REQUEST_CHARS),
                MIN_LOG_CHARS,
            ),
        )
        """What one request may carry (``max_request_items``, ``max_request_chars``)."""

    async def _request(self, doing: str, send: Callable[[], Awaitable[T]]) -> T:
        """One upstream request under the retry policy (see ``upstream.request``)."""
        return await request(self.retry, doing, send)

    async def _found(self, doing: str, send: Callable[[], Awaitable[object]]) -> bool:
        """``send`` (a delete, a look-up); False when upstream answers 404 (it is gone)."""
        try:
            await self._request(doing, send)
        except UpstreamError as exc:
            if exc.status_code == 404:
                return False
            raise
        return True

    async def _cancel(self, doing: str, send: Callable[[], Awaitable[object]]) -> bool:
        """Cancel a run (response); False when upstream refused: one that ended meanwhile is
        refused with a 400 (OpenAI), and some servers refuse with a 409 to cancel one at all
        (llama-stack: it runs on to its end). Either way what counts is what the run's status
        says afterwards, which the settle loop reads."""
        try:
            await self._request(doing, send)
        except UpstreamError as exc:
            if exc.status_code not in (400, 409):
                raise
            logger.debug(
                "%s refused (%s): waiting for it to end",
                doing,
                exc.status_code,
                extra=event("settle.cancel_refused"),
            )
            return False
        return True

    async def _settle(
        self,
        name: str,
        busy: Container[str],
        status: str | None,
        retrieve: Callable[[], Awaitable[str | None]],
        cancel: Callable[[], Awaitable[object]],
        *,
        cancel_at_once: Container[str] = (),
    ) -> None:
        """Wait ``settle_wait`` for run (response) ``name`` to leave the ``busy`` states, then
        cancel it once and wait until upstream reports it ended (a refused cancel included: the
        run's own status decides); ``UpstreamError`` after ``settle_timeout`` more. ``status``
        is its last known status (None: retrieve it first); ``retrieve`` returns None when it
        is gone. A status in ``cancel_at_once`` never ends by itself (``requires_action``): it
        is cancelled without waiting."""
        started = time.monotonic()
        cancelled = False
        while True:
            if status is None:
                status = await retrieve()
            if status is None or status not in busy:
                return
            waited = time.monotonic() - started
            if not cancelled and (status in cancel_at_once or waited >= self.settle_wait):
                await cancel()
                cancelled = True
                note_cancelled()
            if waited >= self.settle_wait + self.settle_timeout:
                raise UpstreamError(f"{name} is still {status}; not settled")
            await sleep(self.poll_interval / 2)
            status = None
