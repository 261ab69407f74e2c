"""Every Redis client the library opens, for a single server or a Redis Cluster, blocking or
asyncio: the one place that turns settings (or a URL) into a client.

Pool and admin objects open theirs with ``open_async`` / ``open_blocking`` (through ``_acompat``
/ ``_compat``, so the generated sync code opens the blocking one); code outside them that talks to
the pools' Redis itself (the stress test, test helpers, worker processes) uses ``connect``.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, cast

import redis
import redis.asyncio as aioredis
import redis.exceptions as rexc
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import RedisCluster
from redis.typing import EncodableT

from thread_pool._model.redaction import mask_url
from thread_pool._store.errors import mapped, url_checked
from thread_pool.settings import Settings

# How long a command waits for one of the client's connections to come free before
# ConnectionsExhausted (redis-py's default for a blocking pool).
CONNECTION_WAIT_S = 20.0


class _RedisCluster(RedisCluster):
    """redis-py's blocking cluster client, whose ``close()`` closes its sockets.

    With redis-py 8.1, ``RedisCluster.close()`` closes each node's client but not the connection
    pool under it (the client did not create the pool): its sockets stay open until garbage
    collection, which reports them as unclosed."""

    # FCALL's key is read as EVALSHA's (see fcall_slot); the store runs functions through it.
    ROUTES_FCALL = True

    def determine_slot(self, *args: Any) -> int | None:
        slot = fcall_slot(self, args)
        return super().determine_slot(*args) if slot is None else slot

    # A cluster client refuses a command at once when a node's connections (max_connections)
    # are all in use: commands past the bound wait their turn here instead, as the single-server
    # client's blocking pool makes them (the bound holds per node, so it holds in all too).
    _gate: threading.BoundedSemaphore | None = None

    def limit(self, commands: int) -> None:
        """Let at most ``commands`` commands run at once; the others wait their turn."""
        self._gate = threading.BoundedSemaphore(commands)

    def execute_command(self, *args: EncodableT, **kwargs: Any) -> Any:
        gate = self._gate
        run = super().execute_command
        if gate is None:
            return run(*args, **kwargs)  # type: ignore[no-untyped-call]
        if not gate.acquire(timeout=CONNECTION_WAIT_S):
            raise rexc.MaxConnectionsError("No connection available.")
        try:
            return run(*args, **kwargs)  # type: ignore[no-untyped-call]
        finally:
            gate.release()

    def close(self) -> None:
        super().close()
        manager = getattr(self, "nodes_manager", None)  # None: its __init__ failed
        for node in list(manager.nodes_cache.values()) if manager is not None else []:
            if node.redis_connection is not None:
                node.redis_connection.connection_pool.disconnect()


class _AsyncRedisCluster(AsyncRedisCluster):
    """redis-py's asyncio cluster client, made safe to share between tasks.

    With redis-py 8.1, a connection can be disconnected under a task that is still setting it
    up, which then fails with "'NoneType' object has no attribute 'writelines'" (its stream is
    gone): when tasks send their first commands at once through a new client, and when a
    connection error elsewhere makes the client drop its idle connections (a node restarting).
    Awaiting ``initialize()`` first removes the first case (it is safe however many tasks do it:
    it runs once, under a lock, and is a flag test afterwards); the second is reported as the
    lost connection it is, so the caller gets ``StoreUnavailable`` like for any other."""

    ROUTES_FCALL = True  # see _RedisCluster

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # redis-py's asyncio cluster client has no public hook for a command's slot (the
        # blocking one's is determine_slot); it asks its commands parser for the keys, so that
        # is where FCALL's are read, keeping its redirection handling (passing target_nodes
        # would turn retries off).
        self.commands_parser = cast(Any, _FcallKeys(self.commands_parser))

    # See _RedisCluster._gate (an asyncio.Semaphore belongs to the client's event loop, as the
    # client does; made on first use, inside that loop).
    _bound: int | None = None
    _gate: asyncio.Semaphore | None = None

    def limit(self, commands: int) -> None:
        """Let at most ``commands`` commands run at once; the others wait their turn."""
        self._bound = commands

    async def execute_command(self, *args: EncodableT, **kwargs: Any) -> Any:
        await self.initialize()
        if self._bound is not None and self._gate is None:
            self._gate = asyncio.Semaphore(self._bound)
        gate = self._gate
        if gate is None:
            return await self._execute(*args, **kwargs)
        try:
            async with asyncio.timeout(CONNECTION_WAIT_S):
                await gate.acquire()
        except TimeoutError:
            raise rexc.MaxConnectionsError("No connection available.") from None
        try:
            return await self._execute(*args, **kwargs)
        finally:
            gate.release()

    async def _execute(self, *args: EncodableT, **kwargs: Any) -> Any:
        try:
            return await super().execute_command(*args, **kwargs)
        except AttributeError as exc:
            if not str(exc).startswith("'NoneType' object has no attribute"):
                raise
            raise rexc.ConnectionError(f"connection closed under the command: {exc}") from exc


def fcall_slot(cluster: RedisCluster, args: tuple[Any, ...]) -> int | None:
    """The slot of ``FCALL function 1 key ...`` (None: another command). redis-py knows EVALSHA's
    keys from its arguments but asks a node for FCALL's (``COMMAND GETKEYS``): a round trip more
    for every call."""
    keys = fcall_keys(args)
    return None if keys is None else int(cluster.keyslot(keys[0]))  # type: ignore[no-untyped-call]


def fcall_keys(args: tuple[Any, ...]) -> tuple[Any, ...] | None:
    """The keys of ``FCALL function numkeys key ...`` (None: another command, or no keys)."""
    if len(args) > 3 and str(args[0]).upper() in ("FCALL", "FCALL_RO"):
        keys = tuple(args[3 : 3 + int(args[2])])
        return keys or None
    return None


class _FcallKeys:
    """An asyncio cluster client's commands parser that reads FCALL's keys from its arguments
    (see fcall_slot) and asks the parser it wraps for every other command's."""

    def __init__(self, parser: Any) -> None:
        self.parser = parser

    async def get_keys(self, *args: Any) -> tuple[Any, ...] | None:
        keys = fcall_keys(args)
        return keys if keys is not None else await self.parser.get_keys(*args)

    def __getattr__(self, name: str) -> Any:
        # initialize() and whatever else redis-py asks of its parser.
        return getattr(self.parser, name)


