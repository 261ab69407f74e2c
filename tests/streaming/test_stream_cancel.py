"""asyncio only: a streaming task cancelled at a random point ends its turn and leaves the
thread settled; a pool refuses an event loop other than its own."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import openai
import pytest
import redis

from tests.support.evidence import assert_quiet
from tests.support.streams import ACTIVE, run_statuses
from tests.support.upstream import lock_errors, make_backend
from thread_pool import AsyncThreadPool, TextDelta, WrongEventLoop
from thread_pool.emulator import EmulatorServer

pytestmark = pytest.mark.filterwarnings(
    r"ignore:(The Assistants API is deprecated|deprecated$):DeprecationWarning"
)

KINDS = ["assistants", "conversations"]


@pytest.fixture(params=KINDS)
async def pool(
    request: pytest.FixtureRequest,
    thread_pool_redis_url: str,
    thread_pool_prefix: str,
    thread_pool_emulator: EmulatorServer,
    thread_pool_async_openai_client: openai.AsyncOpenAI,
) -> AsyncIterator[AsyncThreadPool]:
    backend = make_backend(request.param, thread_pool_async_openai_client, thread_pool_emulator)
    async with AsyncThreadPool(
        backend=backend, redis_url=thread_pool_redis_url, key_prefix=thread_pool_prefix
    ) as made:
        yield made


@pytest.mark.slow
@pytest.mark.thread_pool_emulator(latency="0.2-0.4")
async def test_a_streaming_task_cancelled_at_any_point_ends_its_turn(
    pool: AsyncThreadPool,
    thread_pool_emulator: EmulatorServer,
    thread_pool_openai_client: openai.OpenAI,
    redis_client: redis.Redis,
    thread_pool_prefix: str,
) -> None:
    rng = random.Random(7)
    threads: set[str] = set()

    async def consume(message: str) -> None:
        async with pool.stream("doc", message) as events:
            threads.add(events.thread_id)
            async for event in events:
                if isinstance(event, TextDelta):
                    await asyncio.sleep(0.001)

    cancelled = 0
    for trial in range(30):
        task = asyncio.create_task(consume(f"trial {trial} " + "words " * 20))
        await asyncio.sleep(rng.uniform(0, 0.3))
        if task.cancel():
            cancelled += 1
            with pytest.raises(asyncio.CancelledError):
                await task
        else:
            await task  # it had finished
        # Settled before the task ended: nothing leased, nothing in flight.
        assert_quiet(redis_client, thread_pool_prefix, "doc", threads=1)
    assert cancelled >= 25
    (thread_id,) = threads
    statuses = run_statuses(thread_pool_emulator, thread_pool_openai_client, thread_id)
    assert not ACTIVE.intersection(statuses.values()), statuses
    assert "cancelled" in statuses.values()
    logged = {e.run_id for e in await pool.history("doc")}
    assert logged <= {run for run, status in statuses.items() if status == "completed"}
    turn = await pool.run("doc", "after all that")
    assert turn.status == "completed"
    assert lock_errors(thread_pool_emulator) == 0


def test_a_pool_refuses_another_event_loop(
    thread_pool_redis_url: str, thread_pool_prefix: str
) -> None:
    pool = AsyncThreadPool(redis_url=thread_pool_redis_url, key_prefix=thread_pool_prefix)

    async def use() -> None:
        await pool.append("doc", "user", "hello")

    async def use_and_close() -> None:
        await use()
        await pool.aclose()  # its connections belong to this loop: closed before it ends

    asyncio.run(use_and_close())
    with pytest.raises(WrongEventLoop, match="lifespan"):
        asyncio.run(use())
