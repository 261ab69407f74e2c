"""Every bad input at a public entry point is a ``ThreadPoolError`` subclass with a clear message,
and nothing is written: one test per instance that once reached callers untyped or silently."""

from __future__ import annotations

import io
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import redis
from rich.console import Console

from tests.support.snapshot import everything
from tests.support.upstream import requests_made
from thread_pool import (
    AsyncThreadPool,
    ConversationsBackend,
    CorruptState,
    InvalidArgument,
    InvalidSettings,
    LeaseNotOwned,
    PoolAdmin,
    PoolTimeout,
    Settings,
    StoreRefused,
    ThreadPool,
    UnknownSettingWarning,
    build_backend,
)
from thread_pool._store.keys import PoolKeys
from thread_pool.admin import Pacer
from thread_pool.cli.render import pool_detail, pools_table
from thread_pool.emulator import EmulatorServer
from thread_pool.testing.plugin import cluster_mode
from thread_pool.testing.redis_server import RedisServer


@pytest.fixture
def pool(thread_pool_redis_url: str, thread_pool_prefix: str) -> Iterator[ThreadPool]:
    with ThreadPool(redis_url=thread_pool_redis_url, key_prefix=thread_pool_prefix) as made:
        yield made


# -- 7: settings by name ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [ThreadPool, AsyncThreadPool, PoolAdmin, Settings, Settings.load],
    ids=["ThreadPool", "AsyncThreadPool", "PoolAdmin", "Settings", "Settings.load"],
)
def test_a_misspelt_setting_is_refused_naming_the_closest(make: object) -> None:
    assert callable(make)
    with pytest.raises(InvalidSettings) as caught:
        make(max_sise=4, leas_ttl=5, redis_ur="redis://127.0.0.1:1/0")
    message = str(caught.value)
    for wrong, right in (("max_sise", "max_size"), ("leas_ttl", "lease_ttl")):
        assert f"unknown setting {wrong!r} (did you mean {right!r}?)" in message
    assert "'redis_ur'" in message


def test_a_word_close_to_no_setting_is_refused_without_a_guess() -> None:
    with pytest.raises(InvalidSettings, match=r"unknown setting 'colour'$"):
        Settings(colour="red")


def test_a_bad_value_given_to_settings_directly_is_invalid_settings() -> None:
    with pytest.raises(InvalidSettings, match="THREAD_POOL_MAX_SIZE"):
        Settings(max_size=0)


def test_an_unknown_variable_in_the_environment_is_warned_about(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("THREAD_POOL_MAX_SIS", "4")
    with pytest.warns(UnknownSettingWarning, match=r"THREAD_POOL_MAX_SIS \(did you mean "):
        loaded = Settings.load()
    assert loaded.max_size == Settings.model_fields["max_size"].default


def test_an_unknown_variable_in_dotenv_is_warned_about(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text("THREAD_POOL_LEAS_TTL=5\nOTHER_TOOL_SETTING=1\n")
    monkeypatch.chdir(tmp_path)
    with pytest.warns(UnknownSettingWarning) as caught:
        Settings.load()
    assert "THREAD_POOL_LEAS_TTL (did you mean THREAD_POOL_LEASE_TTL?)" in str(caught[0].message)
    assert "OTHER_TOOL" not in str(caught[0].message)


def test_known_variables_raise_no_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THREAD_POOL_MAX_SIZE", "4")
    monkeypatch.setenv("THREAD_POOL_TEST_REDIS", "single")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert Settings.load().max_size == 4


# -- 8: third-party errors typed -------------------------------------------------------------


def test_a_redis_url_with_a_wrong_scheme_is_invalid_settings() -> None:
    with pytest.raises(InvalidSettings, match=r"THREAD_POOL_REDIS_URL.*schemes"):
        ThreadPool(redis_url="http://user:hunter2@127.0.0.1:6379/0", redis_cluster=False)
    with pytest.raises(InvalidSettings, match="THREAD_POOL_REDIS_URL"):
        PoolAdmin(redis_url="redis://127.0.0.1:port/0", redis_cluster=False)


@pytest.mark.skipif(cluster_mode(), reason="a cluster has database 0 only")
def test_a_database_the_server_lacks_is_invalid_settings(thread_pool_redis_url: str) -> None:
    url = thread_pool_redis_url.rsplit("/", 1)[0] + "/99"
    with ThreadPool(redis_url=url) as pool, pytest.raises(InvalidSettings, match="database"):
        pool.stats("doc")


@pytest.fixture(scope="module")
def acl_server() -> Iterator[RedisServer]:
    """A private server (the shared one is never reconfigured) with a user that may not run
    scripts."""
    with RedisServer() as server:
        admin = redis.Redis.from_url(server.url)
        admin.acl_setuser(
            "noscripts",
            enabled=True,
            passwords=["+pw"],
            keys=["*"],
            commands=["+@all", "-@scripting"],
        )
        admin.close()
        yield server


def test_an_acl_denial_is_store_refused(acl_server: RedisServer) -> None:
    url = f"redis://noscripts:pw@127.0.0.1:{acl_server.port}/0"
    with ThreadPool(redis_url=url, redis_cluster=False, key_prefix="acl") as pool:
        with pytest.raises(StoreRefused, match="redis refused stats on pool 'doc'"):
            pool.stats("doc")


def test_a_wrong_password_is_store_refused_without_the_password(acl_server: RedisServer) -> None:
    url = f"redis://noscripts:wrong-hunter2@127.0.0.1:{acl_server.port}/0"
    with ThreadPool(redis_url=url, redis_cluster=False, key_prefix="acl") as pool:
        with pytest.raises(StoreRefused) as caught:
            pool.stats("doc")
    assert "hunter2" not in str(caught.value)


def test_release_of_none_is_invalid_argument(pool: ThreadPool) -> None:
    with pytest.raises(InvalidArgument, match="expected a lease from acquire\\(\\), not NoneType"):
        pool.release(None)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument):
        pool.renew("lease", 5)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument):
        pool.check(object())  # type: ignore[arg-type]


