"""Extended and adaptive thinking: the request, the thinking blocks' round trip through a
tool-use loop, thinking streamed apart from the answer, its tokens counted; the real SDK
against the fake Messages API, and the offline model."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from typing import Any

import anthropic
import pytest

from graphs import document
from graphs.errors import FlowInvalid, ModelError
from graphs.events import Emitter
from graphs.llm.anthropic import AnthropicClient
from graphs.llm.offline import OfflineClient
from graphs.llm.types import ModelRequest
from graphs.nodes import NODE_TYPES
from graphs.validation import validate
from tests.fakes.anthropic_server import FakeAnthropic
from tests.graphs.support import finished, flow, node, of_type, run, services

MODEL = "claude-sonnet-4-6"
ENABLED = {"type": "enabled", "budget_tokens": 2048}
CALCULATOR = '#fake:tool=calculator {"expression": "17*23"}'


def client_for(server: FakeAnthropic) -> AnthropicClient:
    return AnthropicClient(anthropic.AsyncAnthropic(api_key="test-key", base_url=server.url))


def ask(text: str, **kwargs: Any) -> ModelRequest:
    kwargs.setdefault("max_tokens", 4096)
    return ModelRequest(model=MODEL, messages=[{"role": "user", "content": text}], **kwargs)


def one_node(type_: str, prompt: str = "What is 17*23?", **config: Any) -> dict:
    return flow(
        node("q", "input", name="q", default=prompt),
        node("ask", type_, prompt="{{ q }}", **config),
        node("out", "output", name="answer"),
        edges=[("q", "value", "ask", "q"), ("ask", "text", "out", "value")],
    )


async def real(doc: dict, inputs: dict | None = None):
    return await run(doc, inputs, model_client=AnthropicClient())


# The model seam, through the SDK ----------------------------------------------------------


async def test_the_request_carries_thinking_and_the_reply_keeps_its_signed_block(fake_anthropic):
    texts: list[str] = []
    thoughts: list[str] = []
    response = await client_for(fake_anthropic).complete(
        ask("Why is the sky blue?", thinking=ENABLED), texts.append, on_thinking=thoughts.append
    )
    [sent] = fake_anthropic.message_requests
    assert sent["thinking"] == ENABLED and sent["max_tokens"] == 4096
    thinking, text = response.content
    assert thinking["type"] == "thinking" and len(thinking["signature"]) == 64
    assert thinking["thinking"] == "fake thinking about: Why is the sky blue?"
    # Streamed apart, word by word: the thinking to on_thinking, the answer to on_text.
    assert len(thoughts) > 1 and "".join(thoughts) == thinking["thinking"]
    assert "".join(texts) == text["text"] == response.text == "fake reply: Why is the sky blue?"
    assert response.thinking == thinking["thinking"]
    # Thinking is billed as output: part of output_tokens, and counted apart as well.
    assert response.usage.thinking_tokens == len(thinking["thinking"].split())
    answer_tokens = len(text["text"].split())
    assert response.usage.output_tokens == response.usage.thinking_tokens + answer_tokens


async def test_adaptive_thinking_is_sent_as_the_api_spells_it(fake_anthropic):
    response = await client_for(fake_anthropic).complete(
        ask("hi", thinking={"type": "adaptive"}), lambda _t: None, on_thinking=lambda _t: None
    )
    assert fake_anthropic.message_requests[0]["thinking"] == {"type": "adaptive"}
    assert response.content[0]["type"] == "thinking"


async def test_without_thinking_nothing_is_sent_and_no_thinking_comes_back(fake_anthropic):
    response = await client_for(fake_anthropic).complete(ask("hi"), lambda _t: None)
    assert "thinking" not in fake_anthropic.message_requests[0]
    assert [b["type"] for b in response.content] == ["text"]
    assert response.usage.thinking_tokens == 0 and "thinking_tokens" not in response.usage.as_dict()


async def test_a_redacted_block_is_kept_as_the_api_sent_it(fake_anthropic):
    response = await client_for(fake_anthropic).complete(
        ask("hi #fake:redacted_thinking", thinking=ENABLED), lambda _t: None
    )
    assert [b["type"] for b in response.content] == ["thinking", "redacted_thinking", "text"]
    assert response.content[1]["data"]  # opaque, and sent back as it is


async def _tool_turn(server: FakeAnthropic, **request: Any) -> list[dict[str, Any]]:
    """The messages of a tool-use loop up to the tool's result, the assistant turn as sent."""
    first = ask(CALCULATOR, tools=[CALCULATOR_TOOL], thinking=ENABLED, **request)
    response = await client_for(server).complete(first, lambda _t: None)
    [use] = response.tool_uses
    return [
        *first.messages,
        {"role": "assistant", "content": response.content},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": use["id"], "content": "391"}],
        },
    ]


