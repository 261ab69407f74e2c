"""What Redis answers, decoded into the model's types: every script reply and every raw read
(log entries, status snapshots, exports) is decoded here and nowhere else. No I/O here.

Replies are lists whose first element names the outcome, or, on the hot path (a grant, a
release), one string whose ``|``-separated first field names it (``G`` for a grant); redis-py
returns bytes or str depending on the client, and Lua numbers become ints, so everything goes
through ``_s``/``_i``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from thread_pool._model.log import LogEntry, Missing
from thread_pool._model.status import (
    LeaseInfo,
    PoolMetrics,
    PoolStats,
    PoolStatus,
    ThreadInfo,
    WaiterInfo,
)
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


class Outcome(StrEnum):
    """The first word of a script's reply: what happened, or what the caller must do next. Each
    script's header (``scripts/*.lua``) says which it answers."""

    GRANTED = "GRANTED"
    SETTLE = "SETTLE"
    GROW = "GROW"
    WAIT = "WAIT"
    TIMEOUT = "TIMEOUT"
    FULL = "FULL"
    NOPOOL = "NOPOOL"
    ABANDONED = "ABANDONED"
    DRAINING = "DRAINING"
    LOSTSTATE = "LOSTSTATE"
    OK = "OK"
    SHORT = "SHORT"
    LOST = "LOST"
    LATE = "LATE"
    NOTOWNED = "NOTOWNED"
    RETRY = "RETRY"
    GONE = "GONE"
    BADSIZE = "BADSIZE"
    EXISTS = "EXISTS"
    DONE = "DONE"
    DUPLICATE = "DUPLICATE"
    RETIRED = "RETIRED"
    KEPT = "KEPT"
    DROPPED = "DROPPED"
    NOTCLAIMED = "NOTCLAIMED"
    WAITING = "WAITING"
    IDLE = "IDLE"
    DUP = "DUP"
    HANDED = "HANDED"
    OWNED = "OWNED"
    INVALID = "INVALID"
    BUSY = "BUSY"
    USED = "USED"


_WORDS = {word.value: word for word in Outcome} | {"G": Outcome.GRANTED}


def _word(value: Any) -> Outcome:
    word = _WORDS.get(_s(value))
    if word is None:
        raise CorruptState(f"unexpected outcome {value!r} from a script")
    return word


def outcome(reply: Any) -> tuple[Outcome, list[Any]]:
    """Split a script reply into its outcome and the rest."""
    if isinstance(reply, bytes | str):
        word, *rest = _s(reply).split("|")
        return _word(word), rest
    if not isinstance(reply, list) or not reply:
        raise CorruptState(f"unexpected script reply {reply!r}")
    return _word(reply[0]), reply[1:]


@dataclass(frozen=True, slots=True)
class TurnStart:
    """What the grant of a lease for a turn did for that turn (acquire.lua's ``turn``): the
    fence check of its first request, with the request marked in flight; and ``missing``, the
    thread's context read from the log with it (None: not read)."""

    missing: Missing | None


@dataclass(frozen=True, slots=True)
class Grant:
    """A thread granted to a caller; ``turn``: what the grant did for the turn it was asked
    for (None: a plain grant)."""

    thread_id: str
    fence: int
    deadline_ms: int
    ttl_ms: int
    turn: TurnStart | None = None


def grant(rest: list[Any], turn: TurnStart | None = None) -> Grant:
    """Decode the ``thread, fence, deadline, ttl`` tail of a GRANTED reply."""
    return Grant(_s(rest[0]), _i(rest[1]), _i(rest[2]), _i(rest[3]), turn)


def turn_grant(reply: Any) -> tuple[Any, Missing | None]:
    """Split an acquire reply that carries the thread's context (acquire.lua, ``turn`` "2"):
    the grant as ``outcome`` reads it, and the context; any other reply as it is, and None."""
    if isinstance(reply, list) and len(reply) > 1 and _s(reply[0]).startswith("G|"):
        return reply[0], parse_missing(reply[1:])
    return reply, None


