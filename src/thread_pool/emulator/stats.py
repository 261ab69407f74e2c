"""What the emulator observed, for tests and the demo: counters, peaks and the write log."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any


class Stats:
    """Thread-safe counters kept by the emulator; :meth:`snapshot` is the introspection view.

    ``activate``/``deactivate`` track how many runs (responses) are active on each thread
    (conversation) at once; the emulator's own lock rule must keep every peak at 1, and a test
    that sees 2 has found a bug in the emulator, not in the caller.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[str] = Counter()
        self.statuses: Counter[str] = Counter()
        self.lock_errors: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.in_flight = 0
        self.peak_in_flight = 0
        self._active: Counter[str] = Counter()
        self.peaks: dict[str, int] = {}
        self.writes: dict[str, list[dict[str, Any]]] = {}
        self._write_seq = 0

    def begin(self, endpoint: str) -> None:
        """A request to ``endpoint`` (``"POST /v1/threads/{thread_id}/runs"``) started."""
        with self._lock:
            self.requests[endpoint] += 1
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def end(self, status: int) -> None:
        """A request finished with HTTP ``status``."""
        with self._lock:
            self.in_flight -= 1
            self.statuses[str(status)] += 1

    def lock_error(self, kind: str) -> None:
        """The lock rule refused a write (``run``, ``message`` or ``conversation``)."""
        with self._lock:
            self.lock_errors[kind] += 1

    def fault(self, kind: str) -> None:
        """A fault was injected (``http_500``, ``run_failed``, ...)."""
        with self._lock:
            self.faults[kind] += 1

    def activate(self, owner: str) -> None:
        """A run (response) became active on thread (conversation) ``owner``."""
        with self._lock:
            self._active[owner] += 1
            self.peaks[owner] = max(self.peaks.get(owner, 0), self._active[owner])

    def deactivate(self, owner: str) -> None:
        """A run (response) on ``owner`` reached a terminal status."""
        with self._lock:
            self._active[owner] -= 1
            if self._active[owner] <= 0:
                del self._active[owner]

    def write(
        self, owner: str, op: str, object_id: str, metadata: dict[str, str], at: float
    ) -> None:
        """Log a write on ``owner`` with the metadata it carried, in arrival order."""
        with self._lock:
            self._write_seq += 1
            self.writes.setdefault(owner, []).append(
                {
                    "seq": self._write_seq,
                    "at": at,
                    "op": op,
                    "object_id": object_id,
                    "metadata": dict(metadata),
                }
            )

    def refused(
        self, owner: str, op: str, blocker_id: str, metadata: dict[str, str], at: float
    ) -> None:
        """Log a write the lock rule refused, naming the run (response) that held ``owner``
        and the metadata *it* carried: who blocked whom is what a lock error's post-mortem
        needs. Nothing was written, but the entry keeps the log's arrival order."""
        self.write(owner, op, blocker_id, metadata, at)

    def writes_of(self, owner: str) -> list[dict[str, Any]]:
        """The write log of one thread or conversation (a copy)."""
        with self._lock:
            return [dict(entry) for entry in self.writes.get(owner, [])]

    def all_writes(self) -> dict[str, list[dict[str, Any]]]:
        """The write logs of every thread and conversation ever written to (a copy)."""
        with self._lock:
            return {owner: [dict(e) for e in entries] for owner, entries in self.writes.items()}

    def peaks_copy(self) -> dict[str, int]:
        """Peak active runs per thread/conversation (a copy)."""
        with self._lock:
            return dict(self.peaks)

    def snapshot(self) -> dict[str, Any]:
        """All counters as JSON-ready data."""
        with self._lock:
            return {
                "requests": dict(sorted(self.requests.items())),
                "requests_total": sum(self.requests.values()),
                "statuses": dict(sorted(self.statuses.items())),
                "lock_errors": {
                    "run": self.lock_errors["run"],
                    "message": self.lock_errors["message"],
                    "conversation": self.lock_errors["conversation"],
                    "total": sum(self.lock_errors.values()),
                },
                "faults": dict(sorted(self.faults.items())),
                "in_flight": self.in_flight,
                "peak_in_flight": self.peak_in_flight,
                "peak_active_per_owner": max(self.peaks.values(), default=0),
                "owners_over_one": sorted(k for k, v in self.peaks.items() if v > 1),
            }
