"""The emulator imitates the deviations of a third-party Conversations server (llama-stack 0.7.3,
UPSTREAM.md) that matter to a pool: an item cap per response, cancels refused with 409, no
conversation lock, a first response that reads only the oldest items. Each through the SDK."""

from __future__ import annotations

import time
from typing import Any

import openai
import pytest

from thread_pool.emulator import parse_reply
from thread_pool.emulator.config import LLAMA_STACK, ConfigError, EmulatorConfig

DEADLINE_S = 30.0


def items(count: int, start: int = 0) -> list[Any]:
    return [
        {"type": "message", "role": "user", "content": f"item {n}"}
        for n in range(start, start + count)
    ]


def conversation_with(client: openai.OpenAI, count: int) -> str:
    """A conversation holding ``count`` items (20 per request)."""
    conv = client.conversations.create(items=items(min(count, 20)))
    for start in range(20, count, 20):
        client.conversations.items.create(conv.id, items=items(min(20, count - start), start))
    return conv.id


def item_count(client: openai.OpenAI, conversation_id: str) -> int:
    return len(list(client.conversations.items.list(conversation_id, limit=100)))


def wait_status(client: openai.OpenAI, response_id: str, wanted: str) -> list[str]:
    """Poll until the response reads ``wanted``; every status seen, in order (deduplicated)."""
    seen: list[str] = []
    give_up = time.monotonic() + DEADLINE_S
    while time.monotonic() < give_up:
        status = client.responses.retrieve(response_id).status
        if not seen or seen[-1] != status:
            seen.append(str(status))
        if status == wanted:
            return seen
        time.sleep(0.01)
    raise AssertionError(f"{response_id} never read {wanted}; saw {seen}")


@pytest.mark.thread_pool_emulator(max_response_items=3)
def test_a_synchronous_response_over_the_item_cap_is_refused_like_llama_stack(
    thread_pool_openai_client: openai.OpenAI,
) -> None:
    client = thread_pool_openai_client
    conv = client.conversations.create()
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="m", conversation=conv.id, input=items(3))
    assert caught.value.status_code == 400
    assert caught.value.response.json() == {
        "detail": "1 validation error for conversation items: List should have at most 3 "
        "items after validation, not 4"
    }
    assert item_count(client, conv.id) == 0  # nothing stored
    # Within the cap (2 input + 1 output) it is answered and saved.
    ok = client.responses.create(model="m", conversation=conv.id, input=items(2))
    assert ok.status == "completed"
    assert item_count(client, conv.id) == 3


@pytest.mark.thread_pool_emulator(max_response_items=3, latency=0.05)
def test_a_background_response_over_the_cap_reads_completed_then_failed_and_stores_nothing(
    thread_pool_openai_client: openai.OpenAI,
) -> None:
    client = thread_pool_openai_client
    conv = client.conversations.create()
    resp = client.responses.create(model="m", conversation=conv.id, input=items(3), background=True)
    seen = wait_status(client, resp.id, "failed")
    assert seen[-2:] == ["completed", "failed"]
    failed = client.responses.retrieve(resp.id)
    assert failed.error is not None
    assert str(failed.error.code) == "processing_error"
    assert "at most 3 items" in failed.error.message
    assert item_count(client, conv.id) == 0


@pytest.mark.thread_pool_emulator(cancel_conflict=True, latency=0.3)
def test_cancel_conflict_refuses_with_409_and_the_response_runs_to_its_end(
    thread_pool_openai_client: openai.OpenAI,
) -> None:
    client = thread_pool_openai_client
    conv = client.conversations.create()
    resp = client.responses.create(model="m", conversation=conv.id, input="hi", background=True)
    with pytest.raises(openai.ConflictError) as caught:
        client.responses.cancel(resp.id)
    assert caught.value.response.json() == {
        "detail": f"Cannot cancel response '{resp.id}': only background responses can be cancelled"
    }
    wait_status(client, resp.id, "completed")
    with pytest.raises(openai.ConflictError) as again:
        client.responses.cancel(resp.id)
    assert "with status 'completed'" in again.value.response.json()["detail"]
    assert item_count(client, conv.id) == 2


@pytest.mark.thread_pool_emulator(first_response_reads=20)
def test_a_first_response_reads_only_the_oldest_items_and_later_items_never_reach_the_model(
    thread_pool_openai_client: openai.OpenAI,
) -> None:
    client = thread_pool_openai_client
    conv = conversation_with(client, 30)
    first = client.responses.create(model="m", conversation=conv, input="q1")
    assert parse_reply(first.output_text).count == 21  # 20 of 30 items, then q1
    client.conversations.items.create(conv, items=items(1, 100))  # after the first response
    second = client.responses.create(model="m", conversation=conv, input="q2")
    assert parse_reply(second.output_text).count == 23  # 20 + q1 + reply + q2; item 100 unseen
    assert item_count(client, conv) == 30 + 2 + 1 + 2


@pytest.mark.thread_pool_emulator(conversation_lock=False, first_response_reads=20, latency=0.2)
def test_without_a_lock_concurrent_responses_both_run_and_the_later_overwrites_the_context(
    thread_pool_openai_client: openai.OpenAI,
) -> None:
    client = thread_pool_openai_client
    conv = client.conversations.create()
    one = client.responses.create(model="m", conversation=conv.id, input="a", background=True)
    two = client.responses.create(model="m", conversation=conv.id, input="b", background=True)
    for resp in (one, two):
        wait_status(client, resp.id, "completed")
    assert item_count(client, conv.id) == 4  # both turns are in items.list...
    third = client.responses.create(model="m", conversation=conv.id, input="c")
    # ...but the model sees one of them only: its snapshot is the last one saved.
    assert parse_reply(third.output_text).count == 3


def test_the_options_are_validated_and_the_llama_stack_preset_holds_them_all() -> None:
    config = EmulatorConfig(**LLAMA_STACK)  # type: ignore[arg-type]
    assert (config.max_response_items, config.first_response_reads) == (20, 20)
    assert (config.cancel_conflict, config.require_input, config.conversation_lock) == (
        True,
        True,
        False,
    )
    bad: dict[str, Any]
    for bad in ({"max_response_items": 0}, {"first_response_reads": "20"}, {"cancel_conflict": 1}):
        with pytest.raises(ConfigError) as caught:
            EmulatorConfig(**bad)
        assert caught.value.field == next(iter(bad))


def test_the_command_line_knows_the_preset() -> None:
    from thread_pool.emulator.__main__ import config_from_args, parse_args

    config = config_from_args(parse_args(["--like-llama-stack"]))
    assert config.max_response_items == 20
    assert not config.conversation_lock
    single = config_from_args(parse_args(["--max-response-items", "5", "--cancel-conflict"]))
    assert (single.max_response_items, single.cancel_conflict) == (5, True)
    assert single.conversation_lock
