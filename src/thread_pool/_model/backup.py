"""The backup file of ``export``/``import``: what it holds and how it is checked. No I/O here.

The upstream API cannot list threads, so the registry in Redis is the only record of which
threads a pool owns. A backup copies every key of each pool verbatim (by type, values as text),
so a round trip through export and import is lossless for whatever the pool model holds.

An import writes nothing from a file that fails here: every pool of it is checked whole (types,
shapes, numbers, and that each thread is in exactly one state) before the first write, and the
import script checks the same again in Redis before it writes (``admin_import.lua``).
"""

from __future__ import annotations

import math
import re
import reprlib
import time
from typing import Any

from thread_pool._model.limits import (
    BACKUP_CLOCK_SKEW,
    FENCE_LIMIT,
    FENCES_PER_MS,
    MAX_BACKUP_AGE,
    MAX_BACKUP_ITEMS,
    MAX_LOG_FIELDS,
    MAX_SECONDS,
    MAX_SIZE,
)
from thread_pool._model.validation import int_text, is_thread_id, score_text, validate_key
from thread_pool.errors import InvalidBackup, InvalidPoolKey

FORMAT = "thread-pool-backup"
VERSION = 1

SCHEMA = {
    "meta": "hash",
    "threads": "hash",
    "idle": "zset",
    "leases": "zset",
    "holds": "hash",
    "settling": "zset",
    "waiters": "list",
    "reserved": "zset",
    "retired": "list",
    "claims": "hash",
    "inflight": "hash",
    "log": "stream",
    "logged": "hash",
    "cursors": "hash",
}
"""Each key of a pool (after its base, as in ``keys.py``) and its Redis type."""

TYPES = frozenset(SCHEMA.values())

SCRIPT_LIMITS = "|".join(
    str(round(n))
    for n in (
        FENCE_LIMIT,
        MAX_BACKUP_AGE * 1000,
        BACKUP_CLOCK_SKEW * 1000,
        FENCES_PER_MS,
        MAX_SIZE,
        MAX_SECONDS * 1000,
        MAX_LOG_FIELDS,
    )
)
"""The limits admin_import.lua checks a backup against again, in the order it reads them."""
_META_FIELD = re.compile(r"[a-z][a-z_]{0,63}")
_STREAM_ID = re.compile(r"(0|[1-9][0-9]{0,15})-(0|[1-9][0-9]{0,15})")
# Set only on a pool found lost, which export refuses to back up: a file with them is forged.
_LOST_FIELDS = ("state_lost", "lost_epoch")


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


def pool_threads(entry: dict[str, Any]) -> list[str]:
    """Every thread a checked pool entry owns: its registered threads, then its retired ones."""
    keys = {k["name"]: k["data"] for k in entry["keys"]}
    return list(dict.fromkeys([*keys.get("threads", {}), *keys.get("retired", [])]))


def check_document(
    doc: Any, known_names: set[str], *, now: float | None = None, recover: bool = True
) -> list[dict[str, Any]]:
    """The pool entries of a backup file, after checking all of it; ``InvalidBackup`` naming
    the first problem otherwise. ``now`` (default: this host's clock) judges ``exported_at``;
    ``recover``: the import raises fences (see admin_import.lua), which must stay in range."""
    if set(SCHEMA) != known_names:  # the model and this file must name the same keys
        raise InvalidBackup("this version cannot read backups: its key model changed")
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise InvalidBackup(f"not a {FORMAT} file")
    if doc.get("version") != VERSION:
        raise InvalidBackup(f"backup version {_short(doc.get('version'))} is not {VERSION}")
    unknown = set(doc) - {"format", "version", "key_prefix", "pools"}
    if unknown:
        raise InvalidBackup(f"backup has unknown fields: {_short(sorted(unknown))}")
    if not isinstance(doc.get("key_prefix", ""), str):
        raise InvalidBackup("backup key_prefix is not text")
    pools = doc.get("pools")
    if not isinstance(pools, list):
        raise InvalidBackup("backup has no list of pools")
    clock = time.time() if now is None else now
    owners: dict[str, str] = {}
    seen: set[str] = set()
    for entry in pools:
        key = _check_pool(entry, clock, recover)
        if key in seen:
            raise InvalidBackup(f"backup holds pool {key!r} twice")
        seen.add(key)
        for thread in pool_threads(entry):
            if owners.setdefault(thread, key) != key:
                raise InvalidBackup(
                    f"thread {thread!r} is in pools {owners[thread]!r} and {key!r} of the backup"
                )
    return pools


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother, _REPR.maxlist, _REPR.maxdict = 3, 40, 40, 4, 4


def _short(value: Any) -> str:
    """A value for a message: its repr, cut short and shallow (a file may hold megabytes, or
    lists nested thousands deep)."""
    return _REPR.repr(value)


