"""Streamed responses through the official SDK over real HTTP: upstream's events, resume, the
drop fault and its first-event stall, tools, cancels and disconnects."""

from __future__ import annotations

import time
from typing import Any

import openai
import pytest
from openai.types.responses import ResponseStreamEvent

from thread_pool.emulator import EmulatorServer, expected_reply, parse_reply
from thread_pool.emulator.conversation_items import entry_of

WEATHER = {"type": "function", "name": "get_weather", "parameters": {}}

#: A text reply's events, in upstream's order (UPSTREAM.md), for a background response.
TEXT_ORDER = [
    "response.created",
    "response.queued",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]


def squeeze(kinds: list[str]) -> list[str]:
    """``kinds`` with runs of one kind collapsed (the deltas)."""
    return [kind for index, kind in enumerate(kinds) if index == 0 or kinds[index - 1] != kind]


def conversation_entries(client: openai.OpenAI, conversation_id: str) -> list[tuple[str, str]]:
    items = client.conversations.items.list(conversation_id, order="asc", limit=100)
    return [entry_of(item.model_dump()) for item in items]


def deltas(events: list[Any]) -> str:
    return "".join(e.delta for e in events if e.type == "response.output_text.delta")


def collect(stream: Any) -> tuple[list[Any], BaseException | None]:
    """Every event of ``stream`` until it ends or breaks, and what broke it."""
    seen: list[Any] = []
    try:
        for event in stream:
            seen.append(event)
    except openai.APIConnectionError as error:
        return seen, error
    return seen, None


@pytest.mark.thread_pool_emulator(latency=0.6)
def test_stream_helper_parses_upstream_events_and_deltas_join_to_the_reply(
    thread_pool_openai_client: openai.OpenAI,
) -> None:
    client = thread_pool_openai_client
    conversation = client.conversations.create(
        items=[{"type": "message", "role": "user", "content": "earlier"}]
    )
    # The SDK builds its event models on first use (about a second): not part of the timing.
    with client.responses.stream(model="gpt-4o", input="warm-up", background=True) as warm_up:
        warm_up.get_final_response()
    started = time.monotonic()
    arrivals: list[float] = []
    with client.responses.stream(
        model="gpt-4o", conversation=conversation.id, input="hello there", background=True
    ) as stream:
        events = []
        for event in stream:
            events.append(event)
            arrivals.append(time.monotonic() - started)
        final = stream.get_final_response()
    assert squeeze([e.type for e in events]) == TEXT_ORDER
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert final.status == "completed"
    entries = conversation_entries(client, conversation.id)
    reply = expected_reply(parse_reply(final.output_text).answered_id, entries[:2])
    # The deltas, the final response, the stored item and a plain retrieve agree exactly.
    assert deltas(events) == final.output_text == reply == entries[2][1]
    assert client.responses.retrieve(final.id).output_text == reply
    # Spread over the response's 0.6 s (the deltas over about 0.2 s of it), not in one burst.
    texts = [t for t, e in zip(arrivals, events, strict=True) if "delta" in e.type]
    assert texts[-1] - texts[0] > 0.1
    assert arrivals[-1] >= 0.55


@pytest.mark.thread_pool_emulator(latency=0.1)
async def test_async_create_stream_true(
    thread_pool_async_openai_client: openai.AsyncOpenAI,
) -> None:
    client = thread_pool_async_openai_client
    conversation = await client.conversations.create()
    stream = await client.responses.create(
        model="gpt-4o", conversation=conversation.id, input="hi", stream=True
    )
    events: list[ResponseStreamEvent] = [event async for event in stream]
    kinds = squeeze([e.type for e in events])
    assert kinds == [k for k in TEXT_ORDER if k != "response.queued"]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    completed = events[-1]
    assert completed.type == "response.completed"
    assert deltas(events) == completed.response.output_text
    retrieved = await client.responses.retrieve(completed.response.id)
    assert retrieved.output_text == completed.response.output_text


@pytest.mark.thread_pool_emulator(latency=0.3)
def test_resume_after_yields_exactly_the_missing_events(
    thread_pool_openai_client: openai.OpenAI,
) -> None:
    client = thread_pool_openai_client
    conversation = client.conversations.create()
    stream = client.responses.create(
        model="gpt-4o", conversation=conversation.id, input="hi", background=True, stream=True
    )
    head: list[Any] = []
    for event in stream:
        head.append(event)
        if len(head) == 6:
            break
    stream.close()
    response_id = head[0].response.id
    tail = list(client.responses.retrieve(response_id, stream=True, starting_after=5))
    assert [e.sequence_number for e in tail] == list(range(6, 6 + len(tail)))
    assert tail[-1].type == "response.completed"
    # The same events as a full replay, and the text joins to the reply.
    replay = list(client.responses.retrieve(response_id, stream=True))
    assert [e.model_dump() for e in head + tail] == [e.model_dump() for e in replay]
    assert deltas(head + tail) == tail[-1].response.output_text
    # The SDK's helper resumes the same way.
    with client.responses.stream(response_id=response_id, starting_after=5) as resumed:
        assert next(e.sequence_number for e in resumed) == 6
        assert resumed.get_final_response().output_text == deltas(replay)


