"""The Redis user of docs/security.md, as written there, is all a deployment needs: a pool's
whole life, the admin commands and the stress test run through it on a private server (and a
private cluster), and it can touch no key outside the prefix."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.support.security import canary, workload
from thread_pool.emulator import EmulatorServer
from thread_pool.testing.redis_server import LocalCluster, RedisServer

DOC = Path(__file__).resolve().parents[2] / "docs" / "security.md"
PREFIX = "app"


def documented_acl() -> list[list[str]]:
    """The ``ACL SETUSER`` lines of the page, split into words."""
    lines = [line for line in DOC.read_text().splitlines() if line.startswith("ACL SETUSER")]
    assert len(lines) == 2, lines  # one user, and what a cluster adds
    return [shlex.split(line) for line in lines]


def acl(client: redis.Redis, *args: str) -> Any:
    """``ACL args...`` on ``client`` as written (redis-py's acl_setuser takes no rule words)."""
    return client.execute_command("ACL", *args)  # type: ignore[no-untyped-call]


# What the user needs for the library's Redis Functions; without them it runs scripts.
FUNCTIONS = ("+fcall", "+function|load")


def apply_acl(client: redis.Redis, password: str, cluster: bool, functions: bool = True) -> None:
    """Create the documented user (the page's prefix ``tp`` becoming ``PREFIX``); without the
    words ``FUNCTIONS`` unless ``functions``."""
    base, extra = documented_acl()
    for words in [base, extra] if cluster else [base]:
        args = [
            f">{password}" if w == ">CHANGE-ME" else w.replace("~tp:*", f"~{PREFIX}:*")
            for w in words[2:]
            if functions or w not in FUNCTIONS
        ]
        acl(client, "SETUSER", *args)


def test_the_documented_user_is_limited_to_the_prefix_and_the_listed_commands() -> None:
    base, extra = documented_acl()
    assert base[2] == "thread_pool"
    assert extra[2] == "thread_pool"
    assert "resetkeys" in base
    assert "~tp:*" in base
    assert "resetchannels" in base
    assert [w for w in base if w.startswith(("~", "%", "&"))] == ["~tp:*"]
    assert "-@all" in base
    assert not [w for w in base if w.startswith("+@")]
    # Every command a Lua script calls is granted (scripts run with the caller's rights).
    scripts = Path(__file__).resolve().parents[2] / "src/thread_pool/_store/scripts"
    called = set()
    for path in scripts.glob("*.lua"):
        called |= {c.lower() for c in re.findall(r"redis\.p?call\('(\w+)'", path.read_text())}
    granted = {w[1:] for w in base if w.startswith("+")}
    assert called <= granted, called - granted
    assert set(FUNCTIONS) <= set(base)


def refused(client: redis.Redis) -> set[str]:
    """What ``ACL LOG`` says was refused (commands and keys)."""
    entries: Any = acl(client, "LOG")
    pairs = [e if isinstance(e, dict) else dict(zip(e[::2], e[1::2], strict=True)) for e in entries]
    return {str(e["object"]) for e in pairs}


@pytest.fixture
def server() -> Iterator[RedisServer]:
    with RedisServer(password=canary("admin")) as s:
        yield s


@pytest.mark.slow
@pytest.mark.parametrize("functions", [True, False], ids=["as-documented", "without-functions"])
def test_a_pool_admin_and_stress_run_through_the_documented_user(
    functions: bool, server: RedisServer, thread_pool_emulator: EmulatorServer, tmp_path: Path
) -> None:
    admin = redis.Redis.from_url(server.url, decode_responses=True)
    password = canary("app")
    apply_acl(admin, password, cluster=False, functions=functions)
    url = f"redis://thread_pool:{password}@127.0.0.1:{server.port}/0"
    app = redis.Redis.from_url(url)
    with pytest.raises(redis.exceptions.NoPermissionError):
        app.set("elsewhere", "1")  # the ACL does limit the user
    with pytest.raises(redis.exceptions.NoPermissionError):
        app.flushall()
    app.close()
    assert acl(admin, "LOG")  # the two refusals above were logged: the log is read right
    acl(admin, "LOG", "RESET")
    workload(url, PREFIX, thread_pool_emulator.base_url, thread_pool_emulator.api_key, tmp_path)
    # Nothing was refused on the way, but FCALL when the user may not: each client's first call
    # (it runs scripts from then on).
    assert refused(admin) == (set() if functions else {"fcall"})
    if not functions:
        assert admin.function_list() == []
    assert all(str(name).startswith(f"{PREFIX}:") for name in admin.keys("*"))
    admin.close()


@pytest.mark.slow
def test_the_documented_user_serves_a_cluster(
    thread_pool_emulator: EmulatorServer, tmp_path: Path
) -> None:
    password = canary("app")
    with LocalCluster(masters=2, password=canary("admin")) as cluster:
        for node in cluster.nodes:
            with redis.Redis.from_url(node.url) as client:
                apply_acl(client, password, cluster=True)
        url = f"redis://thread_pool:{password}@127.0.0.1:{cluster.nodes[0].port}/0"
        base_url, key = thread_pool_emulator.base_url, thread_pool_emulator.api_key
        workload(url, PREFIX, base_url, key, tmp_path, cluster=True)
        for node in cluster.nodes:
            with redis.Redis.from_url(node.url, decode_responses=True) as client:
                assert acl(client, "LOG") == []
                assert all(name.startswith(f"{PREFIX}:") for name in client.keys("*"))
