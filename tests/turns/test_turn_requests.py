"""How many upstream requests an Assistants turn costs: streamed, one to start it and one per
tool-output round (no polls, no reply read); against a server that refuses or ignores
``stream``, the turn falls back to polling and says the same."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import openai
import pytest

from tests.support.upstream import ASSISTANT_TOOLS, lock_errors, make_backend
from thread_pool import AsyncThreadPool
from thread_pool._async.assistants import AsyncAssistantsBackend
from thread_pool._model.run_progress import RunProgress, streamed_reply
from thread_pool._model.turns import usage_of
from thread_pool.emulator import EmulatorServer, parse_reply
from thread_pool.emulator.config import ConfigError, EmulatorConfig

pytestmark = pytest.mark.filterwarnings(
    r"ignore:(The Assistants API is deprecated|deprecated$):DeprecationWarning"
)

RUNS = "POST /v1/threads/{thread_id}/runs"
SUBMIT = "POST /v1/threads/{thread_id}/runs/{run_id}/submit_tool_outputs"
RETRIEVE = "GET /v1/threads/{thread_id}/runs/{run_id}"
MESSAGES = "GET /v1/threads/{thread_id}/messages"


@pytest.fixture
async def pool(
    thread_pool_redis_url: str,
    thread_pool_prefix: str,
    thread_pool_emulator: EmulatorServer,
    thread_pool_async_openai_client: openai.AsyncOpenAI,
) -> AsyncIterator[AsyncThreadPool]:
    backend = make_backend("assistants", thread_pool_async_openai_client, thread_pool_emulator)
    made = AsyncThreadPool(
        backend=backend, redis_url=thread_pool_redis_url, key_prefix=thread_pool_prefix
    )
    yield made
    await made.aclose()


def requests(server: EmulatorServer) -> Counter[str]:
    return Counter(server.admin.stats()["requests"])


async def own_messages(client: openai.AsyncOpenAI, thread_id: str, run_id: str) -> list[str]:
    """The thread's assistant messages of ``run_id``, as the thread itself holds them."""
    page = await client.beta.threads.messages.list(thread_id, order="asc", limit=100)
    return [
        part.text.value
        for m in page.data
        if m.run_id == run_id and m.role == "assistant"
        for part in m.content
        if part.type == "text"
    ]


async def test_a_streamed_turn_is_one_request_and_one_per_tool_round(
    pool: AsyncThreadPool,
    thread_pool_emulator: EmulatorServer,
    thread_pool_async_openai_client: openai.AsyncOpenAI,
) -> None:
    await pool.run("doc", "warm up")  # makes the thread
    before = requests(thread_pool_emulator)
    turn = await pool.run("doc", "hello")
    assert requests(thread_pool_emulator) - before == Counter({RUNS: 1})
    # The reply came from the run's events, and it is what the thread holds.
    assert turn.reply == "\n".join(
        await own_messages(thread_pool_async_openai_client, turn.thread_id, turn.run_id)
    )
    assert parse_reply(turn.reply).count == 3  # warm-up, its reply, this message
    assert turn.usage["total_tokens"] > 0

    before = requests(thread_pool_emulator)
    tool_turn = await pool.run(
        "doc", "call:ping()", tool_handler=lambda call: "pong", tools=ASSISTANT_TOOLS
    )
    assert requests(thread_pool_emulator) - before == Counter({RUNS: 1, SUBMIT: 1})
    assert parse_reply(tool_turn.reply).tool_outputs == ("pong",)
    assert lock_errors(thread_pool_emulator) == 0


