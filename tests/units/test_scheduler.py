"""The blocking pool's background scheduler: one thread runs the steps of every open block."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import pytest

from thread_pool._compat import Scheduler


def test_the_steps_of_many_blocks_run_on_one_thread_each_when_due() -> None:
    scheduler = Scheduler("test steps")
    seen: dict[int, list[str]] = {n: [] for n in range(20)}
    twice = threading.Barrier(21)

    def step_of(n: int) -> Callable[[], float | None]:
        def step() -> float | None:
            seen[n].append(threading.current_thread().name)
            if len(seen[n]) == 2:
                threading.Thread(target=twice.wait, daemon=True).start()
            return 0.01 if len(seen[n]) < 2 else 60.0

        return step

    blocks = [scheduler.background(step_of(n), f"block {n}") for n in range(20)]
    for block in blocks:
        block.__enter__()
    twice.wait(30)
    for block in blocks:
        block.__exit__(None, None, None)
    names = {name for calls in seen.values() for name in calls}
    assert names == {"test steps"}
    assert all(len(calls) == 2 for calls in seen.values())
    scheduler.close()


def test_leaving_a_block_waits_for_its_running_step_and_runs_no_more() -> None:
    scheduler = Scheduler("test stop")
    running, finish = threading.Event(), threading.Event()
    calls: list[float] = []

    def step() -> float | None:
        calls.append(time.monotonic())
        running.set()
        finish.wait(30)
        return 0.0  # due again at once: only leaving the block stops it

    block = scheduler.background(step, "slow")
    block.__enter__()
    assert running.wait(30)
    left = threading.Event()

    def leave() -> None:
        block.__exit__(None, None, None)
        left.set()

    threading.Thread(target=leave, daemon=True).start()
    assert not left.wait(0.2)  # still inside the step
    finish.set()
    assert left.wait(30)
    count = len(calls)
    time.sleep(0.1)
    assert len(calls) == count == 1
    scheduler.close()


def test_a_failing_step_is_logged_and_ends_its_block_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    scheduler = Scheduler("test failure")
    other = threading.Event()

    def failing() -> float | None:
        raise RuntimeError("boom")

    def fine() -> float | None:
        other.set()
        return 60.0

    with caplog.at_level(logging.WARNING, logger="thread_pool"):
        with scheduler.background(failing, "bad"), scheduler.background(fine, "good"):
            assert other.wait(30)
            deadline = time.monotonic() + 30
            while "boom" not in caplog.text and time.monotonic() < deadline:
                time.sleep(0.01)
    assert "background bad failed: boom" in caplog.text
    scheduler.close()


def test_the_thread_ends_once_closed_and_idle_and_a_new_block_starts_another() -> None:
    scheduler = Scheduler("test lifetime")
    ran = threading.Event()

    def once() -> float | None:
        ran.set()
        return None

    def alive() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name == "test lifetime"]

    with scheduler.background(once, "first"):
        assert ran.wait(30)
    scheduler.close()
    deadline = time.monotonic() + 30
    while alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not alive()
    ran.clear()
    with scheduler.background(once, "second"):
        assert ran.wait(30)
    scheduler.close()
