"""The ``code`` node in a real browser: from the palette, its Python typed in its generated
form, run in the sandbox with its output and stdout in the inspector; and a failing main's
traceback on the node."""

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

SHOUT = 'def main(text):\n    print("got", text)\n    return {"shout": text.upper() + "!"}\n'
BROKEN = "def main(text):\n    return {'shout': text / 0}\n"


def type_code(page: Page, code: str, outputs: str) -> None:
    form = page.locator('form[data-testid="node-form"][data-node="code1"][data-ready]')
    expect(form).to_be_visible()
    # The new nodes' port and check answers may still reopen a form and drop what was
    # typed (seen under load): let them land first, as tests/e2e/test_http.py does.
    page.wait_for_load_state("networkidle")
    form = page.locator('form[data-testid="node-form"][data-node="code1"][data-ready]')
    form.locator('textarea[name="f_code"]').fill(code)
    form = page.locator('form[data-testid="node-form"][data-node="code1"][data-ready]')
    form.locator('[name="f_outputs"]').fill(outputs)


def test_a_code_node_from_the_palette_runs_its_python_and_shows_output_stdout_and_traceback(
    page: Page,
    server: Server,
    errors: list[str],  # noqa: F811
) -> None:
    username = new_user(server)
    flow_id = create_flow(server, username)
    log_in(page, server, username)
    open_editor(page, server, flow_id)

    add_node(page, "input", canvas_point(page, 80, 250), "input1")
    add_node(page, "code", canvas_point(page, 360, 250), "code1")
    add_node(page, "output", canvas_point(page, 640, 250), "output1")

    # Typed in its generated form, main's parameter and the declared output become ports.
    page.click('[data-cell-id="code1"] .sy-title')
    type_code(page, SHOUT, "shout")
    page.wait_for_function(
        """() => { const c = Switchyard.canvas.documentJSON().nodes
            .find(n => n.id === 'code1').config;
            return (c.code || '').includes('upper') && (c.outputs || []).join() === 'shout' }"""
    )
    page.wait_for_selector('[data-cell-id="code1"] [port="out:shout"]')
    connect(page, "input1", "value", "code1", "text")
    connect(page, "code1", "shout", "output1", "value")
    page.wait_for_function("() => Switchyard.canvas.documentJSON().edges.length === 2")
    page.keyboard.press("Control+s")
    expect(page.get_by_test_id("version")).to_have_text("v2")
    saved = next(n for n in doc(page)["nodes"] if n["id"] == "code1")["config"]
    assert saved["code"] == SHOUT and saved["outputs"] == ["shout"]

    run_id = start_run(page, {"input1": "hello"})
    expect(page.get_by_test_id("run-status")).to_have_attribute(
        "data-status", "succeeded", timeout=TIMEOUT_MS
    )
    expect(step(page, "code1")).to_have_attribute("data-status", "done")
    expect(page.get_by_test_id("outputs")).to_contain_text("HELLO!")
    inspect(page, server, run_id, "code1")
    card = page.get_by_test_id("inspector")
    expect(card).to_contain_text("HELLO!")
    expect(card).to_contain_text("stdout")
    expect(card).to_contain_text("got hello")

    # A main that raises fails the node, and its traceback (the user's lines) is on it.
    open_editor(page, server, flow_id)
    page.click('[data-cell-id="code1"] .sy-title')
    type_code(page, BROKEN, "shout")
    page.wait_for_function(
        """() => Switchyard.canvas.documentJSON().nodes
            .find(n => n.id === 'code1').config.code.includes('/ 0')"""
    )
    page.keyboard.press("Control+s")
    expect(page.get_by_test_id("version")).to_have_text("v3")
    run_id = start_run(page, {"input1": "hello"})
    expect(page.get_by_test_id("run-status")).to_have_attribute(
        "data-status", "failed", timeout=TIMEOUT_MS
    )
    expect(step(page, "code1")).to_have_attribute("data-status", "failed")
    expect(step(page, "code1")).to_have_attribute(
        "title", "Traceback (most recent call last):\n" + TRACE
    )
    inspect(page, server, run_id, "code1")
    expect(page.get_by_test_id("inspector").locator("pre.run-error")).to_contain_text(TRACE)


def inspect(page: Page, server: Server, run_id: int, node: str) -> None:
    """The run's page, replayed to its end, with ``node`` open in the inspector."""
    page.goto(f"{server.url}/runs/{run_id}/")
    page.wait_for_selector("html[data-replay=ready]", timeout=TIMEOUT_MS)
    page.locator(f'[data-cell-id="{node}"]').first.click()


TRACE = (
    '  File "<code>", line 2, in main\n'
    "    return {'shout': text / 0}\n"
    "                     ~~~~~^~~\n"
    "TypeError: unsupported operand type(s) for /: 'str' and 'int'\n"
)
