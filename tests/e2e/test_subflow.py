"""The ``subflow`` node in a real browser: from the palette, through its flow picker, to a
run whose child run opens from the inspector, live and replayed, and links back."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.e2e.conftest import Server, log_in
from tests.e2e.test_editor import (
    add_node,
    canvas_point,
    connect,
    create_flow,
    doc,
    errors,  # noqa: F401 - the fixture
    new_user,
    open_editor,
)
from tests.e2e.test_runs import TIMEOUT_MS, start_run, step

SHOUT = {
    "graph": {"name": "Shout"},
    "nodes": [
        {"id": "text", "type": "input", "config": {"name": "text"}},
        {"id": "up", "type": "template", "config": {"template": "{{ text | upper }}!"}},
        {"id": "loud", "type": "output", "config": {"name": "loud"}},
    ],
    "edges": [
        {"source": "text", "target": "up", "source_port": "value", "target_port": "text"},
        {"source": "up", "target": "loud", "source_port": "text", "target_port": "value"},
    ],
}


def test_a_subflow_from_the_palette_runs_a_saved_flow_as_a_child_run(
    page: Page,
    server: Server,
    errors: list[str],  # noqa: F811
) -> None:
    username = new_user(server)
    child_id = create_flow(server, username, SHOUT)
    flow_id = create_flow(server, username)
    log_in(page, server, username)
    open_editor(page, server, flow_id)

    expect(page.locator('[data-testid="palette-subflow"] .ty-chip')).to_have_attribute(
        "data-category", "container"
    )
    add_node(page, "input", canvas_point(page, 80, 250), "input1")
    add_node(page, "subflow", canvas_point(page, 360, 250), "subflow1")
    add_node(page, "output", canvas_point(page, 640, 250), "output1")

    # The form offers the user's flows by name; picking one gives the node its ports.
    page.click('[data-cell-id="subflow1"] .sy-title')
    form = page.locator('form[data-testid="node-form"][data-node="subflow1"][data-ready]')
    expect(form).to_be_visible()
    expect(page.get_by_test_id("error-flow")).to_be_visible()
    form.locator('select[name="f_flow"]').select_option(label=f"Shout (#{child_id})")
    expect(page.get_by_test_id("error-flow")).to_have_count(0)
    page.wait_for_function(
        """() => Switchyard.canvas.graph.getCellById('subflow1').getPorts()
            .map(p => p.id).join() === 'in:text,out:loud'"""
    )
    connect(page, "input1", "value", "subflow1", "text")
    connect(page, "subflow1", "loud", "output1", "value")
    page.wait_for_function("() => Switchyard.canvas.documentJSON().edges.length === 2")
    page.keyboard.press("Control+s")
    expect(page.get_by_test_id("version")).to_have_text("v2")
    saved = next(n for n in doc(page)["nodes"] if n["id"] == "subflow1")["config"]
    assert saved == {"flow": str(child_id)}

    run_id = start_run(page, {"input1": "hello"})
    expect(page.get_by_test_id("run-status")).to_have_attribute(
        "data-status", "succeeded", timeout=TIMEOUT_MS
    )
    expect(step(page, "subflow1")).to_have_attribute("data-status", "done")
    expect(page.get_by_test_id("outputs")).to_contain_text("HELLO!")

    # Replay, played to the end: the inspector links the child run, whose page links back.
    page.goto(f"{server.url}/runs/{run_id}/")
    page.wait_for_selector("html[data-replay=ready]", timeout=TIMEOUT_MS)
    page.get_by_test_id("replay-scrub").fill("0")
    expect(step(page, "subflow1")).not_to_have_attribute("data-status", "done")
    page.get_by_test_id("replay-speed").select_option("0")
    page.get_by_test_id("replay-play").click()
    expect(step(page, "subflow1")).to_have_attribute("data-status", "done")
    page.locator('[data-cell-id="subflow1"]').first.click()
    links = page.get_by_test_id("inspector-child-runs")
    expect(links).to_be_visible()
    links.locator("a").first.click()
    expect(page.get_by_test_id("run-relation")).to_contain_text("called by node subflow1 of")
    expect(page.get_by_test_id("outputs")).to_contain_text("HELLO!")
    page.get_by_test_id("run-relation").locator("a").click()
    expect(page).to_have_url(f"{server.url}/runs/{run_id}/")
