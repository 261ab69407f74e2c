"""The pool on a Conversations server nobody here wrote: llama-stack 0.7.3 on the model stub.

What the model saw is read from the stub (every chat-completions request's messages), never
from the pool. Figures are printed (``-s``) for docs/compatibility.md."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import openai
import pytest

from interop.conftest import ITEM_CAP, MODEL, MakePool, Stub, text_of
from thread_pool import AsyncPoolAdmin, ToolCall, TurnFailed, UpstreamError

BEHIND = 30


def figure(name: str, value: object) -> None:
    print(f"\nFIGURE {name}: {value}", flush=True)


def held(messages: list[dict[str, Any]], text: str) -> int:
    """How many user messages of ``messages`` carry ``text`` (whole, or quoted in a digest;
    the stub's replies quote the question they answer, so they do not count)."""
    return sum(m.get("role") == "user" and text in text_of(m) for m in messages)


async def test_sequential_turns_carry_the_whole_conversation(
    make_pool: MakePool, stub: Stub
) -> None:
    pool = make_pool(max_size=1)
    for n in range(5):
        await pool.run("seq", f"question {n}")
        seen = stub.asked_with(f"question {n}")
        for earlier in range(n + 1):
            assert held(seen, f"question {earlier}") == 1
    assert len(await pool.history("seq")) == 10


async def test_concurrent_turns_on_one_key_reach_every_thread_exactly_once(
    make_pool: MakePool, stub: Stub
) -> None:
    pool = make_pool(max_size=4)
    await asyncio.gather(*(pool.run("conc", f"concurrent {n}") for n in range(8)))
    leases = [await pool.acquire("conc") for _ in range(4)]
    try:
        await asyncio.gather(*(lease.run(f"final {i}") for i, lease in enumerate(leases)))
    finally:
        for lease in leases:
            await pool.release(lease)
    for i in range(len(leases)):
        seen = stub.asked_with(f"final {i}")
        assert [held(seen, f"concurrent {n}") for n in range(8)] == [1] * 8
    history = await pool.history("conc")
    assert len(history) == 2 * (8 + len(leases))


async def test_background_turns_are_logged_once_confirmed(make_pool: MakePool, stub: Stub) -> None:
    pool = make_pool(max_size=2, background=True)
    await asyncio.gather(*(pool.run("bg", f"background {n}") for n in range(4)))
    turn = await pool.run("bg", "background last")
    seen = stub.asked_with("background last")
    assert [held(seen, f"background {n}") for n in range(4)] == [1] * 4
    contents = [e.content for e in await pool.history("bg")]
    assert contents.count("background last") == 1
    assert contents[-1] == turn.reply


async def test_tools_are_answered_and_reach_the_sibling_threads(
    make_pool: MakePool, stub: Stub
) -> None:
    pool = make_pool(max_size=2)
    tools: list[Any] = [{"type": "function", "name": "ping", "parameters": {"type": "object"}}]

    def handler(call: ToolCall) -> str:
        return "pong"

    async with pool.lease("tools") as a, pool.lease("tools") as b:
        turn = await a.run("please call:ping()", tools=tools, tool_handler=handler)
        assert [c.output for c in turn.tool_calls] == ["pong"]
        assert "tool output: pong" in turn.reply
        await b.run("what did the tool say?")
    seen = stub.asked_with("what did the tool say?")
    assert any(m.get("role") == "tool" and "pong" in text_of(m) for m in seen), seen


@pytest.mark.parametrize("background", [False, True])
@pytest.mark.parametrize("caps", [False, True])
async def test_a_thread_far_behind_catches_up_in_one_turn(
    make_pool: MakePool, stub: Stub, caps: bool, background: bool
) -> None:
    # Without the cap the server refuses the request (400; background: completed, then failed)
    # and the pool folds and tries once more; with it the request fits at once.
    pool = make_pool(max_size=1, caps=caps, background=background)
    first = await pool.run("behind", "first")
    for n in range(BEHIND):
        await pool.append("behind", "user", f"note {n}", append_id=f"note-{n}")
    started = time.monotonic()
    turn = await pool.run("behind", "catch up")
    figure(
        f"catch-up caps={caps} background={background}",
        f"1 turn, {time.monotonic() - started:.2f} s",
    )
    assert turn.thread_id == first.thread_id
    seen = stub.asked_with("catch up")
    assert [held(seen, f"note {n}") >= 1 for n in range(BEHIND)] == [True] * BEHIND
    assert (await pool.log.missing("behind", turn.thread_id)).entries == ()
    await pool.run("behind", "after")
    after = stub.asked_with("after")
    assert held(after, "catch up") == 1
    contents = [e.content for e in await pool.history("behind")]
    assert contents.count("catch up") == 1


@pytest.mark.parametrize("how", ["grown", "prewarmed"])
@pytest.mark.parametrize("caps", [False, True])
async def test_a_new_thread_seeded_from_a_30_entry_log(
    make_pool: MakePool,
    stub: Stub,
    thread_pool_redis_url: str,
    thread_pool_prefix: str,
    how: str,
    caps: bool,
) -> None:
    pool = make_pool(caps=caps)
    for n in range(BEHIND):
        await pool.append("seeded", "user", f"note {n}", append_id=f"note-{n}")
    if how == "prewarmed":
        async with AsyncPoolAdmin(
            redis_url=thread_pool_redis_url, key_prefix=thread_pool_prefix
        ) as admin:
            assert pool.backend is not None
            await admin.grow_one("seeded", 1, pool.backend)
    await pool.run("seeded", "what do you know?")
    seen = stub.asked_with("what do you know?")
    present = sum(held(seen, f"note {n}") >= 1 for n in range(BEHIND))
    figure(f"seeding {how} caps={caps}", f"{present}/{BEHIND} entries reached the model")
    if caps:
        assert present == BEHIND


async def test_settling_after_a_timed_out_turn_waits_out_the_refused_cancel(
    make_pool: MakePool, stub: Stub, caplog: pytest.LogCaptureFixture
) -> None:
    pool = make_pool(
        max_size=1, background=True, backend_options={"turn_timeout": 0.5, "settle_timeout": 30}
    )
    await pool.run("slow", "warm up")
    stub.latency(3.0)
    started = time.monotonic()
    with pytest.raises(TurnFailed) as caught:
        await pool.run("slow", "too slow")
    settled = time.monotonic() - started
    figure("settling after 409", f"{settled:.2f} s (turn_timeout 0.5 s, model 3 s)")
    assert caught.value.status == "timed_out"
    assert not [r for r in caplog.records if "settling" in r.getMessage()]
    stub.latency(0.02)
    turn = await pool.run("slow", "next")
    assert turn.fence == 3


def test_the_cli_prewarms_shows_and_deletes_a_pool(
    base_url: str, thread_pool_redis_url: str, thread_pool_prefix: str, tmp_path: Path
) -> None:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "THREAD_POOL_REDIS_URL": thread_pool_redis_url,
        "THREAD_POOL_KEY_PREFIX": thread_pool_prefix,
        "THREAD_POOL_REQUEST_MAX_ITEMS": str(ITEM_CAP),
        "OPENAI_API_KEY": "unused",
        "OPENAI_BASE_URL": base_url,
    }
    command = [os.environ.get("INTEROP_PYTHON", "python"), "-m", "thread_pool.cli"]

    def cli(*args: str) -> str:
        done = subprocess.run(
            [*command, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done.stdout

    assert "3 created" in cli("prewarm", "cli-doc", "--size", "3", "--backend", "conversations")
    assert "cli-doc" in cli("status", "cli-doc")
    cli("delete", "cli-doc", "--backend", "conversations", "--yes")


async def _lost(stub: Stub, messages: list[str], final: str) -> int:
    seen = stub.asked_with(final)
    return sum(held(seen, m) == 0 for m in messages)


async def test_stress_context_lost_without_the_pool_and_with_it(
    make_pool: MakePool, client: openai.AsyncOpenAI, stub: Stub
) -> None:
    turns = 8
    stub.latency(0.3)
    results: dict[str, tuple[int, float]] = {}

    # naive: every worker sends its turn on the one shared conversation.
    conv = await client.conversations.create()
    mine = [f"naive {n}" for n in range(turns)]
    started = time.monotonic()
    await asyncio.gather(
        *(client.responses.create(model=MODEL, conversation=conv.id, input=m) for m in mine)
    )
    elapsed = time.monotonic() - started
    await client.responses.create(model=MODEL, conversation=conv.id, input="naive final")
    results["naive"] = (await _lost(stub, mine, "naive final"), elapsed)

    # lock: the same, one at a time.
    conv = await client.conversations.create()
    lock = asyncio.Lock()
    mine = [f"locked {n}" for n in range(turns)]

    async def locked(message: str) -> None:
        async with lock:
            await client.responses.create(model=MODEL, conversation=conv.id, input=message)

    started = time.monotonic()
    await asyncio.gather(*(locked(m) for m in mine))
    elapsed = time.monotonic() - started
    await client.responses.create(model=MODEL, conversation=conv.id, input="locked final")
    results["lock"] = (await _lost(stub, mine, "locked final"), elapsed)

    # pool: the same turns through a pool of 4 threads, then a last turn.
    pool = make_pool(max_size=4)
    mine = [f"pooled {n}" for n in range(turns)]
    started = time.monotonic()
    await asyncio.gather(*(pool.run("stress", m) for m in mine))
    elapsed = time.monotonic() - started
    await pool.run("stress", "pooled final")
    results["pool"] = (await _lost(stub, mine, "pooled final"), elapsed)

    for name, (lost, seconds) in results.items():
        figure(
            f"stress {name}", f"{lost}/{turns} turns lost from the model's context, {seconds:.2f} s"
        )
    assert results["pool"][0] == 0
    assert results["lock"][0] == 0


async def test_a_streamed_turn_is_refused_by_the_server(make_pool: MakePool, stub: Stub) -> None:
    # llama-stack 0.7.3 refuses stream=true with background=true, which stream() sends (so that
    # a dropped stream can be resumed and a stopped one cancelled): said, not hidden.
    pool = make_pool(max_size=1)

    async def drain() -> None:
        async with pool.stream("streamed", "hello") as events:
            async for _ in events:
                pass

    with pytest.raises(UpstreamError) as caught:
        await drain()
    figure("streaming", f"refused: {caught.value}")
    turn = await pool.run("streamed", "plain turn")
    assert turn.status == "completed"
