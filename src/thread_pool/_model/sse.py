"""Server-sent events as lines arrive: each complete event's name and data. No I/O here."""

from __future__ import annotations


class EventParser:
    """Feeds on the lines of a ``text/event-stream`` body (line ends removed) and hands back each
    event when the blank line that ends it arrives: its ``event:`` name ("message" when it has
    none) and its ``data:`` lines joined by newlines. Comments (``:``), ``id:`` and ``retry:``
    are skipped (nothing here resumes a stream by id or reconnects by itself); an event with no
    ``data:`` is dropped, and so is one the body ends before completing, as the SSE standard
    says."""

    __slots__ = ("_data", "_name")

    def __init__(self) -> None:
        self._name = ""
        self._data: list[str] = []

    def feed(self, line: str) -> tuple[str, str] | None:
        """The event that ``line`` completes, if it does."""
        if not line:
            name, data = self._name or "message", self._data
            self._name, self._data = "", []
            return (name, "\n".join(data)) if data else None
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._name = value
        return None


class LineSplitter:
    """Cuts a ``text/event-stream`` body, as its chunks arrive, into lines (line ends removed).

    A line ends at CR, LF or CRLF only (the SSE standard), not where ``str.splitlines`` would
    also cut (U+2028, U+2029, U+0085, which JSON carries unescaped: a run's instructions, a tool
    output). The body is UTF-8 whatever its ``charset`` says, as the standard requires."""

    __slots__ = ("_cr", "_rest")

    def __init__(self) -> None:
        self._rest = b""
        self._cr = False  # the last chunk ended in CR: an LF opening the next one ends nothing

    def feed(self, chunk: bytes) -> list[str]:
        """The lines ``chunk`` completes."""
        if not chunk:
            return []  # an empty chunk must not forget a CR that ended the one before
        if self._cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]
        self._cr = chunk.endswith(b"\r")
        parts = (self._rest + chunk).replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        self._rest = parts.pop()
        return [part.decode("utf-8", errors="replace") for part in parts]
