"""Lease evidence and the independent checks on it: they read evidence after the fact and know
nothing of how leases are granted, renewed or settled.

Evidence comes from places that do not trust each other:

* the holders' own records, written outside the pool's keys with plain commands while they hold
  a thread: a ``Hold`` (the interval a holder used a thread, and the fence it was given: the
  multi-process pool tests), or a ``Grant`` the moment it is granted a thread (``G``), an
  ``End`` when the lease is over (``E``) and a ``Done`` for every turn it saw complete (``D``:
  the chaos run, on a Redis server of its own, not the pool's);
* the upstream's write log (the emulator's ``/_emulator/writes``): every write on every thread
  with its arrival time and the ``tp_fence`` it was stamped with, and its counters (lock
  errors, active runs per thread);
* what the pool left behind, read with plain Redis commands: its keys (``PoolLeftovers``,
  ``assert_quiet``) and its canonical log.

Leases are exclusive exactly when, for every thread, the holds sorted by fence never overlap and
the fences never repeat (``exclusive``). A ``Hold``'s times are nanoseconds of the system-wide
monotonic clock; the chaos records' and the upstream's are milliseconds of the machine's wall
clock (Redis ``TIME``, ``time.time()`` in the emulator and the workers all read it): either way
they compare across processes on one machine.
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import redis

from thread_pool._model.turns import FENCE_KEY
from thread_pool._store.keys import PoolKeys

if TYPE_CHECKING:
    from thread_pool.emulator import EmulatorServer

NS_PER_MS = 1_000_000


@dataclass(frozen=True, slots=True)
class Hold:
    """One holder's use of one thread under one fence, from ``start`` to ``end`` by a clock every
    holder reads (``end`` is None when none was recorded: its holder was killed holding it)."""

    thread_id: str
    fence: int
    start: int
    end: int | None
    holder: str

    def encode(self) -> str:
        """One line of evidence."""
        end = "-" if self.end is None else self.end
        return f"{self.thread_id} {self.fence} {self.start} {end} {self.holder}"

    @classmethod
    def decode(cls, line: str) -> Hold:
        """Parse ``encode``'s line."""
        thread_id, fence, start, end, holder = line.split(" ", 4)
        return cls(thread_id, int(fence), int(start), None if end == "-" else int(end), holder)


def exclusive(holds: Iterable[Hold], ticks_per_ms: int = 1) -> list[str]:
    """Fences never repeat on a thread, and in fence order each hold started after the one
    before it started and, when its end is known, after it ended. ``ticks_per_ms``: how many
    units of the holds' clock make a millisecond (1 for milliseconds, ``NS_PER_MS``)."""
    found: list[str] = []
    by_thread: dict[str, list[Hold]] = defaultdict(list)
    for hold in holds:
        by_thread[hold.thread_id].append(hold)
    for thread_id, thread_holds in by_thread.items():
        thread_holds.sort(key=lambda h: h.fence)
        for before, after in itertools.pairwise(thread_holds):
            if before.fence == after.fence:
                found.append(f"{thread_id}: fence {after.fence} granted twice")
                continue
            if after.start < before.start:
                found.append(
                    f"{thread_id}: fence {after.fence} started before fence {before.fence}"
                )
            if before.end is not None and after.start < before.end:
                found.append(
                    f"{thread_id}: fence {after.fence} ({after.holder}) started "
                    f"{_ms(before.end - after.start, ticks_per_ms)} before fence {before.fence} "
                    f"({before.holder}) ended"
                )
    return found


def _ms(ticks: int, ticks_per_ms: int) -> str:
    if ticks_per_ms == 1:
        return f"{ticks} ms"
    return f"{ticks / ticks_per_ms:.3f} ms"


