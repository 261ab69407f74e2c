"""OpenAI Agents SDK runs on one pooled conversation: several runs of an agent with a function
tool at once on one key, over a pool of two conversations (each run leases one with keepalive),
none meeting a locked conversation; then a follow-up run that sees every earlier turn, made on
either conversation.

    .venv/bin/python examples/agents_example.py [--runs 4] [--json]

Starts the emulator for itself (the Agents SDK is pointed at it); needs the Redis of
``THREAD_POOL_REDIS_URL`` (default 127.0.0.1:6379), whose keys it deletes afterwards.
Needs ``pip install 'openai-thread-pool[agents,emulator]'``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import uuid

import openai
from agents import (
    Agent,
    OpenAIResponsesModel,
    function_tool,
    set_default_openai_client,
    set_tracing_disabled,
)

from thread_pool import AsyncConversationsBackend, AsyncThreadPool, PoolAdmin, UnknownPool
from thread_pool.emulator import parse_reply, start_emulator
from thread_pool.integrations.agents import run_agent


@function_tool
def get_weather(city: str) -> str:
    """The weather in ``city``."""
    return f"sunny in {city}"


async def main(base_url: str, prefix: str, runs: int) -> dict[str, object]:
    client = openai.AsyncOpenAI(base_url=base_url, api_key="unused")
    # The Agents SDK talks to the same upstream as the pool, and sends no traces anywhere.
    set_default_openai_client(client, use_for_tracing=False)
    set_tracing_disabled(True)
    agent = Agent(
        name="weather",
        instructions="Answer with the weather of the city asked about.",
        tools=[get_weather],
        model=OpenAIResponsesModel(model="emulated", openai_client=client),
    )
    # An AsyncThreadPool belongs to the event loop it is used on: make it inside that loop.
    async with AsyncThreadPool(
        backend=AsyncConversationsBackend(client, model="emulated"), key_prefix=prefix
    ) as pool:
        await pool.configure("chat-7", max_size=2)
        # The emulator calls the tool when the question says call:get_weather({...}).
        questions = [
            f'Weather in city {i}? call:get_weather({{"city": "city {i}"}})' for i in range(runs)
        ]
        results = await asyncio.gather(*(run_agent(pool, "chat-7", agent, q) for q in questions))
        follow_up = await run_agent(pool, "chat-7", agent, "Which cities were asked about?")
        history = await pool.history("chat-7")
        threads = (await pool.stats("chat-7")).threads
    return {
        "runs": len(results),
        "replies": [str(r.final_output) for r in results],
        "logged_entries": len(history),
        "logged_tool_calls": sum(e.role == "tool" for e in history),
        "conversations": threads,
        # The emulator's reply says how many items the conversation held when it answered.
        "follow_up_saw": parse_reply(str(follow_up.final_output)).count,
    }


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--json", action="store_true", help="print one JSON line of results")
    args = parser.parse_args()
    prefix = f"example-{uuid.uuid4().hex[:8]}"
    server = start_emulator(latency="0.05-0.2", seed=1)
    try:
        result = asyncio.run(main(server.base_url, prefix, args.runs))
        result["lock_errors"] = server.admin.stats()["lock_errors"]["total"]
    finally:
        server.stop()
        with PoolAdmin(key_prefix=prefix) as admin, contextlib.suppress(UnknownPool):
            admin.delete("chat-7", force=True)
    if args.json:
        print(json.dumps(result))
        return
    print(f"{result['runs']} agent runs on one key, over {result['conversations']} conversations:")
    for reply in result["replies"]:  # type: ignore[attr-defined]
        print(f"  {reply}")
    print(f"  log: {result['logged_entries']} entries, {result['logged_tool_calls']} tool calls")
    print(f"  the follow-up run's conversation held {result['follow_up_saw']} items")
    print(f"  lock errors returned by the emulator: {result['lock_errors']}")


if __name__ == "__main__":
    cli()