CALCULATOR_TOOL = {
    "name": "calculator",
    "description": "Arithmetic.",
    "input_schema": {"type": "object", "properties": {"expression": {"type": "string"}}},
}


async def test_the_fake_refuses_a_thinking_block_sent_back_changed(fake_anthropic):
    messages = await _tool_turn(fake_anthropic)
    block = messages[1]["content"][0]
    messages[1]["content"][0] = {**block, "thinking": block["thinking"] + " (edited)"}
    request = ask("", tools=[CALCULATOR_TOOL], thinking=ENABLED)
    with pytest.raises(ModelError) as refused:
        await client_for(fake_anthropic).complete(
            replace(request, messages=messages), lambda _t: None
        )
    assert refused.value.status == 400 and "Invalid `signature` in `thinking` block" in str(
        refused.value
    )


async def test_the_fake_refuses_a_tool_loop_whose_assistant_turn_lost_its_thinking(fake_anthropic):
    messages = await _tool_turn(fake_anthropic)
    messages[1]["content"] = [b for b in messages[1]["content"] if b["type"] == "tool_use"]
    request = replace(ask("", tools=[CALCULATOR_TOOL], thinking=ENABLED), messages=messages)
    with pytest.raises(ModelError, match="must start with a thinking block") as refused:
        await client_for(fake_anthropic).complete(request, lambda _t: None)
    assert refused.value.status == 400
    # Sent back unchanged, the same turn is answered.
    messages = await _tool_turn(fake_anthropic)
    request = replace(request, messages=messages)
    response = await client_for(fake_anthropic).complete(request, lambda _t: None)
    assert response.text == "tool results: 391"


@pytest.mark.parametrize(
    ("settings", "refusal"),
    [
        ({"temperature": 0.5}, "`temperature` may only be set to 1"),
        ({"top_k": 5}, "`top_k` must be unset"),
        ({"top_p": 0.5}, "`top_p` must be greater than or equal to 0.95"),
        ({"max_tokens": 2048}, "`max_tokens` must be greater than `thinking.budget_tokens`"),
        (
            {"tools": [CALCULATOR_TOOL], "tool_choice": {"type": "tool", "name": "calculator"}},
            "Thinking may not be enabled when tool_choice forces tool use",
        ),
    ],
)
async def test_the_fake_refuses_what_the_api_refuses_with_thinking(
    fake_anthropic, settings, refusal
):
    with pytest.raises(ModelError, match=refusal):
        await client_for(fake_anthropic).complete(ask("hi", thinking=ENABLED, **settings), print)


# The nodes -------------------------------------------------------------------------------


