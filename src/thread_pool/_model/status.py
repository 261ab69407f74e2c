"""What ``stats()`` and ``status`` show of a pool. No I/O here (``_store/replies.py`` decodes
the scripts' replies into these)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


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
    last_used: float = 0.0
    """Unix time (Redis clock) a lease was last granted (``created_at`` if none ever was)."""
    idle_expiry: float | None = None
    """Seconds idle after which ``maintain`` and ``gc`` retire this pool, overriding their
    default (``configure(key, idle_expiry=...)``); None: their default applies."""


@dataclass(frozen=True, slots=True)
class PoolMetrics:
    """What the metrics endpoint shows of one pool: ``stats()`` and the log's figures."""

    stats: PoolStats
    log_length: int
    """Entries the context log holds."""
    max_lag: int
    """Entries logged since the thread furthest behind last caught up (0: none behind)."""


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
    """``idle``, ``leased``, ``expired`` (leased, past its deadline, not reclaimed yet: its
    holder may not write any more; the next acquire or reap settles it) or ``settling``."""
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

    @property
    def expired(self) -> int:
        """Leases past their deadline that no reaper has reclaimed yet."""
        return sum(1 for lease in self.leases if lease.remaining <= 0)

    def to_json(self) -> dict[str, Any]:
        """A plain-JSON form (``status --json``); ``stats`` is exactly ``stats()``'s fields."""
        return {
            "key": self.key,
            "stats": _fields(self.stats),
            "draining": self.draining,
            "now": self.now,
            "log_length": self.log_length,
            "log_seq": self.log_seq,
            "threads": [_fields(t) for t in self.threads],
            "leases": [_fields(lease) for lease in self.leases],
            "waiters": [_fields(w) for w in self.waiters],
            "retired": list(self.retired),
        }


def _fields(flat: Any) -> dict[str, Any]:
    """``dataclasses.asdict`` of a dataclass whose fields are all plain values, without its deep
    copy: 7x faster, which is most of building ``status --json`` of 100,000 pools."""
    names = _NAMES.get(type(flat))
    if names is None:
        names = _NAMES[type(flat)] = tuple(f.name for f in dataclasses.fields(flat))
    return {name: getattr(flat, name) for name in names}


_NAMES: dict[type, tuple[str, ...]] = {}


@dataclass
class DeleteReport:
    """What ``delete`` removed."""

    key: str
    threads: list[str] = field(default_factory=list)
    """Every thread the pool knew (retired ones included)."""
    deleted_upstream: list[str] = field(default_factory=list)
    missing_upstream: list[str] = field(default_factory=list)
    """Threads upstream did not know any more."""
    left_upstream: list[str] = field(default_factory=list)
    """Threads not deleted upstream (no backend was given): only this report still names them."""


@dataclass(frozen=True)
class Growth:
    """The outcome of one pre-warm step on a pool."""

    outcome: str
    """``grown`` (a thread was added), ``done`` (the pool has its target), ``pending`` (the
    target is covered only by others' reservations in flight), ``draining``."""
    threads: int
    target: int
    """The target as capped by ``max_size``."""
