"""Every Redis key name thread_pool uses, built in one place.

All keys of one pool carry the pool key as a Redis Cluster hash tag (``tp:{doc-42}:idle``), so a
pool lives in one slot and each Lua script touches one slot only. The registry of pools
(``tp:pools``) and the owners of threads (``tp:owners``) are the keys outside any pool. The
registry is only ever written by plain commands; the owners hash by its own script
(``owners.lua``), which touches that key alone. Neither shares a slot with a pool, so both may
live on another cluster node.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PoolKeys:
    """The Redis key names of one pool."""

    base: str  # "<prefix>:{<key>}:" — mailbox keys are derived from it inside scripts

    @classmethod
    def of(cls, prefix: str, key: str) -> PoolKeys:
        """The keys of pool ``key`` under ``prefix`` (both already validated)."""
        return cls(f"{prefix}:{{{key}}}:")

    @property
    def meta(self) -> str:
        """Hash: sizes, TTL, creation time and counters."""
        return self.base + "meta"

    @property
    def threads(self) -> str:
        """Hash: thread id -> fence (grants so far)."""
        return self.base + "threads"

    @property
    def idle(self) -> str:
        """Sorted set: idle thread ids, best first by score (highest taken first)."""
        return self.base + "idle"

    @property
    def leases(self) -> str:
        """Sorted set: leased thread id -> deadline (Redis time, ms)."""
        return self.base + "leases"

    @property
    def holds(self) -> str:
        """Hash: leased thread id -> ``token|fence|acquired_ms|holder``."""
        return self.base + "holds"

    @property
    def settling(self) -> str:
        """Sorted set: thread id being settled -> deadline of the settler's claim (ms)."""
        return self.base + "settling"

    @property
    def waiters(self) -> str:
        """List: FIFO of waiting tickets, ``ticket|deadline_ms``."""
        return self.base + "waiters"

    @property
    def reserved(self) -> str:
        """Sorted set: growth reservations (ticket -> deadline ms)."""
        return self.base + "reserved"

    @property
    def retired(self) -> str:
        """List: thread ids removed from the pool that may still exist upstream."""
        return self.base + "retired"

    @property
    def claims(self) -> str:
        """Hash: thread id being settled -> token of the caller that claimed it."""
        return self.base + "claims"

    @property
    def inflight(self) -> str:
        """Hash: thread id -> ``fence|id`` of the upstream request its turn has in flight."""
        return self.base + "inflight"

    @property
    def log(self) -> str:
        """Stream: the pool's canonical context log, one entry per message, ids ``<seq>-0``."""
        return self.base + "log"

    @property
    def logged(self) -> str:
        """Hash: id of a turn (or appended context) already in the log -> its last log seq."""
        return self.base + "logged"

    @property
    def cursors(self) -> str:
        """Hash: thread id -> seq of the last log entry the thread is known to hold."""
        return self.base + "cursors"

    def tombstone(self, token: str) -> str:
        """Marks a token whose acquire was abandoned, so a late command of it takes nothing."""
        return f"{self.base}x:{token}"

    def mailbox(self, ticket: str) -> str:
        """List a waiter of an older client blocks on; a release pushes the grant into it."""
        return f"{self.base}w:{ticket}"

    def shared_mailbox(self, box: str) -> str:
        """List one process's dispatcher blocks on for all of its waiters on the pool (their
        tickets are ``<box>.<n>``); a release pushes ``<ticket>|<grant>`` into it."""
        return f"{self.base}d:{box}"

    def all_fixed(self) -> list[str]:
        """Every key of the pool except the short-lived mailboxes."""
        return [
            self.meta,
            self.threads,
            self.idle,
            self.leases,
            self.holds,
            self.settling,
            self.waiters,
            self.reserved,
            self.retired,
            self.claims,
            self.inflight,
            self.log,
            self.logged,
            self.cursors,
        ]


def owners_key(prefix: str) -> str:
    """Hash of thread id -> the pool that owns it, under ``prefix`` (one pool per thread)."""
    return f"{prefix}:owners"


def registry_key(prefix: str) -> str:
    """Set of the pool keys known under ``prefix``."""
    return f"{prefix}:pools"
