"""Context merging, the pure part: log entries, what a thread is missing, and the messages that
bring it up to date. No I/O here; the pool reads and writes the log (``log_*.lua``), and
``_store/replies.py`` decodes what Redis answers into these types.

One pool spreads a conversation over many threads. Every completed turn goes into the pool's
canonical log (a Redis Stream); before a thread runs, the entries it has not seen (made on its
sibling threads, or appended by a caller) travel with its turn in the same request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import cast

from thread_pool._model.limits import MAX_MESSAGE_CHARS
from thread_pool._model.record import TOOL_ROLE, tool_of, tool_text
from thread_pool._model.validation import validate_role
from thread_pool.errors import InvalidArgument

MERGE_POLICIES = ("full", "none")
"""``full``: every thread receives the whole conversation. ``none``: isolated shards, each thread
keeps only its own turns (the log is still written, for ``history``). A callable
(``MergePolicy``) is a third kind: it decides what a thread receives of what it is missing."""

DIGEST_EXCERPT = 300
"""Characters of each folded entry that the default digest quotes."""


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One message of a pool's canonical conversation."""

    seq: int
    """Position in the log, from 1; a thread's cursor is the seq of the last entry it holds."""
    role: str
    """``user``, ``assistant``, or ``tool`` (a tool call and its output, recorded by a turn as
    JSON: ``call_id``, ``name``, ``arguments``, ``output``)."""
    content: str
    origin: str
    """The thread whose turn made it; empty for context a caller appended (``pool.append``)."""
    time_ms: int
    """Redis server time of the append."""
    run_id: str = ""
    """The run (response) that produced it; empty for a user message's own id-less append."""
    turn_id: str = ""
    """The turn (or append) id that made it: one id is logged at most once."""


@dataclass(frozen=True, slots=True)
class Missing:
    """What a thread lacks before a turn: the entries to send, and the log's end as read."""

    last_seq: int
    """Seq of the log's last entry when it was read (the turn's cursor afterwards)."""
    cursor: int
    """The thread's cursor when it was read."""
    entries: tuple[LogEntry, ...]
    first_seq: int = 0
    """Seq of the log's first retained entry when it was read (0: the log is empty)."""

    @property
    def dropped(self) -> tuple[int, int] | None:
        """The seq range the thread lacks but the log no longer holds (trimmed by retention
        before the thread received it), or None."""
        if self.first_seq > self.cursor + 1:
            return self.cursor + 1, self.first_seq - 1
        return None


def validate_merge(policy: object) -> str | MergePolicy:
    """Return ``policy`` if it names a merge policy or is callable, else raise."""
    if callable(policy):
        return cast("MergePolicy", policy)
    if policy not in MERGE_POLICIES:
        raise InvalidArgument(
            f"merge must be one of {', '.join(MERGE_POLICIES)} or a callable, not {policy!r}"
        )
    assert isinstance(policy, str)
    return policy


def split_content(content: str, limit: int = MAX_MESSAGE_CHARS) -> list[str]:
    """``content`` in pieces upstream accepts (at most ``limit`` characters each). A piece of a
    split message says so at its start, so nothing is cut silently and the model can tell the
    pieces belong together."""
    if len(content) <= limit:
        return [content]
    # The marker's length depends on the number of pieces; size pieces for a generous marker.
    room = limit - len("[part 99999 of 99999] ")
    pieces = [content[i : i + room] for i in range(0, len(content), room)]
    return [f"[part {n} of {len(pieces)}] {p}" for n, p in enumerate(pieces, 1)]


def messages_for(entries: Iterable[LogEntry], tools: str = "native") -> list[dict[str, str]]:
    """The messages (``{"role", "content"}``) that carry ``entries`` to a thread, in log order,
    each within upstream's content limit. A tool entry stays a ``tool`` message (its content the
    recorded call, which a backend sends as its API's own items or as marked text) under
    ``tools="native"``; it becomes marked text under ``"text"`` and is left out under ``"none"``
    (see ``TOOL_MERGES``)."""
    out: list[dict[str, str]] = []
    for e in entries:
        if e.role == TOOL_ROLE:
            if tools == "none":
                continue
            if tools == "native" and tool_of(e.content) is not None:
                out.append({"role": TOOL_ROLE, "content": e.content})
                continue
            out += [
                {"role": "assistant", "content": p} for p in split_content(tool_text(e.content))
            ]
            continue
        out += [{"role": e.role, "content": piece} for piece in split_content(e.content)]
    return out


def log_pairs(messages: Sequence[tuple[str, str]]) -> list[str]:
    """``[(role, content), ...]`` flattened as ``log_append.lua`` takes them."""
    out: list[str] = []
    for role, content in messages:
        out += [role, content]
    return out


Compactor = Callable[
    [Sequence[LogEntry]], Sequence[Mapping[str, str]] | Awaitable[Sequence[Mapping[str, str]]]
]
"""``compact(entries) -> messages``: what to send instead of the oldest missing entries when
they do not fit the merge limits (``{"role", "content"}`` each; may be a coroutine function with
the asyncio pool, e.g. one that summarises with a model)."""


MergePolicy = Compactor
"""``merge=policy(entries) -> messages``: what a thread receives for *all* the entries it is
missing (``compact`` only replaces the oldest ones, and only beyond the merge limits). Sync, or a
coroutine function with the asyncio pool."""


