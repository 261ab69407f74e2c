"""Turns through a lease against the emulator over HTTP and a real Redis;
``test_turns_sync.py`` is generated from this file."""

from __future__ import annotations

import openai
import pytest
import redis

from tests.support.aio_helpers import pause
from tests.support.evidence import assert_quiet, fences_of
from tests.support.pools import AsyncMakePool
from tests.support.upstream import (
    ASSISTANT_TOOLS,
    lock_errors,
    make_assistant,
    make_backend,
    requests_made,
    tools_for,
)
from thread_pool import (
    AsyncThreadPool,
    InvalidArgument,
    LeaseLost,
    ToolCall,
    TurnFailed,
    UpstreamError,
)
from thread_pool._store.keys import PoolKeys
from thread_pool.emulator import EmulatorServer, parse_reply

pytestmark = pytest.mark.filterwarnings(
    r"ignore:(The Assistants API is deprecated|deprecated$):DeprecationWarning"
)


KINDS = ["assistants", "conversations", "background"]


@pytest.mark.parametrize("kind", KINDS)
async def test_turns_reply_and_stamp_their_fence_on_every_write(
    make_async_pool: AsyncMakePool,
    thread_pool_emulator: EmulatorServer,
    redis_client: redis.Redis,
    thread_pool_prefix: str,
    kind: str,
) -> None:
    pool = make_async_pool(kind)
    turns = [await pool.run("doc", f"question {i}") for i in range(3)]

    assert [t.fence for t in turns] == [1, 2, 3]  # one thread, granted three times
    assert len({t.thread_id for t in turns}) == 1
    for t in turns:
        assert t.status == "completed"
        assert t.reply.startswith("[emulator] re ")
        assert t.usage["total_tokens"] > 0
        assert t.request_id is not None
    # The last turn saw the whole thread: three questions and two earlier replies.
    assert parse_reply(turns[-1].reply).count == 5
    # Every write of a turn carries its fence, in increasing order.
    stamped = fences_of(thread_pool_emulator, turns[0].thread_id)
    assert stamped == sorted(stamped)
    assert set(stamped) == {1, 2, 3}
    stats = thread_pool_emulator.admin.stats()
    # One request starts a turn: no separate message create.
    assert "POST /v1/threads/{thread_id}/messages" not in stats["requests"]
    assert lock_errors(thread_pool_emulator) == 0
    assert_quiet(redis_client, thread_pool_prefix, "doc", threads=1)


@pytest.mark.parametrize("kind", KINDS)
async def test_tool_calls_are_answered_within_the_turn(
    make_async_pool: AsyncMakePool, thread_pool_emulator: EmulatorServer, kind: str
) -> None:
    pool = make_async_pool(kind)
    seen: list[ToolCall] = []

    async def handler(call: ToolCall) -> dict[str, str]:
        seen.append(call)
        return {"answer": f"pong {call.args()['n']}"}

    turn = await pool.run("doc", 'call:ping({"n": 7})', tool_handler=handler, tools=tools_for(kind))
    assert [c.name for c in seen] == ["ping"]
    assert [c.name for c in turn.tool_calls] == ["ping"]
    assert parse_reply(turn.reply).tool_outputs == ('{"answer": "pong 7"}',)
    assert lock_errors(thread_pool_emulator) == 0


async def test_a_plain_function_serves_as_tool_handler(make_async_pool: AsyncMakePool) -> None:
    pool = make_async_pool("assistants")
    turn = await pool.run(
        "doc", "call:ping()", tool_handler=lambda call: "pong", tools=ASSISTANT_TOOLS
    )
    assert parse_reply(turn.reply).tool_outputs == ("pong",)


