"""Turns under upstream faults and cancellation (asyncio only: many turns in one process)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import openai
import pytest
import redis

from tests.support.evidence import assert_quiet
from tests.support.pools import AsyncMakePool, MakePool
from tests.support.upstream import ASSISTANT_TOOLS, hooked_client, lock_errors, make_assistant
from thread_pool import (
    AsyncAssistantsBackend,
    AsyncBackend,
    AsyncConversationsBackend,
    AsyncThreadPool,
    InvalidArgument,
    LeaseLost,
    RetryPolicy,
    StoreUnavailable,
    ThreadPoolError,
    Turn,
    TurnFailed,
)
from thread_pool.emulator import EmulatorServer
from thread_pool.testing.redis_server import RedisServer

pytestmark = pytest.mark.filterwarnings(
    r"ignore:(The Assistants API is deprecated|deprecated$):DeprecationWarning"
)


def _backend(
    kind: str, client: openai.AsyncOpenAI, server: EmulatorServer, **options: Any
) -> AsyncBackend:
    retry = RetryPolicy(attempts=6, deadline=20, base_delay=0.01, max_delay=0.1)
    if kind == "assistants":
        return AsyncAssistantsBackend(
            client, assistant_id=make_assistant(server), retry=retry, settle_wait=0.2, **options
        )
    return AsyncConversationsBackend(
        client, model="emulated", background=True, retry=retry, settle_wait=0.2, **options
    )


@pytest.fixture
def pool_for(
    make_async_pool: AsyncMakePool,
    thread_pool_emulator: EmulatorServer,
    thread_pool_async_openai_client: openai.AsyncOpenAI,
) -> Any:
    """``pool_for(kind, backend_options=None, **settings)``: a pool whose backend retries
    patiently enough for a fault storm (``_backend``)."""

    def make(
        kind: str, backend_options: dict[str, Any] | None = None, **settings: Any
    ) -> AsyncThreadPool:
        options = backend_options or {}
        backend = _backend(kind, thread_pool_async_openai_client, thread_pool_emulator, **options)
        return make_async_pool(backend=backend, **settings)

    return make


# 30 % of requests fail (10 % each 429 with a short Retry-After, 500, 503), and a run ends
# failed now and then.
STORM = {"http_429": 0.1, "http_500": 0.1, "http_503": 0.1, "run_failed": 0.05, "retry_after": 0.05}


@pytest.mark.thread_pool_emulator(**STORM)
@pytest.mark.parametrize("kind", ["assistants", "conversations"])
async def test_in_a_fault_storm_every_turn_completes_or_fails_typed(
    pool_for: Any,
    thread_pool_emulator: EmulatorServer,
    redis_client: redis.Redis,
    thread_pool_prefix: str,
    kind: str,
) -> None:
    pool = pool_for(kind, max_size=4, acquire_timeout=60)

    async def worker(n: int) -> list[Turn | BaseException]:
        out: list[Turn | BaseException] = []
        for i in range(5):
            try:
                out.append(await pool.run("storm", f"task {n} turn {i}"))
            except ThreadPoolError as exc:
                out.append(exc)
        return out

    results = [r for rs in await asyncio.gather(*(worker(n) for n in range(8))) for r in rs]
    faults = thread_pool_emulator.admin.stats()["faults"]
    assert sum(int(v) for v in faults.values()) > 20  # the storm really happened
    assert len(results) == 40
    done = [r for r in results if isinstance(r, Turn)]
    assert len(done) >= 30  # retries carry most turns through
    assert all(isinstance(r, Turn | ThreadPoolError) for r in results)
    assert lock_errors(thread_pool_emulator) == 0
    assert (await pool.stats("storm")).lock_errors == 0
    assert_quiet(redis_client, thread_pool_prefix, "storm", threads=4)


@pytest.mark.thread_pool_emulator(latency=0.02, run_stuck=1.0)
@pytest.mark.parametrize("kind", ["assistants", "conversations"])
async def test_a_run_stuck_upstream_fails_its_turn_at_turn_timeout_and_is_cancelled(
    pool_for: Any,
    thread_pool_emulator: EmulatorServer,
    redis_client: redis.Redis,
    thread_pool_prefix: str,
    kind: str,
) -> None:
    pool = pool_for(kind, backend_options={"turn_timeout": 0.5})
    with pytest.raises(TurnFailed) as caught:
        await pool.run("doc", "never answered")
    assert caught.value.status == "timed_out"
    assert "turn_timeout" in str(caught.value)
    # The release settled the thread: the stuck run was cancelled before anyone reused it.
    assert_quiet(redis_client, thread_pool_prefix, "doc", threads=1)
    (thread_id,) = redis_client.zrange(f"{thread_pool_prefix}:{{doc}}:idle", 0, -1)
    ops = [w["op"] for w in thread_pool_emulator.admin.writes(str(thread_id))]
    assert ops[-1].endswith("cancel"), ops
    thread_pool_emulator.admin.configure(run_stuck=0.0)
    turn = await pool.run("doc", "next")
    assert turn.fence == 2
    assert lock_errors(thread_pool_emulator) == 0


async def test_turn_timeout_is_validated(
    thread_pool_async_openai_client: openai.AsyncOpenAI,
) -> None:
    for bad in (0, -1.0, float("nan")):
        with pytest.raises(InvalidArgument, match="turn_timeout"):
            AsyncConversationsBackend(thread_pool_async_openai_client, turn_timeout=bad)


@pytest.mark.thread_pool_emulator(latency=5.0)
@pytest.mark.parametrize("kind", ["assistants", "conversations"])
async def test_a_turn_cancelled_mid_run_leaves_a_quiet_pool_and_no_active_run(
    pool_for: Any,
    thread_pool_emulator: EmulatorServer,
    redis_client: redis.Redis,
    thread_pool_prefix: str,
    kind: str,
) -> None:
    pool = pool_for(kind)
    task = asyncio.ensure_future(pool.run("doc", "a long one"))
    await asyncio.sleep(0.5)  # started upstream, now polling
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The release settled the thread: its run was cancelled, and the next turn goes ahead.
    assert_quiet(redis_client, thread_pool_prefix, "doc", threads=1)
    (thread_id,) = redis_client.zrange(f"{thread_pool_prefix}:{{doc}}:idle", 0, -1)
    ops = [w["op"] for w in thread_pool_emulator.admin.writes(str(thread_id))]
    assert ops[-1].endswith("cancel"), ops
    thread_pool_emulator.admin.configure(latency=0.02)
    turn = await pool.run("doc", "next")
    assert turn.fence == 2
    assert lock_errors(thread_pool_emulator) == 0


async def test_an_async_tool_handler_holds_the_lease_across_the_tool_loop(
    pool_for: Any, thread_pool_emulator: EmulatorServer
) -> None:
    pool = pool_for("assistants", lease_ttl=0.6, renew_margin=0.3)

    async def slow_tool(call: Any) -> str:
        await asyncio.sleep(1.0)  # longer than the lease: the renewer must keep it
        return "done"

    turn = await pool.run("doc", "call:ping()", tool_handler=slow_tool, tools=ASSISTANT_TOOLS)
    assert [c.name for c in turn.tool_calls] == ["ping"]
    stats = await pool.stats("doc")
    assert (stats.lost, stats.reaped) == (0, 0)


def test_a_tool_handler_the_blocking_pool_cannot_call_fails_the_turn_and_settles_it(
    make_pool: MakePool,
    thread_pool_emulator: EmulatorServer,
    thread_pool_prefix: str,
    redis_client: redis.Redis,
) -> None:
    async def needs_a_loop(call: Any) -> str:
        return "never"

    with make_pool("assistants") as pool:
        with pytest.raises(InvalidArgument):
            pool.run("doc", "call:ping()", tool_handler=needs_a_loop, tools=ASSISTANT_TOOLS)
        # Its run was waiting for tool outputs: the release settled it, so no lock error next.
        turn = pool.run("doc", "next")
        stats = pool.stats("doc")
    assert turn.fence == 2
    assert stats.lock_errors == 0
    assert lock_errors(thread_pool_emulator) == 0
    assert_quiet(redis_client, thread_pool_prefix, "doc", threads=1)


async def test_a_process_paused_after_its_fence_check_does_not_send_the_write_late(
    make_async_pool: AsyncMakePool,
    thread_pool_prefix: str,
    thread_pool_emulator: EmulatorServer,
    redis_client: redis.Redis,
) -> None:
    paused: list[str] = []

    async def pause_before_the_first_start(request: Any) -> None:
        # Blocks the whole event loop, as SIGSTOP would stop the process: after the turn's fence
        # check succeeded in Redis, before its request is sent, longer than the lease lasts.
        if request.method == "POST" and request.url.path.endswith("/responses") and not paused:
            paused.append(request.url.path)
            time.sleep(1.5)  # noqa: ASYNC251 (the point: nothing else in the process runs)

    client = hooked_client(thread_pool_emulator, request=[pause_before_the_first_start])
    backend = AsyncConversationsBackend(client, model="emulated", settle_wait=0.2)
    async with make_async_pool(backend=backend, lease_ttl=1.0, renew_margin=0.5) as pool:
        with pytest.raises(LeaseLost, match="ran out before its request was sent"):
            await pool.run("doc", "sent too late")
        assert paused
        (thread_id,) = redis_client.hkeys(f"{thread_pool_prefix}:{{doc}}:threads")
        # Nothing reached upstream after the conversation was created: no late write.
        ops = [w["op"] for w in thread_pool_emulator.admin.writes(str(thread_id))]
        assert ops == ["conversation.create"], ops
        turn = await pool.run("doc", "on time")
        assert turn.fence == 2
    await client.close()
    assert lock_errors(thread_pool_emulator) == 0
    assert_quiet(redis_client, thread_pool_prefix, "doc", threads=1)


@pytest.mark.thread_pool_emulator(latency=0.02, run_stuck=1.0)
async def test_a_response_whose_id_cannot_reach_redis_is_cancelled_by_its_holder(
    thread_pool_emulator: EmulatorServer,
) -> None:
    # Redis dies the moment the background response is created, so its id cannot be recorded
    # for a settler: the holder, the only one who knows it, cancels it before giving up.
    with RedisServer() as store:

        async def redis_dies_as_the_response_starts(response: Any) -> None:
            if response.request.method == "POST" and response.request.url.path.endswith(
                "/responses"
            ):
                store.kill()

        client = hooked_client(thread_pool_emulator, response=[redis_dies_as_the_response_starts])
        backend = AsyncConversationsBackend(client, model="emulated", background=True)
        # A single server of its own, also when the session runs on a cluster (the environment
        # then says THREAD_POOL_REDIS_CLUSTER=1).
        pool = AsyncThreadPool(
            backend=backend, redis_url=store.url, redis_cluster=False, key_prefix="t"
        )
        with pytest.raises(StoreUnavailable):
            await pool.run("doc", "stuck forever unless cancelled")
        await pool.aclose()
        await client.close()
    stats = thread_pool_emulator.admin.stats()
    assert stats["requests"].get("POST /v1/responses/{response_id}/cancel") == 1, stats["requests"]
    (conversation,) = thread_pool_emulator.admin.objects()["conversations"]
    ops = [w["op"] for w in thread_pool_emulator.admin.writes(conversation)]
    assert ops[-2:] == ["response.create", "response.cancel"], ops


@pytest.mark.thread_pool_emulator(latency=1.0, cancel_conflict=True)
async def test_a_cancel_refused_with_409_settles_by_what_the_server_reports(
    pool_for: Any,
    thread_pool_emulator: EmulatorServer,
    redis_client: redis.Redis,
    thread_pool_prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # llama-stack refuses to cancel an in-progress background response (409) and lets it run
    # to its end: the settler reads it until it ended, once, without failing or retrying.
    pool = pool_for("conversations", backend_options={"turn_timeout": 0.3})
    with caplog.at_level(logging.INFO, logger="thread_pool"):
        with pytest.raises(TurnFailed) as caught:
            await pool.run("doc", "too slow")
        assert caught.value.status == "timed_out"
        assert_quiet(redis_client, thread_pool_prefix, "doc", threads=1)
    requests = thread_pool_emulator.admin.stats()["requests"]
    assert requests["POST /v1/responses/{response_id}/cancel"] == 1
    assert not [r for r in caplog.records if "settling" in r.getMessage()]
    assert not [r for r in caplog.records if "try 2 follows" in r.getMessage()]
    (thread_id,) = redis_client.zrange(f"{thread_pool_prefix}:{{doc}}:idle", 0, -1)
    ops = [w["op"] for w in thread_pool_emulator.admin.writes(str(thread_id))]
    assert "response.cancel" not in ops  # refused: it ran on to its end
    thread_pool_emulator.admin.configure(latency=0.02)
    turn = await pool.run("doc", "next")
    assert turn.fence == 2
    assert lock_errors(thread_pool_emulator) == 0
