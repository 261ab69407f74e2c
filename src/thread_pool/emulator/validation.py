"""Request validation with the upstream's limits and error wording (see errors.py)."""

from __future__ import annotations

from typing import Any

from thread_pool.emulator import errors

MAX_CONTENT = 256_000
MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512
MAX_ITEMS = 20
MESSAGE_ROLES = ("user", "assistant")
CONVERSATION_ROLES = ("user", "assistant", "system", "developer")

Json = dict[str, Any]


def string(body: Json, name: str, *, param: str | None = None) -> str | None:
    """An optional string field (absent or null → None)."""
    if body.get(name) is None:
        return None
    return required_string(body, name, param=param)


def required_string(body: Json, name: str, *, param: str | None = None) -> str:
    """A required string field; ``param`` names it in errors (default ``name``)."""
    value = body.get(name)
    if value is None:
        raise errors.missing(param or name)
    if not isinstance(value, str):
        raise errors.wrong_type(param or name, "a string", value)
    return value


def content_string(body: Json, name: str, param: str) -> str:
    """A required string within the 256,000-character content limit (a text part, a tool
    output)."""
    return _within_content_limit(required_string(body, name, param=param), param)


def _within_content_limit(text: str, param: str) -> str:
    if len(text) > MAX_CONTENT:
        raise errors.string_too_long(param, MAX_CONTENT, len(text))
    return text


def boolean(body: Json, name: str) -> bool:
    """An optional boolean field (absent → False)."""
    value = body.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise errors.wrong_type(name, "a boolean", value)
    return value


def array(body: Json, name: str, *, param: str | None = None) -> list[Any]:
    """An optional array field (absent → empty)."""
    value = body.get(name)
    if value is None:
        return []
    if not isinstance(value, list):
        raise errors.wrong_type(param or name, "an array", value)
    return value


def metadata(body: Json, param: str = "metadata") -> dict[str, str]:
    """Validated metadata: ≤ 16 pairs, keys ≤ 64 chars, string values ≤ 512 chars."""
    value = body.get("metadata")
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise errors.wrong_type(param, "an object", value)
    if len(value) > MAX_METADATA_PAIRS:
        raise errors.too_many_properties(param, MAX_METADATA_PAIRS, len(value))
    for key, item in value.items():
        if len(key) > MAX_METADATA_KEY:
            raise errors.key_too_long(param, MAX_METADATA_KEY, key)
        if not isinstance(item, str):
            raise errors.wrong_type(f"{param}.{key}", "a string", item)
        if len(item) > MAX_METADATA_VALUE:
            raise errors.string_too_long(f"{param}.{key}", MAX_METADATA_VALUE, len(item))
    return dict(value)


def message_text(content: object, param: str, text_types: tuple[str, ...]) -> str:
    """The text of a message ``content``: a string, or an array of text parts (joined by
    newlines). Enforces the 256,000-character limit on each string."""
    if isinstance(content, str):
        return _within_content_limit(content, param)
    if not isinstance(content, list):
        raise errors.wrong_type(param, "one of a string or array of objects", content)
    texts: list[str] = []
    for index, part in enumerate(content):
        where = f"{param}[{index}]"
        if not isinstance(part, dict):
            raise errors.wrong_type(where, "an object", part)
        kind = part.get("type")
        if kind not in text_types:
            raise errors.invalid_value(f"{where}.type", kind, text_types)
        texts.append(content_string(part, "text", f"{where}.text"))
    return "\n".join(texts)


def role(value: object, param: str, allowed: tuple[str, ...]) -> str:
    """A message role among ``allowed``."""
    if value is None:
        raise errors.missing(param)
    if not isinstance(value, str) or value not in allowed:
        raise errors.invalid_value(param, value, allowed)
    return value


def limit(query: dict[str, str], default: int = 20) -> int:
    """The ``limit`` query parameter of a list endpoint (1..100)."""
    raw = query.get("limit")
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise errors.wrong_type("limit", "an integer", raw) from None
    if not 1 <= value <= 100:
        raise errors.integer_out_of_range("limit", value, 1, 100)
    return value


def stream_query(query: dict[str, str]) -> tuple[bool, int]:
    """``stream`` (``true``/``false``) and ``starting_after`` (a sequence number, ``-1`` when
    absent) of ``GET /responses/{id}``."""
    stream = query.get("stream", "false").lower()
    if stream not in ("true", "false"):
        raise errors.wrong_type("stream", "a boolean", stream)
    raw = query.get("starting_after")
    if raw is None:
        return stream == "true", -1
    try:
        after = int(raw)
    except ValueError:
        raise errors.wrong_type("starting_after", "an integer", raw) from None
    if after < 0:
        raise errors.integer_out_of_range("starting_after", after, 0, 2**31 - 1)
    return stream == "true", after


def order(query: dict[str, str], default: str = "desc") -> str:
    """The ``order`` query parameter (``asc``/``desc``)."""
    value = query.get("order", default)
    if value not in ("asc", "desc"):
        raise errors.invalid_value("order", value, ("asc", "desc"))
    return value


def function_names(tools: list[Any], param: str = "tools") -> list[str]:
    """The names of the function tools in a ``tools`` array (Assistants or Responses shape)."""
    names: list[str] = []
    for index, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise errors.wrong_type(f"{param}[{index}]", "an object", tool)
        if tool.get("type") != "function":
            continue
        # Assistants nest the definition under "function"; Responses put "name" at the top.
        nested = tool.get("function")
        spec: dict[str, Any] = nested if isinstance(nested, dict) else tool
        name = spec.get("name")
        if not isinstance(name, str):
            raise errors.missing(f"{param}[{index}].name")
        names.append(name)
    return names
