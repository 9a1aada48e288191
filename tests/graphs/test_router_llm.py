"""A router in llm mode answers by a forced choice among its routes, on the SDK and offline."""

from __future__ import annotations

import pytest

from graphs.document import load
from graphs.llm.anthropic import AnthropicClient
from graphs.settings import default_services
from graphs.validation import validate
from tests.fakes.anthropic_server import FakeResponse
from tests.graphs.support import finished, flow, node, of_type, run, statuses


def story_or_joke(**config) -> dict:
    """text -> router (story | joke) -> one output each; the choice on its own output."""
    return flow(
        node("text", "input", name="text"),
        node("r", "router", mode="llm", routes=["story", "joke"], **config),
        node("s", "output", name="story"),
        node("j", "output", name="joke"),
        node("c", "output", name="choice"),
        edges=[
            ("text", "value", "r", "input"),
            ("r", "story", "s", "value"),
            ("r", "joke", "j", "value"),
            ("r", "route", "c", "value"),
        ],
    )


async def real(doc: dict, inputs: dict):
    return await run(doc, inputs, model_client=AnthropicClient())


async def test_a_reply_that_mentions_a_route_cannot_choose_it_only_the_tool_call_does(
    anthropic_env,
):
    # Read as text, this reply names `story` first; the forced choice says `joke`.
    anthropic_env.enqueue(
        FakeResponse(
            text="Not a story: this is a joke", tool_uses=[("choose_route", {"route": "joke"})]
        )
    )
    result, events = await real(story_or_joke(), {"text": "Why did the chicken cross the road?"})
    assert result.status == "succeeded", result.error
    assert result.outputs == {"joke": "Why did the chicken cross the road?", "choice": "joke"}
    assert statuses(events)["s"] == "skipped"
    [done] = finished(events, "r")
    assert done["detail"]["route"] == "joke"


async def test_the_request_forces_the_choice_tool_whose_argument_is_an_enum_of_the_routes(
    anthropic_env,
):
    await real(story_or_joke(), {"text": "Once upon a time"})
    [sent] = anthropic_env.message_requests
    assert sent["tool_choice"] == {"type": "tool", "name": "choose_route"}
    [tool] = sent["tools"]
    assert tool["name"] == "choose_route"
    assert tool["input_schema"]["properties"]["route"]["enum"] == ["story", "joke"]
    assert tool["input_schema"]["required"] == ["route"]
    assert sent["messages"] == [{"role": "user", "content": "Once upon a time"}]
    assert "router" in sent["system"]


async def test_the_system_prompt_is_a_template_over_the_ports_and_is_sent(anthropic_env):
    doc = story_or_joke(
        system="Stories go to story, jokes to joke. The reader is {{ reader }}.",
        prompt='{{ input }} #fake:tool=choose_route {"route": "story"}',
    )
    doc["nodes"].append(node("reader", "input", name="reader"))
    doc["edges"].append(
        {"source": "reader", "source_port": "value", "target": "r", "target_port": "reader"}
    )
    result, _ = await real(doc, {"text": "Once upon a time", "reader": "a child"})
    assert result.outputs == {"story": "Once upon a time", "choice": "story"}
    [sent] = anthropic_env.message_requests
    assert sent["system"] == "Stories go to story, jokes to joke. The reader is a child."


async def test_a_value_that_is_no_route_falls_back_to_the_default(anthropic_env):
    anthropic_env.enqueue(FakeResponse(tool_uses=[("choose_route", {"route": "poem"})]))
    result, _ = await real(story_or_joke(default="story"), {"text": "roses are red"})
    assert result.outputs == {"story": "roses are red", "choice": "story"}


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (
            FakeResponse(tool_uses=[("choose_route", {"route": "poem"})]),
            "the model chose 'poem', which is not a route (routes: story, joke)",
        ),
        (FakeResponse(text="joke"), "the model did not call choose_route (stop reason: end_turn)"),
    ],
)
async def test_without_a_default_a_choice_that_is_no_route_fails_the_node_saying_why(
    anthropic_env, reply, expected
):
    anthropic_env.enqueue(reply)
    result, _ = await real(story_or_joke(), {"text": "roses are red"})
    assert result.status == "failed"
    assert result.error == f"node 'r' failed: {expected}"


async def test_offline_the_choice_is_the_route_whose_name_the_message_shares():
    result, events = await run(story_or_joke(), {"text": "tell me a joke about ducks"})
    assert result.outputs == {"joke": "tell me a joke about ducks", "choice": "joke"}
    result, _ = await run(story_or_joke(), {"text": "a long story of ducks"})
    assert result.outputs == {"story": "a long story of ducks", "choice": "story"}
    assert of_type(events, "node_finished")[1]["model"] == "offline"


def test_in_llm_mode_a_route_may_not_be_called_route_the_choices_port():
    doc = flow(
        node("q", "input", name="q"),
        node("r", "router", mode="llm", routes=["route", "other"]),
        edges=[("q", "value", "r", "input")],
    )
    [problem] = [str(p) for p in validate(load(doc), default_services())]
    assert problem.startswith("node 'r': in llm mode 'route' is the port")
    doc["nodes"][1]["config"].update(mode="match", default="route")
    assert validate(load(doc), default_services()) == []
