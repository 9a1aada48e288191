"""Unfinished work in the editor (issue 14, items 2 and 8): a save with problems is kept as
a version that lists them, a teammate sees them, a run of it is refused naming them; and
the node form's badge agrees with the problems the save reports for that node."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.e2e.conftest import Server, log_in
from tests.e2e.test_editor import (
    READY,
    add_node,
    canvas_point,
    create_flow,
    doc,
    errors,
    new_user,
    open_editor,
)
from webapp.flows.models import Flow
from webapp.teams.models import Membership, Role, Team

__all__ = ["errors"]  # the fixture: an uncaught exception in the page fails the test


def starter() -> dict:
    return {
        "graph": {"name": "Half built"},
        "nodes": [
            {"id": "q", "type": "input", "config": {"name": "q"}, "position": {"x": 0, "y": 100}},
            {
                "id": "out",
                "type": "output",
                "config": {"name": "out"},
                "position": {"x": 600, "y": 100},
            },
        ],
        "edges": [{"source": "q", "target": "out", "source_port": "value", "target_port": "value"}],
    }


def share_with_team(server: Server, flow_id: int, owner: str, editor: str) -> None:
    def share() -> None:
        flow = Flow.objects.get(pk=flow_id)
        team = Team.objects.create(name=f"team of {owner}")
        Membership.objects.create(team=team, user=flow.owner, role=Role.OWNER)
        bob = flow.owner.__class__.objects.get(username=editor)
        Membership.objects.create(team=team, user=bob, role=Role.EDITOR)
        Flow.objects.filter(pk=flow_id).update(team=team)

    server.orm(share)


def test_unfinished_work_is_saved_seen_by_a_teammate_and_refused_a_run(
    page: Page,
    server: Server,
    errors: list[str],
) -> None:
    alice = new_user(server)
    bob = new_user(server)
    flow_id = create_flow(server, alice, starter())
    share_with_team(server, flow_id, alice, bob)
    log_in(page, server, alice)
    open_editor(page, server, flow_id)

    # A new llm node: its prompt is still empty, and nothing is wired into it yet.
    add_node(page, "llm", canvas_point(page, 300, 320), "llm1")
    page.get_by_test_id("save").click()
    # Kept as version 2, with its problem listed, not refused as "Not saved".
    expect(page.get_by_test_id("version")).to_have_text("v2")
    expect(page.get_by_test_id("saved-with-problems")).to_contain_text(
        "Saved version 2 with 1 problem"
    )
    problems = page.get_by_test_id("problems")
    expect(problems).to_contain_text("the prompt is required")
    expect(page.locator('[data-cell-id="llm1"] .has-problem')).to_have_count(1)
    expect(page.get_by_test_id("dirty")).to_be_hidden()

    # The version history lists the problem on version 2.
    page.goto(f"{server.url}/flows/{flow_id}/versions/")
    row = page.locator('tr[data-version="2"]')
    expect(row.get_by_test_id("version-problems")).to_contain_text("1 problem")
    expect(row.get_by_test_id("publish")).to_have_count(0)

    # Bob, her teammate, opens the flow: the saved work and its problem are there for him.
    page.context.clear_cookies()
    log_in(page, server, bob)
    open_editor(page, server, flow_id)
    expect(page.get_by_test_id("version")).to_have_text("v2")
    assert "llm1" in {n["id"] for n in doc(page)["nodes"]}
    expect(page.get_by_test_id("problems")).to_contain_text("the prompt is required")

    # A run of it is refused, naming the problem.
    page.get_by_test_id("run").click()
    with page.expect_response(lambda r: r.url.endswith("/runs")) as info:
        page.get_by_test_id("run-submit").click()
    assert info.value.status == 400
    run_problems = page.locator("[data-run-problems]")
    expect(run_problems).to_contain_text("the prompt is required")
    expect(page.locator(".run-message, [data-run-message]").first).to_contain_text(
        "Version 2 has 1 problem to fix before it can run"
    )


def test_the_form_badge_reflects_the_problems_a_save_reports(
    page: Page,
    server: Server,
    errors: list[str],
) -> None:
    alice = new_user(server)
    graph = starter()
    graph["nodes"].append(
        {
            "id": "ask",
            "type": "llm",
            "config": {"prompt": "Answer {{ question }}"},
            "position": {"x": 300, "y": 300},
        }
    )
    flow_id = create_flow(server, alice, graph)
    log_in(page, server, alice)
    open_editor(page, server, flow_id)

    # The config alone is fine, but {{ question }} has no edge: the badge says so.
    page.click('[data-cell-id="ask"] .sy-title')
    form = page.locator('form[data-testid="node-form"][data-node="ask"][data-ready]')
    expect(form).to_be_visible()
    state = form.locator(".nf-state")
    expect(state).to_have_text("needs attention")
    expect(form.get_by_test_id("node-flow-problems")).to_contain_text(
        "template variable {{ question }} has no port"
    )

    # An empty required prompt: needs attention too.
    form.locator('textarea[name="f_prompt"]').fill("")
    expect(state).to_have_text("needs attention")
    expect(page.get_by_test_id("error-prompt")).to_contain_text("the prompt is required")

    # A prompt with no variable and nothing missing: valid, and the problems are gone.
    form.locator('textarea[name="f_prompt"]').fill("Say hello")
    expect(state).to_have_text("valid")
    expect(form.get_by_test_id("node-flow-problems")).to_have_count(0)
    page.wait_for_function(READY)
