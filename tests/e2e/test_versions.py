"""Versions in a real browser: a save with a message, the history, a diff marked on the
canvas, a version opened read-only, and a restore."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import Server, log_in
from tests.e2e.test_editor import READY, create_flow, new_user
from webapp.flows.services import starter_graph

WITH_TEMPLATE = """() => {
  const doc = Switchyard.canvas.documentJSON();
  doc.nodes.push({id: "say", type: "template", config: {template: "Hi {{ input }}"},
                  position: {x: 150, y: 250}});
  doc.edges = [
    {source: "input", target: "say", source_port: "value", target_port: "input"},
    {source: "say", target: "output", source_port: "text", target_port: "value"},
  ];
  Switchyard.canvas.load(doc, {keepSaved: true});
}"""


@pytest.fixture
def errors(page: Page) -> Iterator[list[str]]:
    """Uncaught exceptions in the page; any fails the test."""
    found: list[str] = []
    page.on("pageerror", lambda exc: found.append(str(exc)))
    yield found
    assert found == []


def test_save_with_a_message_then_diff_open_and_restore(
    page: Page, server: Server, errors: list[str]
) -> None:
    username = new_user(server)
    flow_id = create_flow(server, username, starter_graph("Versions test"))
    log_in(page, server, username)
    page.goto(f"{server.url}/flows/{flow_id}/")
    page.wait_for_function(READY)
    expect(page.get_by_test_id("version-meta")).to_contain_text(username)

    page.evaluate(WITH_TEMPLATE)
    expect(page.get_by_test_id("dirty")).to_be_visible()
    page.get_by_test_id("describe").locator("summary").click()
    page.get_by_test_id("save-message").fill("add a greeting")
    page.get_by_test_id("save").click()
    expect(page.get_by_test_id("version")).to_have_text("v2")
    expect(page.get_by_test_id("save-message")).to_have_value("")
    # The version line is asked again after the save (htmx, server-rendered).
    expect(page.get_by_test_id("version-meta")).to_contain_text("just now")

    page.get_by_test_id("history").click()
    expect(page.get_by_test_id("versions")).to_contain_text("add a greeting")
    page.locator('tr[data-version="2"]').get_by_test_id("diff-previous").click()
    page.wait_for_function(READY)
    expect(page.get_by_test_id("summary")).to_contain_text("1 node added")
    expect(page.locator('[data-cell-id="say"] .sy-node.diff-added')).to_have_count(1)
    expect(page.locator(".sy-edge-line.diff-added")).to_have_count(2)
    expect(page.locator(".sy-edge-line.diff-removed")).to_have_count(1)
    # A name in the list brings its node into view; the mark stays through the re-render.
    page.locator('[data-focus-node="say"]').click()
    expect(page.locator('[data-cell-id="say"] .sy-node.diff-added')).to_have_count(1)

    page.goto(f"{server.url}/flows/{flow_id}/versions/2/")
    page.wait_for_function(READY)
    page.click('[data-cell-id="say"] .sy-title')
    form = page.locator('form[data-testid="node-form"][data-node="say"]')
    expect(form).to_be_visible()
    expect(form.locator("textarea").first).to_be_disabled()

    page.goto(f"{server.url}/flows/{flow_id}/versions/1/")
    page.wait_for_function(READY)
    page.get_by_test_id("restore").click()
    expect(page.locator(".messages")).to_contain_text("Restored version 1 as version 3.")
    expect(page.locator('tr[data-version="3"]')).to_contain_text("restored v1")
