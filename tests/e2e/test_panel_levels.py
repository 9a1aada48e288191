"""A node form's late answer after the canvas changed level, in a real browser: alice edits
a node of the flow, and drills into a map's inner flow (which has a node of the same id)
before the server's answer to her edit is back. The answer goes to the node she edited,
not to the inner node drawn now, and no form reopens at the wrong level; an opening
answer that comes after the level changed is not placed either."""

from __future__ import annotations

from playwright.sync_api import Page, Route, expect

from tests.e2e.conftest import Server, log_in
from tests.e2e.test_editor import create_flow, doc, errors, open_editor
from tests.e2e.test_map_drill import drill_into_each, map_flow

__all__ = ["errors"]  # a fixture


def flow_with_a_twin() -> dict:
    """The words map of test_map_drill, its output node keyed `result` like the one in the
    map's inner flow."""
    flow = map_flow()
    out = flow["nodes"][2]
    out["id"] = "result"
    for edge in flow["edges"]:
        if edge["target"] == "out":
            edge["target"] = "result"
    return flow


class Held:
    """The first node form request of one kind (edit or opening), held until released."""

    def __init__(self, page: Page, editing: bool):
        self.routes: list[Route] = []
        self.editing = editing
        self.once = False
        page.route("**/node-form/", self.handle)

    def handle(self, route: Route) -> None:
        # An edit posts the form's fields (form_key); an opening posts the node's config.
        editing = "form_key=" in (route.request.post_data or "")
        if editing == self.editing and not self.once:
            self.once = True
            self.routes.append(route)
        else:
            route.continue_()

    def wait(self, page: Page) -> None:
        for _ in range(200):
            if self.routes:
                return
            page.wait_for_timeout(100)
        raise AssertionError("no request held")

    def release(self) -> None:
        for route in self.routes:
            route.continue_()
        self.routes.clear()


def inner_of(document: dict) -> dict:
    return next(n for n in document["nodes"] if n["id"] == "each")["config"]["flow"]


def by_id(document: dict, node_id: str) -> dict:
    return next(n for n in document["nodes"] if n["id"] == node_id)


def test_a_late_edit_answer_goes_to_the_level_it_came_from(
    page: Page,
    server: Server,
    errors: list[str],
) -> None:
    username = server.create_user("alice_levels")
    flow_id = create_flow(server, username, flow_with_a_twin())
    log_in(page, server, username)
    open_editor(page, server, flow_id)
    panel = page.locator("#node-panel")

    # The flow's output node: its name edited, the server's answer held back.
    page.locator('[data-testid="canvas"] [data-cell-id="result"] .sy-title').click()
    form = page.locator('form[data-node="result"][data-ready]')
    expect(form.locator('input[name="f_name"]')).to_have_value("results")
    held = Held(page, editing=True)
    form.locator('input[name="f_name"]').fill("final")
    held.wait(page)

    # Into the map: its inner flow has an output node `result` too; alice opens its form.
    drill_into_each(page)
    page.locator('[data-testid="canvas"] [data-cell-id="result"] .sy-title').click()
    inner_form = page.locator('form[data-node="result"][data-ready]')
    expect(inner_form.locator('input[name="f_name"]')).to_have_value("result")
    inner_form.evaluate("(form) => { form.dataset.mark = 'inner'; }")

    # The answer arrives: the inner node and its open form stay as they were.
    held.release()
    # The flow's own node takes it (in the document; on the canvas once back up).
    page.wait_for_function(
        """() => Switchyard.canvas.documentJSON().nodes
            .find((n) => n.id === "result").config.name === "final" """,
        timeout=15_000,
    )
    # A form reopened would be on its way now: given the time to arrive, none does.
    page.wait_for_timeout(1000)
    expect(panel.locator('form[data-mark="inner"] input[name="f_name"]')).to_have_value("result")
    expect(panel.locator("form.nf")).to_have_count(1)
    whole = doc(page)
    assert by_id(inner_of(whole), "result")["config"]["name"] == "result"
    expect(page.get_by_test_id("dirty")).to_be_visible()
    page.get_by_test_id("drill-up-0").click()
    page.locator('[data-testid="canvas"] [data-cell-id="result"] .sy-title').click()
    expect(page.locator('form[data-node="result"][data-ready] input[name="f_name"]')).to_have_value(
        "final"
    )
    assert by_id(inner_of(doc(page)), "result")["config"]["name"] == "result"


def test_a_form_opened_before_the_level_changed_is_not_placed_after(
    page: Page,
    server: Server,
    errors: list[str],
) -> None:
    username = server.create_user("alice_levels_open")
    flow_id = create_flow(server, username, flow_with_a_twin())
    log_in(page, server, username)
    open_editor(page, server, flow_id)
    held = Held(page, editing=False)
    page.locator('[data-testid="canvas"] [data-cell-id="words"] .sy-title').click()
    held.wait(page)
    drill_into_each(page)
    # The late answer is handled (swapped or not) by the time htmx says the request ended.
    page.evaluate(
        """() => { window.lateAnswer = new Promise((resolve) => {
            document.body.addEventListener("htmx:afterRequest", (event) => {
                if ((event.detail.target || {}).id === "node-panel") resolve(true);
            });
            setTimeout(() => resolve(false), 20000);
        }); }"""
    )
    held.release()
    assert page.evaluate("window.lateAnswer")
    expect(page.locator("#node-panel form.nf")).to_have_count(0)
    # Forms still open at the level drawn now; answered in order, the late one came first.
    page.locator('[data-testid="canvas"] [data-cell-id="item"] .sy-title').click()
    expect(page.locator('form[data-node="item"][data-ready]')).to_be_visible()
    expect(page.locator("#node-panel form.nf")).to_have_count(1)
    page.locator('[data-testid="canvas"]').click(position={"x": 5, "y": 5})
    expect(page.locator("#node-panel form.nf")).to_have_count(0)
