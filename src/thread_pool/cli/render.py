"""How results look: rich tables for people (colour on a terminal), JSON for scripts.

Text that comes from Redis or from callers (pool keys, thread ids, holder names, messages) is
shown through ``safe``/``cell``/``say`` only: never parsed as rich markup, and with control
characters shown as escapes, so a name cannot restyle the screen, break the command, or forge
rows. JSON output needs nothing more: ``json.dumps`` escapes them itself.
"""

from __future__ import annotations

import json
import re
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


# C0 and C1 controls (ESC, CR, LF, TAB, NUL...), DEL, and the invisible marks that reorder or
# break a line: bidi embeddings, overrides and isolates, LRM/RLM/ALM, line/paragraph separators.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe(value: object) -> str:
    """``value`` as text fit for one line of a terminal: unsafe characters shown as escapes."""
    return _UNSAFE.sub(_escaped, str(value))


def cell(value: object, style: str = "") -> Text:
    """A table cell (or any piece of a line) showing ``value`` as it is: no markup, no
    control characters."""
    return Text(safe(value), style=style)


def say(line: str, stderr: bool = False) -> None:
    """Print one line of text to a person (stdout, or stderr)."""
    console(stderr).print(cell(line))


def console(stderr: bool = False) -> Console:
    """A console; piped output gets no colour and a wide line, so tables are not cut."""
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() else 200
    return Console(file=stream, width=width, highlight=False)


def print_json(data: Any, indent: int | None = 2) -> None:
    """``data`` as indented JSON on stdout (``indent=None``: on one line)."""
    sys.stdout.write(json.dumps(data, indent=indent, sort_keys=False) + "\n")
    sys.stdout.flush()


class JsonList:
    """``{"<name>": [item, ...]}`` written to stdout item by item, byte for byte as ``print_json``
    (``indent=2``) or one ``json.dumps`` line (``indent=None``) writes the whole: a list of
    100,000 pools streams out instead of being built in memory first. Nothing is written until
    the first item (or ``close``), so a command failing before it leaves stdout empty; one
    failing later leaves it cut short (its exit status says so)."""

    def __init__(self, name: str, indent: int | None = 2) -> None:
        self._indent = indent
        self._started = False
        self._inner = ""
        if indent is None:
            self._head, self._sep, self._tail = f"{{{json.dumps(name)}: [", ", ", "]}"
        else:
            pad = " " * indent
            self._head = f"{{\n{pad}{json.dumps(name)}: [\n"
            self._sep, self._tail = ",\n", f"\n{pad}]\n}}"
            self._inner = "\n" + pad * 2  # items sit two levels in

    def add(self, item: Any) -> None:
        """Write one item of the list."""
        if self._indent is None:
            text = json.dumps(item)
        else:
            text = self._inner[1:] + json.dumps(item, indent=self._indent).replace(
                "\n", self._inner
            )
        sys.stdout.write((self._sep if self._started else self._head) + text)
        self._started = True

    def close(self) -> None:
        """End the document (an empty list if nothing was added) and its line."""
        if self._started:
            sys.stdout.write(self._tail + "\n")
        else:
            sys.stdout.write(self._head.rstrip() + self._tail.lstrip() + "\n")
        sys.stdout.flush()


def _seconds(value: float) -> str:
    return f"{value:.1f}s" if abs(value) < 100 else f"{value:.0f}s"


def _left(remaining: float) -> str:
    return _seconds(remaining) if remaining > 0 else f"expired {_seconds(-remaining)} ago"


def _state(status: PoolStatus) -> Text:
    if status.draining:
        return cell("draining", style="yellow")
    if status.expired:
        # Not "ok": a holder overran its lease (or died) and nobody has reclaimed it yet.
        return cell(f"{status.expired} expired", style="red")
    if status.stats.waiting:
        return cell("waiting", style="red")
    return cell("ok", style="green")


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
            cell(s.key),
            *(cell(n) for n in (s.threads, s.idle, s.leased, s.settling, s.reserved, s.waiting)),
            *(cell(n) for n in (s.retired, s.min_size, s.max_size)),
            cell(_seconds(s.lease_ttl)),
            cell(s.granted),
            cell("-" if st.log_length is None else st.log_length),
            _state(st),
        )
    return table


def pool_detail(status: PoolStatus) -> Group:
    """One pool in full: counts, counters, each thread with its lease, the waiters."""
    s = status.stats
    head = Text.assemble(
        ("pool ", "bold"),
        cell(s.key, style="bold cyan"),
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
            cell(t.thread_id),
            cell(t.state, style=styles.get(t.state, "")),
            cell(t.fence),
            cell("" if lease is None else lease.holder),
            cell("" if lease is None else _seconds(lease.age)),
            cell(left, style="red" if lease is not None and lease.remaining < 0 else ""),
            cell("-" if t.lag is None else t.lag),
        )
    parts: list[Any] = [head, Text(""), threads]
    if status.waiters:
        waiters = Table(box=None, header_style="bold", pad_edge=False)
        waiters.add_column("waiter")
        waiters.add_column("gives up in", justify="right")
        for w in status.waiters:
            waiters.add_row(cell(w.holder), cell(_seconds(w.remaining)))
        parts += [Text(""), waiters]
    if status.retired:
        retired = ", ".join(safe(t) for t in status.retired)
        parts += [Text(f"\nretired (may still exist upstream): {retired}")]
    return Group(*parts)


def stress_table(results: Sequence[StressResult]) -> Table:
    """One line per strategy of ``thread-pool stress``."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    names = ("strategy", "requests", "succeeded", "failed", "lock errors", "wall s", "turns/s")
    for name in (*names, "p50 s", "p95 s"):
        table.add_column(name, justify="left" if name == "strategy" else "right", no_wrap=True)
    for r in results:
        table.add_row(
            cell(r.strategy),
            cell(r.requests),
            cell(r.succeeded),
            cell(r.failed, style="red" if r.failed else ""),
            cell(r.lock_errors, style="red" if r.lock_errors else ""),
            cell(f"{r.wall_s:.1f}"),
            cell(f"{r.turns_per_s:.2f}"),
            cell(f"{r.p50_s:.2f}"),
            cell(f"{r.p95_s:.2f}"),
        )
    return table
