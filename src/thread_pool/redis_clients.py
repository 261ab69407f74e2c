"""Blocking Redis clients opened from a URL, for a single server or a Redis Cluster.

For code outside the pool objects that talks to the pools' Redis itself (the stress test's lock
and clean-up, test helpers, workers in other processes); pool and admin objects open theirs in
``_async/store.py``. Both follow the ``redis_cluster`` setting.
"""

from __future__ import annotations

from typing import Any, cast

import redis
from redis.cluster import RedisCluster

from thread_pool.settings import Settings


def connect(url: str, *, cluster: bool | None = None, **options: Any) -> redis.Redis:
    """A blocking client of ``url``; a cluster client when ``cluster`` (default: the
    ``THREAD_POOL_REDIS_CLUSTER`` setting). ``options`` go to ``from_url``.

    A cluster client routes each command by its key's slot, splits ``DEL``/``UNLINK`` of many
    keys by slot, and scans every master in ``scan_iter``; it is typed as ``redis.Redis``
    because it has the same command methods (it is not a subclass)."""
    if cluster is None:
        cluster = Settings.load().redis_cluster
    if cluster:
        return cast(redis.Redis, RedisCluster.from_url(url, **options))
    return redis.Redis.from_url(url, **options)