def _check_exported_at(key: str, value: Any, now: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidBackup(f"pool {key!r}: exported_at must be a number, not {_short(value)}")
    if not math.isfinite(value):
        raise InvalidBackup(f"pool {key!r}: exported_at must be finite, not {value}")
    if value > now + BACKUP_CLOCK_SKEW:
        raise InvalidBackup(f"pool {key!r}: exported_at {value} lies in the future")
    if value < now - MAX_BACKUP_AGE:
        raise InvalidBackup(
            f"pool {key!r}: exported_at {value} is more than {MAX_BACKUP_AGE / 86400:.0f} days "
            "ago (a wrong clock or a wrong file)"
        )


def _check_pool(entry: Any, now: float, recover: bool) -> str:
    """Check one pool entry whole; its key."""
    if not isinstance(entry, dict):
        raise InvalidBackup("backup pool entry is not an object")
    try:
        key = validate_key(entry.get("key"))
    except InvalidPoolKey as exc:
        raise InvalidBackup(f"backup pool entry: {exc}") from None
    unknown = set(entry) - {"key", "exported_at", "keys"}
    if unknown:
        raise InvalidBackup(f"pool {key!r}: unknown fields {_short(sorted(unknown))}")
    if "exported_at" not in entry:
        raise InvalidBackup(f"pool {key!r}: exported_at is missing")
    _check_exported_at(key, entry["exported_at"], now)
    keys = entry.get("keys")
    if not isinstance(keys, list):
        raise InvalidBackup(f"pool {key!r}: keys is not a list")
    data: dict[str, Any] = {}
    for k in keys:
        if not isinstance(k, dict) or set(k) != {"name", "type", "data"}:
            raise InvalidBackup(f"pool {key!r}: key entry {_short(k)} is not name, type, data")
        name = k["name"]
        if not isinstance(name, str) or name not in SCHEMA:
            raise InvalidBackup(f"pool {key!r}: unknown key {_short(name)} in backup")
        if name in data:
            raise InvalidBackup(f"pool {key!r}: key {name!r} appears twice")
        if k["type"] != SCHEMA[name]:
            raise InvalidBackup(
                f"pool {key!r}: key {name!r} has bad type {_short(k['type'])} "
                f"(a {SCHEMA[name]} expected)"
            )
        data[name] = _shape(key, name, SCHEMA[name], k["data"])
    if "meta" not in data:
        raise InvalidBackup(f"pool {key!r}: backup has no meta")
    _Pool(key, data).check()
    if recover:
        # What the import script will add (by Redis's clock, which this one approximates).
        raise_by = FENCES_PER_MS * max(round((now - entry["exported_at"]) * 1000), 1)
        for thread, fence in data.get("threads", {}).items():
            if int(fence) + raise_by >= FENCE_LIMIT:
                raise InvalidBackup(
                    f"pool {key!r}: the fence of {thread!r} would pass the limit (2^52) "
                    "after the recovery's raise"
                )
    return key


def _text(key: str, name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidBackup(f"pool {key!r}: key {name!r} holds a value that is not text")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidBackup(f"pool {key!r}: key {name!r} holds text that is not UTF-8") from None
    return value


def _shape(key: str, name: str, kind: str, data: Any) -> Any:
    """``data`` of a key of type ``kind`` in its exported shape, every value text: a hash as
    {field: value}; members and scores as [member, score] pairs; a stream as [id, [field,
    value, ...]] entries; a list as its items."""
    where = f"pool {key!r}: key {name!r}"
    expected: type[Any] = dict if kind == "hash" else list
    if not isinstance(data, expected):
        raise InvalidBackup(f"{where} is not a {kind} ({expected.__name__} expected)")
    if len(data) > MAX_BACKUP_ITEMS:
        raise InvalidBackup(f"{where} holds {len(data)} items; at most {MAX_BACKUP_ITEMS}")
    if kind == "hash":
        for field, value in data.items():
            _text(key, name, field)
            _text(key, name, value)
    elif kind == "zset":
        for pair in data:
            if not isinstance(pair, list) or len(pair) != 2:
                raise InvalidBackup(f"{where}: {_short(pair)} is not a [member, score] pair")
            _text(key, name, pair[0])
            _text(key, name, pair[1])
    elif kind == "stream":
        for item in data:
            if not isinstance(item, list) or len(item) != 2 or not isinstance(item[1], list):
                raise InvalidBackup(f"{where}: {_short(item)} is not an [id, fields] entry")
            _text(key, name, item[0])
            if not item[1] or len(item[1]) % 2 or len(item[1]) > MAX_LOG_FIELDS:
                raise InvalidBackup(
                    f"{where}: entry {_short(item[0])} has {len(item[1])} field values "
                    f"(an even count from 2 to {MAX_LOG_FIELDS} expected)"
                )
            for value in item[1]:
                _text(key, name, value)
    else:
        for value in data:
            _text(key, name, value)
    return data


class _Pool:
    """The checks of one pool's values and of how its keys agree."""

    def __init__(self, key: str, data: dict[str, Any]) -> None:
        self.key = key
        self.data = data

    def fail(self, what: str) -> InvalidBackup:
        return InvalidBackup(f"pool {self.key!r}: {what}")

    def number(self, name: str, label: str, value: str, below: int = 2**53) -> int:
        number = int_text(value, below)
        if number is None:
            raise self.fail(
                f"{name}: {label} must be an integer below {below}, not {_short(value)}"
            )
        return number

    def members(self, name: str, scores: str) -> list[str]:
        """The members of zset ``name``, unique; scores checked as ``int`` or ``score``."""
        out: list[str] = []
        for member, score in self.data.get(name, []):
            if scores == "int":
                self.number(name, f"score of {member!r}", score)
            elif score_text(score) is None:
                raise self.fail(f"{name}: score of {_short(member)} is not a finite number")
            out.append(member)
        if len(set(out)) != len(out):
            raise self.fail(f"{name} lists a member twice")
        return out

    def check(self) -> None:
        self.meta()
        threads = self.data.get("threads", {})
        for thread, fence in threads.items():
            if not is_thread_id(thread):
                raise self.fail(f"threads: {_short(thread)} is not a thread id")
            self.number("threads", f"fence of {thread!r}", fence, FENCE_LIMIT)
        states: dict[str, str] = {}
        for name, scores in (("idle", "score"), ("leases", "int"), ("settling", "int")):
            for thread in self.members(name, scores):
                if thread not in threads:
                    raise self.fail(f"{name}: {_short(thread)} is not a thread of the pool")
                if thread in states:
                    raise self.fail(f"thread {thread!r} is both in {states[thread]} and {name}")
                states[thread] = name
        stateless = [t for t in threads if t not in states]
        if stateless:
            raise self.fail(f"thread {stateless[0]!r} is neither idle, leased nor settling")
        self.leases(set(self.members("leases", "int")))
        claims = self.data.get("claims", {})
        settling = set(self.members("settling", "int"))
        if any(thread not in settling or not token for thread, token in claims.items()):
            raise self.fail("claims: a claim on a thread that is not settling")
        self.members("reserved", "int")
        for entry in self.data.get("waiters", []):
            parts = entry.split("|", 2)
            if len(parts) != 3 or not parts[0]:
                raise self.fail(f"waiters: {_short(entry)} is not ticket|deadline|holder")
            self.number("waiters", "a deadline", parts[1])
        for thread in self.data.get("retired", []):
            if not is_thread_id(thread):
                raise self.fail(f"retired: {_short(thread)} is not a thread id")
            if thread in threads:
                raise self.fail(f"thread {thread!r} is both in the pool and retired")
        for thread, record in self.data.get("inflight", {}).items():
            self.number("inflight", f"fence of {thread!r}", record.split("|", 1)[0])
            if "|" not in record:
                raise self.fail(f"inflight: {_short(record)} is not fence|id")
        self.log()

    def meta(self) -> None:
        meta = self.data["meta"]
        for field, value in meta.items():
            if not _META_FIELD.fullmatch(field):
                raise self.fail(f"meta: {_short(field)} is not a field name")
            if field in _LOST_FIELDS:
                raise self.fail("meta marks the pool lost; a lost pool cannot be backed up")
            self.number("meta", field, value)
        for field in ("min_size", "max_size", "ttl_ms"):
            if field not in meta:
                raise self.fail(f"meta has no {field}")
        low, high = int(meta["min_size"]), int(meta["max_size"])
        if not 1 <= high <= MAX_SIZE or low > high:
            raise self.fail(f"meta: sizes {low}..{high} are not 0 <= min <= max <= {MAX_SIZE}")
        if not 0 < int(meta["ttl_ms"]) <= MAX_SECONDS * 1000:
            raise self.fail(f"meta: ttl_ms {meta['ttl_ms']} is out of range")

    def leases(self, leased: set[str]) -> None:
        holds = self.data.get("holds", {})
        if set(holds) != leased:
            raise self.fail("holds and leases do not name the same threads")
        for thread, hold in holds.items():
            parts = hold.split("|", 3)
            if len(parts) != 4 or not parts[0]:
                raise self.fail(f"holds: {_short(hold)} is not token|fence|acquired|holder")
            self.number("holds", f"fence of {thread!r}", parts[1], FENCE_LIMIT)
            self.number("holds", f"acquired time of {thread!r}", parts[2])

    def log(self) -> None:
        last = (0, 0)
        for entry_id, _fields in self.data.get("log", []):
            match = _STREAM_ID.fullmatch(entry_id)
            if match is None:
                raise self.fail(f"log: {_short(entry_id)} is not a stream id")
            here = (int(match[1]), int(match[2]))
            if here <= last:
                raise self.fail(f"log: id {entry_id} does not follow {last[0]}-{last[1]}")
            last = here
        for name in ("logged", "cursors"):
            for field, seq in self.data.get(name, {}).items():
                self.number(name, f"seq of {_short(field)}", seq)
