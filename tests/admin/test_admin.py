"""PoolAdmin (the generated blocking twin of AsyncPoolAdmin) in-process, against a real Redis."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis

from tests.support.backends import RecordingBackend
from thread_pool import ThreadPool, UnknownPool
from thread_pool._store.keys import PoolKeys
from thread_pool.admin import PoolAdmin, PoolBusy, PoolExists
from thread_pool.errors import InvalidArgument


@pytest.fixture
def admin(thread_pool_redis_url: str, thread_pool_prefix: str) -> Iterator[PoolAdmin]:
    with PoolAdmin(redis_url=thread_pool_redis_url, key_prefix=thread_pool_prefix) as a:
        yield a


@pytest.fixture
def pool(thread_pool_redis_url: str, thread_pool_prefix: str) -> Iterator[ThreadPool]:
    with ThreadPool(redis_url=thread_pool_redis_url, key_prefix=thread_pool_prefix) as p:
        yield p


def test_grow_one_stops_at_the_target_and_at_max_size(admin: PoolAdmin, pool: ThreadPool) -> None:
    upstream = RecordingBackend(unique=False)
    pool.configure("doc", max_size=3)
    outcomes = [admin.grow_one("doc", 5, upstream).outcome for _ in range(4)]
    assert outcomes == ["grown", "grown", "grown", "done"]
    stats = pool.stats("doc")
    assert (stats.threads, stats.idle, stats.reserved) == (3, 3, 0)
    assert upstream.threads == {t.thread_id for t in admin.status("doc").threads}


def test_grown_threads_are_seeded_from_the_log_with_their_cursor_at_its_end(
    admin: PoolAdmin, pool: ThreadPool, thread_pool_prefix: str, redis_client: redis.Redis
) -> None:
    upstream = RecordingBackend(unique=False)
    assert admin.grow_one("doc", 1, upstream).outcome == "grown"  # empty log: nothing to seed
    pool.append("doc", "user", "The document: lorem ipsum.")
    pool.append("doc", "assistant", "Noted.")
    assert admin.grow_one("doc", 2, upstream).outcome == "grown"
    assert upstream.seeded == {
        "thread_1": [],
        "thread_2": [
            {"role": "user", "content": "The document: lorem ipsum."},
            {"role": "assistant", "content": "Noted."},
        ],
    }
    cursors = redis_client.hgetall(PoolKeys.of(thread_pool_prefix, "doc").cursors)
    assert cursors == {"thread_2": "2"}
    status = admin.status("doc")
    assert (status.log_length, status.log_seq) == (2, 2)
    assert {t.thread_id: t.lag for t in status.threads} == {"thread_1": 2, "thread_2": 0}


def test_a_grown_thread_is_told_of_entries_trimmed_from_the_log(
    admin: PoolAdmin, pool: ThreadPool, thread_pool_prefix: str, redis_client: redis.Redis
) -> None:
    upstream = RecordingBackend(unique=False)
    for n in range(1, 4):
        pool.append("doc", "user", f"message {n}")
    redis_client.xtrim(PoolKeys.of(thread_pool_prefix, "doc").log, maxlen=1, approximate=False)
    assert admin.grow_one("doc", 1, upstream).outcome == "grown"
    [gap, kept] = upstream.seeded["thread_1"]
    assert gap["content"].startswith("[context gap: 2 earlier messages of this conversation")
    assert "(seq 1-2)" in gap["content"]
    assert kept == {"role": "user", "content": "message 3"}
    assert [t.lag for t in admin.status("doc").threads] == [0]


def test_an_interrupted_creation_leaves_no_reservation(admin: PoolAdmin, pool: ThreadPool) -> None:
    # (A creation cut off before its answer arrives cannot know the new thread's id; the
    # asyncio pre-warm avoids that by letting a started creation finish before it stops.)
    upstream = RecordingBackend(unique=False)
    upstream.fail_create = KeyboardInterrupt()
    with pytest.raises(KeyboardInterrupt):
        admin.grow_one("doc", 2, upstream)
    stats = pool.stats("doc")
    assert (stats.threads, stats.reserved) == (0, 0)


def test_status_shows_each_lease_with_its_fence(admin: PoolAdmin, pool: ThreadPool) -> None:
    pool.add_threads("doc", ["thread_0"])
    held = pool.acquire("doc")
    status = admin.status("doc")
    assert [(lease.thread_id, lease.fence) for lease in status.leases] == [("thread_0", 1)]
    assert status.threads[0].state == "leased"
    pool.release(held)


def test_status_of_unknown_pool(admin: PoolAdmin) -> None:
    with pytest.raises(UnknownPool):
        admin.status("missing")


def test_delete_keeps_the_pool_when_upstream_fails(admin: PoolAdmin, pool: ThreadPool) -> None:
    upstream = RecordingBackend(unique=False)
    for _ in range(2):
        admin.grow_one("doc", 2, upstream)
    held = pool.acquire("doc")
    with pytest.raises(PoolBusy):
        admin.delete("doc", upstream)
    pool.release(held)
    upstream.fail_delete = True
    with pytest.raises(RuntimeError):
        admin.delete("doc", upstream)
    assert pool.stats("doc").threads == 2  # still there: a re-run finishes the job
    upstream.fail_delete = False
    report = admin.delete("doc", upstream)
    assert len(report.deleted_upstream) == 2
    assert upstream.threads == set()
    assert admin.pools() == []


def test_restore_refuses_bad_files_and_existing_pools(admin: PoolAdmin, pool: ThreadPool) -> None:
    pool.add_threads("doc", ["thread_1"])
    backup = admin.export()
    with pytest.raises(PoolExists):
        admin.restore(backup)
    meta = {"name": "meta", "type": "hash", "data": {"max_size": 8}}
    bad = {**backup, "pools": [{"key": "x", "exported_at": time.time(), "keys": [meta]}]}
    with pytest.raises(InvalidArgument, match="not text"):
        admin.restore(bad)
    with pytest.raises(InvalidArgument, match="not a thread-pool-backup"):
        admin.restore({"pools": []})


def test_draining_stops_grow_one(admin: PoolAdmin, pool: ThreadPool) -> None:
    pool.add_threads("doc", ["thread_1"])
    assert admin.drain("doc", timeout=1).draining
    assert admin.grow_one("doc", 4, RecordingBackend(unique=False)).outcome == "draining"
    admin.set_draining("doc", False)
    assert not admin.status("doc").draining


def test_export_and_restore_carry_every_key_type(
    admin: PoolAdmin, pool: ThreadPool, redis_client: redis.Redis, thread_pool_prefix: str
) -> None:
    # A pool with something in each key it can have: threads idle, leased and retired, a log
    # (the stream), cursors and appended entries, a waiter and a settling claim are planted.
    pool.add_threads("doc", ["thread_1", "thread_2", "thread_3"])
    pool.append("doc", "user", "hi")
    pool.append("doc", "assistant", "hello")
    held = pool.acquire("doc")
    pool.configure("doc", max_size=2)  # retires an idle thread
    keys = PoolKeys.of(thread_pool_prefix, "doc")
    redis_client.rpush(keys.waiters, "ticket|1|someone")
    backup = admin.export(["doc"])
    pool.release(held)
    admin.delete("doc")
    assert admin.restore(backup, exact=True) == ["doc"]  # verbatim (no recovery adjustments)
    assert [e.content for e in pool.history("doc")] == ["hi", "hello"]
    again = admin.export(["doc"])
    for doc in (backup, again):
        for p in doc["pools"]:
            p.pop("exported_at")
    assert again == backup
    kinds = {k["name"]: k["type"] for k in backup["pools"][0]["keys"]}
    assert {"hash", "zset", "list", "stream"} <= set(kinds.values()), kinds
