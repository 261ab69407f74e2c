"""Streamed turns against the emulator over HTTP and a real Redis, both backends;
``test_stream_sync.py`` is generated from this file."""

from __future__ import annotations

import random
from typing import Any

import openai
import pytest
import redis

from tests.support.aio_helpers import Spawned, pause
from tests.support.evidence import assert_quiet
from tests.support.pools import AsyncMakePool
from tests.support.streams import ACTIVE, done_turns, run_statuses, text_of
from tests.support.upstream import lock_errors, tools_for
from thread_pool import (
    AsyncThreadPool,
    AsyncTurnStream,
    InvalidArgument,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallEvent,
    TurnDone,
    UpstreamError,
)
from thread_pool.emulator import EmulatorServer, parse_reply

pytestmark = pytest.mark.filterwarnings(
    r"ignore:(The Assistants API is deprecated|deprecated$):DeprecationWarning"
)

KINDS = ["assistants", "conversations"]


async def drain(events: AsyncTurnStream) -> list[StreamEvent]:
    """Every event of a stream, read with the loop a caller writes."""
    seen: list[StreamEvent] = []
    async for event in events:
        seen.append(event)
    return seen


async def collect(
    pool: AsyncThreadPool, key: str, message: str, **params: Any
) -> list[StreamEvent]:
    """Every event of one streamed turn on pool ``key``."""
    async with pool.stream(key, message, **params) as events:
        return await drain(events)


@pytest.mark.parametrize("kind", KINDS)
async def test_deltas_arrive_in_order_and_join_to_the_logged_reply(
    make_async_pool: AsyncMakePool,
    thread_pool_emulator: EmulatorServer,
    redis_client: redis.Redis,
    thread_pool_prefix: str,
    kind: str,
) -> None:
    pool = make_async_pool(kind)
    first = await pool.run("doc", "before")
    events = await collect(pool, "doc", "tell me a long story about streams " * 4)

    deltas = [e for e in events if isinstance(e, TextDelta)]
    assert len(deltas) > 3
    assert isinstance(events[-1], TurnDone)
    assert done_turns(events) == 1
    turn = events[-1].turn
    assert text_of(events) == turn.reply
    assert turn.thread_id == first.thread_id
    assert turn.fence == first.fence + 1
    # The stream saw the whole thread (the earlier turn's two messages and its own).
    assert parse_reply(turn.reply).count == 3
    history = await pool.history("doc")
    assert [(e.role, e.content) for e in history[-2:]] == [
        ("user", "tell me a long story about streams " * 4),
        ("assistant", turn.reply),
    ]
    assert lock_errors(thread_pool_emulator) == 0
    assert_quiet(redis_client, thread_pool_prefix, "doc", threads=1)


@pytest.mark.parametrize("kind", KINDS)
async def test_tool_calls_are_answered_mid_stream_and_streaming_goes_on(
    make_async_pool: AsyncMakePool, thread_pool_emulator: EmulatorServer, kind: str
) -> None:
    pool = make_async_pool(kind)

    async def handler(call: ToolCall) -> str:
        return f"pong {call.args()['n']}"

    events = await collect(
        pool, "doc", 'call:ping({"n": 3})', tool_handler=handler, tools=tools_for(kind)
    )
    calls = [e.call for e in events if isinstance(e, ToolCallEvent)]
    assert [(c.name, c.output) for c in calls] == [("ping", "pong 3")]
    after = events[[isinstance(e, ToolCallEvent) for e in events].index(True) + 1 :]
    assert text_of(after)  # the reply streamed after the outputs
    turn = events[-1].turn if isinstance(events[-1], TurnDone) else None
    assert turn is not None
    assert turn.tool_calls == tuple(calls)
    assert parse_reply(turn.reply).tool_outputs == ("pong 3",)
    assert text_of(events) == turn.reply
    assert lock_errors(thread_pool_emulator) == 0


