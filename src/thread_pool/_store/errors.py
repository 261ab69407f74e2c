"""Translate redis-py's exceptions into thread_pool's, at the one place that talks to Redis."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import redis.exceptions as rexc

from thread_pool._model.redaction import scrub, scrub_chain
from thread_pool.errors import (
    ConnectionsExhausted,
    CorruptState,
    InvalidSettings,
    StoreRefused,
    StoreUnavailable,
)

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

# Refusals that end by themselves: another client's script still running, too few replicas in
# sync for min-replicas-to-write. Like _UNAVAILABLE, the caller may try again.
_PASSING = ("BUSY ", "NOREPLICAS ")


@contextlib.contextmanager
def mapped(what: str) -> Iterator[None]:
    """Re-raise Redis failures of ``what`` (an operation and its pool) as our typed errors."""
    try:
        yield
    except (rexc.AuthenticationError, rexc.AuthorizationError, rexc.NoPermissionError) as exc:
        # Before _UNAVAILABLE: redis-py files a refused AUTH under ConnectionError, but a wrong
        # password or an ACL that forbids a command does not pass by itself.
        scrub_chain(exc)
        raise StoreRefused(
            scrub(
                f"redis refused {what}: {exc} (check the password and that the user's ACL "
                "allows the library's commands on the keys of its prefix)"
            )
        ) from exc
    except rexc.ConnectionError as exc:
        # The client's own bound, not Redis: a plain pool refuses at once ("Too many
        # connections"), a blocking one after waiting for a connection ("No connection
        # available."). redis-py gives both as ConnectionError.
        if not _exhausted(exc):
            scrub_chain(exc)
            raise StoreUnavailable(scrub(f"redis unavailable during {what}: {exc}")) from exc
        raise ConnectionsExhausted(
            f"no free redis connection for {what}: all of this client's connections "
            "(max_connections) stayed in use; raise max_connections or send fewer commands at "
            "once"
        ) from exc
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
        if "DB index is out of range" in text:
            raise InvalidSettings(
                f"redis refused {what}: the database number of THREAD_POOL_REDIS_URL does not "
                "exist on the server (see its 'databases' setting)"
            ) from exc
        if text.startswith(_PASSING):
            raise StoreUnavailable(f"redis unavailable during {what}: {text}") from exc
        # Anything else Redis refuses (MISCONF, a disabled command, ...) is typed all the same.
        raise StoreRefused(f"redis refused {what}: {text}") from exc


def _exhausted(exc: Exception) -> bool:
    return isinstance(exc, rexc.MaxConnectionsError) or str(exc) == "No connection available."


@contextlib.contextmanager
def url_checked() -> Iterator[None]:
    """redis-py refuses an ill-formed URL (a wrong scheme, a port that is no number) with a bare
    ``ValueError`` when a client is made from it: re-raise it as ``InvalidSettings``. The URL
    itself is not repeated (it may hold a password)."""
    try:
        yield
    except ValueError as exc:
        if isinstance(exc, InvalidSettings):
            raise
        raise InvalidSettings(f"invalid setting THREAD_POOL_REDIS_URL: {exc}") from exc