def hold_violations(holds: Iterable[Hold]) -> list[str]:
    """Every way holders' ``Hold`` records (nanoseconds) contradict exclusive, fenced leases
    (empty when they do not)."""
    held = list(holds)
    found = [
        f"{hold.thread_id}: interval of fence {hold.fence} ends before it starts"
        for hold in held
        if hold.end is not None and hold.end < hold.start
    ]
    return found + exclusive(held, ticks_per_ms=NS_PER_MS)


@dataclass(frozen=True, slots=True)
class Grant:
    """A holder's record of one grant: written at grant time, so a killed holder leaves it too."""

    thread_id: str
    fence: int
    granted_ms: int
    holder: str

    def encode(self) -> str:
        return f"G {self.thread_id} {self.fence} {self.granted_ms} {self.holder}"


@dataclass(frozen=True, slots=True)
class End:
    """A holder's record of a lease that is over: when, and the last deadline it knew of."""

    thread_id: str
    fence: int
    end_ms: int
    deadline_ms: int
    outcome: str

    def encode(self) -> str:
        return f"E {self.thread_id} {self.fence} {self.end_ms} {self.deadline_ms} {self.outcome}"


@dataclass(frozen=True, slots=True)
class Done:
    """A turn its holder saw complete: its message (unique per turn), thread and fence."""

    label: str
    thread_id: str
    fence: int

    def encode(self) -> str:
        return f"D {self.label} {self.thread_id} {self.fence}"


@dataclass(frozen=True, slots=True)
class Write:
    """One upstream write, as the upstream logged it."""

    thread_id: str
    seq: int
    at_ms: int
    op: str
    fence: int | None

    @classmethod
    def logged(cls, thread_id: str, entry: Mapping[str, Any]) -> Write:
        """An entry of the emulator's write log on ``thread_id``."""
        metadata = entry.get("metadata") or {}
        return cls(
            thread_id,
            int(entry["seq"]),
            int(float(entry["at"]) * 1000),  # floor, as Redis TIME in ms is
            str(entry["op"]),
            int(metadata[FENCE_KEY]) if FENCE_KEY in metadata else None,
        )


@dataclass(frozen=True, slots=True)
class LoggedTurn:
    """A user entry of a pool's canonical log."""

    pool: str
    seq: int
    content: str
    origin: str


@dataclass
class Records:
    """The holders' records, parsed."""

    grants: list[Grant] = field(default_factory=list)
    ends: list[End] = field(default_factory=list)
    done: list[Done] = field(default_factory=list)

    @classmethod
    def parse(cls, lines: Iterable[str]) -> Records:
        records = cls()
        for line in lines:
            kind, *rest = line.split(" ")
            if kind == "G":
                thread_id, fence, granted, holder = rest
                records.grants.append(Grant(thread_id, int(fence), int(granted), holder))
            elif kind == "E":
                thread_id, fence, end, deadline, outcome = rest
                records.ends.append(End(thread_id, int(fence), int(end), int(deadline), outcome))
            elif kind == "D":
                label, thread_id, fence = rest
                records.done.append(Done(label, thread_id, int(fence)))
            else:
                raise ValueError(f"unknown evidence line {line!r}")
        return records


@dataclass
class PoolLeftovers:
    """What one pool holds after the run and a ``reap``, read with plain Redis commands."""

    pool: str
    threads: int
    idle: int
    leases: int
    holds: int
    waiters: int
    reserved: int
    settling: int
    claims: int
    in_flight: int
    mailboxes: int
    max_size: int | None = None

    @classmethod
    def read(
        cls, client: redis.Redis, prefix: str, key: str, max_size: int | None = None
    ) -> PoolLeftovers:
        """Pool ``key``'s keys as they are now (``max_size``: the size it must keep within)."""
        k = PoolKeys.of(prefix, key)
        return cls(
            pool=key,
            threads=int(client.hlen(k.threads)),
            idle=int(client.zcard(k.idle)),
            leases=int(client.zcard(k.leases)),
            holds=int(client.hlen(k.holds)),
            waiters=int(client.llen(k.waiters)),
            reserved=int(client.zcard(k.reserved)),
            settling=int(client.zcard(k.settling)),
            claims=int(client.hlen(k.claims)),
            in_flight=int(client.hlen(k.inflight)),
            mailboxes=sum(1 for _ in client.scan_iter(match=f"{k.base}w:*"))
            + sum(1 for _ in client.scan_iter(match=f"{k.base}d:*")),
            max_size=max_size,
        )


