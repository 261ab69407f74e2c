"""The Conversations + Responses API family through the official SDK (sync and async)."""

from __future__ import annotations

import time

import openai
import pytest

from thread_pool.emulator import EmulatorServer, expected_reply, parse_reply
from thread_pool.emulator.conversation_items import entry_of

WEATHER = {"type": "function", "name": "get_weather", "parameters": {}}


def conversation_entries(client: openai.OpenAI, conversation_id: str) -> list[tuple[str, str]]:
    """The conversation's digest entries, oldest first."""
    items = client.conversations.items.list(conversation_id, order="asc", limit=100)
    return [entry_of(item.model_dump()) for item in items]


def test_every_endpoint_sync(
    thread_pool_openai_client: openai.OpenAI, thread_pool_emulator: EmulatorServer
) -> None:
    client = thread_pool_openai_client
    conversation = client.conversations.create(
        items=[{"type": "message", "role": "user", "content": "first"}], metadata={"doc": "1"}
    )
    assert (conversation.object, conversation.metadata) == ("conversation", {"doc": "1"})
    assert client.conversations.retrieve(conversation.id).id == conversation.id
    assert client.conversations.update(conversation.id, metadata={"doc": "2"}).metadata == {
        "doc": "2"
    }

    added = client.conversations.items.create(
        conversation.id,
        items=[
            {"type": "message", "role": "assistant", "content": "noted"},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "2"}]},
        ],
    )
    assert [item.type for item in added.data] == ["message", "message"]
    first_id = added.data[0].id
    assert first_id is not None
    item = client.conversations.items.retrieve(first_id, conversation_id=conversation.id)
    assert item.id == first_id

    response = client.responses.create(
        model="gpt-4o", conversation=conversation.id, input="third", metadata={"tp_fence": "7"}
    )
    assert response.status == "completed"
    assert response.conversation is not None
    assert response.conversation.id == conversation.id
    assert response.metadata == {"tp_fence": "7"}
    entries = conversation_entries(client, conversation.id)
    assert [text for _, text in entries[:4]] == ["first", "noted", "2", "third"]
    assert response.output_text == entries[4][1]
    assert response.output_text == expected_reply(
        parse_reply(response.output_text).answered_id, entries[:4]
    )
    items = client.conversations.items.list(conversation.id, order="asc")
    assert parse_reply(response.output_text).answered_id == items.data[3].id
    assert client.responses.retrieve(response.id).output_text == response.output_text
    newest = client.conversations.items.list(conversation.id, limit=1)
    assert newest.data[0].id == items.data[-1].id

    background = client.responses.create(
        model="gpt-4o", conversation=conversation.id, input="later", background=True
    )
    assert background.status == "queued"
    assert background.output == []
    while (fetched := client.responses.retrieve(background.id)).status != "completed":
        time.sleep(0.01)
    assert parse_reply(fetched.output_text).count == 6

    thread_pool_emulator.emulator.configure(latency=5)  # long enough to cancel it running
    slow = client.responses.create(
        model="gpt-4o", conversation=conversation.id, input="never", background=True
    )
    cancelled = client.responses.cancel(slow.id)
    assert cancelled.status == "cancelled"
    assert client.responses.cancel(slow.id).status == "cancelled"  # idempotent
    # A cancelled response adds nothing to the conversation and frees it.
    assert len(conversation_entries(client, conversation.id)) == 7
    deleted = client.conversations.delete(conversation.id)
    assert (deleted.deleted, deleted.object) == (True, "conversation.deleted")
    with pytest.raises(openai.NotFoundError):
        client.conversations.retrieve(conversation.id)


async def test_every_endpoint_async(
    thread_pool_async_openai_client: openai.AsyncOpenAI, thread_pool_emulator: EmulatorServer
) -> None:
    client = thread_pool_async_openai_client
    conversation = await client.conversations.create(metadata={"k": "v"})
    assert (await client.conversations.retrieve(conversation.id)).metadata == {"k": "v"}
    assert (await client.conversations.update(conversation.id, metadata={})).metadata == {}
    added = await client.conversations.items.create(
        conversation.id, items=[{"type": "message", "role": "user", "content": "hi"}]
    )
    item_id = added.data[0].id
    assert item_id is not None
    got = await client.conversations.items.retrieve(item_id, conversation_id=conversation.id)
    assert got.id == item_id
    response = await client.responses.create(
        model="gpt-4o", conversation=conversation.id, input=[{"role": "user", "content": "yo"}]
    )
    assert response.status == "completed"
    assert parse_reply(response.output_text).count == 2
    assert (await client.responses.retrieve(response.id)).id == response.id
    ids = [item.id async for item in client.conversations.items.list(conversation.id)]
    assert len(ids) == 3
    thread_pool_emulator.emulator.configure(latency=5)
    background = await client.responses.create(
        model="gpt-4o", conversation=conversation.id, input="bg", background=True
    )
    assert (await client.responses.cancel(background.id)).status == "cancelled"
    assert (await client.conversations.delete(conversation.id)).deleted is True


def test_function_call_round_trip(
    thread_pool_openai_client: openai.OpenAI, thread_pool_emulator: EmulatorServer
) -> None:
    client = thread_pool_openai_client
    conversation = client.conversations.create()
    asked = client.responses.create(
        model="gpt-4o",
        conversation=conversation.id,
        input='weather? call:get_weather({"city": "Rome"})',
        tools=[WEATHER],  # type: ignore[list-item]
    )
    (call,) = asked.output
    assert call.type == "function_call"
    assert (call.name, call.arguments) == ("get_weather", '{"city": "Rome"}')
    assert asked.output_text == ""
    answered = client.responses.create(
        model="gpt-4o",
        conversation=conversation.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "hot"}],
        tools=[WEATHER],  # type: ignore[list-item]
    )
    reply = parse_reply(answered.output_text)
    assert reply.tool_outputs == ("hot",)
    entries = conversation_entries(client, conversation.id)
    assert [role for role, _ in entries] == [
        "user",
        "function_call",
        "function_call_output",
        "assistant",
    ]
    assert reply.saw(entries[:3])


def test_response_without_conversation_chains_by_previous_id(
    thread_pool_openai_client: openai.OpenAI, thread_pool_emulator: EmulatorServer
) -> None:
    client = thread_pool_openai_client
    first = client.responses.create(model="gpt-4o", input="one")
    assert first.conversation is None
    second = client.responses.create(model="gpt-4o", input="two", previous_response_id=first.id)
    assert parse_reply(second.output_text).saw(
        [("user", "one"), ("assistant", first.output_text), ("user", "two")]
    )


def test_sync_response_holds_the_request_for_its_latency(
    thread_pool_openai_client: openai.OpenAI, thread_pool_emulator: EmulatorServer
) -> None:
    thread_pool_emulator.emulator.configure(latency=0.3)
    started = time.monotonic()
    response = thread_pool_openai_client.responses.create(model="gpt-4o", input="wait")
    assert response.status == "completed"
    assert 0.29 <= time.monotonic() - started < 1.0
