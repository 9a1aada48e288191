"""A router's rules edited as rows in a real browser: typed backslashes stay, rows are added
and removed, and changing the mode shows the fields that mode uses."""

from __future__ import annotations

import json
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.e2e.conftest import Server, log_in
from tests.e2e.test_editor import READY, create_flow, errors, new_user, open_editor

__all__ = ["errors"]  # the fixture: an uncaught exception in the page fails the test

EXAMPLES = Path(__file__).parents[2] / "examples"
PATTERN = r"(?i)\bcode\b"


def router_config(page: Page) -> dict:
    return page.evaluate(
        "Switchyard.canvas.documentJSON().nodes.find(n => n.id === 'route').config"
    )


def wait_for_config(page: Page, key: str, value: object) -> None:
    page.wait_for_function(
        "([key, value]) => JSON.stringify(Switchyard.canvas.documentJSON().nodes"
        ".find(n => n.id === 'route').config[key]) === JSON.stringify(value)",
        arg=[key, value],
    )


def test_rules_are_rows_stored_as_typed_and_the_mode_shows_its_own_fields(
    page: Page, server: Server, errors: list[str]
) -> None:
    username = new_user(server)
    flow_id = create_flow(server, username, json.loads((EXAMPLES / "router.json").read_text()))
    log_in(page, server, username)
    open_editor(page, server, flow_id)

    page.click('[data-cell-id="route"] .sy-title')
    form = page.locator('form[data-testid="node-form"][data-node="route"][data-ready]')
    expect(form).to_be_visible()
    rules = form.get_by_test_id("rows-rules")
    expect(rules).to_be_visible()
    expect(form.locator('[data-field="prompt"]')).to_be_hidden()
    expect(form.locator('[data-field="conditions"]')).to_be_hidden()

    # Typed into a row, a pattern keeps its backslashes.
    rules.locator('input[name="f_rules.pattern"]').first.fill(PATTERN)
    wait_for_config(page, "rules", [{"route": "code", "pattern": PATTERN}])

    # Rows are added and removed; each edit reaches the node.
    form.get_by_test_id("add-row-rules").click()
    added = rules.locator("tbody tr").nth(1)
    expect(added.locator('input[name="f_rules.route"]')).to_be_focused()
    added.locator('input[name="f_rules.route"]').fill("docs")
    added.locator('input[name="f_rules.pattern"]').fill(r"\d+\s*$")
    wait_for_config(
        page,
        "rules",
        [{"route": "code", "pattern": PATTERN}, {"route": "docs", "pattern": r"\d+\s*$"}],
    )
    rules.locator("tbody tr").nth(1).get_by_role("button", name="Remove this row").click()
    wait_for_config(page, "rules", [{"route": "code", "pattern": PATTERN}])

    # Another mode, other fields.
    form.locator('select[name="f_mode"]').select_option("condition")
    conditions = form.get_by_test_id("rows-conditions")
    expect(conditions).to_be_visible()
    expect(rules).to_be_hidden()
    conditions.locator('input[name="f_conditions.route"]').fill("code")
    conditions.locator('input[name="f_conditions.expression"]').fill('"bug" in input')
    wait_for_config(page, "conditions", [{"route": "code", "expression": '"bug" in input'}])
    form.locator('select[name="f_mode"]').select_option("llm")
    expect(form.locator('[data-field="prompt"]')).to_be_visible()
    expect(form.locator('[data-field="system"]')).to_be_visible()
    expect(conditions).to_be_hidden()
    form.locator('select[name="f_mode"]').select_option("condition")
    wait_for_config(page, "mode", "condition")

    page.keyboard.press("Control+s")
    expect(page.get_by_test_id("version")).to_have_text("v2")
    page.reload()
    page.wait_for_function(READY)
    assert router_config(page) == {
        "mode": "condition",
        "routes": ["code", "docs"],
        "rules": [{"route": "code", "pattern": PATTERN}],
        "conditions": [{"route": "code", "expression": '"bug" in input'}],
        "default": "docs",
    }
