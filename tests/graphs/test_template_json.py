"""A template can emit a JSON value (``output: json``), which flows on as structure."""

from __future__ import annotations

from graphs.compile import compile_flow
from graphs.document import load
from graphs.validation import validate
from tests.graphs.support import flow, node, of_type, run, services


def plan_flow(template: str) -> dict:
    return flow(
        node("topic", "input", name="topic"),
        node("plan", "template", output="json", template=template),
        node("out", "output", name="plan"),
        edges=[("topic", "value", "plan", "topic"), ("plan", "value", "out", "value")],
    )


async def test_json_output_emits_the_value_the_rendered_text_spells():
    doc = plan_flow('{"topic": {{ topic | tojson }}, "n": 2.5, "ok": true, "steps": ["a", null]}')
    result, events = await run(doc, {"topic": 'say "hi"\nthen go'})
    expected = {"topic": 'say "hi"\nthen go', "n": 2.5, "ok": True, "steps": ["a", None]}
    assert result.status == "succeeded"
    assert result.outputs == {"plan": expected}
    (finished,) = [e for e in of_type(events, "node_finished") if e["node"] == "plan"]
    assert finished["output"] == {"value": expected}


async def test_text_output_stays_the_default_and_emits_text():
    doc = flow(
        node("t", "template", template='{"a": 1}'),
        node("out", "output", name="o"),
        edges=[("t", "text", "out", "value")],
    )
    result, _ = await run(doc)
    assert result.outputs == {"o": '{"a": 1}'}


def test_json_output_has_the_port_value_and_not_text():
    doc = flow(
        node("t", "template", output="json", template="[1]"),
        node("out", "output", name="o"),
        edges=[("t", "text", "out", "value")],
    )
    problems = [str(p) for p in validate(load(doc), services())]
    assert problems == ["edge 't' -> 'out' (0): 't' has no output port 'text' (it has: value)"]
    assert compile_flow(plan_flow("[{{ topic | tojson }}]"), services())


async def test_rendered_text_that_is_not_json_fails_naming_the_node_and_why():
    result, _ = await run(plan_flow("Topic: {{ topic }}"), {"topic": "bees"})
    assert result.status == "failed" and result.failed_node == "plan"
    assert result.error == (
        "node 'plan' failed: output is json, but the rendered text is not JSON "
        "(Expecting value at line 1 column 1); it starts 'Topic: bees'"
    )


async def test_json_with_text_after_it_or_nan_is_refused():
    result, _ = await run(plan_flow('{"a": {{ topic | tojson }}}\n{"b": 2}'), {"topic": ""})
    assert "extra text after the value at line 2 column 1" in result.error
    result, _ = await run(plan_flow("[NaN, {{ topic | tojson }}]"), {"topic": ""})
    assert "NaN is not a JSON number" in result.error


async def test_a_json_list_from_a_template_fans_out_in_a_map():
    inner = flow(
        node("item", "input", name="item"),
        node("say", "template", template="{{ x.name }}!"),
        node("r", "output", name="r"),
        edges=[("item", "value", "say", "x"), ("say", "text", "r", "value")],
    )
    doc = flow(
        node("list", "template", output="json", template='[{"name": "a"}, {"name": "b"}]'),
        node("each", "map", flow=inner),
        node("out", "output", name="results"),
        edges=[("list", "value", "each", "items"), ("each", "results", "out", "value")],
    )
    result, _ = await run(doc)
    assert result.outputs == {"results": ["a!", "b!"]}
