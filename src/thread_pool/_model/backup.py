"""The backup file of ``export``/``import``: what it holds and how it is checked. No I/O here.

The upstream API cannot list threads, so the registry in Redis is the only record of which
threads a pool owns. A backup copies every key of each pool verbatim (by type, values as text),
so a round trip through export and import is lossless for whatever the pool model holds.
"""

from __future__ import annotations

from typing import Any

from thread_pool._model.validation import validate_key
from thread_pool.errors import InvalidArgument

FORMAT = "thread-pool-backup"
VERSION = 1
TYPES = frozenset({"hash", "zset", "list", "set", "string", "stream"})


def flat_keys(entry: dict[str, Any]) -> list[list[Any]]:
    """A pool entry in the flat form ``admin_import`` takes."""
    out: list[list[Any]] = []
    for k in entry["keys"]:
        kind, data = k["type"], k["data"]
        if kind == "hash":
            flat: Any = [x for pair in data.items() for x in pair]
        elif kind == "zset":
            flat = [x for pair in data for x in pair]
        elif kind == "string":
            flat = [data]
        else:
            flat = data
        out.append([k["name"], kind, flat])
    return out


def document(prefix: str, pools: list[dict[str, Any]]) -> dict[str, Any]:
    """The whole backup file."""
    return {"format": FORMAT, "version": VERSION, "key_prefix": prefix, "pools": pools}


def check_document(doc: Any, known_names: set[str]) -> list[dict[str, Any]]:
    """The pool entries of a backup file, after checking its shape; ``InvalidArgument`` naming
    the first problem otherwise (nothing is written from a file that fails here)."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise InvalidArgument(f"not a {FORMAT} file")
    if doc.get("version") != VERSION:
        raise InvalidArgument(f"backup version {doc.get('version')!r} is not {VERSION}")
    pools = doc.get("pools")
    if not isinstance(pools, list):
        raise InvalidArgument("backup has no list of pools")
    for entry in pools:
        if not isinstance(entry, dict):
            raise InvalidArgument("backup pool entry is not an object")
        key = validate_key(entry.get("key"))
        names = []
        for k in entry.get("keys", []):
            if not isinstance(k, dict) or k.get("name") not in known_names:
                raise InvalidArgument(f"pool {key!r}: unknown key {k!r} in backup")
            if k.get("type") not in TYPES:
                raise InvalidArgument(f"pool {key!r}: key {k['name']!r} has bad type")
            names.append(k["name"])
        if "meta" not in names:
            raise InvalidArgument(f"pool {key!r}: backup has no meta")
        _check_text(key, entry["keys"])
    return pools


def _check_text(key: str, keys: list[dict[str, Any]]) -> None:
    """Every value must be text, as it was exported (a number would lose digits in Lua)."""

    def walk(value: Any) -> bool:
        if isinstance(value, str):
            return True
        if isinstance(value, list):
            return all(walk(v) for v in value)
        if isinstance(value, dict):
            return all(isinstance(k, str) and walk(v) for k, v in value.items())
        return False

    for k in keys:
        if not walk(k["data"]):
            raise InvalidArgument(f"pool {key!r}: key {k['name']!r} holds a value that is not text")