@pytest.mark.parametrize("ids", [None, "thrd", b"thrd", 42], ids=repr)
def test_add_threads_refuses_what_is_no_list_of_ids(
    pool: ThreadPool, redis_client: redis.Redis, thread_pool_prefix: str, ids: object
) -> None:
    with pytest.raises(InvalidArgument, match="thread_ids must be a list"):
        pool.add_threads("doc", ids)  # type: ignore[arg-type]
    assert everything(redis_client, thread_pool_prefix) == {}


@pytest.fixture
def turn_pool(
    thread_pool_redis_url: str,
    thread_pool_prefix: str,
    thread_pool_openai_client: openai.OpenAI,
) -> Iterator[ThreadPool]:
    backend = ConversationsBackend(thread_pool_openai_client, model="emulated")
    with ThreadPool(
        backend=backend, redis_url=thread_pool_redis_url, key_prefix=thread_pool_prefix
    ) as made:
        yield made


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"bogus": 1}, "unknown parameter 'bogus'"),
        ({"temprature": 0.5}, "unknown parameter 'temprature' \\(did you mean 'temperature'\\?\\)"),
        ({"input": "x"}, "unknown parameter 'input'"),  # the backend sets it itself
        ({"stream": True}, "stream is not supported through run"),
        ({"stream": False}, "stream is not supported through run"),
        # What the request's JSON body cannot carry (found by the entry-point fuzzer: each
        # failed inside the SDK with a bare TypeError/ValueError/UnicodeEncodeError).
        ({"max_output_tokens": b""}, "max_output_tokens must be JSON data.*not bytes"),
        ({"temperature": float("inf")}, "temperature must be a finite number"),
        ({"temperature": float("nan")}, "temperature must be a finite number"),
        ({"instructions": "a\ud800"}, "instructions holds text that is not valid Unicode"),
        ({"tools": [{"type": object()}]}, r"tools\[0\]\['type'\] must be JSON data"),
        ({"extra_body": {1: "x"}}, "extra_body has a key of type int"),
    ],
    ids=lambda v: str(v)[:20],
)
def test_run_refuses_parameters_upstream_would_not_take_before_anything_happens(
    turn_pool: ThreadPool,
    thread_pool_emulator: EmulatorServer,
    redis_client: redis.Redis,
    thread_pool_prefix: str,
    params: dict[str, Any],
    expected: str,
) -> None:
    before = requests_made(thread_pool_emulator)
    with pytest.raises(InvalidArgument, match=expected):
        turn_pool.run("doc", "hello", **params)
    assert requests_made(thread_pool_emulator) == before
    assert everything(redis_client, thread_pool_prefix) == {}


