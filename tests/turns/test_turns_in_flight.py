"""The request a turn has in flight: a holder stopped in the instant between its last lease check
and the socket write sends its run-starting request late, after its lease ran out. The pool
records ``fence|`` before such a request, so the settler of the thread waits for the holder to
name what it started (and ends it) instead of handing the thread out under the late write."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import openai
import pytest
import redis

from tests.support.evidence import assert_quiet
from tests.support.upstream import hooked_client, lock_errors, make_assistant
from thread_pool import (
    AsyncAssistantsBackend,
    AsyncBackend,
    AsyncConversationsBackend,
    AsyncThreadPool,
    LeaseLost,
    RetryPolicy,
    UpstreamError,
)
from thread_pool._store.keys import PoolKeys
from thread_pool.emulator import EmulatorServer

pytestmark = pytest.mark.filterwarnings(
    r"ignore:(The Assistants API is deprecated|deprecated$):DeprecationWarning"
)

# Short leases; a settler waits at most a lease TTL (2 s) for a stopped holder to name its run.
# One thread per pool, so that the next turn must wait for the stopped holder's.
SETTINGS: dict[str, Any] = {
    "lease_ttl": 2.0,
    "renew_margin": 0.5,
    "settle_timeout": 20.0,
    "max_size": 1,
}
STOP_S = 3.0  # the holder's stop: past its lease, within the settler's wait


def _backend(kind: str, client: openai.AsyncOpenAI, server: EmulatorServer) -> AsyncBackend:
    retry = RetryPolicy(attempts=3, deadline=5, base_delay=0.01, max_delay=0.05)
    if kind == "assistants":
        return AsyncAssistantsBackend(
            client, assistant_id=make_assistant(server), retry=retry, settle_wait=0.1
        )
    return AsyncConversationsBackend(
        client, model="emulated", background=True, retry=retry, settle_wait=0.1
    )


def _pool(
    kind: str,
    client: openai.AsyncOpenAI,
    server: EmulatorServer,
    redis_url: str,
    prefix: str,
    **overrides: Any,
) -> AsyncThreadPool:
    """A pool of ``kind``'s backend over ``client``, with ``SETTINGS`` and ``overrides``."""
    return AsyncThreadPool(
        backend=_backend(kind, client, server),
        redis_url=redis_url,
        key_prefix=prefix,
        **{**SETTINGS, **overrides},
    )


@pytest.fixture
def pool_of(
    thread_pool_redis_url: str,
    thread_pool_prefix: str,
    thread_pool_emulator: EmulatorServer,
    thread_pool_async_openai_client: openai.AsyncOpenAI,
) -> Callable[..., AsyncThreadPool]:
    """``pool_of(kind, client=None, **overrides)``: a pool of this test's Redis and emulator."""

    def make(
        kind: str, client: openai.AsyncOpenAI | None = None, **overrides: Any
    ) -> AsyncThreadPool:
        return _pool(
            kind,
            client or thread_pool_async_openai_client,
            thread_pool_emulator,
            thread_pool_redis_url,
            thread_pool_prefix,
            **overrides,
        )

    return make


def _starts_run(request: Any) -> bool:
    return bool(request.method == "POST" and request.url.path.endswith(("/runs", "/responses")))


def _stopped_holder(
    kind: str, server: EmulatorServer, redis_url: str, prefix: str, outcome: list[BaseException]
) -> threading.Thread:
    """A holder, with an event loop of its own, that stops for ``STOP_S`` (its whole loop, the
    lease renewer too, as SIGSTOP would) after its request that starts a run passed the lease
    checks, before it is written to the socket."""

    def stop_in_mid_send(request: Any) -> None:
        if _starts_run(request):
            time.sleep(STOP_S)

    async def hold() -> None:
        http = openai.DefaultAsyncHttpxClient()
        client = openai.AsyncOpenAI(
            base_url=server.base_url, api_key="unused", max_retries=0, http_client=http
        )
        pool = _pool(kind, client, server, redis_url, prefix)  # installs the send-time check
        hooks = http.event_hooks
        http.event_hooks = {**hooks, "request": [*hooks["request"], _async(stop_in_mid_send)]}
        async with pool:
            try:
                await pool.run("doc", "sent late")
            except BaseException as exc:
                outcome.append(exc)
        await client.close()

    thread = threading.Thread(target=asyncio.run, args=(hold(),), name="stopped holder")
    thread.start()
    return thread


