"""The emulator as one object: configuration, both API families' stores, and introspection."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from thread_pool.emulator.assistants import AssistantsStore
from thread_pool.emulator.config import EmulatorConfig
from thread_pool.emulator.conversations import ConversationsStore
from thread_pool.emulator.core import Core
from thread_pool.emulator.responses import ResponsesStore
from thread_pool.emulator.runs import RunsStore
from thread_pool.emulator.threads import ThreadsStore


def peak_overlap(intervals: list[tuple[float, float]]) -> int:
    """The most intervals open at one instant (an end at t closes before a start at t)."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    best = current = 0
    for _, step in events:
        current += step
        best = max(best, current)
    return best


class Emulator:
    """State and behaviour behind the HTTP app; safe to use from any thread."""

    def __init__(
        self, config: EmulatorConfig | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self.core = Core(config or EmulatorConfig(), clock)
        self.assistants = AssistantsStore(self.core)
        self.threads = ThreadsStore(self.core)
        self.runs = RunsStore(self.core, self.threads, self.assistants)
        self.conversations = ConversationsStore(self.core)
        self.responses = ResponsesStore(self.core, self.conversations)
        self._initial = self.core.config

    @property
    def config(self) -> EmulatorConfig:
        """The configuration in force."""
        return self.core.config

    def configure(self, **changes: Any) -> EmulatorConfig:
        """Change latency, faults, limits at runtime (see :meth:`EmulatorConfig.replace`).
        Runs already created keep the plan they were given; changes it refuses change nothing."""
        with self.core.lock:
            self.core.config = self.core.config.replace(**changes)
            return self.core.config

    def reset(self, **changes: Any) -> EmulatorConfig:
        """Forget all objects and counters, restart the fault sequences, and go back to the
        configuration the emulator started with (plus ``changes``). Changes it refuses leave
        everything as it was."""
        config = self._initial.replace(**changes)
        with self.core.lock:
            self.assistants.clear()
            self.threads.clear()
            self.conversations.clear()
            self.responses.clear()
            self.core.reset()
            self.core.config = config
            return config

    def stats(self) -> dict[str, Any]:
        """Counters plus object counts and the peak of concurrently active runs overall."""
        now = self.core.clock()
        with self.core.lock:
            data = self.core.stats.snapshot()
            data["objects"] = {
                "assistants": len(self.assistants.assistants),
                "threads": len(self.threads.threads),
                "runs": len(self.threads.runs),
                "conversations": len(self.conversations.conversations),
                "responses": len(self.responses.responses),
            }
            data["peak_concurrent_runs"] = peak_overlap(self.runs.run_intervals(now))
            data["peak_concurrent_responses"] = peak_overlap(self.responses.response_intervals(now))
        return data

    def objects(self) -> dict[str, dict[str, dict[str, str]]]:
        """Every thread and conversation that exists (not deleted), with its metadata: what a
        test compares with a pool's threads to find ones leaked upstream."""
        with self.core.lock:
            return {
                "threads": {i: dict(t.metadata) for i, t in self.threads.threads.items()},
                "conversations": {
                    i: dict(c.metadata) for i, c in self.conversations.conversations.items()
                },
            }

    def all_writes(self) -> dict[str, list[dict[str, Any]]]:
        """The write logs of every thread and conversation, by id."""
        return self.core.stats.all_writes()

    def peaks(self) -> dict[str, int]:
        """Peak active runs (responses) per thread (conversation) id."""
        return self.core.stats.peaks_copy()

    def writes(self, owner: str) -> list[dict[str, Any]]:
        """Every write on one thread or conversation, in order, with its metadata."""
        return self.core.stats.writes_of(owner)
