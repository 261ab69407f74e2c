"""No Redis password and no API key in any message, repr, traceback, log line, CLI output or
export: a canary secret through every error path, on a single server and on a cluster."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import openai
import pytest
import redis

from tests.support.security import assert_absent, canary, cli, exception_text
from thread_pool import (
    AsyncThreadPool,
    PoolAdmin,
    RetryPolicy,
    Settings,
    ThreadPool,
    build_backend,
)
from thread_pool.emulator import start_emulator
from thread_pool.testing.redis_server import LocalCluster, RedisServer, free_port

PASSWORD = canary("redis")
WRONG = canary("wrong")  # a mistyped password is nearly the real one: as secret


@dataclass(frozen=True)
class Case:
    """A Redis URL carrying ``secret``, and whether it names a cluster node."""

    name: str
    url: str
    cluster: bool
    secret: str
    works: bool = False


@pytest.fixture(scope="module")
def single() -> Iterator[RedisServer]:
    with RedisServer(password=PASSWORD) as server:
        _limited_user(server.url)
        yield server


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    with LocalCluster(masters=1, password=PASSWORD) as nodes:
        _limited_user(nodes.url)
        yield nodes


def _limited_user(url: str) -> None:
    """A user that may connect but run nothing the library needs: every call an ACL denial."""
    with redis.Redis.from_url(url) as client:
        client.execute_command("ACL", "SETUSER", "limited", "on", f">{PASSWORD}", "+ping")


def _cases(port: int, cluster: bool) -> list[Case]:
    at = f"127.0.0.1:{port}/0"
    return [
        Case("password", f"redis://:{PASSWORD}@{at}", cluster, PASSWORD, works=True),
        Case("user", f"redis://default:{PASSWORD}@{at}?socket_timeout=5", cluster, PASSWORD, True),
        Case("wrong password", f"redis://:{WRONG}@{at}", cluster, WRONG),
        Case("acl denial", f"redis://limited:{PASSWORD}@{at}", cluster, PASSWORD),
        Case("unreachable", f"redis://:{PASSWORD}@127.0.0.1:{free_port()}/0", cluster, PASSWORD),
    ]


@pytest.fixture(params=["single", "cluster"])
def cases(request: pytest.FixtureRequest) -> list[Case]:
    if request.param == "single":
        return _cases(request.getfixturevalue("single").port, cluster=False)
    return _cases(request.getfixturevalue("cluster").nodes[0].port, cluster=True)


def _outcome(run: Callable[[], object]) -> str:
    """What a caller sees of ``run``: its error in every form, or nothing."""
    try:
        run()
    except Exception as exc:  # whatever it is, it must not show the secret
        return exception_text(exc)
    return ""


def _blocking(opts: dict[str, Any], seen: list[str]) -> None:
    with ThreadPool(**opts, acquire_timeout=1) as pool:
        seen.append(repr(pool.settings))
        pool.add_threads("doc", ["t1"])
        with pool.lease("doc") as lease:
            pool.renew(lease)


async def _asyncio(opts: dict[str, Any]) -> None:
    async with AsyncThreadPool(**opts, acquire_timeout=1) as pool:
        await pool.add_threads("doc", ["t1"])
        async with pool.lease("doc"):
            pass


def _admin(opts: dict[str, Any], seen: list[str]) -> None:
    with PoolAdmin(**opts) as admin:
        seen.append(json.dumps(admin.export()))
        admin.status("doc")


def test_library_errors_reprs_and_logs_show_no_password(
    cases: list[Case], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for case in cases:
        prefix = f"sec-{uuid.uuid4().hex[:8]}"
        opts: dict[str, Any] = {
            "redis_url": case.url,
            "redis_cluster": case.cluster,
            "key_prefix": prefix,
        }
        settings = Settings.load(**opts)
        seen = [repr(settings), str(settings), f"{settings!r}"]
        assert "<REDACTED>" in repr(settings)

        errors = [
            _outcome(partial(_blocking, opts, seen)),
            _outcome(partial(asyncio.run, _asyncio(opts))),
            _outcome(partial(_admin, opts, seen)),
        ]
        assert (not any(errors)) == case.works, (case.name, errors)
        assert_absent(case.secret, *seen, *errors, caplog.text)
        caplog.clear()


@pytest.mark.slow
def test_cli_output_shows_no_password(cases: list[Case], tmp_path: Path) -> None:
    for case in cases:
        env = {"THREAD_POOL_REDIS_CLUSTER": "1" if case.cluster else "0"}
        env["THREAD_POOL_KEY_PREFIX"] = f"sec-{uuid.uuid4().hex[:8]}"
        # The URL from the environment, and from the flag; with and without a traceback.
        by_env = {**env, "THREAD_POOL_REDIS_URL": case.url}
        for args in (["status", "--debug"], ["export"]):
            by_flag = [*args, "--redis-url", case.url]
            for done in (cli(by_env, *args, cwd=tmp_path), cli(env, *by_flag, cwd=tmp_path)):
                assert (done.returncode == 0) == case.works, (case.name, args, done.stderr)
                assert_absent(case.secret, done.stdout, done.stderr)
                if "--debug" in args and not case.works:
                    assert "Traceback" in done.stderr  # the masked traceback is still there


KEY = canary("sk")
WRONG_KEY = canary("sk")


@pytest.fixture
def pool_on(single: RedisServer) -> Callable[..., ThreadPool]:
    def make(base_url: str, api_key: str) -> ThreadPool:
        client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0)
        retry = RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.01)
        backend = build_backend("conversations", client, model="m", retry=retry)
        prefix = f"sec-{uuid.uuid4().hex[:8]}"
        return ThreadPool(
            redis_url=single.url, redis_cluster=False, key_prefix=prefix, backend=backend
        )

    return make


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fault", "given"), [({}, WRONG_KEY), ({"http_500": 1.0}, KEY)], ids=["wrong key", "500"]
)
def test_backend_errors_show_no_api_key(
    pool_on: Callable[..., ThreadPool],
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
    single: RedisServer,
    fault: dict[str, Any],
    given: str,
) -> None:
    """A wrong key (401), and the right key with every request failing (500, retried)."""
    caplog.set_level(logging.DEBUG)
    with start_emulator(latency="0.01", api_key=KEY, **fault) as emulator:
        with pool_on(emulator.base_url, given) as pool:
            error = _outcome(lambda: pool.run("doc", "hello"))
        assert error
        env = {
            "THREAD_POOL_REDIS_URL": single.url,
            "THREAD_POOL_REDIS_CLUSTER": "0",
            "THREAD_POOL_KEY_PREFIX": f"sec-{uuid.uuid4().hex[:8]}",
            "OPENAI_API_KEY": given,
            "OPENAI_BASE_URL": emulator.base_url,
        }
        args = ["prewarm", "doc", "--size", "1", "--backend", "conversations", "--debug"]
        done = cli(env, *args, cwd=tmp_path)
        assert done.returncode != 0
        stress = cli(
            env,
            "stress",
            "--base-url",
            emulator.base_url,
            "--workers",
            "1",
            "--iterations",
            "1",
            "--strategy",
            "naive",
            cwd=tmp_path,
        )
        texts = [error, caplog.text, done.stdout, done.stderr, stress.stdout, stress.stderr]
        texts.append(repr(emulator.emulator.config))
        for secret in (KEY, WRONG_KEY, PASSWORD):
            assert_absent(secret, *texts)
