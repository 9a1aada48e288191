"""Wire first, then write the prompt (issue 14, item 11): a wire dropped on the body of an
llm that has no port yet adds a variable to its prompt and the port, in one undoable step."""

from __future__ import annotations

from playwright.sync_api import Page, expect

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


def test_alice_clicks_an_output_port_and_adds_the_next_node_wired(
    page: Page, server: Server
) -> None:
    alice = new_user(server)
    flow_id = create_flow(server, alice, FLOW)
    log_in(page, server, alice)
    open_editor(page, server, flow_id)

    page.mouse.click(*centre(page, '#ed-canvas [data-cell-id="poem"] [port="out:text"]'))
    menu = page.get_by_test_id("quickadd")
    expect(menu).to_be_visible()
    expect(page.get_by_test_id("quickadd-search")).to_be_focused()
    page.keyboard.type("output")
    expect(menu.get_by_test_id("quickadd-merge")).to_have_count(0)
    menu.get_by_test_id("quickadd-output").click()
    page.wait_for_selector('#ed-canvas [data-cell-id="output1"]')
    expect(menu).to_have_count(0)
    assert {
        (e["source"], e["target"], e["source_port"], e["target_port"]) for e in doc(page)["edges"]
    } == {("poem", "output1", "text", "value")}

    # An llm has no port yet: the wire becomes its prompt's variable.
    page.mouse.click(*centre(page, '#ed-canvas [data-cell-id="poem"] [port="out:text"]'))
    expect(page.get_by_test_id("quickadd-search")).to_be_focused()
    page.keyboard.type("llm")
    expect(page.get_by_test_id("quickadd").locator("li").first).to_have_attribute(
        "data-type", "llm"
    )
    page.keyboard.press("Enter")
    page.wait_for_selector('#ed-canvas [data-cell-id="llm1"] [port="in:text"]')
    assert prompt(page, "llm1") == "{{ text }}"
    boxes = page.evaluate(
        "() => Switchyard.canvas.graph.getNodes().map(n => n.getBBox())"
        ".map(b => [b.x, b.y, b.width, b.height])"
    )
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            apart = a[0] + a[2] <= b[0] or b[0] + b[2] <= a[0]
            assert apart or a[1] + a[3] <= b[1] or b[1] + b[3] <= a[1], (a, b)
    # One undo: the node, its wire and its variable go together.
    page.keyboard.press("Control+z")
    page.wait_for_selector('#ed-canvas [data-cell-id="llm1"]', state="detached")
    assert len(doc(page)["edges"]) == 1
