"""AnthropicClient against the fake Messages API server, through the real SDK (no SDK mocks)."""

from __future__ import annotations

import asyncio
import json
import select
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import anthropic
import pytest

from graphs.errors import ModelError
from graphs.llm.anthropic import AnthropicClient
from graphs.llm.types import ModelRequest
from tests.fakes.anthropic_server import FakeAnthropic, FakeResponse
from tests.support.wait import wait_for_async

REPO_ROOT = Path(__file__).resolve().parents[2]
MODEL = "claude-sonnet-4-6"
# Long enough that only a hang reaches it on a loaded machine.
HANG_S = 10
ADD_TOOL = {
    "name": "add",
    "description": "Add two numbers.",
    "input_schema": {
        "type": "object",
        "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
        "required": ["a", "b"],
    },
}


def client_for(server: FakeAnthropic, **kwargs: Any) -> AnthropicClient:
    return AnthropicClient(
        anthropic.AsyncAnthropic(api_key="test-key", base_url=server.url), **kwargs
    )


def ask(text: str, **kwargs: Any) -> ModelRequest:
    return ModelRequest(model=MODEL, messages=[{"role": "user", "content": text}], **kwargs)


async def fail_with(client: AnthropicClient, request: ModelRequest) -> ModelError:
    with pytest.raises(ModelError) as info:
        await client.complete(request, lambda _text: None)
    return info.value


async def test_streamed_text_arrives_as_several_deltas_and_matches_final_text_and_usage(
    fake_anthropic: FakeAnthropic,
):
    deltas: list[str] = []

    response = await client_for(fake_anthropic).complete(
        ask("#fake:reply=one two three four five"), deltas.append
    )

    assert len(deltas) > 1
    assert "".join(deltas) == "one two three four five" == response.text
    assert response.content == [{"type": "text", "text": "one two three four five"}]
    assert response.stop_reason == "end_turn"
    assert response.usage.output_tokens == 5
    assert response.usage.input_tokens == 5  # the fake counts words in the request
    assert response.model == MODEL
    json.dumps(response.content)  # plain JSON, ready to record


async def test_default_reply_echoes_the_last_user_text(fake_anthropic: FakeAnthropic):
    response = await client_for(fake_anthropic).complete(ask("hello there"), lambda _t: None)

    assert response.text == "fake reply: hello there"


async def test_system_and_tools_are_sent_only_when_given(fake_anthropic: FakeAnthropic):
    client = client_for(fake_anthropic)

    await client.complete(ask("plain"), lambda _t: None)
    await client.complete(ask("full", system="be brief", tools=[ADD_TOOL]), lambda _t: None)

    plain, full = fake_anthropic.message_requests
    assert "system" not in plain and "tools" not in plain
    assert full["system"] == "be brief"
    assert full["tools"] == [ADD_TOOL]
    assert full["stream"] is True


async def test_tool_use_blocks_come_back_with_parsed_input(fake_anthropic: FakeAnthropic):
    request = ask(
        '#fake:tool=add {"a": 2, "b": 3}\n#fake:tool=add {"a": 10, "b": -1}', tools=[ADD_TOOL]
    )

    response = await client_for(fake_anthropic).complete(request, lambda _t: None)

    assert response.stop_reason == "tool_use"
    uses = response.tool_uses
    assert [(u["name"], u["input"]) for u in uses] == [
        ("add", {"a": 2, "b": 3}),
        ("add", {"a": 10, "b": -1}),
    ]
    assert all(set(u) == {"type", "id", "name", "input"} and u["id"] for u in uses)
    json.dumps(response.content)


async def test_tool_results_turn_is_answered_with_the_results(fake_anthropic: FakeAnthropic):
    client = client_for(fake_anthropic)
    first = await client.complete(ask('#fake:tool=add {"a": 2, "b": 3}', tools=[ADD_TOOL]), print)
    use = first.tool_uses[0]
    messages = [
        {"role": "user", "content": '#fake:tool=add {"a": 2, "b": 3}'},
        {"role": "assistant", "content": first.content},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": use["id"], "content": "5"}],
        },
    ]

    second = await client.complete(
        ModelRequest(model=MODEL, messages=messages, tools=[ADD_TOOL]), lambda _t: None
    )

    assert second.text == "tool results: 5"
    assert second.stop_reason == "end_turn"


async def test_rate_limit_429_is_retryable_with_retry_after_from_header(
    fake_anthropic: FakeAnthropic,
):
    error = await fail_with(client_for(fake_anthropic), ask("#fake:status=429 #fake:retry_after=7"))

    assert error.status == 429
    assert error.retryable is True
    assert error.retry_after == 7.0
    assert "rate limit" in str(error)


