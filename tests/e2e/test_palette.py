"""Adding nodes without dragging (issue 14, item 11): a click or Enter on a palette item
adds the node at a free spot near the middle of the view, never on another node; the
palette's search box filters by name, category and help text and is driven by keyboard."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.e2e.conftest import Server, log_in
from tests.e2e.test_editor import create_flow, doc, new_user, open_editor


def boxes(page: Page) -> dict[str, dict]:
    return page.evaluate(
        """() => Object.fromEntries(Switchyard.canvas.graph.getNodes().map(n => {
            const b = n.getBBox();
            return [n.id, {x: b.x, y: b.y, w: b.width, h: b.height}];
        }))"""
    )


def overlapping(found: dict[str, dict]) -> list[tuple[str, str]]:
    items = sorted(found.items())
    return [
        (a, b)
        for i, (a, p) in enumerate(items)
        for b, q in items[i + 1 :]
        if p["x"] < q["x"] + q["w"]
        and q["x"] < p["x"] + p["w"]
        and p["y"] < q["y"] + q["h"]
        and q["y"] < p["y"] + p["h"]
    ]


def test_alice_adds_nodes_with_clicks_and_enter_and_none_lands_on_another(
    page: Page, server: Server
) -> None:
    alice = new_user(server)
    flow_id = create_flow(server, alice)
    log_in(page, server, alice)
    open_editor(page, server, flow_id)

    page.get_by_test_id("palette-llm").click()
    page.wait_for_selector('[data-cell-id="llm1"]')
    page.get_by_test_id("palette-llm").click()
    page.wait_for_selector('[data-cell-id="llm2"]')
    page.get_by_test_id("palette-output").focus()
    page.keyboard.press("Enter")
    page.wait_for_selector('[data-cell-id="output1"]')
    for _ in range(3):
        page.get_by_test_id("palette-template").click()
    page.wait_for_selector('[data-cell-id="template3"]')
    found = boxes(page)
    assert len(found) == 6
    assert overlapping(found) == []

    # All of them in view, the first one at the middle of it.
    canvas = page.get_by_test_id("canvas").bounding_box()
    assert canvas is not None
    for node_id in found:
        box = page.locator(f'#ed-canvas [data-cell-id="{node_id}"]').bounding_box()
        assert box is not None
        assert canvas["x"] <= box["x"] and box["x"] + box["width"] <= canvas["x"] + canvas["width"]
    first = page.locator('#ed-canvas [data-cell-id="llm1"]').bounding_box()
    assert first is not None
    assert abs(first["x"] + first["width"] / 2 - (canvas["x"] + canvas["width"] / 2)) < 10
    # One undo takes back one added node.
    page.locator('[data-testid="canvas"]').click(position={"x": 10, "y": 10})
    page.keyboard.press("Control+z")
    page.wait_for_selector('[data-cell-id="template3"]', state="detached")


def test_alice_finds_a_node_type_by_typing_and_adds_it_with_the_keyboard(
    page: Page, server: Server
) -> None:
    alice = new_user(server)
    flow_id = create_flow(server, alice)
    log_in(page, server, alice)
    open_editor(page, server, flow_id)

    search = page.get_by_test_id("palette-search")
    search.fill("merg")
    expect(page.locator("[data-palette-type]:visible")).to_have_count(1)
    expect(page.get_by_test_id("palette-merge")).to_be_visible()
    page.keyboard.press("Enter")
    page.wait_for_selector('[data-cell-id="merge1"]')

    # By category and by help text; arrows choose among the matches.
    search.fill("model")
    visible = page.locator("[data-palette-type]:visible")
    expect(page.get_by_test_id("palette-input")).to_be_hidden()
    shown = visible.evaluate_all("els => els.map(e => e.dataset.paletteType)")
    assert {"llm", "agent"} <= set(shown) and "input" not in shown
    page.keyboard.press("ArrowDown")
    expect(page.get_by_test_id(f"palette-{shown[1]}")).to_have_class("ed-pal-item is-active")
    page.keyboard.press("Enter")
    page.wait_for_selector(f'[data-cell-id="{shown[1]}1"]')
    search.fill("sandbox")
    expect(page.locator("[data-palette-type]:visible")).to_have_count(1)
    expect(page.get_by_test_id("palette-code")).to_be_visible()
    search.fill("no such thing")
    expect(page.locator("[data-palette-none]")).to_be_visible()
    page.keyboard.press("Escape")
    every = page.locator("[data-palette-type]").count()
    expect(page.locator("[data-palette-type]:visible")).to_have_count(every)
    assert sorted(n["type"] for n in doc(page)["nodes"]) == sorted(["merge", shown[1]])
    assert overlapping(boxes(page)) == []
