"""One upstream request, retried by the backend's policy, its failure turned into a typed error."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import openai
from tenacity import AsyncRetrying

from thread_pool._upstream import send_guard
from thread_pool._upstream.retry_policy import RetryPolicy, upstream_error

T = TypeVar("T")


async def request(policy: RetryPolicy, doing: str, send: Callable[[], Awaitable[T]]) -> T:
    """``send()`` with retries of transient failures; an SDK error that ends it becomes an
    ``UpstreamError`` (``ThreadBusy`` for the one-active-run 400). ``send`` runs whole on every
    try, so a fence check inside it is made again before each retried write."""
    try:
        async for attempt in AsyncRetrying(**policy.tenacity_args()):
            with attempt:
                return await send()
    except openai.APIError as exc:
        lost = send_guard.stopped(exc)
        if lost is not None:
            raise lost from None  # the request never left: the lease ran out before
        raise upstream_error(exc, doing) from exc
    raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover
