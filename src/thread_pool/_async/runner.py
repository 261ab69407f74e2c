"""Runs the library's Lua code by script name: as functions of one Redis Functions library
(``FCALL``; Redis 7+, Valkey), else as scripts (``EVALSHA``) where the server has no functions.

A function call sends the function's name, the key and the arguments, nothing else; the library's
helpers were defined once, when it was loaded, not on every call as in a script. The library is
loaded lazily, as redis-py's scripts are on ``NOSCRIPT``: the first call a server answers with
"Function not found" (a fresh server, a master restarted without persistence) loads it and runs
again. A server without functions (Redis < 7: an unknown command) or a user not allowed them
(``NOPERM``) turns this runner to the scripts for the rest of its life."""

from __future__ import annotations

import re
from typing import Any

import redis.asyncio as redis
import redis.exceptions as rexc
from redis.commands.core import AsyncScript

from thread_pool._store import scripts

# Redis 6 quotes the command with backticks, Redis 7 and Valkey with quotes; a renamed command is
# unknown under its own name. Inside a script, an unknown command reads "Unknown Redis command".
_UNKNOWN = re.compile(r"unknown command [`'](fcall|function)[`']", re.IGNORECASE)
_ACL_REFUSED = re.compile(r"permissions to run the '(fcall|function\|load)' command", re.I)


class AsyncRunner:
    """Runs scripts by name over one redis-py client (a single server or a cluster)."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.library = scripts.library()
        # register_script loads nothing yet: the first call tries EVALSHA and loads on NOSCRIPT.
        self._scripts: dict[str, AsyncScript] = {
            name: client.register_script(scripts.source(name)) for name in scripts.NAMES
        }
        self.single = isinstance(client, redis.Redis)
        # A cluster client finds an FCALL's key by asking a node (COMMAND GETKEYS, a round trip
        # per call) unless it is one of the library's own (clients.py), which reads it as
        # EVALSHA's: any other cluster client runs the scripts.
        self.functions = self.single or bool(getattr(client, "ROUTES_FCALL", False))

    async def run(self, name: str, keys: list[str], args: list[Any]) -> Any:
        """Run script ``name`` on ``keys`` with ``args``; its reply."""
        if self.functions:
            try:
                return await self._fcall(name, keys, args)
            except rexc.ResponseError as exc:
                if not _missing(exc) and not functions_refused(exc):
                    raise
                if _missing(exc) and await self.load(keys[0]):
                    return await self._fcall(name, keys, args)
                self.functions = False
        return await self._scripts[name](keys=keys, args=args)

    async def run_each(self, name: str, keys: list[str]) -> list[Any]:
        """Run read-only script ``name`` on each key of ``keys`` (no arguments) in one pipeline
        (a single server only); the replies in order."""
        if name not in scripts.READ_ONLY:
            raise ValueError(f"{name} changes data: a pipeline of it cannot be run again")
        if not self.functions or not keys:
            return await self._pipelined(name, keys, raise_on_error=True)
        # The first call decides between functions and scripts, and loads the library.
        first = await self.run(name, keys[:1], [])
        replies = await self._pipelined(name, keys[1:], raise_on_error=False)
        if self.functions and any(_missing(r) for r in replies if isinstance(r, Exception)):
            # The library went away meanwhile (a restart): the calls only read, so all run again.
            await self.load()
            replies = await self._pipelined(name, keys[1:], raise_on_error=False)
        return [first, *_raised(replies)]

    async def load(self, key: str | None = None) -> bool:
        """Load the library on the server (on a cluster: the master of ``key``, which said it
        lacks it, else every master); False if it refuses functions. A library of the same name
        that is already there is this one (the name is its code's hash): another client loaded
        it first. Each master of a cluster is loaded when a call first finds it missing there,
        so a master that is down at that moment fails only the calls that need it."""
        code = self.library.code
        try:
            if self.single:
                await _load_on(self.client, code)
            else:
                cluster: Any = self.client
                nodes = (
                    [cluster.get_node_from_key(key)] if key is not None else cluster.get_primaries()
                )
                for node in nodes:
                    await _load_on(cluster, code, target_nodes=node)
        except rexc.ResponseError as exc:
            if functions_refused(exc):
                return False
            raise
        return True

    async def _fcall(self, name: str, keys: list[str], args: list[Any]) -> Any:
        function = self.library.functions[name]
        client: Any = self.client  # redis-py's blocking execute_command is untyped
        return await client.execute_command("FCALL", function, len(keys), *keys, *args)

    async def _pipelined(self, name: str, keys: list[str], raise_on_error: bool) -> list[Any]:
        if not keys:
            return []
        async with self.client.pipeline(transaction=False) as pipe:
            queue: Any = pipe  # see _fcall
            for key in keys:
                if self.functions:
                    queue.execute_command("FCALL", self.library.functions[name], 1, key)
                else:
                    await self._scripts[name](keys=[key], args=[], client=pipe)
            return list(await pipe.execute(raise_on_error=raise_on_error))


async def _load_on(client: Any, code: str, **route: Any) -> None:
    try:
        await client.execute_command("FUNCTION LOAD", code, **route)
    except rexc.ResponseError as exc:
        if "already exists" not in str(exc):
            raise


def _missing(exc: Exception) -> bool:
    """The server has functions but not this library's (yet, or no more)."""
    return "Function not found" in str(exc)


def functions_refused(exc: Exception) -> bool:
    """Whether ``exc`` is the server refusing ``FCALL`` or ``FUNCTION`` itself: an unknown
    command (Redis < 7, or renamed away) or an ACL refusal of the command. Not a refusal inside a
    function (a command it calls, a key): that function may have written before it, so running
    the script after it would do those writes twice."""
    text = str(exc)
    if isinstance(exc, rexc.NoPermissionError):  # the reply began with NOPERM: the call itself
        return bool(_ACL_REFUSED.search(text))
    return bool(_UNKNOWN.match(text))


def _raised(replies: list[Any]) -> list[Any]:
    """``replies``, raising the first error among them (as a pipeline that raises would)."""
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies
