"""A loop-back edge's settings in a real browser: selecting the edge opens its form (server
rendered, htmx), errors are named on their fields, the edge is drawn with what it holds
("initial: …", "+="), undo and redo take the settings back and forth, and a teammate with
the flow open gets them with the save."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import Server, log_in
from tests.e2e.test_editor import READY
from webapp.flows import services
from webapp.teams.models import Membership, Role, Team


def two_entry_loop(initial: dict | None = None) -> dict:
    """A writer and a grader that both read the topic from outside their loop."""

    def at(x: int, y: int) -> dict:
        return {"x": x, "y": y}

    nodes = [
        {"id": "topic", "type": "input", "config": {"name": "topic"}, "position": at(40, 160)},
        {"id": "gen", "type": "template", "position": at(330, 60),
         "config": {"template": "{{ topic }} {{ feedback }}"}},
        {"id": "grade", "type": "template", "position": at(330, 330),
         "config": {"template": "{{ topic }} {{ joke }}", "max_iterations": 3}},
        {"id": "out", "type": "output", "config": {"name": "out"}, "position": at(640, 330)},
    ]  # fmt: skip
    edges = [
        ("topic", "gen", "value", "topic"),
        ("topic", "grade", "value", "topic"),
        ("gen", "grade", "text", "joke"),
        ("grade", "gen", "text", "feedback"),
        ("grade", "out", "text", "value"),
    ]
    document = {
        "graph": {"name": "Two entries"},
        "nodes": nodes,
        "edges": [
            {"source": s, "target": t, "source_port": sp, "target_port": tp}
            for s, t, sp, tp in edges
        ],
    }
    document["edges"][3].update(initial or {})
    return document


def team_flow(server: Server, document: dict) -> tuple[str, str, int]:
    """A flow of alice's team, where bob edits."""
    suffix = uuid.uuid4().hex[:6]
    alice = server.create_user(f"alice_{suffix}")
    bob = server.create_user(f"bob_{suffix}")

    def create() -> int:
        users = get_user_model().objects
        owner, editor = users.get(username=alice), users.get(username=bob)
        team = Team.objects.create(name="Loops")
        Membership.objects.create(team=team, user=owner, role=Role.OWNER)
        Membership.objects.create(team=team, user=editor, role=Role.EDITOR)
        return services.create(owner, "Two entries", document, team=team).pk

    return alice, bob, server.orm(create)


@pytest.fixture
def two_pages(browser: Browser) -> Iterator[tuple[Page, Page]]:
    errors: list[str] = []
    contexts = [browser.new_context(viewport={"width": 1280, "height": 800}) for _ in range(2)]
    pages = [context.new_page() for context in contexts]
    for page in pages:
        page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield pages[0], pages[1]
    for context in contexts:
        context.close()
    assert errors == []


def open_editor(page: Page, server: Server, username: str, flow_id: int) -> None:
    log_in(page, server, username)
    page.goto(f"{server.url}/flows/{flow_id}/")
    page.wait_for_function(READY)


def edge_settings(page: Page, source: str, target: str) -> dict:
    """The document edge from source to target, without its ends: its loop settings."""
    return page.evaluate(
        """([s, t]) => {
            const e = Switchyard.canvas.documentJSON().edges
                .find(e => e.source === s && e.target === t);
            const { source, target, source_port, target_port, ...rest } = e;
            return rest;
        }""",
        [source, target],
    )


def click_edge(page: Page, source: str, target: str) -> None:
    """A click on the drawn edge, a third of the way along: half-way is where hovering
    shows its remove button."""
    # Asked until the point is on the edge: the page may still be settling (presence joins
    # the top bar, the canvas resizes).
    where = page.wait_for_function(
        """([s, t]) => {
            const graph = Switchyard.canvas.graph;
            const edge = graph.getEdges()
                .find(e => e.getSourceCellId() === s && e.getTargetCellId() === t);
            const at = graph.findViewByCell(edge).getPointAtRatio(0.3);
            const client = graph.localToClient(at.x, at.y);
            const hit = document.elementFromPoint(client.x, client.y);
            const cell = hit && hit.closest("[data-cell-id]");
            return cell && cell.dataset.cellId === edge.id && { x: client.x, y: client.y };
        }""",
        arg=[source, target],
    )
    point = where.json_value()
    page.mouse.click(point["x"], point["y"])