@pytest.mark.parametrize("streaming", ["on", "refused"])
async def test_a_turn_tells_what_upstream_holds_streamed_or_polled(
    pool: AsyncThreadPool,
    thread_pool_emulator: EmulatorServer,
    thread_pool_async_openai_client: openai.AsyncOpenAI,
    streaming: str,
) -> None:
    # Streamed, the turn is read from the run's events as plain JSON; polled, from the SDK's
    # models: either way its reply, usage and tool calls are upstream's own. JSON carries U+2028,
    # U+2029 and U+0085 unescaped, and an event's line does not end there (str.splitlines would).
    thread_pool_emulator.admin.configure(run_streaming=streaming)
    client = thread_pool_async_openai_client
    seen: list[tuple[str, str]] = []

    def handler(call: Any) -> str:
        seen.append((call.name, call.arguments))
        return f"pong\u2028{len(seen)}"

    message = 'call:ping({"n": 1}) and call:ping({"n": 2, "s": "\u00e9\u0085\u2029"})'
    turn = await pool.run(
        "doc",
        message,
        tool_handler=handler,
        tools=ASSISTANT_TOOLS,
        instructions="Be brief.\u2028Be kind.",
    )
    run = await client.beta.threads.runs.retrieve(turn.run_id, thread_id=turn.thread_id)
    assert (turn.status, run.status) == ("completed", "completed")
    assert turn.usage == usage_of(run)
    assert turn.usage["total_tokens"] > 0
    assert turn.reply == "\n".join(await own_messages(client, turn.thread_id, turn.run_id))
    assert parse_reply(turn.reply).tool_outputs == ("pong\u20281", "pong\u20282")
    assert [(c.name, json.loads(c.arguments)) for c in turn.tool_calls] == [
        ("ping", {"n": 1}),
        ("ping", {"n": 2, "s": "\u00e9\u0085\u2029"}),
    ]
    assert [(c.name, c.arguments) for c in turn.tool_calls] == seen
    assert [c.output for c in turn.tool_calls] == ["pong\u20281", "pong\u20282"]
    assert len({c.id for c in turn.tool_calls}) == 2
    assert all(c.id for c in turn.tool_calls)
    assert lock_errors(thread_pool_emulator) == 0


@pytest.mark.parametrize("mode", ["refused", "ignored"])
async def test_a_server_that_does_not_stream_is_polled(
    pool: AsyncThreadPool,
    thread_pool_emulator: EmulatorServer,
    thread_pool_async_openai_client: openai.AsyncOpenAI,
    mode: str,
) -> None:
    # ignore_run_id too: the polled reply still keeps to this run's own messages.
    thread_pool_emulator.admin.configure(run_streaming=mode, ignore_run_id=True)
    backend = pool.backend
    assert isinstance(backend, AsyncAssistantsBackend)
    first = await pool.run("doc", "hello")
    assert parse_reply(first.reply).count == 1
    assert backend.streams is False  # found out once, then polled without asking again

    before = requests(thread_pool_emulator)
    turn = await pool.run(
        "doc", "call:ping()", tool_handler=lambda call: "pong", tools=ASSISTANT_TOOLS
    )
    made = requests(thread_pool_emulator) - before
    assert (made[RUNS], made[SUBMIT], made[MESSAGES]) == (1, 1, 1)
    assert made[RETRIEVE] >= 1  # polled
    assert parse_reply(turn.reply).tool_outputs == ("pong",)
    assert turn.reply == "\n".join(
        await own_messages(thread_pool_async_openai_client, turn.thread_id, turn.run_id)
    )
    assert lock_errors(thread_pool_emulator) == 0


async def test_a_refused_stream_started_nothing_and_the_turn_goes_on(
    pool: AsyncThreadPool, thread_pool_emulator: EmulatorServer
) -> None:
    thread_pool_emulator.admin.configure(run_streaming="refused")
    turns = [await pool.run("doc", f"question {i}") for i in range(2)]
    # One run per turn upstream: the refused request made none.
    assert [parse_reply(t.reply).count for t in turns] == [1, 3]
    assert len({t.run_id for t in turns}) == 2
    assert lock_errors(thread_pool_emulator) == 0


def message(role: str, run_id: str | None, text: str) -> Any:
    part = SimpleNamespace(type="text", text=SimpleNamespace(value=text))
    return SimpleNamespace(role=role, run_id=run_id, content=[part])


def test_a_streamed_reply_keeps_to_its_own_run() -> None:
    progress = RunProgress(
        messages=[
            message("assistant", "run_other", "not mine"),
            message("assistant", "run_1", "mine"),
            message("user", "run_1", "a question"),
            message("assistant", None, "unnamed, so the stream's own"),
        ]
    )
    assert streamed_reply(progress, "run_1") == "mine\nunnamed, so the stream's own"
    assert streamed_reply(RunProgress(messages=[message("assistant", "x", "y")]), "run_1") is None
    progress.polled = True
    assert streamed_reply(progress, "run_1") is None  # read from the thread instead


def test_run_streaming_is_validated() -> None:
    with pytest.raises(ConfigError, match="run_streaming"):
        EmulatorConfig(run_streaming="sometimes")
