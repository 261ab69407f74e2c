"""The Assistants API family through the official SDK (sync and async), over real HTTP."""

from __future__ import annotations

import time

import openai
import pytest
from openai.types.beta import FunctionToolParam

from thread_pool.emulator import EmulatorServer, expected_reply, parse_reply

# The SDK's Assistants methods warn at the caller's line (so the pyproject's ``openai.*`` filter
# does not match); this module speaks that API on purpose.
pytestmark = pytest.mark.filterwarnings(
    r"ignore:(The Assistants API is deprecated|deprecated$):DeprecationWarning"
)

WEATHER: FunctionToolParam = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {}},
}


def entries_of(client: openai.OpenAI, thread_id: str) -> list[tuple[str, str]]:
    """The thread's ``(role, text)`` entries, oldest first."""
    return [
        (m.role, m.content[0].text.value)  # type: ignore[union-attr]
        for m in client.beta.threads.messages.list(thread_id=thread_id, order="asc", limit=100)
    ]


def test_every_endpoint_sync(
    thread_pool_openai_client: openai.OpenAI, thread_pool_emulator: EmulatorServer
) -> None:
    client = thread_pool_openai_client
    assistant = client.beta.assistants.create(
        model="gpt-4o", name="helper", instructions="be brief", metadata={"team": "a"}
    )
    assert client.beta.assistants.retrieve(assistant.id) == assistant
    assert (assistant.object, assistant.model, assistant.instructions) == (
        "assistant",
        "gpt-4o",
        "be brief",
    )

    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": "first"}], metadata={"doc": "42"}
    )
    assert thread.object == "thread"
    assert client.beta.threads.retrieve(thread.id).metadata == {"doc": "42"}
    updated = client.beta.threads.update(thread.id, metadata={"doc": "43"})
    assert updated.metadata == {"doc": "43"}

    message = client.beta.threads.messages.create(
        thread.id, role="user", content=[{"type": "text", "text": "second"}], metadata={"n": "2"}
    )
    assert (message.role, message.thread_id, message.metadata) == ("user", thread.id, {"n": "2"})
    assert client.beta.threads.messages.retrieve(message.id, thread_id=thread.id) == message

    run = client.beta.threads.runs.create(
        thread.id,
        assistant_id=assistant.id,
        instructions="override",
        additional_messages=[{"role": "user", "content": "third"}],
        metadata={"tp_fence": "1"},
    )
    assert run.status == "queued"
    assert run.instructions == "override"
    assert run.metadata == {"tp_fence": "1"}
    assert run.expires_at is not None
    assert run.expires_at - run.created_at in (599, 600, 601)
    done = client.beta.threads.runs.poll(run.id, thread_id=thread.id)
    assert done.status == "completed"
    assert done.completed_at is not None
    assert done.usage is not None

    entries = entries_of(client, thread.id)
    assert [text for _, text in entries[:3]] == ["first", "second", "third"]
    reply = parse_reply(entries[3][1])
    assert entries[3][1] == expected_reply(reply.answered_id, entries[:3])
    third_id = client.beta.threads.messages.list(thread.id, order="asc").data[2].id
    assert reply.answered_id == third_id
    by_run = client.beta.threads.messages.list(thread.id, run_id=run.id)
    assert [m.run_id for m in by_run.data] == [run.id]
    assert by_run.data[0].assistant_id == assistant.id

    assert [r.id for r in client.beta.threads.runs.list(thread.id)] == [run.id]
    assert client.beta.threads.runs.retrieve(run.id, thread_id=thread.id).status == "completed"

    thread_pool_emulator.emulator.configure(latency=5)  # long enough to cancel it running
    second = client.beta.threads.runs.create(thread.id, assistant_id=assistant.id)
    cancelling = client.beta.threads.runs.cancel(second.id, thread_id=thread.id)
    assert cancelling.status == "cancelling"
    cancelled = client.beta.threads.runs.poll(second.id, thread_id=thread.id, poll_interval_ms=20)
    assert cancelled.status == "cancelled"
    assert cancelled.cancelled_at is not None

    deleted = client.beta.threads.delete(thread.id)
    assert (deleted.id, deleted.deleted, deleted.object) == (thread.id, True, "thread.deleted")
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.retrieve(thread.id)