def _async(hook: Any) -> Any:
    async def run(request: Any) -> None:
        hook(request)

    return run


async def _until(predicate: Any, timeout: float = 10.0) -> None:
    give_up = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < give_up, "timed out"
        await asyncio.sleep(0.02)


@pytest.mark.thread_pool_emulator(latency=3.0)
@pytest.mark.parametrize("kind", ["assistants", "conversations"])
async def test_a_request_sent_late_by_a_stopped_holder_is_ended_before_the_thread_is_reused(
    pool_of: Callable[..., AsyncThreadPool],
    kind: str,
    thread_pool_redis_url: str,
    thread_pool_prefix: str,
    thread_pool_emulator: EmulatorServer,
    redis_client: redis.Redis,
) -> None:
    inflight = PoolKeys.of(thread_pool_prefix, "doc").inflight
    outcome: list[BaseException] = []
    holder = _stopped_holder(
        kind, thread_pool_emulator, thread_pool_redis_url, thread_pool_prefix, outcome
    )
    # The holder passed its checks and marked its request as sent ("fence|"): it is stopped.
    await _until(lambda: redis_client.hvals(inflight) == ["1|"])
    async with pool_of(kind) as pool:
        # Its lease runs out after 2 s; the settler then waits until the holder resumes (at
        # 3 s), sends its request late and names the run it started, ends that run, and only
        # then hands the thread to this turn (upstream takes 3 s per run: had the thread been
        # handed out at 2 s, this turn and the late request would have met).
        turn = await pool.run("doc", "the next turn")
        stats = await pool.stats("doc")
    await asyncio.to_thread(holder.join)

    assert turn.fence == 2
    assert stats.reaped == 1
    assert lock_errors(thread_pool_emulator) == 0
    (late,) = outcome
    assert isinstance(late, LeaseLost), repr(late)
    ops = [w["op"] for w in thread_pool_emulator.admin.writes(turn.thread_id)]
    late_write = f"{'run' if kind == 'assistants' else 'response'}.create"
    # The late write reached upstream (the stop was after every check), and was cancelled
    # before the next turn's write.
    first = ops.index(late_write)
    assert ops[first + 1].endswith(".cancel"), ops
    assert ops.count(late_write) == 2, ops
    assert_quiet(redis_client, thread_pool_prefix, "doc", threads=1)


@pytest.mark.parametrize("kind", ["assistants", "conversations"])
async def test_every_turn_has_its_request_marked_in_flight_before_it_is_sent(
    pool_of: Callable[..., AsyncThreadPool],
    kind: str,
    thread_pool_prefix: str,
    thread_pool_emulator: EmulatorServer,
    redis_client: redis.Redis,
) -> None:
    # A lease taken for a turn on an idle thread has its first request fence-checked and
    # marked by the grant itself (no check of its own): the mark must be there before the
    # request leaves all the same, as for a thread just grown (checked the usual way).
    inflight = PoolKeys.of(thread_pool_prefix, "doc").inflight
    seen: list[dict[Any, Any]] = []

    async def mark_at_send(request: Any) -> None:
        if _starts_run(request):
            seen.append(redis_client.hgetall(inflight))

    client = hooked_client(thread_pool_emulator, request=[mark_at_send])
    async with pool_of(kind, client) as pool:
        grown = await pool.run("doc", "on a new thread")
        await pool.run("doc", "on the idle thread")
        async with pool.stream("doc", "streamed on the idle thread") as events:
            async for _ in events:
                pass
    await client.close()
    thread = grown.thread_id
    assert seen == [{thread: "1|"}, {thread: "2|"}, {thread: "3|"}]
    assert lock_errors(thread_pool_emulator) == 0
    assert_quiet(redis_client, thread_pool_prefix, "doc", threads=1)


