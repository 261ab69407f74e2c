"""Checks of what callers hand in (pool keys, thread ids, numbers, sizes, messages, metadata),
done before any write. No I/O here."""

from __future__ import annotations

import datetime
import difflib
import math
import re
from collections.abc import Collection, Iterable, Mapping
from typing import Any

import openai
import pydantic

from thread_pool._model.limits import (
    MAX_KEY_LENGTH,
    MAX_MESSAGE_CHARS,
    MAX_METADATA_KEY,
    MAX_METADATA_PAIRS,
    MAX_METADATA_VALUE,
    MAX_SECONDS,
    MAX_SIZE,
    MIN_SECONDS,
)
from thread_pool._model.turns import RESERVED_KEYS, ToolCall
from thread_pool.errors import InvalidArgument, InvalidPoolKey

ROLES = ("user", "assistant")
"""The roles upstream accepts for messages added to a thread (``additional_messages``)."""


# Letters, digits and a few separators people use in ids (doc:42, user@host, a/b). No braces (they
# would break the hash tag), no whitespace or control characters (they make logs lie).
_KEY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/+=-]*")
# Upstream ids are short ASCII tokens (thread_abc, conv_abc). ``|`` separates fields in lease
# records and mailbox messages, so it must never appear in one.
_THREAD_ID_RE = re.compile(r"[A-Za-z0-9_.:-]{1,128}")


def validate_key(key: object) -> str:
    """Return ``key`` if it is a valid pool key, else raise ``InvalidPoolKey``."""
    if not isinstance(key, str):
        raise InvalidPoolKey(f"pool key must be a string, not {type(key).__name__}")
    if not key:
        raise InvalidPoolKey("pool key must not be empty")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidPoolKey(
            f"pool key {key[:40]!r}... is {len(key)} characters long; at most {MAX_KEY_LENGTH}"
        )
    if not _KEY_RE.fullmatch(key):
        raise InvalidPoolKey(
            f"pool key {key!r} may hold only letters, digits and . _ : @ / + = - "
            "and must start with a letter or digit"
        )
    return key


def validate_keys(keys: object) -> list[str]:
    """Return ``keys`` (an iterable of pool keys, not one key) as a list if each is valid."""
    if isinstance(keys, str | bytes) or not isinstance(keys, Iterable):
        raise InvalidPoolKey(
            f"pool keys must be a list (or other iterable) of keys, not {type(keys).__name__}"
        )
    return [validate_key(k) for k in keys]


def validate_thread_id(thread_id: object) -> str:
    """Return ``thread_id`` if it looks like an upstream id, else raise ``InvalidArgument``."""
    if not isinstance(thread_id, str) or not _THREAD_ID_RE.fullmatch(thread_id):
        raise InvalidArgument(
            f"thread id {thread_id!r} must be 1-128 characters of letters, digits and . _ : -"
        )
    return thread_id


def validate_thread_ids(thread_ids: object) -> list[str]:
    """Return the distinct ids of ``thread_ids`` (an iterable of ids, not one id), in order, if
    each looks like an upstream id and they fit a pool, else raise ``InvalidArgument``. A lone
    string is refused: iterating it would register one thread per character."""
    if isinstance(thread_ids, str | bytes) or not isinstance(thread_ids, Iterable):
        raise InvalidArgument(
            f"thread_ids must be a list (or other iterable) of thread ids, not "
            f"{type(thread_ids).__name__}"
        )
    ids: dict[str, None] = {}
    for thread_id in thread_ids:
        ids[validate_thread_id(thread_id)] = None
        if len(ids) > MAX_SIZE:
            raise InvalidArgument(f"more than {MAX_SIZE} thread ids: no pool holds that many")
    return list(ids)


def check_ttl(name: str, value: float) -> float:
    """``check_positive``, and at least 1 ms: a shorter TTL would round to 0 ms, which the
    scripts read as "the pool's default"."""
    check_positive(name, value)
    if value < MIN_SECONDS:
        raise InvalidArgument(f"{name} must be at least {MIN_SECONDS}s (1 ms), not {value}")
    return value


