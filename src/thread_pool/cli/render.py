"""How results look: rich tables for people (colour on a terminal), JSON for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from thread_pool import PoolStatus

if TYPE_CHECKING:
    # Only for the annotation: the stress module imports the openai SDK (slow to import).
    from thread_pool.testing.stress import StressResult


def console(stderr: bool = False) -> Console:
    """A console; piped output gets no colour and a wide line, so tables are not cut."""
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() else 200
    return Console(file=stream, width=width, highlight=False)


def print_json(data: Any) -> None:
    """``data`` as indented JSON on stdout."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")
    sys.stdout.flush()


def _seconds(value: float) -> str:
    return f"{value:.1f}s" if abs(value) < 100 else f"{value:.0f}s"


def _left(remaining: float) -> str:
    return _seconds(remaining) if remaining > 0 else f"expired {_seconds(-remaining)} ago"


def _state(status: PoolStatus) -> Text:
    if status.draining:
        return Text("draining", style="yellow")
    if status.expired:
        # Not "ok": a holder overran its lease (or died) and nobody has reclaimed it yet.
        return Text(f"{status.expired} expired", style="red")
    if status.stats.waiting:
        return Text("waiting", style="red")
    return Text("ok", style="green")


def _log(status: PoolStatus) -> str:
    if status.log_length is None:
        return "-"
    return f"{status.log_length} entries, last seq {status.log_seq}"


def pools_table(statuses: list[PoolStatus]) -> Table:
    """One line per pool, the counts of ``stats()``."""
    table = Table(title=None, box=None, header_style="bold", pad_edge=False)
    for name in ("pool", "threads", "idle", "leased", "settling", "reserved", "waiting"):
        table.add_column(name, justify="left" if name == "pool" else "right", no_wrap=True)
    for name in ("retired", "min", "max", "ttl", "granted"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("log", justify="right")  # entries in the pool's context log
    table.add_column("state")
    for st in statuses:
        s = st.stats
        table.add_row(
            s.key,
            *(str(n) for n in (s.threads, s.idle, s.leased, s.settling, s.reserved, s.waiting)),
            *(str(n) for n in (s.retired, s.min_size, s.max_size)),
            _seconds(s.lease_ttl),
            str(s.granted),
            "-" if st.log_length is None else str(st.log_length),
            _state(st),
        )
    return table


def pool_detail(status: PoolStatus) -> Group:
    """One pool in full: counts, counters, each thread with its lease, the waiters."""
    s = status.stats
    head = Text.assemble(
        ("pool ", "bold"),
        (s.key, "bold cyan"),
        "  ",
        _state(status),
        f"\nthreads {s.threads} (idle {s.idle}, leased {s.leased}, settling {s.settling}, "
        f"reserved {s.reserved})  waiting {s.waiting}  retired {s.retired}"
        f"\nsizes min {s.min_size} max {s.max_size}  lease ttl {_seconds(s.lease_ttl)}"
        f"\ncounters granted {s.granted}  timeouts {s.timeouts}  lost {s.lost}  "
        f"reaped {s.reaped}  lock errors {s.lock_errors}"
        f"\nlog {_log(status)}",
    )
    threads = Table(box=None, header_style="bold", pad_edge=False)
    for name in ("thread", "state", "fence", "holder", "age", "left", "lag"):
        right = name in ("fence", "age", "left", "lag")
        threads.add_column(name, justify="right" if right else "left")
    leases = {lease.thread_id: lease for lease in status.leases}
    styles = {"idle": "green", "leased": "yellow", "settling": "magenta", "expired": "red"}
    for t in status.threads:
        lease = leases.get(t.thread_id)
        left = "" if lease is None else _left(lease.remaining)
        threads.add_row(
            t.thread_id,
            Text(t.state, style=styles.get(t.state, "")),
            str(t.fence),
            "" if lease is None else lease.holder,
            "" if lease is None else _seconds(lease.age),
            Text(left, style="red" if lease is not None and lease.remaining < 0 else ""),
            "-" if t.lag is None else str(t.lag),
        )
    parts: list[Any] = [head, Text(""), threads]
    if status.waiters:
        waiters = Table(box=None, header_style="bold", pad_edge=False)
        waiters.add_column("waiter")
        waiters.add_column("gives up in", justify="right")
        for w in status.waiters:
            waiters.add_row(w.holder, _seconds(w.remaining))
        parts += [Text(""), waiters]
    if status.retired:
        parts += [Text(f"\nretired (may still exist upstream): {', '.join(status.retired)}")]
    return Group(*parts)


def stress_table(results: Sequence[StressResult]) -> Table:
    """One line per strategy of ``thread-pool stress``."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    names = ("strategy", "requests", "succeeded", "failed", "lock errors", "wall s", "turns/s")
    for name in (*names, "p50 s", "p95 s"):
        table.add_column(name, justify="left" if name == "strategy" else "right", no_wrap=True)
    for r in results:
        table.add_row(
            r.strategy,
            str(r.requests),
            str(r.succeeded),
            Text(str(r.failed), style="red" if r.failed else ""),
            Text(str(r.lock_errors), style="red" if r.lock_errors else ""),
            f"{r.wall_s:.1f}",
            f"{r.turns_per_s:.2f}",
            f"{r.p50_s:.2f}",
            f"{r.p95_s:.2f}",
        )
    return table
