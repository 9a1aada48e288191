"""What a run's first model calls will send (graphs.estimate), and the API's token count of
them (AnthropicClient.count_tokens against the fake server, which counts as it bills)."""

from __future__ import annotations

import asyncio

from graphs.estimate import first_calls
from tests.fakes.anthropic_server import FakeAnthropic
from tests.graphs.support import CountingClient, compiled, flow, node
from tests.graphs.test_anthropic_client import ask, client_for


def test_only_nodes_fed_by_run_inputs_are_first_and_only_model_nodes_are_rendered():
    client = CountingClient()
    doc = flow(
        node("q", "input", name="q"),
        node("sys", "input", name="tone", default="kind"),
        node("ask", "llm", prompt="Answer {{ q }}", system="Be {{ tone }}", max_tokens=64),
        node("fmt", "template", template="[{{ q }}]"),
        node("then", "llm", prompt="More on {{ a }}"),
        node("out", "output", name="a"),
        edges=[
            ("q", "value", "ask", "q"),
            ("sys", "value", "ask", "tone"),
            ("q", "value", "fmt", "q"),
            ("ask", "text", "then", "a"),
            ("then", "text", "out", "value"),
        ],
    )
    calls = asyncio.run(first_calls(compiled(doc, model_client=client), {"q": "why"}))
    assert [c.node for c in calls] == ["ask"]
    [call] = calls
    assert call.request.system == "Be kind" and call.request.max_tokens == 64
    assert call.request.messages == [{"role": "user", "content": "Answer why"}]
    assert client.prompts == [], "an estimate sends nothing to the model"


def test_a_map_over_a_run_input_renders_one_item_and_counts_its_items():
    inner = flow(
        node("item", "input", name="item"),
        node("ask", "llm", prompt="Rate {{ item }}", max_tokens=20),
        node("out", "output", name="r"),
        edges=[("item", "value", "ask", "item"), ("ask", "text", "out", "value")],
    )
    doc = flow(
        node("xs", "input", name="xs"),
        node("each", "map", flow=inner),
        node("out", "output", name="rs"),
        edges=[("xs", "value", "each", "items"), ("each", "results", "out", "value")],
    )
    [call] = asyncio.run(first_calls(compiled(doc), {"xs": ["a", "b", "c"]}))
    assert (call.node, call.map_node, call.items) == ("ask", "each", 3)
    assert call.request.messages[0]["content"] == "Rate a"


def test_a_router_choosing_by_rule_makes_no_call_to_estimate():
    from tests.graphs.test_router_conditions import gate

    doc = gate(("accept", "input == 'ok'"))
    assert asyncio.run(first_calls(compiled(doc), {"draft": "ok"})) == []


async def test_count_tokens_asks_the_api_and_counts_as_it_bills(fake_anthropic: FakeAnthropic):
    client = client_for(fake_anthropic)
    request = ask("one two three", system="be brief")
    assert await client.count_tokens(request) == 5
    [counted] = [r for r in fake_anthropic.requests if r.path == "/v1/messages/count_tokens"]
    assert counted.body["system"] == "be brief" and "max_tokens" not in counted.body
    response = await client.complete(request, lambda _text: None)
    assert response.usage.input_tokens == 5
