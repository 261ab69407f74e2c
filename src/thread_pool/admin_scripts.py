"""The Lua scripts of the admin operations (``scripts/admin_*.lua``), loaded like the pool's own.

They are kept apart from ``scripts.NAMES`` because they serve operators, not the lease path; each
gets the same ``_common.lua`` prelude, so it names a pool's keys and reads Redis time exactly as
the lease scripts do.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

NAMES = (
    "admin_delete",
    "admin_drain",
    "admin_export",
    "admin_import",
    "admin_inspect",
    "admin_register",
    "admin_reserve",
    "admin_unreserve",
)

# Scripts that also need stats.lua's reply: its body becomes the function stats_reply(), so a
# status snapshot can never count differently from stats().
_WITH_STATS = frozenset({"admin_inspect"})


def _read(name: str) -> str:
    return resources.files("thread_pool._store.scripts").joinpath(name).read_text(encoding="utf-8")


@cache
def source(name: str) -> str:
    """The full source of admin script ``name``: the shared prelude, then the script."""
    if name not in NAMES:
        raise KeyError(f"no admin script named {name!r}")
    parts = [_read("_common.lua")]
    if name in _WITH_STATS:
        parts.append(
            f"-- ==== stats.lua ====\nlocal function stats_reply()\n{_read('stats.lua')}\nend"
        )
    parts.append(f"-- ==== {name}.lua ====\n{_read(name + '.lua')}")
    return "\n".join(parts)
