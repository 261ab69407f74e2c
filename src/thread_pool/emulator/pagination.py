"""Cursor pages of the list endpoints (``limit``, ``order``, ``after``/``before`` ids)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from thread_pool.emulator import errors

T = TypeVar("T")


def paginate(
    items: Sequence[T],
    ident: Callable[[T], str],
    render: Callable[[T], dict[str, Any]],
    query: dict[str, str],
    *,
    limit: int,
    order: str,
) -> dict[str, Any]:
    """A cursor page (``after``/``before`` ids) over ``items`` (given oldest first)."""
    ordered = list(items) if order == "asc" else list(reversed(items))
    ids = [ident(item) for item in ordered]
    start, stop = 0, len(ordered)
    after, before = query.get("after"), query.get("before")
    if after is not None:
        start = _position(ids, after, "after") + 1
    if before is not None:
        stop = _position(ids, before, "before")
        start = max(start, stop - limit) if after is None else start
    page = ordered[start:stop][:limit]
    data = [render(item) for item in page]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": start + len(page) < stop,
    }


def _position(ids: list[str], cursor: str, param: str) -> int:
    """Where the cursor id stands in the page order; an unknown id is the caller's error."""
    if cursor not in ids:
        raise errors.ApiError(
            400, f"Invalid '{param}': no object found with id '{cursor}'.", param=param
        )
    return ids.index(cursor)
