"""Many pools: the registry is listed in SSCAN steps, and ``thread-pool status --json`` writes
every pool as it is read (in pipelined batches) instead of building the whole document first,
while printing the same document as before, byte for byte."""

from __future__ import annotations

import json
import signal
import subprocess
from dataclasses import asdict
from pathlib import Path

import pytest
import redis

from tests.support.environment import COMMAND, clean_environment
from thread_pool import Settings, ThreadPool
from thread_pool.admin import PoolAdmin
from thread_pool.testing.redis_server import RedisServer

# More than two of the status command's batches (500 pools each).
POOLS = 1201


def _env(url: str, prefix: str) -> dict[str, str]:
    return {**clean_environment(), "THREAD_POOL_REDIS_URL": url, "THREAD_POOL_KEY_PREFIX": prefix}


def test_status_json_of_every_pool_is_written_as_it_is_read_in_the_same_document(
    thread_pool_redis_url: str, thread_pool_prefix: str, tmp_path: Path
) -> None:
    keys = [f"doc-{n:04d}" for n in range(POOLS - 1)]
    last = "zz-read-last"
    with (
        ThreadPool(redis_url=thread_pool_redis_url, key_prefix=thread_pool_prefix) as pool,
        PoolAdmin(redis_url=thread_pool_redis_url, key_prefix=thread_pool_prefix) as admin,
    ):
        for n, key in enumerate([*keys, last]):
            pool.add_threads(key, [f"thread_{n}_a", f"thread_{n}_b"])
        held = pool.acquire(keys[0])
        try:
            with subprocess.Popen(
                [*COMMAND, "status", "--json"],
                env=_env(thread_pool_redis_url, thread_pool_prefix),
                cwd=tmp_path,
                stdout=subprocess.PIPE,
            ) as proc:
                assert proc.stdout is not None
                # The first batch's pools (hundreds of kB) fill the pipe: the command waits for
                # the reader before it reads the next batches. Deleted now, the last pool is not
                # in the output; a command that read every pool before writing would show it.
                first = proc.stdout.read(1)
                admin.delete(last)
                text = (first + proc.stdout.read()).decode()
                assert proc.wait(timeout=60) == 0
            stats = pool.stats(keys[0])
        finally:
            pool.release(held)
    found = json.loads(text)
    assert text == json.dumps(found, indent=2) + "\n"  # what print_json printed before
    assert [p["key"] for p in found["pools"]] == keys
    assert found["pools"][0]["stats"] == asdict(stats)
    assert [t["state"] for t in found["pools"][0]["threads"]].count("leased") == 1
    assert {len(p["threads"]) for p in found["pools"]} == {2}


def test_status_watch_json_prints_a_compact_line_per_tick_and_no_pools_an_empty_list(
    thread_pool_redis_url: str, thread_pool_prefix: str, tmp_path: Path
) -> None:
    with ThreadPool(redis_url=thread_pool_redis_url, key_prefix=thread_pool_prefix) as pool:
        pool.add_threads("doc-1", ["thread_a"])
        pool.add_threads("doc-2", ["thread_b", "thread_c"])
    with subprocess.Popen(
        [*COMMAND, "status", "--json", "--watch", "--interval", "0.1"],
        env=_env(thread_pool_redis_url, thread_pool_prefix),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        try:
            lines = [proc.stdout.readline() for _ in range(2)]
        finally:
            proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=10)
    for line in lines:
        found = json.loads(line)
        assert line == json.dumps(found) + "\n"
        assert [len(p["threads"]) for p in found["pools"]] == [1, 2]
    # No pools: the empty document, as print_json wrote it.
    empty = _env(thread_pool_redis_url, f"{thread_pool_prefix}-none")
    done = subprocess.run(
        [*COMMAND, "status", "--json"],
        env=empty,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout) == (0, '{\n  "pools": []\n}\n')


@pytest.mark.slow  # 2,500 pools on a private server: nothing a cluster pass would add
def test_the_registry_is_listed_in_sscan_steps_sorted_and_once_each() -> None:
    # A private server: its command counts are this test's alone.
    with RedisServer() as server:
        settings = Settings.load(redis_url=server.url, redis_cluster=False, key_prefix="many")
        keys = [f"doc-{n:04d}" for n in range(2500)]
        with ThreadPool(settings=settings) as pool, PoolAdmin(settings=settings) as admin:
            for n, key in enumerate(reversed(keys)):
                pool.add_threads(key, [f"thread_{n}"])
            client = redis.Redis.from_url(server.url)
            client.config_resetstat()
            assert admin.pools() == keys
            assert pool.pools() == keys
            assert [s.key for s in admin.statuses(batch=7)] == keys
            stats = client.info("commandstats")
            client.close()
    assert "cmdstat_smembers" not in stats
    assert stats["cmdstat_sscan"]["calls"] >= 3 * 3  # 2,500 members, 1,000 a step, 3 listings
