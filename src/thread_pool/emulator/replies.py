"""Deterministic replies, so a test can tell exactly what a thread (or conversation) saw.

Reply format (one line; ``N`` messages, ``D`` the digest)::

    [emulator] re <answered_id>: N messages, sha256 D

and, for a run/response that had tool outputs submitted, the outputs appended as a JSON list::

    [emulator] re <answered_id>: N messages, sha256 D; tool outputs ["...", ...]

* ``answered_id`` — the id of the last message the run saw (the one it answers): a ``msg_...``
  id; ``none`` on an empty thread.
* ``N`` — how many entries the thread/conversation held when the run started (the run's own
  reply not included).
* ``D`` — :func:`digest` of those entries, oldest first: the first 12 hex digits of the SHA-256
  of the compact JSON array ``[[role, text], ...]`` (UTF-8, ``ensure_ascii=False``).

An *entry* is ``(role, text)``: for a message, its role (``user``, ``assistant``, ``system``,
``developer``) and its text parts joined with ``"\\n"``. In a conversation, a ``function_call``
item is ``("function_call", "<name> <arguments>")`` and a ``function_call_output`` item is
``("function_call_output", "<output>")``. :func:`expected_reply` computes the reply from entries,
:func:`parse_reply` reads one back.

Tool trigger: when function tools are declared (on the assistant, the run, or the response
request) and the message being answered contains ``call:<name>(<json object>)`` — for example
``call:get_weather({"city": "Paris"})``, or ``call:ping()`` for no arguments — with ``<name>``
one of the declared functions, the run stops in ``requires_action`` with one tool call per
trigger (the response returns one ``function_call`` item per trigger) instead of replying.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

Entry = tuple[str, str]

_REPLY = re.compile(
    r"^\[emulator\] re (?P<answered>\S+): (?P<count>\d+) messages, sha256 (?P<digest>[0-9a-f]{12})"
    r"(?:; tool outputs (?P<outputs>\[.*\]))?$",
    re.DOTALL,
)
_TRIGGER = re.compile(r"call:(?P<name>[A-Za-z0-9_-]{1,64})\(")


def digest(entries: Iterable[Entry]) -> str:
    """The 12-hex-digit SHA-256 prefix of ``[[role, text], ...]`` in compact JSON."""
    payload = json.dumps(
        [[role, text] for role, text in entries], ensure_ascii=False, separators=(",", ":")
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:12]


def expected_reply(
    answered_id: str | None, entries: Sequence[Entry], tool_outputs: Sequence[str] = ()
) -> str:
    """The exact reply the emulator gives after seeing ``entries`` and answering ``answered_id``."""
    text = (
        f"[emulator] re {answered_id or 'none'}: {len(entries)} messages, sha256 {digest(entries)}"
    )
    if tool_outputs:
        text += "; tool outputs " + json.dumps(list(tool_outputs), ensure_ascii=False)
    return text


@dataclass(frozen=True)
class Reply:
    """A parsed emulator reply."""

    answered_id: str
    count: int
    digest: str
    tool_outputs: tuple[str, ...] = ()

    def saw(self, entries: Sequence[Entry]) -> bool:
        """Whether the replying run saw exactly ``entries`` (same count and digest)."""
        return self.count == len(entries) and self.digest == digest(entries)


def parse_reply(text: str) -> Reply:
    """Read a reply back; ``ValueError`` if ``text`` is not an emulator reply."""
    match = _REPLY.match(text)
    if match is None:
        raise ValueError(f"not an emulator reply: {text[:120]!r}")
    outputs = json.loads(match["outputs"]) if match["outputs"] else []
    return Reply(match["answered"], int(match["count"]), match["digest"], tuple(outputs))


@dataclass(frozen=True)
class ToolCallRequest:
    """One ``call:<name>(<args>)`` trigger found in a message."""

    name: str
    arguments: str


def find_tool_calls(text: str, declared: Iterable[str]) -> list[ToolCallRequest]:
    """The triggers in ``text`` that name a declared function, in order of appearance.

    The arguments must be a JSON object (or empty); a trigger whose arguments do not parse is
    ignored, like a model that decided not to call the tool.
    """
    names = set(declared)
    calls: list[ToolCallRequest] = []
    decoder = json.JSONDecoder()
    for match in _TRIGGER.finditer(text):
        if match["name"] not in names:
            continue
        rest = text[match.end() :]
        stripped = rest.lstrip()
        if stripped.startswith(")"):
            calls.append(ToolCallRequest(match["name"], "{}"))
            continue
        try:
            value, end = decoder.raw_decode(stripped)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict) and stripped[end:].lstrip().startswith(")"):
            calls.append(ToolCallRequest(match["name"], json.dumps(value, ensure_ascii=False)))
    return calls
