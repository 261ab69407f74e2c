"""A run's status as a pure function of time: no timers, nothing to tick.

A run is stored as a :class:`Timeline` (when it leaves ``queued``, when its work ends, how it
ends, when it expires, whether a cancel was asked). Its status is computed when someone looks,
which keeps 10,000 idle threads free and makes the emulator's view consistent at any instant.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Run statuses that hold the thread (UPSTREAM.md: cancelling counts as blocking too).
BLOCKING = frozenset({"queued", "in_progress", "requires_action", "cancelling"})
#: Statuses a run never leaves.
TERMINAL = frozenset({"cancelled", "failed", "completed", "incomplete", "expired"})


@dataclass
class Timeline:
    """When a run changes status. ``outcome`` is what it becomes at ``work_ends``:
    ``completed``, ``failed``, ``expired``, ``requires_action`` (waits for tool outputs until
    ``expires``), or ``stuck`` (stays ``in_progress`` until cancelled or ``expires``)."""

    queued_until: float
    work_ends: float
    outcome: str
    expires: float
    cancel_asked: float | None = None
    cancel_done: float | None = None

    def status(self, now: float) -> str:
        """The status at time ``now``."""
        return self.status_since(now)[0]

    def status_since(self, now: float) -> tuple[str, float]:
        """The status at ``now`` and the time it was entered (for ``*_at`` fields)."""
        if (
            self.cancel_asked is not None
            and self.cancel_done is not None
            and now >= self.cancel_asked
        ):
            # Looking back before the cancel (a stream's earlier events) sees the run as it was.
            if now >= self.cancel_done:
                return "cancelled", self.cancel_done
            return "cancelling", self.cancel_asked
        if now < self.queued_until:
            return "queued", self.queued_until
        if self.outcome in ("stuck", "requires_action"):
            if now >= self.expires:
                return "expired", self.expires
            if self.outcome == "stuck" or now < self.work_ends:
                return "in_progress", self.queued_until
            return "requires_action", self.work_ends
        if now < self.work_ends:
            return "in_progress", self.queued_until
        return self.outcome, self.work_ends

    def ends_at(self) -> float | None:
        """When the run reaches a terminal status if nobody intervenes (None: never)."""
        if self.cancel_done is not None:
            return self.cancel_done
        if self.outcome in ("stuck", "requires_action"):
            return self.expires
        return self.work_ends
