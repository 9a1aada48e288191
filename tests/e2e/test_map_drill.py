"""A map node's inner flow on the canvas, in a real browser: alice double-clicks her map
and builds what runs per item with the palette, wires, forms, checks and undo of the
flow itself; the breadcrumb takes her back; one save keeps both levels; and on the run
page the map opens the same way onto its items, each painted on the inner nodes."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.e2e.conftest import Server, log_in
from tests.e2e.test_editor import (  # noqa: F401 (errors: a fixture)
    READY,
    add_node,
    connect,
    create_flow,
    doc,
    errors,
    open_editor,
)
from tests.e2e.test_runs import TIMEOUT_MS, canvas_status, start_run

# Each item straight to its result: a new map node's inner flow (graphs/nodes/map.py).
EACH_ITEM = {
    "directed": True,
    "multigraph": True,
    "graph": {"name": "each item", "description": ""},
    "nodes": [
        {"id": "item", "type": "input", "config": {"name": "item"}, "position": {"x": 0, "y": 100}},
        {
            "id": "result",
            "type": "output",
            "config": {"name": "result"},
            "position": {"x": 300, "y": 100},
        },
    ],
    "edges": [
        {"source": "item", "target": "result", "source_port": "value", "target_port": "value"}
    ],
}


def map_flow() -> dict:
    def at(x: int) -> dict:
        return {"x": x, "y": 120}

    return {
        "graph": {"name": "Words"},
        "nodes": [
            {
                "id": "words",
                "type": "input",
                "config": {"name": "words", "default": ["ant", "bee"]},
                "position": at(0),
            },
            {
                "id": "each",
                "type": "map",
                "label": "Each word",
                "config": {"flow": EACH_ITEM, "concurrency": 2},
                "position": at(300),
            },
            {"id": "out", "type": "output", "config": {"name": "results"}, "position": at(600)},
        ],
        "edges": [
            {"source": "words", "target": "each", "source_port": "value", "target_port": "items"},
            {"source": "each", "target": "out", "source_port": "results", "target_port": "value"},
        ],
    }


def inner(page: Page) -> dict:
    """The map's inner flow as the whole document has it (written back while inside)."""
    return next(n for n in doc(page)["nodes"] if n["id"] == "each")["config"]["flow"]


def node_box(page: Page, node: str) -> dict:
    box = page.locator(f'[data-cell-id="{node}"] .sy-node').first.bounding_box()
    assert box is not None, node
    return box


def drill_into_each(page: Page) -> None:
    page.locator('[data-cell-id="each"] .sy-title').dblclick()
    expect(page.get_by_test_id("drill-crumbs")).to_be_visible()
    page.wait_for_selector('[data-cell-id="item"]')


