"""A small client for the ``/_emulator`` introspection API (stdlib only, synchronous)."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, cast


class IntrospectionClient:
    """Reads the emulator's counters and changes its behaviour over HTTP.

    ``root`` is the server root (``http://127.0.0.1:8089``), not the ``/v1`` base URL;
    ``api_key`` is the emulator's key, if it was given one (changing it takes the key).
    """

    def __init__(self, root: str, timeout: float = 10.0, api_key: str | None = None) -> None:
        self.root = root.rstrip("/")
        self.timeout = timeout
        self.api_key = api_key

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {"content-type": "application/json"}
        if self.api_key is not None:
            headers["authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(
            f"{self.root}/_emulator/{path}", data=data, method=method, headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                return json.loads(answer.read())
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")
            raise ValueError(f"emulator refused {method} {path}: {detail}") from None

    def health(self) -> bool:
        """Whether the server answers."""
        return bool(self._call("GET", "health")["ok"])

    def stats(self) -> dict[str, Any]:
        """Counters: ``requests`` per endpoint, ``statuses``, ``lock_errors`` (``run``,
        ``message``, ``conversation``, ``total``), ``faults``, ``peak_in_flight``,
        ``peak_active_per_owner``, ``objects``, ``peak_concurrent_runs``..."""
        return cast(dict[str, Any], self._call("GET", "stats"))

    def peaks(self) -> dict[str, int]:
        """Peak number of active runs (responses) per thread (conversation) id."""
        return cast(dict[str, int], self._call("GET", "peaks")["peaks"])

    def writes(self, owner_id: str) -> list[dict[str, Any]]:
        """Every write on a thread or conversation, in order: ``seq``, ``at``, ``op``,
        ``object_id``, ``metadata``."""
        path = "writes/" + urllib.parse.quote(owner_id, safe="")
        return cast(list[dict[str, Any]], self._call("GET", path)["writes"])

    def all_writes(self) -> dict[str, list[dict[str, Any]]]:
        """Every thread's and conversation's write log, by id."""
        return cast(dict[str, list[dict[str, Any]]], self._call("GET", "writes")["writes"])

    def objects(self) -> dict[str, dict[str, dict[str, str]]]:
        """Every thread and conversation not deleted, with its metadata, by kind and id."""
        return cast(dict[str, dict[str, dict[str, str]]], self._call("GET", "objects"))

    def config(self) -> dict[str, Any]:
        """The configuration in force."""
        return cast(dict[str, Any], self._call("GET", "config"))

    def configure(self, **changes: Any) -> dict[str, Any]:
        """Change the configuration (``latency=0.1``, ``fault_rate=0.2``, ``http_429=0.5``...)."""
        return cast(dict[str, Any], self._call("POST", "config", changes))

    def reset(self, **changes: Any) -> dict[str, Any]:
        """Forget all state and counters; back to the start configuration plus ``changes``."""
        return cast(dict[str, Any], self._call("POST", "reset", changes))
