"""``thread-pool`` shows names from Redis and from callers as text: rich markup, ANSI escapes,
CR/LF, NUL and bidi overrides in a holder's name or a thread id neither break ``status`` nor
reach the terminal nor forge rows."""

from __future__ import annotations

import json
import threading
import time
import unicodedata
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.support.security import cli
from thread_pool import Lease, ThreadPool
from thread_pool._store.keys import PoolKeys
from thread_pool.cli.render import safe

HOSTILE = [
    "[/bold]",
    "[bold red]loud[/]",
    "[link=https://example.invalid]click[/link]",
    "\x1b[2J\x1b[31mcleared",
    "\x1b]0;new title\x07",
    "row\r\nforged 99 leased 0",
    "tab\there\x0bvt\x0cff",
    "\u202eevil\u202c",
    "\u2066isolate\u2069 \u200fmark",
    "nul\x00byte",
    "del\x7f csi\x9b1m",
    "line\u2028separator",
    "\\[/bold]",
]


def unsafe_characters(text: str) -> list[str]:
    """Characters that act on a terminal rather than show: controls (but the newline that ends
    a line) and the invisible format marks (bidi, separators)."""
    return [
        repr(ch)
        for ch in text
        if ch != "\n" and (unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"))
    ]


@pytest.fixture
def env(thread_pool_redis_url: str, thread_pool_prefix: str) -> dict[str, str]:
    return {
        "THREAD_POOL_REDIS_URL": thread_pool_redis_url,
        "THREAD_POOL_KEY_PREFIX": thread_pool_prefix,
    }


def held_by(pool: ThreadPool, key: str, name: str) -> Lease:
    """A lease acquired by a thread called ``name`` (the holder name carries it)."""
    got: list[Lease] = []
    worker = threading.Thread(target=lambda: got.append(pool.acquire(key)), name=name)
    worker.start()
    worker.join(10)
    return got[0]


def status_of(
    pool: ThreadPool, env: dict[str, str], tmp: Path, key: str, names: list[str]
) -> tuple[str, str, dict[str, Any]]:
    """``status KEY``, ``status`` and ``status KEY --json`` while a thread of each name but the
    last holds a lease, and one named after the last waits (the pool is full)."""
    pool.configure(key, max_size=len(names) - 1)
    pool.add_threads(key, [f"{key}-t{i}" for i in range(len(names) - 1)])
    leases = [held_by(pool, key, name) for name in names[:-1]]
    waiter = threading.Thread(
        target=lambda: pool.release(pool.acquire(key, timeout=30)), name=names[-1]
    )
    waiter.start()
    try:
        while not pool.stats(key).waiting:
            time.sleep(0.01)
        runs = [cli(env, *args, cwd=tmp) for args in (["status", key], ["status"])]
        runs.append(cli(env, "status", key, "--json", cwd=tmp))
    finally:
        pool.release(leases.pop())
        waiter.join(30)
        for lease in leases:
            pool.release(lease)
    for done in runs:
        assert done.returncode == 0, (done.stdout, done.stderr)
    return runs[0].stdout, runs[1].stdout, json.loads(runs[2].stdout)


def test_hostile_names_are_shown_as_text(
    env: dict[str, str], tmp_path: Path, thread_pool_redis_url: str, thread_pool_prefix: str
) -> None:
    plain = [f"holder{i}" for i in range(len(HOSTILE))]
    with ThreadPool(redis_url=thread_pool_redis_url, key_prefix=thread_pool_prefix) as pool:
        benign, benign_all, _ = status_of(pool, env, tmp_path, "benign", plain)
        detail, every, doc = status_of(pool, env, tmp_path, "hostile", HOSTILE)
    for out in (detail, every):
        assert unsafe_characters(out) == []
    # Exactly as many lines as with plain names: no row forged, none swallowed.
    assert len(detail.splitlines()) == len(benign.splitlines())
    assert len(every.splitlines()) == len(benign_all.splitlines()) + 1  # one more pool
    for name in HOSTILE:
        assert safe(name) in detail, name  # shown, escaped, markup as typed
    holders = {str(lease["holder"]).split(":", 2)[-1] for lease in doc["leases"]}
    assert holders == set(HOSTILE[:-1])  # JSON keeps them exact (it escapes by itself)


def test_hostile_thread_ids_from_redis_are_shown_as_text(
    env: dict[str, str],
    tmp_path: Path,
    thread_pool_redis_url: str,
    thread_pool_prefix: str,
    redis_client: redis.Redis,
) -> None:
    """Thread ids written into Redis by something else than the library (it checks its own)."""
    with ThreadPool(redis_url=thread_pool_redis_url, key_prefix=thread_pool_prefix) as pool:
        pool.configure("doc", max_size=len(HOSTILE) + 1)
        pool.add_threads("doc", ["ok"])
    keys = PoolKeys.of(thread_pool_prefix, "doc")
    for thread_id in HOSTILE:
        redis_client.hset(keys.threads, thread_id, 0)
        redis_client.zadd(keys.idle, {thread_id: 0})
    redis_client.rpush(keys.retired, *HOSTILE)
    done = cli(env, "status", "doc", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert unsafe_characters(done.stdout) == []
    for thread_id in HOSTILE:
        assert safe(thread_id) in done.stdout
    # One row per thread, starting with its id: none forged, none split.
    lines = done.stdout.splitlines()
    for thread_id in HOSTILE:
        assert sum(line.startswith(f"{safe(thread_id)} ") for line in lines) == 1, thread_id


# A command-line argument cannot hold NUL (the C string ends there).
@pytest.mark.parametrize("key", [name for name in HOSTILE if "\x00" not in name])
def test_a_hostile_argument_fails_on_one_clean_line(
    env: dict[str, str], tmp_path: Path, key: str
) -> None:
    done = cli(env, "status", key, cwd=tmp_path)
    assert done.returncode == 2, done.stdout
    assert done.stderr.startswith("error: ")
    assert len(done.stderr.splitlines()) == 1
    assert unsafe_characters(done.stderr) == []
