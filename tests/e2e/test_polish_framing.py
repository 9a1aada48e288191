"""Zoom after Auto-layout: a ten-node flow arranged by the server stays at a readable zoom
(text at least 11 px on screen), its start in view, with room between its nodes; the Fit
button still shows all of it however small."""

from __future__ import annotations

import itertools

from playwright.sync_api import Browser, expect

from tests.e2e.conftest import Server, log_in
from tests.e2e.test_editor import create_flow, new_user, open_editor


def ten_node_chain() -> dict:
    """input, eight template steps, output: ten layers once laid out, all stacked at first
    (so Auto-layout has something to do)."""
    nodes = [{"id": "topic", "type": "input", "config": {"name": "topic"},
              "position": {"x": 0, "y": 0}}]  # fmt: skip
    edges = []
    previous, port = "topic", "value"
    for i in range(8):
        node = f"step{i}"
        nodes.append(
            {
                "id": node,
                "type": "template",
                "config": {"template": f"{{{{ draft }}}} {i}"},
                "position": {"x": 20 * i, "y": 20 * i},
            }
        )
        edges.append(
            {"source": previous, "target": node, "source_port": port, "target_port": "draft"}
        )
        previous, port = node, "text"
    nodes.append({"id": "out", "type": "output", "config": {"name": "out"},
                  "position": {"x": 0, "y": 300}})  # fmt: skip
    edges.append({"source": previous, "target": "out", "source_port": port, "target_port": "value"})
    return {"graph": {"name": "Ten in a row"}, "nodes": nodes, "edges": edges}


SMALLEST_TEXT = """() => {
    const zoom = Switchyard.canvas.graph.zoom();
    const sizes = [...document.querySelectorAll('.sy-title, .sy-kind, .sy-port-label')]
        .map((el) => parseFloat(getComputedStyle(el).fontSize) * zoom);
    return {zoom, smallest: Math.min(...sizes)};
}"""


def test_auto_layout_keeps_text_readable_and_leaves_room(browser: Browser, server: Server) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    alice = new_user(server)
    flow_id = create_flow(server, alice, ten_node_chain())
    log_in(page, server, alice)
    open_editor(page, server, flow_id)
    page.wait_for_selector('[data-cell-id="step0"] [port="in:draft"]')

    page.get_by_test_id("layout").click()
    page.wait_for_function(
        """() => { const x = Object.fromEntries(Switchyard.canvas.documentJSON().nodes
            .map((n) => [n.id, n.position.x])); return x.topic < x.step0 && x.step7 < x.out; }"""
    )
    page.wait_for_function(f"() => ({SMALLEST_TEXT})().smallest >= 11")
    text = page.evaluate(SMALLEST_TEXT)
    assert text["zoom"] >= 0.85, text

    # The start of the flow is in view.
    canvas = page.get_by_test_id("canvas").bounding_box()
    first = page.locator('[data-cell-id="topic"] .sy-body').bounding_box()
    assert canvas is not None and first is not None
    assert (
        canvas["x"] <= first["x"] and first["x"] + first["width"] <= canvas["x"] + canvas["width"]
    )
    assert (
        canvas["y"] <= first["y"] and first["y"] + first["height"] <= canvas["y"] + canvas["height"]
    )

    # Room between the nodes, on the graph's own scale: 40 px at least between any two.
    boxes = page.evaluate(
        "() => Switchyard.canvas.graph.getNodes().map((n) => n.getBBox())"
        ".map((b) => ({x: b.x, y: b.y, width: b.width, height: b.height}))"
    )
    assert len(boxes) == 10
    for a, b in itertools.combinations(boxes, 2):
        gap_x = max(b["x"] - (a["x"] + a["width"]), a["x"] - (b["x"] + b["width"]))
        gap_y = max(b["y"] - (a["y"] + a["height"]), a["y"] - (b["y"] + b["height"]))
        assert max(gap_x, gap_y) >= 40, (a, b)

    # Fit shows all of it, however small that makes it.
    page.get_by_test_id("zoom-fit").click()
    page.wait_for_function("() => Switchyard.canvas.graph.zoom() < 0.85")
    expect(page.locator('[data-cell-id="out"] .sy-body')).to_be_in_viewport()
    context.close()
    assert errors == []
