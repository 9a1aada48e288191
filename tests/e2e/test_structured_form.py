"""The output schema in a real browser: a table of fields over the raw JSON, both ways."""

from __future__ import annotations

import json

from playwright.sync_api import Page, expect

from tests.e2e.conftest import Server, log_in
from tests.e2e.test_editor import create_flow, errors, new_user, open_editor  # noqa: F401

GRAPH = {
    "graph": {"name": "Judge"},
    "nodes": [{"id": "judge", "type": "llm", "config": {"prompt": "Judge this"}}],
    "edges": [],
}


def node_config(page: Page) -> dict:
    return page.evaluate(
        "Switchyard.canvas.documentJSON().nodes.find(n => n.id === 'judge').config"
    )


def test_the_schema_table_writes_the_schema_and_the_ports_follow(
    page: Page,
    server: Server,
    errors: list[str],  # noqa: F811
) -> None:
    username = new_user(server)
    flow_id = create_flow(server, username, GRAPH)
    log_in(page, server, username)
    open_editor(page, server, flow_id)
    page.click('[data-cell-id="judge"] .sy-title')
    form = page.locator('form[data-testid="node-form"][data-node="judge"][data-ready]')
    expect(form).to_be_visible()
    table = form.get_by_test_id("schema-table")
    expect(table).to_be_visible()

    form.get_by_test_id("schema-add").click()
    row = table.locator("tbody tr").first
    row.locator("input[data-key='name']").fill("verdict")
    row.locator("input[data-key='enum']").fill("PASS, FAIL")
    row.locator("select[data-key='type']").select_option("")
    page.wait_for_selector('[data-cell-id="judge"] [port="out:verdict"]')
    expect(page.locator('[data-cell-id="judge"] [port="out:value"]')).to_have_count(1)
    expect(page.locator('[data-cell-id="judge"] [port="out:text"]')).to_have_count(0)
    page.wait_for_function(
        "() => Switchyard.canvas.documentJSON().nodes[0].config.output_schema"
        "?.properties?.verdict?.enum?.length === 2"
    )
    assert node_config(page)["output_schema"] == {
        "type": "object",
        "properties": {"verdict": {"enum": ["PASS", "FAIL"]}},
        "required": ["verdict"],
    }

    # The raw JSON is the advanced view: typing there redraws the table.
    form.locator("details.nf-raw summary").click()
    raw = {
        "type": "object",
        "properties": {"score": {"type": "integer", "minimum": 0}},
        "required": [],
    }
    form.locator('textarea[name="f_output_schema"]').fill(json.dumps(raw))
    expect(table.locator("tbody tr")).to_have_count(1)
    expect(table.locator("input[data-key='name']")).to_have_value("score")
    expect(table.locator("select[data-key='type']")).to_have_value("integer")
    page.wait_for_selector('[data-cell-id="judge"] [port="out:score"]')

    # A field the table cannot show (minimum) survives an edit made in the table.
    table.locator("input[data-key='description']").fill("Out of ten")
    page.wait_for_function(
        "() => Switchyard.canvas.documentJSON().nodes[0].config.output_schema"
        "?.properties?.score?.description === 'Out of ten'"
    )
    assert node_config(page)["output_schema"]["properties"]["score"] == {
        "type": "integer",
        "minimum": 0,
        "description": "Out of ten",
    }

    # A bad schema is reported on the field, by the server.
    table.locator("input[data-key='name']").fill("value")
    expect(page.get_by_test_id("error-output_schema")).to_contain_text("property 'value' is taken")
