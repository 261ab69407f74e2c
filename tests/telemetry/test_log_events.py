"""Every log record of the library names a documented event and carries its fields; none holds a
secret."""

from __future__ import annotations

import ast
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.support.upstream import make_backend
from thread_pool import ThreadPool
from thread_pool._model.log_events import EVENTS
from thread_pool.emulator import EmulatorServer

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "thread_pool"
# The emulator (a test server, logging through uvicorn), the command line and generated code
# are not the library's own log sites (the generated code is checked through its source).
NOT_LIBRARY = ("emulator", "cli", "_sync", "testing")
LEVELS = {"debug", "info", "warning", "error", "exception", "critical"}


def documented() -> dict[str, str]:
    """The events of docs/observability.md's logging table, with their levels."""
    text = (ROOT / "docs" / "observability.md").read_text()
    section = text[text.index("## Logging") :]
    return dict(re.findall(r"^\| `([a-z_.]+)` \| ([A-Z]+) \|", section, re.MULTILINE))


def log_calls() -> Iterator[tuple[str, int, ast.Call, ast.expr]]:
    """Every logging call of the library, with the expression its ``extra`` holds (a name bound
    to ``event(...)`` earlier in the same function is followed to that call)."""
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC)
        if rel.parts[0] in NOT_LIBRARY:
            continue
        for function in ast.walk(ast.parse(path.read_text())):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            bound = sorted(
                (node.lineno, target.id, node.value)
                for node in ast.walk(function)
                if isinstance(node, ast.Assign)
                for target in node.targets
                if isinstance(target, ast.Name)
            )
            for node in ast.walk(function):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr in LEVELS
                    and "log" in ast.unparse(node.func.value).lower()
                ):
                    extra = [k.value for k in node.keywords if k.arg == "extra"]
                    assert len(extra) == 1, f"{rel}:{node.lineno} logs without extra=event(...)"
                    value = extra[0]
                    if isinstance(value, ast.Name):  # its last binding before the call
                        name = value.id
                        for line, target, bound_to in bound:
                            if target == name and line < node.lineno:
                                value = bound_to
                    yield str(rel), node.lineno, node, value


def test_no_library_module_logs_through_an_alias() -> None:
    """A logging method bound to a name (``log = logger.info``) would hide its call from the
    check below (a record without its event was found that way)."""
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC)
        if rel.parts[0] in NOT_LIBRARY:
            continue
        tree = ast.parse(path.read_text())
        called = {id(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in LEVELS
                and "log" in ast.unparse(node.value).lower()
            ):
                assert id(node) in called, f"{rel}:{node.lineno} binds a logging method"


def test_the_documented_events_are_the_library_s() -> None:
    assert documented() == EVENTS


def test_every_log_call_names_an_event_at_its_documented_level() -> None:
    used: set[str] = set()
    calls = list(log_calls())
    assert len(calls) >= len(EVENTS)
    for where, line, call, value in calls:
        assert isinstance(value, ast.Call), f"{where}:{line}"
        assert ast.unparse(value.func) == "event", f"{where}:{line}"
        name = value.args[0]
        assert isinstance(name, ast.Constant), f"{where}:{line}"
        assert name.value in EVENTS, f"{where}:{line}: {name.value!r}"
        level = "ERROR" if call.func.attr == "exception" else call.func.attr.upper()  # type: ignore[attr-defined]
        assert EVENTS[name.value] == level, f"{where}:{line}: {name.value} at {level}"
        used.add(name.value)
    assert used == set(EVENTS)  # no documented event that nothing logs


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def collected() -> Iterator[list[logging.LogRecord]]:
    handler = Collect()
    library = logging.getLogger("thread_pool")
    level = library.level
    library.addHandler(handler)
    library.setLevel(logging.DEBUG)
    yield handler.records
    library.removeHandler(handler)
    library.setLevel(level)


@pytest.mark.thread_pool_emulator(http_500=0.3, api_key="sk-secret-key-of-the-test-0123")
def test_records_of_a_run_carry_their_event_and_fields(
    collected: list[logging.LogRecord],
    thread_pool_redis_url: str,
    thread_pool_prefix: str,
    thread_pool_emulator: EmulatorServer,
) -> None:
    client = openai.OpenAI(
        base_url=thread_pool_emulator.base_url,
        api_key="sk-secret-key-of-the-test-0123",
        max_retries=0,
    )
    backend = make_backend("conversations", client, thread_pool_emulator)
    with ThreadPool(
        backend=backend,
        redis_url=thread_pool_redis_url,
        key_prefix=thread_pool_prefix,
        max_size=2,
    ) as pool:
        for i in range(4):
            pool.run("doc", f"question {i}")
    client.close()

    events = [getattr(r, "event", None) for r in collected]
    assert "growth.grew" in events
    assert "upstream.retry" in events  # the emulator failed some requests
    for record in collected:
        assert record.name.startswith("thread_pool")
        assert record.event in EVENTS, record.getMessage()  # type: ignore[attr-defined]
        assert record.levelname == EVENTS[record.event]  # type: ignore[attr-defined]
        for field in ("pool", "thread_id", "fence", "run_id"):
            assert hasattr(record, field)
        if record.event == "growth.grew":  # type: ignore[attr-defined]
            assert record.pool == "doc"  # type: ignore[attr-defined]
            assert str(record.thread_id).startswith("conv_")  # type: ignore[attr-defined]
        assert "sk-secret" not in record.getMessage()
