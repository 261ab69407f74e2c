"""The /_emulator routes that change the emulator (config, reset): the API key when one is set,
JSON bodies only, and the command line's validation, with nothing changed when refused."""

from __future__ import annotations

import http.client
import json
import urllib.parse
from typing import Any

import pytest

from tests.support import rawhttp
from thread_pool.emulator import EmulatorServer
from thread_pool.emulator.__main__ import config_from_args, main, parse_args
from thread_pool.emulator.config import ConfigError

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


#: Refused changes as JSON text (NaN and Infinity are what Python's json module reads), and the
#: field each refusal must name.
REFUSED = [
    ('{"latency": "nan"}', "latency"),
    ('{"latency": NaN}', "latency"),
    ('{"latency": "inf"}', "latency"),
    ('{"latency": [0.1, Infinity]}', "latency"),
    ('{"latency": -1}', "latency"),
    ('{"latency": "0.1-x"}', "latency"),
    ('{"latency": true}', "latency"),
    ('{"latency": {"min": 1}}', "latency"),
    ('{"latency_min": 2, "latency_max": 1}', "latency_max"),
    ('{"latency_max": 1e300}', "latency_max"),
    ('{"retry_after": NaN}', "retry_after"),
    ('{"retry_after": 1e306}', "retry_after"),
    ('{"run_ttl": Infinity}', "run_ttl"),
    ('{"run_ttl": 0}', "run_ttl"),
    ('{"cancel_delay": -0.5}', "cancel_delay"),
    ('{"queued_fraction": 1.5}', "queued_fraction"),
    ('{"ignore_run_id": "yes"}', "ignore_run_id"),
    ('{"require_input": 1}', "require_input"),
    ('{"http_500": "0.5"}', "http_500"),
    ('{"http_503": null}', "http_503"),
    ('{"run_stuck": -0.1}', "run_stuck"),
    ('{"http_500": 0.6, "http_429": 0.6}', "http_500+http_503+http_429"),
    ('{"fault_rate": NaN}', "fault_rate"),
    ('{"fault_rate": "0.3"}', "fault_rate"),
    ('{"seed": 1.5}', "seed"),
    ('{"seed": "1"}', "seed"),
    ('{"poll_after_ms": -1}', "poll_after_ms"),
    ('{"poll_after_ms": 2.5}', "poll_after_ms"),
    ('{"api_key": 5}', "api_key"),
    ('{"api_key": ""}', "api_key"),
    ('{"stream_drop": 1.5}', "stream_drop"),
    ('{"stream_drop": NaN}', "stream_drop"),
    ('{"stream_drop": true}', "stream_drop"),
    ('{"stream_drop_after": -1}', "stream_drop_after"),
    ('{"stream_drop_after": 2.5}', "stream_drop_after"),
    ('{"stream_drop_after": "3"}', "stream_drop_after"),
]


@pytest.mark.parametrize(("change", "field"), REFUSED)
def test_a_refused_change_names_the_field_and_changes_nothing(
    thread_pool_emulator: EmulatorServer, change: str, field: str
) -> None:
    server = thread_pool_emulator
    thread_id = a_thread(server)
    config = server.emulator.config.to_dict()
    for route in ROUTES:
        status, answer = control(server, route, change.encode())
        assert (status, answer["field"]) == (400, field), answer
        assert answer["error"].startswith(f"{field} ")
        unchanged_since(server, config, thread_id)


#: The same refusals on the command line: (arguments, JSON change, field).
BOTH_WAYS = [
    (["--latency", "nan"], {"latency": "nan"}, "latency"),
    (["--latency", "inf"], {"latency": "inf"}, "latency"),
    (["--latency", "-1"], {"latency": "-1"}, "latency"),
    (["--latency", "0.8-0.2"], {"latency": "0.8-0.2"}, "latency_max"),
    (["--retry-after", "nan"], {"retry_after": float("nan")}, "retry_after"),
    (["--retry-after", "-1"], {"retry_after": -1.0}, "retry_after"),
    (["--run-ttl", "inf"], {"run_ttl": float("inf")}, "run_ttl"),
    (["--http-500", "2"], {"http_500": 2.0}, "http_500"),
    (["--run-failed", "nan"], {"run_failed": float("nan")}, "run_failed"),
    (["--fault-rate", "nan"], {"fault_rate": float("nan")}, "fault_rate"),
    (["--poll-after-ms", "-1"], {"poll_after_ms": -1}, "poll_after_ms"),
    (["--api-key", ""], {"api_key": ""}, "api_key"),
    (["--stream-drop", "nan"], {"stream_drop": float("nan")}, "stream_drop"),
    (["--stream-drop", "2"], {"stream_drop": 2.0}, "stream_drop"),
    (["--stream-drop-after", "-1"], {"stream_drop_after": -1}, "stream_drop_after"),
]


@pytest.mark.parametrize(("argv", "change", "field"), BOTH_WAYS)
def test_the_command_line_refuses_what_the_route_refuses(
    thread_pool_emulator: EmulatorServer, argv: list[str], change: dict[str, Any], field: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_args(parse_args(argv))
    assert caught.value.field == field
    status, answer = control(thread_pool_emulator, "config", json.dumps(change).encode())
    assert (status, answer["field"], answer["error"]) == (400, field, str(caught.value))


def test_the_command_line_exits_with_the_refusal() -> None:
    with pytest.raises(SystemExit, match=r"^error: latency must be in \[0, 1e\+09\], got nan$"):
        main(["--latency", "nan", "--port", "0"])


def test_the_stream_drop_options_reach_the_configuration(
    thread_pool_emulator: EmulatorServer,
) -> None:
    config = config_from_args(parse_args(["--stream-drop", "0.25", "--stream-drop-after", "3"]))
    assert (config.stream_drop, config.stream_drop_after) == (0.25, 3)
    assert config_from_args(parse_args([])).stream_drop_after is None
    status, answer = control(
        thread_pool_emulator, "config", b'{"stream_drop": 0.5, "stream_drop_after": 0}'
    )
    assert (status, answer["stream_drop"], answer["stream_drop_after"]) == (200, 0.5, 0)
