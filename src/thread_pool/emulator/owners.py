"""What the lock rule guards: a thread or a conversation, held by at most one run (response).

Both API families keep the holder on the owner record itself (``active``); :class:`Owner` keeps
the per-owner activity counters of :class:`~thread_pool.emulator.stats.Stats` in step with it, so
a peak above 1 can only come from a store that took a second holder without releasing the first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from thread_pool.emulator.stats import Stats

JobT = TypeVar("JobT")


@dataclass
class Owner(Generic[JobT]):
    """A thread (held by a run) or a conversation (held by a response)."""

    #: The upstream's ``object`` name for this kind of owner.
    OBJECT: ClassVar[str]

    id: str
    created_at: float
    metadata: dict[str, str]
    active: JobT | None = None

    def hold(self, job: JobT, stats: Stats) -> None:
        """``job`` holds this owner from now on."""
        self.active = job
        stats.activate(self.id)

    def release(self, stats: Stats) -> None:
        """Nothing holds this owner any more (a no-op when nothing did)."""
        if self.active is not None:
            self.active = None
            stats.deactivate(self.id)

    def render(self) -> dict[str, Any]:
        """The upstream object (``thread`` or ``conversation``)."""
        return {
            "id": self.id,
            "object": self.OBJECT,
            "created_at": int(self.created_at),
            "metadata": self.metadata,
        }