@pytest.mark.parametrize("kind", KINDS)
async def test_concurrent_streams_on_one_key_merge_and_never_collide(
    make_async_pool: AsyncMakePool,
    thread_pool_emulator: EmulatorServer,
    redis_client: redis.Redis,
    thread_pool_prefix: str,
    kind: str,
) -> None:
    pool = make_async_pool(kind)
    await pool.configure("doc", max_size=4)
    streams = [Spawned(collect, pool, "doc", f"question {i}") for i in range(8)]
    results = [await s.join(60) for s in streams]

    for events in results:
        assert isinstance(events[-1], TurnDone)
        assert text_of(events) == events[-1].turn.reply
    assert len(await pool.history("doc")) == 16
    assert lock_errors(thread_pool_emulator) == 0
    # Every thread now holds the merged conversation: hold all four, stream on each.
    async with (
        pool.lease("doc") as a,
        pool.lease("doc") as b,
        pool.lease("doc") as c,
        pool.lease("doc") as d,
    ):
        assert len({a.thread_id, b.thread_id, c.thread_id, d.thread_id}) == 4
        for held in (a, b, c, d):
            async with held.stream("what do you know?") as stream:
                seen = await drain(stream)
            done = seen[-1]
            assert isinstance(done, TurnDone)
            # 8 turns (16 messages) merged in, and its own question... plus the earlier
            # "what do you know?" turns of the threads held before it.
            assert parse_reply(done.turn.reply).count >= 17
    assert lock_errors(thread_pool_emulator) == 0
    assert_quiet(redis_client, thread_pool_prefix, "doc", threads=4)


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
async def test_a_consumer_that_breaks_early_ends_the_turn_and_settles_the_thread(
    make_async_pool: AsyncMakePool,
    thread_pool_emulator: EmulatorServer,
    thread_pool_openai_client: openai.OpenAI,
    redis_client: redis.Redis,
    thread_pool_prefix: str,
    kind: str,
) -> None:
    pool = make_async_pool(kind)
    rng = random.Random(f"break-{kind}")
    done = 0
    for trial in range(30):
        stop_after = rng.randrange(0, 12)
        seen: list[StreamEvent] = []
        async with pool.stream("doc", f"trial {trial} " + "words " * 20) as events:
            async for event in events:
                seen.append(event)
                if len(seen) > stop_after:
                    break
            owner = events.thread_id
        done += done_turns(seen)
        # The run (response) was cancelled or finished, the thread is settled, the pool idle.
        assert_quiet(redis_client, thread_pool_prefix, "doc", threads=1)
        statuses = run_statuses(thread_pool_emulator, thread_pool_openai_client, owner)
        assert not ACTIVE.intersection(statuses.values()), statuses
    # Only completed turns were logged: every turn that reached its consumer, and a turn that
    # completed upstream before the stop reached it (the thread holds it: so must the log).
    logged = {e.run_id for e in await pool.history("doc")}
    assert {run for run, status in statuses.items() if status == "completed"} >= logged
    assert len(logged) >= done
    assert len(await pool.history("doc")) == 2 * len(logged)
    turn = await pool.run("doc", "after all that")
    assert turn.status == "completed"
    assert lock_errors(thread_pool_emulator) == 0


@pytest.mark.parametrize("kind", KINDS)
async def test_a_lease_stream_stopped_early_leaves_its_thread_ready_for_the_next_turn(
    make_async_pool: AsyncMakePool, thread_pool_emulator: EmulatorServer, kind: str
) -> None:
    pool = make_async_pool(kind)
    async with pool.lease("doc") as held:
        async with held.stream("a long answer please " * 10) as events:
            async for event in events:
                if isinstance(event, TextDelta):
                    break
        assert not held.dirty
        turn = await held.run("next")
        assert turn.status == "completed"
    assert lock_errors(thread_pool_emulator) == 0
    assert len(await pool.history("doc")) == 2


@pytest.mark.parametrize("kind", KINDS)
async def test_a_stream_slower_than_the_lease_ttl_keeps_its_lease(
    make_async_pool: AsyncMakePool,
    thread_pool_emulator: EmulatorServer,
    redis_client: redis.Redis,
    thread_pool_prefix: str,
    kind: str,
) -> None:
    pool = make_async_pool(kind, lease_ttl=1.0, renew_margin=0.4)
    seen: list[StreamEvent] = []
    async with pool.stream("doc", "slowly " * 10) as events:
        async for event in events:
            seen.append(event)
            if len(seen) <= 4:
                await pause(0.6)  # 2.4 s of reading: well past the 1 s TTL
    assert isinstance(seen[-1], TurnDone)
    assert text_of(seen) == seen[-1].turn.reply
    assert lock_errors(thread_pool_emulator) == 0
    assert_quiet(redis_client, thread_pool_prefix, "doc", threads=1)


