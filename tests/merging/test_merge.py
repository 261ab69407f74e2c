"""Context merging against the emulator over HTTP and a real Redis: what each thread holds is
read back through the SDK, as the emulator stored it, never from the pool's own bookkeeping."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from typing import Any

import openai
import pytest
import redis

from tests.support.evidence import assert_quiet
from tests.support.pools import AsyncMakePool
from thread_pool import AsyncThreadPool, InvalidArgument, LogEntry, TurnFailed
from thread_pool._compat import call_handler
from thread_pool._model.limits import MAX_MESSAGE_CHARS
from thread_pool._model.log import (
    Missing,
    default_compact,
    fold,
    retention_marker,
    split_content,
)
from thread_pool._store.keys import PoolKeys
from thread_pool._store.replies import parse_missing
from thread_pool.emulator import EmulatorServer, parse_reply

pytestmark = pytest.mark.filterwarnings(
    r"ignore:(The Assistants API is deprecated|deprecated$):DeprecationWarning"
)

KINDS = ["assistants", "conversations"]


async def held_by(client: openai.AsyncOpenAI, kind: str, thread_id: str) -> list[tuple[str, str]]:
    """``(role, text)`` of every message the thread (conversation) holds upstream, oldest first."""
    out: list[tuple[str, str]] = []
    if kind == "assistants":
        async for msg in client.beta.threads.messages.list(thread_id, order="asc", limit=100):
            text = "".join(p.text.value for p in msg.content if p.type == "text")
            out.append((msg.role, text))
        return out
    async for item in client.conversations.items.list(thread_id, order="asc", limit=100):
        if getattr(item, "type", None) == "message":
            parts: list[Any] = list(getattr(item, "content", []))
            out.append((getattr(item, "role", ""), "".join(p.text for p in parts)))
    return out


def assert_caught_up(held: list[tuple[str, str]], before: list[LogEntry], thread_id: str) -> None:
    """Every entry of ``before`` is held exactly once, in log order within each origin."""
    positions: dict[str, list[int]] = {}
    for entry in before:
        found = [i for i, m in enumerate(held) if m == (entry.role, entry.content)]
        assert len(found) == 1, (entry, thread_id, len(found))
        positions.setdefault(entry.origin, []).append(found[0])
    for origin, seen in positions.items():
        assert seen == sorted(seen), (origin, seen)


@pytest.mark.parametrize("kind", KINDS)
async def test_many_workers_every_thread_holds_the_whole_log_before_it_runs(
    make_async_pool: AsyncMakePool,
    thread_pool_async_openai_client: openai.AsyncOpenAI,
    thread_pool_emulator: EmulatorServer,
    redis_client: redis.Redis,
    thread_pool_prefix: str,
    kind: str,
) -> None:
    pool = make_async_pool(kind, max_size=3)
    rng = random.Random(7)
    checked = 0

    async def worker(w: int) -> None:
        nonlocal checked
        for i in range(3):
            await asyncio.sleep(rng.random() * 0.03)
            async with pool.lease("doc", timeout=30) as held:
                before = await pool.history("doc")  # read while holding: a lower bound
                await asyncio.sleep(rng.random() * 0.02)
                turn = await held.run(f"worker {w} question {i}")
                contents = await held_by(thread_pool_async_openai_client, kind, held.thread_id)
                assert_caught_up(contents, before, held.thread_id)
                # The model saw everything the thread held when it answered.
                assert contents[-1] == ("assistant", turn.reply)
                assert parse_reply(turn.reply).count == len(contents) - 1
                checked += 1

    await asyncio.gather(*(worker(w) for w in range(6)))
    assert checked == 18
    log = await pool.history("doc")
    # Each turn logged once: its question and its reply.
    assert len(log) == 36
    assert [e.seq for e in log] == list(range(1, 37))
    assert sorted(e.content for e in log if e.role == "user") == sorted(
        f"worker {w} question {i}" for w in range(6) for i in range(3)
    )
    assert len({e.turn_id for e in log}) == 18
    assert all(e.origin and e.run_id and e.time_ms > 0 for e in log)
    # Merging made no request of its own: one request starts each turn.
    stats = thread_pool_emulator.admin.stats()
    assert "POST /v1/threads/{thread_id}/messages" not in stats["requests"]
    assert "POST /v1/conversations/{conversation_id}/items" not in stats["requests"]
    # Idle threads are scored by their cursor (the log seq they hold up to).
    k = PoolKeys.of(thread_pool_prefix, "doc")
    cursors: dict[str, str] = dict(redis_client.hgetall(k.cursors))  # type: ignore[arg-type]
    scored: list[tuple[str, float]] = list(redis_client.zrange(k.idle, 0, -1, withscores=True))  # type: ignore[arg-type]
    assert len(scored) == 3
    for thread_id, score in scored:
        assert int(score) == int(cursors[thread_id])
    assert_quiet(redis_client, thread_pool_prefix, "doc", threads=3)


@pytest.mark.parametrize("kind", KINDS)
async def test_appended_context_reaches_every_thread_and_a_new_one(
    make_async_pool: AsyncMakePool, thread_pool_async_openai_client: openai.AsyncOpenAI, kind: str
) -> None:
    pool = make_async_pool(kind, max_size=2)
    seq = await pool.append("doc", "user", "The document: lorem ipsum.")
    assert seq == 1
    # Two threads at once: the second one is created after the first turn was logged.
    async with pool.lease("doc") as a:
        await a.run("first")
        async with pool.lease("doc") as b:
            assert b.thread_id != a.thread_id
            await b.run("second")
            held = await held_by(thread_pool_async_openai_client, kind, b.thread_id)
    assert held[:3] == [
        ("user", "The document: lorem ipsum."),
        ("user", "first"),
        ("assistant", (await pool.history("doc"))[2].content),
    ]
    assert held[3] == ("user", "second")
    with pytest.raises(InvalidArgument):
        await pool.append("doc", "system", "no")


@pytest.mark.parametrize("kind", KINDS)
async def test_append_is_idempotent_under_retry(
    make_async_pool: AsyncMakePool, redis_client: redis.Redis, thread_pool_prefix: str, kind: str
) -> None:
    pool = make_async_pool(kind)
    assert await pool.append("doc", "user", "once", append_id="doc-1") == 1
    assert await pool.append("doc", "user", "once", append_id="doc-1") == 1
    turn = await pool.run("doc", "question")
    # A turn's append retried (its reply lost) by the same turn id adds nothing.
    entry = (await pool.history("doc"))[-1]
    again = [("user", "question")]
    assert await pool.log.append("doc", entry.turn_id, turn.thread_id, 1, turn.run_id, again) == 3
    assert [e.content for e in await pool.history("doc")] == ["once", "question", turn.reply]
    assert redis_client.xlen(PoolKeys.of(thread_pool_prefix, "doc").log) == 3


@pytest.mark.parametrize("kind", KINDS)
async def test_policy_none_keeps_each_thread_to_its_own_turns(
    make_async_pool: AsyncMakePool, thread_pool_async_openai_client: openai.AsyncOpenAI, kind: str
) -> None:
    pool = make_async_pool(kind, max_size=2, merge="none")
    async with pool.lease("doc") as a, pool.lease("doc") as b:
        await a.run("on a")
        await b.run("on b")
        await a.run("on a again")
        held_a = await held_by(thread_pool_async_openai_client, kind, a.thread_id)
        held_b = await held_by(thread_pool_async_openai_client, kind, b.thread_id)
    assert [t for r, t in held_a if r == "user"] == ["on a", "on a again"]
    assert [t for r, t in held_b if r == "user"] == ["on b"]
    # The log still has the whole conversation.
    assert [e.content for e in await pool.history("doc") if e.role == "user"] == [
        "on a",
        "on b",
        "on a again",
    ]


async def test_a_bad_merge_policy_is_refused() -> None:
    with pytest.raises(InvalidArgument):
        AsyncThreadPool(merge="some")


def test_long_content_is_split_in_marked_pieces_never_cut() -> None:
    assert split_content("short") == ["short"]
    text = "x" * (2 * MAX_MESSAGE_CHARS + 5)
    pieces = split_content(text)
    assert len(pieces) == 3
    assert all(len(p) <= MAX_MESSAGE_CHARS for p in pieces)
    assert [p.split("] ", 1)[0] for p in pieces] == ["[part 1 of 3", "[part 2 of 3", "[part 3 of 3"]
    assert "".join(p.split("] ", 1)[1] for p in pieces) == text


@pytest.mark.parametrize("kind", KINDS)
async def test_beyond_the_entry_cap_the_oldest_fold_into_one_marked_digest(
    make_async_pool: AsyncMakePool, thread_pool_async_openai_client: openai.AsyncOpenAI, kind: str
) -> None:
    pool = make_async_pool(kind, max_size=2, merge_max_entries=3)
    async with pool.lease("doc") as a, pool.lease("doc") as b:
        for i in range(3):
            await a.run(f"on a {i}")
        await b.run("on b")
        held = await held_by(thread_pool_async_openai_client, kind, b.thread_id)
    log = await pool.history("doc")
    # Six entries were missing: four folded into the digest, the newest two sent whole.
    assert held[0][0] == "user"
    assert held[0][1].startswith(
        "[context digest: 4 earlier messages of this conversation (seq 1-4)"
    )
    for entry in log[:4]:
        assert f"{entry.role} (#{entry.seq}): {entry.content[:300]}" in held[0][1]
    assert held[1:3] == [(e.role, e.content) for e in log[4:6]]
    assert held[3] == ("user", "on b")
    assert len(held) == 5


@pytest.mark.parametrize("kind", KINDS)
async def test_a_custom_compact_and_the_char_cap(
    make_async_pool: AsyncMakePool, thread_pool_async_openai_client: openai.AsyncOpenAI, kind: str
) -> None:
    seen: list[int] = []

    async def summarise(entries: Sequence[LogEntry]) -> list[dict[str, str]]:
        seen.append(len(entries))
        return [{"role": "assistant", "content": f"(summary of {len(entries)} messages)"}]

    pool = make_async_pool(kind, max_size=2, merge_max_chars=40, compact=summarise)
    await pool.append("doc", "user", "x" * 30)
    await pool.append("doc", "user", "short one")
    await pool.append("doc", "user", "short two")
    turn = await pool.run("doc", "question")
    held = await held_by(thread_pool_async_openai_client, kind, turn.thread_id)
    assert seen == [1]
    assert held[:4] == [
        ("assistant", "(summary of 1 messages)"),
        ("user", "short one"),
        ("user", "short two"),
        ("user", "question"),
    ]
    with pytest.raises(InvalidArgument):
        make_async_pool(kind, merge_max_entries=0)


def entries(*contents: str) -> list[LogEntry]:
    return [LogEntry(i, "user", c, "t", 0) for i, c in enumerate(contents, 1)]


def test_fold_keeps_the_newest_that_fit_and_leaves_room_for_the_digest() -> None:
    log = entries("a", "b", "c", "d")
    assert fold(log, None, None) == ([], log)
    assert fold(log, 4, 4) == ([], log)
    assert fold(log, 3, None) == (log[:2], log[2:])
    assert fold(log, None, 2) == (log[:2], log[2:])
    assert fold(log, 1, None) == (log, [])
    digest = default_compact(entries("y" * 400, "z"))[0]["content"]
    assert digest.startswith("[context digest: 2 earlier messages")
    assert "user (#1): " + "y" * 300 + "…" in digest
    assert digest.endswith("user (#2): z")
    huge = default_compact(entries(*["w" * 300] * 2000))[0]["content"]
    assert len(huge) <= MAX_MESSAGE_CHARS
    assert huge.startswith("[context digest: 2000 earlier")
    assert huge.endswith("[context digest truncated: the earliest folded messages are not quoted]")


@pytest.mark.parametrize("kind", KINDS)
async def test_a_new_thread_is_seeded_from_the_log_when_it_is_created(
    make_async_pool: AsyncMakePool,
    thread_pool_async_openai_client: openai.AsyncOpenAI,
    thread_pool_emulator: EmulatorServer,
    redis_client: redis.Redis,
    thread_pool_prefix: str,
    kind: str,
) -> None:
    pool = make_async_pool(kind)
    for i in range(25):
        await pool.append("doc", "user" if i % 2 == 0 else "assistant", f"earlier {i}")
    turn = await pool.run("doc", "question")  # the pool grows: its first thread is created now
    held = await held_by(thread_pool_async_openai_client, kind, turn.thread_id)
    assert held == [
        *(("user" if i % 2 == 0 else "assistant", f"earlier {i}") for i in range(25)),
        ("user", "question"),
        ("assistant", turn.reply),
    ]
    assert parse_reply(turn.reply).count == 26
    requests = thread_pool_emulator.admin.stats()["requests"]
    # Conversations take 20 items per call: the create carried 20, one items.create the rest.
    assert requests.get("POST /v1/conversations/{conversation_id}/items", 0) == (
        1 if kind == "conversations" else 0
    )
    k = PoolKeys.of(thread_pool_prefix, "doc")
    assert redis_client.hget(k.cursors, turn.thread_id) == "27"


async def test_a_settled_thread_goes_back_idle_scored_by_its_cursor(
    make_async_pool: AsyncMakePool, redis_client: redis.Redis, thread_pool_prefix: str
) -> None:
    pool = make_async_pool("conversations")
    await pool.append("doc", "user", "context")
    async with pool.lease("doc") as held:
        await held.run("question")
        held.dirty = True  # as if the turn had been cut short: the thread is settled first
    k = PoolKeys.of(thread_pool_prefix, "doc")
    assert redis_client.hget(k.cursors, held.thread_id) == "3"
    assert redis_client.zscore(k.idle, held.thread_id) == 3
    assert_quiet(redis_client, thread_pool_prefix, "doc", threads=1)


@pytest.mark.parametrize("kind", KINDS)
async def test_a_failed_turn_whose_context_arrived_does_not_send_it_twice(
    make_async_pool: AsyncMakePool,
    thread_pool_async_openai_client: openai.AsyncOpenAI,
    thread_pool_emulator: EmulatorServer,
    kind: str,
) -> None:
    pool = make_async_pool(kind, max_size=2)
    async with pool.lease("doc") as a, pool.lease("doc") as b:
        await a.run("on a")
        thread_pool_emulator.admin.configure(run_failed=1.0)
        try:
            with pytest.raises(TurnFailed):
                await b.run("fails")
        finally:
            thread_pool_emulator.admin.configure(run_failed=0.0)
    async with pool.lease("doc") as x, pool.lease("doc") as y:
        await (x if x.thread_id == b.thread_id else y).run("works")
    held = await held_by(thread_pool_async_openai_client, kind, b.thread_id)
    log = await pool.history("doc")
    assert_caught_up(held, log[:2], b.thread_id)  # a's turn, exactly once
    # Assistants added the failed run's messages to the thread; Conversations did not.
    users = [t for r, t in held if r == "user"]
    assert users == (["on a", "fails", "works"] if kind == "assistants" else ["on a", "works"])


def test_a_thread_behind_the_first_retained_entry_is_told_how_many_it_lost() -> None:
    assert Missing(last_seq=9, cursor=4, entries=(), first_seq=5).dropped is None
    assert Missing(last_seq=9, cursor=2, entries=(), first_seq=6).dropped == (3, 5)
    assert Missing(last_seq=9, cursor=0, entries=(), first_seq=7).dropped == (1, 6)
    assert Missing(last_seq=0, cursor=0, entries=(), first_seq=0).dropped is None
    missing = parse_missing([7, 0, 6, 6, "user", "hi", "t", "5", 7, "assistant", "yo", "t", "6"])
    assert missing.dropped == (1, 5)
    assert [e.content for e in missing.entries] == ["hi", "yo"]
    marker = retention_marker((1, 5))
    assert marker["role"] == "user"
    assert marker["content"].startswith("[context gap: 5 earlier messages of this conversation")
    assert "(seq 1-5) were dropped by the log's retention limit" in marker["content"]
    assert "1 earlier message of" in retention_marker((3, 3))["content"]


@pytest.mark.parametrize("kind", KINDS)
async def test_retention_trims_the_log_and_a_thread_behind_it_gets_a_marked_gap(
    make_async_pool: AsyncMakePool,
    thread_pool_async_openai_client: openai.AsyncOpenAI,
    redis_client: redis.Redis,
    thread_pool_prefix: str,
    kind: str,
) -> None:
    pool = make_async_pool(kind, max_size=2, log_max_entries=4)
    k = PoolKeys.of(thread_pool_prefix, "doc")
    async with pool.lease("doc") as a, pool.lease("doc") as b:
        for i in range(3):
            await a.run(f"on a {i}")
        retained = await pool.history("doc")
        assert [e.seq for e in retained] == [3, 4, 5, 6]
        assert redis_client.xlen(k.log) == 4
        await b.run("on b")
        held = await held_by(thread_pool_async_openai_client, kind, b.thread_id)
    # b held nothing of the log: seq 1-2 are gone, so a marked gap comes first, then the rest.
    assert held[0] == ("user", retention_marker((1, 2))["content"])
    assert held[1:5] == [(e.role, e.content) for e in retained]
    assert held[5] == ("user", "on b")
    assert len(held) == 7
    assert [e.seq for e in await pool.history("doc")] == [5, 6, 7, 8]
    with pytest.raises(InvalidArgument):
        make_async_pool(kind, log_max_entries=0)


@pytest.mark.parametrize("kind", KINDS)
async def test_a_new_thread_seeded_from_a_trimmed_log_starts_with_the_gap(
    make_async_pool: AsyncMakePool, thread_pool_async_openai_client: openai.AsyncOpenAI, kind: str
) -> None:
    pool = make_async_pool(kind, log_max_entries=3)
    for i in range(5):
        await pool.append("doc", "user", f"earlier {i}")
    turn = await pool.run("doc", "question")  # the pool's first thread is created now
    held = await held_by(thread_pool_async_openai_client, kind, turn.thread_id)
    assert held == [
        ("user", retention_marker((1, 2))["content"]),
        *(("user", f"earlier {i}") for i in range(2, 5)),
        ("user", "question"),
        ("assistant", turn.reply),
    ]


@pytest.mark.parametrize("kind", KINDS)
async def test_a_callable_merge_policy_decides_everything_a_thread_receives(
    make_async_pool: AsyncMakePool, thread_pool_async_openai_client: openai.AsyncOpenAI, kind: str
) -> None:
    seen: list[list[int]] = []

    async def recap(entries: Sequence[LogEntry]) -> list[dict[str, str]]:
        seen.append([e.seq for e in entries])
        text = " | ".join(f"{e.role}: {e.content}" for e in entries)
        return [{"role": "user", "content": f"(recap) {text}"}]

    # The merge limits apply only to the built-in policy: the callable gets all missing entries.
    pool = make_async_pool(kind, max_size=2, merge=recap, merge_max_entries=1)
    async with pool.lease("doc") as a, pool.lease("doc") as b:
        await a.run("on a")
        await pool.append("doc", "user", "appended")
        await b.run("on b")
        held = await held_by(thread_pool_async_openai_client, kind, b.thread_id)
    log = await pool.history("doc")
    assert seen == [[1, 2, 3]]  # a had nothing missing: the policy is not called for nothing
    assert held[0] == (
        "user",
        f"(recap) user: on a | assistant: {log[1].content} | user: appended",
    )
    assert held[1] == ("user", "on b")
    assert len(held) == 3

    def bad(entries: Sequence[LogEntry]) -> str:
        return "not a list"

    pool = make_async_pool(kind, merge=bad)
    await pool.append("other", "user", "x")
    with pytest.raises(InvalidArgument, match="merge must return a list of messages"):
        await pool.run("other", "question")


def test_an_async_callback_given_to_the_sync_pool_is_named_in_the_error() -> None:
    async def summarise(entries: Sequence[LogEntry]) -> list[dict[str, str]]:
        return []

    for name in ("compact", "merge", "tool_handler"):
        with pytest.raises(InvalidArgument, match=f"^an async {name} needs AsyncThreadPool"):
            call_handler(summarise, [], name=name)