@pytest.mark.thread_pool_emulator(latency=0.5)
def test_the_conversation_stays_locked_while_its_stream_is_open(
    thread_pool_openai_client: openai.OpenAI,
) -> None:
    client = thread_pool_openai_client
    conversation = client.conversations.create()
    with client.responses.stream(
        model="gpt-4o", conversation=conversation.id, input="first"
    ) as stream:
        for event in stream:
            if event.type == "response.output_text.delta":
                break
        with pytest.raises(openai.BadRequestError) as refused:
            client.responses.create(model="gpt-4o", conversation=conversation.id, input="x")
        assert refused.value.code == "conversation_locked"
        rest = [e.type for e in stream]
    assert rest[-1] == "response.completed"
    client.responses.create(model="gpt-4o", conversation=conversation.id, input="then")


@pytest.mark.thread_pool_emulator(latency=0.2, stream_drop_after=4)
def test_a_dropped_stream_raises_a_connection_error_and_resumes(
    thread_pool_openai_client: openai.OpenAI, thread_pool_emulator: EmulatorServer
) -> None:
    client = thread_pool_openai_client
    conversation = client.conversations.create()
    stream = client.responses.create(
        model="gpt-4o", conversation=conversation.id, input="hi", background=True, stream=True
    )
    head, error = collect(stream)
    assert error is not None
    assert [e.sequence_number for e in head] == [0, 1, 2, 3]
    events = list(head)
    while events[-1].type != "response.completed":  # each resume is cut after 4 events too
        more, _ = collect(
            client.responses.retrieve(
                head[0].response.id, stream=True, starting_after=events[-1].sequence_number
            )
        )
        events += more
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert deltas(events) == events[-1].response.output_text
    assert thread_pool_emulator.admin.stats()["faults"]["stream_drop"] >= 1


@pytest.mark.thread_pool_emulator(latency=0.1, stream_drop=1.0, seed=3)
def test_random_drops_are_seeded_and_land_inside_the_stream(
    thread_pool_openai_client: openai.OpenAI, thread_pool_emulator: EmulatorServer
) -> None:
    def cuts() -> list[int]:
        seen = []
        for _ in range(6):
            conversation = thread_pool_openai_client.conversations.create()
            events, error = collect(
                thread_pool_openai_client.responses.create(
                    model="gpt-4o", conversation=conversation.id, input="hi", stream=True
                )
            )
            assert error is not None
            seen.append(len(events))
        return seen

    first = cuts()
    assert all(0 <= count < 15 for count in first)
    thread_pool_emulator.admin.reset(latency=0.1, stream_drop=1.0, seed=3)
    assert cuts() == first


# Queued for most of its latency: the client and the in-process server share one interpreter, so
# a busy client can delay the server's cut by tens of milliseconds.
@pytest.mark.thread_pool_emulator(latency=0.3, queued_fraction=0.9, stream_drop_after=1)
def test_a_background_stream_cut_at_its_first_event_stays_queued_until_cancelled(
    thread_pool_openai_client: openai.OpenAI, thread_pool_emulator: EmulatorServer
) -> None:
    client = thread_pool_openai_client
    conversation = client.conversations.create()
    events, error = collect(
        client.responses.create(
            model="gpt-4o", conversation=conversation.id, input="hi", background=True, stream=True
        )
    )
    assert error is not None
    assert [e.type for e in events] == ["response.created"]
    response_id = events[0].response.id
    time.sleep(0.5)  # well past its latency
    assert client.responses.retrieve(response_id).status == "queued"
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(model="gpt-4o", conversation=conversation.id, input="x")
    assert refused.value.code == "conversation_locked"
    assert thread_pool_emulator.admin.stats()["faults"]["stream_stall"] == 1
    assert client.responses.cancel(response_id).status == "cancelled"
    assert conversation_entries(client, conversation.id) == []
    thread_pool_emulator.emulator.configure(stream_drop_after=None)
    client.responses.create(model="gpt-4o", conversation=conversation.id, input="free again")
    # A synchronous stream cut the same way ends there instead (cancelled, nothing kept).
    thread_pool_emulator.emulator.configure(stream_drop_after=1, latency=1.0, queued_fraction=0.2)
    events, error = collect(
        client.responses.create(
            model="gpt-4o", conversation=conversation.id, input="hi", stream=True
        )
    )
    assert error is not None
    assert client.responses.retrieve(events[0].response.id).status == "cancelled"