def violations(
    records: Records,
    writes: Iterable[Write],
    log: Iterable[LoggedTurn],
    leftovers: Iterable[PoolLeftovers],
    lock_errors: int,
    peak_active_per_thread: int,
    upstream_threads: Mapping[str, Sequence[str]],
) -> list[str]:
    """Every way the evidence contradicts the invariants (empty when it does not).

    ``upstream_threads`` maps each pool to the threads upstream holds for it (not deleted).
    """
    found: list[str] = []
    found += _exclusive_grants(records)
    found += _fenced_writes(records, writes)
    found += _log_exactly_once(records, log)
    found += _nothing_left(leftovers, upstream_threads)
    if lock_errors:
        found.append(f"upstream answered {lock_errors} lock errors")
        found += refusals(records, writes)[:20]
    if peak_active_per_thread > 1:
        found.append(f"a thread had {peak_active_per_thread} active runs at once")
    return found


def _grants_by_thread(records: Records) -> dict[str, list[Grant]]:
    """Each thread's grants, in fence order."""
    by_thread: dict[str, list[Grant]] = defaultdict(list)
    for grant in records.grants:
        by_thread[grant.thread_id].append(grant)
    for grants in by_thread.values():
        grants.sort(key=lambda g: g.fence)
    return by_thread


def _exclusive_grants(records: Records) -> list[str]:
    """Fences never repeat on a thread, and a lease that ended (by release or by its deadline)
    ended before the next grant of its thread. A lease with no end record (its holder was
    killed) has its writes checked against the next grant instead (``_fenced_writes``)."""
    ends = {(e.thread_id, e.fence): e for e in records.ends}

    def held_until(grant: Grant) -> int | None:
        end = ends.get((grant.thread_id, grant.fence))
        return None if end is None else min(end.end_ms, end.deadline_ms)

    return exclusive(
        Hold(g.thread_id, g.fence, g.granted_ms, held_until(g), g.holder) for g in records.grants
    )


def _fenced_writes(records: Records, writes: Iterable[Write]) -> list[str]:
    """Each stamped write came from a lease that nobody had taken over: after its grant, before
    the thread's next grant, and in fence order (a write after its own deadline is counted by
    ``late_writes``).

    A cancel is logged with the stamps of the run it cancels, and is made by whoever settles the
    thread (often another process, after the lease expired): it must only come before the
    thread's next grant, which is what "settled before it is handed out again" means."""
    found: list[str] = []
    grants = {(g.thread_id, g.fence): g for g in records.grants}
    next_grant = {
        (before.thread_id, before.fence): after.granted_ms
        for grants in _grants_by_thread(records).values()
        for before, after in itertools.pairwise(grants)
    }
    last_fence: dict[str, int] = {}
    for write in sorted(writes, key=lambda w: w.seq):
        if write.fence is None or write.op.endswith(".refused"):
            continue
        where = f"{write.thread_id}: {write.op} (fence {write.fence}, write {write.seq})"
        successor = next_grant.get((write.thread_id, write.fence))
        if successor is not None and write.at_ms >= successor:
            found.append(
                f"{where} arrived {write.at_ms - successor} ms after the thread's next grant"
            )
        if write.op.endswith(".cancel"):
            continue
        previous = last_fence.get(write.thread_id, 0)
        if write.fence < previous:
            found.append(f"{where} arrived after a write of fence {previous}")
        last_fence[write.thread_id] = max(previous, write.fence)
        own = grants.get((write.thread_id, write.fence))
        if own is not None and write.at_ms < own.granted_ms:
            found.append(f"{where} arrived {own.granted_ms - write.at_ms} ms before its grant")
    return found