@pytest.mark.parametrize(
    ("message", "metadata"),
    [
        ("", None),
        ("   ", None),
        ("x" * 256_001, None),
        ("hi", {f"k{i}": "v" for i in range(14)}),
        ("hi", {"k": "v" * 513}),
        ("hi", {"k" * 65: "v"}),
        ("hi", {"tp_fence": "99"}),
    ],
)
async def test_bad_input_is_refused_before_any_request(
    make_async_pool: AsyncMakePool,
    thread_pool_emulator: EmulatorServer,
    message: str,
    metadata: dict[str, str] | None,
) -> None:
    pool = make_async_pool("conversations")
    before = requests_made(thread_pool_emulator)
    with pytest.raises(InvalidArgument):
        await pool.run("doc", message, metadata=metadata)
    assert requests_made(thread_pool_emulator) == before


async def test_the_longest_message_and_most_metadata_upstream_takes_go_through(
    make_async_pool: AsyncMakePool,
) -> None:
    pool = make_async_pool("assistants")
    metadata = {f"k{i}": "v" * 512 for i in range(13)}
    turn = await pool.run("doc", "x" * 256_000, metadata=metadata)
    assert turn.status == "completed"


@pytest.mark.thread_pool_emulator(run_failed=1.0)
@pytest.mark.parametrize("kind", KINDS)
async def test_a_failed_run_raises_turn_failed_with_upstream_error(
    make_async_pool: AsyncMakePool,
    redis_client: redis.Redis,
    thread_pool_prefix: str,
    kind: str,
) -> None:
    pool = make_async_pool(kind)
    with pytest.raises(TurnFailed) as caught:
        await pool.run("doc", "hello")
    err = caught.value
    assert err.status == "failed"
    assert err.last_error is not None
    assert err.last_error.get("code")
    assert err.request_id is not None
    assert err.run_id is not None
    assert_quiet(redis_client, thread_pool_prefix, "doc", threads=1)


async def test_a_busy_thread_is_counted_settled_and_retried_once(
    make_async_pool: AsyncMakePool,
    thread_pool_emulator: EmulatorServer,
    thread_pool_openai_client: openai.OpenAI,
    redis_client: redis.Redis,
    thread_pool_prefix: str,
) -> None:
    pool = make_async_pool("assistants")
    first = await pool.run("doc", "hello")
    # Someone outside the pool starts a run that waits for tool outputs: the thread is busy.
    stray = thread_pool_openai_client.beta.threads.runs.create(
        first.thread_id,
        assistant_id=make_assistant(thread_pool_emulator),
        additional_messages=[{"role": "user", "content": "call:ping()"}],
        tools=ASSISTANT_TOOLS,
    )
    await pause(0.2)

    turn = await pool.run("doc", "again")

    assert turn.thread_id == first.thread_id
    assert (await pool.stats("doc")).lock_errors == 1
    assert lock_errors(thread_pool_emulator) == 1
    settled = thread_pool_openai_client.beta.threads.runs.retrieve(
        stray.id, thread_id=first.thread_id
    )
    assert settled.status == "cancelled"
    assert_quiet(redis_client, thread_pool_prefix, "doc", threads=1)


@pytest.mark.thread_pool_emulator(latency=2.5)
async def test_a_turn_longer_than_the_lease_is_kept_alive_by_renewal(
    make_async_pool: AsyncMakePool, thread_pool_emulator: EmulatorServer
) -> None:
    # A run twice the lease's length: it needs several renewals. The margin is generous so that
    # a busy machine delaying the renewer by most of a second does not fail the test.
    pool = make_async_pool("assistants", lease_ttl=1.2, renew_margin=0.9)
    turn = await pool.run("doc", "a long one")
    assert turn.status == "completed"
    stats = await pool.stats("doc")
    assert stats.lost == 0
    assert stats.reaped == 0
    assert lock_errors(thread_pool_emulator) == 0


