"""Streamed Assistants runs through the official SDK over real HTTP: upstream's events, the
SDK's stream helpers, tool calls, the lock rule, cancel, drops and disconnects."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import openai
import pytest
from openai.lib.streaming import AssistantEventHandler
from openai.types.beta import FunctionToolParam
from openai.types.beta.threads.runs import ToolCall, ToolCallDelta

from thread_pool.emulator import EmulatorServer, expected_reply, parse_reply

pytestmark = pytest.mark.filterwarnings(
    r"ignore:(The Assistants API is deprecated|deprecated$):DeprecationWarning"
)

WEATHER: FunctionToolParam = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {}},
}

#: A text reply's events, in upstream's order (UPSTREAM.md); ``done`` ends the SSE stream.
TEXT_ORDER = [
    "thread.run.created",
    "thread.run.queued",
    "thread.run.in_progress",
    "thread.run.step.created",
    "thread.run.step.in_progress",
    "thread.message.created",
    "thread.message.in_progress",
    "thread.message.delta",
    "thread.message.completed",
    "thread.run.step.completed",
    "thread.run.completed",
]


def squeeze(kinds: Sequence[str]) -> list[str]:
    return [kind for index, kind in enumerate(kinds) if index == 0 or kinds[index - 1] != kind]


def text_of(message: Any) -> str:
    return str(message.content[0].text.value)


def entries_of(client: openai.OpenAI, thread_id: str) -> list[tuple[str, str]]:
    messages = client.beta.threads.messages.list(thread_id=thread_id, order="asc", limit=100)
    return [(m.role, text_of(m)) for m in messages]


def collect(stream: Any) -> tuple[list[Any], BaseException | None]:
    seen: list[Any] = []
    try:
        for event in stream:
            seen.append(event)
    except openai.APIConnectionError as error:
        return seen, error
    return seen, None


class Recorder(AssistantEventHandler):
    """Keeps the SDK's text and tool-call callbacks."""

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.arguments: dict[int, str] = {}

    def on_text_delta(self, delta: Any, snapshot: Any) -> None:
        self.text.append(delta.value)

    def on_tool_call_delta(self, delta: ToolCallDelta, snapshot: ToolCall) -> None:
        if delta.type == "function" and delta.function and delta.function.arguments:
            self.arguments[delta.index] = self.arguments.get(delta.index, "") + (
                delta.function.arguments
            )


@pytest.fixture
def assistant_id(thread_pool_openai_client: openai.OpenAI) -> str:
    return thread_pool_openai_client.beta.assistants.create(model="gpt-4o", tools=[WEATHER]).id


@pytest.mark.thread_pool_emulator(latency=0.2)
def test_runs_stream_helper_parses_upstream_events(
    thread_pool_openai_client: openai.OpenAI, assistant_id: str
) -> None:
    client = thread_pool_openai_client
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hello"}])
    recorder = Recorder()
    with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=assistant_id, event_handler=recorder
    ) as stream:
        kinds = [event.event for event in stream]
        run = stream.get_final_run()
        streamed = stream.get_final_messages()[0]
    assert squeeze(kinds) == TEXT_ORDER
    assert run.status == "completed"
    entries = entries_of(client, thread.id)
    reply = expected_reply(parse_reply(text_of(streamed)).answered_id, entries[:1])
    assert "".join(recorder.text) == text_of(streamed) == reply == entries[1][1]
    stored = client.beta.threads.messages.list(thread_id=thread.id, run_id=run.id).data[0]
    assert stored.id == streamed.id  # the id announced by thread.message.created


@pytest.mark.thread_pool_emulator(latency=0.1)
async def test_async_create_stream_true(
    thread_pool_async_openai_client: openai.AsyncOpenAI,
) -> None:
    client = thread_pool_async_openai_client
    assistant = await client.beta.assistants.create(model="gpt-4o")
    thread = await client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    stream = await client.beta.threads.runs.create(
        thread_id=thread.id, assistant_id=assistant.id, stream=True
    )
    events = [event async for event in stream]
    assert squeeze([e.event for e in events]) == TEXT_ORDER
    deltas: list[Any] = [e.data for e in events if e.event == "thread.message.delta"]
    text = "".join(part.text.value for delta in deltas for part in delta.delta.content)
    completed = next(e for e in events if e.event == "thread.message.completed")
    assert text == text_of(completed.data)


