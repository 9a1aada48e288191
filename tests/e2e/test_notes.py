"""Sticky notes and groups on the canvas: Alice writes a note, frames two nodes in a group,
drags and collapses it, undoes, saves; they come back on reload and show read-only on the
version page. The text is shown as text, never read as HTML."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.e2e.conftest import log_in
from tests.e2e.test_editor import centre, create_flow, doc, drag, errors, new_user, open_editor
from webapp.flows.models import Flow
from webapp.runs.services import create_run

__all__ = ["errors"]

FLOW = {
    "graph": {"name": "Annotated"},
    "nodes": [
        {"id": "q", "type": "input", "config": {"name": "q"}, "position": {"x": 80, "y": 160}},
        {"id": "out", "type": "output", "config": {"name": "a"}, "position": {"x": 380, "y": 160}},
    ],
    "edges": [{"source": "q", "target": "out", "source_port": "value", "target_port": "value"}],
}


def positions(page: Page) -> dict[str, tuple[int, int]]:
    return {n["id"]: (n["position"]["x"], n["position"]["y"]) for n in doc(page)["nodes"]}


def test_alice_annotates_a_flow_with_a_note_and_a_collapsible_group(
    page: Page, server, errors: list[str]
) -> None:
    alice = new_user(server)
    flow_id = create_flow(server, alice, FLOW)
    log_in(page, server, alice)
    open_editor(page, server, flow_id)

    # A note, written in place; markup in it stays text.
    page.get_by_test_id("add-note").click()
    editor = page.get_by_test_id("note-editor")
    expect(editor).to_be_focused()
    editor.fill("<b>Why</b> the answer is plain")
    editor.press("Control+Enter")
    note = page.locator('#ed-canvas [data-cell-id="note1"]')
    expect(note).to_contain_text("<b>Why</b> the answer is plain")
    assert page.locator('#ed-canvas [data-cell-id="note1"] b').count() == 0
    assert doc(page)["notes"][0]["text"] == "<b>Why</b> the answer is plain"

    # Group both nodes; name the group.
    page.locator('#ed-canvas [data-cell-id="q"]').click()
    page.locator('#ed-canvas [data-cell-id="out"]').click(modifiers=["Shift"])
    page.get_by_test_id("group").click()
    title = page.get_by_test_id("group-title-editor")
    title.fill("Pass-through")
    title.press("Enter")
    group = doc(page)["groups"][0]
    assert (group["id"], group["title"], sorted(group["nodes"])) == (
        "group1",
        "Pass-through",
        ["out", "q"],
    )
    expect(page.locator('#ed-canvas [data-cell-id="group1"]')).to_contain_text("Pass-through")

    # Dragging the group by its title bar moves its nodes with it.
    before = positions(page)
    head = centre(page, '#ed-canvas [data-cell-id="group1"] .sy-group-title')
    drag(page, head, (head[0] + 100, head[1] + 60))
    after = positions(page)
    dx, dy = after["q"][0] - before["q"][0], after["q"][1] - before["q"][1]
    assert dx > 50 and dy > 20, (before, after)
    assert (after["out"][0] - before["out"][0], after["out"][1] - before["out"][1]) == (dx, dy)

    # Collapsed, its nodes and their wire are hidden; undo expands it again.
    page.locator('#ed-canvas [data-cell-id="group1"] .sy-group-toggle').click()
    assert doc(page)["groups"][0]["collapsed"] is True
    expect(page.locator('#ed-canvas [data-cell-id="q"]')).to_be_hidden()
    expect(page.locator('#ed-canvas [data-cell-id="out"]')).to_be_hidden()
    page.keyboard.press("Control+z")
    expect(page.locator('#ed-canvas [data-cell-id="q"]')).to_be_visible()
    assert doc(page)["groups"][0]["collapsed"] is False
    page.keyboard.press("Control+y")
    expect(page.locator('#ed-canvas [data-cell-id="q"]')).to_be_hidden()

    # Saved in the document, as the engine's schema has it.
    page.keyboard.press("Control+s")
    expect(page.get_by_test_id("version")).to_have_text("v2")
    stored = server.orm(lambda: Flow.objects.get(pk=flow_id).current().graph)
    assert stored["notes"][0]["text"] == "<b>Why</b> the answer is plain"
    assert stored["groups"][0]["collapsed"] is True
    assert "switchyard:notes" not in stored["graph"]

    # Back on reload, still collapsed; and read-only on the version page.
    page.reload()
    page.wait_for_function("() => document.documentElement.dataset.canvas === 'ready'")
    expect(page.locator('#ed-canvas [data-cell-id="note1"]')).to_contain_text("<b>Why</b>")
    expect(page.locator('#ed-canvas [data-cell-id="q"]')).to_be_hidden()
    page.goto(f"{server.url}/flows/{flow_id}/versions/2/")
    page.wait_for_function("() => document.documentElement.dataset.canvas === 'ready'")
    expect(page.locator('#ed-canvas [data-cell-id="note1"]')).to_contain_text("the answer is plain")
    expect(page.locator('#ed-canvas [data-cell-id="group1"]')).to_contain_text("Pass-through")

    # And on a run's page, drawn from the version it ran (a queued run is enough to see).
    def queued_run() -> int:
        flow = Flow.objects.get(pk=flow_id)
        return create_run(flow, flow.owner, {"q": "hi"}).pk

    page.goto(f"{server.url}/runs/{server.orm(queued_run)}/")
    page.wait_for_function("() => document.documentElement.dataset.canvas === 'ready'")
    expect(page.locator('#ed-canvas [data-cell-id="note1"]')).to_contain_text("the answer is plain")
    expect(page.get_by_test_id("add-note")).to_have_count(0)
