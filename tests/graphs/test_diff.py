"""The graph diff: what changed between two flow documents (compare runs, diff versions)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from graphs.diff import Edge, KeyChange, diff_graphs
from graphs.document import dump, load
from tests.graphs.support import flow

EXAMPLES = Path(__file__).parents[2] / "examples"


def base() -> dict:
    return flow(
        {"id": "q", "type": "input", "config": {"name": "q"}, "position": {"x": 0, "y": 0}},
        {
            "id": "ask",
            "type": "llm",
            "config": {"prompt": "Answer {{ q }}", "max_tokens": 500},
            "label": "Ask",
            "position": {"x": 250, "y": 0},
        },
        {"id": "out", "type": "output", "config": {"name": "a"}, "position": {"x": 500, "y": 0}},
        edges=[("q", "value", "ask", "q"), ("ask", "text", "out", "value")],
        name="qa",
    )


def node(doc: dict, node_id: str) -> dict:
    return next(n for n in doc["nodes"] if n["id"] == node_id)


def test_a_document_against_itself_is_empty():
    diff = diff_graphs(base(), base())
    assert diff.is_empty
    assert diff.summary() == "no changes"
    assert diff.as_dict()["is_empty"] is True
    assert diff.as_dict()["nodes"] == {"added": [], "removed": [], "changed": [], "moved": []}


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.json")), ids=lambda p: p.stem)
def test_an_example_round_tripped_through_networkx_is_unchanged(path):
    # dump() adds edge keys, directed/multigraph and empty configs: none of it is a change.
    doc = json.loads(path.read_text())
    assert diff_graphs(doc, dump(load(doc))).is_empty
    assert diff_graphs(doc, dump(load(doc))).moved == ()


def test_added_and_removed_nodes_are_listed_in_document_order_with_type_and_label():
    before = base()
    after = base()
    after["nodes"] = [n for n in after["nodes"] if n["id"] != "ask"]
    after["nodes"] += [
        {"id": "z", "type": "template", "config": {"template": "x"}, "label": "Zed"},
        {"id": "a", "type": "merge", "config": {}},
    ]
    diff = diff_graphs(before, after)
    assert [(n.id, n.type, n.label) for n in diff.added] == [
        ("z", "template", "Zed"),
        ("a", "merge", ""),
    ]
    assert [(n.id, n.type, n.label) for n in diff.removed] == [("ask", "llm", "Ask")]
    assert diff.summary().startswith("2 nodes added, 1 removed")


def test_config_keys_added_removed_and_changed_carry_before_and_after():
    after = base()
    config = node(after, "ask")["config"]
    config["prompt"] = "Answer briefly: {{ q }}"
    del config["max_tokens"]
    config["system"] = "Be terse."
    (change,) = diff_graphs(base(), after).changed
    assert change.id == "ask"
    assert change.changes == (
        KeyChange("config.prompt", "changed", "Answer {{ q }}", "Answer briefly: {{ q }}"),
        KeyChange("config.max_tokens", "removed", before=500),
        KeyChange("config.system", "added", after="Be terse."),
    )
    assert [c.as_dict() for c in change.changes][1:] == [
        {"key": "config.max_tokens", "kind": "removed", "before": 500},
        {"key": "config.system", "kind": "added", "after": "Be terse."},
    ]


def test_type_and_label_changes_are_reported_and_an_empty_label_equals_none():
    after = base()
    node(after, "ask")["type"] = "agent"
    node(after, "ask")["label"] = "Ask the agent"
    node(after, "out")["label"] = ""
    diff = diff_graphs(base(), after)
    assert [(c.id, c.keys) for c in diff.changed] == [("ask", ("type", "label"))]
    assert diff.changed[0].type == "agent" and diff.changed[0].label == "Ask the agent"


def test_a_move_alone_is_reported_as_moved_not_changed():
    after = base()
    node(after, "out")["position"] = {"x": 600, "y": 40}
    del node(after, "q")["position"]
    diff = diff_graphs(base(), after)
    assert diff.is_empty and diff.changed == ()
    assert [(m.id, m.before, m.after) for m in diff.moved] == [
        ("q", {"x": 0, "y": 0}, None),
        ("out", {"x": 500, "y": 0}, {"x": 600, "y": 40}),
    ]
    assert diff.summary() == "no changes; 2 nodes moved"


def test_with_positions_a_move_is_a_change_of_the_node():
    after = base()
    node(after, "out")["position"] = {"x": 600, "y": 40}
    diff = diff_graphs(base(), after, positions=True)
    assert not diff.is_empty
    assert [(c.id, c.keys) for c in diff.changed] == [("out", ("position",))]


def test_a_moved_and_edited_node_is_changed_without_position_and_also_moved():
    after = base()
    node(after, "ask")["position"] = {"x": 300, "y": 0}
    node(after, "ask")["config"]["max_tokens"] = 800
    diff = diff_graphs(base(), after)
    assert [(c.id, c.keys) for c in diff.changed] == [("ask", ("config.max_tokens",))]
    assert [m.id for m in diff.moved] == ["ask"]


def test_an_edge_is_identified_by_its_ends_and_ports():
    after = base()
    after["edges"][0]["target_port"] = "question"
    diff = diff_graphs(base(), after)
    assert diff.edges_removed == (Edge("q", "value", "ask", "q"),)
    assert diff.edges_added == (Edge("q", "value", "ask", "question"),)
    assert diff.summary() == "1 edge added, 1 removed"
    assert diff.as_dict()["edges"]["added"] == [
        {"source": "q", "source_port": "value", "target": "ask", "target_port": "question"}
    ]


def test_a_doubled_edge_counts_as_one_more_edge():
    after = base()
    after["edges"].append(copy.deepcopy(after["edges"][1]))
    diff = diff_graphs(base(), after)
    assert diff.edges_added == (Edge("ask", "text", "out", "value"),)
    assert diff_graphs(after, base()).edges_removed == (Edge("ask", "text", "out", "value"),)


def test_values_compare_as_json_numbers_strings_and_booleans():
    def with_value(value) -> dict:
        doc = base()
        node(doc, "q")["config"]["default"] = value
        return doc

    assert diff_graphs(with_value(1), with_value(1.0)).is_empty
    assert diff_graphs(with_value({"a": [1, 2]}), with_value({"a": [1, 2.0]})).is_empty
    assert not diff_graphs(with_value(1), with_value(True)).is_empty
    assert not diff_graphs(with_value(1), with_value("1")).is_empty
    assert not diff_graphs(with_value(None), base()).is_empty
    assert not diff_graphs(with_value([1, 2]), with_value([2, 1])).is_empty


def test_the_flows_name_and_description_are_diffed():
    after = base()
    after["graph"] = {"name": "qa v2", "description": "now with words"}
    diff = diff_graphs(base(), after)
    assert [(c.key, c.kind) for c in diff.graph] == [("name", "changed"), ("description", "added")]
    assert "flow name and description changed" in diff.summary()


def test_the_diff_reverses():
    after = base()
    after["nodes"].append({"id": "n", "type": "merge", "config": {}})
    after["edges"].append(
        {"source": "ask", "source_port": "text", "target": "n", "target_port": "x"}
    )
    node(after, "ask")["config"]["prompt"] = "Other"
    forward, backward = diff_graphs(base(), after), diff_graphs(after, base())
    assert [n.id for n in forward.added] == [n.id for n in backward.removed] == ["n"]
    assert forward.edges_added == backward.edges_removed
    assert forward.changed[0].changes[0].after == backward.changed[0].changes[0].before


def test_the_dict_form_is_plain_json():
    after = base()
    after["nodes"].append({"id": "n", "type": "merge", "config": {}})
    node(after, "q")["position"] = {"x": 5, "y": 5}
    node(after, "ask")["config"]["max_tokens"] = 1
    data = diff_graphs(base(), after).as_dict()
    assert json.loads(json.dumps(data)) == data
    assert set(data) == {"is_empty", "summary", "graph", "nodes", "edges"}
    assert data["nodes"]["added"] == [{"id": "n", "type": "merge", "label": ""}]
    assert data["nodes"]["moved"] == [
        {"id": "q", "before": {"x": 0, "y": 0}, "after": {"x": 5, "y": 5}}
    ]


def test_the_result_is_frozen():
    diff = diff_graphs(base(), base())
    with pytest.raises(AttributeError):
        diff.added = ()  # type: ignore[misc]
