"""An independent checker of lease evidence: no I/O, no knowledge of how leases are granted.

Holders record, while they hold a thread, the interval they held it (start and end by the
system-wide monotonic clock, comparable across processes on one machine) and the fence they were
given. Leases are exclusive exactly when, for every thread, the intervals sorted by fence never
overlap and the fences never repeat.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Hold:
    """One holder's use of one thread."""

    thread_id: str
    fence: int
    start_ns: int
    end_ns: int
    holder: str

    def encode(self) -> str:
        """One line of evidence."""
        return f"{self.thread_id} {self.fence} {self.start_ns} {self.end_ns} {self.holder}"

    @classmethod
    def decode(cls, line: str) -> Hold:
        """Parse ``encode``'s line."""
        thread_id, fence, start, end, holder = line.split(" ", 4)
        return cls(thread_id, int(fence), int(start), int(end), holder)


def violations(holds: Iterable[Hold]) -> list[str]:
    """Every way the evidence contradicts exclusive, fenced leases (empty when it does not)."""
    found: list[str] = []
    by_thread: dict[str, list[Hold]] = defaultdict(list)
    for hold in holds:
        if hold.end_ns < hold.start_ns:
            found.append(f"{hold.thread_id}: interval of fence {hold.fence} ends before it starts")
        by_thread[hold.thread_id].append(hold)
    for thread_id, thread_holds in by_thread.items():
        thread_holds.sort(key=lambda h: h.fence)
        for before, after in itertools.pairwise(thread_holds):
            if before.fence == after.fence:
                found.append(f"{thread_id}: fence {after.fence} granted twice")
            elif after.start_ns < before.end_ns:
                found.append(
                    f"{thread_id}: fence {after.fence} ({after.holder}) started "
                    f"{(before.end_ns - after.start_ns) / 1e6:.3f} ms before fence {before.fence} "
                    f"({before.holder}) ended"
                )
    return found