async def test_retry_after_ms_header_is_converted_to_seconds(fake_anthropic: FakeAnthropic):
    error = await fail_with(
        client_for(fake_anthropic), ask("#fake:status=429 #fake:retry_after_ms=1500")
    )

    assert error.retry_after == 1.5


async def test_a_429_makes_exactly_one_http_request(fake_anthropic: FakeAnthropic):
    await fail_with(client_for(fake_anthropic), ask("#fake:status=429 #fake:retry_after=0"))

    assert len(fake_anthropic.requests) == 1


async def test_a_passed_in_client_that_would_retry_is_made_not_to(fake_anthropic: FakeAnthropic):
    sdk = anthropic.AsyncAnthropic(api_key="test-key", base_url=fake_anthropic.url, max_retries=5)

    await fail_with(AnthropicClient(sdk), ask("#fake:status=529 #fake:retry_after=0"))

    assert len(fake_anthropic.requests) == 1


async def test_overloaded_529_is_retryable(fake_anthropic: FakeAnthropic):
    error = await fail_with(client_for(fake_anthropic), ask("#fake:status=529"))

    assert error.status == 529
    assert error.retryable is True


async def test_server_error_500_is_retryable(fake_anthropic: FakeAnthropic):
    error = await fail_with(client_for(fake_anthropic), ask("#fake:status=500"))

    assert (error.status, error.retryable) == (500, True)


async def test_bad_request_400_is_not_retryable_and_carries_the_api_message(
    fake_anthropic: FakeAnthropic,
):
    fake_anthropic.enqueue(
        FakeResponse(status=400, error_message="max_tokens: must be at most 64000")
    )

    error = await fail_with(client_for(fake_anthropic), ask("anything"))

    assert error.status == 400
    assert error.retryable is False
    assert "max_tokens: must be at most 64000" in str(error)
    assert "400" in str(error)


async def test_authentication_error_says_to_check_the_api_key(fake_anthropic: FakeAnthropic):
    error = await fail_with(client_for(fake_anthropic), ask("#fake:status=401"))

    assert (error.status, error.retryable) == (401, False)
    assert "ANTHROPIC_API_KEY" in str(error)


async def test_a_stream_dropped_midway_is_a_retryable_error(fake_anthropic: FakeAnthropic):
    deltas: list[str] = []

    with pytest.raises(ModelError) as info:
        await client_for(fake_anthropic).complete(
            ask("#fake:break_after=2\n#fake:reply=a b c d e f"), deltas.append
        )

    assert info.value.retryable is True
    assert info.value.status is None
    assert deltas == ["a ", "b "]  # what arrived before the drop was streamed


async def test_a_stream_that_ends_without_message_stop_is_a_retryable_error(
    fake_anthropic: FakeAnthropic,
):
    error = await fail_with(client_for(fake_anthropic), ask("#fake:truncate_after=2"))

    assert error.retryable is True


async def test_an_overloaded_error_event_inside_the_stream_is_retryable(
    fake_anthropic: FakeAnthropic,
):
    error = await fail_with(client_for(fake_anthropic), ask("#fake:stream_error=overloaded_error"))

    assert (error.status, error.retryable) == (529, True)
    assert "overloaded_error" in str(error)


async def test_an_unreachable_server_is_a_retryable_connection_error():
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sdk = anthropic.AsyncAnthropic(api_key="test-key", base_url=f"http://127.0.0.1:{port}")

    error = await fail_with(AnthropicClient(sdk), ask("hello"))

    assert error.retryable is True
    assert f"127.0.0.1:{port}" in str(error)


async def test_a_read_timeout_is_a_retryable_error(fake_anthropic: FakeAnthropic):
    error = await fail_with(client_for(fake_anthropic, timeout_s=0.2), ask("#fake:delay=2"))

    assert error.retryable is True
    assert "0.2s" in str(error)


async def test_a_hanging_request_is_cancelled_promptly(fake_anthropic: FakeAnthropic):
    client = client_for(fake_anthropic)
    call = asyncio.ensure_future(client.complete(ask("#fake:hang"), lambda _t: None))
    await wait_for_async(lambda: fake_anthropic.requests, message="the request to arrive")

    call.cancel()
    # The request never ends on its own: waiting for it would be a hang, not a slow pass.
    await asyncio.wait({call}, timeout=HANG_S)
    assert call.cancelled()
    assert len(fake_anthropic.requests) == 1
    await asyncio.wait_for(asyncio.to_thread(fake_anthropic.stop), HANG_S)


