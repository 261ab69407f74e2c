"""``thread-pool metrics`` run as an operator runs it (a subprocess serving HTTP), scraped over
HTTP and read with prometheus_client's own parser; every figure is checked against ``stats()``."""

from __future__ import annotations

import hashlib
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.environment import COMMAND, clean_environment
from thread_pool import PoolTimeout, ThreadPool

Scrape = Callable[..., dict[tuple[str, tuple[tuple[str, str], ...]], float]]


@pytest.fixture
def pool(thread_pool_redis_url: str, thread_pool_prefix: str) -> Iterator[ThreadPool]:
    with ThreadPool(redis_url=thread_pool_redis_url, key_prefix=thread_pool_prefix) as p:
        yield p


@pytest.fixture
def serve(
    thread_pool_redis_url: str, thread_pool_prefix: str, tmp_path: Path
) -> Iterator[Callable[..., str]]:
    """Start ``thread-pool metrics --port 0 ARGS``; returns its base URL (read from the line it
    prints at start). Every server started is stopped at the end."""
    started: list[subprocess.Popen[str]] = []

    def start(*args: str, redis_url: str = thread_pool_redis_url) -> str:
        env = {
            **clean_environment(),
            "THREAD_POOL_REDIS_URL": redis_url,
            "THREAD_POOL_KEY_PREFIX": thread_pool_prefix,
        }
        proc = subprocess.Popen(
            [*COMMAND, "metrics", "--port", "0", *args],
            env=env,
            cwd=tmp_path,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        started.append(proc)
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert "/metrics" in line, line + proc.stderr.read()
        return line.split(" at ", 1)[1].split("/metrics", 1)[0]

    yield start
    for proc in started:
        proc.terminate()
        proc.wait(10)
        if proc.stderr is not None:
            proc.stderr.close()


def scrape(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of one scrape: ``{(name, sorted labels): value}``."""
    with urllib.request.urlopen(f"{base}/metrics", timeout=30) as reply:
        text = reply.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_a_scrape_shows_every_pool_as_stats_does(
    pool: ThreadPool, serve: Callable[..., str]
) -> None:
    pool.add_threads("doc-a", ["t1", "t2", "t3"])
    pool.configure("doc-a", min_size=1, max_size=5)
    held = pool.acquire("doc-a")
    pool.append("doc-a", "user", "one")
    pool.append("doc-a", "assistant", "two")
    pool.add_threads("doc-b", ["u1"])
    held_b = pool.acquire("doc-b")
    with pytest.raises(PoolTimeout):
        pool.acquire("doc-b", timeout=0.05)
    pool.release(held_b)

    samples = scrape(serve())
    assert samples[("thread_pool_up", ())] == 1
    assert samples[("thread_pool_pools", ())] == 2
    for key in ("doc-a", "doc-b"):
        stats = pool.stats(key)
        label = (("pool", key),)

        def value(name: str, label: tuple[tuple[str, str], ...] = label) -> float:
            return samples[(name, label)]

        for state in ("idle", "leased", "settling"):
            by_state = tuple(sorted({"pool": key, "state": state}.items()))
            assert samples[("thread_pool_threads", by_state)] == getattr(stats, state)
        assert value("thread_pool_waiting_callers") == stats.waiting
        assert value("thread_pool_reserved_slots") == stats.reserved
        assert value("thread_pool_retired_threads") == stats.retired
        assert value("thread_pool_min_size") == stats.min_size
        assert value("thread_pool_max_size") == stats.max_size
        assert value("thread_pool_leases_granted_total") == stats.granted
        assert value("thread_pool_lease_timeouts_total") == stats.timeouts
        assert value("thread_pool_leases_lost_total") == stats.lost
        assert value("thread_pool_leases_reaped_total") == stats.reaped
        assert value("thread_pool_upstream_lock_errors_total") == stats.lock_errors
    assert samples[("thread_pool_log_entries", (("pool", "doc-a"),))] == 2
    # No thread of doc-a has received the two appended entries yet.
    assert samples[("thread_pool_log_max_lag_entries", (("pool", "doc-a"),))] == 2
    assert samples[("thread_pool_lease_timeouts_total", (("pool", "doc-b"),))] == 1
    assert samples[("thread_pool_threads", (("pool", "doc-a"), ("state", "leased")))] == 1
    pool.release(held)
    # A second scrape reads Redis again: nothing is cached between scrapes.
    again = scrape(serve())
    assert again[("thread_pool_threads", (("pool", "doc-a"), ("state", "leased")))] == 0


@pytest.mark.parametrize("mode", ["hash", "none"])
def test_the_pool_label_can_be_hashed_or_dropped(
    pool: ThreadPool, serve: Callable[..., str], mode: str
) -> None:
    secret_key = "user-4711@example.com"
    pool.add_threads(secret_key, ["t1", "t2"])
    pool.add_threads("other", ["u1"])
    base = serve("--pool-label", mode)
    with urllib.request.urlopen(f"{base}/metrics", timeout=30) as reply:
        text = reply.read().decode()
    assert secret_key not in text
    samples = scrape(base)
    idle = {k: v for k, v in samples.items() if k[0] == "thread_pool_threads" and "idle" in str(k)}
    if mode == "hash":
        digest = hashlib.sha256(secret_key.encode()).hexdigest()[:12]
        assert idle[("thread_pool_threads", (("pool", digest), ("state", "idle")))] == 2
        assert len(idle) == 2
    else:
        assert idle == {("thread_pool_threads", (("pool", "all"), ("state", "idle"))): 3}


def test_healthz_says_whether_redis_answers(pool: ThreadPool, serve: Callable[..., str]) -> None:
    with urllib.request.urlopen(f"{serve()}/healthz", timeout=30) as reply:
        assert reply.status == 200
        assert reply.read() == b"ok\n"
    dead = serve(redis_url="redis://127.0.0.1:9/0")  # nothing listens on the discard port
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{dead}/healthz", timeout=30)
    assert refused.value.code == 503
    refused.value.close()
    assert scrape(dead)[("thread_pool_up", ())] == 0
