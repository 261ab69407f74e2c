"""The /_emulator routes that change the emulator (config, reset): the API key when one is set,
JSON bodies only, with nothing changed when refused."""

from __future__ import annotations

import http.client
import json
import urllib.parse
from typing import Any

import pytest

from tests.emulator import rawhttp
from thread_pool.emulator import EmulatorServer

KEY = "sk-control-secret-0001"
ROUTES = ("config", "reset")
JSON = {"content-type": "application/json"}


def send(
    server: EmulatorServer, method: str, path: str, body: bytes, headers: dict[str, str]
) -> tuple[int, Any]:
    """One request with exactly ``headers`` (urllib would add a form content-type of its own)."""
    url = urllib.parse.urlsplit(server.root)
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=10)
    try:
        connection.request(method, path, body, headers)
        answer = connection.getresponse()
        return answer.status, json.loads(answer.read())
    finally:
        connection.close()


def control(
    server: EmulatorServer, route: str, body: bytes = b"{}", headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    """``POST /_emulator/<route>``, by default with a JSON body and no key."""
    return send(server, "POST", f"/_emulator/{route}", body, JSON if headers is None else headers)


def unchanged_since(server: EmulatorServer, config: dict[str, Any], thread_id: str) -> None:
    """The configuration is ``config``, the thread is still there, and the API still answers."""
    assert server.emulator.config.to_dict() == config
    assert thread_id in server.emulator.objects()["threads"]
    key = {"authorization": f"Bearer {server.api_key}"}
    assert send(server, "GET", f"/v1/threads/{thread_id}", b"", key)[0] == 200


def a_thread(server: EmulatorServer) -> str:
    """A thread to see whether a reset happened."""
    return str(server.emulator.threads.create_thread({})["id"])


@pytest.mark.thread_pool_emulator(api_key=KEY)
@pytest.mark.parametrize("route", ROUTES)
def test_changes_need_the_key_when_one_is_set(
    thread_pool_emulator: EmulatorServer, route: str
) -> None:
    server = thread_pool_emulator
    thread_id = a_thread(server)
    config = server.emulator.config.to_dict()
    for headers in ({}, {"authorization": "Bearer sk-wrong-key-123456"}):
        # The same check as /v1, so the same 401 body.
        api = send(server, "POST", "/v1/threads", b"{}", {**JSON, **headers})
        refused = control(server, route, b'{"latency": 3}', {**JSON, **headers})
        assert refused == api
        assert refused[0] == 401
        unchanged_since(server, config, thread_id)
    status, answer = control(
        server, route, b'{"seed": 5}', {**JSON, "authorization": f"Bearer {KEY}"}
    )
    assert (status, answer["seed"]) == (200, 5)
    # Reading stays open, and the server's own client carries the key.
    assert rawhttp.request("GET", f"{server.root}/_emulator/config").status == 200
    assert rawhttp.request("GET", f"{server.root}/_emulator/stats").status == 200
    assert server.admin.configure(seed=6)["seed"] == 6
    assert server.admin.reset(api_key=KEY)["api_key"] == "***"


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b'{"latency": 3}', {"content-type": "text/plain"}),
        (b'{"latency": 3}', {"content-type": "text/plain;charset=UTF-8"}),
        (b"latency=3", {"content-type": "application/x-www-form-urlencoded"}),
        (b"--x--\r\n", {"content-type": "multipart/form-data; boundary=x"}),
        (b'{"latency": 3}', {}),
        (b"", {}),  # a bodiless cross-site POST would still reset everything
    ],
)
def test_changes_take_json_bodies_only(
    thread_pool_emulator: EmulatorServer, route: str, body: bytes, headers: dict[str, str]
) -> None:
    server = thread_pool_emulator
    thread_id = a_thread(server)
    config = server.emulator.config.to_dict()
    status, answer = control(server, route, body, headers)
    assert status == 415
    assert "application/json" in answer["error"]
    unchanged_since(server, config, thread_id)


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "Application/JSON"])
def test_json_with_parameters_or_in_capitals_is_json(
    thread_pool_emulator: EmulatorServer, content_type: str
) -> None:
    status, answer = control(
        thread_pool_emulator, "config", b'{"seed": 9}', {"content-type": content_type}
    )
    assert (status, answer["seed"]) == (200, 9)
