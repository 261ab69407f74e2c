"""The Redis side of the pool: runs the Lua scripts by SHA and a few plain reads, and decides
nothing. Pool, admin and their helpers all go through one of these."""

from __future__ import annotations

import functools
from typing import Any

import redis.asyncio as redis

from thread_pool._acompat import keep_cancellation
from thread_pool._async.dispatch import AsyncDispatcher
from thread_pool._async.runner import AsyncRunner
from thread_pool._model.log import LogEntry
from thread_pool._store.errors import mapped
from thread_pool._store.keys import PoolKeys, owners_key, registry_key
from thread_pool._store.replies import entry_of, text
from thread_pool.errors import InvalidArgument

# Registry members asked for per SSCAN step: a step of 1,000 kept Redis busy about 1.5 ms (on a
# busy machine), and a listing of 100,000 pools takes 100 round trips.
SCAN_STEP = 1000


class AsyncStore:
    """Pool operations over one redis-py client; every change is one script call (a function's,
    where the server has functions: see ``AsyncRunner``)."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        if not hasattr(client, "register_script"):  # a cluster client is no Redis subclass
            raise InvalidArgument(f"client must be a redis-py client, not {type(client).__name__}")
        self.client = client
        self.prefix = prefix
        self.runner = AsyncRunner(client)
        socket_timeout = _socket_timeout(client)
        self._block_slice = 0.8 * socket_timeout if socket_timeout else 3600.0
        self.dispatcher = AsyncDispatcher(self)

    def keys(self, key: str) -> PoolKeys:
        """The Redis keys of pool ``key``."""
        return _pool_keys(self.prefix, key)

    async def call(self, name: str, key: str, *args: str | int | float) -> Any:
        """Run script ``name`` on pool ``key`` (it names the pool's other keys from the first)."""
        with keep_cancellation(), mapped(f"{name} on pool {key!r}"):
            return await self.runner.run(name, [self.keys(key).meta], list(args))

    async def owners(self, op: str, key: str, thread_ids: list[str]) -> Any:
        """Run ``owners.lua``'s ``op`` ("claim", "release") for pool ``key`` on the prefix's
        owners hash (its own key, outside every pool)."""
        with keep_cancellation(), mapped(f"{op} threads for pool {key!r}"):
            return await self.runner.run(
                "owners", [owners_key(self.prefix)], [op, key, *thread_ids]
            )

    async def owned_by(self, key: str) -> list[str]:
        """Every thread the owners hash names pool ``key`` the owner of (read in steps, so a
        large hash never blocks Redis)."""
        found = []
        with keep_cancellation(), mapped(f"list the threads owned by pool {key!r}"):
            async for thread, owner in self.client.hscan_iter(owners_key(self.prefix), count=1000):
                if text(owner) == key:
                    found.append(text(thread))
        return found

    async def call_each(self, name: str, keys: list[str], batch: int = 500) -> list[Any]:
        """Run read-only script ``name`` on each pool of ``keys``; the replies in order. On a
        single Redis the calls go in pipelined batches (one round trip per ``batch`` pools, so a
        scrape of thousands of pools takes a few round trips); a cluster client gets them one by
        one, each routed to its pool's node."""
        if not isinstance(self.client, redis.Redis):
            return [await self.call(name, key) for key in keys]
        out: list[Any] = []
        for start in range(0, len(keys), batch):
            chunk = keys[start : start + batch]
            with keep_cancellation(), mapped(f"{name} on {len(chunk)} pools"):
                out += await self.runner.run_each(name, [self.keys(key).meta for key in chunk])
        return out

    async def pop_shared(self, key: str, box: str, timeout: float) -> str | None:
        """Block until a message reaches dispatcher ``box``'s shared mailbox on pool ``key`` (it
        is taken), or about ``timeout`` seconds pass (None)."""
        # One BLPOP may not outlast the client's socket timeout; the 1 ms floor matters: a BLPOP
        # timeout of 0 would block forever.
        step = max(min(timeout, self._block_slice), 0.001)
        with keep_cancellation(), mapped(f"wait on pool {key!r}"):
            got = await self.client.blpop([self.keys(key).shared_mailbox(box)], step)
        return None if got is None else text(got[1])

    async def wake_shared(self, key: str, box: str) -> None:
        """Wake the reader of dispatcher ``box`` on pool ``key`` with an empty message (read as
        nothing; it goes away by itself if nobody reads it)."""
        shared = self.keys(key).shared_mailbox(box)
        with keep_cancellation(), mapped(f"wake the waiters of pool {key!r}"):
            await self.client.rpush(shared, "")
            await self.client.pexpire(shared, 60_000)

    async def field(self, key: str, name: str, field: str, what: str) -> str | None:
        """Field ``field`` of pool ``key``'s hash ``name`` (``meta``, ``inflight``, ...)."""
        with keep_cancellation(), mapped(f"read {what} of pool {key!r}"):
            value = await self.client.hget(getattr(self.keys(key), name), field)
        return None if value is None else text(value)

    async def in_flight(self, key: str, thread_id: str) -> str | None:
        """The ``fence|id`` a turn recorded as in flight on the thread, if any."""
        return await self.field(key, "inflight", thread_id, "the in-flight record")

    async def epoch(self, key: str) -> str:
        """Pool ``key``'s epoch ("" when it has none, see lost_state in _common.lua)."""
        return await self.field(key, "meta", "epoch", "the epoch") or ""

    async def has_thread(self, key: str, thread_id: str) -> bool:
        """Whether ``thread_id`` is registered with pool ``key``."""
        with keep_cancellation(), mapped(f"look up a thread of pool {key!r}"):
            return bool(await self.client.hexists(self.keys(key).threads, thread_id))

    async def known_threads(self, key: str) -> list[str] | None:
        """Pool ``key``'s registered and retired thread ids (None: no such pool), read plainly:
        it works on a pool whose state was lost, which the scripts refuse to inspect."""
        k = self.keys(key)
        with keep_cancellation(), mapped(f"list the threads of pool {key!r}"):
            if not await self.client.exists(k.meta):
                return None
            registered: Any = await self.client.hkeys(k.threads)
            retired: Any = await self.client.lrange(k.retired, 0, -1)
        return [text(t) for t in [*registered, *retired]]

    async def read_log(self, key: str) -> list[LogEntry]:
        """Every entry of pool ``key``'s log, oldest first, as ``LogEntry``."""
        with keep_cancellation(), mapped(f"read the log of pool {key!r}"):
            entries: Any = await self.client.xrange(self.keys(key).log)
        return [entry_of(i, f) for i, f in entries or []]

    async def register_pool(self, key: str) -> None:
        """Remember ``key`` in the registry of pools (for ``reap()`` and listing)."""
        with keep_cancellation(), mapped(f"register pool {key!r}"):
            await self.client.sadd(registry_key(self.prefix), key)

    async def unregister_pool(self, key: str) -> None:
        """Forget ``key`` in the registry of pools."""
        with keep_cancellation(), mapped(f"unregister pool {key!r}"):
            await self.client.srem(registry_key(self.prefix), key)

    async def pool_keys(self) -> list[str]:
        """Every pool key in the registry, sorted. Read with SSCAN in steps, never one SMEMBERS:
        Redis builds a whole reply in one go, which for 100,000 pools kept every other client
        waiting 0.1-0.6 s (see docs/benchmarks.md, "Many pools"). A pool added or removed during
        the scan may or may not be listed; one there throughout is listed once."""
        found: set[str] = set()
        with mapped("list pools"):
            async for member in self.client.sscan_iter(registry_key(self.prefix), count=SCAN_STEP):
                found.add(text(member))
        return sorted(found)

    async def pop_retired(self, key: str) -> str | None:
        """Take the oldest thread id off pool ``key``'s retired list (None: it is empty)."""
        with keep_cancellation(), mapped(f"retired list of pool {key!r}"):
            value: Any = await self.client.lpop(self.keys(key).retired)
        return None if value is None else text(value)

    async def push_retired(self, key: str, thread_id: str) -> None:
        """Put a thread id back at the head of pool ``key``'s retired list."""
        with mapped(f"retired list of pool {key!r}"):
            await self.client.lpush(self.keys(key).retired, thread_id)

    async def forget_cursor(self, key: str, thread_id: str) -> None:
        """Drop the log cursor of a thread that left pool ``key`` for good (deleted upstream)."""
        with mapped(f"cursors of pool {key!r}"):
            await self.client.hdel(self.keys(key).cursors, thread_id)

    async def aclose(self, *, close_client: bool) -> None:
        """Stop the dispatcher's readers, then close the client if ``close_client`` (it is the
        store's own). A client the caller gave stays open, with no reader left on it: a reader
        outliving its pool would go on with commands on a client its owner then closes, which
        a cluster client answers by opening new connections that nobody closes."""
        await self.dispatcher.aclose()
        if close_client:
            await self.client.aclose()


@functools.lru_cache(maxsize=4096)
def _pool_keys(prefix: str, key: str) -> PoolKeys:
    return PoolKeys.of(prefix, key)


def _socket_timeout(client: Any) -> float | None:
    """The client's read timeout (None: it waits forever), as far as it can be found out."""
    pool = getattr(client, "connection_pool", None)
    kwargs = getattr(pool, "connection_kwargs", {})
    for name in ("socket_timeout", "orig_socket_timeout"):
        if name in kwargs:
            value = kwargs[name]
            return None if value is None else float(value)
    return 5.0  # redis-py's default, and a cluster client's
