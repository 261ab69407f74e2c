"""The blocking pool's background scheduler: one thread runs the steps of every open block."""

from __future__ import annotations

import logging
import os
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


def test_a_step_stuck_in_a_slow_call_holds_up_no_other_block() -> None:
    # A renewal stuck on a Redis that stopped answering must not keep every other lease of the
    # pool object from being renewed.
    scheduler = Scheduler("test stuck")
    stuck, release = threading.Event(), threading.Event()
    ran_meanwhile = threading.Event()
    counts: list[int] = []

    def slow() -> float | None:
        stuck.set()
        release.wait(30)
        return None

    def quick() -> float | None:
        counts.append(1)
        if stuck.is_set() and not release.is_set() and len(counts) >= 3:
            ran_meanwhile.set()
        return 0.01

    with scheduler.background(slow, "slow"):
        assert stuck.wait(30)
        with scheduler.background(quick, "quick"):
            assert ran_meanwhile.wait(30)  # three steps while the slow one is still inside
        release.set()
    scheduler.close()


def test_a_step_that_raises_a_base_exception_ends_its_block_only() -> None:
    scheduler = Scheduler("test base exception")
    later = threading.Event()

    def exits() -> float | None:
        raise SystemExit(3)

    def fine() -> float | None:
        later.set()
        return 60.0

    with scheduler.background(exits, "exits"):
        time.sleep(0.05)
    with scheduler.background(fine, "fine"):
        assert later.wait(30)
    scheduler.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork() is POSIX only")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_runs_its_own_steps() -> None:
    # gunicorn's preload, multiprocessing: the parent's runner threads are not in the child.
    scheduler = Scheduler("test fork")
    with scheduler.background(lambda: 60.0, "parent's"):
        pid = os.fork()
        if pid == 0:  # the child: report by exit status, never return into pytest
            ran = threading.Event()

            def step() -> float | None:
                ran.set()
                return None

            code = 1
            try:
                with scheduler.background(step, "child's"):
                    code = 0 if ran.wait(20) else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    scheduler.close()
