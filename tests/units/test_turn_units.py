"""The turn decisions that need no I/O: input limits, what is retried and how long to wait."""

from __future__ import annotations

from typing import Any

import httpx2
import openai
import pytest
from tenacity import RetryCallState, Retrying

from thread_pool import InvalidArgument, RetryPolicy
from thread_pool._model.limits import MAX_MESSAGE_CHARS
from thread_pool._model.validation import validate_message, validate_metadata
from thread_pool._sync.backend_base import poll_hint, tool_output
from thread_pool._upstream.retry_policy import is_lock_error, is_transient, retry_after

REQUEST = httpx2.Request("POST", "http://upstream/v1/threads/t/runs")


def status_error(status: int, body: Any = None, headers: dict[str, str] | None = None) -> Any:
    response = httpx2.Response(status, headers=headers or {}, request=REQUEST, json=body or {})
    kinds: dict[int, type[openai.APIStatusError]] = {
        400: openai.BadRequestError,
        401: openai.AuthenticationError,
        404: openai.NotFoundError,
        429: openai.RateLimitError,
        500: openai.InternalServerError,
        503: openai.InternalServerError,
    }
    message = (body or {}).get("message", f"status {status}")
    return kinds[status](message, response=response, body=body)


def test_messages_and_metadata_are_checked_against_upstream_limits() -> None:
    assert validate_message("x" * MAX_MESSAGE_CHARS) == "x" * MAX_MESSAGE_CHARS
    for bad in ("", " \n", "x" * (MAX_MESSAGE_CHARS + 1), 42):
        with pytest.raises(InvalidArgument):
            validate_message(bad)
    assert validate_metadata(None) == {}
    assert validate_metadata({"a": "b"}) == {"a": "b"}
    for meta in (
        {f"k{i}": "v" for i in range(14)},  # 13 + the pool's 3 = upstream's 16
        {"": "v"},
        {"k" * 65: "v"},
        {"k": "v" * 513},
        {"k": 1},
        {"tp_fence": "1"},
    ):
        with pytest.raises(InvalidArgument):
            validate_metadata(meta)


def test_transient_failures_are_retried_and_the_rest_are_not() -> None:
    assert is_transient(status_error(429))
    assert is_transient(status_error(500))
    assert is_transient(status_error(503))
    assert is_transient(openai.APITimeoutError(REQUEST))
    assert is_transient(openai.APIConnectionError(request=REQUEST))
    assert not is_transient(status_error(400))
    assert not is_transient(status_error(401))
    assert not is_transient(status_error(404))
    assert not is_transient(ValueError("not upstream"))


def test_the_busy_thread_400s_are_recognised() -> None:
    run = {"message": "Thread thread_1 already has an active run run_2.", "type": "x"}
    message = {"message": "Can't add messages to thread_1 while a run run_2 is active."}
    conv = {
        "message": "Another process is currently operating on this conversation.",
        "code": "conversation_locked",
    }
    assert is_lock_error(status_error(400, run))
    assert is_lock_error(status_error(400, message))
    assert is_lock_error(status_error(400, conv))
    assert not is_lock_error(status_error(400, {"message": "Invalid 'content'"}))
    assert not is_lock_error(status_error(500, run))


def test_retry_after_is_honoured_and_too_long_a_wait_is_not_retried() -> None:
    assert retry_after(status_error(429, headers={"retry-after": "2"})) == 2.0
    assert retry_after(status_error(429, headers={"retry-after-ms": "250"})) == 0.25
    assert retry_after(status_error(429)) is None
    policy = RetryPolicy(max_retry_after=5)
    assert policy.should_retry(status_error(429, headers={"retry-after": "2"}))
    assert not policy.should_retry(status_error(429, headers={"retry-after": "60"}))

    state = RetryCallState(Retrying(), None, (), {})
    state.set_exception(
        (openai.RateLimitError, status_error(429, headers={"retry-after": "3"}), None)
    )
    assert policy.wait(state) == 3.0
    state = RetryCallState(Retrying(), None, (), {})
    state.attempt_number = 3
    state.set_exception((openai.InternalServerError, status_error(500), None))
    assert 0 <= policy.wait(state) <= policy.base_delay * 4


def test_retries_are_bounded_by_attempts() -> None:
    calls = []

    def flaky() -> None:
        calls.append(1)
        raise status_error(503)

    policy = RetryPolicy(attempts=3, base_delay=0.001, max_delay=0.001)
    with pytest.raises(openai.InternalServerError):
        Retrying(**policy.tenacity_args())(flaky)
    assert len(calls) == 3


def test_poll_hints_and_tool_outputs() -> None:
    assert poll_hint({"openai-poll-after-ms": "40"}, 0.5) == 0.04
    assert poll_hint({}, 0.5) == 0.5
    assert poll_hint({"openai-poll-after-ms": "soon"}, 0.5) == 0.5
    assert tool_output("text") == "text"
    assert tool_output({"a": 1}) == '{"a": 1}'


def test_the_context_items_sent_past_the_sdk_transform_are_what_it_would_send() -> None:
    """Backends send a turn's context and message in ``extra_body`` (``sent_as_built``), past
    the SDK's transform of typed parameters: that is only right while the transform leaves
    such items unchanged. Fails if an SDK update starts renaming or reformatting them."""
    from openai._utils import maybe_transform  # the transform that is skipped
    from openai.types.beta.threads.run_create_params import RunCreateParamsBase
    from openai.types.responses.response_create_params import ResponseCreateParamsBase

    from thread_pool._model.record import TOOL_ROLE, tool_json
    from thread_pool._model.turns import ToolCall
    from thread_pool._sync.assistants import thread_message
    from thread_pool._sync.conversations import conversation_items

    call = ToolCall("call_1", "lookup", '{"q": "x"}', output='{"found": true}')
    context = [
        {"role": "user", "content": "earlier question"},
        {"role": "assistant", "content": "earlier reply"},
        {"role": TOOL_ROLE, "content": tool_json(call)},
        {"role": TOOL_ROLE, "content": "a tool call recorded as text"},
    ]
    items = [*conversation_items(context), {"role": "user", "content": "now"}]
    assert {i.get("type") for i in items} >= {"message", "function_call", "function_call_output"}
    body = {"model": "m", "input": items}
    assert maybe_transform(body, ResponseCreateParamsBase) == body
    messages: list[dict[str, Any]] = [thread_message(m) for m in context]
    messages.append({"role": "user", "content": "now", "metadata": {"tp_fence": "3"}})
    body = {"assistant_id": "a", "additional_messages": messages}
    assert maybe_transform(body, RunCreateParamsBase) == body