def strings(rest: list[Any]) -> list[str]:
    """Decode a list of ids."""
    return [_s(x) for x in rest]


def integers(rest: list[Any]) -> list[int]:
    """Decode a list of numbers."""
    return [_i(x) for x in rest]


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
        last_used=n[16] / 1000 if len(n) > 16 else n[14] / 1000,
        idle_expiry=n[17] / 1000 if len(n) > 17 and n[17] > 0 else None,
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


def parse_missing(reply: Any) -> Missing:
    """The reply of ``log_missing.lua``: last seq, cursor, first seq, then 5 fields per entry."""
    if not isinstance(reply, list) or len(reply) < 3 or (len(reply) - 3) % 5:
        raise CorruptState(f"log_missing answered {reply!r:.200}")
    entries = tuple(
        LogEntry(
            seq=_i(reply[i]),
            role=_s(reply[i + 1]),
            content=_s(reply[i + 2]),
            origin=_s(reply[i + 3]),
            time_ms=_i(reply[i + 4]),
        )
        for i in range(3, len(reply), 5)
    )
    return Missing(
        last_seq=_i(reply[0]), cursor=_i(reply[1]), entries=entries, first_seq=_i(reply[2])
    )


def entry_of(stream_id: Any, fields: dict[Any, Any]) -> LogEntry:
    """A log entry from its stream id (``<seq>-0``) and fields, as XRANGE returns them."""
    f = {_s(k): _s(v) for k, v in fields.items()}
    return LogEntry(
        seq=_number("a log entry's id", _s(stream_id).split("-", 1)[0]),
        role=f.get("role", ""),
        content=f.get("content", ""),
        origin=f.get("origin", ""),
        time_ms=_number("a log entry's time", f.get("time", "0")),
        run_id=f.get("run", ""),
        turn_id=f.get("turn", ""),
    )


def _pairs(flat: list[Any]) -> list[tuple[str, str]]:
    items = strings(flat)
    return list(zip(items[0::2], items[1::2], strict=True))


def _snapshot(reply: Any, what: str) -> bool:
    """Whether a reply that starts with stats.lua's reply is there: False for a bare ``NOPOOL``
    (the pool does not exist), ``CorruptState`` for anything else that is not a snapshot."""
    if isinstance(reply, list) and reply and isinstance(reply[0], list):
        return True
    word, _ = outcome(reply)
    if word is Outcome.NOPOOL:
        return False
    raise CorruptState(f"unexpected {what} reply {reply!r}")


def decode_status(key: str, reply: Any) -> PoolStatus | None:
    """Decode an ``admin_inspect`` reply; None when the pool does not exist. Damaged records
    (a hold without its ``|`` fields, a fence that is no number) are ``CorruptState`` naming
    the pool and the record."""
    if not _snapshot(reply, "status"):
        return None
    try:
        return _status(key, reply)
    except CorruptState as exc:
        raise CorruptState(f"the status of pool {key!r} is damaged: {exc}") from None
    except (ValueError, IndexError, TypeError) as exc:
        # A list of odd length, or a reply shorter than admin_inspect.lua's.
        raise CorruptState(f"the status of pool {key!r} is damaged: {exc}") from None


def _fields(what: str, record: str, count: int) -> list[str]:
    """``record`` split at ``|`` into ``count`` fields (the last keeps any further ``|``)."""
    parts = record.split("|", count - 1)
    if len(parts) != count:
        raise CorruptState(f"{what} {record[:200]!r} is not {count} fields separated by '|'")
    return parts


def _number(what: str, value: Any) -> int:
    try:
        return int(float(_s(value)))  # a ZSET score comes as a float's text
    except (TypeError, ValueError, OverflowError):
        raise CorruptState(f"{what} {value!r:.200} is not a number") from None