async def test_server_stops_promptly_with_a_hanging_request_open(fake_anthropic: FakeAnthropic):
    task = asyncio.create_task(client_for(fake_anthropic).complete(ask("#fake:hang"), print))
    await wait_for_async(lambda: fake_anthropic.requests, message="the request to arrive")

    # A stop that waited for the hanging request would never end.
    await asyncio.wait_for(asyncio.to_thread(fake_anthropic.stop), HANG_S)

    with pytest.raises(ModelError) as info:
        await asyncio.wait_for(task, 2)
    assert info.value.retryable is True


async def test_an_exception_from_on_text_propagates_unchanged(fake_anthropic: FakeAnthropic):
    class Boom(Exception):
        pass

    def on_text(_text: str) -> None:
        raise Boom("subscriber went away")

    with pytest.raises(Boom, match="subscriber went away"):
        await client_for(fake_anthropic).complete(ask("hello"), on_text)


async def test_the_sdk_reads_base_url_and_api_key_from_the_environment(
    anthropic_env: FakeAnthropic,
):
    response = await AnthropicClient().complete(ask("#fake:reply=from env"), lambda _t: None)

    assert response.text == "from env"
    (recorded,) = anthropic_env.requests
    assert recorded.path == "/v1/messages"
    assert "test-key" in (
        recorded.headers.get("x-api-key", "") + recorded.headers.get("authorization", "")
    )


# --- the fake server itself --------------------------------------------------------


async def test_fake_times_directive_fails_only_the_first_n_requests(
    fake_anthropic: FakeAnthropic,
):
    client = client_for(fake_anthropic)
    request = ask("#fake:status=529 #fake:times=2")

    await fail_with(client, request)
    await fail_with(client, request)
    response = await client.complete(request, lambda _t: None)

    assert response.text.startswith("fake reply: ")
    fake_anthropic.reset()
    await fail_with(client, request)  # reset forgets the count


async def test_fake_enqueued_specs_win_over_directives_in_order(fake_anthropic: FakeAnthropic):
    client = client_for(fake_anthropic)
    fake_anthropic.enqueue(FakeResponse(text="first"), {"status": 503})

    assert (await client.complete(ask("#fake:reply=ignored"), lambda _t: None)).text == "first"
    assert (await fail_with(client, ask("#fake:reply=ignored"))).status == 503
    assert (await client.complete(ask("#fake:reply=now"), lambda _t: None)).text == "now"


async def test_fake_answers_non_streaming_requests_too(fake_anthropic: FakeAnthropic):
    sdk = anthropic.AsyncAnthropic(api_key="test-key", base_url=fake_anthropic.url, max_retries=0)

    message = await sdk.messages.create(
        model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "#fake:reply=hi you"}]
    )

    assert message.content[0].text == "hi you"
    assert message.usage.output_tokens == 2


def test_fake_runs_as_a_standalone_process():
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.anthropic_server", "--port", "0", "--quiet"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 10)
        assert ready, "the fake server printed nothing within 10 s"
        first_line = proc.stdout.readline().strip()
        assert first_line.startswith("listening on http://127.0.0.1:")
        url = first_line.removeprefix("listening on ")

        body = {
            "model": MODEL,
            "max_tokens": 10,
            "messages": [{"role": "user", "content": "#fake:reply=from another process"}],
        }
        post = urllib.request.Request(
            f"{url}/v1/messages",
            data=json.dumps(body).encode(),
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(post, timeout=5) as reply:
            message = json.load(reply)
        assert message["content"] == [{"type": "text", "text": "from another process"}]

        with urllib.request.urlopen(f"{url}/_fake/requests", timeout=5) as reply:
            assert json.load(reply)[0]["body"] == body
    finally:
        proc.terminate()
        proc.wait(timeout=5)


@pytest.mark.parametrize("config_dir", ["empty", "missing"])
async def test_missing_api_key_is_a_non_retryable_error_naming_the_variable(
    anthropic_env: FakeAnthropic,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    config_dir: str,
):
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    # Keep the SDK away from a developer's own credential profiles.
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("ANTHROPIC_IDENTITY_TOKEN", "ANTHROPIC_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    config = tmp_path / "anthropic-config"
    if config_dir == "empty":
        config.mkdir()
    monkeypatch.setenv("ANTHROPIC_CONFIG_DIR", str(config))

    error = await fail_with(AnthropicClient(), ask("hello"))

    assert error.retryable is False
    assert "ANTHROPIC_API_KEY" in str(error)
    assert anthropic_env.requests == []
