"""A caller's own calls under a lease (kept alive, given the thread's missing context, recorded
in the log) against the emulator over HTTP and a real Redis; ``test_own_calls_sync.py`` is
generated from this file."""

from __future__ import annotations

import time
from typing import Any

import openai
import pytest
import redis

from tests.support.aio_helpers import pause
from tests.support.evidence import assert_quiet
from tests.support.pools import AsyncMakePool
from tests.support.upstream import lock_errors, make_assistant
from thread_pool import (
    AsyncLease,
    InvalidArgument,
    LeaseLost,
    ToolCall,
)
from thread_pool._store.keys import PoolKeys
from thread_pool.emulator import EmulatorServer, parse_reply

pytestmark = pytest.mark.filterwarnings(
    r"ignore:(The Assistants API is deprecated|deprecated$):DeprecationWarning"
)

KINDS = ["assistants", "conversations"]


async def held_by(client: openai.AsyncOpenAI, kind: str, thread_id: str) -> list[tuple[str, str]]:
    """``(role, text)`` of every message the thread (conversation) holds upstream, oldest first,
    read through the SDK."""
    out: list[tuple[str, str]] = []
    if kind == "assistants":
        async for msg in client.beta.threads.messages.list(thread_id, order="asc", limit=100):
            out.append((msg.role, "".join(p.text.value for p in msg.content if p.type == "text")))
        return out
    async for item in client.conversations.items.list(thread_id, order="asc", limit=100):
        if getattr(item, "type", None) == "message":
            parts: list[Any] = list(getattr(item, "content", []))
            out.append((getattr(item, "role", ""), "".join(p.text for p in parts)))
    return out


async def own_call(
    client: openai.AsyncOpenAI,
    kind: str,
    lease: AsyncLease,
    assistant_id: str,
    text: str,
) -> tuple[str, str, Any]:
    """A call of the caller's own on the leased thread, carrying its pending context: the
    reply, the run (response) id, and the SDK's response object (None for a run)."""
    items: list[Any] = [*await lease.pending_context(), {"role": "user", "content": text}]
    if kind == "assistants":
        run = await client.beta.threads.runs.create_and_poll(
            thread_id=lease.thread_id,
            assistant_id=assistant_id,
            additional_messages=items,
            poll_interval_ms=10,
        )
        assert run.status == "completed"
        page = await client.beta.threads.messages.list(lease.thread_id, order="desc", limit=1)
        reply = "".join(p.text.value for p in page.data[0].content if p.type == "text")
        return reply, run.id, None
    resp = await client.responses.create(
        model="emulated", conversation=lease.thread_id, input=items
    )
    return resp.output_text, resp.id, resp


# -- keepalive -------------------------------------------------------------------------------


async def test_a_kept_alive_lease_outlives_three_ttls_of_own_work(
    make_async_pool: AsyncMakePool, redis_client: redis.Redis, thread_pool_prefix: str
) -> None:
    pool = make_async_pool(lease_ttl=1, renew_margin=0.5, max_size=1)
    async with pool.lease("doc", keepalive=True) as lease:
        await pause(3)
        assert lease.lost is None
        assert await lease.check(0) > 0  # the fenced check passes after 3 TTLs
    acquired = await pool.acquire("doc")
    try:
        await pause(1.2)  # the same pool without keepalive: lost after one TTL
        with pytest.raises(LeaseLost):
            await acquired.check(0)
        assert acquired.lost is not None
        # An own-calls block on an acquired lease renews the same way.
        again = await pool.acquire("doc")
        async with again.keepalive():
            await pause(2)
            await again.check(0)
        await pool.release(again)
    finally:
        await pool.reap("doc")
    stats = await pool.stats("doc")
    assert stats.threads == 1
    assert_quiet(redis_client, thread_pool_prefix, "doc", threads=1)


async def test_a_taken_over_lease_is_marked_lost_within_one_renewal_step(
    make_async_pool: AsyncMakePool, redis_client: redis.Redis, thread_pool_prefix: str
) -> None:
    pool = make_async_pool(lease_ttl=1, renew_margin=0.5, max_size=1)
    keys = PoolKeys.of(thread_pool_prefix, "doc")
    seen: list[float] = []

    async def hold_while_taken_over() -> None:
        async with pool.lease("doc", keepalive=True) as lease:
            await pause(1.2)  # renewed at least once
            assert lease.lost is None
            # As if this holder had stalled: its lease expires and another holder takes over.
            redis_client.zadd(keys.leases, {lease.thread_id: 1})
            other = await pool.acquire("doc", timeout=2)
            taken = time.monotonic()
            assert other.thread_id == lease.thread_id
            assert other.fence == lease.fence + 1
            while lease.lost is None and time.monotonic() - taken < 2:
                await pause(0.01)
            seen.append(time.monotonic() - taken)
            for attempt in (lease.check, lease.pending_context, lease.renew):
                with pytest.raises(LeaseLost):
                    await attempt()
            with pytest.raises(LeaseLost):
                await lease.record(user="q", reply="a", run_id="r1")
            await other.check(0)  # the new holder is unaffected
            await pool.release(other)

    with pytest.raises(LeaseLost, match="renewal failed"):
        await hold_while_taken_over()  # the block's end says the lease was lost
    # One renewal step is ttl - margin = 0.5 s at most (plus scheduling).
    assert seen[0] < 0.8
    assert_quiet(redis_client, thread_pool_prefix, "doc", threads=1)


