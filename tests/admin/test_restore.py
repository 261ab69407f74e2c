"""Restoring a backup: all of it or nothing, and fences that stay exact integers."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from tests.support.redis_state import keys_under, pool_problems
from thread_pool import InvalidBackup, ThreadPool
from thread_pool._model.backup import SCRIPT_LIMITS, flat_keys
from thread_pool._store.keys import PoolKeys
from thread_pool._sync.store import Store
from thread_pool.admin import PoolAdmin

YEAR = 365 * 86_400.0


@pytest.fixture
def admin(thread_pool_redis_url: str, thread_pool_prefix: str) -> Iterator[PoolAdmin]:
    with PoolAdmin(redis_url=thread_pool_redis_url, key_prefix=thread_pool_prefix) as a:
        yield a


@pytest.fixture
def pool(thread_pool_redis_url: str, thread_pool_prefix: str) -> Iterator[ThreadPool]:
    with ThreadPool(redis_url=thread_pool_redis_url, key_prefix=thread_pool_prefix) as p:
        yield p


@pytest.fixture
def backup(admin: PoolAdmin, pool: ThreadPool) -> dict[str, Any]:
    """A backup of pool "doc" (two threads, a log, a granted fence), whose keys were deleted."""
    pool.add_threads("doc", ["thread_1", "thread_2"])
    pool.append("doc", "user", "hello")
    pool.append("doc", "assistant", "hi there")
    pool.release(pool.acquire("doc"))
    doc = admin.export(["doc"])
    admin.delete("doc")
    return doc


def data(doc: dict[str, Any], name: str) -> Any:
    """The data of key ``name`` of the backup's one pool."""
    return next(k["data"] for k in doc["pools"][0]["keys"] if k["name"] == name)


def _idle_score(doc: dict[str, Any]) -> None:
    data(doc, "idle")[0][1] = "soon"


def _fence(doc: dict[str, Any]) -> None:
    data(doc, "threads")["thread_1"] = "1e3"


def _stream_id(doc: dict[str, Any]) -> None:
    data(doc, "log")[0][0] = "first"


def _odd_fields(doc: dict[str, Any]) -> None:
    data(doc, "log")[1][1].pop()


def _out_of_order(doc: dict[str, Any]) -> None:
    log = data(doc, "log")
    log[0][0], log[1][0] = log[1][0], log[0][0]


def _two_states(doc: dict[str, Any]) -> None:
    for k in doc["pools"][0]["keys"]:
        if k["name"] == "idle":
            k["data"] = []
    doc["pools"][0]["keys"].append({"name": "leases", "type": "zset", "data": []})


def _retired_and_registered(doc: dict[str, Any]) -> None:
    doc["pools"][0]["keys"].append({"name": "retired", "type": "list", "data": ["thread_2"]})


def _huge_fence(doc: dict[str, Any]) -> None:
    data(doc, "threads")["thread_1"] = str(2**53 + 1)