def test_a_held_lease_refuses_stream_and_stays_usable(turn_pool: ThreadPool) -> None:
    with turn_pool.lease("doc") as held:
        with pytest.raises(InvalidArgument, match="stream"):
            held.run("hello", stream=True)
        assert held.run("hello", temperature=0.2).reply


def test_run_names_include_what_upstream_takes(turn_pool: ThreadPool) -> None:
    assert turn_pool.run("doc", "hello", max_output_tokens=50, extra_headers={"x-a": "b"}).reply
    nested = {"format": {"type": "text"}}  # JSON data at any depth passes
    assert turn_pool.run("doc", "hello", text=nested, extra_body={"top_p": 0.5}).reply


@pytest.mark.parametrize("ttl", [0.0004, 0.0, -1.0, float("nan"), float("inf")])
def test_renew_refuses_a_ttl_below_a_millisecond(pool: ThreadPool, ttl: float) -> None:
    pool.add_threads("doc", ["thread_a"])
    held = pool.acquire("doc")
    deadline = held.deadline
    with pytest.raises(InvalidArgument, match="ttl"):
        pool.renew(held, ttl)
    assert held.deadline == deadline
    assert pool.renew(held, 0.001) < deadline  # 1 ms is taken as 1 ms, not the default


@pytest.mark.parametrize(
    ("record", "expected"),
    [("no-bars-at-all", "not 4 fields"), ("tok|x|1|me", "fence in the hold.*not a number")],
)
def test_status_of_a_damaged_hold_is_corrupt_state_naming_the_pool(
    pool: ThreadPool,
    redis_client: redis.Redis,
    thread_pool_redis_url: str,
    thread_pool_prefix: str,
    record: str,
    expected: str,
) -> None:
    pool.add_threads("doc", ["thread_a"])
    held = pool.acquire("doc")
    redis_client.hset(PoolKeys.of(thread_pool_prefix, "doc").holds, "thread_a", record)
    with PoolAdmin(redis_url=thread_pool_redis_url, key_prefix=thread_pool_prefix) as admin:
        with pytest.raises(CorruptState, match=f"status of pool 'doc' is damaged: .*{expected}"):
            admin.status("doc")
    assert held.thread_id == "thread_a"


def test_status_of_a_non_numeric_fence_is_corrupt_state(
    pool: ThreadPool, redis_client: redis.Redis, thread_pool_redis_url: str, thread_pool_prefix: str
) -> None:
    pool.add_threads("doc", ["thread_a"])
    redis_client.hset(PoolKeys.of(thread_pool_prefix, "doc").threads, "thread_a", "1e400x")
    with PoolAdmin(redis_url=thread_pool_redis_url, key_prefix=thread_pool_prefix) as admin:
        with pytest.raises(CorruptState, match="fence of thread 'thread_a'"):
            admin.status("doc")


# -- 10: messages that say what happened -----------------------------------------------------


def test_pool_timeout_says_how_long_it_waited_and_the_pool_s_size_and_waiters(
    pool: ThreadPool,
) -> None:
    pool.add_threads("doc", ["thread_a"])
    pool.configure("doc", max_size=1)
    held = pool.acquire("doc")

    def other() -> None:  # a second caller waiting meanwhile; it gets the thread at the end
        pool.release(pool.acquire("doc", timeout=5))

    waiter = threading.Thread(target=other)
    waiter.start()
    deadline = time.monotonic() + 5
    while pool.stats("doc").waiting == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    with pytest.raises(PoolTimeout) as caught:
        pool.acquire("doc", timeout=0.3)
    error = caught.value
    assert error.waited is not None
    assert 0.3 <= error.waited < 2
    assert (error.threads, error.max_size, error.waiting) == (1, 1, 1)
    assert "within 0.3s (waited 0." in str(error)
    assert "1 of 1 thread(s) leased, max_size 1, 1 other caller(s) waiting" in str(error)
    pool.release(held)  # the other waiter gets it
    waiter.join(5)


def test_a_second_release_says_the_lease_was_already_released(pool: ThreadPool) -> None:
    pool.add_threads("doc", ["thread_a"])
    held = pool.acquire("doc")
    pool.release(held)
    with pytest.raises(LeaseNotOwned, match="was already released"):
        pool.release(held)


