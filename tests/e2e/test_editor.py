"""The flow editor in a real browser: palette, ports, the node form, saving, undo, drafts."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import Page, expect

from tests.e2e.conftest import Server, log_in
from tests.support.canvas import centre, connect, drag
from webapp.flows import services
from webapp.flows.models import Flow

READY = "() => document.documentElement.dataset.canvas === 'ready'"


@pytest.fixture
def errors(page: Page) -> Iterator[list[str]]:
    """Uncaught exceptions in the page; any fails the test."""
    found: list[str] = []
    page.on("pageerror", lambda exc: found.append(str(exc)))
    yield found
    assert found == []


def new_user(server: Server) -> str:
    return server.create_user(f"ed_{uuid.uuid4().hex[:8]}")


def create_flow(server: Server, username: str, graph: dict | None = None) -> int:
    graph = graph or {"graph": {"name": "Editor test"}, "nodes": [], "edges": []}

    def create() -> int:
        user = get_user_model().objects.get(username=username)
        return services.create(user, graph["graph"]["name"], graph).pk

    return server.orm(create)


def save_from_elsewhere(server: Server, flow_id: int, base: int) -> None:
    """Someone else saves the flow (same owner, another tab or an API client)."""

    def save() -> None:
        flow = Flow.objects.get(pk=flow_id)
        graph = flow.current().graph
        graph["graph"]["description"] = "saved elsewhere"
        services.save(flow, flow.owner, graph, base_version=base)

    server.orm(save)


def open_editor(page: Page, server: Server, flow_id: int) -> None:
    page.goto(f"{server.url}/flows/{flow_id}/")
    page.wait_for_function(READY)


def add_node(page: Page, node_type: str, at: tuple[float, float], node_id: str) -> None:
    drag(page, centre(page, f'[data-testid="palette-{node_type}"]'), at)
    page.wait_for_selector(f'[data-cell-id="{node_id}"]')


def doc(page: Page) -> dict:
    return page.evaluate("Switchyard.canvas.documentJSON()")


def canvas_point(page: Page, dx: float, dy: float) -> tuple[float, float]:
    box = page.locator('[data-testid="canvas"]').bounding_box()
    assert box is not None
    return box["x"] + dx, box["y"] + dy


def build_llm_to_output(page: Page) -> None:
    add_node(page, "llm", canvas_point(page, 200, 250), "llm1")
    add_node(page, "output", canvas_point(page, 520, 250), "output1")
    connect(page, "llm1", "text", "output1", "value")
    page.wait_for_function("() => Switchyard.canvas.documentJSON().edges.length === 1")


def test_build_configure_save_and_reload(page: Page, server: Server, errors: list[str]) -> None:
    username = new_user(server)
    flow_id = create_flow(server, username)
    log_in(page, server, username)
    open_editor(page, server, flow_id)
    expect(page.get_by_test_id("version")).to_have_text("v1")
    expect(page.locator("[data-empty-hint]")).to_be_visible()

    build_llm_to_output(page)
    expect(page.locator("[data-empty-hint]")).to_be_hidden()
    assert doc(page)["edges"] == [
        {"source": "llm1", "target": "output1", "source_port": "text", "target_port": "value"}
    ]
    expect(page.get_by_test_id("dirty")).to_be_visible()

    # An edge into the same port again is refused while dragging.
    connect(page, "llm1", "text", "output1", "value")
    assert len(doc(page)["edges"]) == 1

    # The server-rendered form: a template variable becomes an input port.
    page.click('[data-cell-id="llm1"] .sy-title')
    form = page.locator('form[data-testid="node-form"][data-node="llm1"][data-ready]')
    expect(form).to_be_visible()
    form.locator('textarea[name="f_prompt"]').fill("Greet {{ who }} warmly")
    page.wait_for_selector('[data-cell-id="llm1"] [port="in:who"]')
    expect(page.get_by_test_id("variables-prompt")).to_contain_text("{{ who }}")

    # Saving with the variable unconnected: kept as a version, its problem on the node.
    page.get_by_test_id("save").click()
    expect(page.get_by_test_id("version")).to_have_text("v2")
    expect(page.get_by_test_id("saved-with-problems")).to_be_visible()
    expect(page.get_by_test_id("problems")).to_contain_text("llm1")
    expect(page.locator('[data-cell-id="llm1"] .has-problem')).to_have_count(1)

    form.locator('textarea[name="f_prompt"]').fill("Say hello")
    page.wait_for_function(
        "() => Switchyard.canvas.documentJSON().nodes.find(n => n.id === 'llm1').config.prompt"
        " === 'Say hello'"
    )
    page.wait_for_selector('[data-cell-id="llm1"] [port="in:who"]', state="detached")
    form.locator('input[name="f_max_tokens"]').fill("-1")
    expect(page.get_by_test_id("error-max_tokens")).to_be_visible()
    form.locator('input[name="f_max_tokens"]').fill("300")
    expect(page.get_by_test_id("error-max_tokens")).to_have_count(0)
    page.wait_for_function(
        "() => Switchyard.canvas.documentJSON().nodes.find(n => n.id === 'llm1').config.max_tokens"
        " === 300"
    )

    # Saving right after typing waits for the form to reach the node.
    form.get_by_test_id("field-label").fill("Greeter")
    page.keyboard.press("Control+s")
    expect(page.get_by_test_id("version")).to_have_text("v3")
    expect(page.get_by_test_id("dirty")).to_be_hidden()
    expect(page.get_by_test_id("problems")).to_be_hidden()

    page.reload()
    page.wait_for_function(READY)
    expect(page.get_by_test_id("version")).to_have_text("v3")
    expect(page.get_by_test_id("dirty")).to_be_hidden()
    saved = doc(page)
    # The label named the node: its key followed (llm1 -> greeter), and its edge with it.
    assert {n["id"]: n.get("label") for n in saved["nodes"]} == {
        "greeter": "Greeter",
        "output1": None,
    }
    expect(page.locator('[data-cell-id="greeter"] .sy-title')).to_have_text("Greeter")
    assert {n["id"]: n["config"] for n in saved["nodes"]} == {
        "greeter": {"prompt": "Say hello", "max_tokens": 300},
        "output1": {"name": "output1"},
    }
    assert saved["edges"][0]["source"] == "greeter"
    assert len(saved["edges"]) == 1


def test_a_node_is_drawn_in_its_categorys_colour(
    page: Page, server: Server, errors: list[str]
) -> None:
    username = new_user(server)
    graph = {
        "graph": {"name": "Colours"},
        "nodes": [
            {"id": "ask", "type": "llm", "config": {"prompt": "hi"}},
            {"id": "helper", "type": "agent", "config": {"prompt": "hi"}},
            {"id": "out", "type": "output", "config": {"name": "out"}},
        ],
        "edges": [
            {"source": "ask", "target": "out", "source_port": "text", "target_port": "value"}
        ],
    }
    flow_id = create_flow(server, username, graph)
    log_in(page, server, username)
    open_editor(page, server, flow_id)
    token = page.evaluate(
        """name => {
            const probe = document.createElementNS("http://www.w3.org/2000/svg", "rect");
            probe.style.fill = `var(--cat-${name})`;
            document.querySelector("#ed-canvas svg").appendChild(probe);
            const fill = getComputedStyle(probe).fill;
            probe.remove();
            return fill;
        }""",
        "model",
    )
    dot = "id => getComputedStyle(document.querySelector(`[data-cell-id='${id}'] .sy-dot`)).fill"
    # Both model nodes (an llm and an agent) take the model colour; an output another.
    assert page.evaluate(dot, "ask") == page.evaluate(dot, "helper") == token
    assert page.evaluate(dot, "out") != token
    expect(page.locator('[data-cell-id="ask"] [data-category="model"]')).to_have_count(1)
    chip = page.locator('[data-testid="palette-agent"] .ty-chip')
    assert chip.evaluate("el => getComputedStyle(el, '::before').backgroundColor") == token


def test_undo_redo_copy_paste_and_delete(page: Page, server: Server, errors: list[str]) -> None:
    username = new_user(server)
    flow_id = create_flow(server, username)
    log_in(page, server, username)
    open_editor(page, server, flow_id)
    build_llm_to_output(page)

    blank = canvas_point(page, 60, 60)
    page.mouse.click(*blank)
    page.keyboard.press("Control+z")  # the edge
    page.wait_for_function("() => Switchyard.canvas.documentJSON().edges.length === 0")
    page.keyboard.press("Control+z")  # the output node
    page.wait_for_function("() => Switchyard.canvas.documentJSON().nodes.length === 1")
    page.keyboard.press("Control+Shift+z")
    page.keyboard.press("Control+Shift+z")
    page.wait_for_function("() => Switchyard.canvas.documentJSON().edges.length === 1")
    assert [n["id"] for n in doc(page)["nodes"]] == ["llm1", "output1"]

    # Copy and paste the llm: a new id, the same config.
    page.click('[data-cell-id="llm1"] .sy-title')
    page.wait_for_selector('[data-cell-id="llm1"] .is-selected')
    page.keyboard.press("Control+c")
    page.keyboard.press("Control+v")
    page.wait_for_selector('[data-cell-id="llm2"]')

    # A merge takes any port: connecting to its "+" port names a new one.
    add_node(page, "merge", canvas_point(page, 520, 420), "merge1")
    connect(page, "llm2", "text", "merge1", "+")
    page.wait_for_selector('[data-cell-id="merge1"] [port="in:llm2"]')
    assert {
        "source": "llm2",
        "target": "merge1",
        "source_port": "text",
        "target_port": "llm2",
    } in doc(page)["edges"]

    # Delete removes the selection and its edges; undo brings both back.
    page.mouse.click(*blank)
    page.click('[data-cell-id="merge1"] .sy-title')
    page.wait_for_selector('[data-cell-id="merge1"] .is-selected')
    page.keyboard.press("Delete")
    page.wait_for_selector('[data-cell-id="merge1"]', state="detached")
    assert all(e["target"] != "merge1" for e in doc(page)["edges"])
    page.keyboard.press("Control+z")
    page.wait_for_selector('[data-cell-id="merge1"] [port="in:llm2"]')
    assert any(e["target"] == "merge1" for e in doc(page)["edges"])

    # Auto-layout: the server puts the chain left to right.
    page.get_by_test_id("layout").click()
    page.wait_for_function(
        "(() => { const n = Object.fromEntries(Switchyard.canvas.documentJSON().nodes"
        ".map(n => [n.id, n.position.x])); return n.llm1 < n.output1 && n.llm2 < n.merge1 })()"
    )


def test_unsaved_changes_survive_a_refresh(page: Page, server: Server, errors: list[str]) -> None:
    username = new_user(server)
    flow_id = create_flow(server, username)
    log_in(page, server, username)
    open_editor(page, server, flow_id)
    add_node(page, "template", canvas_point(page, 250, 250), "template1")
    page.get_by_test_id("flow-name").fill("Renamed flow")
    expect(page.get_by_test_id("dirty")).to_be_visible()
    page.wait_for_function(
        f"() => localStorage.getItem('switchyard:draft:{flow_id}:1') !== null"
        f" && localStorage.getItem('switchyard:draft:{flow_id}:1').includes('Renamed flow')"
    )

    page.reload()
    page.wait_for_function(READY)
    expect(page.get_by_test_id("dirty")).to_be_visible()
    expect(page.locator(".ed-banner")).to_contain_text("Restored your unsaved changes")
    expect(page.get_by_test_id("flow-name")).to_have_value("Renamed flow")
    assert [n["id"] for n in doc(page)["nodes"]] == ["template1"]

    page.get_by_test_id("save").click()
    expect(page.get_by_test_id("version")).to_have_text("v2")
    expect(page.get_by_test_id("dirty")).to_be_hidden()
    assert page.evaluate(f"localStorage.getItem('switchyard:draft:{flow_id}:1')") is None
    page.reload()
    page.wait_for_function(READY)
    expect(page.locator(".ed-banner")).to_have_count(0)
    expect(page.get_by_test_id("flow-name")).to_have_value("Renamed flow")


def test_stale_save_shows_the_conflict_banner(
    page: Page, server: Server, errors: list[str]
) -> None:
    username = new_user(server)
    flow_id = create_flow(server, username)
    log_in(page, server, username)
    open_editor(page, server, flow_id)
    add_node(page, "template", canvas_point(page, 250, 250), "template1")

    save_from_elsewhere(server, flow_id, base=1)
    page.get_by_test_id("save").click()
    banner = page.get_by_test_id("conflict")
    expect(banner).to_contain_text("Someone saved version 2 while you were editing")
    expect(page.get_by_test_id("version")).to_have_text("v1")
    expect(page.get_by_test_id("dirty")).to_be_visible()

    # Nothing was overwritten: version 2 is the other save.
    def stored() -> tuple[int, int]:
        flow = Flow.objects.get(pk=flow_id)
        return flow.version, len(flow.current().graph["nodes"])

    assert server.orm(stored) == (2, 0)

    banner.get_by_test_id("reload").click()
    page.wait_for_function(READY)
    expect(page.get_by_test_id("version")).to_have_text("v2")
    expect(page.locator(".ed-banner")).to_contain_text("made on version 1")


def test_a_300_node_flow_opens_whole_for_the_requests_of_a_small_one(
    page: Page, server: Server, errors: list[str]
) -> None:
    chains, length = 30, 9
    nodes = [{"id": "q", "type": "input", "config": {"name": "q"}, "position": {"x": 0, "y": 0}}]
    edges = []
    for c in range(chains):
        previous, port = "q", "value"
        for i in range(length):
            node_id = f"t{c}_{i}"
            position = {"x": 260 * (i + 1), "y": 120 * c}
            nodes.append(
                {
                    "id": node_id,
                    "type": "template",
                    "config": {"template": "{{ text }}!"},
                    "position": position,
                }
            )
            edges.append(
                {"source": previous, "target": node_id, "source_port": port, "target_port": "text"}
            )
            previous, port = node_id, "text"
        edges.append(
            {"source": previous, "target": "m", "source_port": "text", "target_port": f"c{c}"}
        )
    nodes.append({"id": "m", "type": "merge", "config": {}, "position": {"x": 2600, "y": 1800}})
    nodes.append(
        {
            "id": "out",
            "type": "output",
            "config": {"name": "out"},
            "position": {"x": 2900, "y": 1800},
        }
    )
    edges.append({"source": "m", "target": "out", "source_port": "value", "target_port": "value"})
    nodes += [
        {
            "id": f"note{i}",
            "type": "template",
            "config": {"template": "note"},
            "position": {"x": 0, "y": 200 + 120 * i},
        }
        for i in range(300 - len(nodes))
    ]
    username = new_user(server)
    flow_id = create_flow(
        server, username, {"graph": {"name": "Big"}, "nodes": nodes, "edges": edges}
    )
    log_in(page, server, username)
    # How long it takes is bench/editor_open.py's figure; what it costs is counted here: the
    # same requests to the server (the page and its API calls) as a two-node flow's.
    small = create_flow(server, username, services.starter_graph("Small"))
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))

    def requests_to_open(flow: int) -> list[str]:
        asked.clear()
        open_editor(page, server, flow)
        page.wait_for_load_state("networkidle")
        flow_path = f"/flows/{flow}/"
        return sorted(u.replace(flow_path, "/flows/ID/") for u in asked if "/static/" not in u)

    assert requests_to_open(small) == requests_to_open(flow_id)
    assert page.evaluate("Switchyard.canvas.graph.getNodes().length") == 300
    # Only what is in view is drawn; the rest appears as you pan (X6 virtual rendering).
    assert 0 < page.locator("#ed-canvas .x6-node").count() <= 300
    page.get_by_test_id("zoom-fit").click()
    page.wait_for_function("() => document.querySelectorAll('#ed-canvas .x6-node').length === 300")
