"""The library's log events: every record it logs names one of these (``record.event``), with
the pool, thread, fence and run it is about as fields of their own, so that a log pipeline can
filter and count them without parsing messages.

Each call site passes ``extra=event("name", pool=..., thread_id=...)``; docs/observability.md
lists the same names with their levels (a test holds the two together). Nothing secret goes in a
field: pool keys, upstream ids and fences only.
"""

from __future__ import annotations

from typing import Any

EVENTS: dict[str, str] = {
    # name: level, as logged
    "acquire.undo_later": "INFO",
    "acquire.undo_failed": "WARNING",
    "cleanup.dropped": "WARNING",
    "cleanup.late_failed": "WARNING",
    "cleanup.late_done": "INFO",
    "release.after_error": "INFO",
    "release.after_error_failed": "WARNING",
    "growth.grew": "INFO",
    "growth.late_retired": "WARNING",
    "growth.undone": "WARNING",
    "growth.leaked": "ERROR",
    "settle.failed": "ERROR",
    "settle.in_flight_unknown": "WARNING",
    "settle.after_stream_failed": "INFO",
    "settle.cancel_refused": "DEBUG",
    "turn.lock_error": "ERROR",
    "turn.too_large": "WARNING",
    "log.cursor_failed": "WARNING",
    "log.turn_cut": "WARNING",
    "upstream.retry": "INFO",
    "background.failed": "WARNING",
    "dispatch.retry": "INFO",
    "dispatch.failed": "WARNING",
    "maintenance.failed": "WARNING",
    "maintenance.reaped": "INFO",
    "maintenance.grew": "INFO",
    "maintenance.retired": "INFO",
}
"""Every event name, with the level it is logged at."""


def event(
    name: str,
    pool: str | None = None,
    thread_id: str | None = None,
    *,
    fence: int | None = None,
    run_id: str | None = None,
) -> dict[str, Any]:
    """The ``extra`` of a log record of event ``name``: ``event``, ``pool``, ``thread_id``,
    ``fence`` and ``run_id`` become attributes of the record (None where they do not apply)."""
    if name not in EVENTS:
        raise ValueError(f"{name!r} is no log event of the library")
    return {"event": name, "pool": pool, "thread_id": thread_id, "fence": fence, "run_id": run_id}
