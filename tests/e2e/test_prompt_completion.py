"""`{{` completion in a prompt (issue 14, item 11): typing `{{` in an llm's prompt offers the
names it can read, its wired ports first; the keyboard picks one, and the config and the
port follow as if it had been typed."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.e2e.conftest import Server, log_in
from tests.e2e.test_editor import create_flow, new_user, open_editor
from tests.e2e.test_node_keys import open_form

FLOW = {
    "graph": {"name": "Answer"},
    "nodes": [
        {
            "id": "question",
            "type": "input",
            "config": {"name": "question"},
            "position": {"x": 0, "y": 0},
        },
        {
            "id": "ctx",
            "type": "input",
            "config": {"name": "context"},
            "position": {"x": 0, "y": 200},
        },
        {
            "id": "answer",
            "type": "llm",
            "label": "Answer",
            "config": {"prompt": ""},
            "position": {"x": 300, "y": 0},
        },
        {
            "id": "out",
            "type": "output",
            "config": {"name": "reply"},
            "position": {"x": 600, "y": 0},
        },
    ],
    "edges": [
        {
            "source": "question",
            "target": "answer",
            "source_port": "value",
            "target_port": "question",
        },
        {"source": "answer", "target": "out", "source_port": "text", "target_port": "value"},
    ],
}

PROMPT_IS = (
    "want => Switchyard.canvas.documentJSON().nodes"
    ".find(n => n.id === 'answer')?.config?.prompt === want"
)


def test_alice_types_double_braces_in_a_prompt_and_picks_a_wired_input_with_the_keyboard(
    page: Page, server: Server
) -> None:
    alice = new_user(server)
    flow_id = create_flow(server, alice, FLOW)
    log_in(page, server, alice)
    open_editor(page, server, flow_id)

    form = open_form(page, "answer")
    prompt = form.locator('[data-field="prompt"] textarea')
    prompt.click()
    page.keyboard.type("Answer {{")
    listbox = form.get_by_role("listbox")
    expect(listbox).to_be_visible()
    options = listbox.get_by_role("option")
    # Its wired port first, then the input not wired yet; never the output it feeds.
    expect(options).to_have_count(2)
    expect(options.nth(0)).to_contain_text("question")
    expect(options.nth(0)).to_contain_text("wired from question")
    expect(options.nth(1)).to_contain_text("context")
    expect(options.nth(0)).to_have_attribute("aria-selected", "true")
    first = options.nth(0).get_attribute("id")
    expect(prompt).to_have_attribute("aria-activedescendant", first or "")
    expect(prompt).to_have_attribute("aria-controls", listbox.get_attribute("id") or "")

    page.keyboard.press("ArrowDown")
    expect(options.nth(1)).to_have_attribute("aria-selected", "true")
    page.keyboard.press("ArrowUp")
    expect(options.nth(0)).to_have_attribute("aria-selected", "true")
    page.keyboard.press("Enter")
    expect(listbox).to_have_count(0)
    expect(prompt).to_have_value("Answer {{ question }}")
    page.wait_for_function(PROMPT_IS, arg="Answer {{ question }}")
    expect(prompt).to_be_focused()

    # Typing on filters; Tab accepts, and the new variable's port appears on the node.
    page.keyboard.type(" with {{ con")
    expect(options).to_have_count(1)
    expect(options.nth(0)).to_contain_text("context")
    page.keyboard.press("Tab")
    expect(prompt).to_have_value("Answer {{ question }} with {{ context }}")
    page.wait_for_function(PROMPT_IS, arg="Answer {{ question }} with {{ context }}")
    expect(page.locator('#ed-canvas [data-cell-id="answer"] [port="in:context"]')).to_have_count(1)
    expect(page.locator('#ed-canvas [data-cell-id="answer"] [port="in:question"]')).to_have_count(1)

    # Escape closes the list and leaves the text as typed.
    page.keyboard.type(" {{")
    expect(listbox).to_be_visible()
    page.keyboard.press("Escape")
    expect(listbox).to_have_count(0)
    expect(prompt).to_have_value("Answer {{ question }} with {{ context }} {{")
    expect(form).to_be_visible()

    # Typing on opens it again; a click accepts too.
    page.keyboard.type("q")
    expect(options).to_have_count(1)
    options.nth(0).click()
    expect(prompt).to_have_value("Answer {{ question }} with {{ context }} {{ question }}")
    page.wait_for_function(PROMPT_IS, arg="Answer {{ question }} with {{ context }} {{ question }}")