def late_writes(records: Records, writes: Iterable[Write]) -> list[str]:
    """Writes that arrived after their lease's deadline (cancels aside, which settlers make).

    Not violations by themselves: a holder paused in the instant between its last check and the
    socket write sends a request late, which no client-side lease can rule out (upstream has no
    fence check). What must hold, and ``violations`` checks, is that such a write still lands
    before anyone else holds the thread (the pool's reclaim delay; for a run-starting request,
    the settler's wait for its holder to name the run) and is settled (cancelled) before the
    next grant; this list is reported as a figure of its own."""
    deadlines = {(e.thread_id, e.fence): e.deadline_ms for e in records.ends}
    late: list[str] = []
    for write in sorted(writes, key=lambda w: w.seq):
        if write.fence is None or write.op.endswith((".cancel", ".refused")):
            continue
        deadline = deadlines.get((write.thread_id, write.fence))
        if deadline is not None and write.at_ms > deadline:
            late.append(
                f"{write.thread_id}: {write.op} (fence {write.fence}, write {write.seq}) "
                f"arrived {write.at_ms - deadline} ms after its lease's deadline"
            )
    return late


def refusals(records: Records, writes: Iterable[Write]) -> list[str]:
    """Each lock error as who blocked whom: upstream logs a refused write with the stamps of the
    run (response) that held the thread, so the blocker's grant, deadline and successor tell
    which lease's run outlived it, and by how much."""
    grants = _grants_by_thread(records)
    deadlines = {(e.thread_id, e.fence): e.deadline_ms for e in records.ends}
    told: list[str] = []
    for write in sorted(writes, key=lambda w: w.seq):
        if not write.op.endswith(".refused"):
            continue
        where = f"{write.thread_id}: {write.op} at {write.at_ms}"
        if write.fence is None:
            told.append(f"{where}: blocked by an unstamped run")
            continue
        mine = grants.get(write.thread_id, [])
        blocker = next((g for g in mine if g.fence == write.fence), None)
        deadline = deadlines.get((write.thread_id, write.fence))
        refused = [g for g in mine if g.granted_ms <= write.at_ms and g.fence > write.fence]
        told.append(
            f"{where}: blocked by fence {write.fence} "
            f"({blocker.holder if blocker else 'no grant recorded'}, "
            + ("killed" if deadline is None else f"{write.at_ms - deadline:+} ms past its deadline")
            + "); refused: "
            + (f"{refused[-1].holder} (fence {refused[-1].fence})" if refused else "unknown")
        )
    return told


def _log_exactly_once(records: Records, log: Iterable[LoggedTurn]) -> list[str]:
    """Every completed turn is in its pool's log exactly once; nothing is logged twice; seqs
    follow each other."""
    found: list[str] = []
    entries = list(log)
    counts = Counter(entry.content for entry in entries)
    for content, times in counts.items():
        if times > 1:
            found.append(f"turn {content!r} is in the log {times} times")
    logged = set(counts)
    for done in records.done:
        if done.label not in logged:
            found.append(f"completed turn {done.label!r} (on {done.thread_id}) is not in the log")
    origins = {entry.content: entry.origin for entry in entries}
    for done in records.done:
        origin = origins.get(done.label)
        if origin is not None and origin != done.thread_id:
            found.append(f"turn {done.label!r} ran on {done.thread_id}, logged from {origin}")
    by_pool: dict[str, list[int]] = defaultdict(list)
    for entry in entries:
        by_pool[entry.pool].append(entry.seq)
    for pool, seqs in by_pool.items():
        if len(set(seqs)) != len(seqs):
            found.append(f"pool {pool}: a log seq is used twice")
    return found