def retention_marker(dropped: tuple[int, int]) -> dict[str, str]:
    """The clearly marked message that stands for log entries trimmed by retention (seq range
    ``dropped``) before a thread received them: the gap is said, never silent."""
    first, last = dropped
    count = last - first + 1
    return {
        "role": "user",
        "content": (
            f"[context gap: {count} earlier message{'s' if count != 1 else ''} of this "
            f"conversation (seq {first}-{last}) were dropped by the log's retention limit "
            "before this thread received them; they are not included]"
        ),
    }


@dataclass(frozen=True, slots=True)
class RequestCaps:
    """What one upstream request may carry: ``items`` (input items: messages, a tool call and
    its output two) and ``chars`` (characters of context). A backend's ``max_request_items`` /
    ``max_request_chars``; None: no limit. Every path that sends context applies them through
    the one ``fold``: a turn's request (streamed or not), a caller's own call, the seeding of a
    new thread (growth and pre-warm alike)."""

    items: int | None = None
    chars: int | None = None


TURN_RESERVE = 2
"""Items a turn's request carries besides its context, within ``RequestCaps.items``: the user
message, and the reply a server may count with it (llama-stack saves input and output as one
list)."""


def item_count(entry: LogEntry) -> int:
    """Upstream items ``entry`` becomes: two for a tool call (the call and its output), one per
    piece of a message (``split_content``)."""
    if entry.role == TOOL_ROLE:
        return 2
    return max(1, -(-len(entry.content) // MAX_MESSAGE_CHARS))


def _least(*caps: int | None) -> int | None:
    """The tightest of ``caps`` (None: no limit)."""
    given = [c for c in caps if c is not None]
    return min(given) if given else None


def fold(
    entries: Sequence[LogEntry],
    max_entries: int | None,
    max_chars: int | None,
    max_items: int | None = None,
) -> tuple[list[LogEntry], list[LogEntry]]:
    """Split missing ``entries`` into ``(folded, kept)``: the newest that fit every limit are
    kept whole; the older rest is folded (into a digest). Folding anything costs one message of
    the entry limit and one item of the item limit, for the digest itself."""
    if (
        (max_entries is None or len(entries) <= max_entries)
        and (max_chars is None or sum(len(e.content) for e in entries) <= max_chars)
        and (max_items is None or sum(item_count(e) for e in entries) <= max_items)
    ):
        return [], list(entries)
    room = len(entries) if max_entries is None else max_entries - 1
    item_room = None if max_items is None else max_items - 1
    chars = items = 0
    start = len(entries)
    while start > 0 and len(entries) - start < room:
        entry = entries[start - 1]
        size, count = len(entry.content), item_count(entry)
        if max_chars is not None and chars + size > max_chars:
            break
        if item_room is not None and items + count > item_room:
            break
        chars += size
        items += count
        start -= 1
    return list(entries[:start]), list(entries[start:])


def merge_limits(
    max_entries: int | None, max_chars: int | None, caps: RequestCaps, reserve: int
) -> tuple[int | None, int | None, int | None]:
    """The limits ``fold`` applies: the pool's merge caps and a request's ``caps`` together,
    less ``reserve`` items the request carries besides the context (a turn's message and its
    reply), never below room for one digest."""
    items = None if caps.items is None else max(1, caps.items - reserve)
    return max_entries, _least(max_chars, caps.chars), items


def default_compact(entries: Sequence[LogEntry]) -> list[dict[str, str]]:
    """One clearly marked digest message for ``entries``: how many were folded, and the start of
    each, so the model knows both what it was told and that it was abridged."""
    head = (
        f"[context digest: {len(entries)} earlier messages of this conversation (seq "
        f"{entries[0].seq}-{entries[-1].seq}) were folded to fit the merge limits; each is "
        f"quoted up to {DIGEST_EXCERPT} characters]"
    )
    lines = [head]
    for e in entries:
        text = e.content if len(e.content) <= DIGEST_EXCERPT else e.content[:DIGEST_EXCERPT] + "…"
        lines.append(f"{e.role} (#{e.seq}): {text}")
    body = "\n".join(lines)
    if len(body) > MAX_MESSAGE_CHARS:
        note = "\n[context digest truncated: the earliest folded messages are not quoted]"
        body = head + "\n" + body[len(body) - (MAX_MESSAGE_CHARS - len(head) - len(note) - 1) :]
        body += note
    return [{"role": "user", "content": body}]


def checked_messages(messages: object, name: str = "compact") -> list[dict[str, str]]:
    """A compactor's (or merge policy's, ``name``) output as messages upstream accepts (long
    content split), else raise."""
    if not isinstance(messages, Sequence) or isinstance(messages, str):
        raise InvalidArgument(f"{name} must return a list of messages, not {messages!r:.80}")
    out: list[dict[str, str]] = []
    for m in messages:
        if not isinstance(m, Mapping) or not isinstance(m.get("content"), str):
            raise InvalidArgument(f"{name} returned {m!r:.80}; expected {{'role', 'content'}}")
        role = validate_role(m.get("role"))
        out += [{"role": role, "content": piece} for piece in split_content(m["content"])]
    return out
