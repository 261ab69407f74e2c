"""What one request may carry (a backend's ``max_request_items`` / ``max_request_chars``) bounds
every path that sends context — a turn, a caller's own call, the seeding of a new thread by
growth, pre-warm and the CLI — and a server that refuses a request for its size anyway (a 400,
or a background response that turns failed once it cannot be saved) never leaves a thread stuck:
the turn is tried once more with its context folded into one digest. Against the emulator
imitating llama-stack's deviations (its item cap of 20, its first response reading 20 items)."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.merging.test_merge import held_by
from tests.support.environment import COMMAND, clean_environment
from tests.support.upstream import FAST_RETRY, backend
from thread_pool import AsyncThreadPool, InvalidArgument, LogEntry
from thread_pool._model.log import RequestCaps, fold, item_count, merge_limits
from thread_pool.emulator import EmulatorServer, parse_reply

BEHIND = 30  # entries a thread misses: more than llama-stack's 20 items per request


def entry(seq: int, role: str = "user", content: str = "x") -> LogEntry:
    return LogEntry(seq, role, content, "t", 0)


def test_fold_counts_items_and_the_request_caps_join_the_merge_caps() -> None:
    log = [entry(1), entry(2, "tool", '{"call_id": "c"}'), entry(3), entry(4)]
    assert [item_count(e) for e in log] == [1, 2, 1, 1]
    assert fold(log, None, None, 5) == ([], log)
    # Four items of room: one for the digest, then the newest that fit (1 + 1 items; the tool
    # entry needs two).
    assert fold(log, None, None, 4) == (log[:2], log[2:])
    assert fold(log, None, None, 1) == (log, [])
    assert merge_limits(10, 500, RequestCaps(20, 400), 2) == (10, 400, 18)
    assert merge_limits(None, None, RequestCaps(), 2) == (None, None, None)
    assert merge_limits(None, None, RequestCaps(3, None), 5) == (None, None, 1)


def test_the_caps_are_checked_where_a_backend_is_built(
    thread_pool_async_openai_client: openai.AsyncOpenAI,
) -> None:
    for bad in ({"max_request_items": 2}, {"max_request_chars": "1000"}):
        with pytest.raises(InvalidArgument, match=next(iter(bad))):
            backend("conversations", thread_pool_async_openai_client, **bad)


@pytest.fixture
async def caps_pool(
    thread_pool_redis_url: str,
    thread_pool_prefix: str,
    thread_pool_emulator: EmulatorServer,
    thread_pool_async_openai_client: openai.AsyncOpenAI,
) -> AsyncIterator[Callable[..., AsyncThreadPool]]:
    """Pools whose backend (``kind``) is built with ``options`` (the request caps)."""
    pools: list[AsyncThreadPool] = []

    def make(kind: str = "conversations", **options: Any) -> AsyncThreadPool:
        built = backend(
            kind,
            thread_pool_async_openai_client,
            retry=FAST_RETRY,
            settle_wait=0.2,
            poll_interval=0.02,
            **options,
        )
        pool = AsyncThreadPool(
            backend=built, redis_url=thread_pool_redis_url, key_prefix=thread_pool_prefix
        )
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        await pool.aclose()


CapsPool = Callable[..., AsyncThreadPool]


async def fall_behind(pool: AsyncThreadPool, key: str, count: int) -> str:
    """Make a thread of ``key`` and log ``count`` entries it does not hold; its id."""
    first = await pool.run(key, "first")
    for n in range(count):
        await pool.append(key, "user", f"note {n}", append_id=f"note-{n}")
    return first.thread_id


async def test_a_turn_carries_no_more_items_than_the_backend_allows(
    caps_pool: CapsPool, thread_pool_async_openai_client: openai.AsyncOpenAI
) -> None:
    pool = caps_pool(max_request_items=8)
    thread_id = await fall_behind(pool, "doc", 12)
    await pool.run("doc", "question")
    held = await held_by(thread_pool_async_openai_client, "conversations", thread_id)
    # first, its reply; then the request: a digest, the 5 newest notes, the question (8 less
    # the reply's item); then the reply.
    request = held[2:-1]
    assert len(request) + 1 == 8
    assert request[0][1].startswith("[context digest: 7 earlier messages")
    for n in range(7):
        assert f"note {n}" in request[0][1]
    assert request[1:-1] == [("user", f"note {n}") for n in range(7, 12)]
    assert request[-1] == ("user", "question")


@pytest.mark.thread_pool_emulator(max_response_items=20)
@pytest.mark.parametrize("kind", ["conversations", "background"])
async def test_a_thread_far_behind_a_server_item_cap_catches_up_in_one_turn(
    caps_pool: CapsPool,
    thread_pool_async_openai_client: openai.AsyncOpenAI,
    caplog: pytest.LogCaptureFixture,
    kind: str,
) -> None:
    # No cap given to the backend: the server refuses the turn (synchronous: 400; background:
    # it reads completed, then fails unsaved), and the pool folds and tries once more.
    pool = caps_pool(kind)
    thread_id = await fall_behind(pool, "doc", BEHIND)
    with caplog.at_level(logging.WARNING, logger="thread_pool"):
        turn = await pool.run("doc", "question")
    assert turn.thread_id == thread_id
    refused = [r for r in caplog.records if "refused the turn" in r.getMessage()]
    assert len(refused) == 1
    assert (await pool.log.missing("doc", thread_id)).entries == ()
    history = await pool.history("doc")
    held = await held_by(thread_pool_async_openai_client, "conversations", thread_id)
    # The thread holds every note (in one digest) and the turn, once; the log holds the turn
    # once, and the thread's next turn carries nothing more.
    digest = held[2][1]
    assert digest.startswith(f"[context digest: {BEHIND} earlier messages")
    assert all(f"note {n}" in digest for n in range(BEHIND))
    assert held[3] == ("user", "question")
    assert [e.content for e in history].count("question") == 1
    assert history[-1].content == turn.reply
    again = await pool.run("doc", "next")
    assert parse_reply(again.reply).count == len(held) + 1


@pytest.mark.thread_pool_emulator(first_response_reads=20)
@pytest.mark.parametrize("capped", [False, True])
async def test_a_new_thread_seeded_from_a_long_log_reads_all_of_it_within_the_cap(
    caps_pool: CapsPool,
    thread_pool_async_openai_client: openai.AsyncOpenAI,
    capped: bool,
) -> None:
    pool = caps_pool(**({"max_request_items": 20} if capped else {}))
    for n in range(BEHIND):
        await pool.append("doc", "user", f"note {n}", append_id=f"note-{n}")
    turn = await pool.run("doc", "question")  # grows a thread, seeded from the log
    held = await held_by(thread_pool_async_openai_client, "conversations", turn.thread_id)
    seen = parse_reply(turn.reply).count - 1  # what the model read of the seed
    read = held[:seen]
    represented = {n for n in range(BEHIND) if any(f"note {n}" in text for _, text in read)}
    if capped:
        assert len(held) - 2 <= 20
        assert represented == set(range(BEHIND))
    else:
        # The server's first response reads only the oldest 20 items: the newest 10 are lost.
        assert represented == set(range(20))


def test_the_cli_prewarm_seeds_within_the_configured_cap(
    thread_pool_redis_url: str,
    thread_pool_prefix: str,
    thread_pool_emulator: EmulatorServer,
    thread_pool_openai_client: openai.OpenAI,
    tmp_path: Path,
) -> None:
    from thread_pool import PoolAdmin, ThreadPool

    with ThreadPool(redis_url=thread_pool_redis_url, key_prefix=thread_pool_prefix) as pool:
        for n in range(12):
            pool.append("doc", "user", f"note {n}", append_id=f"note-{n}")
    env = {
        **clean_environment(),
        "THREAD_POOL_REDIS_URL": thread_pool_redis_url,
        "THREAD_POOL_KEY_PREFIX": thread_pool_prefix,
        "THREAD_POOL_REQUEST_MAX_ITEMS": "6",
        "OPENAI_API_KEY": thread_pool_emulator.api_key or "unused",
        "OPENAI_BASE_URL": thread_pool_emulator.base_url,
    }
    args = [*COMMAND, "prewarm", "doc", "--size", "1", "--backend", "conversations"]
    done = subprocess.run(args, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    with PoolAdmin(redis_url=thread_pool_redis_url, key_prefix=thread_pool_prefix) as admin:
        (thread_id,) = admin.threads("doc")
    items = list(thread_pool_openai_client.conversations.items.list(thread_id, order="asc"))
    texts = ["".join(p.text for p in getattr(i, "content", [])) for i in items]
    assert len(texts) == 6
    assert texts[0].startswith("[context digest: 7 earlier messages")
    assert texts[1:] == [f"note {n}" for n in range(7, 12)]
