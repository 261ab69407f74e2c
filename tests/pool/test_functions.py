"""The pool's Lua code runs as a Redis Functions library where the server has functions: loaded
once per server, again when a server lost it, never replacing another version's library, and as
scripts (EVALSHA) where the server or the user refuses functions. Each test has a private
server: it loads, flushes and renames commands there."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis

from thread_pool import AsyncThreadPool, StoreUnavailable, ThreadPool
from thread_pool._store import scripts
from thread_pool._sync.runner import Runner
from thread_pool.testing.redis_server import LocalCluster, RedisServer

KEY = "fn-pool"
PREFIX = "fnt"  # the servers are the tests' own: nothing else there to keep apart


@pytest.fixture
def server() -> Iterator[RedisServer]:
    with RedisServer() as s:
        yield s


def admin_of(server: RedisServer) -> redis.Redis:
    return redis.Redis.from_url(server.url, decode_responses=True)


def calls(admin: redis.Redis, command: str) -> int:
    """How often the server ran ``command`` (``fcall``, ``evalsha``, ``function|load``)."""
    stats: Any = admin.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


def libraries(admin: redis.Redis, command: str = "FUNCTION") -> list[str]:
    found: Any = admin.execute_command(command, "LIST")  # type: ignore[no-untyped-call]
    # redis-py parses the reply into dicts or leaves flat lists, depending on how it was sent.
    pairs = [
        lib if isinstance(lib, dict) else dict(zip(lib[::2], lib[1::2], strict=True))
        for lib in found
    ]
    return sorted(lib["library_name"] for lib in pairs)


def cycle(url: str, prefix: str, times: int = 3, **options: Any) -> ThreadPool:
    """A pool of one thread on ``url``, leased and released ``times`` times (left open)."""
    client = redis.Redis.from_url(url, decode_responses=True, **options)
    pool = ThreadPool(client=client, key_prefix=prefix)
    pool.add_threads(KEY, ["thread_a"])
    for _ in range(times):
        with pool.lease(KEY) as lease:
            assert lease.thread_id == "thread_a"
    return pool


def test_a_fresh_server_gets_the_library_once(server: RedisServer) -> None:
    admin = admin_of(server)
    assert libraries(admin) == []
    pool = cycle(server.url, PREFIX, times=5)
    second = cycle(server.url, PREFIX + "b", times=1)  # another client: loaded already
    assert libraries(admin) == [scripts.library().name]
    assert calls(admin, "function|load") == 1
    assert calls(admin, "fcall") >= 12
    assert calls(admin, "evalsha") == 0  # no script was needed
    assert pool.stats(KEY).granted == 5
    pool.close()
    second.close()
    admin.close()


def test_a_server_that_lost_the_library_gets_it_again(server: RedisServer) -> None:
    admin = admin_of(server)
    pool = cycle(server.url, PREFIX)
    admin.function_flush()  # what a restart without persistence does to a master
    with pool.lease(KEY) as lease:  # the first call finds no function, loads, and runs again
        assert lease.thread_id == "thread_a"
    assert libraries(admin) == [scripts.library().name]
    assert calls(admin, "function|load") == 2
    assert calls(admin, "evalsha") == 0
    assert pool.stats(KEY).granted == 4
    pool.close()
    admin.close()


def test_two_versions_of_the_library_live_side_by_side(server: RedisServer) -> None:
    admin = admin_of(server)
    # An older version of the library, as a process not yet upgraded left it.
    older = "#!lua name=thread_pool_0ld0ld00\nredis.register_function('tp_0ld0ld00_count', " + (
        "function(keys, args) return 'older' end)"
    )
    admin.function_load(older)
    pool = cycle(server.url, PREFIX)
    assert libraries(admin) == sorted(["thread_pool_0ld0ld00", scripts.library().name])
    assert admin.fcall("tp_0ld0ld00_count", 0) == "older"
    pool.close()
    admin.close()


def test_concurrent_loaders_both_succeed(server: RedisServer) -> None:
    admin = admin_of(server)
    admin.function_load(scripts.library().code)  # another client was first
    client = redis.Redis.from_url(server.url, decode_responses=True)
    assert Runner(client).load() is True  # "already exists" is the library itself: loaded
    assert libraries(admin) == [scripts.library().name]
    client.close()
    admin.close()


@pytest.mark.parametrize(
    "refusal", ["renamed", "acl"], ids=["server-without-FUNCTION", "user-without-fcall"]
)
def test_a_server_or_user_refusing_functions_gets_the_scripts(refusal: str) -> None:
    extra = ["--rename-command", "FUNCTION", "FUNCTION-hidden"] if refusal == "renamed" else []
    with RedisServer(extra_args=extra) as server:
        admin = admin_of(server)
        url = server.url
        if refusal == "acl":
            admin.execute_command(  # type: ignore[no-untyped-call]
                "ACL", "SETUSER", "app", "on", ">pw", "~*", "+@all", "-fcall", "-function"
            )
            url = f"redis://app:pw@127.0.0.1:{server.port}/0"
        pool = cycle(url, PREFIX, times=4)
        assert pool.stats(KEY).granted == 4
        assert libraries(admin, "FUNCTION-hidden" if refusal == "renamed" else "FUNCTION") == []
        # One refused FCALL (or one FCALL and one refused load), then scripts for good.
        assert calls(admin, "fcall") <= 1
        assert calls(admin, "evalsha") >= 9
        pool.close()
        admin.close()


def test_functions_answer_as_the_scripts_do(server: RedisServer) -> None:
    admin = admin_of(server)
    pool = cycle(server.url, PREFIX)
    meta = f"{PREFIX}:{{{KEY}}}:meta"
    library = scripts.library()
    for name, args in [
        ("stats", []),
        ("admin_inspect", []),
        ("admin_export", ["meta", "threads", "idle", "holds"]),
        ("log_missing", ["thread_a"]),
    ]:
        by_function = admin.fcall(library.functions[name], 1, meta, *args)
        by_script = admin.eval(scripts.source(name), 1, meta, *args)
        if name.startswith("admin_"):  # their second field is the Redis time of the call
            by_function[1] = by_script[1]
        assert by_function == by_script, name
    pool.close()
    admin.close()


@pytest.mark.slow
def test_every_master_of_a_cluster_gets_the_library_when_it_needs_it() -> None:
    with LocalCluster(masters=3) as cluster:
        pool = ThreadPool(redis_url=cluster.url, redis_cluster=True, key_prefix=PREFIX)
        keys = [f"fn-pool-{i}" for i in range(12)]  # pools in slots of every master
        for key in keys:
            pool.add_threads(key, [f"thread_{key}"])
            with pool.lease(key):
                pass
        admins = [admin_of(node) for node in cluster.nodes]
        for admin in admins:
            assert libraries(admin) == [scripts.library().name]
            assert calls(admin, "fcall") > 0
            assert calls(admin, "evalsha") == 0
            # Each FCALL went to its key's node at once: redis-py did not ask for its keys.
            assert calls(admin, "command|getkeys") == 0
        for admin in admins:
            admin.function_flush()  # every master restarted without persistence
        for key in keys:
            with pool.lease(key) as lease:
                assert lease.thread_id == f"thread_{key}"
        for admin in admins:
            assert libraries(admin) == [scripts.library().name]
            admin.close()
        assert all(pool.stats(key).granted == 2 for key in keys)
        pool.close()


@pytest.mark.slow
async def test_an_asyncio_pool_on_a_cluster_sends_each_fcall_to_its_key_s_node() -> None:
    # The asyncio cluster client finds FCALL's key otherwise than the blocking one (through its
    # commands parser, see clients.py): asked of a node, it would cost a round trip per call.
    with LocalCluster(masters=3) as cluster:
        pool = AsyncThreadPool(redis_url=cluster.url, redis_cluster=True, key_prefix=PREFIX)
        keys = [f"fn-pool-{i}" for i in range(12)]
        for key in keys:
            await pool.add_threads(key, [f"thread_{key}"])
            async with pool.lease(key) as lease:
                assert lease.thread_id == f"thread_{key}"
        await pool.aclose()
        for node in cluster.nodes:
            admin = admin_of(node)
            assert calls(admin, "fcall") > 0
            assert calls(admin, "evalsha") == 0
            assert calls(admin, "command|getkeys") == 0
            admin.close()


def test_over_maxmemory_leases_held_can_still_be_renewed_and_given_back(
    server: RedisServer,
) -> None:
    # A single server of its own, also when the session runs on a cluster.
    pool = ThreadPool(redis_url=server.url, redis_cluster=False, key_prefix=PREFIX)
    pool.add_threads(KEY, ["thread_a", "thread_b"])
    held = pool.acquire(KEY)
    admin = admin_of(server)
    admin.config_set("maxmemory-policy", "noeviction")
    admin.config_set("maxmemory", 1)  # over it from now on
    try:
        pool.renew(held)
        with pytest.raises(StoreUnavailable):  # a new lease takes memory: refused
            pool.acquire(KEY, timeout=0)
        pool.release(held)
        assert pool.reap(KEY) == 0
    finally:
        admin.config_set("maxmemory", 0)
    assert pool.stats(KEY).leased == 0
    assert calls(admin, "evalsha") == 0  # all of it as functions
    pool.close()
    admin.close()


@pytest.mark.slow
def test_a_cluster_master_missing_the_library_is_loaded_alone() -> None:
    # Loading every master on one miss would make a call fail whenever any master is down then,
    # even one the call does not need.
    with LocalCluster(masters=3) as cluster:
        pool = ThreadPool(redis_url=cluster.url, redis_cluster=True, key_prefix=PREFIX)
        pool.add_threads(KEY, ["thread_a"])
        admins = [admin_of(node) for node in cluster.nodes]
        for admin in admins:
            admin.function_flush()
            admin.config_resetstat()
        with pool.lease(KEY):
            pass
        loads = sorted(calls(admin, "function|load") for admin in admins)
        assert loads == [0, 0, 1]
        for admin in admins:
            admin.close()
        pool.close()
