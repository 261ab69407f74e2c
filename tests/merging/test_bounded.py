"""Nothing of a pool's log grows without bound in Redis: the idempotency record is trimmed with
the log, entries older than ``log_max_age`` go, and a thread that left the pool for good takes its
cursor with it. Read straight from Redis, against the emulator over HTTP where a thread must be
deleted upstream."""

from __future__ import annotations

import asyncio

import openai
import pytest
import redis

from tests.support.pools import AsyncMakePool
from thread_pool._store.keys import PoolKeys

pytestmark = pytest.mark.filterwarnings(
    r"ignore:(The Assistants API is deprecated|deprecated$):DeprecationWarning"
)


async def test_the_idempotency_record_is_trimmed_with_the_log(
    make_async_pool: AsyncMakePool, redis_client: redis.Redis, thread_pool_prefix: str
) -> None:
    pool = make_async_pool("conversations", log_max_entries=10)
    for n in range(100):
        await pool.append("doc", "user", f"note {n}", append_id=f"note-{n}")
    k = PoolKeys.of(thread_pool_prefix, "doc")
    assert redis_client.xlen(k.log) == 10
    # One record per entry still in the log, none for the 90 trimmed.
    assert sorted(redis_client.hkeys(k.logged)) == sorted(f"note-{n}" for n in range(90, 100))
    # A retried append of a kept entry still adds nothing.
    assert await pool.append("doc", "user", "note 99", append_id="note-99") == 100
    assert redis_client.xlen(k.log) == 10


async def test_entries_older_than_log_max_age_are_trimmed_and_the_gap_is_said(
    make_async_pool: AsyncMakePool, redis_client: redis.Redis, thread_pool_prefix: str
) -> None:
    pool = make_async_pool("conversations", log_max_age=0.5)
    await pool.add_threads("doc", ["thread_a"])  # holds nothing of the log yet
    for n in range(5):
        await pool.append("doc", "user", f"old {n}", append_id=f"old-{n}")
    await asyncio.sleep(0.6)
    await pool.append("doc", "user", "new", append_id="new")
    k = PoolKeys.of(thread_pool_prefix, "doc")
    assert [e.content for e in await pool.history("doc")] == ["new"]
    assert redis_client.hkeys(k.logged) == ["new"]
    missing = await pool.log.missing("doc", "thread_a")
    messages = await pool.log.messages(missing)
    assert messages[0]["content"].startswith("[context gap: 5 earlier messages")
    assert messages[1:] == [{"role": "user", "content": "new"}]


async def test_a_thread_that_left_for_good_takes_its_cursor_with_it(
    make_async_pool: AsyncMakePool,
    thread_pool_async_openai_client: openai.AsyncOpenAI,
    redis_client: redis.Redis,
    thread_pool_prefix: str,
) -> None:
    k = PoolKeys.of(thread_pool_prefix, "doc")
    pool = make_async_pool("conversations", lease_ttl=10, renew_margin=0.2, max_size=2)

    def cursors() -> set[str]:
        return set(redis_client.hkeys(k.cursors))  # type: ignore[arg-type]

    # Retired by a shrink, a thread keeps its cursor (it may be added back); purged (deleted
    # upstream), it does not.
    first = await pool.acquire("doc")
    second = await pool.acquire("doc")
    await first.run("one")
    await second.run("two")
    await pool.release(first)
    await pool.release(second)
    assert cursors() == {first.thread_id, second.thread_id}
    await pool.configure("doc", max_size=1)
    (retired,) = redis_client.lrange(k.retired, 0, -1)
    assert retired in cursors()
    assert await pool.purge_retired("doc") == 1
    (kept,) = {first.thread_id, second.thread_id} - {retired}
    assert cursors() == {kept}

    # Gone upstream under a dead holder: the settler drops the thread, and its cursor.
    await pool.configure("doc", ttl=0.6)
    await pool.acquire("doc")  # never released
    await thread_pool_async_openai_client.conversations.delete(kept)
    await asyncio.sleep(0.7)
    async with pool.lease("doc", timeout=10) as fresh:
        assert fresh.thread_id != kept
        await fresh.run("three")
    assert cursors() == {fresh.thread_id}
