"""``thread-pool stress`` run as a user runs it (a subprocess): its embedded emulator over HTTP,
the real Redis of the test session, small sizes."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.environment import COMMAND, clean_environment
from thread_pool.emulator import EmulatorServer
from thread_pool.testing.stress import Sample, summarise

KEYS = ["strategy", "requests", "succeeded", "failed", "lock_errors", "wall_s", "turns_per_s"]
KEYS += ["p50_s", "p95_s"]

Stress = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def stress(thread_pool_redis_url: str, tmp_path: Path) -> Stress:
    """Run ``thread-pool stress ARGS`` with the session's Redis; returns the finished process."""
    env = clean_environment()
    env["THREAD_POOL_REDIS_URL"] = thread_pool_redis_url

    def run(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*COMMAND, "stress", *args],
            env={**env, **extra},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )

    return run


def rows(done: subprocess.CompletedProcess[str]) -> dict[str, dict[str, Any]]:
    assert done.returncode == 0, (done.returncode, done.stdout, done.stderr)
    data = json.loads(done.stdout)
    assert isinstance(data, list)
    return {row["strategy"]: row for row in data}


def test_all_strategies_json_has_the_exact_keys_and_lock_and_pool_lose_nothing(
    stress: Stress,
) -> None:
    out = rows(stress("--workers", "4", "--iterations", "3", "--run-latency", "0.1", "--json"))
    assert list(out) == ["naive", "lock", "pool"]
    for row in out.values():
        assert list(row) == KEYS
        assert row["requests"] == 12
        assert row["succeeded"] + row["failed"] == 12
    for name in ("lock", "pool"):
        assert out[name]["succeeded"] == 12, out[name]
        assert out[name]["lock_errors"] == 0, out[name]
        assert out[name]["turns_per_s"] > 0
        assert 0 < out[name]["p50_s"] <= out[name]["p95_s"]


def test_naive_fails_as_measured_with_the_default_five_by_ten(stress: Stress) -> None:
    naive = rows(stress("--strategy", "naive", "--json"))["naive"]
    assert naive["requests"] == 50
    assert naive["failed"] > 25, naive
    assert naive["lock_errors"] > 50, naive


def test_pool_in_processes_on_the_conversations_api(stress: Stress) -> None:
    args = ["--strategy", "pool", "--processes", "--backend", "conversations", "--json"]
    pool = rows(stress(*args, "--workers", "3", "--iterations", "2", "--run-latency", "0.1"))
    assert pool["pool"]["succeeded"] == 6
    assert pool["pool"]["lock_errors"] == 0


def test_the_table_names_every_strategy(stress: Stress) -> None:
    done = stress("--workers", "2", "--iterations", "1", "--run-latency", "0.05")
    assert done.returncode == 0, done.stderr
    header, *lines = done.stdout.splitlines()[1:]
    assert header.split()[:4] == ["strategy", "requests", "succeeded", "failed"]
    assert [line.split()[0] for line in lines] == ["naive", "lock", "pool"]


@pytest.mark.parametrize(
    "args",
    [
        ["--strategy", "bogus"],
        ["--workers", "0"],
        ["--iterations", "-1"],
        ["--run-latency", "soon"],
        ["--run-latency", "0.8-0.3"],
        ["--backend", "nope"],
        ["--no-such-flag"],
    ],
)
def test_bad_flags_exit_2(stress: Stress, args: list[str]) -> None:
    done = stress(*args)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr.startswith("error: ")


def test_base_url_lock_errors_match_upstream_and_nothing_is_left_there(
    stress: Stress, thread_pool_emulator: EmulatorServer
) -> None:
    """Against an endpoint it did not start: the lock errors it counts are the ones upstream
    refused, and the threads and assistant it created upstream are deleted."""
    admin = thread_pool_emulator.admin
    before = admin.stats()
    out = rows(
        stress(
            *("--base-url", thread_pool_emulator.base_url, "--json"),
            *("--workers", "4", "--iterations", "3"),
            OPENAI_API_KEY=thread_pool_emulator.api_key,
        )
    )
    after = admin.stats()
    refused = after["lock_errors"]["total"] - before["lock_errors"]["total"]
    assert refused == sum(row["lock_errors"] for row in out.values()) > 0
    assert out["pool"]["succeeded"] == out["lock"]["succeeded"] == 12

    def deletes(stats: dict[str, Any]) -> int:
        return sum(n for name, n in stats["requests"].items() if name.startswith("DELETE"))

    # Two shared threads (naive, lock), the pool's threads, the assistant.
    assert deletes(after) - deletes(before) >= 4


@pytest.mark.thread_pool_emulator(require_input=True)
def test_conversations_naive_and_lock_send_input_like_a_user_would(
    stress: Stress, thread_pool_emulator: EmulatorServer
) -> None:
    """Against a server that refuses a response without ``input`` (as llama-stack does), every
    strategy makes valid requests: the lock and the pool lose nothing, and the naive path's
    failures are lock errors only."""
    out = rows(
        stress(
            *("--base-url", thread_pool_emulator.base_url, "--json"),
            *("--backend", "conversations", "--workers", "3", "--iterations", "2"),
            OPENAI_API_KEY=thread_pool_emulator.api_key,
        )
    )
    assert out["pool"]["succeeded"] == out["lock"]["succeeded"] == 6
    stats = thread_pool_emulator.admin.stats()
    # Every 400 was a lock error (the naive path's), none a refused request.
    assert stats["statuses"].get("400", 0) == stats["lock_errors"]["total"], stats
    # The message travels as the response's input: no separate item create.
    assert "POST /v1/conversations/{conversation_id}/items" not in stats["requests"]


def test_base_url_needs_a_key(stress: Stress) -> None:
    done = stress("--base-url", "http://127.0.0.1:9/v1")
    assert done.returncode == 2
    assert "OPENAI_API_KEY" in done.stderr


def test_summary_counts_wall_time_from_first_start_to_last_end() -> None:
    samples = [Sample(True, 10.0, 11.0, 1.0, 0), Sample(True, 10.5, 12.0, 1.5, 0)]
    samples.append(Sample(False, 10.2, 10.3, 0.1, 4))
    row = summarise("x", samples)
    assert (row.requests, row.succeeded, row.failed, row.lock_errors) == (3, 2, 1, 4)
    assert row.wall_s == 2.0
    assert row.turns_per_s == 1.0
    assert (row.p50_s, row.p95_s) == (1.25, 1.5)
