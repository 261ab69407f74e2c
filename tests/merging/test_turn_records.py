"""What a turn records: its reply read by run (whatever the server's filter does), its tool calls
kept and merged into sibling threads, and the caps that keep one turn from flooding the log.
Everything a thread holds is read back through the SDK, as the emulator stored it."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import openai
import pytest

from tests.support.pools import AsyncMakePool
from tests.support.upstream import tools_for
from thread_pool import AsyncLease, ToolCall
from thread_pool._model.record import TOOL_ROLE, turn_entries
from thread_pool._model.turns import Turn
from thread_pool.emulator import parse_reply

pytestmark = pytest.mark.filterwarnings(
    r"ignore:(The Assistants API is deprecated|deprecated$):DeprecationWarning"
)

KINDS = ["assistants", "conversations"]
TWO_CALLS = 'call:ping({"n": 1}) and call:ping({"n": 2})'


def pong(call: ToolCall) -> dict[str, str]:
    return {"answer": f"pong {call.args()['n']}"}


async def held_items(client: openai.AsyncOpenAI, kind: str, thread_id: str) -> list[Any]:
    """Every message (or conversation item) the thread holds upstream, oldest first."""
    if kind == "assistants":
        messages = client.beta.threads.messages.list(thread_id, order="asc", limit=100)
        return [m async for m in messages]
    items = client.conversations.items.list(thread_id, order="asc", limit=100)
    return [i async for i in items]


def text_of(message: Any) -> str:
    return "".join(p.text.value for p in message.content if p.type == "text")


# -- replies read by run -------------------------------------------------------------------------


@pytest.mark.thread_pool_emulator(ignore_run_id=True)
async def test_replies_stay_the_runs_own_when_the_server_ignores_the_run_filter(
    make_async_pool: AsyncMakePool, thread_pool_async_openai_client: openai.AsyncOpenAI
) -> None:
    pool = make_async_pool("assistants", max_size=3)

    async def worker(w: int) -> list[str]:
        replies = []
        for i in range(4):
            async with pool.lease("doc", timeout=30) as held:
                replies.append((await held.run(f"worker {w} turn {i}")).reply)
        return replies

    replies = [r for rs in await asyncio.gather(*(worker(w) for w in range(3))) for r in rs]
    # The server really ignores the filter: asking for one run's messages lists them all.
    log = await pool.history("doc")
    thread = log[-1].origin
    page = await thread_pool_async_openai_client.beta.threads.messages.list(
        thread, run_id=log[-1].run_id, limit=100
    )
    assert len(page.data) > 1
    # Each reply is its run's one message, and the log holds each turn's two entries only.
    for reply in replies:
        parse_reply(reply)  # one emulator reply, nothing joined to it
    assert len(log) == 24
    assert sorted(e.content for e in log if e.role == "assistant") == sorted(replies)
    assert sum(len(e.content) for e in log) < 24 * 200


# -- tool calls kept and merged ------------------------------------------------------------------


async def two_threads(pool: Any) -> tuple[AsyncLease, AsyncLease]:
    first = await pool.acquire("doc", timeout=30)
    second = await pool.acquire("doc", timeout=30)
    assert first.thread_id != second.thread_id
    return first, second


@pytest.mark.parametrize("kind", KINDS)
async def test_a_turns_tool_calls_are_listed_and_reach_a_sibling_once_in_order(
    make_async_pool: AsyncMakePool, thread_pool_async_openai_client: openai.AsyncOpenAI, kind: str
) -> None:
    pool = make_async_pool(kind, max_size=2)
    first, second = await two_threads(pool)
    turn = await first.run(TWO_CALLS, tool_handler=pong, tools=tools_for(kind))
    outputs = ['{"answer": "pong 1"}', '{"answer": "pong 2"}']
    assert [(c.name, c.args(), c.output) for c in turn.tool_calls] == [
        ("ping", {"n": 1}, outputs[0]),
        ("ping", {"n": 2}, outputs[1]),
    ]
    assert len({c.id for c in turn.tool_calls}) == 2
    # The log keeps them between the question and the reply.
    log = await pool.history("doc")
    assert [e.role for e in log] == ["user", TOOL_ROLE, TOOL_ROLE, "assistant"]
    # The sibling's next two turns: the first carries the calls, the second nothing again.
    await second.run("next")
    await second.run("and the next")
    await pool.release(first)
    await pool.release(second)
    held = await held_items(thread_pool_async_openai_client, kind, second.thread_id)
    if kind == "conversations":
        calls = [(i.call_id, i.name, i.arguments) for i in held if i.type == "function_call"]
        answers = [(i.call_id, i.output) for i in held if i.type == "function_call_output"]
        assert calls == [(c.id, c.name, c.arguments) for c in turn.tool_calls]
        assert answers == [(c.id, c.output) for c in turn.tool_calls]
        kinds = [i.type for i in held]
        # Each call directly followed by its output, after the question, before the reply.
        assert kinds[:6] == [
            "message",
            "function_call",
            "function_call_output",
            "function_call",
            "function_call_output",
            "message",
        ]
    else:
        texts = [text_of(m) for m in held]
        marked = [t for t in texts if t.startswith("[tool call made on another thread")]
        assert marked == [
            f"[tool call made on another thread of this conversation: ping({c.arguments}) "
            f"returned: {c.output}]"
            for c in turn.tool_calls
        ]
        assert [texts.index(m) for m in marked] == [1, 2]


@pytest.mark.parametrize(("merge_tools", "expected"), [("text", 2), ("none", 0)])
async def test_merge_tools_text_and_none_on_conversations(
    make_async_pool: AsyncMakePool,
    thread_pool_async_openai_client: openai.AsyncOpenAI,
    merge_tools: str,
    expected: int,
) -> None:
    pool = make_async_pool("conversations", max_size=2, merge_tools=merge_tools)
    first, second = await two_threads(pool)
    turn = await first.run(TWO_CALLS, tool_handler=pong, tools=tools_for("conversations"))
    assert len(turn.tool_calls) == 2  # the turn lists them whatever reaches the siblings
    await second.run("next")
    held = await held_items(thread_pool_async_openai_client, "conversations", second.thread_id)
    assert not [i for i in held if i.type.startswith("function_call")]
    texts = ["".join(p.text for p in i.content) for i in held if i.type == "message"]
    assert len([t for t in texts if t.startswith("[tool call made on another")]) == expected
    for lease in (first, second):
        await pool.release(lease)


async def test_a_new_conversation_is_seeded_with_the_calls_as_items(
    make_async_pool: AsyncMakePool, thread_pool_async_openai_client: openai.AsyncOpenAI
) -> None:
    pool = make_async_pool("conversations", max_size=2)
    first = await pool.acquire("doc", timeout=30)
    turn = await first.run(TWO_CALLS, tool_handler=pong, tools=tools_for("conversations"))
    second = await pool.acquire("doc", timeout=30)  # grown now, seeded from the log
    held = await held_items(thread_pool_async_openai_client, "conversations", second.thread_id)
    assert [i.call_id for i in held if i.type == "function_call"] == [c.id for c in turn.tool_calls]
    assert [i.call_id for i in held if i.type == "function_call_output"] == [
        c.id for c in turn.tool_calls
    ]
    for lease in (first, second):
        await pool.release(lease)


# -- caps on what one turn adds ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("caps", "cap_name"),
    [
        ({"log_entry_max_chars": 1_500, "log_turn_max_chars": 100_000}, "log_entry_max_chars"),
        ({"log_entry_max_chars": 100_000, "log_turn_max_chars": 2_500}, "log_turn_max_chars"),
    ],
)
async def test_a_reply_over_a_cap_is_logged_cut_with_a_marker_and_a_warning(
    make_async_pool: AsyncMakePool,
    caplog: pytest.LogCaptureFixture,
    caps: dict[str, int],
    cap_name: str,
) -> None:
    pool = make_async_pool("conversations", max_size=1, **caps)
    big = "x" * 5_000

    def handler(call: ToolCall) -> str:
        return big

    with caplog.at_level(logging.WARNING, logger="thread_pool"):
        async with pool.lease("doc", timeout=30) as held:
            turn = await held.run(
                "call:ping()", tool_handler=handler, tools=tools_for("conversations")
            )
            # The turn itself is whole: the reply quotes the tool's whole output.
            assert big in turn.reply
            assert turn.tool_calls[0].output == big
            assert held.remaining() > 0
    assert [r for r in caplog.records if "cut to fit the log's caps" in r.getMessage()]
    log = await pool.history("doc")
    reply = log[-1]
    assert reply.role == "assistant"
    assert reply.content.endswith("the rest is not in the log]")
    assert cap_name in reply.content
    assert reply.content.startswith(turn.reply[:100])
    assert len(reply.content) <= caps["log_entry_max_chars"]
    assert sum(len(e.content) for e in log) <= caps["log_turn_max_chars"]
    # The lease came back clean: the next turn runs on the same thread, fence one higher.
    async with pool.lease("doc", timeout=30) as again:
        assert again.thread_id == turn.thread_id
        assert (await again.run("after")).fence == turn.fence + 1


def test_turn_entries_keep_message_and_reply_first_and_drop_calls_past_the_budget() -> None:
    calls = tuple(ToolCall(f"c{i}", "f", "{}", "o" * 2_000) for i in range(10))
    turn = Turn("r" * 3_000, "t", "r", "completed", 1, tool_calls=calls)
    entries, cuts = turn_entries("q" * 500, turn, entry_cap=2_000, turn_cap=6_000)
    assert entries[0] == ("user", "q" * 500)
    assert entries[-1][0] == "assistant"
    assert len(entries[-1][1]) == 2_000
    kept = [json.loads(c) for r, c in entries if r == TOOL_ROLE]
    assert sum(len(c) for _, c in entries) <= 6_000
    # Tool entries stay valid calls (their output cut), in order, until the budget runs out.
    assert [k["call_id"] for k in kept] == [f"c{i}" for i in range(len(kept))]
    assert 1 <= len(kept) < 10
    assert {c.role for c in cuts} == {"assistant", TOOL_ROLE}
    assert sum(1 for c in cuts if c.kept == 0) == 10 - len(kept)
