"""Deleting a pool (it drains before anything is deleted upstream), and bringing back a pool whose
Redis state was lost without an API key: add its threads again, import a backup, or delete it."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from tests.support.backends import RecordingBackend
from tests.support.environment import COMMAND, clean_environment
from tests.support.redis_state import keys_under, pool_problems
from thread_pool import PoolBusy, PoolDraining, PoolStateLost, ThreadPool
from thread_pool._store.keys import PoolKeys
from thread_pool.admin import PoolAdmin


@pytest.fixture
def admin(thread_pool_redis_url: str, thread_pool_prefix: str) -> Iterator[PoolAdmin]:
    with PoolAdmin(redis_url=thread_pool_redis_url, key_prefix=thread_pool_prefix) as a:
        yield a


@pytest.fixture
def pool(thread_pool_redis_url: str, thread_pool_prefix: str) -> Iterator[ThreadPool]:
    with ThreadPool(redis_url=thread_pool_redis_url, key_prefix=thread_pool_prefix) as p:
        yield p


class Meanwhile(RecordingBackend):
    """An upstream that runs ``during`` before each delete (another caller, acting meanwhile)."""

    def __init__(self, during: Callable[[], None]) -> None:
        super().__init__()
        self.during = during

    def delete_thread(self, thread_id: str) -> bool:
        self.during()
        return super().delete_thread(thread_id)


# -- delete drains first ---------------------------------------------------------------------


def test_no_caller_gets_a_thread_while_a_delete_removes_them_upstream(
    admin: PoolAdmin, pool: ThreadPool
) -> None:
    seen: list[str] = []

    def try_to_lease() -> None:
        try:
            seen.append(pool.acquire("doc", timeout=0).thread_id)
        except PoolDraining:
            seen.append("draining")

    upstream = Meanwhile(try_to_lease)
    upstream.threads |= {"thread_1", "thread_2"}
    pool.add_threads("doc", ["thread_1", "thread_2"])
    report = admin.delete("doc", upstream)
    assert seen == ["draining", "draining"]
    assert sorted(report.deleted_upstream) == ["thread_1", "thread_2"]
    assert admin.pools() == []


def test_a_refused_delete_changes_nothing_and_a_failed_one_stays_draining(
    admin: PoolAdmin, pool: ThreadPool
) -> None:
    upstream = RecordingBackend()
    upstream.threads |= {"thread_1", "thread_2"}
    pool.add_threads("doc", ["thread_1", "thread_2"])
    held = pool.acquire("doc")
    with pytest.raises(PoolBusy, match="1 leased"):
        admin.delete("doc", upstream)
    assert not admin.status("doc").draining  # refused: still serving
    pool.release(pool.acquire("doc", timeout=0))
    pool.release(held)
    upstream.fail_delete = True
    with pytest.raises(RuntimeError):
        admin.delete("doc", upstream)
    assert admin.status("doc").draining  # half deleted: nobody leases from it
    with pytest.raises(PoolDraining):
        pool.acquire("doc", timeout=0)
    upstream.fail_delete = False
    assert len(admin.delete("doc", upstream).deleted_upstream) == 2
    assert upstream.threads == set()


# -- a lost pool -------------------------------------------------------------------------------


def lose(pool: ThreadPool, client: redis.Redis, prefix: str, key: str) -> None:
    """Make pool ``key``'s state lost, as a restart without persistence does, and have ``pool``
    (which knew it) find out."""
    pool.release(pool.acquire(key, timeout=0))  # ``pool`` learns the pool's epoch
    for name in PoolKeys.of(prefix, key).all_fixed():
        client.delete(name)
    with pytest.raises(PoolStateLost) as caught:
        pool.acquire(key, timeout=0)
    message = str(caught.value)
    # Every way out it names works without --backend (no API key).
    for way in ("thread-pool import", "add_threads", f"thread-pool delete {key}"):
        assert way in message, message


def test_adding_its_threads_again_brings_a_lost_pool_back(
    thread_pool_redis_url: str,
    thread_pool_prefix: str,
    pool: ThreadPool,
    redis_client: redis.Redis,
) -> None:
    pool.add_threads("doc", ["thread_1", "thread_2"])
    held = [pool.acquire("doc", timeout=0) for _ in range(2)]
    fences = [lease.fence for lease in held]
    for lease in held:
        pool.release(lease)
    lose(pool, redis_client, thread_pool_prefix, "doc")
    with ThreadPool(redis_url=thread_pool_redis_url, key_prefix=thread_pool_prefix) as operator:
        assert operator.add_threads("doc", ["thread_1", "thread_2"]) == 2
    # The pool object that found it lost leases again, above every fence used before the loss.
    with pool.lease("doc", timeout=0) as lease:
        assert lease.fence > max(fences)
        assert lease.fence < 2**53
    assert pool_problems(redis_client, thread_pool_prefix, "doc") == []


def test_a_backup_restores_a_lost_pool(
    admin: PoolAdmin, pool: ThreadPool, redis_client: redis.Redis, thread_pool_prefix: str
) -> None:
    pool.add_threads("doc", ["thread_1"])
    backup = admin.export(["doc"])
    lose(pool, redis_client, thread_pool_prefix, "doc")
    assert admin.restore(backup) == ["doc"]
    pool.reap("doc")
    with pool.lease("doc", timeout=0) as lease:
        assert lease.thread_id == "thread_1"
    assert pool_problems(redis_client, thread_pool_prefix, "doc") == []


def test_a_lost_pool_can_be_deleted_without_an_api_key(
    thread_pool_redis_url: str,
    thread_pool_prefix: str,
    pool: ThreadPool,
    redis_client: redis.Redis,
    tmp_path: Path,
) -> None:
    pool.add_threads("doc", ["thread_1"])
    lose(pool, redis_client, thread_pool_prefix, "doc")
    env = {
        **clean_environment(),
        "THREAD_POOL_REDIS_URL": thread_pool_redis_url,
        "THREAD_POOL_KEY_PREFIX": thread_pool_prefix,
    }
    done = subprocess.run(
        [*COMMAND, "delete", "doc", "--yes"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert "deleted pool doc" in done.stdout
    # Nothing left but tombstones of the refused acquires (they expire by themselves); the
    # owners record of the thread the lost state had is gone too.
    assert {k for k in keys_under(redis_client, thread_pool_prefix) if ":x:" not in k} == set()
    # Gone for good: a new pool of the same key starts afresh.
    assert pool.add_threads("doc", ["thread_1"]) == 1
