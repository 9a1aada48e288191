"""The ``http`` node in a real browser: from the palette, through its generated form (a
templated URL, a header row), to a run that calls a local stand-in for the GitHub API,
which the server allow-lists, and shows the JSON it got, live and replayed."""

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
from tests.support.http_server import Server as HttpServer


def test_an_http_node_from_the_palette_calls_an_allow_listed_api(
    page: Page,
    server: Server,
    http_api: HttpServer,
    errors: list[str],  # noqa: F811
) -> None:
    username = new_user(server)
    flow_id = create_flow(server, username)
    log_in(page, server, username)
    open_editor(page, server, flow_id)

    expect(page.locator('[data-testid="palette-http"] .ty-chip')).to_have_attribute(
        "data-category", "io"
    )
    add_node(page, "input", canvas_point(page, 80, 250), "input1")
    add_node(page, "http", canvas_point(page, 360, 250), "http1")
    add_node(page, "output", canvas_point(page, 640, 250), "output1")
    start = next(n for n in doc(page)["nodes"] if n["id"] == "http1")["config"]
    assert start == {"method": "GET", "url": "https://example.com/"}

    # The form is generated from the type: a method, a URL template, headers as rows; a
    # body on a GET is flagged on the body field.
    page.click('[data-cell-id="http1"] .sy-title')
    form = page.locator('form[data-testid="node-form"][data-node="http1"][data-ready]')
    expect(form).to_be_visible()
    expect(form).to_contain_text("Internal addresses are refused")
    # The three new nodes' port and check answers may still reopen the form: let them land.
    page.wait_for_load_state("networkidle")
    # The error comes back with the server's check of the form (posted 350 ms after the
    # change), which on a loaded machine can take longer than expect's default 5 s.
    form.locator('select[name="f_body_type"]').select_option("text")
    expect(page.get_by_test_id("error-body_type")).to_contain_text(
        "a GET request sends no body", timeout=TIMEOUT_MS
    )
    form = page.locator('form[data-testid="node-form"][data-node="http1"][data-ready]')
    form.locator('select[name="f_body_type"]').select_option("none")
    expect(page.get_by_test_id("error-body_type")).to_have_count(0, timeout=TIMEOUT_MS)
    form = page.locator('form[data-testid="node-form"][data-node="http1"][data-ready]')
    form.locator('[name="f_url"]').fill(f"http://127.0.0.1:{http_api.port}/repos/{{{{ repo }}}}")
    headers = form.get_by_test_id("rows-headers")
    headers.locator('input[name="f_headers.name"]').first.fill("Accept")
    headers.locator('input[name="f_headers.value"]').first.fill("application/vnd.github+json")
    page.wait_for_function(
        """() => { const c = Switchyard.canvas.documentJSON().nodes
            .find(n => n.id === 'http1').config;
            return c.url?.endsWith('{{ repo }}') && c.headers?.[0]?.value?.includes('github') }"""
    )
    page.wait_for_selector('[data-cell-id="http1"] [port="in:repo"]')
    connect(page, "input1", "value", "http1", "repo")
    connect(page, "http1", "body", "output1", "value")
    page.wait_for_function("() => Switchyard.canvas.documentJSON().edges.length === 2")

    page.keyboard.press("Control+s")
    expect(page.get_by_test_id("version")).to_have_text("v2")
    saved = next(n for n in doc(page)["nodes"] if n["id"] == "http1")["config"]
    assert saved["headers"] == [{"name": "Accept", "value": "application/vnd.github+json"}]

    run_id = start_run(page, {"input1": "python/cpython"})
    expect(page.get_by_test_id("run-status")).to_have_attribute(
        "data-status", "succeeded", timeout=TIMEOUT_MS
    )
    expect(step(page, "http1")).to_have_attribute("data-status", "done")
    shown = page.get_by_test_id("outputs").locator("pre.output-json")
    expect(shown).to_contain_text('"stargazers_count": 65000')
    assert "/repos/python/cpython" in http_api.paths

    # Replay: from the start the node has not run; played to the end, the inspector shows
    # the status and the decoded body it got.
    page.goto(f"{server.url}/runs/{run_id}/")
    page.wait_for_selector("html[data-replay=ready]", timeout=TIMEOUT_MS)
    page.wait_for_function(
        "() => document.querySelectorAll('[data-cell-id] .sy-node.st-done').length === 3"
    )
    page.get_by_test_id("replay-scrub").fill("0")
    expect(step(page, "http1")).not_to_have_attribute("data-status", "done")
    page.get_by_test_id("replay-speed").select_option("0")
    page.get_by_test_id("replay-play").click()
    expect(step(page, "http1")).to_have_attribute("data-status", "done")
    page.locator('[data-cell-id="http1"]').first.click()
    card = page.get_by_test_id("inspector")
    expect(card).to_contain_text('"content-type": "application/json"')
    expect(card.get_by_text("200", exact=True)).to_be_visible()
    expect(card).to_contain_text('"full_name": "python/cpython"')
