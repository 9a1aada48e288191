"""Warnings in the editor, in a real browser: the engine's check runs as you edit, its
warnings are listed apart from problems and mark their node, and they never stop a save."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.e2e.conftest import Server
from tests.e2e.test_editor import READY
from tests.e2e.test_loop_edges import (
    click_label,
    edge_label,
    open_editor,
    team_flow,
    two_entry_loop,
)

WARNING = "the loop gen -> grade has 2 nodes that take inputs from outside it (gen, grade)"


def has_class(name: str) -> re.Pattern[str]:
    """A class list holding `name` (Playwright matches a regex against the whole attribute)."""
    return re.compile(rf"(^|\s){re.escape(name)}(\s|$)")


def node_frame(page: Page, node: str):
    return page.locator(f'[data-cell-id="{node}"] .sy-node').first


def test_warnings_come_and_go_as_you_edit_and_never_stop_a_save(page: Page, server: Server) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    alice, _, flow_id = team_flow(server, two_entry_loop({"initial": ""}))
    checks: list[str] = []
    page.on("request", lambda r: checks.append(r.url) if "/api/editor/validate" in r.url else None)
    open_editor(page, server, alice, flow_id)
    warnings = page.get_by_test_id("warnings")
    expect(warnings).to_be_hidden()
    expect(edge_label(page)).to_have_text('initial: ""')

    # Without 'initial' the loop has two ways in: the check says which it takes, on the node.
    click_label(page)
    form = page.locator('form[data-testid="edge-form"][data-ready]')
    with page.expect_response(lambda r: r.url.endswith("/api/editor/validate")) as checked:
        form.get_by_test_id("edge-initial").fill("")
    assert [w["node"] for w in checked.value.json()["warnings"]] == ["gen"]
    expect(edge_label(page)).to_have_count(0)
    expect(warnings).to_be_visible()
    expect(warnings.locator("[data-count]")).to_have_text("1")
    expect(warnings).to_contain_text(WARNING)
    expect(warnings.locator(".ed-problem-where")).to_have_text("gen")
    expect(node_frame(page, "gen")).to_have_class(has_class("has-warning"))
    expect(page.locator('[data-cell-id="gen"] .sy-problem-text.is-warning')).to_contain_text(
        "the loop gen -> grade"
    )
    expect(node_frame(page, "grade")).not_to_have_class(has_class("has-warning"))
    expect(page.get_by_test_id("problems")).to_be_hidden()

    # A warning is no problem: the save goes through, and its answer keeps the warning.
    with page.expect_response(lambda r: r.request.method == "PUT") as saved:
        page.keyboard.press("Control+s")
    assert saved.value.status == 200
    assert [w["node"] for w in saved.value.json()["warnings"]] == ["gen"]
    expect(page.get_by_test_id("version")).to_have_text("v2")
    expect(warnings).to_contain_text(WARNING)
    expect(page.get_by_test_id("problems")).to_be_hidden()

    # Opened again, the flow shows it at once, from the page itself: the editor asks for a
    # check only once the document differs. Its name in the list brings the node into view.
    checks.clear()
    page.reload()
    page.wait_for_function(READY)
    expect(warnings).to_contain_text(WARNING)
    page.wait_for_load_state("networkidle")
    assert checks == []
    warnings.locator(".ed-problem-where").click()
    expect(node_frame(page, "gen")).to_have_class(has_class("is-selected"))
    assert errors == []
