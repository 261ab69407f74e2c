"""Translate redis-py's exceptions into thread_pool's, at the one place that talks to Redis."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import redis.exceptions as rexc

from thread_pool._model.redaction import scrub, scrub_chain
from thread_pool.errors import CorruptState, InvalidSettings, StoreUnavailable

# Redis is there but cannot serve now: a cluster slot without a master, a failover under way
# (TRYAGAIN, a master turned replica answering READONLY), a node out of memory. Like a dropped
# connection, these pass; the caller gets the same typed error and may try again.
_UNAVAILABLE = (
    rexc.ConnectionError,
    rexc.TimeoutError,
    ConnectionError,
    rexc.ClusterError,
    rexc.RedisClusterException,
    rexc.TryAgainError,
    rexc.ReadOnlyError,
    rexc.OutOfMemoryError,
)


@contextlib.contextmanager
def mapped(what: str) -> Iterator[None]:
    """Re-raise Redis failures of ``what`` (an operation and its pool) as our typed errors."""
    try:
        yield
    except _UNAVAILABLE as exc:
        # Neither our message nor redis-py's (kept as the cause) may show a password.
        scrub_chain(exc)
        raise StoreUnavailable(scrub(f"redis unavailable during {what}: {exc}")) from exc
    except (rexc.MovedError, rexc.AskError) as exc:
        # Only a plain client meets a redirection (a cluster client follows it): the URL names a
        # cluster node and the setting is off. redis-py would say only "<slot> <host:port>".
        raise InvalidSettings(
            f"redis answered {what} with a cluster redirection to {exc.host}:{exc.port}: "
            "it is a Redis Cluster; set THREAD_POOL_REDIS_CLUSTER=1"
        ) from exc
    except rexc.ResponseError as exc:
        text = str(exc)
        if "WRONGTYPE" in text or "not a number" in text or "attempt to" in text:
            raise CorruptState(
                f"the keys of {what} hold data thread_pool did not write: {text}"
            ) from exc
        raise
