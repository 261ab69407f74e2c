"""The independent checker of lease evidence (tests/support/evidence.py) finds what it must and
nothing else: the multi-process pool tests' holds, and the chaos run's records."""

from __future__ import annotations

import pytest

from tests.support.evidence import (
    Done,
    End,
    Grant,
    Hold,
    LoggedTurn,
    PoolLeftovers,
    Records,
    Write,
    hold_violations,
    late_writes,
    refusals,
    violations,
)


def test_checker_sees_overlaps_and_repeated_fences() -> None:
    fine = [Hold("t", 1, 0, 10, "a"), Hold("t", 2, 10, 20, "b"), Hold("u", 1, 5, 15, "c")]
    assert hold_violations(fine) == []
    overlapping = [Hold("t", 1, 0, 10, "a"), Hold("t", 2, 9, 20, "b")]
    assert "started" in hold_violations(overlapping)[0]
    repeated = [Hold("t", 1, 0, 10, "a"), Hold("t", 1, 20, 30, "b")]
    assert "granted twice" in hold_violations(repeated)[0]
    # Fences out of time order: the later grant held the thread first.
    reordered = [Hold("t", 2, 0, 10, "a"), Hold("t", 1, 20, 30, "b")]
    assert hold_violations(reordered) != []


# -- the chaos run's records -----------------------------------------------------------------


def _quiet(pool: str = "p", threads: int = 1, **changes: int) -> PoolLeftovers:
    fields = {"threads": threads, "idle": threads, "leases": 0, "holds": 0, "waiters": 0}
    fields.update({"reserved": 0, "settling": 0, "claims": 0, "in_flight": 0, "mailboxes": 0})
    fields["max_size"] = 2
    fields.update(changes)
    return PoolLeftovers(pool=pool, **fields)


def _check(
    records: Records,
    writes: list[Write] | None = None,
    log: list[LoggedTurn] | None = None,
    leftovers: list[PoolLeftovers] | None = None,
    lock_errors: int = 0,
    peak: int = 1,
    upstream: dict[str, list[str]] | None = None,
) -> list[str]:
    return violations(
        records,
        writes or [],
        log or [],
        leftovers if leftovers is not None else [_quiet()],
        lock_errors=lock_errors,
        peak_active_per_thread=peak,
        upstream_threads=upstream if upstream is not None else {"p": ["t"]},
    )


def _history() -> Records:
    """Two clean leases of thread t: fence 1 in [100, 200], fence 2 from 250."""
    return Records(
        grants=[Grant("t", 1, 100, "a/1"), Grant("t", 2, 250, "b/1")],
        ends=[End("t", 1, 200, 3100, "ok"), End("t", 2, 300, 3250, "ok")],
        done=[Done("a/1", "t", 1), Done("b/1", "t", 2)],
    )


def _clean_writes() -> list[Write]:
    return [Write("t", 1, 120, "run.create", 1), Write("t", 2, 260, "run.create", 2)]


def _clean_log() -> list[LoggedTurn]:
    return [LoggedTurn("p", 1, "a/1", "t"), LoggedTurn("p", 3, "b/1", "t")]


def test_the_checker_accepts_clean_evidence() -> None:
    assert _check(Records.parse(_encoded(_history())), _clean_writes(), _clean_log()) == []
    # A settler cancelled fence 1's run after its lease expired, before the next grant, and a
    # write of fence 1 came late but before the next grant: reported, not a violation.
    history = _history()
    history.ends[0] = End("t", 1, 200, 150, "LeaseLost")
    settled = [
        Write("t", 1, 120, "run.create", 1),
        Write("t", 2, 240, "run.cancel", 1),
        Write("t", 3, 260, "run.create", 2),
    ]
    assert _check(history, settled, _clean_log()) == []
    late = [
        Write("t", 1, 120, "run.create", 1),
        Write("t", 2, 230, "run.create", 1),
        Write("t", 3, 240, "run.cancel", 1),
        Write("t", 4, 260, "run.create", 2),
    ]
    assert _check(history, late, _clean_log()) == []
    (found,) = late_writes(history, late)
    assert "80 ms after its lease's deadline" in found


def _encoded(records: Records) -> list[str]:
    return [
        *(g.encode() for g in records.grants),
        *(e.encode() for e in records.ends),
        *(d.encode() for d in records.done),
    ]


@pytest.mark.parametrize(
    ("what", "change", "expected"),
    [
        ("overlap", {"grants": [Grant("t", 1, 100, "a/1"), Grant("t", 2, 150, "b/1")]}, "ended"),
        ("fence twice", {"grants": [Grant("t", 1, 100, "a/1"), Grant("t", 1, 250, "b")]}, "twice"),
        ("stale write", {"writes": [Write("t", 1, 270, "run.create", 1)]}, "next grant"),
        ("unsettled reuse", {"writes": [Write("t", 1, 251, "run.cancel", 1)]}, "next grant"),
        ("out of order", {"writes": [*_clean_writes(), Write("t", 3, 280, "x", 1)]}, "arrived"),
        ("lost turn", {"log": [LoggedTurn("p", 1, "a/1", "t")]}, "not in the log"),
        ("duplicate", {"log": [*_clean_log(), LoggedTurn("p", 5, "b/1", "t")]}, "2 times"),
        ("wrong origin", {"log": [_clean_log()[0], LoggedTurn("p", 3, "b/1", "u")]}, "logged"),
        ("leaked lease", {"leftovers": [_quiet(leases=1, idle=0)]}, "leases left"),
        ("leaked reservation", {"leftovers": [_quiet(reserved=1)]}, "reservations"),
        ("left in flight", {"leftovers": [_quiet(in_flight=1)]}, "in-flight"),
        (
            "above max",
            {"leftovers": [_quiet(threads=3)], "upstream": {"p": ["t", "u", "v"]}},
            "max",
        ),
        ("upstream leak", {"upstream": {"p": ["t", "orphan"]}}, "upstream holds 2"),
        ("lock errors", {"lock_errors": 2}, "lock errors"),
        ("two runs", {"peak": 2}, "2 active runs"),
    ],
)
def test_the_checker_finds_each_kind_of_violation(
    what: str, change: dict[str, object], expected: str
) -> None:
    history = _history()
    records = Records(
        grants=change.pop("grants", history.grants),  # type: ignore[arg-type]
        ends=change.pop("ends", history.ends),  # type: ignore[arg-type]
        done=history.done,
    )
    args: dict[str, object] = {"writes": _clean_writes(), "log": _clean_log(), **change}
    found = _check(records, **args)  # type: ignore[arg-type]
    assert found, what
    assert any(expected in v for v in found), found


def test_the_checker_tells_who_blocked_a_refused_write() -> None:
    # Upstream logs a refused write with the stamps of the run that blocked it.
    writes = [*_clean_writes(), Write("t", 3, 3150, "response.refused", 1)]
    found = _check(_history(), writes, _clean_log(), lock_errors=1)
    assert found[0] == "upstream answered 1 lock errors"
    assert found[1:] == refusals(_history(), writes)
    assert found[1] == (
        "t: response.refused at 3150: blocked by fence 1 (a/1, +50 ms past its deadline); "
        "refused: b/1 (fence 2)"
    )
