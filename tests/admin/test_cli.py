"""The ``thread-pool`` command line, run as a user runs it: a subprocess, against a real Redis and
the emulator (served in this process, reached over HTTP like the real API)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import openai
import pytest
import redis

from tests.support.environment import COMMAND, clean_environment
from thread_pool import ConversationsBackend, ThreadPool
from thread_pool._store.keys import PoolKeys
from thread_pool.emulator import EmulatorServer
from thread_pool.testing.redis_server import free_port

Cli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def env(
    thread_pool_redis_url: str,
    thread_pool_prefix: str,
    thread_pool_emulator: EmulatorServer,
) -> dict[str, str]:
    """The environment an operator would have: Redis and the upstream from the environment."""
    return {
        **clean_environment(),
        "THREAD_POOL_REDIS_URL": thread_pool_redis_url,
        "THREAD_POOL_KEY_PREFIX": thread_pool_prefix,
        "OPENAI_API_KEY": thread_pool_emulator.api_key,
        "OPENAI_BASE_URL": thread_pool_emulator.base_url,
    }


@pytest.fixture
def cli(env: dict[str, str], tmp_path: Path) -> Cli:
    """Run ``thread-pool ARGS``; returns the finished process (stdout, stderr, returncode)."""

    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*COMMAND, *args],
            env=env,
            cwd=tmp_path,  # no stray .env
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )

    return run


@pytest.fixture
def pool(thread_pool_redis_url: str, thread_pool_prefix: str) -> Iterator[ThreadPool]:
    """A library pool object on the same Redis and prefix, to compare with and to hold leases."""
    with ThreadPool(redis_url=thread_pool_redis_url, key_prefix=thread_pool_prefix) as p:
        yield p


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, (done.returncode, done.stdout, done.stderr)
    return done.stdout


def one_line_error(done: subprocess.CompletedProcess[str], code: int) -> str:
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def upstream_threads(server: EmulatorServer) -> int:
    return int(server.admin.stats()["objects"]["threads"])


def reservations(client: redis.Redis, prefix: str, key: str) -> int:
    return int(client.zcard(PoolKeys.of(prefix, key).reserved))


# -- prewarm ---------------------------------------------------------------------------------


def test_two_racing_prewarms_fill_three_pools_to_exactly_eight(
    env: dict[str, str], pool: ThreadPool, thread_pool_emulator: EmulatorServer, tmp_path: Path
) -> None:
    keys = ["doc-a", "doc-b", "doc-c"]
    for key in keys:
        pool.configure(key, max_size=16)  # room to overshoot, if the cap were not atomic
    args = [*COMMAND, "prewarm", *keys, "--size", "8", "--backend", "assistants"]
    args += ["--concurrency", "8", "--rate", "500", "--json"]
    racers = [
        subprocess.Popen(args, env=env, cwd=tmp_path, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [r.communicate(timeout=60)[0] for r in racers]
    assert [r.returncode for r in racers] == [0, 0]
    created = 0
    for out in outputs:
        for p in json.loads(out)["pools"]:
            assert p["threads"] == 8
            created += p["grown"]
    for key in keys:
        stats = pool.stats(key)
        assert (stats.threads, stats.idle, stats.reserved, stats.retired) == (8, 8, 0, 0)
    # Every upstream thread was made by one of the two and is in a pool: no orphans.
    assert created == 24
    assert upstream_threads(thread_pool_emulator) == 24


def test_prewarm_reads_keys_from_a_file_and_is_idempotent(
    cli: Cli, pool: ThreadPool, tmp_path: Path
) -> None:
    (tmp_path / "keys.txt").write_text("# pools of the launch\nuser-1\n\nuser-2  # vip\n")
    out = ok(cli("prewarm", "--from-file", "keys.txt", "--size", "3", "--backend", "conversations"))
    assert "pool user-1: 3/3 threads, 3 created" in out
    again = ok(cli("prewarm", "user-1", "user-2", "--size", "3", "--backend", "conversations"))
    assert "pool user-2: 3/3 threads, 0 created" in again
    assert pool.stats("user-2").threads == 3


def test_interrupted_prewarm_leaves_nothing_behind_and_a_rerun_resumes(
    env: dict[str, str],
    cli: Cli,
    pool: ThreadPool,
    redis_client: redis.Redis,
    thread_pool_prefix: str,
    thread_pool_emulator: EmulatorServer,
    tmp_path: Path,
) -> None:
    key = "slow-doc"
    pool.configure(key, max_size=20)
    # Paced at 10 a second, 20 threads take 2 s: interrupt it half-way.
    args = [*COMMAND, "prewarm", key, "--size", "20", "--backend", "assistants", "--rate", "10"]
    proc = subprocess.Popen(
        args, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    give_up = time.monotonic() + 20
    while pool.stats(key).threads < 4 and time.monotonic() < give_up:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "error: interrupted"
    stats = pool.stats(key)
    assert 4 <= stats.threads < 20
    assert reservations(redis_client, thread_pool_prefix, key) == 0
    # Every thread made upstream is registered: nothing half-made.
    assert upstream_threads(thread_pool_emulator) == stats.threads
    out = ok(cli("prewarm", key, "--size", "20", "--backend", "assistants", "--rate", "500"))
    assert f"pool {key}: 20/20 threads, {20 - stats.threads} created" in out
    assert upstream_threads(thread_pool_emulator) == pool.stats(key).threads == 20


def test_prewarm_needs_a_backend(cli: Cli) -> None:
    assert "--backend" in one_line_error(cli("prewarm", "k", "--size", "1"), 2)


# -- status ------------------------------------------------------------------------------------


def _numbers(row: str) -> list[str]:
    return row.split()


def test_status_text_and_json_agree_with_stats(cli: Cli, pool: ThreadPool) -> None:
    pool.add_threads("doc-1", ["thread_a", "thread_b", "thread_c"])
    pool.add_threads("doc-2", ["thread_x"])
    held = pool.acquire("doc-1")
    try:
        stats = {k: pool.stats(k) for k in ("doc-1", "doc-2")}
        everything = json.loads(ok(cli("status", "--json")))
        assert [p["stats"] for p in everything["pools"]] == [
            asdict(stats["doc-1"]),
            asdict(stats["doc-2"]),
        ]
        one = json.loads(ok(cli("status", "doc-1", "--json")))
        assert one["stats"] == asdict(stats["doc-1"])
        [lease] = one["leases"]
        assert (lease["thread_id"], lease["fence"]) == (held.thread_id, held.fence)
        assert lease["holder"].split(":")[1] == str(os.getpid())
        assert 0 < lease["remaining"] <= stats["doc-1"].lease_ttl
        states = {t["thread_id"]: t["state"] for t in one["threads"]}
        assert sorted(states.values()) == ["idle", "idle", "leased"]
        assert states[held.thread_id] == "leased"

        table = ok(cli("status")).splitlines()
        header = ["pool", "threads", "idle", "leased", "settling", "reserved", "waiting"]
        assert _numbers(table[0])[:8] == [*header, "retired"]
        for line, key in zip(table[1:], ("doc-1", "doc-2"), strict=True):
            s = stats[key]
            counts = (s.threads, s.idle, s.leased, s.settling, s.reserved, s.waiting, s.retired)
            expect = [key, *counts, s.min_size, s.max_size]
            assert _numbers(line)[:10] == [str(x) for x in expect]

        detail = ok(cli("status", "doc-1"))
        assert "threads 3 (idle 2, leased 1, settling 0, reserved 0)" in detail
        row = next(r for r in detail.splitlines() if r.startswith(held.thread_id))
        assert _numbers(row)[1:3] == ["leased", str(held.fence)]
    finally:
        pool.release(held)


def _held(client: openai.OpenAI, thread_id: str) -> list[tuple[str, str]]:
    """``(role, text)`` of every message a conversation holds upstream, oldest first."""
    out = []
    for item in client.conversations.items.list(thread_id, order="asc", limit=100):
        if getattr(item, "type", None) == "message":
            parts: list[Any] = list(getattr(item, "content", []))
            out.append((getattr(item, "role", ""), "".join(p.text for p in parts)))
    return out


@pytest.mark.filterwarnings(r"ignore:deprecated$:DeprecationWarning")
def test_status_shows_log_and_lags_and_prewarm_seeds_new_threads_from_the_log(
    cli: Cli,
    thread_pool_redis_url: str,
    thread_pool_prefix: str,
    thread_pool_openai_client: openai.OpenAI,
) -> None:
    backend = ConversationsBackend(thread_pool_openai_client, model="emulated")
    with ThreadPool(
        backend=backend, redis_url=thread_pool_redis_url, key_prefix=thread_pool_prefix
    ) as pool:
        pool.configure("doc", max_size=3)
        first = pool.run("doc", "What is the plan?")  # grows a thread; logs seq 1-2
        pool.run("doc", "And the budget?")  # the same idle thread; seq 3-4
        pool.append("doc", "user", "Note: the deadline moved.")  # seq 5, no thread has it
        pool.add_threads("doc", ["conv_added"])  # registered by hand: no cursor, holds nothing
        log = pool.history("doc")
    assert [e.seq for e in log] == [1, 2, 3, 4, 5]

    one = json.loads(ok(cli("status", "doc", "--json")))
    assert (one["log_length"], one["log_seq"]) == (5, 5)
    lags = {t["thread_id"]: t["lag"] for t in one["threads"]}
    assert lags == {first.thread_id: 1, "conv_added": 5}
    table = ok(cli("status")).splitlines()
    assert _numbers(table[0])[12] == "log"
    assert _numbers(table[1])[12] == "5"
    detail = ok(cli("status", "doc"))
    assert "log 5 entries, last seq 5" in detail
    for thread_id, lag in lags.items():
        row = next(r for r in detail.splitlines() if r.startswith(thread_id))
        assert _numbers(row)[-1] == str(lag)

    ok(cli("prewarm", "doc", "--size", "3", "--backend", "conversations", "--json"))
    after = json.loads(ok(cli("status", "doc", "--json")))
    [new] = [t for t in after["threads"] if t["thread_id"] not in lags]
    assert new["lag"] == 0  # registered with its cursor at the log's end
    assert {t["thread_id"]: t["lag"] for t in after["threads"] if t is not new} == lags
    # Read back upstream: the pre-warmed thread holds the whole log, in order.
    assert _held(thread_pool_openai_client, new["thread_id"]) == [(e.role, e.content) for e in log]


def test_status_of_an_unknown_pool_fails_on_one_line(cli: Cli) -> None:
    assert "unknown pool 'nope'" in one_line_error(cli("status", "nope"), 1)


# -- resize, drain, reap, delete -----------------------------------------------------------


def test_resize_sets_sizes_and_refuses_unknown_pools(cli: Cli, pool: ThreadPool) -> None:
    pool.add_threads("doc", ["t1", "t2", "t3"])
    out = json.loads(ok(cli("resize", "doc", "--min", "1", "--max", "2", "--json")))
    assert (out["min_size"], out["max_size"], out["threads"], out["retired"]) == (1, 2, 2, 1)
    assert "unknown pool" in one_line_error(cli("resize", "other", "--max", "3"), 1)
    ok(cli("resize", "other", "--max", "3", "--create"))
    assert pool.stats("other").max_size == 3
    assert "exceeds" in one_line_error(cli("resize", "doc", "--min", "5", "--max", "4"), 2)
    # A pool's own idle expiry: set, shown, removed; a bad one is a usage error.
    out = json.loads(ok(cli("resize", "doc", "--idle-expiry", "1d", "--json")))
    assert (out["idle_expiry"], out["max_size"]) == (86400.0, 2)
    assert pool.stats("doc").idle_expiry == 86400.0
    assert (
        json.loads(ok(cli("resize", "doc", "--idle-expiry", "none", "--json")))["idle_expiry"]
        is None
    )
    assert "duration" in one_line_error(cli("resize", "doc", "--idle-expiry", "soon"), 2)


def test_drain_waits_for_holders_and_stops_prewarm(cli: Cli, pool: ThreadPool) -> None:
    pool.add_threads("doc", ["t1", "t2"])
    held = pool.acquire("doc")
    line = one_line_error(cli("drain", "doc", "--timeout", "0.3"), 1)
    assert "still has 1 leased" in line
    pool.release(held)
    assert "drained" in ok(cli("drain", "doc", "--timeout", "5"))
    assert json.loads(ok(cli("status", "doc", "--json")))["draining"] is True
    out = ok(cli("prewarm", "doc", "--size", "4", "--backend", "assistants"))
    assert "draining: skipped" in out
    assert pool.stats("doc").threads == 2
    ok(cli("drain", "doc", "--off"))
    assert json.loads(ok(cli("status", "doc", "--json")))["draining"] is False


def test_reap_reclaims_expired_leases(
    cli: Cli, pool: ThreadPool, redis_client: redis.Redis
) -> None:
    pool.add_threads("doc", ["t1"])
    pool.configure("doc", ttl=16)  # the shortest the renew margin (15 s) allows
    held = pool.acquire("doc")
    ok_json = json.loads(ok(cli("reap", "doc", "--json")))
    assert ok_json == {"reaped": 0}  # not expired yet
    del held  # (a holder that died; the lease is left to expire)
    # No waiting 16 s: move the deadline into the past, as time would.
    redis_client.zadd(PoolKeys.of(pool.settings.key_prefix, "doc").leases, {"t1": 1})
    # No --backend: nothing to settle upstream, so the thread goes straight back to idle.
    assert "reclaimed 1 expired lease" in ok(cli("reap"))
    stats = pool.stats("doc")
    assert (stats.idle, stats.leased, stats.reaped) == (1, 0, 1)


def test_delete_refuses_leased_pools_then_deletes_upstream(
    cli: Cli, pool: ThreadPool, thread_pool_emulator: EmulatorServer
) -> None:
    ok(cli("prewarm", "doc", "--size", "3", "--backend", "assistants"))
    assert upstream_threads(thread_pool_emulator) == 3
    held = pool.acquire("doc")
    assert "leased" in one_line_error(cli("delete", "doc", "--yes"), 1)
    # Without --yes it asks; no answer is no.
    asked = cli("delete", "doc", "--force", stdin="")
    assert asked.returncode == 1
    assert asked.stderr.startswith("delete pool 'doc' with 3 thread(s) in Redis only")
    assert asked.stderr.strip().endswith("error: aborted")
    args = ["delete", "doc", "--yes", "--force", "--backend", "assistants", "--json"]
    out = json.loads(ok(cli(*args)))
    assert sorted(out["deleted_upstream"]) == sorted(out["threads"])
    assert len(out["threads"]) == 3
    assert upstream_threads(thread_pool_emulator) == 0
    assert ok(cli("status")).strip() == "no pools"
    del held


# -- export / import -----------------------------------------------------------------------


def _without_time(doc: dict[str, Any]) -> dict[str, Any]:
    for p in doc["pools"]:
        p.pop("exported_at")
    return doc


def test_export_delete_import_restores_the_same_pools(
    cli: Cli, pool: ThreadPool, tmp_path: Path
) -> None:
    pool.add_threads("doc-1", ["thread_a", "thread_b"])
    pool.configure("doc-1", min_size=1, max_size=5, ttl=42)
    pool.add_threads("doc-2", ["thread_x"])
    with pool.lease("doc-2"):
        pass  # fences and counters move
    held = pool.acquire("doc-1")
    before = {k: pool.stats(k) for k in ("doc-1", "doc-2")}
    ok(cli("export", "-o", "backup.json"))
    first = json.loads((tmp_path / "backup.json").read_text())
    for key in ("doc-1", "doc-2"):  # Redis lost; threads stay upstream (no --backend)
        ok(cli("delete", key, "--yes", "--force"))
    assert ok(cli("status")).strip() == "no pools"
    # --exact: nobody used the pools since the export, so its leases may stand.
    assert "restored 2 pool(s)" in ok(cli("import", "backup.json", "--exact"))
    again = json.loads(ok(cli("export")))
    assert _without_time(again) == _without_time(first)
    assert {k: pool.stats(k) for k in ("doc-1", "doc-2")} == before
    pool.release(held)  # the holder's lease survived the round trip
    # A second import changes nothing and says so.
    assert "exist already" in one_line_error(cli("import", "backup.json"), 1)


def test_import_checks_the_file_first(cli: Cli, tmp_path: Path) -> None:
    bad: dict[str, Any] = {
        "format": "thread-pool-backup",
        "version": 1,
        "pools": [{"key": "k", "keys": [{}]}],
    }
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    assert "exported_at is missing" in one_line_error(cli("import", "bad.json"), 2)
    bad["pools"][0]["exported_at"] = time.time()
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    assert "is not name, type, data" in one_line_error(cli("import", "bad.json"), 2)
    (tmp_path / "junk.json").write_text("not json")
    assert "not JSON" in one_line_error(cli("import", "junk.json"), 1)


# -- usage and failures --------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["status", "--bogus"],
        ["frobnicate"],
        ["prewarm", "k", "--size", "-1", "--backend", "assistants"],
        ["resize", "k"],
        ["status", "bad key!"],
        ["prewarm", "k", "--backend", "nope"],
        ["status", "--redis-url", "not-a-url"],
    ],
)
def test_bad_usage_exits_2_with_one_line(cli: Cli, args: list[str]) -> None:
    done = cli(*args)
    one_line_error(done, 2)
    assert done.stdout == ""


def test_unreachable_redis_exits_1_with_one_line(cli: Cli) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    line = one_line_error(cli("status", "--redis-url", url), 1)
    assert "redis unavailable" in line
    debug = cli("status", "--redis-url", url, "--debug")
    assert debug.returncode == 1
    assert "Traceback" in debug.stderr


def test_emulator_command_serves(env: dict[str, str], tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [*COMMAND, "emulator", "--port", "0", "--latency", "0.01", "--seed", "3"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "base_url=http://127.0.0.1:" in line
        from thread_pool.emulator import IntrospectionClient

        root = line.split("base_url=")[1].strip().removesuffix("/v1")
        assert IntrospectionClient(root).health()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=10)


def test_status_watch_follows_changes_until_ctrl_c(
    env: dict[str, str], pool: ThreadPool, tmp_path: Path
) -> None:
    pool.add_threads("doc", ["thread_a"])
    args = [*COMMAND, "status", "doc", "--watch", "--json", "--interval", "0.1"]
    proc = subprocess.Popen(args, env=env, cwd=tmp_path, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert json.loads(proc.stdout.readline())["stats"]["leased"] == 0
    held = pool.acquire("doc")
    try:
        give_up = time.monotonic() + 10
        while json.loads(proc.stdout.readline())["stats"]["leased"] != 1:
            assert time.monotonic() < give_up
    finally:
        pool.release(held)
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=10)
    assert proc.returncode == 0


def test_settings_come_from_dotenv_and_flags_override_them(
    env: dict[str, str], pool: ThreadPool, thread_pool_prefix: str, tmp_path: Path
) -> None:
    pool.add_threads("doc", ["thread_a"])
    (tmp_path / ".env").write_text(f"THREAD_POOL_KEY_PREFIX={thread_pool_prefix}\n")
    bare = {k: v for k, v in env.items() if k != "THREAD_POOL_KEY_PREFIX"}
    run = [*COMMAND, "status", "--json"]
    found = subprocess.run(run, env=bare, cwd=tmp_path, capture_output=True, text=True, check=True)
    assert [p["key"] for p in json.loads(found.stdout)["pools"]] == ["doc"]
    other = [*run, "--key-prefix", f"{thread_pool_prefix}-other"]
    empty = subprocess.run(
        other, env=bare, cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert json.loads(empty.stdout) == {"pools": []}
