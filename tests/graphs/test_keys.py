"""Node keys (graphs.keys): made from labels, checked, and renamed with what uses them."""

from __future__ import annotations

import pytest

import graphs
from graphs.errors import FlowInvalid
from graphs.keys import key_from, key_problem, rename_node, rename_port


def review_flow() -> dict:
    """input -> two llms -> merge -> template reading both merge ports."""
    return {
        "graph": {"name": "review"},
        "nodes": [
            {"id": "text", "type": "input", "config": {"name": "text"}},
            {"id": "llm4", "type": "llm", "config": {"prompt": "Sum up {{ text }}"}},
            {"id": "llm5", "type": "llm", "config": {"prompt": "Critique {{ text }}"}},
            {"id": "both", "type": "merge", "config": {}},
            {
                "id": "say",
                "type": "template",
                "config": {
                    "template": "{{ value.llm4 }} / {{ value['llm5'] }} / {{ value.llm45 }}"
                },
            },
            {"id": "out", "type": "output", "config": {"name": "out"}},
        ],
        "edges": [
            {"source": "text", "target": "llm4", "source_port": "value", "target_port": "text"},
            {"source": "text", "target": "llm5", "source_port": "value", "target_port": "text"},
            {"source": "llm4", "target": "both", "source_port": "text", "target_port": "llm4"},
            {"source": "llm5", "target": "both", "source_port": "text", "target_port": "llm5"},
            {"source": "both", "target": "say", "source_port": "value", "target_port": "value"},
            {"source": "say", "target": "out", "source_port": "text", "target_port": "value"},
        ],
    }


def test_a_key_is_made_from_the_label_and_kept_unique() -> None:
    assert key_from("Summarise", set()) == "summarise"
    assert key_from("Summarise", {"summarise", "summarise_2"}) == "summarise_3"
    assert key_from("  Écrire -- le brouillon  ", set()) == "ecrire_le_brouillon"
    assert key_from("3 ideas", set()) == "_3_ideas"
    assert key_from("!!!", set(), fallback="llm1") == "llm1"
    long = key_from("x" * 500, set())
    assert graphs.document.is_identifier(long) and len(long) <= 100


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("summary", None),
        ("with-dash_2", None),
        ("my key", "a key is an identifier"),
        ("2x", "a key is an identifier"),
        ("../teams", "a key is an identifier"),
        ("", "a key is an identifier"),
        ("a" * 101, "a key is an identifier"),
        ("say", "another node already has the key say"),
    ],
)
def test_a_key_is_an_identifier_free_in_the_flow(key: str, problem: str | None) -> None:
    found = key_problem(key, {"say", "out"})
    if problem is None:
        assert found is None
    else:
        assert found is not None and found.startswith(problem)


def test_renaming_a_node_rewrites_its_edges_merge_port_and_the_prompt_after_the_merge() -> None:
    before = review_flow()
    after = rename_node(before, "llm4", "summary")
    after = rename_node(after, "llm5", "critique")
    assert [n["id"] for n in after["nodes"]] == [
        "text",
        "summary",
        "critique",
        "both",
        "say",
        "out",
    ]
    assert {(e["source"], e["target"], e["target_port"]) for e in after["edges"]} == {
        ("text", "summary", "text"),
        ("text", "critique", "text"),
        ("summary", "both", "summary"),
        ("critique", "both", "critique"),
        ("both", "say", "value"),
        ("say", "out", "value"),
    }
    # Only whole references change: value.llm45 is another name.
    template = after["nodes"][4]["config"]["template"]
    assert template == "{{ value.summary }} / {{ value['critique'] }} / {{ value.llm45 }}"
    # The renamed flow is still a valid flow, and the original is untouched.
    assert graphs.validate(graphs.load(after)) == []
    assert before["nodes"][1]["id"] == "llm4"


def test_renaming_to_a_taken_or_unsafe_key_is_refused() -> None:
    for bad in ("say", "x y", "a/../b"):
        with pytest.raises(FlowInvalid) as caught:
            rename_node(review_flow(), "llm4", bad)
        assert caught.value.problems[0].node == "llm4"
    with pytest.raises(FlowInvalid, match="no node 'nope'"):
        rename_node(review_flow(), "nope", "fine")


def test_a_port_named_otherwise_is_left_alone() -> None:
    flow = review_flow()
    flow["edges"][2]["target_port"] = "first"
    after = rename_node(flow, "llm4", "summary")
    assert after["edges"][2]["target_port"] == "first"
    assert "{{ value.llm4 }}" in after["nodes"][4]["config"]["template"]


def test_renaming_a_merge_port_rewrites_its_edge_and_the_references_after_it() -> None:
    after = rename_port(review_flow(), "both", "llm4", "summary")
    assert [e["target_port"] for e in after["edges"] if e["target"] == "both"] == [
        "summary",
        "llm5",
    ]
    assert after["nodes"][4]["config"]["template"].startswith("{{ value.summary }}")
    with pytest.raises(FlowInvalid, match="already has a port llm5"):
        rename_port(review_flow(), "both", "llm4", "llm5")
    with pytest.raises(FlowInvalid, match="only a merge"):
        rename_port(review_flow(), "say", "value", "v")
    with pytest.raises(FlowInvalid, match="a port name is an identifier"):
        rename_port(review_flow(), "both", "llm4", "no good")


def test_renaming_a_node_in_a_group_keeps_it_in_the_group_and_a_notes_id_is_taken() -> None:
    doc = {
        **review_flow(),
        "groups": [{"id": "drafts", "title": "Drafts", "nodes": ["llm4", "llm5"]}],
        "notes": [{"id": "todo", "text": "check the tone"}],
    }
    renamed = rename_node(doc, "llm4", "summary")
    assert renamed["groups"][0]["nodes"] == ["summary", "llm5"]
    graphs.load(renamed)  # still a valid document: the group names a node of the flow
    with pytest.raises(FlowInvalid):
        rename_node(doc, "llm4", "todo")
    with pytest.raises(FlowInvalid):
        rename_node(doc, "llm4", "drafts")
