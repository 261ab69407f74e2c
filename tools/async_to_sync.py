"""Generate the blocking code from the asyncio code, so the two can never drift apart.

    python tools/async_to_sync.py          # rewrite the generated files
    python tools/async_to_sync.py --check  # exit 1 if a generated file is not current (CI)

Each rule is a regular expression applied line by line, then ``ruff format`` tidies the result
(removing ``await`` shortens lines). A rule that no source file used is an error: a stale rule
hides a rename that should have been made here too.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# (source, generated) pairs.
FILES = [
    ("src/thread_pool/_async/__init__.py", "src/thread_pool/_sync/__init__.py"),
    ("src/thread_pool/_async/admin.py", "src/thread_pool/_sync/admin.py"),
    ("src/thread_pool/_async/factory.py", "src/thread_pool/_sync/factory.py"),
    ("src/thread_pool/_async/lease.py", "src/thread_pool/_sync/lease.py"),
    ("src/thread_pool/_async/pool.py", "src/thread_pool/_sync/pool.py"),
    ("src/thread_pool/_async/store.py", "src/thread_pool/_sync/store.py"),
    ("tests/test_pool_async.py", "tests/test_pool_sync.py"),
]

RULES: list[tuple[str, str]] = [
    # Blocking code has nothing to shield: the call runs to its end (or is interrupted anyway).
    (r"\bawait shield\((.*)\)$", r"\1"),
    (r"\basync def\b", "def"),
    (r"\basync with\b", "with"),
    (r"\bawait ", ""),
    (r"\bimport redis\.asyncio as redis\b", "import redis"),
    (r"\bredis\.commands\.core import AsyncScript\b", "redis.commands.core import Script"),
    (r"\bAsyncScript\b", "Script"),
    (r"\bAsyncThreadPool\b", "ThreadPool"),
    (r"\bAsyncPoolAdmin\b", "PoolAdmin"),
    (r"\bAsyncThreadMaker\b", "ThreadMaker"),
    (r"\bAsyncThreadDeleter\b", "ThreadDeleter"),
    (r"\bAsyncLease\b", "Lease"),
    (r"\bAsyncStore\b", "Store"),
    (r"\bAsyncThreadFactory\b", "ThreadFactory"),
    (r"\bAsyncSettler\b", "Settler"),
    (r"\bAsyncIterator\b", "Iterator"),
    (r"\basynccontextmanager\b", "contextmanager"),
    (r"\b__aenter__\b", "__enter__"),
    (r"\b__aexit__\b", "__exit__"),
    (r"\baclose\b", "close"),
    (r"\b_acompat\b", "_compat"),
    (r"\b_async\b", "_sync"),
    (r"\baio_helpers\b", "sync_helpers"),
    (r"\basyncio sources\b", "blocking modules"),
]

BANNER = (
    "# WARNING: this file is generated from {src} by tools/async_to_sync.py.\n"
    "# DO NOT CHANGE IT: change the source and run the tool.\n"
)


def convert(source: str, used: set[int]) -> str:
    """The blocking twin of one asyncio module."""
    out = []
    for line in source.splitlines(keepends=True):
        for i, (pattern, repl) in enumerate(RULES):
            new = re.sub(pattern, repl, line)
            if new != line:
                used.add(i)
                line = new
        out.append(line)
    return "".join(out)


def ruff_format(code: str, path: str) -> str:
    """``code`` as ``ruff format`` would write it to ``path`` (imports sorted too)."""
    ruff = [sys.executable, "-m", "ruff"]
    fixed = subprocess.run(
        [*ruff, "check", "--select", "I,F401", "--fix", "--quiet", "--stdin-filename", path, "-"],
        input=code,
        capture_output=True,
        text=True,
        cwd=ROOT,
    ).stdout
    done = subprocess.run(
        [*ruff, "format", "--quiet", "--stdin-filename", path, "-"],
        input=fixed or code,
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return done.stdout


def main() -> int:
    """Generate (or with ``--check`` compare) every file in ``FILES``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a file is not current")
    args = parser.parse_args()
    used: set[int] = set()
    stale = []
    for src, dst in FILES:
        code = convert((ROOT / src).read_text(), used)
        code = ruff_format(BANNER.format(src=src) + code, dst)
        target = ROOT / dst
        if args.check:
            if not target.exists() or target.read_text() != code:
                stale.append(dst)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(code)
    unused = [RULES[i][0] for i in range(len(RULES)) if i not in used]
    if unused:
        print(f"unused rules (remove or fix them): {unused}", file=sys.stderr)
        return 1
    if stale:
        print(f"not current, run tools/async_to_sync.py: {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
