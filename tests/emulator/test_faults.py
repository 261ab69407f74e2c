"""Seeded faults: HTTP 500/503/429 before any state change, runs failing, expiring, stuck."""

from __future__ import annotations

import time

import openai
import pytest

from thread_pool.emulator import EmulatorServer
from thread_pool.emulator.faults import Planner

pytestmark = pytest.mark.filterwarnings(
    # The SDK's Assistants methods warn at the caller's line; this module uses them on purpose.
    r"ignore:(The Assistants API is deprecated|deprecated$):DeprecationWarning"
)


def statuses(client: openai.OpenAI, count: int) -> list[int]:
    """Send ``count`` thread creations; the HTTP status of each."""
    seen = []
    for _ in range(count):
        try:
            client.beta.threads.create()
            seen.append(200)
        except openai.APIStatusError as error:
            seen.append(error.status_code)
    return seen


FAULTY = {"http_500": 0.15, "http_503": 0.15, "http_429": 0.15}


def test_same_seed_same_faults(
    thread_pool_openai_client: openai.OpenAI, thread_pool_emulator: EmulatorServer
) -> None:
    admin = thread_pool_emulator.admin
    admin.reset(seed=11, **FAULTY)
    first = statuses(thread_pool_openai_client, 60)
    assert set(first) == {200, 500, 503, 429}
    faults = admin.stats()["faults"]
    assert sum(faults.values()) == first.count(500) + first.count(503) + first.count(429)
    # Faults never change state: only the 200s created a thread.
    assert admin.stats()["objects"]["threads"] == first.count(200)
    admin.reset(seed=11, **FAULTY)
    assert statuses(thread_pool_openai_client, 60) == first
    admin.reset(seed=12, **FAULTY)
    assert statuses(thread_pool_openai_client, 60) != first


def test_fault_bodies_and_retry_after(
    thread_pool_openai_client: openai.OpenAI, thread_pool_emulator: EmulatorServer
) -> None:
    client = thread_pool_openai_client
    thread_pool_emulator.emulator.configure(http_429=1.0, retry_after=2)
    with pytest.raises(openai.RateLimitError) as limited:
        client.beta.threads.create()
    assert limited.value.response.headers["retry-after"] == "2"
    assert limited.value.body == {
        "message": "Rate limit reached for requests per min (RPM) in the emulator. "
        "Please try again in 2s.",
        "type": "requests",
        "param": None,
        "code": "rate_limit_exceeded",
    }
    thread_pool_emulator.emulator.configure(http_429=0.0, http_500=1.0)
    with pytest.raises(openai.InternalServerError) as failed:
        client.beta.threads.create()
    assert failed.value.status_code == 500
    assert failed.value.body == {
        "message": "The server had an error while processing your request. Sorry about that!",
        "type": "server_error",
        "param": None,
        "code": None,
    }
    thread_pool_emulator.emulator.configure(http_500=0.0, http_503=1.0)
    with pytest.raises(openai.InternalServerError) as overloaded:
        client.beta.threads.create()
    assert overloaded.value.status_code == 503


def test_sdk_retries_ride_over_rate_limits(thread_pool_emulator: EmulatorServer) -> None:
    config = thread_pool_emulator.emulator.reset(seed=5, http_429=0.6, retry_after=0.01)
    planner = Planner()
    expected_faults = 0
    while planner.request_fault(config) is not None:
        expected_faults += 1
    # The SDK honours Retry-After (retry-after-ms: 10) and retries until the sequence passes.
    client = openai.OpenAI(base_url=thread_pool_emulator.base_url, api_key="k", max_retries=20)
    with client:
        assert client.conversations.create().object == "conversation"
    stats = thread_pool_emulator.admin.stats()
    assert stats["faults"] == ({"http_429": expected_faults} if expected_faults else {})
    assert stats["requests"]["POST /v1/conversations"] == expected_faults + 1


def test_runs_that_fail_expire_or_stick(
    thread_pool_openai_client: openai.OpenAI, thread_pool_emulator: EmulatorServer
) -> None:
    client = thread_pool_openai_client
    emulator = thread_pool_emulator.emulator
    assistant = client.beta.assistants.create(model="gpt-4o")
    thread = client.beta.threads.create()

    emulator.configure(run_failed=1.0)
    failed = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id
    )
    assert failed.status == "failed"
    assert failed.last_error is not None
    assert failed.last_error.code == "server_error"
    assert failed.failed_at is not None

    emulator.configure(run_failed=0.0, run_expired=1.0)
    expired = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id
    )
    assert expired.status == "expired"

    emulator.configure(run_expired=0.0, run_stuck=1.0)
    stuck = client.beta.threads.runs.create(thread.id, assistant_id=assistant.id)
    time.sleep(0.2)
    assert client.beta.threads.runs.retrieve(stuck.id, thread_id=thread.id).status == (
        "in_progress"
    )
    with pytest.raises(openai.BadRequestError):
        client.beta.threads.messages.create(thread.id, role="user", content="x")
    client.beta.threads.runs.cancel(stuck.id, thread_id=thread.id)
    cancelled = client.beta.threads.runs.poll(stuck.id, thread_id=thread.id, poll_interval_ms=10)
    assert cancelled.status == "cancelled"
    # Only completed runs answer: the thread holds no assistant message.
    assert client.beta.threads.messages.list(thread.id).data == []
    assert thread_pool_emulator.admin.stats()["faults"] == {
        "run_expired": 1,
        "run_failed": 1,
        "run_stuck": 1,
    }


@pytest.mark.thread_pool_emulator(run_ttl=0.3)
def test_unanswered_tool_call_expires_at_expires_at(
    thread_pool_openai_client: openai.OpenAI, thread_pool_emulator: EmulatorServer
) -> None:
    client = thread_pool_openai_client
    tools: list[dict[str, object]] = [{"type": "function", "function": {"name": "f"}}]
    assistant = client.beta.assistants.create(model="gpt-4o", tools=tools)  # type: ignore[arg-type]
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "call:f()"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert run.status == "requires_action"
    time.sleep(0.35)
    assert client.beta.threads.runs.retrieve(run.id, thread_id=thread.id).status == "expired"
    # The expired run no longer holds the thread.
    client.beta.threads.messages.create(thread.id, role="user", content="again")


def test_background_response_faults(
    thread_pool_openai_client: openai.OpenAI, thread_pool_emulator: EmulatorServer
) -> None:
    client = thread_pool_openai_client
    conversation = client.conversations.create()
    thread_pool_emulator.emulator.configure(run_failed=1.0)
    failed = client.responses.create(model="m", conversation=conversation.id, input="x")
    assert failed.status == "failed"
    assert failed.error is not None
    assert failed.error.code == "server_error"
    thread_pool_emulator.emulator.configure(run_failed=0.0, run_stuck=1.0)
    stuck = client.responses.create(
        model="m", conversation=conversation.id, input="y", background=True
    )
    time.sleep(0.1)
    assert client.responses.retrieve(stuck.id).status == "in_progress"
    assert client.responses.cancel(stuck.id).status == "cancelled"
    assert client.conversations.items.list(conversation.id).data == []
