"""What the Lua scripts answer, decoded into plain values. No I/O here.

Replies are lists whose first element names the outcome, or, on the hot path (a grant, a
release), one string whose ``|``-separated first field names it (``G`` for a grant); redis-py
returns bytes or str depending on the client, and Lua numbers become ints, so everything goes
through ``_s``/``_i``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from thread_pool.errors import CorruptState


def _s(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode()
    return str(value)


def _i(value: Any) -> int:
    try:
        return int(_s(value))
    except (TypeError, ValueError):
        raise CorruptState(f"expected a number from redis, got {value!r}") from None


def outcome(reply: Any) -> tuple[str, list[Any]]:
    """Split a script reply into its outcome word and the rest."""
    if isinstance(reply, bytes | str):
        word, *rest = _s(reply).split("|")
        return ("GRANTED" if word == "G" else word), rest
    if not isinstance(reply, list) or not reply:
        raise CorruptState(f"unexpected script reply {reply!r}")
    return _s(reply[0]), reply[1:]


@dataclass(frozen=True, slots=True)
class Grant:
    """A thread granted to a caller."""

    thread_id: str
    fence: int
    deadline_ms: int
    ttl_ms: int


def grant(rest: list[Any]) -> Grant:
    """Decode the ``thread, fence, deadline, ttl`` tail of a GRANTED reply."""
    return Grant(_s(rest[0]), _i(rest[1]), _i(rest[2]), _i(rest[3]))


def strings(rest: list[Any]) -> list[str]:
    """Decode a list of ids."""
    return [_s(x) for x in rest]


def integers(rest: list[Any]) -> list[int]:
    """Decode a list of numbers."""
    return [_i(x) for x in rest]


@dataclass(frozen=True, slots=True)
class PoolStats:
    """One consistent snapshot of a pool (``stats()``)."""

    key: str
    threads: int
    """Threads registered with the pool."""
    idle: int
    leased: int
    settling: int
    """Threads whose lease expired, waiting for their upstream run to be settled."""
    reserved: int
    """Slots reserved for threads being created right now."""
    waiting: int
    """Callers waiting for a thread."""
    retired: int
    """Threads taken out of the pool that may still exist upstream (to delete there)."""
    min_size: int
    max_size: int
    lease_ttl: float
    """Seconds."""
    granted: int
    """Leases granted so far."""
    timeouts: int
    """Acquires that timed out."""
    lost: int
    """Holders told their lease was lost (expired before release, renew or check)."""
    reaped: int
    """Expired leases reclaimed."""
    created_at: float
    """Unix time (Redis clock) the pool was created."""
    lock_errors: int = 0
    """Upstream "thread busy" errors met by turns (should stay 0: each one is a bug signal)."""


def pool_stats(key: str, rest: list[Any]) -> PoolStats:
    """Decode a stats reply."""
    try:
        n = integers(rest)
    except CorruptState as error:
        raise CorruptState(f"the stats of pool {key!r} are damaged: {error}") from None
    return PoolStats(
        key=key,
        threads=n[0],
        idle=n[1],
        leased=n[2],
        settling=n[3],
        reserved=n[4],
        waiting=n[5],
        retired=n[6],
        min_size=n[7],
        max_size=n[8],
        lease_ttl=n[9] / 1000,
        granted=n[10],
        timeouts=n[11],
        lost=n[12],
        reaped=n[13],
        created_at=n[14] / 1000,
        lock_errors=n[15] if len(n) > 15 else 0,
    )


def mailbox_grant(message: str) -> Grant:
    """Decode a hand-off message ``G|thread|fence|deadline|ttl`` from a waiter's mailbox."""
    parts = message.split("|")
    if len(parts) != 5 or parts[0] != "G":
        raise CorruptState(f"unexpected mailbox message {message!r}")
    return grant(parts[1:])


def text(value: Any) -> str:
    """A reply element as text."""
    return _s(value)
