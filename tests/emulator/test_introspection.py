"""The /_emulator API: counters, peaks, write logs with metadata, runtime configuration, reset."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import openai
import pytest

from tests.support import rawhttp
from thread_pool.emulator import EmulatorServer, start_emulator

pytestmark = pytest.mark.filterwarnings(
    # The SDK's Assistants methods warn at the caller's line; this module uses them on purpose.
    r"ignore:(The Assistants API is deprecated|deprecated$):DeprecationWarning"
)


def test_writes_carry_metadata_in_order(
    thread_pool_openai_client: openai.OpenAI, thread_pool_emulator: EmulatorServer
) -> None:
    client = thread_pool_openai_client
    assistant = client.beta.assistants.create(model="gpt-4o")
    thread = client.beta.threads.create(metadata={"tp_fence": "1"})
    for fence in (2, 3, 4):
        client.beta.threads.runs.create_and_poll(
            thread_id=thread.id,
            assistant_id=assistant.id,
            additional_messages=[
                {"role": "user", "content": f"turn {fence}", "metadata": {"tp_fence": str(fence)}}
            ],
            metadata={"tp_fence": str(fence)},
        )
    writes = thread_pool_emulator.admin.writes(thread.id)
    assert [w["op"] for w in writes] == ["thread.create"] + ["message.create", "run.create"] * 3
    fences = [int(w["metadata"]["tp_fence"]) for w in writes if w["op"] != "message.create"]
    assert fences == [1, 2, 3, 4]
    assert [w["seq"] for w in writes] == sorted(w["seq"] for w in writes)
    assert {"seq", "at", "op", "object_id", "metadata"} == set(writes[0])
    assert thread_pool_emulator.admin.writes("thread_unknown") == []

    conversation = client.conversations.create(metadata={"tp_fence": "9"})
    client.responses.create(
        model="m", conversation=conversation.id, input="x", metadata={"tp_fence": "10"}
    )
    conversation_writes = thread_pool_emulator.admin.writes(conversation.id)
    assert [(w["op"], w["metadata"]) for w in conversation_writes] == [
        ("conversation.create", {"tp_fence": "9"}),
        ("response.create", {"tp_fence": "10"}),
    ]
    everything = thread_pool_emulator.admin.all_writes()
    assert everything == {thread.id: writes, conversation.id: conversation_writes}


def test_objects_lists_what_exists_with_its_metadata(
    thread_pool_openai_client: openai.OpenAI, thread_pool_emulator: EmulatorServer
) -> None:
    client = thread_pool_openai_client
    kept = client.beta.threads.create(metadata={"tp_pool": "doc"})
    gone = client.beta.threads.create()
    conversation = client.conversations.create(metadata={"tp_pool": "user:1"})
    client.beta.threads.delete(gone.id)
    assert thread_pool_emulator.admin.objects() == {
        "threads": {kept.id: {"tp_pool": "doc"}},
        "conversations": {conversation.id: {"tp_pool": "user:1"}},
    }


async def test_stats_count_requests_and_concurrency(
    thread_pool_async_openai_client: openai.AsyncOpenAI, thread_pool_emulator: EmulatorServer
) -> None:
    client = thread_pool_async_openai_client
    thread_pool_emulator.emulator.configure(latency=0.3)
    assistant = await client.beta.assistants.create(model="gpt-4o")
    threads = [await client.beta.threads.create() for _ in range(5)]
    await asyncio.gather(
        *(client.beta.threads.runs.create(t.id, assistant_id=assistant.id) for t in threads)
    )
    conversations = [await client.conversations.create() for _ in range(4)]
    await asyncio.gather(
        *(client.responses.create(model="m", conversation=c.id, input="x") for c in conversations)
    )
    stats = thread_pool_emulator.admin.stats()
    assert stats["requests"]["POST /v1/threads"] == 5
    assert stats["requests"]["POST /v1/threads/{thread_id}/runs"] == 5
    assert stats["requests"]["POST /v1/responses"] == 4
    assert stats["requests_total"] == 1 + 5 + 5 + 4 + 4
    assert stats["statuses"] == {"200": 19}
    assert stats["objects"]["threads"] == 5
    assert stats["peak_concurrent_runs"] == 5
    assert stats["peak_concurrent_responses"] == 4
    assert stats["peak_in_flight"] >= 4  # the four synchronous responses overlapped
    assert stats["peak_active_per_owner"] == 1
    assert stats["owners_over_one"] == []
    assert len(thread_pool_emulator.admin.peaks()) == 9


def test_configure_and_reset_over_http(thread_pool_emulator: EmulatorServer) -> None:
    admin = thread_pool_emulator.admin
    config = admin.configure(latency="0.1-0.2", fault_rate=0.3, seed=4)
    assert (config["latency_min"], config["latency_max"], config["seed"]) == (0.1, 0.2, 4)
    assert config["http_500"] == pytest.approx(0.1)
    assert admin.config() == config
    with pytest.raises(ValueError, match="http_500"):
        admin.configure(http_500=2)
    with pytest.raises(ValueError, match="unexpected keyword"):
        admin.configure(bogus=1)
    rawhttp.request("POST", thread_pool_emulator.base_url + "/threads", b"{}")
    assert admin.stats()["requests_total"] == 1
    restored = admin.reset()
    assert (restored["latency_min"], restored["http_500"]) == (0.02, 0.0)
    assert admin.stats()["requests_total"] == 0
    assert admin.stats()["objects"]["threads"] == 0


def test_in_process_server_lifecycle() -> None:
    with start_emulator(latency=0.01, api_key="sk-abc-123456789") as server:
        assert server.base_url == f"http://127.0.0.1:{server.port}/v1"
        assert server.api_key == "sk-abc-123456789"
        assert server.admin.health()
        client = openai.OpenAI(base_url=server.base_url, api_key=server.api_key, max_retries=0)
        with client:
            assert client.conversations.create().object == "conversation"
        port = server.port
    with pytest.raises(OSError, match="Connection refused"):  # stopped: nothing listens
        rawhttp.request("GET", f"http://127.0.0.1:{port}/_emulator/health")


def test_command_line_prints_the_base_url() -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "thread_pool.emulator",
            "--port",
            "0",
            "--latency",
            "0.01-0.02",
            "--seed",
            "3",
            "--fault-rate",
            "0.0",
            "--api-key",
            "sk-cli-key-0001",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("emulator listening; base_url=http://127.0.0.1:")
        base_url = line.strip().split("base_url=")[1]
        client = openai.OpenAI(base_url=base_url, api_key="sk-cli-key-0001", max_retries=0)
        with client:
            response = client.responses.create(model="m", input="hello")
        assert response.output_text.startswith("[emulator] re msg_")
        config = rawhttp.request("GET", base_url.removesuffix("/v1") + "/_emulator/config").body
        assert (config["latency_min"], config["latency_max"], config["seed"]) == (0.01, 0.02, 3)
        assert config["api_key"] == "***"
    finally:
        process.terminate()
        process.wait(10)
        if process.stdout is not None:
            process.stdout.close()