@pytest.mark.parametrize("kind", ["assistants", "background"])
async def test_a_lost_lease_stops_the_turn_and_it_writes_nothing_more(
    make_async_pool: AsyncMakePool,
    thread_pool_emulator: EmulatorServer,
    redis_client: redis.Redis,
    thread_pool_prefix: str,
    kind: str,
) -> None:
    pool = make_async_pool(kind, lease_ttl=5, renew_margin=1)
    keys = PoolKeys.of(thread_pool_prefix, "doc")
    held: list[str] = []

    async def expire_then_answer(call: ToolCall) -> str:
        # As if this holder had stalled past its deadline: the lease is gone from under it.
        thread_id = str(redis_client.zrange(keys.leases, 0, 0)[0])
        held.append(thread_id)
        redis_client.zadd(keys.leases, {thread_id: 1})
        return "too late"

    with pytest.raises(LeaseLost):
        await pool.run("doc", "call:ping()", tool_handler=expire_then_answer, tools=tools_for(kind))
    writes = thread_pool_emulator.admin.writes(held[0])
    assert "too late" not in str(writes)
    assert not any("submit" in w["op"] or "function_call_output" in str(w) for w in writes)

    # The next turn finds the thread settled and runs normally.
    turn = await pool.run("doc", "next")
    assert turn.thread_id == held[0]
    assert turn.fence == 2
    assert fences_of(thread_pool_emulator, held[0]) == sorted(
        fences_of(thread_pool_emulator, held[0])
    )
    assert lock_errors(thread_pool_emulator) == 0
    assert_quiet(redis_client, thread_pool_prefix, "doc", threads=1)


async def test_a_lease_runs_several_turns_and_a_pool_without_backend_refuses(
    make_async_pool: AsyncMakePool, thread_pool_redis_url: str, thread_pool_prefix: str
) -> None:
    pool = make_async_pool("conversations")
    async with pool.lease("doc") as lease:
        one = await lease.run("first")
        two = await lease.run("second")
    assert one.fence == two.fence == lease.fence
    assert parse_reply(two.reply).count == 3
    bare = AsyncThreadPool(redis_url=thread_pool_redis_url, key_prefix=thread_pool_prefix)
    try:
        async with bare.lease("doc") as lease:
            with pytest.raises(InvalidArgument):
                await lease.run("hi")
    finally:
        await bare.aclose()


@pytest.mark.parametrize("kind", ["assistants", "conversations"])
async def test_a_thread_deleted_upstream_is_dropped_and_replaced(
    make_async_pool: AsyncMakePool,
    thread_pool_emulator: EmulatorServer,
    thread_pool_async_openai_client: openai.AsyncOpenAI,
    redis_client: redis.Redis,
    thread_pool_prefix: str,
    kind: str,
) -> None:
    pool = make_async_pool(kind)
    first = await pool.run("doc", "hello")
    backend = make_backend(kind, thread_pool_async_openai_client, thread_pool_emulator)
    assert await backend.delete_thread(first.thread_id)
    assert not await backend.delete_thread(first.thread_id)

    with pytest.raises(UpstreamError) as caught:
        await pool.run("doc", "into the void")
    assert caught.value.status_code == 404
    turn = await pool.run("doc", "again")
    assert turn.thread_id != first.thread_id
    stats = await pool.stats("doc")
    assert stats.threads == 1
    assert_quiet(redis_client, thread_pool_prefix, "doc", threads=1)


@pytest.mark.parametrize("kind", ["assistants", "conversations"])
async def test_threads_retired_by_a_shrink_are_deleted_upstream(
    make_async_pool: AsyncMakePool,
    thread_pool_emulator: EmulatorServer,
    thread_pool_async_openai_client: openai.AsyncOpenAI,
    kind: str,
) -> None:
    pool = make_async_pool(kind, max_size=3)
    held = [await pool.acquire("doc") for _ in range(3)]  # the pool grows to three threads
    for lease in held:
        await pool.release(lease)
    stats = await pool.configure("doc", max_size=1)
    assert (stats.threads, stats.retired) == (1, 2)

    assert await pool.purge_retired("doc") == 2
    assert (await pool.stats("doc")).retired == 0
    backend = make_backend(kind, thread_pool_async_openai_client, thread_pool_emulator)
    alive = [await backend.delete_thread(lease.thread_id) for lease in held]
    # The two purged threads were gone already; the one left in the pool was still there.
    assert sorted(alive) == [False, False, True]
