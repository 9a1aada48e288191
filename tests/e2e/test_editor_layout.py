"""The editor's layout in a real browser: the right column's tabs (nothing overlaps, "Start
run" on screen at 1280x800 and 1440x900), readable text on the canvas, and the minimap."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import Server, log_in
from tests.e2e.test_editor import READY, create_flow, new_user, open_editor

EXAMPLES = Path(__file__).parents[2] / "examples"
SIZES = [(1280, 800), (1440, 900)]


def example(name: str) -> dict:
    return json.loads((EXAMPLES / f"{name}.json").read_text())


def ten_nodes() -> dict:
    """A ten-node flow laid out as the examples are (250 px apart): input, eight llm steps
    in two rows, output."""
    nodes = [
        {"id": "topic", "type": "input", "config": {"name": "topic"}, "position": {"x": 0, "y": 0}}
    ]
    edges = []
    previous, port = "topic", "value"
    for i in range(8):
        node = f"step{i}"
        nodes.append(
            {
                "id": node,
                "type": "llm",
                "label": f"Step {i} of the long essay pipeline",
                "config": {"prompt": f"Improve: {{{{ draft }}}} (step {i})"},
                "position": {"x": 250 * (1 + i % 4), "y": 0 if i < 4 else 260},
            }
        )
        edges.append(
            {"source": previous, "target": node, "source_port": port, "target_port": "draft"}
        )
        previous, port = node, "text"
    nodes.append(
        {
            "id": "out",
            "type": "output",
            "config": {"name": "essay"},
            "position": {"x": 1250, "y": 260},
        }
    )
    edges.append(
        {"source": previous, "target": "out", "source_port": "text", "target_port": "value"}
    )
    return {"graph": {"name": "Ten nodes"}, "nodes": nodes, "edges": edges}


def boxes(page: Page, selectors: list[str]) -> dict[str, dict]:
    """The on-screen boxes of the visible elements among `selectors`."""
    found = {}
    for selector in selectors:
        locator = page.locator(selector).first
        if locator.count() and locator.is_visible():
            box = locator.bounding_box()
            assert box is not None
            found[selector] = box
    return found


def overlap(a: dict, b: dict) -> bool:
    return (
        a["x"] < b["x"] + b["width"] - 0.5
        and b["x"] < a["x"] + a["width"] - 0.5
        and a["y"] < b["y"] + b["height"] - 0.5
        and b["y"] < a["y"] + a["height"] - 0.5
    )


def fully_on_screen(page: Page, selector: str) -> None:
    """The element is inside the viewport and is what the page shows at the middle of its edges (no
    scroll box clips it, nothing covers it)."""
    box = page.locator(selector).bounding_box()
    assert box is not None
    view = page.viewport_size
    assert view is not None
    assert box["x"] >= 0 and box["y"] >= 0, box
    assert (
        box["x"] + box["width"] <= view["width"] and box["y"] + box["height"] <= view["height"]
    ), (box, view)
    covered = page.evaluate(
        """(selector) => {
            const el = document.querySelector(selector);
            const r = el.getBoundingClientRect();
            // Mid-edges, 3 px in: hit testing follows rounded corners.
            const cx = (r.left + r.right) / 2, cy = (r.top + r.bottom) / 2;
            const points = [[r.left + 3, cy], [r.right - 3, cy],
                            [cx, r.top + 3], [cx, r.bottom - 3]];
            return points.filter(([x, y]) => !el.contains(document.elementFromPoint(x, y)));
        }""",
        selector,
    )
    if covered:
        page.screenshot(path="/tmp/ed-layout-fail.png")
        print(
            page.evaluate(
                "([x, y]) => document.elementFromPoint(x, y).outerHTML.slice(0, 300)", covered[0]
            )
        )
    assert covered == [], f"{selector} is clipped or covered at {covered}"


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_the_right_column_never_overlaps_and_start_run_is_on_screen(
    browser: Browser, server: Server, width: int, height: int
) -> None:
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    alice = new_user(server)
    flow_id = create_flow(server, alice, example("router"))
    log_in(page, server, alice)
    open_editor(page, server, flow_id)

    # No problems, no count on the Node tab.
    expect(page.get_by_test_id("tab-node").locator("[data-tab-count]")).to_be_hidden()
    # No node selected takes one line, not half the column.
    empty = page.locator(".ed-panel-empty p.muted")
    expect(empty).to_be_visible()
    assert empty.bounding_box()["height"] < 50

    page.click('[data-cell-id="code"] .sy-title')
    form = page.locator('form[data-testid="node-form"][data-node="code"][data-ready]')
    expect(form).to_be_visible()
    # A variable with no edge: the save lists a problem, which must not hide the form.
    form.locator('textarea[name="f_prompt"]').fill("Answer {{ question }} and {{ missing }}")
    page.wait_for_selector('[data-cell-id="code"] [port="in:missing"]')
    page.get_by_test_id("save").click()
    problems = page.get_by_test_id("problems")
    expect(problems).to_be_visible()
    expect(page.get_by_test_id("tab-node").locator("[data-tab-count]")).to_be_visible()
    parts = [
        ".ed-side .run-bar",
        ".ed-tabs",
        '[data-testid="problems"]',
        '[data-testid="warnings"]',
        'form[data-testid="node-form"]',
    ]
    shown = boxes(page, parts)
    assert {'[data-testid="problems"]', 'form[data-testid="node-form"]'} <= set(shown)
    for i, a in enumerate(parts):
        for b in parts[i + 1 :]:
            if a in shown and b in shown:
                assert not overlap(shown[a], shown[b]), f"{a} overlaps {b}"
    # The form's own fields can be scrolled to and are not under the problems.
    prompt = form.locator('textarea[name="f_prompt"]')
    prompt.scroll_into_view_if_needed()
    assert not overlap(prompt.bounding_box(), problems.bounding_box())
    prompt.fill("Answer {{ question }}")
    page.wait_for_selector('[data-cell-id="code"] [port="in:missing"]', state="detached")

    # Run opens the run tab; its form's "Start run" is wholly on screen.
    page.get_by_test_id("run").click()
    expect(page.get_by_test_id("tab-run")).to_have_attribute("aria-selected", "true")
    submit = page.get_by_test_id("run-submit")
    expect(submit).to_be_visible()
    expect(form).to_be_hidden()
    fully_on_screen(page, '[data-testid="run-submit"]')
    fully_on_screen(page, '[data-testid="run"]')

    # The tabs switch by click and by arrow keys.
    page.get_by_test_id("tab-node").click()
    expect(form).to_be_visible()
    page.get_by_test_id("tab-node").press("ArrowRight")
    expect(page.get_by_test_id("tab-run")).to_be_focused()
    expect(submit).to_be_visible()
    context.close()
    assert errors == []


def test_text_on_a_ten_node_flow_is_readable_at_the_default_zoom(
    page: Page, server: Server
) -> None:
    alice = new_user(server)
    flow_id = create_flow(server, alice, ten_nodes())
    log_in(page, server, alice)
    open_editor(page, server, flow_id)
    page.wait_for_selector('[data-cell-id="step0"] [port="in:draft"]')

    # Every piece of text drawn on the canvas is at least 11 px on screen.
    sizes = page.evaluate(
        """() => {
            const zoom = Switchyard.canvas.graph.zoom();
            const pick = (sel) => [...document.querySelectorAll(sel)]
                .map((el) => parseFloat(getComputedStyle(el).fontSize) * zoom);
            return {zoom, title: pick('.sy-title'), kind: pick('.sy-kind'),
                    port: pick('.x6-port-label text, .sy-port-label'), stream: pick('.sy-stream')};
        }"""
    )
    for kind in ("title", "kind", "port", "stream"):
        assert sizes[kind], kind
        assert min(sizes[kind]) >= 11, (kind, sizes)

    # A long label ends, ellipsised, before the type tag.
    title = page.locator('[data-cell-id="step0"] .sy-title')
    expect(title).to_contain_text("…")
    title_box = title.bounding_box()
    kind_box = page.locator('[data-cell-id="step0"] .sy-kind').bounding_box()
    assert title_box["x"] + title_box["width"] < kind_box["x"]

    # Streamed text wraps between words, and the node keeps its size while it streams.
    before = page.locator('[data-cell-id="step0"] .sy-body').bounding_box()
    text = "Queues smooth out bursts of work so producers never wait for slow consumers " * 3
    page.evaluate("(t) => Switchyard.canvas.setText('step0', t)", text)
    stream = page.locator('[data-cell-id="step0"] .sy-stream')
    expect(stream).to_contain_text("consumers")
    lines = stream.locator("tspan").all_text_contents()
    words = set(text.split())
    assert len(lines) > 1
    for line in lines:
        assert all(word in words for word in line.split()), f"a word was cut: {line!r}"
    after = page.locator('[data-cell-id="step0"] .sy-body').bounding_box()
    assert after["height"] == pytest.approx(before["height"], abs=0.5)
    # Nodes of a row leave room between them: none overlaps its neighbour.
    drawn = page.locator('[data-cell-id^="step"] .sy-body')
    node_boxes = [drawn.nth(i).bounding_box() for i in range(drawn.count())]
    assert len(node_boxes) >= 2
    for a, b in itertools.combinations(node_boxes, 2):
        assert not overlap(a, b), (a, b)


def test_the_minimap_frames_the_view_pans_on_click_and_drag_and_folds_away(
    page: Page, server: Server
) -> None:
    alice = new_user(server)
    flow_id = create_flow(server, alice, ten_nodes())
    log_in(page, server, alice)
    open_editor(page, server, flow_id)
    # The flow does not fit at a readable zoom: the map opens by itself.
    body = page.get_by_test_id("minimap")
    expect(body).to_be_visible()
    frame = page.get_by_test_id("minimap-viewport")

    def inside(inner: dict, outer: dict) -> bool:
        return (
            inner["x"] >= outer["x"] - 1
            and inner["y"] >= outer["y"] - 1
            and inner["x"] + inner["width"] <= outer["x"] + outer["width"] + 1
            and inner["y"] + inner["height"] <= outer["y"] + outer["height"] + 1
        )

    def view_centre() -> tuple[float, float]:
        return page.evaluate(
            "(() => { const c = Switchyard.canvas.graph.getGraphArea().center;"
            " return [c.x, c.y]; })()"
        )

    map_box = body.bounding_box()
    first = frame.bounding_box()
    assert inside(first, map_box)

    # A click centres the view on that point of the map; the frame follows.
    before = view_centre()
    target = (map_box["x"] + map_box["width"] - 20, map_box["y"] + map_box["height"] - 20)
    page.mouse.click(*target)
    moved = view_centre()
    assert moved[0] > before[0] + 50
    # The frame follows (the map keeps the flow and the view in it, so it may re-frame).
    box = frame.bounding_box()
    assert inside(box, body.bounding_box())
    assert box["x"] + box["width"] / 2 > first["x"] + first["width"] / 2 + 10

    # A drag pans all the way along.
    start = (map_box["x"] + map_box["width"] - 20, map_box["y"] + 40)
    page.mouse.move(*start)
    page.mouse.down()
    for step in range(1, 9):
        page.mouse.move(start[0] - step * 15, start[1])
    page.mouse.up()
    assert view_centre()[0] < moved[0] - 100

    # Folded, it hides nothing: the corner of the canvas under it takes clicks again.
    corner = (map_box["x"] + map_box["width"] / 2, map_box["y"] + map_box["height"] / 2)
    assert page.evaluate(
        "([x, y]) => Boolean(document.elementFromPoint(x, y).closest('[data-testid=minimap]'))",
        list(corner),
    )
    page.get_by_test_id("minimap-toggle").click()
    expect(body).to_be_hidden()
    assert page.evaluate(
        "([x, y]) => Boolean(document.elementFromPoint(x, y).closest('[data-testid=canvas]'))",
        list(corner),
    )
    # The choice is kept.
    page.reload()
    page.wait_for_function(READY)
    expect(page.get_by_test_id("minimap-toggle")).to_be_visible()
    expect(body).to_be_hidden()
