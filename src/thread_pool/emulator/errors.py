"""Upstream-shaped errors: every failure the emulator returns, with the upstream's exact body.

The wording follows ../shared/UPSTREAM.md where it is given there, and the public API's usual
phrasing elsewhere (``Missing required parameter: 'x'.``, ``No thread found with id 'x'.``).
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An HTTP error answered as ``{"error": {message, type, param, code}}``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """The JSON body, exactly as the upstream sends it."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


class DetailError(ApiError):
    """An HTTP error answered as ``{"detail": message}``, the body of llama-stack's errors
    (no ``code``, no ``type``), for the deviations the emulator imitates."""

    def body(self) -> dict[str, Any]:
        """``{"detail": message}``."""
        return {"detail": self.message}


def too_many_items(maximum: int, count: int) -> DetailError:
    """A response whose input plus output items cannot be saved (llama-stack's wording)."""
    return DetailError(
        400,
        f"1 validation error for conversation items: List should have at most {maximum} items "
        f"after validation, not {count}",
    )


def cancel_conflict(response_id: str, status: str) -> DetailError:
    """Cancelling a background response llama-stack will not cancel (409)."""
    if status in ("queued", "in_progress"):
        why = ": only background responses can be cancelled"
    else:
        why = f" with status '{status}'"
    return DetailError(409, f"Cannot cancel response '{response_id}'{why}")


class LockError(ApiError):
    """The one-active-request rule refused a write (counted apart by the introspection)."""

    def __init__(self, kind: str, message: str, *, param: str | None, code: str | None) -> None:
        super().__init__(400, message, param=param, code=code)
        self.kind = kind


def thread_has_active_run(thread_id: str, run_id: str) -> LockError:
    """``POST /threads/{id}/runs`` on a busy thread."""
    return LockError(
        "run", f"Thread {thread_id} already has an active run {run_id}.", param=None, code=None
    )


def message_while_active(thread_id: str, run_id: str) -> LockError:
    """``POST /threads/{id}/messages`` on a busy thread."""
    return LockError(
        "message",
        f"Can't add messages to {thread_id} while a run {run_id} is active.",
        param=None,
        code=None,
    )


def conversation_locked() -> LockError:
    """``POST /responses`` with a busy conversation."""
    return LockError(
        "conversation",
        "Another process is currently operating on this conversation. "
        "Please retry in a few seconds.",
        param="conversation",
        code="conversation_locked",
    )


def not_found(kind: str, object_id: str) -> ApiError:
    """404 for an unknown id: ``No thread found with id 'thread_x'.``"""
    return ApiError(404, f"No {kind} found with id '{object_id}'.")


def conversation_not_found(conversation_id: str) -> ApiError:
    """404 for an unknown conversation (the Conversations API words it differently)."""
    return ApiError(404, f"Conversation with id '{conversation_id}' not found.")


def item_not_found(item_id: str) -> ApiError:
    """404 for an unknown conversation item."""
    return ApiError(404, f"Item with id '{item_id}' not found.")


def response_not_found(response_id: str) -> ApiError:
    """404 for an unknown response."""
    return ApiError(404, f"Response with id '{response_id}' not found.")


def invalid_url(method: str, path: str) -> ApiError:
    """404 for a path the API does not have."""
    return ApiError(404, f"Invalid URL ({method} {path})")


def missing(param: str) -> ApiError:
    """A required parameter is absent."""
    return ApiError(
        400,
        f"Missing required parameter: '{param}'.",
        param=param,
        code="missing_required_parameter",
    )


_TYPE_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "a boolean",
    list: "an array",
    dict: "an object",
    type(None): "null",
}


def type_name(value: object) -> str:
    """How the upstream names a JSON value's type in its messages."""
    return _TYPE_NAMES.get(type(value), "an unknown type")


def wrong_type(param: str, expected: str, value: object) -> ApiError:
    """A parameter has the wrong JSON type."""
    return ApiError(
        400,
        f"Invalid type for '{param}': expected {expected}, but got {type_name(value)} instead.",
        param=param,
        code="invalid_type",
    )


