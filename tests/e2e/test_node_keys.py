"""Readable node keys in a real browser (issue 14, item 4): a key follows the label until
one is typed, renaming rewrites the edges, the merge port and the prompt that read it (one
undo takes it back), problems name the node's label, an input goes by one name."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.e2e.conftest import Server, log_in
from tests.e2e.test_editor import READY, create_flow, doc, new_user, open_editor

FLOW = {
    "graph": {"name": "Review"},
    "nodes": [
        {"id": "text", "type": "input", "config": {"name": "text"}, "position": {"x": 0, "y": 0}},
        {
            "id": "llm1",
            "type": "llm",
            "config": {"prompt": "Sum up {{ text }}"},
            "position": {"x": 260, "y": 0},
        },
        {"id": "merge1", "type": "merge", "config": {}, "position": {"x": 520, "y": 0}},
        {
            "id": "say",
            "type": "template",
            "config": {"template": "Summary: {{ all.llm1 }}"},
            "position": {"x": 780, "y": 0},
        },
    ],
    "edges": [
        {"source": "text", "target": "llm1", "source_port": "value", "target_port": "text"},
        {"source": "llm1", "target": "merge1", "source_port": "text", "target_port": "llm1"},
        {"source": "merge1", "target": "say", "source_port": "value", "target_port": "all"},
    ],
}


def open_form(page: Page, node_id: str):
    page.click(f'[data-cell-id="{node_id}"] .sy-title')
    form = page.locator(f'form[data-testid="node-form"][data-node="{node_id}"][data-ready]')
    expect(form).to_be_visible()
    return form


def ids(page: Page) -> list[str]:
    return sorted(n["id"] for n in doc(page)["nodes"])


def test_alices_label_names_the_node_its_merge_port_and_the_prompt_reading_it(
    page: Page, server: Server
) -> None:
    alice = new_user(server)
    flow_id = create_flow(server, alice, FLOW)
    log_in(page, server, alice)
    open_editor(page, server, flow_id)

    form = open_form(page, "llm1")
    form.get_by_test_id("field-label").fill("Summary")
    page.wait_for_selector('[data-cell-id="summary"]')
    expect(page.locator('[data-cell-id="llm1"]')).to_have_count(0)
    expect(page.locator('[data-cell-id="summary"] .sy-title')).to_have_text("Summary")
    # The open form now edits the new key.
    form = page.locator('form[data-testid="node-form"][data-node="summary"]')
    expect(form.get_by_test_id("field-key")).to_have_value("summary")
    now = doc(page)
    assert sorted(
        (e["source"], e["target"], e["source_port"], e["target_port"]) for e in now["edges"]
    ) == [
        ("merge1", "say", "value", "all"),
        ("summary", "merge1", "text", "summary"),
        ("text", "summary", "value", "text"),
    ]
    templates = {n["id"]: n["config"] for n in now["nodes"]}
    assert templates["say"] == {"template": "Summary: {{ all.summary }}"}

    # One undo takes the whole rename back: key, edges, merge port and prompt.
    page.locator('[data-testid="canvas"]').click(position={"x": 20, "y": 400})
    page.keyboard.press("Control+z")
    page.wait_for_selector('[data-cell-id="llm1"]')
    expect(page.locator('[data-cell-id="summary"]')).to_have_count(0)
    back = doc(page)
    assert {n["id"]: n["config"] for n in back["nodes"]}["say"] == {
        "template": "Summary: {{ all.llm1 }}"
    }
    assert any(e["target_port"] == "llm1" for e in back["edges"])
    page.keyboard.press("Control+Shift+z")
    page.wait_for_selector('[data-cell-id="summary"]')

    # A typed key: refused when it is no identifier or taken, kept when it is fine, and then
    # the label no longer moves it.
    form = open_form(page, "summary")
    form.get_by_test_id("field-key").fill("my key")
    expect(form.get_by_test_id("key-error")).to_contain_text("a letter or _")
    form.get_by_test_id("field-key").fill("say")
    expect(form.get_by_test_id("key-error")).to_contain_text("already has the key say")
    assert "summary" in ids(page)
    form.get_by_test_id("field-key").fill("digest")
    page.wait_for_selector('[data-cell-id="digest"]')
    form = page.locator('form[data-testid="node-form"][data-node="digest"]')
    expect(form.get_by_test_id("key-error")).to_be_hidden()
    form.get_by_test_id("field-label").fill("Short version")
    page.wait_for_function(
        "() => Switchyard.canvas.documentJSON().nodes.some(n => n.label === 'Short version')"
    )
    assert ids(page) == ["digest", "merge1", "say", "text"]

    page.keyboard.press("Control+s")
    expect(page.get_by_test_id("version")).to_have_text("v2")
    page.reload()
    page.wait_for_function(READY)
    saved = doc(page)
    assert {n["id"]: n["config"] for n in saved["nodes"]}["say"] == {
        "template": "Summary: {{ all.digest }}"
    }


def test_problems_name_the_nodes_label_and_key(page: Page, server: Server) -> None:
    alice = new_user(server)
    flow = {
        "graph": {"name": "Unwired"},
        "nodes": [
            {
                "id": "llm1",
                "type": "llm",
                "label": "Writer",
                "config": {"prompt": "Greet {{ who }}"},
                "position": {"x": 0, "y": 0},
            },
        ],
        "edges": [],
    }
    flow_id = create_flow(server, alice, {**flow, "nodes": []})
    log_in(page, server, alice)
    open_editor(page, server, flow_id)
    page.evaluate("(d) => Switchyard.canvas.load(d, {keepSaved: true})", flow)
    page.evaluate("() => Switchyard.canvas.save().catch(() => {})")
    problem = page.get_by_test_id("problems").locator(".ed-problem-where").first
    expect(problem).to_have_text("Writer (llm1)")


def test_an_input_goes_by_one_name(page: Page, server: Server) -> None:
    alice = new_user(server)
    flow = {
        "graph": {"name": "One name"},
        "nodes": [
            {
                "id": "input1",
                "type": "input",
                "config": {"name": "input1"},
                "position": {"x": 0, "y": 0},
            },
            {
                "id": "out",
                "type": "output",
                "config": {"name": "out"},
                "position": {"x": 300, "y": 0},
            },
        ],
        "edges": [
            {"source": "input1", "target": "out", "source_port": "value", "target_port": "value"}
        ],
    }
    flow_id = create_flow(server, alice, flow)
    log_in(page, server, alice)
    open_editor(page, server, flow_id)
    form = open_form(page, "input1")
    # No label, no key: the Name is the one name it has.
    expect(form.get_by_test_id("field-label")).to_have_count(0)
    expect(form.get_by_test_id("field-key")).to_have_count(0)
    form.locator('input[name="f_name"]').fill("question")
    page.wait_for_selector('[data-cell-id="question"]')
    expect(page.locator('[data-cell-id="question"] .sy-title')).to_have_text("question")
    assert doc(page)["edges"][0]["source"] == "question"


def test_alice_renames_a_merge_port_and_the_prompt_after_the_merge_follows(
    page: Page, server: Server
) -> None:
    from tests.e2e.test_loop_edges import click_edge

    alice = new_user(server)
    flow_id = create_flow(server, alice, FLOW)
    log_in(page, server, alice)
    open_editor(page, server, flow_id)
    click_edge(page, "llm1", "merge1")
    form = page.locator('form[data-testid="edge-form"][data-ready]')
    expect(form.get_by_test_id("merge-port-name")).to_have_value("llm1")
    form.get_by_test_id("merge-port-name").fill("first draft")
    form.get_by_test_id("merge-port-rename").click()
    expect(page.locator("#ed-banners")).to_contain_text("Not renamed: a port name is")
    form.get_by_test_id("merge-port-name").fill("draft")
    form.get_by_test_id("merge-port-name").press("Enter")
    page.wait_for_selector('[data-cell-id="merge1"] [port="in:draft"]')
    now = doc(page)
    assert [e["target_port"] for e in now["edges"] if e["target"] == "merge1"] == ["draft"]
    assert {n["id"]: n["config"] for n in now["nodes"]}["say"] == {
        "template": "Summary: {{ all.draft }}"
    }
    # The form reopens on the renamed edge.
    expect(
        page.locator('form[data-testid="edge-form"][data-ready]').get_by_test_id("merge-port-name")
    ).to_have_value("draft")
    page.locator('[data-testid="canvas"]').click(position={"x": 20, "y": 400})
    page.keyboard.press("Control+z")
    page.wait_for_selector('[data-cell-id="merge1"] [port="in:llm1"]')