def _options(settings: Settings) -> dict[str, Any]:
    """What a pool's (or admin's) own client is opened with. Its connection bound is
    ``max_connections``; waiting callers hold none (a dispatcher per client waits for them all),
    so it bounds the commands in flight at once."""
    return {
        "decode_responses": True,
        "socket_connect_timeout": 5,
        "max_connections": settings.max_connections,
    }


def open_async(settings: Settings) -> aioredis.Redis:
    """The asyncio client a pool (or admin) object opens for itself when given none.

    With ``redis_cluster`` it is a cluster client (the bound then holds per node): every key one
    call names is in one pool's slot, and the registry of pools is one key of its own."""
    with url_checked():
        if settings.redis_cluster:
            # Typed as Redis: it has the command methods the library uses, though not a subclass.
            cluster = _AsyncRedisCluster.from_url(settings.redis_url, **_options(settings))
            cast(_AsyncRedisCluster, cluster).limit(settings.max_connections)
            return cast(aioredis.Redis, cluster)
        # A blocking pool: past max_connections, a command waits its turn for a connection
        # instead of failing at once (thousands of tasks may ask at the same moment).
        pool = aioredis.BlockingConnectionPool.from_url(
            settings.redis_url, timeout=CONNECTION_WAIT_S, **_options(settings)
        )
        return aioredis.Redis.from_pool(pool)


def open_blocking(settings: Settings) -> redis.Redis:
    """The blocking client a pool (or admin) object opens for itself when given none."""
    with url_checked():
        if settings.redis_cluster:
            # The blocking cluster client asks a node for the slot map at once (the asyncio one
            # on its first command): an unreachable cluster is StoreUnavailable here already.
            with mapped(f"connect to the redis cluster at {mask_url(settings.redis_url)}"):
                blocking = _RedisCluster.from_url(settings.redis_url, **_options(settings))
                cast(_RedisCluster, blocking).limit(settings.max_connections)
                return cast(redis.Redis, blocking)
        pool = redis.BlockingConnectionPool.from_url(
            settings.redis_url, timeout=CONNECTION_WAIT_S, **_options(settings)
        )
        return redis.Redis.from_pool(pool)


def connect(url: str, *, cluster: bool | None = None, **options: Any) -> redis.Redis:
    """A blocking client of ``url``; a cluster client when ``cluster`` (default: the
    ``THREAD_POOL_REDIS_CLUSTER`` setting). ``options`` go to ``from_url``.

    A cluster client routes each command by its key's slot, splits ``DEL``/``UNLINK`` of many
    keys by slot, and scans every master in ``scan_iter``."""
    if cluster is None:
        cluster = Settings.load().redis_cluster
    if cluster:
        return cast(redis.Redis, _RedisCluster.from_url(url, **options))
    return redis.Redis.from_url(url, **options)
