"""Which upstream failures are worth retrying, and how long to wait. No I/O here.

Retries happen in one layer only: the backends run every request through ``tenacity`` with this
policy, and make their SDK client with ``max_retries=0`` so the SDK's own retries do not multiply
with ours.
"""

from __future__ import annotations

import email.utils
import logging
import random
import re
import time
from dataclasses import dataclass
from typing import Any

import openai
from tenacity import RetryCallState, retry_if_exception, stop_after_attempt, stop_after_delay

from thread_pool._model.log_events import event
from thread_pool.errors import LeaseLost

logger = logging.getLogger("thread_pool")

_LOCK_MESSAGES = ("already has an active run", "while a run")
# How servers say a request was too big: OpenAI's codes, and the wording of others (llama-stack:
# "List should have at most 20 items after validation, not 21").
_SIZE_CODES = frozenset(
    {"context_length_exceeded", "string_above_max_length", "array_above_max_length"}
)
_SIZE_TEXT = re.compile(
    r"at most \d+ items|too many items|maximum context length|context_length_exceeded", re.I
)


def is_transient(exc: BaseException) -> bool:
    """Rate limits, server errors, timeouts and dropped connections: worth another try.

    Auth errors, bad requests and 404s are not: the same request would fail the same way.
    """
    if isinstance(exc, openai.APIConnectionError):  # timeouts included
        # ...but not a request the lease check stopped before it was sent (send_guard).
        return not isinstance(exc.__cause__, LeaseLost)
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in (408, 429) or exc.status_code >= 500
    return False


def is_lock_error(exc: BaseException) -> bool:
    """Upstream's "thread busy" 400 (a run is active / the conversation is locked)."""
    if not isinstance(exc, openai.BadRequestError):
        return False
    if exc.code == "conversation_locked":
        return True
    return any(text in exc.message for text in _LOCK_MESSAGES)


def is_size_refusal(code: object, message: object) -> bool:
    """An error (``code``, ``message``) that says a request was too big for the server."""
    if code in _SIZE_CODES:
        return True
    return isinstance(message, str) and _SIZE_TEXT.search(message) is not None


def error_text(exc: openai.APIError) -> str:
    """The SDK's message, and the body's own wording when it is not OpenAI's shape (a server
    answering ``{"detail": ...}`` or ``{"message": ...}``, which the SDK leaves out)."""
    body = exc.body
    if isinstance(body, dict):
        extra = body.get("detail") or (
            body.get("message") if "message" not in exc.message else None
        )
        if isinstance(extra, str) and extra not in exc.message:
            return f"{exc.message} - {extra}"
    return exc.message


def is_too_large(exc: BaseException) -> bool:
    """Upstream's 400 for a request too big (too many items, too long)."""
    if not isinstance(exc, openai.BadRequestError):
        return False
    return is_size_refusal(exc.code, error_text(exc))


def is_not_found(exc: BaseException) -> bool:
    """The upstream object does not exist (any more)."""
    return isinstance(exc, openai.NotFoundError)


def retry_after(exc: BaseException | None) -> float | None:
    """Seconds the server asked us to wait (``retry-after-ms`` / ``Retry-After``), if it did."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        return max(0.0, parsed.timestamp() - time.time())


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded retries of transient upstream failures: by attempts and by a total deadline."""

    attempts: int = 6
    """Tries per request, the first included."""
    deadline: float = 60.0
    """Seconds after the first try when no further try starts."""
    base_delay: float = 0.25
    """First backoff; doubles per attempt, with full jitter, up to ``max_delay``."""
    max_delay: float = 8.0
    max_retry_after: float = 60.0
    """A ``Retry-After`` longer than this is not waited for: the request fails instead."""

    def wait(self, state: RetryCallState) -> float:
        """Honour the server's ``Retry-After``; else exponential backoff with jitter."""
        exc = state.outcome.exception() if state.outcome is not None else None
        hinted = retry_after(exc)
        if hinted is not None:
            return hinted
        return random.uniform(
            0, min(self.max_delay, self.base_delay * 2 ** (state.attempt_number - 1))
        )

    def should_retry(self, exc: BaseException) -> bool:
        """Transient, and not asking for a wait longer than we accept."""
        if not is_transient(exc):
            return False
        hinted = retry_after(exc)
        return hinted is None or hinted <= self.max_retry_after

    def tenacity_args(self) -> dict[str, Any]:
        """Keyword arguments for ``tenacity.Retrying`` / ``AsyncRetrying``."""
        return {
            "stop": stop_after_attempt(self.attempts) | stop_after_delay(self.deadline),
            "wait": self.wait,
            "retry": retry_if_exception(self.should_retry),
            "reraise": True,
            "before_sleep": _log_retry,
        }


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome is not None else None
    logger.info(
        "upstream request failed (%s); try %d follows",
        exc,
        state.attempt_number + 1,
        extra=event("upstream.retry"),
    )


def upstream_error(exc: BaseException, doing: str) -> Exception:
    """The typed error for an SDK exception that ended a request."""
    from thread_pool.errors import RequestTooLarge, ThreadBusy, UpstreamError

    status = getattr(exc, "status_code", None)
    code = getattr(exc, "code", None)
    request_id = getattr(exc, "request_id", None)
    kind: type[UpstreamError] = UpstreamError
    if is_lock_error(exc):
        kind = ThreadBusy
    elif is_too_large(exc):
        kind = RequestTooLarge
    text = error_text(exc) if isinstance(exc, openai.APIError) else str(exc)
    return kind(
        f"{doing} failed: {text}",
        status_code=status,
        code=None if code is None else str(code),
        request_id=request_id,
    )


def refuses_streaming(exc: BaseException) -> bool:
    """A server that does not stream runs, answering a ``stream=true`` request: a 501, or a
    400/415/422 that names ``stream`` (its ``param``, or its message, as "Unrecognized request
    argument supplied: stream" does). Such a refusal started nothing: the request may be made
    again without ``stream``."""
    cause = exc.__cause__ if not isinstance(exc, openai.APIStatusError) else exc
    if not isinstance(cause, openai.APIStatusError) or is_lock_error(cause):
        return False
    if cause.status_code == 501:
        return True
    if cause.status_code not in (400, 415, 422):
        return False
    return getattr(cause, "param", None) == "stream" or "stream" in str(cause.message).lower()
