"""Pure parts of the emulator: reply format and digest, tool triggers, timelines, config."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from thread_pool.emulator import Emulator, EmulatorConfig, digest, expected_reply, parse_reply
from thread_pool.emulator.endpoints import endpoint
from thread_pool.emulator.faults import Planner
from thread_pool.emulator.lifecycle import Timeline
from thread_pool.emulator.replies import find_tool_calls
from thread_pool.emulator.service import peak_overlap


def test_digest_is_sha256_prefix_of_compact_json() -> None:
    entries = [("user", "héllo"), ("assistant", "hi")]
    payload = json.dumps(
        [["user", "héllo"], ["assistant", "hi"]], ensure_ascii=False, separators=(",", ":")
    )
    assert digest(entries) == hashlib.sha256(payload.encode()).hexdigest()[:12]
    assert digest([]) != digest([("user", "")])


def test_reply_round_trips() -> None:
    entries = [("user", "a"), ("user", "b")]
    text = expected_reply("msg_1", entries)
    assert text == f"[emulator] re msg_1: 2 messages, sha256 {digest(entries)}"
    reply = parse_reply(text)
    assert (reply.answered_id, reply.count, reply.tool_outputs) == ("msg_1", 2, ())
    assert reply.saw(entries)
    assert not reply.saw(entries[:1])
    with_tools = parse_reply(expected_reply("msg_2", entries, ["sunny", "x\ny"]))
    assert with_tools.tool_outputs == ("sunny", "x\ny")
    assert parse_reply(expected_reply(None, [])).answered_id == "none"
    with pytest.raises(ValueError, match="not an emulator reply"):
        parse_reply("hello")


def test_tool_triggers() -> None:
    text = 'please call:get_weather({"city": "Paris (FR)"}) and call:ping() and call:nope({})'
    calls = find_tool_calls(text, ["get_weather", "ping"])
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [
        ("get_weather", {"city": "Paris (FR)"}),
        ("ping", {}),
    ]
    assert find_tool_calls("call:ping(not json)", ["ping"]) == []
    assert find_tool_calls("call:ping([1])", ["ping"]) == []
    assert find_tool_calls("call:ping()", []) == []


def test_timeline_statuses() -> None:
    line = Timeline(queued_until=1.0, work_ends=2.0, outcome="completed", expires=10.0)
    assert [line.status(t) for t in (0.5, 1.5, 2.0)] == ["queued", "in_progress", "completed"]
    line.cancel_asked, line.cancel_done = 1.5, 1.6
    assert [line.status(t) for t in (1.55, 1.6)] == ["cancelling", "cancelled"]
    tool = Timeline(1.0, 2.0, "requires_action", expires=5.0)
    assert [tool.status(t) for t in (1.5, 3.0, 5.0)] == [
        "in_progress",
        "requires_action",
        "expired",
    ]
    stuck = Timeline(1.0, 2.0, "stuck", expires=5.0)
    assert [stuck.status(t) for t in (3.0, 4.9, 5.0)] == ["in_progress", "in_progress", "expired"]
    failed = Timeline(1.0, 2.0, "failed", expires=5.0)
    assert failed.status_since(3.0) == ("failed", 2.0)


def test_planner_is_deterministic_per_seed() -> None:
    config = EmulatorConfig(latency_min=0.1, latency_max=0.9, seed=7).replace(fault_rate=0.6)
    first, second = Planner(), Planner()
    a = [(first.request_fault(config), first.run_plan(config)) for _ in range(50)]
    b = [(second.request_fault(config), second.run_plan(config)) for _ in range(50)]
    assert a == b
    assert {fault for fault, _ in a} >= {None, "http_500", "http_503", "http_429"}
    assert {plan.outcome for _, plan in a} >= {"completed", "failed", "expired", "stuck"}
    assert all(0.1 <= p.queued_for + p.working_for <= 0.9 for _, p in a)
    other = Planner()
    c = [other.request_fault(config.replace(seed=8)) for _ in range(50)]
    assert c != [fault for fault, _ in a]


def test_config_validation_and_shorthands() -> None:
    config = EmulatorConfig().replace(latency="0.2-0.8", fault_rate=0.3)
    assert (config.latency_min, config.latency_max) == (0.2, 0.8)
    assert config.http_500 == pytest.approx(0.1)
    assert config.run_stuck == pytest.approx(0.1)
    assert EmulatorConfig(latency_min=0.04, latency_max=0.04).effective_poll_after_ms == 10
    with pytest.raises(ValueError, match="latency"):
        EmulatorConfig(latency_min=1.0, latency_max=0.5)
    with pytest.raises(ValueError, match="http_429"):
        EmulatorConfig(http_429=1.5)
    with pytest.raises(TypeError):
        EmulatorConfig().replace(no_such_option=1)


def test_peak_overlap() -> None:
    assert peak_overlap([]) == 0
    assert peak_overlap([(0, 1), (1, 2), (2, 3)]) == 1
    assert peak_overlap([(0, 3), (1, 2), (1.5, 4)]) == 3


def test_a_handler_that_does_not_fit_its_route_is_refused_when_the_app_is_built() -> None:
    emulator = Emulator()

    def get_run(thread_id: str, run_id: str) -> dict[str, Any]:
        return {}

    def create_thread(payload: dict[str, Any]) -> dict[str, Any]:
        return {}

    endpoint(emulator, "GET", "/threads/{thread_id}/runs/{run_id}", get_run)
    with pytest.raises(TypeError, match="does not fit"):
        endpoint(emulator, "GET", "/threads/{thread_id}/runs", get_run)
    with pytest.raises(TypeError, match="does not fit"):
        endpoint(emulator, "GET", "/threads/{thread_id}/runs/{run_id}/{step_id}", get_run)
    with pytest.raises(TypeError, match="does not fit"):
        endpoint(emulator, "POST", "/threads", create_thread)