def validate_params(
    params: Mapping[str, Any], accepted: Collection[str] | None, *, streaming: bool = False
) -> None:
    """Refuse what a turn cannot pass upstream: ``stream`` (``run`` waits for the whole turn;
    ``stream()`` streams), for a streamed turn ``background`` (a streamed response is always a
    background one, so it can be resumed and cancelled), and, when the backend says which names
    its request takes (``accepted``), any other name, with the closest one; and any value the
    request's JSON body could not carry."""
    if "stream" in params:
        raise InvalidArgument(
            "stream is not supported through run() (a turn waits for its run to end): use "
            "stream() to stream a turn (pool.stream(key, message) or lease.stream(message)); "
            "it takes no stream= argument"
        )
    if streaming and "background" in params:
        raise InvalidArgument(
            "stream() sends every response in the background (to resume and cancel it); it "
            "takes no background= argument"
        )
    for name, value in params.items():
        if accepted is not None and name not in accepted:
            close = difflib.get_close_matches(name, list(accepted), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise InvalidArgument(f"a turn got an unknown parameter {name!r}{hint}")
        if name not in _TRANSPORT_PARAMS:
            _check_json(name, value, 0)


# Options of the SDK's HTTP request itself, not of the JSON body (headers, query, a timeout
# that may be an httpx.Timeout): the SDK checks them.
_TRANSPORT_PARAMS = frozenset({"extra_headers", "extra_query", "timeout"})
# What the SDK's JSON encoder takes besides JSON's own types (it dumps models and dates), and
# its "leave this out" sentinels, which never reach the encoder.
_ENCODABLE = (pydantic.BaseModel, datetime.date, openai.NotGiven, openai.Omit)
_MAX_DEPTH = 64


def _check_json(where: str, value: object, depth: int) -> None:
    """Refuse what the SDK could not encode as the request's JSON body, before any lease: it
    would otherwise fail inside the SDK with a bare TypeError/ValueError/UnicodeEncodeError
    after the thread was leased."""
    if depth > _MAX_DEPTH:
        raise InvalidArgument(f"turn parameter {where} is nested deeper than {_MAX_DEPTH}")
    if value is None or isinstance(value, (bool, int, *_ENCODABLE)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidArgument(f"turn parameter {where} must be a finite number, not {value}")
        return
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidArgument(
                f"turn parameter {where} holds text that is not valid Unicode (a lone surrogate)"
            ) from None
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidArgument(
                    f"turn parameter {where} has a key of type {type(key).__name__}; "
                    "JSON keys are strings"
                )
            _check_json(f"{where}[{key!r:.40}]", key, depth + 1)
            _check_json(f"{where}[{key!r:.40}]", item, depth + 1)
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_json(f"{where}[{index}]", item, depth + 1)
        return
    raise InvalidArgument(
        f"turn parameter {where} must be JSON data (text, numbers, lists, mappings), "
        f"not {type(value).__name__}"
    )


def check_positive(
    name: str, value: float, *, allow_zero: bool = False, at_most: float = MAX_SECONDS
) -> float:
    """Return ``value`` if it is a finite number > 0 (or >= 0) and at most ``at_most``, else raise
    ``InvalidArgument``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgument(f"{name} must be a number, not {type(value).__name__}")
    if value != value or value in (float("inf"), float("-inf")):
        raise InvalidArgument(f"{name} must be finite, not {value}")
    if value < 0 or (value == 0 and not allow_zero):
        raise InvalidArgument(f"{name} must be {'>= 0' if allow_zero else '> 0'}, not {value}")
    if value > at_most:
        raise InvalidArgument(f"{name} must be at most {at_most:g}, not {value}")
    return value


def check_flag(name: str, value: object) -> bool:
    """Return ``value`` if it is a bool, else raise ``InvalidArgument`` (``"no"`` is truthy)."""
    if not isinstance(value, bool):
        raise InvalidArgument(f"{name} must be True or False, not {value!r:.40}")
    return value


def check_size(name: str, value: object, least: int = 0) -> int:
    """Return ``value`` if it is an integer from ``least`` to ``MAX_SIZE``, else raise."""
    if isinstance(value, bool) or not isinstance(value, int) or not least <= value <= MAX_SIZE:
        raise InvalidArgument(
            f"{name} must be an integer from {least} to {MAX_SIZE}, not {value!r}"
        )
    return value


def check_cap(name: str, value: object, least: int = 1) -> int | None:
    """Return a limit (merge, request) if it is None or an integer >= ``least``, else raise."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        what = "a positive integer" if least == 1 else f"an integer >= {least}"
        raise InvalidArgument(f"{name} must be {what} or None, not {value!r}")
    return value


def check_text(what: str, text: str) -> str:
    """Return ``text`` if it can be sent (UTF-8), else raise ``InvalidArgument``: a lone
    surrogate (from a bad decode, say) would fail deep in the SDK's JSON encoding otherwise."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidArgument(
            f"{what} is not valid text: {exc.reason} ({text[exc.start : exc.end]!r} at "
            f"position {exc.start})"
        ) from None
    return text


def validate_message(message: object) -> str:
    """Return ``message`` if upstream would accept it as a user message, else raise."""
    if not isinstance(message, str):
        raise InvalidArgument(f"message must be a string, not {type(message).__name__}")
    if not message.strip():
        raise InvalidArgument("message must not be empty")
    check_text("message", message)
    if len(message) > MAX_MESSAGE_CHARS:
        raise InvalidArgument(
            f"message is {len(message)} characters long; upstream accepts at most "
            f"{MAX_MESSAGE_CHARS}"
        )
    return message


def validate_metadata(metadata: Mapping[str, object] | None) -> dict[str, str]:
    """Return the caller's metadata if it fits upstream's limits next to the pool's own keys."""
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise InvalidArgument(f"metadata must be a mapping, not {type(metadata).__name__}")
    room = MAX_METADATA_PAIRS - len(RESERVED_KEYS)
    if len(metadata) > room:
        raise InvalidArgument(
            f"metadata has {len(metadata)} pairs; at most {room} (upstream allows "
            f"{MAX_METADATA_PAIRS} and the pool uses {len(RESERVED_KEYS)})"
        )
    out: dict[str, str] = {}
    for key, value in metadata.items():
        if not isinstance(key, str) or not key or len(key) > MAX_METADATA_KEY:
            raise InvalidArgument(f"metadata key {key!r} must be 1-{MAX_METADATA_KEY} characters")
        check_text("metadata key", key)
        if key in RESERVED_KEYS:
            raise InvalidArgument(f"metadata key {key!r} is reserved for the pool")
        if not isinstance(value, str) or len(value) > MAX_METADATA_VALUE:
            raise InvalidArgument(
                f"metadata value of {key!r} must be a string of at most {MAX_METADATA_VALUE} "
                "characters"
            )
        check_text(f"metadata value of {key!r}", value)
        out[key] = value
    return out


def validate_role(role: object) -> str:
    """Return ``role`` if upstream takes it for an added message, else raise."""
    if role not in ROLES:
        raise InvalidArgument(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    assert isinstance(role, str)
    return role


# A decimal integer as Redis and Lua keep it: digits only, exact in a Lua number (< 2^53).
_DIGITS_RE = re.compile(r"(0|[1-9][0-9]{0,15})")
_EXACT = 2**53
# A score as Redis writes one back: a plain decimal, maybe with a fraction and an exponent.
_SCORE_RE = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?")


def int_text(value: object, below: int = _EXACT) -> int | None:
    """The integer that text ``value`` spells in plain decimal (no sign, no exponent, no
    leading zeros) if it is below ``below``; None otherwise."""
    if not isinstance(value, str) or not _DIGITS_RE.fullmatch(value):
        return None
    number = int(value)
    return number if number < below else None


def score_text(value: object) -> float | None:
    """The finite number that text ``value`` spells as a sorted-set score; None otherwise."""
    if not isinstance(value, str) or len(value) > 32 or not _SCORE_RE.fullmatch(value):
        return None
    number = float(value)
    if number != number or number in (float("inf"), float("-inf")):
        return None
    return number


def is_thread_id(value: object) -> bool:
    """Whether ``value`` is a well-formed upstream thread id (see ``validate_thread_id``)."""
    return isinstance(value, str) and _THREAD_ID_RE.fullmatch(value) is not None


def validate_record(
    user: object, reply: object, run_id: object, record_id: object, tool_calls: object
) -> tuple[str, str, str, str | None, tuple[ToolCall, ...]]:
    """The arguments of ``lease.record`` (a turn made by the caller's own call), checked."""
    texts = []
    for name, value in (("user", user), ("reply", reply)):
        if not isinstance(value, str) or not value.strip():
            raise InvalidArgument(f"{name} must be a non-empty string, not {value!r:.80}")
        texts.append(check_text(name, value))
    if not isinstance(run_id, str):
        raise InvalidArgument(f"run_id must be a string, not {run_id!r:.80}")
    if record_id is not None and (not isinstance(record_id, str) or not record_id):
        raise InvalidArgument(f"record_id must be a non-empty string, not {record_id!r:.80}")
    if isinstance(tool_calls, str | bytes) or not isinstance(tool_calls, Iterable):
        raise InvalidArgument(f"tool_calls must be a list of ToolCall, not {tool_calls!r:.80}")
    calls = tuple(tool_calls)
    for call in calls:
        if not isinstance(call, ToolCall) or call.output is None:
            raise InvalidArgument(
                f"tool_calls must be answered ToolCall objects (with an output), not {call!r:.80}"
            )
    return texts[0], texts[1], check_text("run_id", run_id), record_id, calls
