"""The engine on the real Anthropic SDK, against the fake Messages API on loopback."""

from __future__ import annotations

import asyncio
import json

import pytest

from graphs.llm.anthropic import AnthropicClient
from graphs.llm.offline import OfflineClient
from graphs.settings import model_client_from_env
from tests.graphs.support import compiled, flow, node, of_type, run
from tests.support.wait import wait_for_async


def ask(prompt: str = "{{ q }}", **config) -> dict:
    return flow(
        node("q", "input", name="q"),
        node("ask", "llm", prompt=prompt, **config),
        node("out", "output", name="a"),
        edges=[("q", "value", "ask", "q"), ("ask", "text", "out", "value")],
    )


async def real(doc: dict, inputs: dict, **overrides):
    return await run(doc, inputs, model_client=AnthropicClient(), **overrides)


def test_an_api_key_selects_the_sdk_and_none_selects_the_offline_model():
    assert isinstance(model_client_from_env({"ANTHROPIC_API_KEY": "k"}), AnthropicClient)
    assert isinstance(model_client_from_env({}), OfflineClient)


async def test_llm_node_streams_tokens_and_records_usage(anthropic_env):
    result, events = await real(
        ask(model="claude-test"), {"q": "#fake:reply=one two three four five"}
    )
    assert result.outputs == {"a": "one two three four five"}
    finished = next(e for e in of_type(events, "node_finished") if e["node"] == "ask")
    assert finished["model"] == "claude-test"
    assert finished["usage"]["output_tokens"] == 5
    assert "".join(e["text"] for e in of_type(events, "node_delta")) == "one two three four five"
    sent = anthropic_env.message_requests[0]
    assert sent["model"] == "claude-test" and sent["stream"] is True
    assert sent["messages"] == [{"role": "user", "content": "#fake:reply=one two three four five"}]


async def test_default_model_comes_from_services_and_system_prompt_is_sent(anthropic_env):
    await real(ask(system="Be brief."), {"q": "hi"}, default_model="claude-default")
    sent = anthropic_env.message_requests[0]
    assert sent["model"] == "claude-default" and sent["system"] == "Be brief."


async def test_429_is_retried_once_by_the_executor_honouring_retry_after(anthropic_env):
    prompt = "#fake:status=429 #fake:retry_after=0.2 #fake:times=1"
    result, events = await real(ask(), {"q": prompt})
    assert result.status == "succeeded"
    assert len(anthropic_env.message_requests) == 2  # one retry layer: ours, not also the SDK's
    retrying = of_type(events, "node_retrying")
    assert len(retrying) == 1 and retrying[0]["delay_s"] == 0.2
    assert "429" in retrying[0]["error"]


async def test_529_overloaded_is_retried_and_gives_up_after_the_configured_retries(anthropic_env):
    result, _ = await real(ask(retries=1), {"q": "#fake:status=529 #fake:retry_after=0"})
    assert result.status == "failed"
    assert len(anthropic_env.message_requests) == 2
    assert "529" in result.error and "(after 2 attempts)" in result.error


async def test_400_is_not_retried_and_the_error_says_why(anthropic_env):
    result, _ = await real(ask(), {"q": "#fake:status=400"})
    assert len(anthropic_env.message_requests) == 1
    assert result.failed_node == "ask" and "400" in result.error


async def test_a_hanging_model_call_is_cut_by_the_node_timeout(anthropic_env):
    result, _ = await real(ask(timeout_s=0.3, retries=0), {"q": "#fake:hang"})
    assert result.error == "node 'ask' failed: timed out after 0.3s"


async def test_cancel_stops_an_in_flight_model_call(anthropic_env):
    events: list[dict] = []
    handle = compiled(ask(), model_client=AnthropicClient()).start(
        {"q": "#fake:hang"}, events.append
    )
    await wait_for_async(lambda: anthropic_env.message_requests, message="the model call")
    handle.cancel()
    result = await asyncio.wait_for(handle.wait(), timeout=2)
    assert result.status == "cancelled"
    assert of_type(events, "node_failed")[0]["cancelled"] is True


async def test_router_in_llm_mode_follows_the_model_reply(anthropic_env):
    doc = flow(
        node("q", "input", name="q"),
        node(
            "r",
            "router",
            mode="llm",
            routes=["code", "docs"],
            prompt='{{ input }} #fake:tool=choose_route {"route": "docs"}',
        ),
        node("c", "output", name="code"),
        node("d", "output", name="docs"),
        edges=[
            ("q", "value", "r", "input"),
            ("r", "code", "c", "value"),
            ("r", "docs", "d", "value"),
        ],
    )
    result, events = await real(doc, {"q": "where is the manual?"})
    assert result.outputs == {"docs": "where is the manual?"}
    assert anthropic_env.message_requests[0]["tool_choice"] == {
        "type": "tool",
        "name": "choose_route",
    }
    assert [e["node"] for e in of_type(events, "node_skipped")] == ["c"]


async def test_agent_runs_several_tool_calls_concurrently_and_returns_their_results(anthropic_env):
    prompt = (
        "compute\n"
        '#fake:tool=calculator {"expression": "6*7"}\n'
        '#fake:tool=calculator {"expression": "2**10"}'
    )
    doc = flow(
        node("q", "input", name="q"),
        node("agent", "agent", prompt="{{ q }}", tools=["calculator"], max_turns=3),
        node("out", "output", name="a"),
        edges=[("q", "value", "agent", "q"), ("agent", "text", "out", "value")],
    )
    result, events = await real(doc, {"q": prompt})
    assert result.outputs == {"a": "tool results: 42; 1024"}
    first, second = anthropic_env.message_requests
    assert [t["name"] for t in first["tools"]] == ["calculator"]
    results = second["messages"][-1]["content"]
    assert [r["type"] for r in results] == ["tool_result", "tool_result"]
    finished = of_type(events, "node_finished")[-2]
    assert finished["node"] == "agent" and finished["detail"]["turns"] == 2


async def test_agent_that_never_finishes_fails_clearly_after_max_turns(anthropic_env):
    doc = flow(
        node("q", "input", name="q"),
        node("agent", "agent", prompt="{{ q }}", tools=["calculator"], max_turns=1),
        edges=[("q", "value", "agent", "q")],
    )
    prompt = '#fake:tool=calculator {"expression": "1+1"}'
    result, _ = await real(doc, {"q": prompt})
    assert result.status == "failed"
    assert "did not finish within max_turns=1" in result.error


async def test_a_tool_error_goes_back_to_the_model_as_an_error_result(anthropic_env):
    doc = flow(
        node("q", "input", name="q"),
        node("agent", "agent", prompt="{{ q }}", tools=["calculator", "http_get"], max_turns=3),
        edges=[("q", "value", "agent", "q")],
    )
    prompt = '#fake:tool=http_get {"url": "http://169.254.169.254/latest/meta-data/"}'
    result, _ = await real(doc, {"q": prompt})
    assert result.status == "succeeded"
    tool_result = anthropic_env.message_requests[1]["messages"][-1]["content"][0]
    assert tool_result["is_error"] is True
    assert "disabled" in tool_result["content"]


@pytest.mark.parametrize("example", ["chain", "fanout"])
async def test_examples_run_on_the_sdk_path_too(anthropic_env, example):
    from pathlib import Path

    doc = json.loads((Path(__file__).parents[2] / "examples" / f"{example}.json").read_text())
    result, _ = await real(doc, {})
    assert result.status == "succeeded"
    assert all(v.startswith("fake reply:") for v in result.outputs.values())
