"""The Lua scripts that change a pool atomically (one ``.lua`` file each, see ``_common.lua``)."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

# A helper of _common.lua: its comment lines, then "local function name(".
_HELPER = re.compile(r"^(?=(?:--[^\n]*\n)*local function (\w+)\()", re.MULTILINE)

NAMES = (
    "abandon",
    "acquire",
    "add",
    "check",
    "configure",
    "count",
    "inflight",
    "log_append",
    "log_cursor",
    "log_missing",
    "reap",
    "register",
    "release",
    "renew",
    "settled",
    "stats",
    "take_wait",
    "wait_alive",
    # The admin operations: they serve operators, not the lease path, but name a pool's keys and
    # read Redis time exactly as the lease scripts do.
    "admin_delete",
    "admin_drain",
    "admin_export",
    "admin_import",
    "admin_inspect",
    "admin_metrics",
    "admin_reserve",
    "admin_unreserve",
    # Not a pool's: the record of which pool owns each thread, under a key prefix.
    "owners",
)

# Scripts that run on a key of their own, not a pool's meta: no prelude (it names pool keys).
_STANDALONE = frozenset({"owners"})

# Scripts that also need stats.lua's reply: its body becomes the function stats_reply(), so a
# status snapshot can never count differently from stats().
_WITH_STATS = frozenset({"admin_inspect", "admin_metrics"})


@cache
def source(name: str) -> str:
    """The full source of script ``name``: the shared prelude, then the script itself."""
    if name not in NAMES:
        raise KeyError(f"no script named {name!r}")
    here = resources.files(__name__)
    common = here.joinpath("_common.lua").read_text(encoding="utf-8")
    body = here.joinpath(f"{name}.lua").read_text(encoding="utf-8")
    if name in _STANDALONE:
        return body
    if name in _WITH_STATS:
        stats = here.joinpath("stats.lua").read_text(encoding="utf-8")
        body = f"local function stats_reply()\n{stats}\nend\n{body}"
    return f"{prelude_for(common, body)}\n-- ==== {name}.lua ====\n{body}"


def prelude_for(common: str, body: str) -> str:
    """``common`` with only the helpers that ``body`` uses, directly or through each other.

    Redis runs the whole script on every call, and defining a closure costs time there too: the
    full prelude added about 8 us to each lease operation, more than all its Redis commands."""
    starts = [m.start() for m in _HELPER.finditer(common)]
    head = common[: starts[0]] if starts else common
    helpers = {
        match.group(1): common[begin:end]
        for begin, end in zip(starts, [*starts[1:], len(common)], strict=True)
        if (match := _HELPER.match(common, begin)) is not None
    }
    needed: set[str] = set()
    frontier = [body, head]
    while frontier:
        text = frontier.pop()
        for helper, code in helpers.items():
            if helper not in needed and re.search(rf"\b{helper}\(", text):
                needed.add(helper)
                frontier.append(code)
    return head + "".join(code for helper, code in helpers.items() if helper in needed)


def ms(seconds: float) -> int:
    """Seconds as the whole milliseconds the scripts take (Redis time is kept in ms)."""
    return max(0, round(seconds * 1000))
