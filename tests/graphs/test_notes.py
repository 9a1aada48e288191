"""Sticky notes and groups (graphs/notes.py): kept with the document, checked for shape,
never read by the engine."""

from __future__ import annotations

import json

import pytest

from graphs import document
from graphs.errors import FlowInvalid
from graphs.notes import MAX_GROUPS, MAX_NOTE_CHARS, MAX_NOTES
from tests.graphs.support import flow, node, run


def annotated() -> dict:
    doc = flow(
        node("q", "input", name="q"),
        node("shout", "template", template="{{ q | upper }}!"),
        node("out", "output", name="a"),
        edges=[("q", "value", "shout", "q"), ("shout", "text", "out", "value")],
    )
    doc["notes"] = [
        {
            "id": "why",
            "text": "<script>alert(1)</script> shouting is the point",
            "color": "yellow",
            "position": {"x": 10, "y": -40},
            "size": {"width": 220, "height": 100},
        }
    ]
    doc["groups"] = [
        {
            "id": "loud",
            "title": "The loud part",
            "color": "pink",
            "position": {"x": 0, "y": 0},
            "size": {"width": 500, "height": 200},
            "collapsed": True,
            "nodes": ["shout", "out"],
        }
    ]
    return doc


def refusals(doc: dict) -> list[str]:
    with pytest.raises(FlowInvalid) as caught:
        document.load(doc)
    return [str(p) for p in caught.value.problems]


def test_notes_and_groups_survive_a_load_and_dump_unchanged():
    doc = annotated()
    dumped = document.dump(document.load(json.loads(json.dumps(doc))))
    assert dumped["notes"] == doc["notes"]
    assert dumped["groups"] == doc["groups"]
    # Nothing of them leaks into the graph's own attributes.
    assert dumped["graph"] == doc["graph"]


def test_a_document_without_them_dumps_without_them():
    plain = annotated()
    del plain["notes"], plain["groups"]
    assert "notes" not in document.dump(document.load(plain))


async def test_a_flow_runs_the_same_with_notes_and_groups():
    plain = annotated()
    del plain["notes"], plain["groups"]
    with_notes, _ = await run(annotated(), {"q": "hi"})
    without, _ = await run(plain, {"q": "hi"})
    assert with_notes.outputs == without.outputs == {"a": "HI!"}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d["notes"][0].update(color="red;}"), "'color' must be one of"),
        (lambda d: d["notes"][0].update(id="../x"), "must be an identifier"),
        (lambda d: d["notes"][0].update(id="shout"), "'shout' is already taken"),
        (lambda d: d["groups"][0].update(id="why"), "'why' is already taken"),
        (lambda d: d["notes"][0].update(text="x" * (MAX_NOTE_CHARS + 1)), "at most 10,000"),
        (lambda d: d["notes"][0].update(onclick="x"), "unknown keys 'onclick'"),
        (lambda d: d["notes"][0].update(position={"x": "1", "y": 0}), "'position' must be"),
        (lambda d: d["groups"][0].update(size={"width": -1, "height": 5}), "'size' must be"),
        (lambda d: d["groups"][0].update(nodes=["ghost"]), "'ghost', which is not a node"),
        (lambda d: d["groups"][0].update(collapsed="yes"), "'collapsed' must be true or false"),
        (lambda d: d.update(notes={"id": "n"}), "'notes' must be a list"),
        (lambda d: d.update(notes=[{"id": f"n{i}"} for i in range(MAX_NOTES + 1)]), "limit is 500"),
        (lambda d: d.update(groups=[{"id": f"g{n}"} for n in range(MAX_GROUPS + 1)]), "is 200"),
        (lambda d: d["graph"].update({document.ANNOTATIONS: {}}), "is reserved"),
    ],
)
def test_malformed_notes_and_groups_are_refused_with_a_reason(change, expected):
    doc = annotated()
    change(doc)
    assert any(expected in problem for problem in refusals(doc)), refusals(doc)


def test_a_node_is_in_one_group_at_most():
    doc = annotated()
    doc["groups"].append({"id": "again", "nodes": ["out"]})
    assert any("'out' is already in another group" in p for p in refusals(doc))
