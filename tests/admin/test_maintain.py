"""``thread-pool maintain`` run as an operator runs it: several maintainer processes at once,
against a real Redis and the emulator over HTTP; what they did is read from the pools' stats and
from the emulator, never from the maintainers' own output."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import openai
import pytest

from tests.support.environment import COMMAND, clean_environment
from tests.support.upstream import make_backend
from thread_pool import PoolAdmin, ThreadPool
from thread_pool.emulator import EmulatorServer

Start = Callable[..., list[subprocess.Popen[str]]]


@pytest.fixture
def maintainers(
    thread_pool_redis_url: str,
    thread_pool_prefix: str,
    thread_pool_emulator: EmulatorServer,
    tmp_path: Path,
) -> Iterator[Start]:
    """Start ``count`` maintainers with ``ARGS``; all are stopped (Ctrl-C) at the end."""
    started: list[subprocess.Popen[str]] = []
    env = {
        **clean_environment(),
        "THREAD_POOL_REDIS_URL": thread_pool_redis_url,
        "THREAD_POOL_KEY_PREFIX": thread_pool_prefix,
        "OPENAI_API_KEY": thread_pool_emulator.api_key,
        "OPENAI_BASE_URL": thread_pool_emulator.base_url,
    }

    def start(count: int, *args: str) -> list[subprocess.Popen[str]]:
        procs = [
            subprocess.Popen(
                [*COMMAND, "maintain", "--interval", "0.2", *args],
                env=env,
                cwd=tmp_path,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(count)
        ]
        started.extend(procs)
        for proc in procs:  # each says so once it is up
            assert proc.stderr is not None
            line = proc.stderr.readline()
            assert line.startswith("maintaining the pools"), line
        return procs

    yield start
    for proc in started:
        proc.terminate()
        _, err = proc.communicate(timeout=15)
        assert "Traceback" not in err, err


def wait_for(check: Callable[[], bool], timeout: float) -> float:
    """Seconds until ``check()`` held; fails the test after ``timeout``."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise AssertionError("not reached in time")
        time.sleep(0.02)
    return time.monotonic() - started


def test_maintainers_reap_expired_leases_as_they_fall_due_and_only_once(
    thread_pool_redis_url: str, thread_pool_prefix: str, maintainers: Start
) -> None:
    with ThreadPool(
        redis_url=thread_pool_redis_url, key_prefix=thread_pool_prefix, renew_margin=0.2
    ) as pool:
        pool.add_threads("doc", ["t1", "t2", "t3"])
        pool.configure("doc", ttl=1.0)
        maintainers(3)
        for _ in range(3):
            pool.acquire("doc")  # holders that never come back
        due = time.monotonic() + 1.0
        wait_for(lambda: pool.stats("doc").idle == 3, timeout=10)
        late = time.monotonic() - due
        # Reaped within about one pass of the deadline, with no acquire to trigger it.
        assert late < 1.0, late
        stats = pool.stats("doc")
        assert (stats.reaped, stats.leased, stats.settling) == (3, 0, 0)


def test_maintainers_restore_min_size_after_a_thread_is_dropped_never_overshooting(
    thread_pool_redis_url: str,
    thread_pool_prefix: str,
    thread_pool_emulator: EmulatorServer,
    thread_pool_openai_client: openai.OpenAI,
    maintainers: Start,
) -> None:
    backend = make_backend("conversations", thread_pool_openai_client, thread_pool_emulator)
    with ThreadPool(
        backend=backend,
        redis_url=thread_pool_redis_url,
        key_prefix=thread_pool_prefix,
        renew_margin=0.2,
    ) as pool:
        pool.run("doc", "hello")  # the pool exists, with one thread
        pool.configure("doc", min_size=4, max_size=8, ttl=1.0)
        maintainers(3, "--backend", "conversations", "--rate", "100")
        wait_for(lambda: pool.stats("doc").threads == 4, timeout=20)
        time.sleep(1.0)  # three maintainers, several passes each: still 4
        assert pool.stats("doc").threads == 4
        conversations = thread_pool_emulator.admin.stats()["requests"]
        assert conversations.get("POST /v1/conversations", 0) == 4  # no orphan upstream

        # A holder dies on a thread that is then deleted upstream: the maintainers reap the
        # lease, the settler finds the thread gone and drops it, and growth replaces it.
        doomed = pool.acquire("doc")
        thread_pool_openai_client.conversations.delete(doomed.thread_id)
        wait_for(lambda: pool.stats("doc").reaped == 1, timeout=10)
        wait_for(lambda: pool.stats("doc").threads == 4 and pool.stats("doc").idle == 4, timeout=20)
        stats = pool.stats("doc")
        assert (stats.threads, stats.leased, stats.settling, stats.reserved) == (4, 0, 0, 0)
        assert doomed.thread_id not in pool_threads(pool)
        created = thread_pool_emulator.admin.stats()["requests"]["POST /v1/conversations"]
        assert created == 5


def pool_threads(pool: ThreadPool) -> set[str]:
    with PoolAdmin(settings=pool.settings) as admin:
        return {t.thread_id for t in admin.status("doc").threads}
