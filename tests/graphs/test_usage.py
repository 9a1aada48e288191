"""Token usage per model: map items and failed attempts count; the event log says its schema."""

from __future__ import annotations

from graphs.events import SCHEMA
from graphs.llm.anthropic import AnthropicClient
from tests.graphs.support import compiled, finished, flow, node, run_with


def mapped(concurrency: int = 4, retries: int = 0) -> dict:
    inner = flow(
        node("item", "input", name="item"),
        node("first", "llm", prompt="{{ x }}", model="claude-one", retries=0),
        node("second", "llm", prompt="again: {{ x }}\n#fake:reply=ok", model="claude-two"),
        node("out", "output", name="r"),
        edges=[
            ("item", "value", "first", "x"),
            ("first", "text", "second", "x"),
            ("second", "text", "out", "value"),
        ],
    )
    return flow(
        node("items", "input", name="items"),
        node("each", "map", flow=inner, concurrency=concurrency, retries=retries),
        node("out", "output", name="results"),
        edges=[("items", "value", "each", "items"), ("each", "results", "out", "value")],
    )


async def test_map_items_usage_reaches_the_map_node_and_the_run_per_model(anthropic_env):
    flow_ = compiled(mapped(), model_client=AnthropicClient())
    items = ["#fake:reply=a b c", "#fake:reply=d e"]
    result, events = await run_with(flow_, {"items": items})
    assert result.status == "succeeded"
    [each] = finished(events, "each")
    assert each["usage"]["output_tokens"] == 3 + 2 + 1 + 1
    assert each["usage_by_model"]["claude-one"]["output_tokens"] == 5
    assert each["usage_by_model"]["claude-two"]["output_tokens"] == 2
    assert each["model"] in ("claude-one", "claude-two")
    run_finished = events[-1]
    assert run_finished["usage"] == each["usage"]
    assert run_finished["usage_by_model"] == each["usage_by_model"]
    assert result.usage_by_model["claude-one"].output_tokens == 5


async def test_usage_of_failed_attempts_counts_in_the_run_totals(anthropic_env):
    flow_ = compiled(mapped(concurrency=1), model_client=AnthropicClient())
    result, events = await run_with(flow_, {"items": ["#fake:reply=a b c", "#fake:status=400"]})
    assert result.status == "failed" and result.failed_node == "each"
    usage_by_model = events[-1]["usage_by_model"]
    assert usage_by_model["claude-one"]["output_tokens"] == 3
    assert usage_by_model["claude-two"]["output_tokens"] == 1
    assert events[-1]["usage"]["output_tokens"] == 4


async def test_a_single_model_node_reports_no_per_model_breakdown_of_its_own(anthropic_env):
    doc = flow(
        node("q", "input", name="q"),
        node("ask", "llm", prompt="{{ q }}", model="claude-one"),
        edges=[("q", "value", "ask", "q")],
    )
    _result, events = await run_with(
        compiled(doc, model_client=AnthropicClient()), {"q": "#fake:reply=x y"}
    )
    [ask] = finished(events, "ask")
    assert ask["usage"]["output_tokens"] == 2 and "usage_by_model" not in ask
    assert events[-1]["usage_by_model"] == {"claude-one": ask["usage"]}


async def test_run_started_names_the_event_schema():
    doc = flow(node("q", "input", name="q"))
    _, events = await run_with(compiled(doc), {"q": 1})
    assert events[0]["type"] == "run_started" and events[0]["schema"] == SCHEMA == 1
