"""What each node type says about itself for people: label, category, starting config,
field help and widgets, and problems that name their field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import get_args

import pytest

from graphs.nodes import NODE_TYPES
from graphs.nodes.base import CATEGORIES, FieldProblem
from graphs.settings import default_services

EXAMPLES = Path(__file__).parents[2] / "examples"
# The widgets a host is promised to understand (graphs.nodes.base says what each means).
WIDGETS = {"template", "code", "source", "tools", "cache", "schema", "rows", "flow"}


def example_nodes() -> list[dict]:
    nodes = []
    for path in sorted(EXAMPLES.glob("*.json")):
        nodes += json.loads(path.read_text())["nodes"]
    return nodes


@pytest.mark.parametrize("name", list(NODE_TYPES))
def test_every_type_has_a_label_a_description_and_a_known_category(name):
    node_type = NODE_TYPES[name]
    assert node_type.name == name
    assert node_type.label.strip()
    assert node_type.description.strip()
    assert node_type.category in CATEGORIES


@pytest.mark.parametrize("name", list(NODE_TYPES))
def test_every_starting_config_is_valid_as_it_is(name):
    node_type = NODE_TYPES[name]
    config = node_type.Config.model_validate(node_type.default_config)
    problems = node_type.problems(config, default_services())
    # A field naming a saved flow (a subflow's) has nothing to name before someone picks
    # one, and a model call's prompt is for its author to write (a new node is saved
    # unfinished, listing the problem); every other field starts valid.
    picks = {
        field
        for field, info in node_type.Config.model_fields.items()
        if (info.json_schema_extra or {}).get("widget") == "flow"  # type: ignore[union-attr]
    }
    to_write = {"prompt"} if name in ("llm", "agent") else set()
    assert [p.field for p in problems if p.field in to_write] == sorted(to_write)
    assert [p for p in problems if p.field not in picks | to_write] == []


@pytest.mark.parametrize("name", list(NODE_TYPES))
def test_fields_name_only_widgets_a_host_knows(name):
    for field, info in NODE_TYPES[name].Config.model_fields.items():
        extra = info.json_schema_extra or {}
        assert isinstance(extra, dict)
        assert extra.get("widget", "template") in WIDGETS, field
        assert isinstance(extra.get("rows", 1), int), field


@pytest.mark.parametrize("name", list(NODE_TYPES))
def test_a_field_shown_only_when_another_holds_a_value_names_a_choice_of_that_field(name):
    fields = NODE_TYPES[name].Config.model_fields
    for field, info in fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        for other, values in (extra.get("when") or {}).items():
            assert other in fields and other != field, field
            assert set(values) <= set(get_args(fields[other].annotation)), field


def test_rows_fields_hold_records_of_text_columns():
    seen = []
    for node_type in NODE_TYPES.values():
        for field, info in node_type.Config.model_fields.items():
            extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
            if extra.get("widget") != "rows":
                continue
            [record] = get_args(info.annotation)
            assert all(c.annotation is str for c in record.model_fields.values()), field
            seen.append((node_type.name, field))
    assert {("router", "rules"), ("router", "conditions")} <= set(seen)


def test_the_fields_a_config_uses_as_templates_are_marked_as_templates():
    configs = [(node["type"], node["config"]) for node in example_nodes()]
    configs += [
        ("llm", {"prompt": "{{ a }}", "system": "{{ b }}"}),
        ("agent", {"prompt": "{{ a }}", "system": "{{ b }}"}),
        ("router", {"routes": ["a"], "mode": "llm", "prompt": "{{ a }}"}),
        ("template", {"template": "{{ a }}"}),
    ]
    seen = set()
    for type_name, config in configs:
        node_type = NODE_TYPES[type_name]
        fields = node_type.Config.model_fields
        for field in node_type.templates(node_type.Config.model_validate(config)):
            marked = [fields[field].json_schema_extra or {}]
            if marked[0].get("widget") == "rows":  # a column of its rows holds the templates
                [record] = get_args(fields[field].annotation)
                marked = [c.json_schema_extra or {} for c in record.model_fields.values()]
            assert any(hints.get("widget") == "template" for hints in marked), field
            seen.add((type_name, field))
    assert {("llm", "system"), ("router", "prompt"), ("template", "template")} <= seen


def test_an_agent_reports_an_unknown_tool_on_its_tools():
    agent = NODE_TYPES["agent"]
    config = agent.Config.model_validate({"prompt": "hi", "tools": ["calculator", "shell"]})
    assert agent.problems(config, default_services()) == [
        FieldProblem("tools", "unknown tool 'shell' (known: calculator, http_get)")
    ]


def test_a_router_reports_each_inconsistency_on_the_field_to_fix():
    router = NODE_TYPES["router"]
    config = router.Config.model_validate(
        {"routes": ["a"], "rules": [{"route": "b", "pattern": "x"}], "default": "c"}
    )
    assert router.problems(config, None) == [
        FieldProblem("rules", "rule names route 'b', which is not in routes"),
        FieldProblem("default", "default route 'c' is not in routes"),
    ]
    bare = router.Config.model_validate({"routes": ["a"]})
    assert router.problems(bare, None) == [
        FieldProblem("mode", "match mode needs rules or a default route")
    ]
    conditions = router.Config.model_validate(
        {"routes": ["a"], "mode": "condition", "conditions": [{"route": "a", "expression": "x >"}]}
    )
    assert router.problems(conditions, None) == [
        FieldProblem(
            "conditions", "rule 1 (route 'a'): syntax error: unexpected end of the expression"
        )
    ]


def test_a_map_reports_its_inline_flow_on_flow():
    map_type = NODE_TYPES["map"]
    config = map_type.Config.model_validate({"flow": {**map_type.default_config["flow"]}})
    assert map_type.problems(config, default_services()) == []
    empty = map_type.Config.model_validate(
        {"flow": {"graph": {"name": "x"}, "nodes": [], "edges": []}}
    )
    assert map_type.problems(empty, default_services()) == [
        FieldProblem("flow", "inline flow needs an input node named 'item'"),
        FieldProblem("flow", "inline flow needs at least one output node"),
    ]
    shapeless = map_type.Config.model_validate({"flow": {"graph": {"name": "x"}, "nodes": 3}})
    assert map_type.problems(shapeless, None) == [
        FieldProblem("flow", "inline flow: 'nodes' must be a list")
    ]
