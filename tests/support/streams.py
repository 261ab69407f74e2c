"""What a streamed turn's tests read back from the emulator: the runs (responses) a thread saw
and how each ended."""

from __future__ import annotations

import warnings

import openai

from thread_pool import StreamEvent, TextDelta, TurnDone
from thread_pool.emulator import EmulatorServer

# A run (response) in one of these still holds its thread.
ACTIVE = frozenset({"queued", "in_progress", "requires_action", "cancelling"})


def run_statuses(server: EmulatorServer, client: openai.OpenAI, thread_id: str) -> dict[str, str]:
    """The status of every run (response) started on ``thread_id``, by id, oldest first."""
    statuses: dict[str, str] = {}
    for write in server.admin.writes(thread_id):
        if write["op"] == "run.create":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                run = client.beta.threads.runs.retrieve(write["object_id"], thread_id=thread_id)
            statuses[run.id] = run.status
        elif write["op"] == "response.create":
            statuses[write["object_id"]] = str(client.responses.retrieve(write["object_id"]).status)
    return statuses


def text_of(events: list[StreamEvent]) -> str:
    """The text deltas of ``events`` joined."""
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def done_turns(events: list[StreamEvent]) -> int:
    """How many ``TurnDone`` events ``events`` hold."""
    return sum(isinstance(e, TurnDone) for e in events)
