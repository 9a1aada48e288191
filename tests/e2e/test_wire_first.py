"""Wire first, then write the prompt (issue 14, item 11): a wire dropped on the body of an
llm that has no port yet adds a variable to its prompt and the port, in one undoable step."""

from __future__ import annotations

from playwright.sync_api import Page

from tests.e2e.conftest import Server, log_in
from tests.e2e.test_editor import centre, create_flow, doc, drag, new_user, open_editor

FLOW = {
    "graph": {"name": "Wire first"},
    "nodes": [
        {
            "id": "poem",
            "type": "llm",
            "config": {"prompt": "A poem"},
            "position": {"x": 40, "y": 60},
        },
        {"id": "critic", "type": "llm", "config": {"prompt": ""}, "position": {"x": 420, "y": 60}},
    ],
    "edges": [],
}


def prompt(page: Page, node_id: str) -> str:
    return next(n for n in doc(page)["nodes"] if n["id"] == node_id)["config"]["prompt"]


def test_alice_drops_a_wire_on_a_new_llm_and_its_prompt_gets_the_variable(
    page: Page, server: Server
) -> None:
    alice = new_user(server)
    flow_id = create_flow(server, alice, FLOW)
    log_in(page, server, alice)
    open_editor(page, server, flow_id)
    assert page.locator('#ed-canvas [data-cell-id="critic"] [port^="in:"]').count() == 0

    body = centre(page, '#ed-canvas [data-cell-id="critic"] .sy-title')
    drag(page, centre(page, '#ed-canvas [data-cell-id="poem"] [port="out:text"]'), body)
    page.wait_for_selector('#ed-canvas [data-cell-id="critic"] [port="in:text"]')
    assert prompt(page, "critic") == "{{ text }}"
    assert doc(page)["edges"] == [
        {"source": "poem", "target": "critic", "source_port": "text", "target_port": "text"}
    ]

    # A second wire from the same port: a second variable, named apart.
    drag(page, centre(page, '#ed-canvas [data-cell-id="poem"] [port="out:text"]'), body)
    page.wait_for_selector('#ed-canvas [data-cell-id="critic"] [port="in:text_2"]')
    assert prompt(page, "critic") == "{{ text }}\n{{ text_2 }}"

    # One undo takes back the wire and its variable together.
    page.locator('[data-testid="canvas"]').click(position={"x": 20, "y": 400})
    page.keyboard.press("Control+z")
    page.wait_for_function(
        "() => Switchyard.canvas.documentJSON().nodes"
        ".find(n => n.id === 'critic').config.prompt === '{{ text }}'"
    )
    assert len(doc(page)["edges"]) == 1
