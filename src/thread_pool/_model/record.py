"""What a completed turn adds to the pool's log: its user message, its tool calls with their
outputs, and its reply, each entry within the per-entry cap and the whole within the per-turn cap.
No I/O here; ``AsyncContextLog.log_turn`` writes what this returns.

The caps exist so that nothing a server answers can make the log grow without bound: a reply is
whatever upstream says it is, and the log is copied into every sibling thread and every new one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace

from thread_pool._model.turns import ToolCall, Turn

TOOL_ROLE = "tool"
"""The role of a log entry that records one tool call and its output (content: ``tool_json``).
Callers cannot append it (``pool.append`` takes ``user`` / ``assistant``); turns write it."""

TOOL_MERGES = ("native", "text", "none")
"""How sibling threads receive tool calls (``merge_tools``): ``native``, as the API's own items
where the thread's API has them (``function_call`` / ``function_call_output`` on Conversations),
as marked text otherwise (Assistants); ``text``, as marked text everywhere; ``none``, not at all
(only through the prose of the reply)."""

FLOOR = 300
"""Characters a cut entry keeps at least (its marker and the start of its text)."""


def tool_json(call: ToolCall) -> str:
    """The content of the log entry recording ``call`` (answered)."""
    return json.dumps(
        {"call_id": call.id, "name": call.name, "arguments": call.arguments, "output": call.output},
        ensure_ascii=False,
    )


def tool_of(content: str) -> ToolCall | None:
    """The call a tool entry records, or None if ``content`` is not one (a truncated entry, or
    an entry written by hand)."""
    try:
        data = json.loads(content)
    except ValueError:
        return None
    fields = ("call_id", "name", "arguments", "output")
    if not isinstance(data, dict) or not all(isinstance(data.get(f), str) for f in fields):
        return None
    return ToolCall(data["call_id"], data["name"], data["arguments"], data["output"])


def tool_text(content: str) -> str:
    """A tool entry as the marked text a thread without tool items receives: the model reads
    that the call was made, with what, and what it returned."""
    call = tool_of(content)
    if call is None:
        return f"[tool call made on another thread of this conversation: {content}]"
    return (
        f"[tool call made on another thread of this conversation: {call.name}"
        f"({call.arguments}) returned: {call.output}]"
    )


@dataclass(frozen=True, slots=True)
class Cut:
    """One entry that was truncated to fit a cap."""

    role: str
    length: int
    """Characters it had."""
    kept: int
    """Characters it has now (the marker included)."""


def truncated(content: str, limit: int, cap_name: str) -> str:
    """``content`` cut to at most ``limit`` characters, its end replaced by a marker that says
    how much was cut and by which cap (so the cut is never silent)."""
    if len(content) <= limit:
        return content
    # The marker's length depends on the numbers in it; size the cut for the widest.
    marker = (
        f"\n[truncated: {len(content)} characters, cut to fit the pool's {cap_name}; "
        "the rest is not in the log]"
    )
    keep = max(0, limit - len(marker))
    return (content[:keep] + marker)[:limit]


def turn_entries(
    message: str, turn: Turn, entry_cap: int, turn_cap: int
) -> tuple[list[tuple[str, str]], list[Cut]]:
    """The ``(role, content)`` entries turn ``turn`` (asked ``message``) adds to the log, in
    order (user message, tool calls, reply), and the entries that were cut. Each entry is kept
    within ``entry_cap`` characters and all of them within ``turn_cap``: the user message and
    the reply have the first claim on the turn's budget (at least ``FLOOR`` each), then the tool
    calls in order; a tool call with less than ``FLOOR`` left is dropped (a cut to 0)."""
    budget = turn_cap
    cuts: list[Cut] = []

    def fit(role: str, content: str, room: int, call: ToolCall | None = None) -> str:
        nonlocal budget
        limit = min(entry_cap, room)
        cap_name = "log_entry_max_chars" if limit == entry_cap else "log_turn_max_chars"
        kept = (
            truncated(content, limit, cap_name)
            if call is None
            else _fit_call(call, limit, cap_name)
        )
        budget -= len(kept)
        if kept != content:
            cuts.append(Cut(role, len(content), len(kept)))
        return kept

    user = fit("user", message, max(budget - FLOOR, FLOOR))
    reply = fit("assistant", turn.reply, max(budget, FLOOR))
    calls: list[tuple[str, str]] = []
    for call in turn.tool_calls:
        content = tool_json(call)
        if budget < FLOOR:
            cuts.append(Cut(TOOL_ROLE, len(content), 0))
            continue
        calls.append((TOOL_ROLE, fit(TOOL_ROLE, content, budget, call)))
    return [("user", user), *calls, ("assistant", reply)], cuts


def _fit_call(call: ToolCall, limit: int, cap_name: str) -> str:
    """``call``'s entry within ``limit`` characters: its output cut with a
    marker, so the entry stays a call that can still be sent as the API's own items; plain
    truncation (a marked text entry) when that does not fit."""
    content = tool_json(call)
    for _ in range(4):  # JSON escaping makes the first cut a guess; a few corrections suffice
        excess = len(content) - limit
        if excess <= 0:
            return content
        output = call.output or ""
        if len(output) > excess + FLOOR:
            call = replace(call, output=truncated(output, len(output) - excess, cap_name))
        else:
            break
        content = tool_json(call)
    return truncated(content, limit, cap_name) if len(content) > limit else content


def described(cuts: Sequence[Cut]) -> str:
    """``cuts`` in words, for the warning a truncation logs."""
    return ", ".join(f"{c.role} entry {c.length} -> {c.kept} characters" for c in cuts)
