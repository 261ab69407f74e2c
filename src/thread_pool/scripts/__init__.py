"""The Lua scripts that change a pool atomically (one ``.lua`` file each, see ``_common.lua``)."""

from __future__ import annotations

from functools import cache
from importlib import resources

NAMES = (
    "abandon",
    "acquire",
    "add",
    "check",
    "configure",
    "count",
    "inflight",
    "reap",
    "register",
    "release",
    "renew",
    "settled",
    "stats",
    "take_wait",
)


@cache
def source(name: str) -> str:
    """The full source of script ``name``: the shared prelude, then the script itself."""
    if name not in NAMES:
        raise KeyError(f"no script named {name!r}")
    here = resources.files(__name__)
    common = here.joinpath("_common.lua").read_text(encoding="utf-8")
    body = here.joinpath(f"{name}.lua").read_text(encoding="utf-8")
    return f"{common}\n-- ==== {name}.lua ====\n{body}"
