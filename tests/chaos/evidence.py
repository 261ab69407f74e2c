"""The chaos run's independent checker: it reads evidence after the fact and knows nothing of how
leases are granted, renewed or settled.

Evidence comes from three places that do not trust each other:

* the holders' own records, written to a Redis server of their own (not the pool's) the moment
  they are granted a thread (``G``) and when the lease is over (``E``), and for every turn they saw
  complete (``D``);
* the upstream's write log (the emulator's ``/_emulator/writes``): every write on every thread
  with its arrival time and the ``tp_fence`` it was stamped with, and its lock-error counters;
* what the pool left behind: its canonical log and its keys after ``reap``.

All times are milliseconds of the machine's wall clock (Redis ``TIME``, ``time.time()`` in the
emulator and the workers all read it), so they compare across processes.
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field


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
    max_size: int


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
    ended before the next grant of its thread."""
    found: list[str] = []
    ends = {(e.thread_id, e.fence): e for e in records.ends}
    for thread_id, grants in _grants_by_thread(records).items():
        for before, after in itertools.pairwise(grants):
            if before.fence == after.fence:
                found.append(f"{thread_id}: fence {after.fence} granted twice")
                continue
            if after.granted_ms < before.granted_ms:
                found.append(
                    f"{thread_id}: fence {after.fence} granted before fence {before.fence}"
                )
            end = ends.get((thread_id, before.fence))
            if end is None:
                continue  # its holder was killed: its writes are checked against the next grant
            held_until = min(end.end_ms, end.deadline_ms)
            if after.granted_ms < held_until:
                found.append(
                    f"{thread_id}: fence {after.fence} ({after.holder}) granted "
                    f"{held_until - after.granted_ms} ms before fence {before.fence} "
                    f"({before.holder}) ended"
                )
    return found


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


def _nothing_left(
    leftovers: Iterable[PoolLeftovers], upstream_threads: Mapping[str, Sequence[str]]
) -> list[str]:
    """After ``reap`` every pool is idle and within its size, and upstream holds exactly the
    pool's threads for it."""
    found: list[str] = []
    for left in leftovers:
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
        if left.threads > left.max_size:
            found.append(f"pool {left.pool}: {left.threads} threads, max {left.max_size}")
        upstream = len(upstream_threads.get(left.pool, ()))
        if upstream != left.threads:
            found.append(
                f"pool {left.pool}: upstream holds {upstream} threads for it, "
                f"the pool {left.threads}"
            )
    return found
