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


class _RedisCluster(RedisCluster):
    """redis-py's blocking cluster client, whose ``close()`` closes its sockets.

    With redis-py 8.1, ``RedisCluster.close()`` closes each node's client but not the connection
    pool under it (the client did not create the pool): its sockets stay open until garbage
    collection, which reports them as unclosed."""

    def close(self) -> None:
        super().close()
        manager = getattr(self, "nodes_manager", None)  # None: its __init__ failed
        for node in list(manager.nodes_cache.values()) if manager is not None else []:
            if node.redis_connection is not None:
                node.redis_connection.connection_pool.disconnect()


def cluster_client(url: str, **options: Any) -> redis.Redis:
    """A blocking Redis Cluster client of ``url`` (any node); it reads the slot map as it is
    built. Typed as ``redis.Redis``: it has the command methods the library uses, though it is
    not a subclass."""
    return cast(redis.Redis, _RedisCluster.from_url(url, **options))


def connect(url: str, *, cluster: bool | None = None, **options: Any) -> redis.Redis:
    """A blocking client of ``url``; a cluster client when ``cluster`` (default: the
    ``THREAD_POOL_REDIS_CLUSTER`` setting). ``options`` go to ``from_url``.

    A cluster client routes each command by its key's slot, splits ``DEL``/``UNLINK`` of many
    keys by slot, and scans every master in ``scan_iter``."""
    if cluster is None:
        cluster = Settings.load().redis_cluster
    if cluster:
        return cluster_client(url, **options)
    return redis.Redis.from_url(url, **options)
