"""Reading a run's server-sent events without the SDK's models: the event framing, and the
text pieces of a message delta."""

from __future__ import annotations

from thread_pool._model.run_progress import RunProgress, delta_texts
from thread_pool._model.sse import EventParser, LineSplitter


def events(lines: list[str]) -> list[tuple[str, str]]:
    parser = EventParser()
    return [e for e in map(parser.feed, lines) if e is not None]


def test_events_are_framed_as_the_sse_standard_says() -> None:
    lines = [
        ": a comment, then an event named by its event: line",
        "event: thread.run.created",
        'data: {"id": "run_1"}',
        "",
        "id: 7",  # no data: nothing to hand over
        "retry: 10",
        "",
        "data:first",  # no space after the colon, no name: "message"
        "data: second",
        "",
        "",  # a second blank line ends nothing
        "event: done",
        "data: [DONE]",
        "",
        "event: thread.run.completed",
        'data: {"cut": "before its blank line"}',
    ]
    assert events(lines) == [
        ("thread.run.created", '{"id": "run_1"}'),
        ("message", "first\nsecond"),
        ("done", "[DONE]"),
    ]


def test_a_delta_gives_its_text_pieces_only() -> None:
    data = {
        "delta": {
            "content": [
                {"index": 0, "type": "text", "text": {"value": "Hel"}},
                {"index": 1, "type": "image_file", "image_file": {"file_id": "f"}},
                {"index": 2, "type": "text", "text": {"value": ""}},
                {"index": 3, "type": "text", "text": {"value": "lo"}},
            ]
        }
    }
    assert delta_texts(data) == ["Hel", "lo"]
    assert delta_texts({"delta": {}}) == []
    assert delta_texts({}) == []


def test_the_run_is_built_from_the_latest_event_when_read() -> None:
    progress = RunProgress()
    assert not progress.seen
    assert progress.run is None
    progress.saw({"id": "run_1", "status": "queued"})
    progress.saw({"id": "run_1", "status": "requires_action", "usage": {"total_tokens": 3}})
    assert progress.seen
    assert (progress.run.id, progress.run.status) == ("run_1", "requires_action")
    assert progress.run.usage.total_tokens == 3
    progress.run = None
    assert not progress.seen


def test_lines_end_at_cr_lf_or_crlf_only_even_across_chunks() -> None:
    splitter = LineSplitter()
    chunks = [
        'data: {"text": "a\u2028b\u2029c\u0085d"}\r'.encode(),  # CR now, its LF in the next chunk
        b"",
        b"\n\r\nevent: x\rdata: 1\n",
        b"\ndata: caf",
        "é".encode()[:1],  # a character cut between two chunks
        "é".encode()[1:] + b"\n",
        b"data: not ended",
    ]
    lines = [line for chunk in chunks for line in splitter.feed(chunk)]
    assert lines == [
        'data: {"text": "a\u2028b\u2029c\u0085d"}',
        "",
        "event: x",
        "data: 1",
        "",
        "data: café",
    ]
