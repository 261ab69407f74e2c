"""Fuzzing the ``thread-pool`` commands with any options and values: each run exits 0, 1 (a typed
failure) or 2 (a usage error) with one ``error:`` line, never a traceback or an unforeseen
exception, and a usage error wrote nothing to Redis.

Run in this process through the same entry point as the installed command (``cli.app.run``);
``status --watch``, ``emulator`` and ``stress`` run until stopped or for long, so only their
refusals are fuzzed (tests/admin/test_cli_input.py).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.snapshot import everything, writes
from thread_pool import ThreadPool
from thread_pool.cli.app import run
from thread_pool.emulator import EmulatorServer

VALUES = st.one_of(
    st.sampled_from(
        ["nan", "inf", "-inf", "-1", "0", "0.0004", "0.5", "1", "3", "1e400", "1e6", "99999999"]
    ),
    st.sampled_from(["doc", "other", "bad key", "", "{x}", "x" * 201, "-", "--json"]),
    st.text(max_size=12).filter(lambda t: "\x00" not in t),
)
COMMANDS: dict[str, list[str]] = {
    "status": ["--json", "--interval"],
    "resize": ["--min", "--max", "--ttl", "--create", "--json"],
    "reap": ["--json"],
    "drain": ["--timeout", "--off", "--json"],
    "delete": ["--yes", "--force", "--json"],
    "export": ["-o"],
    "prewarm": ["--size", "--concurrency", "--rate", "--json"],
}
FLAGS = {"--json", "--create", "--off", "--yes", "--force"}
# Values each option takes, drawn more often than anything else so that commands get to run.
GOOD = {
    "--min": ["0", "1", "2"],
    "--max": ["1", "3", "4"],
    "--size": ["0", "2", "4"],
    "--ttl": ["20", "60"],
    "--interval": ["0.5"],
    "--timeout": ["0", "0.2"],
    "--concurrency": ["1", "2"],
    "--rate": ["5", "100"],
}
SHARED = ["--backend", "--key-prefix", "--redis-url"]


@st.composite
def command_lines(draw: st.DrawFn) -> list[str]:
    name = draw(st.sampled_from(sorted(COMMANDS)))
    args = [name, "--backend", "conversations"] if name == "prewarm" else [name]
    if name not in ("status", "reap", "export") or draw(st.booleans()):
        args.append(draw(st.one_of(st.sampled_from(["doc", "other", "doc", "new"]), VALUES)))
    for option in draw(st.lists(st.sampled_from(COMMANDS[name] * 4 + SHARED), max_size=4)):
        args.append(option)
        if option == "--backend":
            args.append(draw(st.sampled_from(["conversations"] * 3 + ["assistants", "nan"])))
        elif option == "--redis-url":
            args.append(draw(st.sampled_from(["http://x", "redis://127.0.0.1:port/0", "nan"])))
        elif option == "--key-prefix":
            args.append(draw(st.sampled_from(["a:b", "", "x" * 65])))  # never the test's own
        elif option == "-o":
            args.append(draw(st.sampled_from(["-", "/nonexistent/dir/out.json"])))
        elif option not in FLAGS:
            good = st.sampled_from(GOOD.get(option, ["1"]))
            args.append(draw(st.one_of(good, good, VALUES)))
    return args


def _fuzz(
    capsys: pytest.CaptureFixture[str],
    client: redis.Redis,
    prefix: str,
    pool: ThreadPool,
    examples: int,
) -> Counter[str]:
    codes: Counter[str] = Counter()
    written: list[str] = []

    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck))
    @given(args=command_lines())
    def one(args: list[str]) -> None:
        # An earlier example may have shrunk the pool (resize --max 1): room for both again.
        pool.configure("doc", min_size=0, max_size=8)
        pool.add_threads("doc", ["thread_a", "thread_b"])
        before = everything(client, prefix)
        code = run(args)
        _out, err = capsys.readouterr()
        codes[str(code)] += 1
        assert code in (0, 1, 2), (args, code, err)
        assert "Traceback" not in err, (args, err)
        assert "unexpected" not in err, (args, err)
        if code:
            # delete without --yes asks first (on stderr); with no answer it is aborted.
            lines = err.split("[y/N]: ")[-1].strip().splitlines()
            assert len(lines) == 1, (args, err)
            assert lines[0].startswith("error: "), (args, err)
        if code == 2:
            changed = writes(before, everything(client, prefix))
            if changed:
                written.append(f"{args}: {changed}")

    one()
    print(f"\ncli: {sum(codes.values())} runs, exit codes {dict(codes.most_common())}")
    print(f"  usage errors that wrote: {len(written)}")
    assert written == []
    return codes


@pytest.fixture
def pool(
    monkeypatch: pytest.MonkeyPatch,
    thread_pool_redis_url: str,
    thread_pool_prefix: str,
    thread_pool_emulator: EmulatorServer,
) -> Any:
    for name, value in {
        "THREAD_POOL_REDIS_URL": thread_pool_redis_url,
        "THREAD_POOL_KEY_PREFIX": thread_pool_prefix,
        "OPENAI_API_KEY": thread_pool_emulator.api_key,
        "OPENAI_BASE_URL": thread_pool_emulator.base_url,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("THREAD_POOL_MAX_SIZE", "4")  # prewarm stays small
    with ThreadPool() as made:
        yield made


def test_every_command_answers_any_options_with_an_exit_code_and_one_line(
    capsys: pytest.CaptureFixture[str],
    redis_client: redis.Redis,
    thread_pool_prefix: str,
    pool: ThreadPool,
) -> None:
    codes = _fuzz(capsys, redis_client, thread_pool_prefix, pool, 120)
    assert codes["0"]
    assert codes["2"]


@pytest.mark.slow
def test_every_command_answers_any_options_at_length(
    capsys: pytest.CaptureFixture[str],
    redis_client: redis.Redis,
    thread_pool_prefix: str,
    pool: ThreadPool,
) -> None:
    _fuzz(capsys, redis_client, thread_pool_prefix, pool, 1000)
