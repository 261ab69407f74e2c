"""Plain HTTP to the emulator (stdlib), for what the SDK cannot send: no key, bad JSON."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any


@dataclass
class Answer:
    """Status, headers (lowercase names) and JSON body of one response."""

    status: int
    headers: dict[str, str]
    body: Any


def request(
    method: str,
    url: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    """Send one request; HTTP errors are answers too."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as answer:
            raw, status, head = answer.read(), answer.status, answer.headers
    except urllib.error.HTTPError as error:
        raw, status, head = error.read(), error.code, error.headers
    return Answer(status, {k.lower(): v for k, v in head.items()}, json.loads(raw))