def _status(key: str, reply: list[Any]) -> PoolStatus:
    stats = pool_stats(key, outcome(reply[0])[1])
    now_ms = integers([reply[1]])[0]
    draining = text(reply[2]) != ""
    fences = {t: _number(f"the fence of thread {t!r}", f) for t, f in _pairs(reply[3])}
    deadlines = dict(_pairs(reply[5]))
    leases = []
    for thread_id, hold in _pairs(reply[4]):
        _token, fence, acquired, holder = _fields(f"the hold of thread {thread_id!r}", hold, 4)
        deadline = deadlines.get(thread_id)
        leases.append(
            LeaseInfo(
                thread_id=thread_id,
                fence=_number(f"the fence in the hold of {thread_id!r}", fence),
                holder=holder,
                age=(now_ms - _number(f"the grant time of {thread_id!r}", acquired)) / 1000,
                remaining=(_number(f"the deadline of {thread_id!r}", deadline) - now_ms) / 1000
                if deadline
                else 0.0,
            )
        )
    leases.sort(key=lambda lease: lease.remaining)
    settling = {t for t, _ in _pairs(reply[6])}
    waiters = []
    for entry in strings(reply[7]):
        _ticket, deadline, holder = _fields("a waiter's entry", entry, 3)
        left_ms = _number("a waiter's deadline", deadline) - now_ms
        if left_ms > 0:  # the scripts skip waiters whose time ran out; so do we
            waiters.append(WaiterInfo(holder=holder, remaining=left_ms / 1000))
    in_flight = dict(_pairs(reply[9]))
    # A lease past its deadline that no reaper has reclaimed yet: its holder may write no more.
    expired = {lease.thread_id for lease in leases if lease.remaining <= 0}
    leased = {lease.thread_id for lease in leases}
    log_length, log_seq = integers(reply[10:12])
    cursors = {t: _number(f"the log cursor of {t!r}", seq) for t, seq in _pairs(reply[12])}
    threads = [
        ThreadInfo(
            thread_id=t,
            fence=fence,
            state="expired"
            if t in expired
            else "leased"
            if t in leased
            else "settling"
            if t in settling
            else "idle",
            in_flight=in_flight.get(t),
            lag=max(0, log_seq - cursors.get(t, 0)),
        )
        for t, fence in sorted(fences.items())
    ]
    return PoolStatus(
        stats=stats,
        now=now_ms / 1000,
        draining=draining,
        threads=threads,
        leases=leases,
        waiters=waiters,
        retired=strings(reply[8]),
        log_length=log_length,
        log_seq=log_seq,
    )


def decode_metrics(key: str, reply: Any) -> PoolMetrics | None:
    """Decode an ``admin_metrics`` reply; None when the pool does not exist."""
    if not _snapshot(reply, "metrics"):
        return None
    log_length, max_lag = integers(reply[1:3])
    return PoolMetrics(pool_stats(key, outcome(reply[0])[1]), log_length, max_lag)


def decode_export(key: str, reply: Any) -> dict[str, Any] | None:
    """One pool's entry of a backup, from an ``admin_export`` reply (None: no such pool)."""
    word, rest = outcome(reply)
    if word is Outcome.NOPOOL:
        return None
    keys = []
    for name, kind, data in rest[1:]:
        kind = text(kind)
        keys.append({"name": text(name), "type": kind, "data": _readable(kind, data)})
    return {"key": key, "exported_at": integers(rest[:1])[0] / 1000, "keys": keys}


def _readable(kind: str, data: list[Any]) -> Any:
    if kind == "hash":
        flat = strings(data)
        return dict(zip(flat[0::2], flat[1::2], strict=True))
    if kind == "zset":
        flat = strings(data)
        return [list(pair) for pair in zip(flat[0::2], flat[1::2], strict=True)]
    if kind == "string":
        return text(data[0])
    if kind == "stream":
        return [[text(entry_id), strings(fields)] for entry_id, fields in data]
    return strings(data)