def invalid_value(param: str, value: object, supported: tuple[str, ...]) -> ApiError:
    """An enum parameter has a value outside its set."""
    options = " and ".join(", ".join(f"'{s}'" for s in supported).rsplit(", ", 1))
    return ApiError(
        400,
        f"Invalid value: '{value}'. Supported values are: {options}.",
        param=param,
        code="invalid_value",
    )


def _invalid(param: str, problem: str, code: str) -> ApiError:
    """The upstream's ``Invalid 'param': <problem>`` error for a value past one of its limits."""
    return ApiError(400, f"Invalid '{param}': {problem}", param=param, code=code)


def string_too_long(param: str, maximum: int, length: int) -> ApiError:
    """A string over its limit (``content`` > 256,000, metadata values > 512, ...)."""
    return _invalid(
        param,
        f"string too long. Expected a string with maximum length {maximum}, "
        f"but got a string with length {length} instead.",
        "string_above_max_length",
    )


def array_too_long(param: str, maximum: int, length: int) -> ApiError:
    """An array over its limit (``items`` > 20)."""
    return _invalid(
        param,
        f"array too long. Expected an array with maximum length {maximum}, "
        f"but got an array with length {length} instead.",
        "array_above_max_length",
    )


def too_many_properties(param: str, maximum: int, count: int) -> ApiError:
    """An object with too many keys (metadata > 16 pairs)."""
    return _invalid(
        param,
        f"too many properties. Expected an object with at most {maximum} "
        f"properties, but got an object with {count} properties instead.",
        "object_above_max_properties",
    )


def key_too_long(param: str, maximum: int, key: str) -> ApiError:
    """A metadata key over 64 characters."""
    return _invalid(
        param,
        f"metadata key '{key[:80]}' is too long. Expected a key with maximum "
        f"length {maximum}, but got a key with length {len(key)} instead.",
        "string_above_max_length",
    )


def integer_out_of_range(param: str, value: int, low: int, high: int) -> ApiError:
    """An integer parameter outside ``[low, high]`` (list ``limit``)."""
    if value < low:
        return _invalid(
            param,
            f"integer below minimum value. Expected a value >= {low}, but got {value} instead.",
            "integer_below_min_value",
        )
    return _invalid(
        param,
        f"integer above maximum value. Expected a value <= {high}, but got {value} instead.",
        "integer_above_max_value",
    )


def bad_json() -> ApiError:
    """The body is not a JSON object."""
    return ApiError(
        400,
        "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
        "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was "
        "sent was not valid JSON. If you have trouble figuring out how to fix this, please "
        "contact us through our help center at help.openai.com.)",
    )


def missing_api_key() -> ApiError:
    """401 when a key is configured and the request carries none."""
    return ApiError(
        401,
        "You didn't provide an API key. You need to provide your API key in an Authorization "
        "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password "
        "field (with blank username) if you're accessing the API from your browser and are "
        "prompted for a username and password. You can obtain an API key from "
        "https://platform.openai.com/account/api-keys.",
    )


def wrong_api_key(given: str) -> ApiError:
    """401 when the request's key is not the configured one (shown masked, as upstream does)."""
    masked = given[:3] + "*" * max(len(given) - 7, 4) + given[-4:] if len(given) > 8 else "****"
    return ApiError(
        401,
        f"Incorrect API key provided: {masked}. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
        code="invalid_api_key",
    )


def server_error() -> ApiError:
    """An injected HTTP 500."""
    return ApiError(
        500,
        "The server had an error while processing your request. Sorry about that!",
        type="server_error",
    )


def overloaded() -> ApiError:
    """An injected HTTP 503."""
    return ApiError(503, "The server is overloaded or not ready yet.", type="server_error")


def rate_limited(retry_after: float) -> ApiError:
    """An injected HTTP 429 with ``Retry-After`` (the SDK honours it when ≤ 60 s)."""
    seconds = f"{retry_after:g}"
    return ApiError(
        429,
        "Rate limit reached for requests per min (RPM) in the emulator. "
        f"Please try again in {seconds}s.",
        type="requests",
        code="rate_limit_exceeded",
        headers={"retry-after": seconds, "retry-after-ms": str(round(retry_after * 1000))},
    )