async def test_every_endpoint_async(
    thread_pool_async_openai_client: openai.AsyncOpenAI, thread_pool_emulator: EmulatorServer
) -> None:
    client = thread_pool_async_openai_client
    assistant = await client.beta.assistants.create(model="gpt-4o", tools=[WEATHER])
    assert (await client.beta.assistants.retrieve(assistant.id)).id == assistant.id
    thread = await client.beta.threads.create(metadata={"k": "v"})
    assert (await client.beta.threads.retrieve(thread.id)).metadata == {"k": "v"}
    assert (await client.beta.threads.update(thread.id, metadata={})).metadata == {}
    message = await client.beta.threads.messages.create(thread.id, role="user", content="hi")
    assert (await client.beta.threads.messages.retrieve(message.id, thread_id=thread.id)).id == (
        message.id
    )
    run = await client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id
    )
    assert run.status == "completed"
    page = await client.beta.threads.messages.list(thread.id)
    assert [m.role for m in page.data] == ["assistant", "user"]
    text = page.data[0].content[0].text.value  # type: ignore[union-attr]
    assert text == expected_reply(message.id, [("user", "hi")])
    assert [r.id async for r in client.beta.threads.runs.list(thread.id)] == [run.id]
    assert (await client.beta.threads.runs.retrieve(run.id, thread_id=thread.id)).id == run.id

    await client.beta.threads.messages.create(
        thread.id, role="user", content='call:get_weather({"city": "Oslo"})'
    )
    waiting = await client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id
    )
    assert waiting.status == "requires_action"
    assert waiting.required_action is not None
    (call,) = waiting.required_action.submit_tool_outputs.tool_calls
    assert (call.function.name, call.function.arguments) == ("get_weather", '{"city": "Oslo"}')
    finished = await client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=waiting.id,
        thread_id=thread.id,
        tool_outputs=[{"tool_call_id": call.id, "output": "cold"}],
    )
    assert finished.status == "completed"
    last = (await client.beta.threads.messages.list(thread.id, limit=1)).data[0]
    assert parse_reply(last.content[0].text.value).tool_outputs == ("cold",)  # type: ignore[union-attr]

    thread_pool_emulator.emulator.configure(latency=5)  # long enough to cancel it running
    other = await client.beta.threads.runs.create(thread.id, assistant_id=assistant.id)
    assert (await client.beta.threads.runs.cancel(other.id, thread_id=thread.id)).status == (
        "cancelling"
    )
    assert (await client.beta.threads.delete(thread.id)).deleted is True


@pytest.mark.thread_pool_emulator(latency=0.05)
def test_create_and_poll_follows_the_poll_header(
    thread_pool_openai_client: openai.OpenAI, thread_pool_emulator: EmulatorServer
) -> None:
    client = thread_pool_openai_client
    assistant = client.beta.assistants.create(model="gpt-4o")
    thread = client.beta.threads.create()
    raw = client.beta.threads.runs.with_raw_response.create(thread.id, assistant_id=assistant.id)
    assert raw.headers["openai-poll-after-ms"] == "12"
    client.beta.threads.runs.poll(raw.parse().id, thread_id=thread.id)
    started = time.monotonic()
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    # Without the header the SDK sleeps 1000 ms between polls.
    assert run.status == "completed"
    assert time.monotonic() - started < 0.6


def test_run_moves_through_queued_and_in_progress(
    thread_pool_openai_client: openai.OpenAI, thread_pool_emulator: EmulatorServer
) -> None:
    thread_pool_emulator.emulator.configure(latency=0.4, queued_fraction=0.5)
    client = thread_pool_openai_client
    assistant = client.beta.assistants.create(model="gpt-4o")
    thread = client.beta.threads.create()
    run = client.beta.threads.runs.create(thread.id, assistant_id=assistant.id)
    seen = [run.status]
    while seen[-1] != "completed":
        time.sleep(0.03)
        status = client.beta.threads.runs.retrieve(run.id, thread_id=thread.id).status
        if status != seen[-1]:
            seen.append(status)
    assert seen == ["queued", "in_progress", "completed"]


def test_run_overrides_tools_and_uses_assistant_defaults(
    thread_pool_openai_client: openai.OpenAI, thread_pool_emulator: EmulatorServer
) -> None:
    client = thread_pool_openai_client
    assistant = client.beta.assistants.create(model="gpt-4o", instructions="base", tools=[WEATHER])
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": "call:get_weather({})"}]
    )
    # A run that declares no function tools ignores the trigger and just replies.
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, tools=[]
    )
    assert (run.status, run.instructions, run.tools) == ("completed", "base", [])
    with_extra = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, additional_instructions="more"
    )
    assert with_extra.instructions == "base\nmore"


def test_pagination_of_messages(
    thread_pool_openai_client: openai.OpenAI, thread_pool_emulator: EmulatorServer
) -> None:
    client = thread_pool_openai_client
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": str(i)} for i in range(7)]
    )
    first = client.beta.threads.messages.list(thread.id, order="asc", limit=3)
    assert [m.content[0].text.value for m in first.data] == ["0", "1", "2"]  # type: ignore[union-attr]
    assert first.has_more is True
    everything = [
        m.content[0].text.value  # type: ignore[union-attr]
        for m in client.beta.threads.messages.list(thread.id, order="asc", limit=3)
    ]
    assert everything == [str(i) for i in range(7)]
    newest = client.beta.threads.messages.list(thread.id, limit=2)
    assert [m.content[0].text.value for m in newest.data] == ["6", "5"]  # type: ignore[union-attr]
