"""``thread-pool gc`` run as an operator runs it, against a real Redis and the emulator over HTTP:
idle pools retired (threads deleted upstream first, then every key), busy ones never."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from pathlib import Path

import openai
import pytest
import redis

from tests.support.environment import COMMAND, clean_environment
from tests.support.pools import AsyncMakePool, MakePool
from thread_pool import (
    AsyncPoolAdmin,
    InvalidArgument,
    PoolAdmin,
    PoolBusy,
)
from thread_pool._store.keys import PoolKeys
from thread_pool.emulator import EmulatorServer
from thread_pool.maintenance import idle_pools, maintain_once, retire_idle


@pytest.fixture
def gc(
    thread_pool_redis_url: str,
    thread_pool_prefix: str,
    thread_pool_emulator: EmulatorServer,
    tmp_path: Path,
) -> object:
    env = {
        **clean_environment(),
        "THREAD_POOL_REDIS_URL": thread_pool_redis_url,
        "THREAD_POOL_KEY_PREFIX": thread_pool_prefix,
        "OPENAI_API_KEY": thread_pool_emulator.api_key,
        "OPENAI_BASE_URL": thread_pool_emulator.base_url,
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*COMMAND, "gc", *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )

    return run


def test_gc_retires_idle_pools_only_and_leaves_nothing_of_them(
    gc: object,
    make_pool: MakePool,
    thread_pool_redis_url: str,
    thread_pool_prefix: str,
    thread_pool_openai_client: openai.OpenAI,
    redis_client: redis.Redis,
) -> None:
    run = gc
    assert callable(run)
    with make_pool(max_size=2) as pool:
        idle_one = pool.run("idle", "hello").thread_id
        pool.run("held", "hello")
        time.sleep(1.5)
        held = pool.acquire("held")  # busy: never retired, however long unused before

        listed = run("--idle-for", "1s", "--dry-run", "--json")
        assert listed.returncode == 0, listed.stderr
        assert [p["key"] for p in json.loads(listed.stdout)["idle"]] == ["idle"]
        assert pool.stats("idle").threads == 1  # a dry run changes nothing

        done = run("--idle-for", "1s", "--backend", "conversations", "--json")
        assert done.returncode == 0, done.stderr
        (report,) = json.loads(done.stdout)["retired"]
        assert (report["key"], report["deleted_upstream"]) == ("idle", [idle_one])
        with pytest.raises(openai.NotFoundError):
            thread_pool_openai_client.conversations.retrieve(idle_one)
        # Nothing of the retired pool is left in Redis; the others are untouched.
        base = PoolKeys.of(thread_pool_prefix, "idle").meta.rsplit("meta", 1)[0]
        assert list(redis_client.scan_iter(match=base + "*")) == []
        with PoolAdmin(redis_url=thread_pool_redis_url, key_prefix=thread_pool_prefix) as admin:
            assert admin.pools() == ["held"]
        pool.release(held)


async def test_a_pool_used_within_the_window_is_kept(
    make_async_pool: AsyncMakePool, thread_pool_redis_url: str, thread_pool_prefix: str
) -> None:
    async with (
        make_async_pool() as pool,
        AsyncPoolAdmin(redis_url=thread_pool_redis_url, key_prefix=thread_pool_prefix) as admin,
    ):
        await pool.run("old", "hello")
        await pool.run("recent", "hello")
        await asyncio.sleep(1.2)
        await pool.run("recent", "again")
        assert [p.key for p in await idle_pools(admin, 1.0)] == ["old"]
        reports = await retire_idle(admin, pool.backend, 1.0)
        assert [r.key for r in reports] == ["old"]
        assert await admin.pools() == ["recent"]


def test_gc_needs_a_duration_and_a_backend(gc: object) -> None:
    run = gc
    assert callable(run)
    for args in (["--idle-for", "soon"], ["--idle-for", "0s"], ["--idle-for", "nan"]):
        done = run(*args)
        assert done.returncode == 2, (args, done.stderr)
    done = run("--idle-for", "7d")
    assert done.returncode == 2
    assert "--backend" in done.stderr


async def test_a_pool_used_after_it_was_found_idle_is_not_deleted(
    make_async_pool: AsyncMakePool, thread_pool_redis_url: str, thread_pool_prefix: str
) -> None:
    async with (
        make_async_pool(None) as pool,
        AsyncPoolAdmin(redis_url=thread_pool_redis_url, key_prefix=thread_pool_prefix) as admin,
    ):
        await pool.add_threads("doc", ["t1"])
        await asyncio.sleep(1.2)
        assert [p.key for p in await idle_pools(admin, 1.0)] == ["doc"]
        async with pool.lease("doc"):
            pass  # used between the listing and the delete
        with pytest.raises(PoolBusy, match="was used"):
            await admin.delete("doc", idle_for=1.0)
        assert await retire_idle(admin, None, 1.0) == []
        assert (await pool.stats("doc")).threads == 1
        assert not (await admin.status("doc")).draining  # refused: nothing changed


@pytest.mark.parametrize(
    "killed",
    [
        ["gc", "--idle-for", "1s", "--backend", "conversations"],
        ["maintain", "--idle-expiry", "1s", "--interval", "0.2", "--backend", "conversations"],
    ],
    ids=["gc", "maintain"],
)
def test_a_retirement_killed_while_deleting_upstream_is_finished_by_the_next_gc(
    killed: list[str],
    gc: object,
    thread_pool_redis_url: str,
    thread_pool_prefix: str,
    thread_pool_emulator: EmulatorServer,
    thread_pool_openai_client: openai.OpenAI,
    redis_client: redis.Redis,
    tmp_path: Path,
    make_pool: MakePool,
) -> None:
    run = gc
    assert callable(run)
    with make_pool() as pool:
        with pool.lease("doc") as a, pool.lease("doc") as b:
            threads = sorted([a.thread_id, b.thread_id])
        time.sleep(1.2)
        # Upstream answers every request "429, retry after 1 s" from now on: the first run
        # reaches its upstream deletes and keeps retrying them until it is killed.
        thread_pool_emulator.admin.configure(http_429=1.0)
        env = {
            **clean_environment(),
            "THREAD_POOL_REDIS_URL": thread_pool_redis_url,
            "THREAD_POOL_KEY_PREFIX": thread_pool_prefix,
            "OPENAI_API_KEY": thread_pool_emulator.api_key,
            "OPENAI_BASE_URL": thread_pool_emulator.base_url,
        }
        first = subprocess.Popen(
            [*COMMAND, *killed],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            give_up = time.monotonic() + 60
            while thread_pool_emulator.admin.stats()["faults"].get("http_429", 0) == 0:
                assert first.poll() is None, "the first run ended before it was killed"
                assert time.monotonic() < give_up, "the first run never reached upstream"
                time.sleep(0.05)
            first.send_signal(signal.SIGKILL)
        finally:
            first.kill()
            first.wait(30)
        thread_pool_emulator.admin.configure(http_429=0.0)

        # Killed half-way: the pool is still whole in Redis and marked draining (no lease is
        # granted from it), and each of its threads still exists upstream.
        with PoolAdmin(redis_url=thread_pool_redis_url, key_prefix=thread_pool_prefix) as admin:
            status = admin.status("doc")
        assert status.draining
        assert sorted(t.thread_id for t in status.threads) == threads
        for thread_id in threads:
            thread_pool_openai_client.conversations.retrieve(thread_id)

        done = run("--idle-for", "1s", "--backend", "conversations", "--json")
        assert done.returncode == 0, done.stderr
        (report,) = json.loads(done.stdout)["retired"]
        assert sorted(report["deleted_upstream"]) == threads
        for thread_id in threads:
            with pytest.raises(openai.NotFoundError):
                thread_pool_openai_client.conversations.retrieve(thread_id)
        base = PoolKeys.of(thread_pool_prefix, "doc").meta.rsplit("meta", 1)[0]
        assert list(redis_client.scan_iter(match=base + "*")) == []


async def test_a_pool_s_own_idle_expiry_overrides_the_default(
    make_async_pool: AsyncMakePool,
    thread_pool_redis_url: str,
    thread_pool_prefix: str,
    thread_pool_async_openai_client: openai.AsyncOpenAI,
) -> None:
    async with (
        make_async_pool() as pool,
        AsyncPoolAdmin(redis_url=thread_pool_redis_url, key_prefix=thread_pool_prefix) as admin,
    ):
        short = (await pool.run("short", "hello")).thread_id
        await pool.run("long", "hello")
        await pool.run("plain", "hello")
        assert (await pool.configure("short", idle_expiry=1)).idle_expiry == 1.0
        assert (await pool.configure("long", idle_expiry=3600)).idle_expiry == 3600.0
        assert (await pool.stats("plain")).idle_expiry is None
        for bad in (-1, float("nan"), "1s"):
            with pytest.raises(InvalidArgument):
                await pool.configure("plain", idle_expiry=bad)  # type: ignore[arg-type]
        await asyncio.sleep(1.2)

        # Without a default only the pool's own expiry counts; with one, "long" keeps its own.
        assert [p.key for p in await idle_pools(admin, None)] == ["short"]
        assert sorted(p.key for p in await idle_pools(admin, 1.0)) == ["plain", "short"]
        # Every process and the maintainer read it from Redis: a maintainer with no default
        # retires "short" alone, its thread deleted upstream.
        done = await maintain_once(pool, admin, pool.backend)
        assert done.retired == ["short"]
        assert sorted(await admin.pools()) == ["long", "plain"]
        with pytest.raises(openai.NotFoundError):
            await thread_pool_async_openai_client.conversations.retrieve(short)
        # 0 removes the pool's own expiry: the default applies again.
        assert (await pool.configure("long", idle_expiry=0)).idle_expiry is None
        assert sorted(p.key for p in await idle_pools(admin, 1.0)) == ["long", "plain"]