def test_alice_builds_a_maps_inner_flow_on_the_canvas_and_sees_its_items_run(
    page: Page,
    server: Server,
    errors: list[str],  # noqa: F811 (the fixture)
) -> None:
    username = server.create_user("alice_drill")
    flow_id = create_flow(server, username, map_flow())
    log_in(page, server, username)
    open_editor(page, server, flow_id)

    # Into the map: its inner flow on the canvas, a breadcrumb back to the flow.
    drill_into_each(page)
    crumbs = page.get_by_test_id("drill-crumbs")
    expect(crumbs).to_contain_text("Words")
    expect(crumbs).to_contain_text("Each word")
    expect(page.locator('[data-cell-id="words"]')).to_have_count(0)
    expect(page.get_by_test_id("dirty")).to_be_hidden()  # looking changes nothing

    # Its result goes; an llm and an output come from the palette, wired from the item.
    page.locator('[data-cell-id="result"] .sy-title').click()
    page.wait_for_selector('[data-cell-id="result"] .is-selected')
    page.keyboard.press("Delete")
    page.wait_for_selector('[data-cell-id="result"]', state="detached")
    item = node_box(page, "item")
    canvas = page.get_by_test_id("canvas").bounding_box()
    assert canvas is not None
    below = item["y"] + item["height"] + 120
    add_node(page, "llm", (canvas["x"] + canvas["width"] * 0.3, below), "llm1")
    add_node(page, "output", (canvas["x"] + canvas["width"] * 0.75, below), "output1")
    # A dropped node's form opens: let it arrive before asking for another.
    expect(page.locator('form[data-node="output1"][data-ready]')).to_be_visible()

    # The form of an inner node is the usual one; its variable becomes a port, and the
    # inner flow's own check puts the unwired variable's problem on the node.
    page.locator('[data-cell-id="llm1"] .sy-title').click()
    form = page.locator('form[data-testid="node-form"][data-node="llm1"][data-ready]')
    form.locator('textarea[name="f_prompt"]').fill("Say {{ item }} #fake:chunk_delay=0.2")
    expect(page.get_by_test_id("variables-prompt")).to_contain_text("{{ item }}")
    page.wait_for_function(
        """() => document.querySelector('[data-cell-id="llm1"] [port="in:item"]') !== null"""
    )
    expect(page.locator('[data-cell-id="llm1"] .has-problem')).to_have_count(1, timeout=TIMEOUT_MS)
    connect(page, "item", "value", "llm1", "item")
    connect(page, "llm1", "text", "output1", "value")
    page.wait_for_function(
        "() => Switchyard.canvas.documentJSON().nodes.find(n => n.id === 'each')"
        ".config.flow.edges.length === 2"
    )
    expect(page.locator('[data-cell-id="llm1"] .has-problem')).to_have_count(0, timeout=TIMEOUT_MS)
    assert {(e["source"], e["target"]) for e in inner(page)["edges"]} == {
        ("item", "llm1"),
        ("llm1", "output1"),
    }
    # The whole document is the flow, with this level written into the map.
    assert [n["id"] for n in doc(page)["nodes"]] == ["words", "each", "out"]
    expect(page.get_by_test_id("dirty")).to_be_visible()

    # Undo and redo work inside: a stray node added and taken back.
    blank = (canvas["x"] + 20, canvas["y"] + canvas["height"] - 20)
    add_node(page, "template", (canvas["x"] + canvas["width"] * 0.75, item["y"] - 60), "template1")
    page.mouse.click(*blank)
    page.keyboard.press("Control+z")
    page.wait_for_selector('[data-cell-id="template1"]', state="detached")
    assert sorted(n["id"] for n in inner(page)["nodes"]) == ["item", "llm1", "output1"]

    # Back up by the breadcrumb: the map's ports follow its new inner flow, and one undo
    # there takes the whole visit back (redo brings it again).
    crumbs.get_by_test_id("drill-up-0").click()
    expect(crumbs).to_be_hidden()
    page.wait_for_selector('[data-cell-id="words"]')
    assert sorted(n["id"] for n in inner(page)["nodes"]) == ["item", "llm1", "output1"]
    page.keyboard.press("Control+z")
    page.wait_for_function(
        "() => Switchyard.canvas.documentJSON().nodes.find(n => n.id === 'each')"
        ".config.flow.nodes.some(n => n.id === 'result')"
    )
    page.keyboard.press("Control+Shift+z")
    page.wait_for_function(
        "() => Switchyard.canvas.documentJSON().nodes.find(n => n.id === 'each')"
        ".config.flow.nodes.some(n => n.id === 'llm1')"
    )

    # One save keeps both levels; a reload opens the map onto what was built.
    page.keyboard.press("Control+s")
    expect(page.get_by_test_id("version")).to_have_text("v2")
    expect(page.get_by_test_id("dirty")).to_be_hidden()
    page.reload()
    page.wait_for_function(READY)
    llm = next(n for n in inner(page)["nodes"] if n["id"] == "llm1")
    assert llm["config"]["prompt"] == "Say {{ item }} #fake:chunk_delay=0.2"
    drill_into_each(page)
    expect(page.locator('[data-testid="canvas"] [data-cell-id="llm1"]')).to_have_count(1)
    crumbs.get_by_test_id("drill-up-0").click()
    expect(page.get_by_test_id("dirty")).to_be_hidden()

    # A run; its page opens the map onto its items, one at a time.
    run_id = start_run(page)
    page.goto(f"{server.url}/runs/{run_id}/")
    page.wait_for_selector('[data-cell-id="each"]')
    expect(page.locator('[data-testid="outputs"]')).to_contain_text(
        "fake reply: Say bee", timeout=TIMEOUT_MS
    )
    drill_into_each(page)
    expect(page.locator('[data-cell-id="llm1"]')).to_contain_text("fake reply: Say ant")
    assert canvas_status(page, "llm1") == "done"
    picker = page.get_by_test_id("drill-item")
    expect(picker.locator("option")).to_have_count(2)
    picker.select_option("1")
    expect(page.locator('[data-cell-id="llm1"]')).to_contain_text("fake reply: Say bee")
    # Back at the flow, its own run state is painted again.
    page.get_by_test_id("drill-up-0").click()
    expect(page.locator('[data-cell-id="each"] .sy-node')).to_have_class(
        re.compile(r"\bst-done\b"), timeout=TIMEOUT_MS
    )