async def test_a_settler_stops_waiting_for_a_holder_that_never_names_its_request(
    pool_of: Callable[..., AsyncThreadPool],
    thread_pool_prefix: str,
    redis_client: redis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    short = {"lease_ttl": 0.5, "renew_margin": 0.2, "settle_timeout": 2.0}
    async with pool_of("conversations", **short) as pool:
        # A holder killed after its check for a run-starting write: nobody will name the run.
        dead = await pool.acquire("doc")
        await pool.check(dead, starts_run=True)
        assert redis_client.hvals(PoolKeys.of(thread_pool_prefix, "doc").inflight) == ["1|"]
        with caplog.at_level(logging.WARNING, logger="thread_pool"):
            started = time.monotonic()
            turn = await pool.run("doc", "after the crash")
            waited = time.monotonic() - started
    assert turn.fence == 2
    # The lease ran out (0.5 s), then the settler waited a lease TTL (0.5 s) for a name.
    assert waited >= 0.5, waited
    assert "never said what its last request started" in caplog.text
    assert_quiet(redis_client, thread_pool_prefix, "doc", threads=1)


async def test_a_holder_that_gives_its_thread_back_leaves_no_unnamed_request_to_wait_for(
    pool_of: Callable[..., AsyncThreadPool],
    thread_pool_prefix: str,
    redis_client: redis.Redis,
) -> None:
    # E.g. Redis went away as upstream answered: the holder could neither name the run nor
    # clear the record, and ended the run itself. Its release (to be settled) drops the record:
    # waiting is for holders that stopped, not for one that is done.
    inflight = PoolKeys.of(thread_pool_prefix, "doc").inflight
    async with pool_of("assistants") as pool:
        lease = await pool.acquire("doc")
        await pool.check(lease, starts_run=True)
        assert redis_client.hvals(inflight) == ["1|"]
        lease.dirty = True  # a turn cut short: the thread goes to be settled
        await pool.release(lease)
        assert redis_client.hlen(inflight) == 0
        turn = await pool.run("doc", "next")
        stats = await pool.stats("doc")
    assert turn.fence == 2
    assert stats.reaped == 0
    assert_quiet(redis_client, thread_pool_prefix, "doc", threads=1)


@pytest.mark.parametrize("kind", ["assistants", "conversations"])
async def test_a_request_that_failed_leaves_nothing_in_flight_to_wait_for(
    pool_of: Callable[..., AsyncThreadPool],
    kind: str,
    thread_pool_prefix: str,
    thread_pool_emulator: EmulatorServer,
    redis_client: redis.Redis,
) -> None:
    inflight = PoolKeys.of(thread_pool_prefix, "doc").inflight
    async with pool_of(kind) as pool:
        await pool.run("doc", "first")
        thread_pool_emulator.admin.configure(http_500=1.0)
        with pytest.raises(UpstreamError):
            await pool.run("doc", "refused by upstream")
        assert redis_client.hlen(inflight) == 0  # no settler will wait for it
        thread_pool_emulator.admin.configure(http_500=0.0)
        started = time.monotonic()
        turn = await pool.run("doc", "next")
        waited = time.monotonic() - started
        # A completed turn leaves nothing in flight either (its release clears the record).
        assert redis_client.hlen(inflight) == 0
    assert turn.fence == 3
    assert waited < SETTINGS["settle_timeout"] / 2, waited  # settled without waiting
    assert_quiet(redis_client, thread_pool_prefix, "doc", threads=1)


@pytest.mark.thread_pool_emulator(latency=0.02, run_stuck=1.0)
async def test_a_turn_cancelled_while_its_response_is_created_has_that_response_ended(
    pool_of: Callable[..., AsyncThreadPool],
    thread_pool_prefix: str,
    thread_pool_emulator: EmulatorServer,
    redis_client: redis.Redis,
) -> None:
    turn: list[asyncio.Task[Any]] = []

    async def cancel_the_turn(response: Any) -> None:
        # Upstream has started the (stuck) response; its answer has not reached the caller.
        if _starts_run(response.request) and not turn[0].done():
            turn[0].cancel()
            await asyncio.sleep(0)

    client = hooked_client(thread_pool_emulator, response=[cancel_the_turn])
    async with pool_of("conversations", client) as pool:
        turn.append(asyncio.create_task(pool.run("doc", "cancelled in mid-request")))
        with pytest.raises(asyncio.CancelledError):
            await turn[0]
        thread_pool_emulator.admin.configure(run_stuck=0.0)
        after = await asyncio.wait_for(pool.run("doc", "the next turn"), 20)
    await client.close()
    # The stuck response was named despite the cancellation, so its settler cancelled it.
    ops = [w["op"] for w in thread_pool_emulator.admin.writes(after.thread_id)]
    assert ops[1:] == ["response.create", "response.cancel", "response.create"], ops
    assert lock_errors(thread_pool_emulator) == 0
    assert_quiet(redis_client, thread_pool_prefix, "doc", threads=1)
