"""Every error body, field by field, against ../shared/UPSTREAM.md and the upstream's wording."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from typing import Any

import openai
import pytest

from tests.support import rawhttp
from thread_pool.emulator import EmulatorServer

pytestmark = pytest.mark.filterwarnings(
    # The SDK's Assistants methods warn at the caller's line; this module uses them on purpose.
    r"ignore:(The Assistants API is deprecated|deprecated$):DeprecationWarning"
)

KEY = "sk-emulator-secret-0001"


def body(message: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    """An upstream error object (what ``APIStatusError.body`` holds)."""
    return {"message": message, "type": "invalid_request_error", "param": param, "code": code}


def fails(call: Callable[[], object], status: int) -> dict[str, Any]:
    """Run ``call``, expecting an ``APIStatusError`` with ``status``; return its body."""
    with pytest.raises(openai.APIStatusError) as caught:
        call()
    assert caught.value.status_code == status
    assert str(caught.value).startswith(f"Error code: {status} - ")
    assert isinstance(caught.value.body, dict)
    return caught.value.body


@pytest.fixture
def busy(
    thread_pool_openai_client: openai.OpenAI, thread_pool_emulator: EmulatorServer
) -> tuple[str, str, str]:
    """``(assistant_id, thread_id, run_id)`` of a thread held by a long run."""
    thread_pool_emulator.emulator.configure(latency=30)
    client = thread_pool_openai_client
    assistant = client.beta.assistants.create(model="gpt-4o")
    thread = client.beta.threads.create()
    run = client.beta.threads.runs.create(thread.id, assistant_id=assistant.id)
    return assistant.id, thread.id, run.id


# -- the lock rule ---------------------------------------------------------------------------


def test_busy_thread_refuses_a_run(
    thread_pool_openai_client: openai.OpenAI, busy: tuple[str, str, str]
) -> None:
    assistant_id, thread_id, run_id = busy
    with pytest.raises(openai.BadRequestError) as caught:
        thread_pool_openai_client.beta.threads.runs.create(thread_id, assistant_id=assistant_id)
    error = caught.value
    assert error.body == body(f"Thread {thread_id} already has an active run {run_id}.")
    assert (error.code, error.type, error.param) == (None, "invalid_request_error", None)
    assert error.request_id is not None
    assert error.request_id.startswith("req_")


def test_busy_thread_refuses_a_message(
    thread_pool_openai_client: openai.OpenAI, busy: tuple[str, str, str]
) -> None:
    _, thread_id, run_id = busy
    got = fails(
        lambda: thread_pool_openai_client.beta.threads.messages.create(
            thread_id, role="user", content="x"
        ),
        400,
    )
    assert got == body(f"Can't add messages to {thread_id} while a run {run_id} is active.")


def test_run_with_additional_messages_is_refused_whole(
    thread_pool_openai_client: openai.OpenAI, busy: tuple[str, str, str]
) -> None:
    assistant_id, thread_id, _ = busy
    client = thread_pool_openai_client
    fails(
        lambda: client.beta.threads.runs.create(
            thread_id,
            assistant_id=assistant_id,
            additional_messages=[{"role": "user", "content": "lost?"}],
        ),
        400,
    )
    assert client.beta.threads.messages.list(thread_id).data == []


@pytest.mark.thread_pool_emulator(cancel_delay=30)
def test_cancelling_still_holds_the_thread(
    thread_pool_openai_client: openai.OpenAI, busy: tuple[str, str, str]
) -> None:
    assistant_id, thread_id, run_id = busy
    client = thread_pool_openai_client
    assert client.beta.threads.runs.cancel(run_id, thread_id=thread_id).status == "cancelling"
    got = fails(lambda: client.beta.threads.runs.create(thread_id, assistant_id=assistant_id), 400)
    assert got == body(f"Thread {thread_id} already has an active run {run_id}.")
    got = fails(lambda: client.beta.threads.runs.cancel(run_id, thread_id=thread_id), 400)
    assert got == body("Cannot cancel run with status 'cancelling'.")


def test_requires_action_holds_the_thread(
    thread_pool_openai_client: openai.OpenAI, thread_pool_emulator: EmulatorServer
) -> None:
    client = thread_pool_openai_client
    tool = {"type": "function", "function": {"name": "f", "parameters": {}}}
    assistant = client.beta.assistants.create(model="gpt-4o", tools=[tool])  # type: ignore[list-item]
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "call:f()"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert run.status == "requires_action"
    got = fails(
        lambda: client.beta.threads.messages.create(thread.id, role="user", content="x"), 400
    )
    assert got == body(f"Can't add messages to {thread.id} while a run {run.id} is active.")
    got = fails(
        lambda: client.beta.threads.runs.submit_tool_outputs(
            run.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": "call_nope", "output": ""}]
        ),
        400,
    )
    assert got["message"].startswith("Expected tool outputs for call_ids ['call_")


def test_busy_conversation_is_locked(
    thread_pool_openai_client: openai.OpenAI, thread_pool_emulator: EmulatorServer
) -> None:
    thread_pool_emulator.emulator.configure(latency=30)
    client = thread_pool_openai_client
    conversation = client.conversations.create()
    client.responses.create(
        model="gpt-4o", conversation=conversation.id, input="a", background=True
    )
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="gpt-4o", conversation=conversation.id, input="b")
    assert caught.value.body == {
        "message": "Another process is currently operating on this conversation. "
        "Please retry in a few seconds.",
        "type": "invalid_request_error",
        "param": "conversation",
        "code": "conversation_locked",
    }
    assert caught.value.code == "conversation_locked"
    stats = thread_pool_emulator.admin.stats()
    assert stats["lock_errors"] == {"run": 0, "message": 0, "conversation": 1, "total": 1}


# -- unknown ids -----------------------------------------------------------------------------


def test_unknown_ids_are_404(
    thread_pool_openai_client: openai.OpenAI, thread_pool_emulator: EmulatorServer
) -> None:
    client = thread_pool_openai_client
    thread = client.beta.threads.create()
    cases: list[tuple[Callable[[], object], dict[str, Any]]] = [
        (
            lambda: client.beta.threads.retrieve("thread_x"),
            body("No thread found with id 'thread_x'."),
        ),
        (
            lambda: client.beta.assistants.retrieve("asst_x"),
            body("No assistant found with id 'asst_x'."),
        ),
        (
            lambda: client.beta.threads.runs.create(thread.id, assistant_id="asst_x"),
            body("No assistant found with id 'asst_x'."),
        ),
        (
            lambda: client.beta.threads.runs.retrieve("run_x", thread_id=thread.id),
            body("No run found with id 'run_x'."),
        ),
        (
            lambda: client.beta.threads.messages.retrieve("msg_x", thread_id=thread.id),
            body("No message found with id 'msg_x'."),
        ),
        (
            lambda: client.beta.threads.delete("thread_y"),
            body("No thread found with id 'thread_y'."),
        ),
        (
            lambda: client.conversations.retrieve("conv_x"),
            body("Conversation with id 'conv_x' not found."),
        ),
        (
            lambda: client.responses.create(model="m", conversation="conv_x", input="hi"),
            body("Conversation with id 'conv_x' not found."),
        ),
        (lambda: client.responses.retrieve("resp_x"), body("Response with id 'resp_x' not found.")),
        (lambda: client.responses.cancel("resp_x"), body("Response with id 'resp_x' not found.")),
    ]
    for call, expected in cases:
        with pytest.raises(openai.NotFoundError) as caught:
            call()
        assert caught.value.body == expected


def test_unknown_path_is_404(thread_pool_emulator: EmulatorServer) -> None:
    answer = rawhttp.request("GET", thread_pool_emulator.base_url + "/nope")
    assert answer.status == 404
    assert answer.body == {"error": body("Invalid URL (GET /v1/nope)")}


# -- validation ------------------------------------------------------------------------------


def raw_post(server: EmulatorServer, path: str, payload: object) -> rawhttp.Answer:
    """POST ``payload`` as JSON (whatever its shape) with the right key."""
    return rawhttp.request(
        "POST",
        server.base_url + path,
        json.dumps(payload).encode(),
        {"authorization": f"Bearer {server.api_key}", "content-type": "application/json"},
    )


def test_missing_and_mistyped_fields(thread_pool_emulator: EmulatorServer) -> None:
    server = thread_pool_emulator
    thread_id = raw_post(server, "/threads", {}).body["id"]
    cases: list[tuple[str, object, dict[str, Any]]] = [
        (
            "/assistants",
            {},
            body("Missing required parameter: 'model'.", "model", "missing_required_parameter"),
        ),
        (
            f"/threads/{thread_id}/runs",
            {},
            body(
                "Missing required parameter: 'assistant_id'.",
                "assistant_id",
                "missing_required_parameter",
            ),
        ),
        (
            f"/threads/{thread_id}/messages",
            {"role": "user"},
            body("Missing required parameter: 'content'.", "content", "missing_required_parameter"),
        ),
        (
            f"/threads/{thread_id}/messages",
            {"content": "x"},
            body("Missing required parameter: 'role'.", "role", "missing_required_parameter"),
        ),
        (
            f"/threads/{thread_id}/messages",
            {"role": "system", "content": "x"},
            body(
                "Invalid value: 'system'. Supported values are: 'user' and 'assistant'.",
                "role",
                "invalid_value",
            ),
        ),
        (
            "/threads",
            {"metadata": "x"},
            body(
                "Invalid type for 'metadata': expected an object, but got a string instead.",
                "metadata",
                "invalid_type",
            ),
        ),
        (
            "/threads",
            {"messages": [{"role": "user", "content": 5}]},
            body(
                "Invalid type for 'messages[0].content': expected one of a string or array of "
                "objects, but got an integer instead.",
                "messages[0].content",
                "invalid_type",
            ),
        ),
        (
            "/responses",
            {"input": "x"},
            body("Missing required parameter: 'model'.", "model", "missing_required_parameter"),
        ),
        (
            "/responses",
            {"model": "m", "conversation": "conv_1", "previous_response_id": "r"},
            body(
                "Mutually exclusive parameters: Ensure you are only providing one of: "
                "'previous_response_id' or 'conversation'.",
                None,
                "mutually_exclusive_parameters",
            ),
        ),
        (
            "/conversations",
            {"items": "x"},
            body(
                "Invalid type for 'items': expected an array, but got a string instead.",
                "items",
                "invalid_type",
            ),
        ),
    ]
    for path, payload, expected in cases:
        answer = raw_post(server, path, payload)
        assert (answer.status, answer.body) == (400, {"error": expected}), path


def test_content_over_256000_characters(
    thread_pool_openai_client: openai.OpenAI, thread_pool_emulator: EmulatorServer
) -> None:
    client = thread_pool_openai_client
    thread = client.beta.threads.create()
    client.beta.threads.messages.create(thread.id, role="user", content="x" * 256_000)
    got = fails(
        lambda: client.beta.threads.messages.create(thread.id, role="user", content="x" * 256_001),
        400,
    )
    # UPSTREAM.md: "400 Invalid 'content': string too long. Expected a string with maximum
    # length 256000" (the upstream goes on to name the length it got).
    assert got == body(
        "Invalid 'content': string too long. Expected a string with maximum length 256000, "
        "but got a string with length 256001 instead.",
        "content",
        "string_above_max_length",
    )
    assistant = client.beta.assistants.create(model="gpt-4o")
    got = fails(
        lambda: client.beta.threads.runs.create(
            thread.id,
            assistant_id=assistant.id,
            additional_messages=[{"role": "user", "content": "y" * 300_000}],
        ),
        400,
    )
    assert got["param"] == "additional_messages[0].content"
    assert got["code"] == "string_above_max_length"


def test_metadata_limits(
    thread_pool_openai_client: openai.OpenAI, thread_pool_emulator: EmulatorServer
) -> None:
    client = thread_pool_openai_client
    sixteen = {f"k{i}": "v" for i in range(16)}
    assert client.beta.threads.create(metadata=sixteen).metadata == sixteen
    got = fails(lambda: client.beta.threads.create(metadata={**sixteen, "k16": "v"}), 400)
    assert got == body(
        "Invalid 'metadata': too many properties. Expected an object with at most 16 "
        "properties, but got an object with 17 properties instead.",
        "metadata",
        "object_above_max_properties",
    )
    client.beta.threads.create(metadata={"k" * 64: "v" * 512})
    got = fails(lambda: client.beta.threads.create(metadata={"k" * 65: "v"}), 400)
    assert got == body(
        f"Invalid 'metadata': metadata key '{'k' * 65}' is too long. Expected a key with "
        "maximum length 64, but got a key with length 65 instead.",
        "metadata",
        "string_above_max_length",
    )
    got = fails(lambda: client.conversations.create(metadata={"k": "v" * 513}), 400)
    assert got == body(
        "Invalid 'metadata.k': string too long. Expected a string with maximum length 512, "
        "but got a string with length 513 instead.",
        "metadata.k",
        "string_above_max_length",
    )
    thread = client.beta.threads.create()
    assistant = client.beta.assistants.create(model="gpt-4o")
    got = fails(
        lambda: client.beta.threads.runs.create(
            thread.id, assistant_id=assistant.id, metadata={f"k{i}": "v" for i in range(17)}
        ),
        400,
    )
    assert got["code"] == "object_above_max_properties"


def test_more_than_20_items(
    thread_pool_openai_client: openai.OpenAI, thread_pool_emulator: EmulatorServer
) -> None:
    client = thread_pool_openai_client
    items: Any = [{"type": "message", "role": "user", "content": str(i)} for i in range(21)]
    expected = body(
        "Invalid 'items': array too long. Expected an array with maximum length 20, but got an "
        "array with length 21 instead.",
        "items",
        "array_above_max_length",
    )
    assert fails(lambda: client.conversations.create(items=items), 400) == expected
    conversation = client.conversations.create(items=items[:20])
    assert (
        fails(lambda: client.conversations.items.create(conversation.id, items=items), 400)
        == expected
    )
    assert len(client.conversations.items.list(conversation.id, limit=100).data) == 20


def test_state_errors(
    thread_pool_openai_client: openai.OpenAI, thread_pool_emulator: EmulatorServer
) -> None:
    client = thread_pool_openai_client
    assistant = client.beta.assistants.create(model="gpt-4o")
    thread = client.beta.threads.create()
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    got = fails(lambda: client.beta.threads.runs.cancel(run.id, thread_id=thread.id), 400)
    assert got == body("Cannot cancel run with status 'completed'.")
    got = fails(
        lambda: client.beta.threads.runs.submit_tool_outputs(
            run.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": "c", "output": "o"}]
        ),
        400,
    )
    assert got == body('Runs in status "completed" do not accept tool outputs.')
    sync = client.responses.create(model="m", input="x")
    got = fails(lambda: client.responses.cancel(sync.id), 400)
    assert got == body("Only responses created with background=true can be cancelled.")
    conversation = client.conversations.create()
    got = fails(
        lambda: client.responses.create(
            model="m",
            conversation=conversation.id,
            input=[{"type": "function_call_output", "call_id": "call_x", "output": "o"}],
        ),
        400,
    )
    assert got == body("No tool call found for function call output with call_id call_x.", "input")
    tools: Any = [{"type": "function", "name": "f", "parameters": {}}]
    client.responses.create(model="m", conversation=conversation.id, input="call:f()", tools=tools)
    got = fails(
        lambda: client.responses.create(model="m", conversation=conversation.id, input="skip"),
        400,
    )
    assert got["message"].startswith("No tool output found for function call call_")
    got = fails(lambda: client.beta.threads.messages.list(thread.id, limit=101), 400)
    assert got == body(
        "Invalid 'limit': integer above maximum value. Expected a value <= 100, but got 101 "
        "instead.",
        "limit",
        "integer_above_max_value",
    )


# -- credentials and transport ---------------------------------------------------------------


@pytest.mark.thread_pool_emulator(api_key=KEY)
def test_api_key_is_required_when_configured(thread_pool_emulator: EmulatorServer) -> None:
    url = thread_pool_emulator.base_url + "/threads"
    missing = rawhttp.request("POST", url, b"{}")
    assert missing.status == 401
    assert missing.body["error"]["message"].startswith("You didn't provide an API key.")
    assert (missing.body["error"]["type"], missing.body["error"]["code"]) == (
        "invalid_request_error",
        None,
    )
    client = openai.OpenAI(
        base_url=thread_pool_emulator.base_url, api_key="sk-wrong-key-123456", max_retries=0
    )
    with client, pytest.raises(openai.AuthenticationError) as caught:
        client.beta.threads.create()
    assert caught.value.status_code == 401
    assert caught.value.body == body(
        "Incorrect API key provided: sk-************3456. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
        None,
        "invalid_api_key",
    )
    good = openai.OpenAI(base_url=thread_pool_emulator.base_url, api_key=KEY, max_retries=0)
    with good:
        assert good.beta.threads.create().object == "thread"
    # Reading the introspection stays open (changing it takes the key: test_control_routes.py).
    assert thread_pool_emulator.admin.health()


def test_body_that_is_not_json(thread_pool_emulator: EmulatorServer) -> None:
    answer = rawhttp.request("POST", thread_pool_emulator.base_url + "/threads", b"{nope")
    assert answer.status == 400
    assert answer.body["error"]["message"].startswith(
        "We could not parse the JSON body of your request."
    )
    assert answer.body["error"]["type"] == "invalid_request_error"


def test_a_client_that_goes_away_mid_body_is_no_server_error(
    thread_pool_emulator: EmulatorServer, capfd: pytest.CaptureFixture[str]
) -> None:
    # A killed worker leaves a request whose body never arrives: the emulator drops it quietly
    # (499 in its counters, like nginx's "client closed request") and creates nothing.
    host, port = thread_pool_emulator.root.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(
            b"POST /v1/threads HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 1000\r\n\r\n{"metadata": '
        )
    end = time.monotonic() + 5
    while thread_pool_emulator.admin.stats()["statuses"].get("499") != 1:
        assert time.monotonic() < end, thread_pool_emulator.admin.stats()["statuses"]
        time.sleep(0.01)
    assert thread_pool_emulator.admin.stats()["objects"]["threads"] == 0
    assert "Traceback" not in capfd.readouterr().err