BAD: dict[str, Callable[[dict[str, Any]], None]] = {
    "idle score not a number": _idle_score,
    "fence with an exponent": _fence,
    "stream id not an id": _stream_id,
    "odd number of stream fields": _odd_fields,
    "stream ids out of order": _out_of_order,
    "thread in no state": _two_states,
    "thread registered and retired": _retired_and_registered,
    "fence above 2^53": _huge_fence,
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_a_bad_value_anywhere_in_a_backup_writes_nothing(
    admin: PoolAdmin,
    backup: dict[str, Any],
    redis_client: redis.Redis,
    thread_pool_prefix: str,
    name: str,
) -> None:
    bad = copy.deepcopy(backup)
    BAD[name](bad)
    assert keys_under(redis_client, thread_pool_prefix) == set()
    with pytest.raises(InvalidBackup):
        admin.restore(bad)
    assert keys_under(redis_client, thread_pool_prefix) == set()
    # The good file still restores, whole, and the pool leases.
    assert admin.restore(backup) == ["doc"]
    assert pool_problems(redis_client, thread_pool_prefix, "doc") == []


@pytest.mark.parametrize("name", sorted(BAD))
def test_the_import_script_checks_the_backup_again_before_writing(
    backup: dict[str, Any], redis_client: redis.Redis, thread_pool_prefix: str, name: str
) -> None:
    # Straight to the script, past the file check: it must refuse the same files by itself.
    store = Store(redis_client, thread_pool_prefix)
    bad = copy.deepcopy(backup)
    BAD[name](bad)
    now_ms = str(int(time.time() * 1000))
    for payload in (json.dumps(flat_keys(bad["pools"][0])), "{", '{"meta": 1}', "[[1, 2, 3]]"):
        for mode in ("recover", "exact"):
            reply = store.call("admin_import", "doc", payload, mode, now_ms, SCRIPT_LIMITS, 0)
            assert reply[0] == "INVALID", reply
            assert keys_under(redis_client, thread_pool_prefix) == set()


MISSING = object()


@pytest.mark.parametrize(
    "exported_at",
    [MISSING, None, "abc", "1700000000", True, float("nan"), float("inf"), 1e400, -1.0, 0],
    ids=repr,
)
def test_exported_at_is_required_and_must_be_a_finite_number(
    admin: PoolAdmin,
    backup: dict[str, Any],
    redis_client: redis.Redis,
    thread_pool_prefix: str,
    exported_at: Any,
) -> None:
    bad = copy.deepcopy(backup)
    if exported_at is MISSING:
        del bad["pools"][0]["exported_at"]
    else:
        bad["pools"][0]["exported_at"] = exported_at
    with pytest.raises(InvalidBackup, match="exported_at"):
        admin.restore(bad)
    assert keys_under(redis_client, thread_pool_prefix) == set()


@pytest.mark.parametrize("offset", [3600.0, -6 * YEAR], ids=["an hour ahead", "six years ago"])
def test_exported_at_in_the_future_or_absurdly_old_is_refused(
    admin: PoolAdmin,
    backup: dict[str, Any],
    redis_client: redis.Redis,
    thread_pool_prefix: str,
    offset: float,
) -> None:
    bad = copy.deepcopy(backup)
    bad["pools"][0]["exported_at"] = time.time() + offset
    with pytest.raises(InvalidBackup, match="exported_at"):
        admin.restore(bad)
    assert keys_under(redis_client, thread_pool_prefix) == set()


def test_an_old_backup_raises_fences_to_exact_integers_that_keep_leasing(
    admin: PoolAdmin,
    pool: ThreadPool,
    backup: dict[str, Any],
    redis_client: redis.Redis,
    thread_pool_prefix: str,
) -> None:
    # Four years: the recovery raises fences above 1e14, which Lua writes as 1.26e+14 unless it
    # formats them as integers; every later grant would then fail.
    old = copy.deepcopy(backup)
    old["pools"][0]["exported_at"] = time.time() - 4 * YEAR
    assert admin.restore(old) == ["doc"]
    threads = PoolKeys.of(thread_pool_prefix, "doc").threads
    raised = {t: int(f) for t, f in redis_client.hgetall(threads).items()}
    assert all(10**14 < f < 2**52 for f in raised.values()), raised
    assert pool.reap("doc") == 2  # recovered threads are settled first (no backend: at once)
    for _ in range(3):
        with pool.lease("doc", timeout=1) as lease:
            assert lease.fence == raised[lease.thread_id] + 1
            raised[lease.thread_id] += 1
            hold = redis_client.hget(PoolKeys.of(thread_pool_prefix, "doc").holds, lease.thread_id)
            assert hold is not None
            assert f"|{lease.fence}|" in hold
    assert pool_problems(redis_client, thread_pool_prefix, "doc") == []
    assert admin.status("doc").stats.threads == 2


def test_a_recovery_that_would_take_a_fence_past_the_limit_writes_nothing(
    admin: PoolAdmin, backup: dict[str, Any], redis_client: redis.Redis, thread_pool_prefix: str
) -> None:
    near = copy.deepcopy(backup)
    data(near, "threads")["thread_1"] = str(2**52 - 10)  # in range itself...
    near["pools"][0]["exported_at"] = time.time() - 60
    with pytest.raises(InvalidBackup, match="limit"):
        admin.restore(near)  # ...but not after 60 s worth of raise
    assert keys_under(redis_client, thread_pool_prefix) == set()
    # The script works it out by itself too (by Redis's clock).
    payload = json.dumps(flat_keys(near["pools"][0]))
    exported = str(round(near["pools"][0]["exported_at"] * 1000))
    store = Store(redis_client, thread_pool_prefix)
    reply = store.call("admin_import", "doc", payload, "recover", exported, SCRIPT_LIMITS, 0)
    assert reply[0] == "INVALID"
    assert "limit" in reply[1]
    assert keys_under(redis_client, thread_pool_prefix) == set()
    assert admin.restore(near, exact=True) == ["doc"]  # verbatim it fits


def test_a_file_with_one_bad_pool_restores_none_of_its_pools(
    admin: PoolAdmin,
    pool: ThreadPool,
    backup: dict[str, Any],
    redis_client: redis.Redis,
    thread_pool_prefix: str,
) -> None:
    pool.add_threads("other", ["thread_9"])
    second = admin.export(["other"])["pools"][0]
    admin.delete("other")
    doc = copy.deepcopy(backup)
    second["keys"][0]["data"]["max_size"] = "0"  # the second pool is broken
    doc["pools"].append(second)
    with pytest.raises(InvalidBackup, match="other"):
        admin.restore(doc)
    assert keys_under(redis_client, thread_pool_prefix) == set()
