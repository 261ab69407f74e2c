"""Bad input to the ``thread-pool`` command: exit 2 and one line, at once, for every numeric
option (``nan``, infinities, out of range) and for what the library refuses once a command runs."""

from __future__ import annotations

import gc
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.environment import COMMAND, clean_environment
from thread_pool import ThreadPool
from thread_pool.cli.app import run
from thread_pool.emulator import EmulatorServer


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the command in this process (its failures reported as a user sees them)."""
    code = run(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(autouse=True)
def env(
    monkeypatch: pytest.MonkeyPatch, thread_pool_redis_url: str, thread_pool_prefix: str
) -> None:
    monkeypatch.setenv("THREAD_POOL_REDIS_URL", thread_pool_redis_url)
    monkeypatch.setenv("THREAD_POOL_KEY_PREFIX", thread_pool_prefix)


def usage_error(result: tuple[int, str, str]) -> str:
    code, out, err = result
    assert code == 2, (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    assert "Traceback" not in err
    assert "unexpected" not in err
    return lines[0]


BAD_NUMBERS = ["nan", "NaN", "inf", "-inf", "1e400"]

# Every numeric option of every command, with the values it must refuse besides BAD_NUMBERS.
OPTIONS = [
    (["status"], "--interval", ["-1", "0", "0.05"]),
    (["status", "--watch"], "--interval", ["-1"]),
    (["resize", "doc"], "--ttl", ["0", "-1", "0.0004", "1e6"]),
    (["resize", "doc"], "--min", ["-1", "x"]),
    (["resize", "doc"], "--max", ["0", "1.5", "100001"]),
    (["drain", "doc"], "--timeout", ["-1", "1e6"]),
    (["prewarm", "doc", "--backend", "conversations"], "--rate", ["0", "-1", "1e9"]),
    (["prewarm", "doc", "--backend", "conversations"], "--size", ["-1"]),
    (["prewarm", "doc", "--backend", "conversations"], "--concurrency", ["0", "1000"]),
    (["emulator"], "--fault-rate", ["-0.1", "1.5"]),
    (["emulator"], "--latency", ["-1", "0.5-nan", "0.8-0.2", "abc", "1e9"]),
    (["emulator"], "--port", ["-1", "70000"]),
    (["stress"], "--run-latency", ["-1", "nan-1", "0.8-0.2"]),
    (["stress"], "--workers", ["0", "1e3"]),
    (["stress"], "--iterations", ["0"]),
    (["stress"], "--pool-size", ["0"]),
    (["metrics"], "--port", ["-1", "65536"]),
]


@pytest.mark.parametrize(
    ("command", "option", "value"),
    [(c, o, v) for c, o, extra in OPTIONS for v in [*BAD_NUMBERS, *extra]],
    ids=lambda x: " ".join(x) if isinstance(x, list) else x,
)
def test_every_numeric_option_refuses_what_is_no_number_in_range(
    capsys: pytest.CaptureFixture[str], command: list[str], option: str, value: str
) -> None:
    started = time.monotonic()
    line = usage_error(cli(capsys, *command, f"{option}={value}"))
    assert option in line
    assert time.monotonic() - started < 5  # refused at once: no wait, no busy loop


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["status", "--redis-url", "http://127.0.0.1:6379/0"], "schemes"),
        (["status", "--redis-url", "redis://127.0.0.1:port/0"], "Port"),
        (["resize", "doc", "--create", "--ttl", "1"], "renew margin"),
        (["export", "bad key"], "pool key"),
        (["status", "{x}"], "pool key"),
    ],
)
def test_input_the_library_refuses_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], args: list[str], expected: str
) -> None:
    assert expected in usage_error(cli(capsys, *args))


def test_an_unknown_variable_is_one_warning_line_and_the_command_runs(
    thread_pool_redis_url: str, thread_pool_prefix: str, tmp_path: Path
) -> None:
    env = {
        **clean_environment(),
        "THREAD_POOL_REDIS_URL": thread_pool_redis_url,
        "THREAD_POOL_KEY_PREFIX": thread_pool_prefix,
        "THREAD_POOL_KEY_PREFX": "typo",
    }
    done = subprocess.run(
        [*COMMAND, "status"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines() == [
        "warning: ignored environment variable(s) that name no setting: THREAD_POOL_KEY_PREFX "
        "(did you mean THREAD_POOL_KEY_PREFIX?)"
    ]


def test_a_command_closes_the_upstream_client_it_opened(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    thread_pool_emulator: EmulatorServer,
    thread_pool_redis_url: str,
    thread_pool_prefix: str,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", thread_pool_emulator.api_key)
    monkeypatch.setenv("OPENAI_BASE_URL", thread_pool_emulator.base_url)
    with ThreadPool(redis_url=thread_pool_redis_url, key_prefix=thread_pool_prefix) as pool:
        pool.add_threads("doc", ["thread_gone_upstream"])
    code, out, err = cli(capsys, "delete", "doc", "--yes", "--backend", "conversations")
    assert code == 0, err
    assert "1 already gone" in out
    # A client left open is reported as an unclosed socket when collected: pytest fails the
    # test on it (filterwarnings = error).
    gc.collect()
