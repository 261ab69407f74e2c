"""What ``status`` shows of a pool, decoded from one ``admin_inspect`` snapshot. No I/O here."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from thread_pool._store.replies import PoolStats, integers, outcome, pool_stats, strings, text
from thread_pool.errors import CorruptState


@dataclass(frozen=True, slots=True)
class LeaseInfo:
    """One lease held right now."""

    thread_id: str
    fence: int
    holder: str
    """``host:pid:task`` of the holder (its token is not shown: it is what releases the lease)."""
    age: float
    """Seconds since it was granted."""
    remaining: float
    """Seconds until it expires (negative: expired, waiting to be reaped)."""


@dataclass(frozen=True, slots=True)
class WaiterInfo:
    """One caller waiting for a thread."""

    holder: str
    remaining: float
    """Seconds it will still wait."""


@dataclass(frozen=True, slots=True)
class ThreadInfo:
    """One thread of the pool."""

    thread_id: str
    fence: int
    """Grants so far."""
    state: str
    """``idle``, ``leased`` or ``settling``."""
    in_flight: str | None = None
    """``fence|id`` of an upstream request a turn started and has not seen end."""
    lag: int | None = None
    """Log entries the thread has not received yet: the log's last seq minus the thread's
    cursor (0 for a thread without a cursor). None only in a status built by hand."""


@dataclass(frozen=True, slots=True)
class PoolStatus:
    """A pool as an operator sees it: ``stats()`` plus who holds and who waits, at one instant."""

    stats: PoolStats
    now: float
    """Redis time of the snapshot (Unix seconds)."""
    draining: bool
    threads: list[ThreadInfo] = field(default_factory=list)
    leases: list[LeaseInfo] = field(default_factory=list)
    waiters: list[WaiterInfo] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)
    log_length: int | None = None
    """Entries in the pool's context log (its XLEN)."""
    log_seq: int | None = None
    """Seq of the log's newest entry (0: nothing logged); lags are counted from it."""

    @property
    def key(self) -> str:
        """The pool key."""
        return self.stats.key

    def to_json(self) -> dict[str, Any]:
        """A plain-JSON form (``status --json``); ``stats`` is exactly ``stats()``'s fields."""
        return {
            "key": self.key,
            "stats": dataclasses.asdict(self.stats),
            "draining": self.draining,
            "now": self.now,
            "log_length": self.log_length,
            "log_seq": self.log_seq,
            "threads": [dataclasses.asdict(t) for t in self.threads],
            "leases": [dataclasses.asdict(lease) for lease in self.leases],
            "waiters": [dataclasses.asdict(w) for w in self.waiters],
            "retired": list(self.retired),
        }


def _pairs(flat: list[Any]) -> list[tuple[str, str]]:
    items = strings(flat)
    return list(zip(items[0::2], items[1::2], strict=True))


def decode_status(key: str, reply: Any) -> PoolStatus | None:
    """Decode an ``admin_inspect`` reply; None when the pool does not exist."""
    if not isinstance(reply, list) or not reply or not isinstance(reply[0], list):
        word, _ = outcome(reply)  # a bare outcome: the pool is not there
        if word == "NOPOOL":
            return None
        raise CorruptState(f"unexpected status reply {reply!r}")
    stats = pool_stats(key, outcome(reply[0])[1])
    now_ms = integers([reply[1]])[0]
    draining = text(reply[2]) != ""
    fences = {t: int(f) for t, f in _pairs(reply[3])}
    leases = []
    for thread_id, hold in _pairs(reply[4]):
        _token, fence, acquired, holder = hold.split("|", 3)
        deadline = dict(_pairs(reply[5])).get(thread_id)
        leases.append(
            LeaseInfo(
                thread_id=thread_id,
                fence=int(fence),
                holder=holder,
                age=(now_ms - int(acquired)) / 1000,
                remaining=(int(float(deadline)) - now_ms) / 1000 if deadline else 0.0,
            )
        )
    leases.sort(key=lambda lease: lease.remaining)
    settling = {t for t, _ in _pairs(reply[6])}
    waiters = []
    for entry in strings(reply[7]):
        _ticket, deadline, holder = entry.split("|", 2)
        if int(deadline) > now_ms:  # the scripts skip waiters whose time ran out; so do we
            waiters.append(WaiterInfo(holder=holder, remaining=(int(deadline) - now_ms) / 1000))
    in_flight = dict(_pairs(reply[9]))
    leased = {lease.thread_id for lease in leases}
    log_length, log_seq = integers(reply[10:12])
    cursors = {t: int(seq) for t, seq in _pairs(reply[12])}
    threads = [
        ThreadInfo(
            thread_id=t,
            fence=fence,
            state="leased" if t in leased else "settling" if t in settling else "idle",
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
