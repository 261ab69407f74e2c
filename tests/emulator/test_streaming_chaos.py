"""Many streams at once, cut by the drop fault or abandoned by their clients at random points:
the emulator keeps serving, keeps its lock rule, and every run (response) ends as its kind
says it must."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import Any

import openai
import pytest

from thread_pool.emulator import EmulatorServer

TERMINAL = ("completed", "cancelled", "failed")


@dataclass
class Outcome:
    conversation_id: str
    background: bool
    read_all: bool
    response_id: str = ""  # from response.created, if the client got that far


async def one_response(
    client: openai.AsyncOpenAI, rng: random.Random, conversation_id: str
) -> Outcome:
    """Stream one response and stop after a random number of events (or read it all)."""
    outcome = Outcome(conversation_id, rng.random() < 0.5, True)
    stop_after = rng.randrange(0, 20)
    stream = None
    try:
        stream = await client.responses.create(
            model="gpt-4o",
            conversation=conversation_id,
            input="hi",
            background=outcome.background,
            stream=True,
        )
        seen = 0
        async for event in stream:
            if event.type == "response.created":
                outcome.response_id = event.response.id
            seen += 1
            if seen > stop_after:
                outcome.read_all = False
                await stream.close()
                break
    except openai.APIConnectionError:
        outcome.read_all = False
    finally:
        # A stream cut by a drop is closed too: left to the garbage collector, its generators
        # would be finalized at a random later moment (an unraisable error under pytest).
        if stream is not None:
            await stream.close()
    return outcome


async def settled_status(client: openai.AsyncOpenAI, outcome: Outcome) -> str:
    """The response's status, every response being past its latency: a background one still
    ``queued`` stalled at its first event, and only a cancel ends it."""
    status = (await client.responses.retrieve(outcome.response_id)).status
    if status == "queued" and outcome.background and not outcome.read_all:
        return f"{(await client.responses.cancel(outcome.response_id)).status}-stalled"
    assert status in TERMINAL
    return status


@pytest.mark.slow
# Runs long enough that a client reading 40 streams at once keeps up with them.
@pytest.mark.thread_pool_emulator(latency="0.5-1.0", stream_drop=0.3, seed=5)
async def test_random_disconnects_and_drops_leave_the_emulator_consistent(
    thread_pool_async_openai_client: openai.AsyncOpenAI, thread_pool_emulator: EmulatorServer
) -> None:
    client = thread_pool_async_openai_client
    admin = thread_pool_emulator.admin
    rng = random.Random(7)
    outcomes: list[Outcome] = []
    for _ in range(5):  # rounds of 40 concurrent streams, one conversation each
        conversations = [await client.conversations.create() for _ in range(40)]
        outcomes += await asyncio.gather(*(one_response(client, rng, c.id) for c in conversations))
    assert len(outcomes) == 200
    await asyncio.sleep(1.0)  # every response past its latency
    statuses = []
    for outcome in outcomes:
        made = [w for w in admin.writes(outcome.conversation_id) if w["op"] == "response.create"]
        assert len(made) == 1
        assert outcome.response_id in ("", made[0]["object_id"])
        outcome.response_id = made[0]["object_id"]
        status = await settled_status(client, outcome)
        statuses.append(status)
        if outcome.read_all:
            assert status == "completed"
        elif not outcome.background:
            # A plain stream ends with its connection, unless the response had already
            # completed when the connection went (the client had not read the last event).
            assert status in ("cancelled", "completed")
        else:
            # A background one goes on, unless its creating stream stalled it.
            assert status in ("completed", "cancelled-stalled")
        # The conversation holds the turn exactly when the response completed, and is free.
        items = await client.conversations.items.list(outcome.conversation_id)
        assert len(items.data) == (2 if status == "completed" else 0)
        await client.responses.create(
            model="gpt-4o", conversation=outcome.conversation_id, input="x", background=True
        )
    stats = admin.stats()
    assert stats["owners_over_one"] == []
    assert "500" not in stats["statuses"]
    assert stats["faults"]["stream_drop"] > 20
    assert statuses.count("cancelled-stalled") == stats["faults"].get("stream_stall", 0)
    # A plain stream its client left is cancelled when the emulator notices the connection gone,
    # and only then (how many it notices before they complete depends on the machine's load).
    plain_abandoned = [
        (status, o)
        for status, o in zip(statuses, outcomes, strict=True)
        if not o.background and not o.read_all
    ]
    for status, o in plain_abandoned:
        ended_by_disconnect = any(
            w["op"] == "response.disconnect" for w in admin.writes(o.conversation_id)
        )
        assert ended_by_disconnect == (status == "cancelled")
    assert any(status == "cancelled" for status, _ in plain_abandoned)


async def one_run(
    client: openai.AsyncOpenAI, rng: random.Random, assistant_id: str, thread_id: str
) -> bool:
    """Stream one run (a tool call half the time, answered by a streamed submission) and stop
    at a random event; whether this client read it to the end."""
    tool = rng.random() < 0.5
    stop_after = rng.randrange(0, 25)
    seen = 0
    opened: list[openai.AsyncStream[Any]] = []
    try:
        await client.beta.threads.messages.create(
            thread_id, role="user", content="call:ping()" if tool else "hi"
        )
        stream = await client.beta.threads.runs.create(
            thread_id=thread_id, assistant_id=assistant_id, stream=True
        )
        opened.append(stream)
        async for event in stream:
            seen += 1
            if seen > stop_after:
                await stream.close()
                return False
            if event.event == "thread.run.requires_action":
                run = event.data
                calls = run.required_action.submit_tool_outputs.tool_calls  # type: ignore[union-attr]
                stream = await client.beta.threads.runs.submit_tool_outputs(
                    run.id,
                    thread_id=thread_id,
                    tool_outputs=[{"tool_call_id": c.id, "output": "pong"} for c in calls],
                    stream=True,
                )
                opened.append(stream)
                async for _ in stream:
                    seen += 1
                    if seen > stop_after:
                        await stream.close()
                        return False
    except openai.APIConnectionError:
        return False
    finally:
        for stream in opened:  # closed whatever happened (see one_response)
            await stream.close()
    return True


@pytest.mark.slow
@pytest.mark.filterwarnings(r"ignore:(The Assistants API is deprecated|deprecated$)")
@pytest.mark.thread_pool_emulator(latency="0.2-0.4", stream_drop=0.3, seed=6)
async def test_runs_whose_streams_are_cut_or_abandoned_still_end(
    thread_pool_async_openai_client: openai.AsyncOpenAI, thread_pool_emulator: EmulatorServer
) -> None:
    client = thread_pool_async_openai_client
    ping = {"type": "function", "function": {"name": "ping", "parameters": {}}}
    assistant = await client.beta.assistants.create(model="gpt-4o", tools=[ping])  # type: ignore[list-item]
    rng = random.Random(8)
    threads = [await client.beta.threads.create() for _ in range(40)]
    read = await asyncio.gather(*(one_run(client, rng, assistant.id, t.id) for t in threads))
    assert 0 < sum(read) < 40
    for thread in threads:
        runs = (await client.beta.threads.runs.list(thread.id)).data
        assert len(runs) == 1
        for _ in range(100):  # a run goes on without its stream; wait for it to stop
            if runs[0].status not in ("queued", "in_progress"):
                break
            await asyncio.sleep(0.02)
            runs = (await client.beta.threads.runs.list(thread.id)).data
        # A run left in requires_action (its client went before submitting) is cancelled.
        if runs[0].status == "requires_action":
            await client.beta.threads.runs.cancel(runs[0].id, thread_id=thread.id)
            await asyncio.sleep(0.1)
        status = (await client.beta.threads.runs.retrieve(runs[0].id, thread_id=thread.id)).status
        assert status in ("completed", "cancelled")
        await client.beta.threads.messages.create(thread.id, role="user", content="free again")
    stats = thread_pool_emulator.admin.stats()
    assert stats["owners_over_one"] == []
    assert "500" not in stats["statuses"]
    assert stats["faults"]["stream_drop"] > 5