async def test_an_agents_thinking_goes_back_unchanged_through_its_tool_loop(anthropic_env):
    doc = one_node(
        "agent",
        f"What is 17*23? #fake:redacted_thinking\n{CALCULATOR}",
        tools=["calculator"],
        max_tokens=4096,
        thinking="enabled",
        thinking_budget=2048,
    )
    result, events = await real(doc)
    assert result.status == "succeeded", result.error
    assert result.outputs == {"answer": "tool results: 391"}
    first, second = anthropic_env.message_requests
    assert first["thinking"] == second["thinking"] == ENABLED
    # Byte for byte what the first reply held, its thinking and redacted thinking first.
    sent_back = second["messages"][1]["content"]
    assert [b["type"] for b in sent_back] == ["thinking", "redacted_thinking", "tool_use"]
    [done] = finished(events, "ask")
    assert done["detail"]["messages"][1]["content"][:2] == sent_back[:2]
    assert done["usage"]["thinking_tokens"] == len(sent_back[0]["thinking"].split())


async def test_an_llm_streams_its_thinking_as_its_own_events_before_its_answer(anthropic_env):
    doc = one_node("llm", max_tokens=3000, thinking="enabled", thinking_budget=1024)
    result, events = await real(doc)
    assert result.status == "succeeded", result.error
    mine = [e for e in events if e.get("node") == "ask"]
    kinds = [e["type"] for e in mine]
    assert kinds.index("node_thinking") < kinds.index("node_delta") < kinds.index("node_finished")
    thought = "".join(e["text"] for e in of_type(mine, "node_thinking"))
    said = "".join(e["text"] for e in of_type(mine, "node_delta"))
    assert thought == "fake thinking about: What is 17*23?"
    assert said == result.outputs["answer"] == "fake reply: What is 17*23?"
    [done] = finished(events, "ask")
    assert done["usage"]["thinking_tokens"] == len(thought.split()) == 6
    assert of_type(events, "run_finished")[0]["usage"]["thinking_tokens"] == 6


async def test_an_llm_with_thinking_and_an_output_schema_answers_in_the_schema(anthropic_env):
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}}
    doc = flow(
        node("q", "input", name="q", default="17*23"),
        node("ask", "llm", prompt="{{ q }}", output_schema=schema, max_tokens=4096,
             thinking="adaptive"),
        node("out", "output", name="answer"),
        edges=[("q", "value", "ask", "q"), ("ask", "answer", "out", "value")],
    )  # fmt: skip
    result, _ = await real(doc)
    assert result.status == "succeeded", result.error
    [sent] = anthropic_env.message_requests
    assert sent["thinking"] == {"type": "adaptive"} and "output_config" in sent
    assert result.outputs == {"answer": 0}


async def test_a_router_thinking_chooses_by_a_structured_answer_not_a_forced_tool(anthropic_env):
    doc = flow(
        node("text", "input", name="text"),
        node("r", "router", mode="llm", routes=["story", "joke"], thinking="enabled",
             thinking_budget=1024),
        node("s", "output", name="story"),
        node("j", "output", name="joke"),
        edges=[("text", "value", "r", "input"), ("r", "story", "s", "value"),
               ("r", "joke", "j", "value")],
    )  # fmt: skip
    anthropic_env.enqueue({"text": json.dumps({"route": "joke"})})
    result, events = await real(doc, {"text": "Why did the chicken cross the road?"})
    assert result.status == "succeeded", result.error
    assert result.outputs == {"joke": "Why did the chicken cross the road?"}
    [sent] = anthropic_env.message_requests
    assert "tool_choice" not in sent and "tools" not in sent
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert sent["max_tokens"] > 1024
    route = sent["output_config"]["format"]["schema"]["properties"]["route"]
    assert route["enum"] == ["story", "joke"]
    assert finished(events, "r")[0]["detail"]["route"] == "joke"


async def test_a_router_thinking_offline_chooses_too():
    doc = flow(
        node("text", "input", name="text"),
        node("r", "router", mode="llm", routes=["story", "joke"], thinking="adaptive"),
        node("s", "output", name="story"),
        node("j", "output", name="joke"),
        edges=[("text", "value", "r", "input"), ("r", "story", "s", "value"),
               ("r", "joke", "j", "value")],
    )  # fmt: skip
    result, events = await run(doc, {"text": "tell me a joke"})
    assert result.outputs == {"joke": "tell me a joke"}
    assert of_type(events, "node_thinking")