@pytest.mark.parametrize("kind", KINDS)
async def test_run_refuses_stream_and_points_to_stream(
    make_async_pool: AsyncMakePool, kind: str
) -> None:
    pool = make_async_pool(kind)
    with pytest.raises(InvalidArgument, match=r"stream\(\)"):
        await pool.run("doc", "hi", stream=True)
    with pytest.raises(InvalidArgument, match="background"):
        async with pool.stream("doc", "hi", background=False):
            pass


@pytest.mark.thread_pool_emulator(stream_drop_after=5)
@pytest.mark.parametrize("kind", KINDS)
async def test_a_dropped_stream_loses_and_repeats_no_delta(
    make_async_pool: AsyncMakePool,
    thread_pool_emulator: EmulatorServer,
    redis_client: redis.Redis,
    thread_pool_prefix: str,
    kind: str,
) -> None:
    pool = make_async_pool(kind)
    for i in range(3):
        events = await collect(pool, "doc", f"question {i} " + "with many words " * 5)
        assert isinstance(events[-1], TurnDone)
        # Resumed (Conversations) or polled to its end (Assistants): the deltas still join.
        assert text_of(events) == events[-1].turn.reply
    assert thread_pool_emulator.admin.stats()["faults"].get("stream_drop", 0) > 0
    assert len(await pool.history("doc")) == 6
    assert lock_errors(thread_pool_emulator) == 0
    assert_quiet(redis_client, thread_pool_prefix, "doc", threads=1)


@pytest.mark.thread_pool_emulator(
    latency=0.2, queued_fraction=0.9, stream_drop=0.3, stream_drop_after=1, seed=5
)
async def test_a_response_a_drop_left_stuck_in_the_queue_is_ended_and_made_again(
    make_async_pool: AsyncMakePool,
    thread_pool_emulator: EmulatorServer,
    redis_client: redis.Redis,
    thread_pool_prefix: str,
) -> None:
    # Upstream's edge: a background stream cut right after its first event can leave its
    # response queued for good, holding the conversation.
    pool = make_async_pool("conversations")
    for i in range(8):
        events = await collect(pool, "doc", f"question {i} " + "and more " * 5)
        assert isinstance(events[-1], TurnDone)
        assert text_of(events) == events[-1].turn.reply
    assert thread_pool_emulator.admin.stats()["faults"].get("stream_stall", 0) >= 1
    assert len(await pool.history("doc")) == 16
    assert lock_errors(thread_pool_emulator) == 0
    assert_quiet(redis_client, thread_pool_prefix, "doc", threads=1)


@pytest.mark.thread_pool_emulator(latency=0.2, queued_fraction=0.9, stream_drop_after=1)
async def test_a_stream_that_keeps_stalling_fails_within_the_retry_policy_and_settles(
    make_async_pool: AsyncMakePool,
    thread_pool_emulator: EmulatorServer,
    redis_client: redis.Redis,
    thread_pool_prefix: str,
) -> None:
    pool = make_async_pool("conversations")
    with pytest.raises(UpstreamError):
        await collect(pool, "doc", "never gets going")
    assert_quiet(redis_client, thread_pool_prefix, "doc", threads=1)
    thread_pool_emulator.admin.configure(stream_drop_after=None)
    events = await collect(pool, "doc", "now it does")
    assert isinstance(events[-1], TurnDone)
    assert lock_errors(thread_pool_emulator) == 0
    assert len(await pool.history("doc")) == 2


@pytest.mark.parametrize("kind", KINDS)
async def test_a_failing_tool_handler_ends_the_stream_with_its_error_and_settles(
    make_async_pool: AsyncMakePool,
    thread_pool_emulator: EmulatorServer,
    redis_client: redis.Redis,
    thread_pool_prefix: str,
    kind: str,
) -> None:
    pool = make_async_pool(kind)

    async def handler(call: ToolCall) -> str:
        raise RuntimeError(f"no {call.name} today")

    with pytest.raises(RuntimeError, match="no ping today"):
        await collect(pool, "doc", "call:ping()", tool_handler=handler, tools=tools_for(kind))
    assert await pool.history("doc") == []
    assert_quiet(redis_client, thread_pool_prefix, "doc", threads=1)
    # The thread was settled (the run waiting for outputs ended): the next turn runs.
    events = await collect(pool, "doc", "next")
    assert isinstance(events[-1], TurnDone)
    assert lock_errors(thread_pool_emulator) == 0
