"""Turns from many processes at once, crashes and pauses: the emulator (served by this test
process over HTTP) must never see a lock error or two active runs on one thread."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from typing import Any

import openai
import pytest
import redis

from tests.support import turn_workers
from tests.support.evidence import assert_one_run_at_a_time, assert_quiet, fences_of
from tests.support.upstream import lock_errors, make_assistant
from thread_pool import AssistantsBackend, ConversationsBackend, ThreadPool
from thread_pool.emulator import EmulatorServer

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings(
        r"ignore:(The Assistants API is deprecated|deprecated$):DeprecationWarning"
    ),
]

# Workers fork from a server process that imported them (and the SDK) once: 32 processes
# start in a moment instead of importing openai 32 times over.
_ctx = multiprocessing.get_context("forkserver")
_ctx.set_forkserver_preload(["tests.support.turn_workers"])


def _start(target: Any, *args: Any) -> multiprocessing.process.BaseProcess:
    proc = _ctx.Process(target=target, args=args)
    proc.start()
    return proc


def _join(procs: list[multiprocessing.process.BaseProcess], timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    for p in procs:
        p.join(max(0.1, end - time.monotonic()))
        assert p.exitcode == 0, f"worker {p.pid} exited with {p.exitcode}"


def _wait_for(check: Any, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < end, "condition not reached in time"
        time.sleep(0.01)


@pytest.fixture
def common(
    thread_pool_emulator: EmulatorServer, thread_pool_redis_url: str, thread_pool_prefix: str
) -> dict[str, Any]:
    return {
        "base_url": thread_pool_emulator.base_url,
        "api_key": thread_pool_emulator.api_key or "unused",
        "assistant_id": make_assistant(thread_pool_emulator),
        "redis_url": thread_pool_redis_url,
        "prefix": thread_pool_prefix,
    }


def _turn_args(c: dict[str, Any], kind: str) -> tuple[Any, ...]:
    return (kind, c["base_url"], c["api_key"], c["assistant_id"], c["redis_url"], c["prefix"])


def _results(redis_client: redis.Redis, prefix: str) -> list[str]:
    return [str(x) for x in redis_client.lrange(turn_workers.results_key(prefix), 0, -1)]


def test_five_processes_ten_turns_each_on_one_key_all_succeed(
    common: dict[str, Any],
    thread_pool_emulator: EmulatorServer,
    redis_client: redis.Redis,
    thread_pool_prefix: str,
) -> None:
    # The measured scenario (5 of 50 succeeded with one shared thread), now with the pool.
    args = (*_turn_args(common, "assistants"), "doc", 10, {"acquire_timeout": 60})
    _join([_start(turn_workers.run_turns, *args) for _ in range(5)])

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
    common: dict[str, Any],
    thread_pool_emulator: EmulatorServer,
    redis_client: redis.Redis,
    thread_pool_prefix: str,
    kind: str,
) -> None:
    settings = {"max_size": 8, "acquire_timeout": 120}
    args = (*_turn_args(common, kind), "shared", 10, settings)
    _join([_start(turn_workers.run_turns, *args) for _ in range(32)], timeout=180)

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


def _pool(kind: str, c: dict[str, Any], client: openai.OpenAI) -> ThreadPool:
    backend = (
        AssistantsBackend(client, assistant_id=c["assistant_id"], settle_wait=0.2)
        if kind == "assistants"
        else ConversationsBackend(client, model="emulated", settle_wait=0.2)
    )
    return ThreadPool(
        backend=backend, redis_url=c["redis_url"], key_prefix=c["prefix"], **SHORT_LEASES
    )


@pytest.mark.parametrize("kind", ["assistants", "conversations"])
def test_a_holder_killed_mid_turn_leaves_a_thread_the_next_turn_can_use(
    common: dict[str, Any],
    thread_pool_emulator: EmulatorServer,
    thread_pool_openai_client: openai.OpenAI,
    redis_client: redis.Redis,
    thread_pool_prefix: str,
    kind: str,
) -> None:
    ready = f"{thread_pool_prefix}:check:ready"
    proc = _start(
        turn_workers.stall_in_tool_call,
        *_turn_args(common, kind),
        "doc",
        SHORT_LEASES,
        ready,
        600.0,
    )
    _wait_for(lambda: redis_client.exists(ready))
    os.kill(proc.pid or 0, signal.SIGKILL)
    proc.join()
    thread_id, fence = str(redis_client.get(ready)).split()

    with _pool(kind, common, thread_pool_openai_client) as pool:
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
    common: dict[str, Any],
    thread_pool_emulator: EmulatorServer,
    thread_pool_openai_client: openai.OpenAI,
    redis_client: redis.Redis,
    thread_pool_prefix: str,
    kind: str,
) -> None:
    ready = f"{thread_pool_prefix}:check:ready"
    proc = _start(
        turn_workers.stall_in_tool_call,
        *_turn_args(common, kind),
        "doc",
        SHORT_LEASES,
        ready,
        0.3,
    )
    _wait_for(lambda: redis_client.exists(ready))
    os.kill(proc.pid or 0, signal.SIGSTOP)
    stopped_at = time.time()
    try:
        time.sleep(SHORT_LEASES["lease_ttl"] + 0.5)  # past the paused holder's deadline
        with _pool(kind, common, thread_pool_openai_client) as pool:
            turn = pool.run("doc", "while the first holder sleeps")
    finally:
        os.kill(proc.pid or 0, signal.SIGCONT)
    _join([proc])
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
    common: dict[str, Any],
    thread_pool_emulator: EmulatorServer,
    thread_pool_openai_client: openai.OpenAI,
    redis_client: redis.Redis,
    thread_pool_prefix: str,
) -> None:
    inflight = f"{thread_pool_prefix}:{{doc}}:inflight"
    proc = _start(turn_workers.run_turns, *_turn_args(common, "background"), "doc", 1, SHORT_LEASES)
    # The pool recorded the response in Redis ("fence|id"; "fence|" while its create is on its
    # way): the holder is now waiting for it. Kill it.
    _wait_for(lambda: not str(next(iter(redis_client.hvals(inflight)), "|")).endswith("|"))
    ((conv_id, record),) = redis_client.hgetall(inflight).items()
    os.kill(proc.pid or 0, signal.SIGKILL)
    proc.join()
    fence, response_id = str(record).split("|")

    thread_pool_emulator.admin.configure(latency=0.02)
    with _pool("conversations", common, thread_pool_openai_client) as pool:
        turn = pool.run("doc", "after the crash")
    # The settler found the response through the record and cancelled it before the next turn.
    assert thread_pool_openai_client.responses.retrieve(response_id).status == "cancelled"
    assert turn.thread_id == conv_id
    assert turn.fence == int(fence) + 1
    assert lock_errors(thread_pool_emulator) == 0
    assert redis_client.hlen(inflight) == 0
    assert_quiet(redis_client, thread_pool_prefix, "doc", threads=1)
