"""The pool's canonical context log: what a thread is missing, the messages that bring it up to
date (within the merge limits), and the turns and appends written to it."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from thread_pool._acompat import call_handler, sleep
from thread_pool._async.known import AsyncKnownPools
from thread_pool._async.store import AsyncStore
from thread_pool._model.log import (
    Compactor,
    LogEntry,
    MergePolicy,
    Missing,
    RequestCaps,
    checked_messages,
    fold,
    log_pairs,
    merge_limits,
    messages_for,
    retention_marker,
)
from thread_pool._model.log_events import event
from thread_pool._model.record import TOOL_ROLE, described, turn_entries
from thread_pool._model.turns import Turn
from thread_pool._store.replies import Outcome, integers, outcome, parse_missing
from thread_pool._store.scripts import ms
from thread_pool.errors import StoreUnavailable

logger = logging.getLogger("thread_pool")

# Reads the log as a thread that made none of it, to seed a new thread (no thread has this id:
# upstream ids have no spaces).
NEW_THREAD = "new thread"

_NOTHING = Missing(last_seq=0, cursor=0, entries=())
NO_CAPS = RequestCaps()
#: A request whose context is one digest of everything: what a turn refused for its size tries.
ONE_DIGEST = RequestCaps(items=1, chars=0)


class AsyncContextLog:
    """One pool object's view of its pools' logs, with its merge policy and limits.

    ``merge``: ``"full"``, ``"none"`` or a callable ``policy(entries) -> messages``;
    ``max_entries`` / ``max_chars``: the merge limits beyond which ``compact`` folds the oldest
    missing entries; ``log_max_entries`` / ``log_max_age``: the log's retention by count and by
    age in seconds (None: none)."""

    def __init__(
        self,
        store: AsyncStore,
        known: AsyncKnownPools,
        *,
        merge: str | MergePolicy,
        max_entries: int | None,
        max_chars: int | None,
        compact: Compactor,
        log_max_entries: int | None,
        log_max_age: float | None,
        tools: str,
        entry_cap: int,
        turn_cap: int,
    ) -> None:
        self._store = store
        self._known = known
        self.merge = merge
        self.max_entries = max_entries
        self.max_chars = max_chars
        self.compact = compact
        self.log_max_entries = log_max_entries
        self.log_max_age = log_max_age
        self.tools = tools
        self.entry_cap = entry_cap
        self.turn_cap = turn_cap

    async def missing(self, key: str, thread_id: str) -> Missing:
        """The log entries ``thread_id`` lacks (none under ``merge="none"``)."""
        if self.merge == "none":
            return _NOTHING
        return parse_missing(await self._store.call("log_missing", key, thread_id))

    async def seed(self, key: str, caps: RequestCaps = NO_CAPS) -> tuple[list[dict[str, str]], int]:
        """What a new thread of pool ``key`` starts out holding: the log so far as messages
        (within the merge limits and the backend's ``caps``: a server may read no more of a
        new thread than one request carries), and the seq where that read ended (its cursor)."""
        missing = await self.missing(key, NEW_THREAD)
        return await self.messages(missing, caps), missing.last_seq

    async def messages(
        self, missing: Missing, caps: RequestCaps = NO_CAPS, reserve: int = 0
    ) -> list[dict[str, str]]:
        """The messages that bring a thread up to date with ``missing`` within the merge limits
        and the request ``caps`` (less ``reserve`` items the request carries besides), after a
        marked gap message if retention trimmed entries the thread never received."""
        dropped = missing.dropped
        gap = [retention_marker(dropped)] if dropped is not None else []
        entries = missing.entries
        if self.tools == "none":
            entries = tuple(e for e in entries if e.role != TOOL_ROLE)
        if callable(self.merge):
            if not entries:
                return gap
            return gap + checked_messages(
                await call_handler(self.merge, entries, name="merge"), "merge"
            )
        max_entries, max_chars, max_items = merge_limits(
            self.max_entries, self.max_chars, caps, reserve + len(gap)
        )
        folded, kept = fold(entries, max_entries, max_chars, max_items)
        out = (
            checked_messages(await call_handler(self.compact, folded, name="compact"))
            if folded
            else []
        )
        return gap + out + messages_for(kept, self.tools)

    async def advance(self, key: str, thread_id: str, seq: int) -> None:
        """Move the thread's cursor up to ``seq`` (never back); best effort: if Redis is away,
        the entries are sent again, which is the lesser harm."""
        try:
            await self._store.call("log_cursor", key, thread_id, seq)
        except Exception as exc:
            logger.warning(
                "pool %r: could not move the cursor of %s: %s",
                key,
                thread_id,
                exc,
                extra=event("log.cursor_failed", key, thread_id),
            )

    async def log_turn(
        self, key: str, thread_id: str, turn_id: str, seen: int, message: str, turn: Turn
    ) -> int:
        """Append a completed turn (its user message, tool calls and reply, within the caps) to
        the log and move the thread's cursor; returns the seq of its last entry. A lost reply is
        retried: the turn id makes the append happen once."""
        pairs, cuts = turn_entries(message, turn, self.entry_cap, self.turn_cap)
        if cuts:
            # The thread itself holds the whole turn; only what its siblings receive is cut.
            logger.warning(
                "pool %r: turn %s on %s was cut to fit the log's caps (log_entry_max_chars=%d, "
                "log_turn_max_chars=%d): %s",
                key,
                turn.run_id,
                thread_id,
                self.entry_cap,
                self.turn_cap,
                described(cuts),
                extra=event("log.turn_cut", key, thread_id, run_id=turn.run_id),
            )
        return await self.append(key, turn_id, thread_id, seen, turn.run_id, pairs)

    async def append(
        self,
        key: str,
        entry_id: str,
        origin: str,
        seen: int,
        run_id: str,
        pairs: Sequence[tuple[str, str]],
    ) -> int:
        """Append ``pairs`` (role, content) as entry ``entry_id`` (once: a retried append of the
        same id adds nothing); returns the seq of its last message."""
        delay = 0.05
        for attempt in range(5):
            try:
                word, rest = outcome(
                    await self._store.call(
                        "log_append",
                        key,
                        entry_id,
                        origin,
                        seen,
                        run_id,
                        self.log_max_entries or 0,
                        self._known.epoch(key),
                        ms(self.log_max_age or 0),
                        *log_pairs(pairs),
                    )
                )
            except StoreUnavailable:
                if attempt == 4:
                    raise
                await sleep(delay)
                delay *= 2
                continue
            if word is Outcome.LOSTSTATE:
                raise await self._known.lost(key, rest)
            await self._known.learn(key)
            return integers(rest)[0]
        raise AssertionError("unreachable")

    async def history(self, key: str) -> list[LogEntry]:
        """Pool ``key``'s canonical conversation: every logged message, oldest first."""
        return await self._store.read_log(key)
