"""Where wires run on the canvas: a wire whose plain curve would pass through a third node
goes round it instead of behind it, and the loop template's back-edge goes round its nodes
without crossing another wire (routes.js)."""

from __future__ import annotations

import itertools

from playwright.sync_api import Page, expect

from tests.e2e.conftest import Server, log_in
from tests.e2e.test_editor import READY, create_flow, errors, new_user, open_editor  # noqa: F401

# Every drawn edge as points along its path, and every node's box, in the graph's own
# coordinates (the path's d is drawn in them).
GEOMETRY = """() => {
    const graph = Switchyard.canvas.graph;
    const edges = graph.getEdges().map((edge) => {
        const view = graph.findViewByCell(edge);
        const path = view && view.container.querySelector('.sy-edge-line');
        const points = [];
        if (path) {
            const length = path.getTotalLength();
            for (let at = 0; at <= length; at += 3) {
                const p = path.getPointAtLength(at);
                points.push([p.x, p.y]);
            }
        }
        return {id: edge.id, source: edge.getSourceCellId(), target: edge.getTargetCellId(),
                points};
    });
    const nodes = Object.fromEntries(graph.getNodes().map((n) => {
        const b = n.getBBox();
        return [n.id, {x: b.x, y: b.y, width: b.width, height: b.height}];
    }));
    return {edges, nodes};
}"""


def inside(point: list[float], box: dict) -> bool:
    x, y = point
    return box["x"] < x < box["x"] + box["width"] and box["y"] < y < box["y"] + box["height"]


def routed(page: Page, count: int) -> dict:
    """The geometry once `count` edges are drawn and every node's ports are in."""
    page.wait_for_function(
        f"""() => Switchyard.canvas.graph.getEdges().filter((e) => {{
            const v = Switchyard.canvas.graph.findViewByCell(e);
            return v?.container?.querySelector('.sy-edge-line')?.getTotalLength?.() > 0;
        }}).length === {count}"""
    )
    return page.evaluate(GEOMETRY)


def crosses(a: list[list[float]], b: list[list[float]]) -> bool:
    """Do two polylines intersect (segments properly crossing)?"""

    def orient(p, q, r) -> float:
        return (q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0])

    for p1, p2 in itertools.pairwise(a):
        for q1, q2 in itertools.pairwise(b):
            d1, d2 = orient(q1, q2, p1), orient(q1, q2, p2)
            d3, d4 = orient(p1, p2, q1), orient(p1, p2, q2)
            if d1 * d2 < 0 and d3 * d4 < 0:
                return True
    return False


def test_a_wire_past_a_third_node_runs_round_it_not_behind_it(
    page: Page,
    server: Server,
    errors: list[str],  # noqa: F811 (the fixture)
) -> None:
    # topic feeds the output directly, straight across `middle`, which sits on the line.
    document = {
        "graph": {"name": "Across"},
        "nodes": [
            {"id": "topic", "type": "input", "config": {"name": "topic"},
             "position": {"x": 0, "y": 100}},
            {"id": "middle", "type": "template", "config": {"template": "{{ v }}"},
             "position": {"x": 330, "y": 90}},
            {"id": "out", "type": "output", "config": {"name": "out"},
             "position": {"x": 700, "y": 100}},
        ],
        "edges": [
            {"source": "topic", "target": "out", "source_port": "value", "target_port": "value"},
        ],
    }  # fmt: skip
    alice = new_user(server)
    flow_id = create_flow(server, alice, document)
    log_in(page, server, alice)
    open_editor(page, server, flow_id)
    geometry = routed(page, 1)
    (edge,) = geometry["edges"]
    middle = geometry["nodes"]["middle"]
    # (The plain curve would: the ports are at the height of middle's body.)
    assert middle["y"] < edge["points"][0][1] < middle["y"] + middle["height"]
    through = [p for p in edge["points"] if inside(p, middle)]
    assert through == [], f"the wire runs behind `middle` at {through[:3]}"

    # Moved out of the way, the node no longer bends the wire: it is the plain curve again,
    # no longer than the way between its ports; moved back onto it, the wire goes round.
    def length() -> float:
        return page.evaluate(
            """() => Switchyard.canvas.graph.getEdges()[0] && Switchyard.canvas.graph
                .findViewByCell(Switchyard.canvas.graph.getEdges()[0])
                ?.container?.querySelector('.sy-edge-line')?.getTotalLength() || 0"""
        )

    detour = length()
    page.evaluate("() => Switchyard.canvas.graph.getCellById('middle').position(330, 400)")
    page.wait_for_function(f"() => ({GEOMETRY})().edges[0].points.length * 3 < {detour} - 30")
    page.evaluate("() => Switchyard.canvas.graph.getCellById('middle').position(330, 90)")
    page.wait_for_function(f"() => ({GEOMETRY})().edges[0].points.length * 3 > {detour} - 10")
    geometry = page.evaluate(GEOMETRY)
    assert [p for p in geometry["edges"][0]["points"] if inside(p, middle)] == []


def test_the_loop_templates_back_edge_crosses_no_other_wire_and_no_node(
    page: Page,
    server: Server,
    errors: list[str],  # noqa: F811 (the fixture)
) -> None:
    bob = new_user(server)
    log_in(page, server, bob)
    page.goto(f"{server.url}/flows/templates/")
    page.get_by_test_id("template-loop").get_by_role("button", name="Use the template").click()
    page.wait_for_function(READY)
    expect(page.locator('[data-cell-id="fix"]')).to_be_visible()
    geometry = routed(page, 5)
    nodes = geometry["nodes"]
    backward = [e for e in geometry["edges"] if e["points"][-1][0] < e["points"][0][0]]
    assert backward, "the loop has a back-edge"
    for edge in backward:
        # Round every node: its points are in no node's box (its own ends aside, where it
        # leaves and enters a port on the node's edge).
        for node_id, box in nodes.items():
            points = edge["points"][4:-4]
            hits = [p for p in points if inside(p, box)]
            assert hits == [], f"{edge['source']}->{edge['target']} runs through {node_id}"
        for other in geometry["edges"]:
            shared = {edge["source"], edge["target"]} & {other["source"], other["target"]}
            if other is edge or shared:
                continue
            assert not crosses(edge["points"], other["points"]), (
                f"{edge['source']}->{edge['target']} crosses {other['source']}->{other['target']}"
            )
    # And the wires that share a node with it touch it only at that node's ports: they do
    # not cross along the way.
    for edge in backward:
        for other in geometry["edges"]:
            if other is edge:
                continue
            assert not crosses(edge["points"][6:-6], other["points"][6:-6]), (
                f"{edge['source']}->{edge['target']} crosses {other['source']}->{other['target']}"
            )