def edge_label(page: Page):
    return page.locator("text.sy-edge-label")


def click_label(page: Page) -> None:
    """The label is drawn on a box, which takes the clicks for the edge."""
    page.locator("rect.sy-edge-label-bg").click()


def test_a_loop_back_edges_settings_are_edited_undone_and_reach_a_teammate(
    server: Server, two_pages: tuple[Page, Page]
) -> None:
    alice, bob, flow_id = team_flow(server, two_entry_loop())
    page, bob_page = two_pages
    open_editor(page, server, alice, flow_id)
    open_editor(bob_page, server, bob, flow_id)
    expect(edge_label(page)).to_have_count(0)
    expect(page.get_by_test_id("warnings")).to_contain_text("set 'initial' on a loop-back edge")
    expect(page.locator(f'[data-testid="present-user"][data-username="{bob}"]')).to_be_visible()

    # An edge round no loop has nothing to set.
    click_edge(page, "grade", "out")
    form = page.locator('form[data-testid="edge-form"][data-ready]')
    expect(form.get_by_test_id("edge-not-in-loop")).to_be_visible()
    expect(form.locator('textarea[name="initial"]')).to_have_count(0)

    # The loop-back edge offers both settings.
    click_edge(page, "grade", "gen")
    expect(form.get_by_test_id("edge-ends")).to_have_text("grade.text → gen.feedback")
    initial = form.get_by_test_id("edge-initial")
    initial.fill("no feedback yet")
    expect(form.get_by_test_id("error-initial")).to_contain_text('put text in "quotes"')
    assert edge_settings(page, "grade", "gen") == {}

    initial.fill('"no feedback yet"')
    expect(form.get_by_test_id("error-initial")).to_have_count(0)
    expect(edge_label(page)).to_have_text('initial: "no feedback yet"')
    assert edge_settings(page, "grade", "gen") == {"initial": "no feedback yet"}
    expect(page.get_by_test_id("dirty")).to_be_visible()

    form.get_by_test_id("edge-append").check()
    expect(form.get_by_test_id("error-append")).to_contain_text("to be a list")
    assert edge_settings(page, "grade", "gen") == {"initial": "no feedback yet"}
    initial.fill("[]")
    expect(edge_label(page)).to_have_text("+=")
    assert edge_settings(page, "grade", "gen") == {"initial": [], "append": True}

    # Undo and redo, as for a node's config.
    page.get_by_test_id("undo").click()
    expect(edge_label(page)).to_have_text('initial: "no feedback yet"')
    assert edge_settings(page, "grade", "gen") == {"initial": "no feedback yet"}
    page.get_by_test_id("redo").click()
    expect(edge_label(page)).to_have_text("+=")

    # The form opened again shows the edge as it is.
    click_label(page)
    expect(form.get_by_test_id("edge-append")).to_be_checked()
    expect(form.get_by_test_id("edge-initial")).to_have_value("[]")

    # Saved: the teammate's clean canvas loads it in place, drawn the same.
    page.keyboard.press("Control+s")
    expect(page.get_by_test_id("version")).to_have_text("v2")
    expect(bob_page.get_by_test_id("version")).to_have_text("v2")
    expect(edge_label(bob_page)).to_have_text("+=")
    assert edge_settings(bob_page, "grade", "gen") == {"initial": [], "append": True}
    # The teammate's form reads it too, and keeps the settings when they edit it.
    click_label(bob_page)
    bob_form = bob_page.locator('form[data-testid="edge-form"][data-ready]')
    expect(bob_form.get_by_test_id("edge-append")).to_be_checked()