# -- pending context and records ---------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_own_calls_get_the_missing_context_and_their_turns_reach_the_siblings(
    make_async_pool: AsyncMakePool,
    thread_pool_async_openai_client: openai.AsyncOpenAI,
    thread_pool_emulator: EmulatorServer,
    redis_client: redis.Redis,
    thread_pool_prefix: str,
    kind: str,
) -> None:
    client = thread_pool_async_openai_client
    assistant_id = make_assistant(thread_pool_emulator)
    pool = make_async_pool(kind, max_size=2)
    async with pool.lease("doc", keepalive=True) as mine:
        assert await mine.pending_context() == []  # a new thread holds the whole (empty) log
        sibling = await pool.run("doc", "asked on the sibling")  # a second thread
        assert sibling.thread_id != mine.thread_id
        reply, run_id, resp = await own_call(client, kind, mine, assistant_id, "my own question")
        # The own call's run saw the sibling's turn, delivered in its own request.
        expected = [("user", "asked on the sibling"), ("assistant", sibling.reply)]
        assert (await held_by(client, kind, mine.thread_id))[:2] == expected
        assert parse_reply(reply).count == 3
        if resp is not None:
            seq = await mine.record_response("my own question", resp)
        else:
            seq = await mine.record(user="my own question", reply=reply, run_id=run_id)
        assert seq == 4
        # Recorded: nothing is pending any more, the cursor moved past it all.
        assert await mine.pending_context() == []
        # Idempotent: the same run recorded again adds nothing.
        assert await mine.record(user="my own question", reply=reply, run_id=run_id) == 4
    history = await pool.history("doc")
    assert [(e.role, e.content) for e in history] == [
        *expected,
        ("user", "my own question"),
        ("assistant", reply),
    ]
    assert history[-1].run_id == run_id
    assert history[-1].origin == mine.thread_id
    # The sibling receives the own call's turn with its next turn, exactly once.
    async with pool.lease("doc") as one, pool.lease("doc") as two:
        turn = await (one if one.thread_id == sibling.thread_id else two).run("next")
    assert turn.thread_id == sibling.thread_id
    held = await held_by(client, kind, sibling.thread_id)
    for entry in history:
        assert held.count((entry.role, entry.content)) == 1, (entry, held)
    assert lock_errors(thread_pool_emulator) == 0
    assert_quiet(redis_client, thread_pool_prefix, "doc", threads=2)


@pytest.mark.parametrize("kind", KINDS)
async def test_context_left_unrecorded_stays_due(
    make_async_pool: AsyncMakePool,
    thread_pool_async_openai_client: openai.AsyncOpenAI,
    kind: str,
) -> None:
    pool = make_async_pool(kind, max_size=2)
    async with pool.lease("doc") as mine:
        await pool.run("doc", "asked on the sibling")
        first = await mine.pending_context()
        assert len(first) == 2
    # Read but never recorded (the caller's call did not happen): still pending next time.
    async with pool.lease("doc") as one, pool.lease("doc") as two:
        again = one if one.thread_id == mine.thread_id else two
        assert again.thread_id == mine.thread_id
        assert await again.pending_context() == first


async def test_a_record_keeps_tool_calls_and_checks_its_arguments(
    make_async_pool: AsyncMakePool,
    thread_pool_async_openai_client: openai.AsyncOpenAI,
) -> None:
    pool = make_async_pool("conversations", max_size=2)
    call = ToolCall("call_1", "ping", "{}", "pong")
    async with pool.lease("doc") as mine, pool.lease("doc") as sibling:
        await mine.pending_context()
        for bad in (
            {"user": "", "reply": "a"},
            {"user": "q", "reply": 3},
            {"user": "q", "reply": "a", "record_id": ""},
            {"user": "q", "reply": "a", "tool_calls": [ToolCall("c", "ping", "{}")]},
            {"user": "q", "reply": "a", "tool_calls": "nope"},
        ):
            with pytest.raises(InvalidArgument):
                await mine.record(**bad)
        assert await mine.record(user="q", reply="a", record_id="own-1", tool_calls=[call]) == 3
        assert await mine.record(user="q", reply="a", record_id="own-1") == 3
        with pytest.raises(InvalidArgument):
            await mine.record_response("q", object())
        items = await sibling.pending_context()
    # A sibling conversation receives the call as the API's own items, before the reply.
    assert [i.get("type", "message") for i in items] == [
        "message",
        "function_call",
        "function_call_output",
        "message",
    ]
    assert items[1]["call_id"] == "call_1"
    assert items[2]["output"] == "pong"
    entries = await pool.history("doc")
    assert [e.role for e in entries] == ["user", "tool", "assistant"]
    assert {e.turn_id for e in entries} == {"own-1"}
