"""Turns from many processes at once, crashes and pauses: the emulator (served by this test
process over HTTP) must never see a lock error or two active runs on one thread."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import openai
import pytest
import redis

from tests.support import workers
from tests.support.evidence import assert_one_run_at_a_time, assert_quiet, fences_of
from tests.support.sync_helpers import eventually
from tests.support.upstream import backend, lock_errors, make_assistant
from tests.support.workers import READY, TURNS, Site, check_key, join, start
from thread_pool import ThreadPool
from thread_pool.emulator import EmulatorServer

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings(
        r"ignore:(The Assistants API is deprecated|deprecated$):DeprecationWarning"
    ),
]


@pytest.fixture
def site(
    thread_pool_emulator: EmulatorServer, thread_pool_redis_url: str, thread_pool_prefix: str
) -> Site:
    return Site(
        base_url=thread_pool_emulator.base_url,
        api_key=thread_pool_emulator.api_key or "unused",
        assistant_id=make_assistant(thread_pool_emulator),
        redis_url=thread_pool_redis_url,
        prefix=thread_pool_prefix,
    )


def _results(redis_client: redis.Redis, prefix: str) -> list[str]:
    return [str(x) for x in redis_client.lrange(check_key(prefix, TURNS), 0, -1)]


def test_five_processes_ten_turns_each_on_one_key_all_succeed(
    site: Site,
    thread_pool_emulator: EmulatorServer,
    redis_client: redis.Redis,
    thread_pool_prefix: str,
) -> None:
    # The measured scenario (5 of 50 succeeded with one shared thread), now with the pool.
    args = (site, "assistants", "doc", 10, {"acquire_timeout": 60})
    join([start(workers.run_turns, *args) for _ in range(5)])

    results = _results(redis_client, thread_pool_prefix)
    assert len(results) == 50
    assert all(r.startswith("ok ") for r in results), results
    assert_one_run_at_a_time(thread_pool_emulator)
    threads = {r.split()[2] for r in results}
    assert 1 <= len(threads) <= 5
    for thread_id in threads:
        fences = fences_of(thread_pool_emulator, thread_id)
        assert fences == sorted(fences)
    assert_quiet(redis_client, thread_pool_prefix, "doc", threads=len(threads))


@pytest.mark.parametrize("kind", ["assistants", "conversations"])
def test_thirty_two_processes_share_a_pool_of_eight(
    site: Site,
    thread_pool_emulator: EmulatorServer,
    redis_client: redis.Redis,
    thread_pool_prefix: str,
    kind: str,
) -> None:
    settings = {"max_size": 8, "acquire_timeout": 120}
    args = (site, kind, "shared", 10, settings)
    join([start(workers.run_turns, *args) for _ in range(32)], timeout=180)

    results = _results(redis_client, thread_pool_prefix)
    assert len(results) == 320
    assert all(r.startswith("ok ") for r in results), [r for r in results if not r.startswith("ok")]
    assert_one_run_at_a_time(thread_pool_emulator)
    threads = {r.split()[2] for r in results}
    assert len(threads) == 8
    for thread_id in threads:
        # Each grant of a thread has its own fence, and its writes come in fence order.
        granted = [int(r.split()[1]) for r in results if r.split()[2] == thread_id]
        assert len(granted) == len(set(granted))
        fences = fences_of(thread_pool_emulator, thread_id)
        assert fences == sorted(fences)
    assert_quiet(redis_client, thread_pool_prefix, "shared", threads=8)


# One thread, so the next turn must use the thread the stalled holder had.
SHORT_LEASES: dict[str, Any] = {
    "lease_ttl": 1.0,
    "renew_margin": 0.5,
    "acquire_timeout": 30,
    "max_size": 1,
}


def _pool(kind: str, site: Site, client: openai.OpenAI) -> ThreadPool:
    return ThreadPool(
        backend=backend(kind, client, site.assistant_id, settle_wait=0.2),
        redis_url=site.redis_url,
        key_prefix=site.prefix,
        **SHORT_LEASES,
    )


@pytest.mark.parametrize("kind", ["assistants", "conversations"])
def test_a_holder_killed_mid_turn_leaves_a_thread_the_next_turn_can_use(
    site: Site,
    thread_pool_emulator: EmulatorServer,
    thread_pool_openai_client: openai.OpenAI,
    redis_client: redis.Redis,
    thread_pool_prefix: str,
    kind: str,
) -> None:
    ready = check_key(thread_pool_prefix, READY)
    proc = start(workers.stall_in_tool_call, site, kind, "doc", SHORT_LEASES, 600.0)
    eventually(lambda: bool(redis_client.exists(ready)), timeout=20.0)
    os.kill(proc.pid or 0, signal.SIGKILL)
    proc.join()
    thread_id, fence = str(redis_client.get(ready)).split()

    with _pool(kind, site, thread_pool_openai_client) as pool:
        # Waits out the dead holder's lease, settles its run, then runs.
        turn = pool.run("doc", "after the crash")
        stats = pool.stats("doc")
    assert turn.thread_id == thread_id
    assert turn.fence == int(fence) + 1
    assert stats.reaped == 1
    assert stats.lock_errors == 0
    assert lock_errors(thread_pool_emulator) == 0
    assert_quiet(redis_client, thread_pool_prefix, "doc", threads=1)


@pytest.mark.parametrize("kind", ["assistants", "conversations"])
def test_a_paused_holder_gets_lease_lost_and_writes_nothing_after_expiry(
    site: Site,
    thread_pool_emulator: EmulatorServer,
    thread_pool_openai_client: openai.OpenAI,
    redis_client: redis.Redis,
    thread_pool_prefix: str,
    kind: str,
) -> None:
    ready = check_key(thread_pool_prefix, READY)
    proc = start(workers.stall_in_tool_call, site, kind, "doc", SHORT_LEASES, 0.3)
    eventually(lambda: bool(redis_client.exists(ready)), timeout=20.0)
    os.kill(proc.pid or 0, signal.SIGSTOP)
    stopped_at = time.time()
    try:
        time.sleep(SHORT_LEASES["lease_ttl"] + 0.5)  # past the paused holder's deadline
        with _pool(kind, site, thread_pool_openai_client) as pool:
            turn = pool.run("doc", "while the first holder sleeps")
    finally:
        os.kill(proc.pid or 0, signal.SIGCONT)
    join([proc])
    thread_id, fence = str(redis_client.get(ready)).split()

    results = _results(redis_client, thread_pool_prefix)
    assert len(results) == 1
    assert results[0].startswith("err LeaseLost"), results
    assert turn.thread_id == thread_id
    assert turn.fence == int(fence) + 1
    writes = thread_pool_emulator.admin.writes(thread_id)
    # Writes stamped with the paused holder's fence; a cancel is the settler's (it carries the
    # cancelled run's metadata), not the holder's.
    stale = [
        w
        for w in writes
        if (w.get("metadata") or {}).get("tp_fence") == fence and not w["op"].endswith("cancel")
    ]
    assert stale  # it did write before the pause...
    deadline = stopped_at + SHORT_LEASES["lease_ttl"]
    assert all(w["at"] < deadline for w in stale), writes  # ...and nothing after it expired
    assert "late answer" not in str(writes)
    fences = fences_of(thread_pool_emulator, thread_id)
    assert fences == sorted(fences)
    assert set(fences) == {int(fence), turn.fence}
    assert lock_errors(thread_pool_emulator) == 0
    assert_quiet(redis_client, thread_pool_prefix, "doc", threads=1)


@pytest.mark.thread_pool_emulator(latency=4.0)
def test_a_holder_killed_with_a_background_response_in_flight_has_it_cancelled(
    site: Site,
    thread_pool_emulator: EmulatorServer,
    thread_pool_openai_client: openai.OpenAI,
    redis_client: redis.Redis,
    thread_pool_prefix: str,
) -> None:
    inflight = f"{thread_pool_prefix}:{{doc}}:inflight"
    proc = start(workers.run_turns, site, "background", "doc", 1, SHORT_LEASES)
    # The pool recorded the response in Redis ("fence|id"; "fence|" while its create is on its
    # way): the holder is now waiting for it. Kill it.
    eventually(
        lambda: not str(next(iter(redis_client.hvals(inflight)), "|")).endswith("|"), timeout=20.0
    )
    ((conv_id, record),) = redis_client.hgetall(inflight).items()
    os.kill(proc.pid or 0, signal.SIGKILL)
    proc.join()
    fence, response_id = str(record).split("|")

    thread_pool_emulator.admin.configure(latency=0.02)
    with _pool("conversations", site, thread_pool_openai_client) as pool:
        turn = pool.run("doc", "after the crash")
    # The settler found the response through the record and cancelled it before the next turn.
    assert thread_pool_openai_client.responses.retrieve(response_id).status == "cancelled"
    assert turn.thread_id == conv_id
    assert turn.fence == int(fence) + 1
    assert lock_errors(thread_pool_emulator) == 0
    assert redis_client.hlen(inflight) == 0
    assert_quiet(redis_client, thread_pool_prefix, "doc", threads=1)
