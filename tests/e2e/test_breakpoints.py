"""Breakpoints in the browser (issue 16): alice marks the middle node of
input -> llm -> llm -> output in the editor (the node form's button, and B), runs the
flow from the editor, and the run pauses before that node, which the canvas highlights;
she edits its input and Continues, and the node's output (the fake model server echoes
its prompt) shows the edited input was used. A second run with Step pauses before the
next node too; a third is stopped from its run page while paused. The flow document
never holds them."""

from __future__ import annotations

import json
import re

from playwright.sync_api import Page, expect

from tests.e2e.conftest import log_in
from tests.e2e.test_runs import TIMEOUT_MS, create_flow, errors

__all__ = ["errors"]  # the fixture: an uncaught exception in the page fails the test


def document() -> dict:
    def node(id_: str, type_: str, x: int, **config) -> dict:
        return {"id": id_, "type": type_, "config": config, "position": {"x": x, "y": 120}}

    def edge(source: str, port: str, target: str, target_port: str) -> dict:
        return {"source": source, "target": target, "source_port": port, "target_port": target_port}

    return {
        "graph": {"name": "Two calls"},
        "nodes": [
            node("topic", "input", 40, name="topic", default="queues"),
            node("draft", "llm", 300, prompt="Say {{ topic }}"),
            node("polish", "llm", 560, prompt="Polish {{ text }}"),
            node("out", "output", 820, name="answer"),
        ],
        "edges": [
            edge("topic", "value", "draft", "topic"),
            edge("draft", "text", "polish", "text"),
            edge("polish", "text", "out", "value"),
        ],
    }


def frame(page: Page, node: str):
    return page.locator(f'[data-cell-id="{node}"] .sy-node').first


def start_from_editor(page: Page) -> int:
    page.get_by_test_id("run").click()
    submit = page.get_by_test_id("run-submit")
    expect(submit).to_be_visible()
    with page.expect_response(
        lambda r: r.url.endswith("/editor-runs/") and r.request.method == "POST"
    ) as info:
        submit.click()
    assert info.value.status == 201, info.value.text()
    return info.value.json()["id"]


def paused_form(page: Page, node: str):
    form = page.get_by_test_id(f"breakpoint-{node}")
    expect(form).to_be_visible(timeout=TIMEOUT_MS)
    expect(frame(page, node)).to_have_class(re.compile(r"\bst-waiting\b"), timeout=TIMEOUT_MS)
    return form


def test_a_breakpoint_pauses_the_run_edited_inputs_are_used_step_and_stop_work(
    page: Page, server, errors
):
    username, _, url = create_flow(server, document())
    log_in(page, server, username)
    page.goto(url)
    expect(page.get_by_test_id("run")).to_be_visible()

    # The node form's button marks the node; B (with it selected) takes it off and on again.
    page.click('[data-cell-id="draft"] .sy-title')
    form = page.locator('form[data-testid="node-form"][data-node="draft"]')
    toggle = form.get_by_test_id("breakpoint-toggle")
    expect(toggle).to_be_visible()
    toggle.click()
    expect(toggle).to_have_attribute("aria-pressed", "true")
    expect(frame(page, "draft")).to_have_class(re.compile(r"\bhas-breakpoint\b"))
    page.locator("#ed-canvas").focus()
    page.keyboard.press("b")
    expect(frame(page, "draft")).not_to_have_class(re.compile(r"\bhas-breakpoint\b"))
    expect(toggle).to_have_attribute("aria-pressed", "false")
    page.keyboard.press("b")
    expect(frame(page, "draft")).to_have_class(re.compile(r"\bhas-breakpoint\b"))
    # Not an edit of the flow: nothing to save, and the document does not hold it.
    expect(page.get_by_test_id("dirty")).to_be_hidden()
    doc = page.evaluate("() => window.Switchyard.canvas.documentJSON()")
    assert "breakpoint" not in json.dumps(doc)

    # Run 1: paused before draft with its input; the edited input is what it runs on.
    start_from_editor(page)
    form = paused_form(page, "draft")
    expect(page.get_by_test_id("run-status")).to_have_attribute("data-status", "waiting")
    field = form.get_by_test_id("breakpoint-input-topic")
    expect(field).to_have_value('"queues"')
    field.fill("not json")
    form.get_by_test_id("breakpoint-continue").click()
    expect(page.get_by_test_id("breakpoint-error")).to_contain_text("port 'topic': not valid JSON")
    page.get_by_test_id("breakpoint-input-topic").fill('"lighthouses"')
    page.get_by_test_id("breakpoint-continue").click()
    expect(page.get_by_test_id("run-status")).to_have_attribute(
        "data-status", "succeeded", timeout=TIMEOUT_MS
    )
    expect(page.get_by_test_id("outputs")).to_contain_text(
        "fake reply: Polish fake reply: Say lighthouses", timeout=TIMEOUT_MS
    )
    expect(page.get_by_test_id("run-breakpoints")).to_be_hidden()

    # Run 2: Step runs draft, then pauses before polish too; Continue runs to the end.
    start_from_editor(page)
    paused_form(page, "draft").get_by_test_id("breakpoint-step").click()
    form = paused_form(page, "polish")
    expect(form.get_by_test_id("breakpoint-input-text")).to_have_value('"fake reply: Say queues"')
    expect(frame(page, "draft")).to_have_class(re.compile(r"\bst-done\b"))
    form.get_by_test_id("breakpoint-continue").click()
    expect(page.get_by_test_id("run-status")).to_have_attribute(
        "data-status", "succeeded", timeout=TIMEOUT_MS
    )
    expect(page.get_by_test_id("outputs")).to_contain_text(
        "fake reply: Polish fake reply: Say queues", timeout=TIMEOUT_MS
    )

    # Run 3: its run page shows the pause too; Stop there cancels the run.
    run_id = start_from_editor(page)
    paused_form(page, "draft")
    page.goto(f"{server.url}/runs/{run_id}/")
    paused_form(page, "draft").get_by_test_id("breakpoint-stop").click()
    expect(page.get_by_test_id("run-status")).to_have_attribute(
        "data-status", "cancelled", timeout=TIMEOUT_MS
    )
    expect(frame(page, "draft")).to_have_class(re.compile(r"\bst-cancelled\b"))
    expect(frame(page, "polish")).not_to_have_class(re.compile(r"\bst-done\b"))
