"""Many streams at once, cut by the drop fault or abandoned by their clients at random points:
the emulator keeps serving, keeps its lock rule, and every run (response) ends as its kind
says it must."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

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
    plain_abandoned = [
        status
        for status, o in zip(statuses, outcomes, strict=True)
        if not o.background and not o.read_all
    ]
    assert plain_abandoned.count("cancelled") > len(plain_abandoned) / 2