def left_behind(left: PoolLeftovers) -> list[str]:
    """What a pool that should be idle still holds: every thread idle, nothing leased, held,
    waiting, reserved, settling or in flight, and no more threads than its size (when known)."""
    found: list[str] = []
    busy = {
        "leases": left.leases,
        "holds": left.holds,
        "waiters": left.waiters,
        "reservations": left.reserved,
        "settling threads": left.settling,
        "settling claims": left.claims,
        "in-flight records": left.in_flight,
        "mailboxes": left.mailboxes,
    }
    for what, count in busy.items():
        if count:
            found.append(f"pool {left.pool}: {count} {what} left behind")
    if left.idle != left.threads:
        found.append(f"pool {left.pool}: {left.threads - left.idle} threads not idle")
    if left.max_size is not None and left.threads > left.max_size:
        found.append(f"pool {left.pool}: {left.threads} threads, max {left.max_size}")
    return found


def _nothing_left(
    leftovers: Iterable[PoolLeftovers], upstream_threads: Mapping[str, Sequence[str]]
) -> list[str]:
    """After ``reap`` every pool is idle and within its size, and upstream holds exactly the
    pool's threads for it."""
    found: list[str] = []
    for left in leftovers:
        found += left_behind(left)
        upstream = len(upstream_threads.get(left.pool, ()))
        if upstream != left.threads:
            found.append(
                f"pool {left.pool}: upstream holds {upstream} threads for it, "
                f"the pool {left.threads}"
            )
    return found


# -- checks that read Redis and the emulator themselves, for the tests -----------------------


def assert_quiet(client: redis.Redis, prefix: str, key: str, threads: int | None = None) -> None:
    """Pool ``key`` is fully idle: no lease, hold, waiter, mailbox, reservation, settling claim
    or request in flight, and every thread is in the idle set (exactly ``threads`` of them when
    given, else at most one). ``client`` decodes responses."""
    k = PoolKeys.of(prefix, key)
    # Every key the scripts wrote is one that keys.py knows (else the checks below see nothing).
    known = set(k.all_fixed())
    names = list(client.scan_iter(match=f"{k.base}*"))
    for name in names:
        assert name in known or name.startswith((f"{k.base}w:", f"{k.base}d:", f"{k.base}x:")), name
    left = PoolLeftovers.read(client, prefix, key)
    # Nothing in flight on an idle thread either (a clean release or a settling clears it).
    found = left_behind(left)
    assert not found, (found, _contents(client, names))
    if threads is not None:
        assert left.threads == threads
    else:
        assert left.threads <= 1


def _contents(client: redis.Redis, names: Iterable[str]) -> dict[str, Any]:
    """What each of the keys ``names`` holds, for a failure message."""
    read: dict[str, Any] = {
        "hash": client.hgetall,
        "zset": lambda name: client.zrange(name, 0, -1, withscores=True),
        "list": lambda name: client.lrange(name, 0, -1),
        "set": client.smembers,
        "string": client.get,
        "stream": client.xlen,
    }
    return {name: read.get(str(client.type(name)), client.type)(name) for name in names}


def assert_one_run_at_a_time(server: EmulatorServer) -> None:
    """Upstream never refused a write for a busy thread, nor had two active runs on one."""
    stats = server.admin.stats()
    assert stats["lock_errors"]["total"] == 0, stats["lock_errors"]
    assert stats["peak_active_per_owner"] <= 1
    assert stats["owners_over_one"] == []


def fences_of(server: EmulatorServer, owner_id: str) -> list[int]:
    """The ``tp_fence`` stamps of every write on a thread or conversation, in order (a
    refused write is logged with its blocker's stamps, and is no write)."""
    writes = (Write.logged(owner_id, entry) for entry in server.admin.writes(owner_id))
    return [w.fence for w in writes if w.fence is not None and not w.op.endswith(".refused")]