# Config problems, named on their field, before any request --------------------------------


def problems(doc: dict) -> list[str]:
    try:
        graph = document.load(doc)
    except FlowInvalid as exc:
        return [str(p) for p in exc.problems]
    return [str(p) for p in validate(graph, services())]


def test_a_budget_below_1024_is_refused_naming_the_field():
    found = problems(one_node("llm", max_tokens=4096, thinking="enabled", thinking_budget=500))
    assert len(found) == 1 and found[0].startswith("node 'ask': config.thinking_budget:")
    assert "1024" in found[0]


@pytest.mark.parametrize(
    ("config", "field", "message"),
    [
        ({"thinking": "enabled"}, "thinking_budget", "thinking enabled needs a budget"),
        ({"thinking": "enabled", "thinking_budget": 1024}, "thinking_budget",
         "must be less than max_tokens (1024)"),
        ({"thinking": "adaptive", "max_tokens": 4096, "temperature": 0.2}, "temperature",
         "thinking does not take a temperature"),
        ({"thinking": "adaptive", "max_tokens": 4096, "top_k": 5}, "top_k",
         "thinking does not take top k"),
        ({"thinking": "adaptive", "max_tokens": 4096, "top_p": 0.9}, "top_p",
         "with thinking, top p must be from 0.95 to 1"),
    ],
)  # fmt: skip
@pytest.mark.parametrize("type_", ["llm", "agent"])
def test_what_thinking_cannot_take_is_a_problem_on_its_field(type_, config, field, message):
    node_type = NODE_TYPES[type_]
    found = node_type.problems(node_type.Config.model_validate({"prompt": "hi", **config}), None)
    assert [(p.field, p.message.split(":")[0]) for p in found] == [(field, message.split(":")[0])]
    assert message in found[0].message


def test_a_router_thinking_takes_no_temperature_either():
    router = NODE_TYPES["router"]
    config = router.Config.model_validate(
        {"routes": ["a", "b"], "mode": "llm", "thinking": "adaptive", "temperature": 0}
    )
    assert [p.field for p in router.problems(config, None)] == ["temperature"]


def test_thinking_at_the_top_p_it_allows_and_a_budget_under_max_tokens_is_fine():
    doc = one_node("llm", max_tokens=4096, thinking="enabled", thinking_budget=4095, top_p=0.95)
    assert problems(doc) == []


# Offline ----------------------------------------------------------------------------------


async def test_offline_thinks_trivially_and_says_so():
    thoughts: list[str] = []
    response = await OfflineClient().complete(
        ask("hi", thinking=ENABLED), lambda _t: None, on_thinking=thoughts.append
    )
    thinking = response.content[0]
    assert thinking["type"] == "thinking" and thinking["thinking"].startswith("[offline model]")
    assert "".join(thoughts) == thinking["thinking"]
    assert 0 < response.usage.thinking_tokens < response.usage.output_tokens


async def test_offline_does_not_think_unasked():
    response = await OfflineClient().complete(ask("hi"), lambda _t: None)
    assert [b["type"] for b in response.content] == ["text"]


# Events -----------------------------------------------------------------------------------


async def test_thinking_and_text_coalesce_apart_and_keep_their_order():
    seen: list[dict] = []
    emitter = Emitter(seen.append, coalesce_s=10)
    for piece in ("let ", "me ", "think"):
        emitter.delta("a", 1, piece, "node_thinking")
    emitter.delta("a", 1, "the ", "node_delta")
    emitter.delta("a", 1, "answer", "node_delta")
    emitter.flush("a", 1)
    await asyncio.sleep(0)
    assert [(e["type"], e["text"]) for e in seen] == [
        ("node_thinking", "let me think"),
        ("node_delta", "the answer"),
    ]
