"""Threads and their messages, and the one-active-run rule that guards them.

A run's status is computed from its :class:`~thread_pool.emulator.lifecycle.Timeline` whenever
the thread is touched (:meth:`ThreadsStore.settle`): the run that has ended is retired then, and
a completed run's reply message is added with the time it completed, so readers always see a
consistent thread without any background timer. Runs themselves are made and moved on by
:class:`~thread_pool.emulator.runs.RunsStore`, which registers each one here.
"""

from __future__ import annotations

from typing import Any

from thread_pool.emulator import errors
from thread_pool.emulator import validation as v
from thread_pool.emulator.core import Core, new_id
from thread_pool.emulator.lifecycle import BLOCKING, TERMINAL
from thread_pool.emulator.pagination import paginate
from thread_pool.emulator.thread_records import MessageRec, RunRec, ThreadRec

Json = dict[str, Any]


def parse_message(body: Any, param: str) -> tuple[str, str, dict[str, str]]:
    """``(role, text, metadata)`` of a message in a request (validated); ``param`` is where it
    stands in the request (``messages[0]``), empty for a whole body."""
    if not isinstance(body, dict):
        raise errors.wrong_type(param or "body", "an object", body)
    prefix = f"{param}." if param else ""
    role = v.role(body.get("role"), f"{prefix}role", v.MESSAGE_ROLES)
    if body.get("content") is None:
        raise errors.missing(f"{prefix}content")
    text = v.message_text(body["content"], f"{prefix}content", ("text",))
    return role, text, v.metadata(body, f"{prefix}metadata")


class ThreadsStore:
    """Threads, their messages and the index of their runs, guarded by ``core.lock``.

    The methods that take a record rather than an id (:meth:`thread`, :meth:`settle`,
    :meth:`blocking_run`, :meth:`add_message`, :meth:`start_run`) expect the caller to hold
    ``core.lock`` already.
    """

    def __init__(self, core: Core) -> None:
        self.core = core
        self.threads: dict[str, ThreadRec] = {}
        self.runs: dict[str, RunRec] = {}

    def clear(self) -> None:
        """Forget everything."""
        with self.core.lock:
            self.threads.clear()
            self.runs.clear()

    # -- the lock rule ----------------------------------------------------------------------

    def thread(self, thread_id: str) -> ThreadRec:
        """The thread, or the upstream's 404."""
        thread = self.threads.get(thread_id)
        if thread is None:
            raise errors.not_found("thread", thread_id)
        return thread

    def run(self, thread_id: str, run_id: str) -> tuple[ThreadRec, RunRec]:
        """A run with its thread, or the upstream's 404 (a run of another thread is unknown)."""
        thread = self.thread(thread_id)
        run = self.runs.get(run_id)
        if run is None or run.thread_id != thread_id:
            raise errors.not_found("run", run_id)
        return thread, run

    def settle(self, thread: ThreadRec, now: float) -> None:
        """Retire the thread's active run if it has ended; add its reply if it completed."""
        run = thread.active
        if run is None:
            return
        status, since = run.timeline.status_since(now)
        if status not in TERMINAL:
            return
        if status == "completed":
            thread.messages.append(
                MessageRec(
                    id=run.reply_id,
                    thread_id=thread.id,
                    role="assistant",
                    text=run.reply,
                    created_at=since,
                    metadata={},
                    run_id=run.id,
                    assistant_id=run.assistant_id,
                )
            )
        thread.release(self.core.stats)

    def blocking_run(self, thread: ThreadRec, now: float) -> RunRec | None:
        """The run that holds the thread now, if any (the lock rule)."""
        self.settle(thread, now)
        run = thread.active
        if run is not None and run.timeline.status(now) in BLOCKING:
            return run
        return None

    def start_run(self, thread: ThreadRec, run: RunRec) -> None:
        """Register a new run, which holds ``thread`` from now on."""
        thread.runs.append(run)
        thread.hold(run, self.core.stats)
        self.runs[run.id] = run

    # -- threads ----------------------------------------------------------------------------

    def create_thread(self, body: Json) -> Json:
        """``POST /threads`` (with optional initial ``messages`` and ``metadata``)."""
        metadata = v.metadata(body)
        parsed = [
            parse_message(item, f"messages[{index}]")
            for index, item in enumerate(v.array(body, "messages"))
        ]
        with self.core.lock:
            now = self.core.clock()
            thread = ThreadRec(id=new_id("thread"), created_at=now, metadata=metadata)
            self.threads[thread.id] = thread
            self.core.stats.write(thread.id, "thread.create", thread.id, metadata, now)
            for role, text, meta in parsed:
                self.add_message(thread, role, text, meta, now)
            return thread.render()

    def get_thread(self, thread_id: str) -> Json:
        """``GET /threads/{id}``."""
        with self.core.lock:
            return self.thread(thread_id).render()

    def update_thread(self, thread_id: str, body: Json) -> Json:
        """``POST /threads/{id}`` (metadata)."""
        metadata = v.metadata(body) if "metadata" in body else None
        with self.core.lock:
            thread = self.thread(thread_id)
            if metadata is not None:
                thread.metadata = metadata
                self.core.stats.write(
                    thread.id, "thread.update", thread.id, metadata, self.core.clock()
                )
            return thread.render()

    def delete_thread(self, thread_id: str) -> Json:
        """``DELETE /threads/{id}``."""
        with self.core.lock:
            thread = self.thread(thread_id)
            thread.release(self.core.stats)
            del self.threads[thread_id]
            for run in thread.runs:
                self.runs.pop(run.id, None)
        return {"id": thread_id, "object": "thread.deleted", "deleted": True}

    # -- messages ---------------------------------------------------------------------------

    def add_message(
        self, thread: ThreadRec, role: str, text: str, metadata: dict[str, str], now: float
    ) -> MessageRec:
        """Append a message written by a client, and log the write."""
        message = MessageRec(new_id("msg"), thread.id, role, text, now, metadata)
        thread.messages.append(message)
        self.core.stats.write(thread.id, "message.create", message.id, metadata, now)
        return message

    def create_message(self, thread_id: str, body: Json) -> Json:
        """``POST /threads/{id}/messages``: refused while a run holds the thread."""
        role, text, metadata = parse_message(body, "")
        with self.core.lock:
            now = self.core.clock()
            thread = self.thread(thread_id)
            blocking = self.blocking_run(thread, now)
            if blocking is not None:
                self.core.stats.refused(
                    thread.id, "message.refused", blocking.id, blocking.metadata, now
                )
                raise errors.message_while_active(thread.id, blocking.id)
            return self.add_message(thread, role, text, metadata, now).render()

    def list_messages(self, thread_id: str, query: dict[str, str]) -> Json:
        """``GET /threads/{id}/messages`` (cursor page; ``run_id`` filter)."""
        limit, order = v.limit(query), v.order(query)
        with self.core.lock:
            thread = self.thread(thread_id)
            self.settle(thread, self.core.clock())
            messages = thread.messages
            if "run_id" in query and not self.core.config.ignore_run_id:
                messages = [m for m in messages if m.run_id == query["run_id"]]
            return paginate(
                messages, lambda m: m.id, MessageRec.render, query, limit=limit, order=order
            )

    def get_message(self, thread_id: str, message_id: str) -> Json:
        """``GET /threads/{id}/messages/{message_id}``."""
        with self.core.lock:
            thread = self.thread(thread_id)
            self.settle(thread, self.core.clock())
            for message in thread.messages:
                if message.id == message_id:
                    return message.render()
        raise errors.not_found("message", message_id)