def test_status_shows_an_expired_unreaped_lease_as_expired(
    thread_pool_redis_url: str, thread_pool_prefix: str
) -> None:
    options: dict[str, Any] = {
        "redis_url": thread_pool_redis_url,
        "key_prefix": thread_pool_prefix,
        "lease_ttl": 0.2,
        "renew_margin": 0.1,
    }
    with ThreadPool(**options) as pool, PoolAdmin(**options) as admin:
        pool.add_threads("doc", ["thread_a", "thread_b"])
        pool.acquire("doc")
        time.sleep(0.3)
        status = admin.status("doc")
    states = {t.thread_id: t.state for t in status.threads}
    assert sorted(states.values()) == ["expired", "idle"]
    assert status.expired == 1
    shown = io.StringIO()
    console = Console(file=shown, width=200, color_system=None)
    console.print(pools_table([status]))
    console.print(pool_detail(status))
    text = shown.getvalue()
    assert "1 expired" in text
    assert " ok" not in text
    assert "expired 0." in text
    assert "s ago" in text
    assert "left -" not in text
    assert "-0." not in text


def test_a_backend_that_is_none_is_refused_where_it_is_handed_in(
    thread_pool_redis_url: str, thread_pool_prefix: str
) -> None:
    with pytest.raises(InvalidArgument, match="backend must implement"):
        ThreadPool(backend="conversations", redis_url=thread_pool_redis_url)  # type: ignore[arg-type]
    with PoolAdmin(redis_url=thread_pool_redis_url, key_prefix=thread_pool_prefix) as admin:
        with pytest.raises(InvalidArgument, match="backend must implement"):
            admin.grow_one("doc", 2, None)  # type: ignore[arg-type]
        assert admin.pools() == []  # nothing reserved, nothing registered


def test_backend_constructors_refuse_what_they_cannot_use(
    thread_pool_openai_client: openai.OpenAI,
) -> None:
    with pytest.raises(InvalidArgument, match=r"client must be an openai\.OpenAI"):
        ConversationsBackend("https://api.openai.com", model="m")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match=r"unknown backend option.*modle"):
        build_backend("conversations", thread_pool_openai_client, modle="m")
    with pytest.raises(InvalidArgument, match="poll_interval"):
        ConversationsBackend(thread_pool_openai_client, poll_interval=float("nan"))


def test_a_client_that_is_no_redis_client_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="redis-py client, not str"):
        ThreadPool(client="redis://127.0.0.1:6379/0")  # type: ignore[arg-type]


def test_flags_must_be_booleans(
    pool: ThreadPool, thread_pool_redis_url: str, thread_pool_prefix: str
) -> None:
    pool.add_threads("doc", ["thread_a"])
    with PoolAdmin(redis_url=thread_pool_redis_url, key_prefix=thread_pool_prefix) as admin:
        for value in ("", None, "no", 1):
            with pytest.raises(InvalidArgument, match="draining must be True or False"):
                admin.set_draining("doc", value)  # type: ignore[arg-type]
        assert not admin.status("doc").draining
    held = pool.acquire("doc")
    with pytest.raises(InvalidArgument, match="starts_run must be True or False"):
        pool.check(held, starts_run="yes")  # type: ignore[arg-type]


@pytest.mark.parametrize("timeout", [float("nan"), float("inf"), -1.0])
def test_drain_refuses_a_timeout_that_is_no_finite_number_before_marking_the_pool(
    pool: ThreadPool, thread_pool_redis_url: str, thread_pool_prefix: str, timeout: float
) -> None:
    pool.add_threads("doc", ["thread_a"])
    with PoolAdmin(redis_url=thread_pool_redis_url, key_prefix=thread_pool_prefix) as admin:
        with pytest.raises(InvalidArgument, match="timeout"):
            admin.drain("doc", timeout)
        with pytest.raises(InvalidArgument, match="poll"):
            admin.drain("doc", 1, poll=float("nan"))
        assert not admin.status("doc").draining


@pytest.mark.parametrize("rate", [float("nan"), 0.0, float("inf")])
def test_a_pacer_refuses_a_rate_that_is_no_finite_positive_number(rate: float) -> None:
    with pytest.raises(InvalidArgument, match="rate"):
        Pacer(rate)
