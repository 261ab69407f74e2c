"""examples/fastapi_stream.py over real HTTP (uvicorn): a streamed turn reaches the client as
server-sent events, and clients that hang up mid-stream leave every run ended, every thread
settled and no lock error."""

from __future__ import annotations

import http.client
import importlib.util
import json
import random
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import openai
import pytest
import redis
import uvicorn

from tests.support.evidence import assert_quiet
from tests.support.streams import ACTIVE, run_statuses
from tests.support.upstream import lock_errors
from thread_pool.emulator import EmulatorServer, parse_reply

pytestmark = pytest.mark.filterwarnings(
    r"ignore:(The Assistants API is deprecated|deprecated$):DeprecationWarning"
)

EXAMPLE = Path(__file__).parents[2] / "examples" / "fastapi_stream.py"
KINDS = ["assistants", "conversations"]


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fastapi_stream", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def serve(
    thread_pool_redis_url: str, thread_pool_prefix: str, thread_pool_emulator: EmulatorServer
) -> Iterator[Any]:
    """Start the example app (kind given) on uvicorn in a thread; yields its ``host:port``."""
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(kind: str) -> str:
        example = load_example()
        base_url = thread_pool_emulator.base_url
        app = example.create_app(
            example.backend_factory(kind, base_url, "unused"),
            base_url,
            "unused",
            redis_url=thread_pool_redis_url,
            key_prefix=thread_pool_prefix,
        )
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        servers.append((server, thread))
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "the app did not start"
            time.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        return f"127.0.0.1:{port}"

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(10)


Events = list[tuple[str, Any]]


def chat(address: str, key: str, message: str, limit: int | None = None) -> Events:
    """Ask the app for a streamed turn; read its events (only ``limit`` of them, then hang
    up)."""
    conn = http.client.HTTPConnection(address, timeout=30)
    try:
        conn.request("GET", f"/chat/{key}?message={urllib.parse.quote(message)}")
        response = conn.getresponse()
        assert response.status == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        return read_events(response, limit)
    finally:
        conn.close()


def read_events(response: http.client.HTTPResponse, limit: int | None) -> Events:
    """Server-sent events from ``response`` (at most ``limit``)."""
    events: Events = []
    name = None
    while limit is None or len(events) < limit:
        line = response.readline().decode()
        if not line:
            break
        if line.startswith("event: "):
            name = line[7:].strip()
        elif line.startswith("data: "):
            events.append((str(name), json.loads(line[6:])))
    return events


@pytest.mark.parametrize("kind", KINDS)
def test_the_app_streams_a_pooled_turn_as_server_sent_events(
    serve: Any,
    thread_pool_emulator: EmulatorServer,
    redis_client: redis.Redis,
    thread_pool_prefix: str,
    kind: str,
) -> None:
    address = serve(kind)
    first = chat(address, "doc", "hello there, tell me more")
    second = chat(address, "doc", "and then?")
    for events in (first, second):
        assert [name for name, _ in events][-1] == "done"
        assert sum(name == "delta" for name, _ in events) > 1
        assert "error" not in [name for name, _ in events]
    text = "".join(data["text"] for name, data in second if name == "delta")
    # The second turn saw the first (its thread holds the whole conversation).
    assert parse_reply(text).count == 3
    assert lock_errors(thread_pool_emulator) == 0
    assert_quiet(redis_client, thread_pool_prefix, "doc", threads=1)


@pytest.mark.slow
@pytest.mark.thread_pool_emulator(latency="0.3-0.6")
@pytest.mark.parametrize("kind", KINDS)
def test_clients_that_hang_up_mid_stream_leave_runs_ended_and_threads_settled(
    serve: Any,
    thread_pool_emulator: EmulatorServer,
    thread_pool_openai_client: openai.OpenAI,
    redis_client: redis.Redis,
    thread_pool_prefix: str,
    kind: str,
) -> None:
    address = serve(kind)
    rng = random.Random(f"hang-up-{kind}")
    for trial in range(20):
        # The client reads a few events and goes away. At least one: the app sends its first
        # event once it holds a lease, so the quiet pool seen next is the one this trial left
        # (a client gone at once may be noticed after the check below, on a loaded machine, and
        # its turn then overlaps the next trial's and grows the pool).
        chat(address, "doc", f"trial {trial} " + "words " * 20, limit=rng.randrange(1, 8))
        # The app notices, stops the turn and gives the thread back settled.
        deadline = time.monotonic() + 10
        while True:
            try:
                assert_quiet(redis_client, thread_pool_prefix, "doc", threads=1)
                break
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
    kinds = "threads" if kind == "assistants" else "conversations"
    for owner in thread_pool_emulator.admin.objects()[kinds]:
        statuses = run_statuses(thread_pool_emulator, thread_pool_openai_client, owner)
        assert not ACTIVE.intersection(statuses.values()), statuses
        # Hung up while their runs still ran: cancelled.
        assert list(statuses.values()).count("cancelled") >= 10, statuses
    events = chat(address, "doc", "still there?")
    assert events[-1][0] == "done"
    assert lock_errors(thread_pool_emulator) == 0