def test_maps_in_maps_open_level_by_level_and_the_breadcrumb_goes_back_any_number(
    page: Page,
    server: Server,
    errors: list[str],  # noqa: F811 (the fixture)
) -> None:
    # A map whose inner flow maps again: each word, then each of its letters.
    letters = {
        "graph": {"name": "letters"},
        "nodes": [
            {
                "id": "item",
                "type": "input",
                "config": {"name": "item"},
                "position": {"x": 0, "y": 100},
            },
            {
                "id": "deep",
                "type": "map",
                "label": "Each letter",
                "config": {"flow": EACH_ITEM},
                "position": {"x": 300, "y": 100},
            },
            {
                "id": "result",
                "type": "output",
                "config": {"name": "result"},
                "position": {"x": 600, "y": 100},
            },
        ],
        "edges": [
            {"source": "item", "target": "deep", "source_port": "value", "target_port": "items"},
            {
                "source": "deep",
                "target": "result",
                "source_port": "results",
                "target_port": "value",
            },
        ],
    }
    flow = map_flow()
    flow["nodes"][1]["config"]["flow"] = letters
    username = server.create_user("alice_nested")
    flow_id = create_flow(server, username, flow)
    log_in(page, server, username)
    open_editor(page, server, flow_id)

    drill_into_each(page)
    # The second level through the map's form, its button.
    page.locator('[data-testid="canvas"] [data-cell-id="deep"] .sy-title').click()
    page.locator('form[data-node="deep"][data-ready] [data-testid="drill-open"]').click()
    crumbs = page.get_by_test_id("drill-crumbs")
    expect(crumbs).to_contain_text("Each letter")
    expect(crumbs.locator("button")).to_have_count(2)  # the flow, then "Each word"
    expect(page.locator('[data-testid="canvas"] [data-cell-id="deep"]')).to_have_count(0)
    expect(page.get_by_test_id("dirty")).to_be_hidden()

    # A name changed two levels down lands in the document at once (an output node has one
    # Name, no Label).
    page.locator('[data-testid="canvas"] [data-cell-id="result"] .sy-title').click()
    form = page.locator('form[data-testid="node-form"][data-node="result"][data-ready]')
    form.locator('input[name="f_name"]').fill("letter_out")
    page.wait_for_function(
        """() => Switchyard.canvas.documentJSON().nodes[1].config.flow.nodes[1].config.flow
            .nodes.some(n => n.type === 'output' && n.config.name === 'letter_out')"""
    )
    expect(page.get_by_test_id("dirty")).to_be_visible()

    # Straight back to the flow: both levels written into their maps, and saved as one.
    crumbs.get_by_test_id("drill-up-0").click()
    expect(crumbs).to_be_hidden()
    page.wait_for_selector('[data-testid="canvas"] [data-cell-id="words"]')
    page.keyboard.press("Control+s")
    expect(page.get_by_test_id("version")).to_have_text("v2")
    saved = doc(page)["nodes"][1]["config"]["flow"]
    assert [n["id"] for n in saved["nodes"]] == ["item", "deep", "result"]
    deepest = saved["nodes"][1]["config"]["flow"]
    outputs = [n["config"]["name"] for n in deepest["nodes"] if n["type"] == "output"]
    assert outputs == ["letter_out"]
    # The levels not edited are as they were.
    assert saved["graph"] == {"name": "letters"}
