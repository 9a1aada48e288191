"""The ``parse`` node in a real browser: from the palette, through its generated form, to a
run whose output is the value it read, live and replayed."""

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

PATTERN = r"(?P<name>\w+): (?P<score>\d+)"


def test_a_parse_node_from_the_palette_reads_a_value_live_and_in_replay(
    page: Page,
    server: Server,
    errors: list[str],  # noqa: F811
) -> None:
    username = new_user(server)
    flow_id = create_flow(server, username)
    log_in(page, server, username)
    open_editor(page, server, flow_id)

    # The palette offers it in the text category's colour, starting in json mode.
    expect(page.locator('[data-testid="palette-parse"] .ty-chip')).to_have_attribute(
        "data-category", "text"
    )
    add_node(page, "input", canvas_point(page, 80, 250), "input1")
    add_node(page, "parse", canvas_point(page, 360, 250), "parse1")
    add_node(page, "output", canvas_point(page, 640, 250), "output1")
    assert next(n for n in doc(page)["nodes"] if n["id"] == "parse1")["config"] == {"mode": "json"}
    connect(page, "input1", "value", "parse1", "text")
    connect(page, "parse1", "value", "output1", "value")
    page.wait_for_function("() => Switchyard.canvas.documentJSON().edges.length === 2")

    # Its form is generated from the type: a choice of mode, a monospace pattern, a choice of
    # first or all; regex mode without a pattern is flagged on the pattern field.
    page.click('[data-cell-id="parse1"] .sy-title')
    form = page.locator('form[data-testid="node-form"][data-node="parse1"][data-ready]')
    expect(form).to_be_visible()
    expect(form).to_contain_text("the first JSON value")
    form.locator('select[name="f_mode"]').select_option("regex")
    expect(page.get_by_test_id("error-pattern")).to_contain_text("regex mode needs a pattern")
    form = page.locator('form[data-testid="node-form"][data-node="parse1"][data-ready]')
    form.locator('input[name="f_pattern"]').fill(PATTERN)
    form.locator('select[name="f_matches"]').select_option("all")
    expect(page.get_by_test_id("error-pattern")).to_have_count(0)
    page.wait_for_function(
        """() => { const c = Switchyard.canvas.documentJSON().nodes
            .find(n => n.id === 'parse1').config;
            return c.mode === "regex" && c.matches === "all" && c.pattern?.length > 10 }"""
    )

    page.keyboard.press("Control+s")
    expect(page.get_by_test_id("version")).to_have_text("v2")
    saved = next(n for n in doc(page)["nodes"] if n["id"] == "parse1")["config"]
    assert saved == {"mode": "regex", "pattern": PATTERN, "matches": "all"}

    run_id = start_run(page, {"input1": "Scores so far:\nalice: 7\nbob: 9"})
    expect(page.get_by_test_id("run-status")).to_have_attribute(
        "data-status", "succeeded", timeout=TIMEOUT_MS
    )
    expect(step(page, "parse1")).to_have_attribute("data-status", "done")
    outputs = page.get_by_test_id("outputs")
    expect(outputs.locator("pre.output-json")).to_contain_text('"name": "bob"')
    expect(outputs.locator("pre.output-json")).to_contain_text('"score": "9"')

    # Replay: from the start the node has not run; played to the end, the inspector shows
    # the value it read.
    page.goto(f"{server.url}/runs/{run_id}/")
    page.wait_for_selector("html[data-replay=ready]", timeout=TIMEOUT_MS)
    page.wait_for_function(
        "() => document.querySelectorAll('[data-cell-id] .sy-node.st-done').length === 3"
    )
    page.get_by_test_id("replay-scrub").fill("0")
    expect(step(page, "parse1")).not_to_have_attribute("data-status", "done")
    page.get_by_test_id("replay-speed").select_option("0")
    page.get_by_test_id("replay-play").click()
    expect(step(page, "parse1")).to_have_attribute("data-status", "done")
    page.locator('[data-cell-id="parse1"]').first.click()
    card = page.get_by_test_id("inspector")
    expect(card).to_contain_text('"name": "bob"')