@pytest.mark.thread_pool_emulator(latency=0.1)
def test_tool_calls_stream_then_submit_tool_outputs_streams_the_rest(
    thread_pool_openai_client: openai.OpenAI, assistant_id: str
) -> None:
    client = thread_pool_openai_client
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": 'call:get_weather({"city": "Oslo"})'}]
    )
    recorder = Recorder()
    with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=assistant_id, event_handler=recorder
    ) as stream:
        kinds = [event.event for event in stream]
        run = stream.get_final_run()
    assert squeeze(kinds)[-3:] == [
        "thread.run.step.in_progress",
        "thread.run.step.delta",
        "thread.run.requires_action",
    ]
    assert run.status == "requires_action"
    assert run.required_action is not None
    call = run.required_action.submit_tool_outputs.tool_calls[0]
    assert recorder.arguments == {0: call.function.arguments} == {0: '{"city": "Oslo"}'}
    with pytest.raises(openai.BadRequestError, match="already has an active run"):
        client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant_id)
    with client.beta.threads.runs.submit_tool_outputs_stream(
        thread_id=thread.id,
        run_id=run.id,
        tool_outputs=[{"tool_call_id": call.id, "output": "rain"}],
    ) as stream:
        kinds = [event.event for event in stream]
        finished = stream.get_final_run()
        message = stream.get_final_messages()[0]
    assert kinds[:3] == ["thread.run.queued", "thread.run.in_progress", "thread.run.step.completed"]
    assert finished.status == "completed"
    assert parse_reply(text_of(message)).tool_outputs == ("rain",)
    assert entries_of(client, thread.id)[-1][1] == text_of(message)


@pytest.mark.thread_pool_emulator(latency=0.5)
def test_the_thread_stays_locked_while_its_stream_is_open(
    thread_pool_openai_client: openai.OpenAI, assistant_id: str
) -> None:
    client = thread_pool_openai_client
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hello"}])
    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant_id) as stream:
        for event in stream:
            if event.event == "thread.message.delta":
                break
        with pytest.raises(openai.BadRequestError, match="already has an active run"):
            client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant_id)
        with pytest.raises(openai.BadRequestError, match="while a run"):
            client.beta.threads.messages.create(thread.id, role="user", content="x")
        assert stream.get_final_run().status == "completed"


@pytest.mark.thread_pool_emulator(latency=0.1, run_stuck=1.0)
def test_a_cancel_ends_the_stream_with_the_run_events(
    thread_pool_openai_client: openai.OpenAI, assistant_id: str
) -> None:
    client = thread_pool_openai_client
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hello"}])
    kinds = []
    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant_id) as stream:
        for event in stream:
            kinds.append(event.event)
            if event.event == "thread.run.in_progress":
                client.beta.threads.runs.cancel(run_id=event.data.id, thread_id=thread.id)
        run = stream.get_final_run()
    assert kinds == [
        "thread.run.created",
        "thread.run.queued",
        "thread.run.in_progress",
        "thread.run.cancelling",
        "thread.run.cancelled",
    ]
    assert run.status == "cancelled"


@pytest.mark.thread_pool_emulator(latency=0.3, stream_drop_after=3)
def test_a_dropped_run_stream_raises_and_the_run_goes_on(
    thread_pool_openai_client: openai.OpenAI, assistant_id: str
) -> None:
    client = thread_pool_openai_client
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hello"}])
    events, error = collect(
        client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant_id, stream=True)
    )
    assert error is not None
    assert [e.event for e in events] == TEXT_ORDER[:3]
    run_id = events[0].data.id
    deadline = time.monotonic() + 3
    while client.beta.threads.runs.retrieve(run_id, thread_id=thread.id).status != "completed":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert len(entries_of(client, thread.id)) == 2


@pytest.mark.thread_pool_emulator(latency=0.3)
def test_a_client_that_goes_away_leaves_the_run_going(
    thread_pool_openai_client: openai.OpenAI,
    assistant_id: str,
    thread_pool_emulator: EmulatorServer,
) -> None:
    client = thread_pool_openai_client
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hello"}])
    stream = client.beta.threads.runs.create(
        thread_id=thread.id, assistant_id=assistant_id, stream=True
    )
    first: Any = next(iter(stream))
    run_id = first.data.id
    stream.close()
    deadline = time.monotonic() + 3
    while client.beta.threads.runs.retrieve(run_id, thread_id=thread.id).status != "completed":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert thread_pool_emulator.admin.stats()["owners_over_one"] == []


@pytest.mark.thread_pool_emulator(latency=0.05, run_failed=1.0)
def test_a_failed_run_streams_thread_run_failed(
    thread_pool_openai_client: openai.OpenAI, assistant_id: str
) -> None:
    client = thread_pool_openai_client
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hello"}])
    events = list(
        client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant_id, stream=True)
    )
    assert [e.event for e in events][-1] == "thread.run.failed"
