"""Agents SDK runs on pooled conversations (``thread_pool.integrations.agents``) against the
emulator over HTTP and a real Redis, with a real ``openai-agents`` install: what each
conversation holds is read back through the SDK."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx2
import openai
import pytest
import redis
from agents import (
    Agent,
    MaxTurnsExceeded,
    OpenAIResponsesModel,
    RawResponsesStreamEvent,
    Runner,
    function_tool,
    set_tracing_disabled,
)

from tests.support.evidence import assert_quiet
from tests.support.pools import AsyncMakePool
from tests.support.upstream import lock_errors
from thread_pool import ConversationsBackend, InvalidArgument, ThreadPool
from thread_pool.emulator import EmulatorServer, parse_reply
from thread_pool.integrations.agents import run_agent, run_agent_streamed, run_agent_sync

set_tracing_disabled(True)  # nothing to send traces to


@function_tool
def lookup(city: str) -> str:
    """The weather in ``city``."""
    return f"sunny in {city}"


@function_tool
async def slow_lookup(city: str) -> str:
    """The weather in ``city``, slowly (longer than the lease's TTL)."""
    await asyncio.sleep(2.5)
    return f"sunny in {city}"


def weather_agent(client: openai.AsyncOpenAI, *tools: Any) -> Agent[Any]:
    return Agent(
        name="weather",
        instructions="Answer with the weather.",
        tools=list(tools) or [lookup],
        model=OpenAIResponsesModel(model="emulated", openai_client=client),
    )


async def conversation(client: openai.AsyncOpenAI, conv_id: str) -> list[tuple[str, str]]:
    """Every item of a conversation as ``(kind, text)``: messages by role and text, function
    calls and outputs by call id."""
    out: list[tuple[str, str]] = []
    async for item in client.conversations.items.list(conv_id, order="asc", limit=100):
        raw: Any = item
        if raw.type == "message":
            out.append((raw.role, "".join(p.text for p in raw.content)))
        elif raw.type in ("function_call", "function_call_output"):
            out.append((raw.type, raw.call_id))
    return out


async def test_concurrent_agent_runs_on_one_key_share_the_conversation_without_lock_errors(
    make_async_pool: AsyncMakePool,
    thread_pool_async_openai_client: openai.AsyncOpenAI,
    thread_pool_emulator: EmulatorServer,
    redis_client: redis.Redis,
    thread_pool_prefix: str,
) -> None:
    client = thread_pool_async_openai_client
    pool = make_async_pool(max_size=3)
    agent = weather_agent(client)
    runs: list[tuple[list[Any], Any]] = []

    async def worker(w: int) -> None:
        for i in range(2):
            before = await pool.history("doc")
            city = f"city-{w}-{i}"
            result = await run_agent(
                pool, "doc", agent, f'call:lookup({{"city": "{city}"}}) weather {w}.{i}?'
            )
            assert parse_reply(result.final_output).tool_outputs == (f"sunny in {city}",)
            runs.append((before, result))

    await asyncio.gather(*(worker(w) for w in range(5)))

    assert lock_errors(thread_pool_emulator) == 0
    history = await pool.history("doc")
    assert len(history) == 10 * 3  # each run: its question, its function call, its reply
    assert [e.role for e in history].count("tool") == 10
    checked = 0
    for before, result in runs:
        mine = [e for e in history if e.run_id == result.last_response_id]
        assert [e.role for e in mine] == ["user", "tool", "assistant"]
        held = await conversation(client, mine[0].origin)
        # Every turn logged before this run started is on its conversation exactly once.
        for entry in before:
            if entry.role == "tool":
                expected = ("function_call", json.loads(entry.content)["call_id"])
            else:
                expected = (entry.role, entry.content)
            assert held.count(expected) == 1, (entry, mine[0].origin)
            checked += 1
    assert checked > 20  # the runs did see each other's turns, not only empty logs
    assert_quiet(redis_client, thread_pool_prefix, "doc", threads=3)


async def test_a_run_longer_than_the_lease_ttl_keeps_its_lease(
    make_async_pool: AsyncMakePool,
    thread_pool_async_openai_client: openai.AsyncOpenAI,
    thread_pool_emulator: EmulatorServer,
) -> None:
    pool = make_async_pool(lease_ttl=2, renew_margin=1, max_size=1)
    agent = weather_agent(thread_pool_async_openai_client, slow_lookup)
    started = time.monotonic()
    result = await run_agent(pool, "doc", agent, 'call:slow_lookup({"city": "Oslo"})')
    assert time.monotonic() - started > 2.5
    assert parse_reply(result.final_output).tool_outputs == ("sunny in Oslo",)
    stats = await pool.stats("doc")
    assert (stats.lost, stats.reaped) == (0, 0)
    assert lock_errors(thread_pool_emulator) == 0


async def test_a_run_stopped_part_way_leaves_its_conversation_settled(
    make_async_pool: AsyncMakePool,
    thread_pool_async_openai_client: openai.AsyncOpenAI,
    thread_pool_emulator: EmulatorServer,
    redis_client: redis.Redis,
    thread_pool_prefix: str,
) -> None:
    pool = make_async_pool(max_size=1)
    agent = weather_agent(thread_pool_async_openai_client)
    # One model call: it asks for the tool, and the run stops before sending the output.
    with pytest.raises(MaxTurnsExceeded):
        await run_agent(pool, "doc", agent, 'call:lookup({"city": "x"}) hi', max_turns=1)
    assert await pool.history("doc") == []
    assert_quiet(redis_client, thread_pool_prefix, "doc", threads=1)
    # The call left open was closed: the conversation takes the next run.
    result = await run_agent(pool, "doc", agent, "again")
    assert parse_reply(result.final_output).answered_id.startswith("msg_")
    assert lock_errors(thread_pool_emulator) == 0


async def test_agents_need_a_conversations_pool(
    make_async_pool: AsyncMakePool, thread_pool_async_openai_client: openai.AsyncOpenAI
) -> None:
    pool = make_async_pool("assistants")
    with pytest.raises(InvalidArgument, match="ConversationsBackend"):
        await run_agent(pool, "doc", weather_agent(thread_pool_async_openai_client), "hi")


def test_the_blocking_pool_runs_agents_too(
    thread_pool_redis_url: str,
    thread_pool_prefix: str,
    thread_pool_emulator: EmulatorServer,
    thread_pool_openai_client: openai.OpenAI,
) -> None:
    backend = ConversationsBackend(thread_pool_openai_client, model="emulated")
    with ThreadPool(
        backend=backend, redis_url=thread_pool_redis_url, key_prefix=thread_pool_prefix
    ) as pool:
        pool.run("doc", "asked through the pool")
        # Runner.run_sync runs the agent on an event loop of its own, closed after the run:
        # the agent's client keeps no connection beyond a request (it would outlive the loop).
        agent_client = openai.AsyncOpenAI(
            base_url=thread_pool_emulator.base_url,
            api_key="unused",
            max_retries=0,
            http_client=openai.DefaultAsyncHttpxClient(
                limits=httpx2.Limits(max_keepalive_connections=0)
            ),
        )
        try:
            result = run_agent_sync(pool, "doc", weather_agent(agent_client), "and the agent?")
        finally:
            # Runner.run_sync leaves the thread's default event loop open on purpose (to reuse
            # it); this test is that thread's last user of it.
            policy = asyncio.get_event_loop_policy()
            policy.get_event_loop().close()
            policy.set_event_loop(None)
        history = pool.history("doc")
    assert [e.content for e in history][-2:] == ["and the agent?", result.final_output]
    # The run's conversation held the pool's turn before the agent's question.
    assert parse_reply(result.final_output).count == 3


async def test_streamed_runs_deliver_the_deltas_and_are_recorded_once_read_to_the_end(
    make_async_pool: AsyncMakePool,
    thread_pool_async_openai_client: openai.AsyncOpenAI,
    thread_pool_emulator: EmulatorServer,
    redis_client: redis.Redis,
    thread_pool_prefix: str,
) -> None:
    pool = make_async_pool(max_size=2, lease_ttl=2, renew_margin=1)
    agent = weather_agent(thread_pool_async_openai_client)
    # The renewer runs on the event loop, and the first streamed run of a process holds the
    # loop for seconds on a busy machine (the SDKs build their event models on first use): a
    # run outside the pool does that first.
    conv = await thread_pool_async_openai_client.conversations.create()
    warm = Runner.run_streamed(agent, 'call:lookup({"city": "w"}) warm up', conversation_id=conv.id)
    async for _ in warm.stream_events():
        pass

    async def streamed(i: int) -> tuple[str, Any]:
        deltas: list[str] = []
        question = f'call:lookup({{"city": "c{i}"}}) weather {i}?'
        async with run_agent_streamed(pool, "doc", agent, question) as stream:
            async for event in stream:
                if isinstance(event, RawResponsesStreamEvent) and event.data.type == (
                    "response.output_text.delta"
                ):
                    deltas.append(event.data.delta)
                    await asyncio.sleep(0.25)  # a slow reader: longer than the lease's TTL
        assert stream.completed
        return "".join(deltas), stream.result

    outcomes = await asyncio.gather(*(streamed(i) for i in range(4)))
    for i, (text, result) in enumerate(outcomes):
        assert text == result.final_output  # the deltas join to the reply, in order
        assert parse_reply(text).tool_outputs == (f"sunny in c{i}",)
    history = await pool.history("doc")
    assert len(history) == 4 * 3
    assert {e.run_id for e in history} == {r.last_response_id for _, r in outcomes}
    stats = await pool.stats("doc")
    assert (stats.lost, stats.reaped) == (0, 0)
    assert lock_errors(thread_pool_emulator) == 0
    assert_quiet(redis_client, thread_pool_prefix, "doc", threads=2)


@pytest.mark.parametrize("stop_after", [1, 3, 6, 10, 12])
async def test_a_stream_left_early_is_settled_and_nothing_is_recorded(
    make_async_pool: AsyncMakePool,
    thread_pool_async_openai_client: openai.AsyncOpenAI,
    thread_pool_emulator: EmulatorServer,
    redis_client: redis.Redis,
    thread_pool_prefix: str,
    stop_after: int,
) -> None:
    pool = make_async_pool(max_size=1)
    agent = weather_agent(thread_pool_async_openai_client)
    async with run_agent_streamed(pool, "doc", agent, 'call:lookup({"city": "x"}) hi') as stream:
        seen = 0
        async for _ in stream:
            seen += 1
            if seen == stop_after:
                break
    assert not stream.completed
    assert await pool.history("doc") == []
    assert_quiet(redis_client, thread_pool_prefix, "doc", threads=1)
    # The conversation went back quiet: the next run on it meets no lock and no open call.
    result = await run_agent(pool, "doc", agent, "again")
    assert parse_reply(result.final_output).answered_id.startswith("msg_")
    assert lock_errors(thread_pool_emulator) == 0


async def test_a_cancelled_stream_reader_leaves_the_conversation_quiet(
    make_async_pool: AsyncMakePool,
    thread_pool_async_openai_client: openai.AsyncOpenAI,
    thread_pool_emulator: EmulatorServer,
    redis_client: redis.Redis,
    thread_pool_prefix: str,
) -> None:
    pool = make_async_pool(max_size=1)
    agent = weather_agent(thread_pool_async_openai_client)
    reading = asyncio.Event()

    async def reader() -> None:
        async with run_agent_streamed(pool, "doc", agent, 'call:lookup({"city": "x"}) hi') as s:
            async for _ in s:
                reading.set()
                await asyncio.sleep(0.05)

    task = asyncio.create_task(reader())
    await asyncio.wait_for(reading.wait(), 10)
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await pool.history("doc") == []
    assert_quiet(redis_client, thread_pool_prefix, "doc", threads=1)
    result = await run_agent(pool, "doc", agent, "again")
    assert parse_reply(result.final_output).answered_id.startswith("msg_")
    assert lock_errors(thread_pool_emulator) == 0