@pytest.mark.thread_pool_emulator(latency=0.1)
def test_tool_calls_stream_as_function_call_items(
    thread_pool_openai_client: openai.OpenAI,
) -> None:
    client = thread_pool_openai_client
    conversation = client.conversations.create()
    with client.responses.stream(
        model="gpt-4o",
        conversation=conversation.id,
        input='call:get_weather({"city": "Paris"})',
        tools=[WEATHER],  # type: ignore[list-item]
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = squeeze([e.type for e in events])
    assert kinds[2:] == [
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    arguments = "".join(
        e.delta for e in events if e.type == "response.function_call_arguments.delta"
    )
    call = final.output[0]
    assert call.type == "function_call"
    assert arguments == call.arguments == '{"city": "Paris"}'
    added: Any = events[2]
    assert (added.item.type, added.item.name) == ("function_call", "get_weather")
    output = {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}
    with client.responses.stream(
        model="gpt-4o",
        conversation=conversation.id,
        input=[output],  # type: ignore[list-item]
    ) as stream:
        answer = stream.get_final_response()
    assert parse_reply(answer.output_text).tool_outputs == ("sunny",)


@pytest.mark.thread_pool_emulator(latency=0.1, run_stuck=1.0)
def test_a_cancel_ends_the_stream_and_the_response_reads_cancelled(
    thread_pool_openai_client: openai.OpenAI,
) -> None:
    client = thread_pool_openai_client
    conversation = client.conversations.create()
    stream = client.responses.create(
        model="gpt-4o", conversation=conversation.id, input="hi", background=True, stream=True
    )
    kinds = []
    response_id = ""
    for event in stream:
        kinds.append(event.type)
        if event.type == "response.in_progress":
            response_id = event.response.id
            assert client.responses.cancel(response_id).status == "cancelled"
    # The stream ends cleanly at the cancel (upstream has no stream event for it).
    assert kinds == ["response.created", "response.queued", "response.in_progress"]
    assert client.responses.retrieve(response_id).status == "cancelled"
    assert [e.type for e in client.responses.retrieve(response_id, stream=True)] == kinds
    assert conversation_entries(client, conversation.id) == []


@pytest.mark.thread_pool_emulator(latency=1.0)
def test_a_client_that_goes_away_ends_a_plain_stream_but_not_a_background_one(
    thread_pool_openai_client: openai.OpenAI, thread_pool_emulator: EmulatorServer
) -> None:
    client = thread_pool_openai_client
    conversation = client.conversations.create()
    ids = {}
    for background in (False, True):
        stream = client.responses.create(
            model="gpt-4o",
            conversation=conversation.id,
            input="hi",
            background=background,
            stream=True,
        )
        first = next(iter(stream))
        stream.close()
        ids[background] = first.response.id  # type: ignore[union-attr]
        deadline = time.monotonic() + 3
        while client.responses.retrieve(ids[background]).status in ("queued", "in_progress"):
            assert time.monotonic() < deadline
            time.sleep(0.02)
    assert client.responses.retrieve(ids[False]).status == "cancelled"
    assert client.responses.retrieve(ids[True]).status == "completed"
    # Only the background turn reached the conversation; the emulator still serves.
    assert len(conversation_entries(client, conversation.id)) == 2
    assert thread_pool_emulator.admin.stats()["owners_over_one"] == []


def test_only_streamed_background_responses_can_be_streamed_again(
    thread_pool_openai_client: openai.OpenAI,
) -> None:
    client = thread_pool_openai_client
    plain = client.responses.create(model="gpt-4o", input="hi", background=True)
    with pytest.raises(openai.BadRequestError, match="cannot be streamed"):
        list(client.responses.retrieve(plain.id, stream=True))
    streamed = list(client.responses.create(model="gpt-4o", input="hi", stream=True))
    with pytest.raises(openai.BadRequestError, match="cannot be streamed"):
        list(client.responses.retrieve(streamed[0].response.id, stream=True))  # type: ignore[union-attr]
    with pytest.raises(openai.BadRequestError, match="starting_after"):
        client.responses.retrieve(plain.id, extra_query={"stream": "true", "starting_after": "x"})


@pytest.mark.thread_pool_emulator(latency=0.05, run_failed=1.0)
def test_a_failed_response_streams_response_failed(
    thread_pool_openai_client: openai.OpenAI,
) -> None:
    events = list(thread_pool_openai_client.responses.create(model="m", input="x", stream=True))
    assert [e.type for e in events][-1] == "response.failed"
    assert events[-1].response.status == "failed"  # type: ignore[union-attr]
