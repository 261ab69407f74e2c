"""The Lua scripts that change a pool atomically (one ``.lua`` file each, see ``_common.lua``),
as scripts (``source``) and as one Redis Functions library of them all (``library``)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
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

# Scripts that only read: their functions carry the flag ``no-writes`` (Redis then runs them under
# maxmemory too, and would on a replica).
READ_ONLY = frozenset({"admin_export", "admin_inspect", "admin_metrics", "log_missing", "stats"})

# Scripts that give back or keep what is already held: their functions carry ``allow-oom``, so a
# Redis over ``maxmemory`` (noeviction) still lets leases be renewed, released, abandoned and
# reaped, and pools drained and deleted, as the scripts did (a script is refused only at a
# command that can grow memory before its first write; a function without the flag not at all).
# The rest (a new lease, growth, the log) is refused there, which is what a full Redis means.
FREEING = frozenset(
    {
        "abandon",
        "admin_delete",
        "admin_drain",
        "admin_unreserve",
        "reap",
        "release",
        "renew",
        "settled",
        "take_wait",
        "wait_alive",
    }
)

# Where _common.lua's head turns from declarations to what each call sets.
_PER_CALL = "-- ==== per call ====\n"

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


@dataclass(frozen=True)
class Library:
    """Every script as a function of one Redis Functions library (Redis 7+, Valkey)."""

    name: str
    """``thread_pool_<hash>``: the hash is of the library's code, so two versions of the library
    (a fleet in a rolling upgrade) are two libraries side by side, neither replacing the other."""
    code: str
    """What ``FUNCTION LOAD`` takes."""
    functions: dict[str, str]
    """Script name -> its function's name (``tp_<hash>_<script>``)."""


@cache
def library() -> Library:
    """The library of every script. The helpers of ``_common.lua`` are defined once, when the
    library is loaded, not on every call as in a script; each function sets the pool's key names
    and NOW (library-level locals the helpers read) and runs its script's body."""
    here = resources.files(__name__)
    common = here.joinpath("_common.lua").read_text(encoding="utf-8")
    head, _, per_call = common[: _helpers_start(common)].partition(_PER_CALL)
    parts = [
        "#!lua name=thread_pool_@@\n",
        "-- The arguments of the function being called (a function may not set globals).\n",
        "local KEYS, ARGV\n",
        head,
        "local function bind(keys, args)\n  KEYS, ARGV = keys, args\n",
        per_call,
        "end\n",
        common[_helpers_start(common) :],
        "local function stats_reply()\n",
        here.joinpath("stats.lua").read_text(encoding="utf-8"),
        "end\n",
    ]
    for name in NAMES:
        body = here.joinpath(f"{name}.lua").read_text(encoding="utf-8")
        if name == "stats":
            body = "return stats_reply()\n"
        enter = "KEYS, ARGV = keys, args" if name in _STANDALONE else "bind(keys, args)"
        flags = (
            ", flags = {'no-writes'}"
            if name in READ_ONLY
            else ", flags = {'allow-oom'}"
            if name in FREEING
            else ""
        )
        parts.append(
            f"-- ==== {name}.lua ====\nredis.register_function{{function_name = 'tp_@@_{name}'"
            f"{flags}, callback = function(keys, args)\n{enter}\n{body}end}}\n"
        )
    template = "".join(parts)
    digest = hashlib.sha1(template.encode()).hexdigest()[:8]
    return Library(
        name=f"thread_pool_{digest}",
        code=template.replace("@@", digest),
        functions={name: f"tp_{digest}_{name}" for name in NAMES},
    )


def _helpers_start(common: str) -> int:
    match = _HELPER.search(common)
    return match.start() if match else len(common)


def ms(seconds: float) -> int:
    """Seconds as the whole milliseconds the scripts take (Redis time is kept in ms)."""
    return max(0, round(seconds * 1000))
