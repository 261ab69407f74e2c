"""Translate redis-py's exceptions into thread_pool's, at the one place that talks to Redis."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import redis.exceptions as rexc

from thread_pool.errors import CorruptState, InvalidSettings, StoreUnavailable


@contextlib.contextmanager
def mapped(what: str) -> Iterator[None]:
    """Re-raise Redis failures of ``what`` (an operation and its pool) as our typed errors."""
    try:
        yield
    except (rexc.ConnectionError, rexc.TimeoutError, ConnectionError) as exc:
        raise StoreUnavailable(f"redis unavailable during {what}: {exc}") from exc
    except (rexc.ClusterDownError, rexc.SlotNotCoveredError) as exc:
        raise StoreUnavailable(f"redis cluster unavailable during {what}: {exc}") from exc
    except rexc.RedisClusterException as exc:
        # A cluster client that reaches no node says so with this class (not a RedisError, not
        # a ConnectionError); its other uses are usage errors, left as they are.
        if "cannot be connected" not in str(exc):
            raise
        raise StoreUnavailable(f"redis unavailable during {what}: {exc}") from exc
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
