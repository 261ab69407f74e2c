"""The one-active-run rule under real concurrency: many callers, one thread, one winner."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest

from thread_pool.emulator import EmulatorServer, expected_reply

pytestmark = pytest.mark.filterwarnings(
    # The SDK's Assistants methods warn at the caller's line; this module uses them on purpose.
    r"ignore:(The Assistants API is deprecated|deprecated$):DeprecationWarning"
)


@pytest.mark.thread_pool_emulator(latency=30)
def test_threads_racing_for_one_thread(
    thread_pool_openai_client: openai.OpenAI, thread_pool_emulator: EmulatorServer
) -> None:
    client = thread_pool_openai_client
    assistant = client.beta.assistants.create(model="gpt-4o")
    thread = client.beta.threads.create()
    callers = 24
    barrier = threading.Barrier(callers)

    def attempt(_: int) -> str | openai.BadRequestError:
        barrier.wait()
        try:
            return client.beta.threads.runs.create(thread.id, assistant_id=assistant.id).id
        except openai.BadRequestError as error:
            return error

    with ThreadPoolExecutor(callers) as pool:
        results = list(pool.map(attempt, range(callers)))
    winners = [r for r in results if isinstance(r, str)]
    losers = [r for r in results if isinstance(r, openai.BadRequestError)]
    assert len(winners) == 1
    assert len(losers) == callers - 1
    for error in losers:
        assert error.body == {
            "message": f"Thread {thread.id} already has an active run {winners[0]}.",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    stats = thread_pool_emulator.admin.stats()
    assert stats["lock_errors"]["run"] == callers - 1
    assert thread_pool_emulator.admin.peaks() == {thread.id: 1}


@pytest.mark.thread_pool_emulator(latency=30)
async def test_tasks_racing_for_one_thread_and_one_conversation(
    thread_pool_async_openai_client: openai.AsyncOpenAI, thread_pool_emulator: EmulatorServer
) -> None:
    client = thread_pool_async_openai_client
    assistant = await client.beta.assistants.create(model="gpt-4o")
    thread = await client.beta.threads.create()
    conversation = await client.conversations.create()

    async def run() -> str | None:
        try:
            return (await client.beta.threads.runs.create(thread.id, assistant_id=assistant.id)).id
        except openai.BadRequestError:
            return None

    async def respond() -> str | None:
        try:
            created = await client.responses.create(
                model="m", conversation=conversation.id, input="x", background=True
            )
        except openai.BadRequestError as error:
            return str(error.code)
        return created.id

    results = await asyncio.gather(*(run() for _ in range(40)), *(respond() for _ in range(40)))
    assert sum(r is not None for r in results[:40]) == 1
    responded = [r for r in results[40:] if r != "conversation_locked"]
    assert len(responded) == 1
    assert str(responded[0]).startswith("resp_")
    stats = thread_pool_emulator.admin.stats()
    assert stats["lock_errors"] == {"run": 39, "message": 0, "conversation": 39, "total": 78}
    assert thread_pool_emulator.admin.peaks() == {thread.id: 1, conversation.id: 1}


def test_churn_keeps_one_run_per_thread_and_consistent_replies(
    thread_pool_openai_client: openai.OpenAI, thread_pool_emulator: EmulatorServer
) -> None:
    client = thread_pool_openai_client
    assistant = client.beta.assistants.create(model="gpt-4o")
    threads = [client.beta.threads.create().id for _ in range(3)]
    deadline = time.monotonic() + 1.5
    completed = 0
    lock = threading.Lock()

    def worker(index: int) -> None:
        nonlocal completed
        thread_id = threads[index % len(threads)]
        while time.monotonic() < deadline:
            try:
                run = client.beta.threads.runs.create(
                    thread_id,
                    assistant_id=assistant.id,
                    additional_messages=[{"role": "user", "content": f"w{index}"}],
                )
            except openai.BadRequestError:
                continue
            if client.beta.threads.runs.poll(run.id, thread_id=thread_id).status == "completed":
                with lock:
                    completed += 1

    with ThreadPoolExecutor(9) as pool:
        list(pool.map(worker, range(9)))
    assert completed >= 10
    assert set(thread_pool_emulator.admin.peaks().values()) == {1}
    for thread_id in threads:
        messages = list(client.beta.threads.messages.list(thread_id, order="asc", limit=100))
        entries: list[tuple[str, str]] = []
        for message in messages:
            text = message.content[0].text.value  # type: ignore[union-attr]
            if message.role == "assistant":
                # Each reply saw exactly the messages before it: nothing slipped in mid-run.
                answered = messages[len(entries) - 1].id if entries else None
                assert text == expected_reply(answered, entries)
            entries.append((message.role, text))
