"""Flow descriptions and the template gallery in a real browser: the examples' descriptions
show in the flow list and the editor; "Use this template" makes a working copy."""

from __future__ import annotations

import json
from pathlib import Path

from django.contrib.auth import get_user_model
from playwright.sync_api import Page, expect

from tests.e2e.conftest import Server, log_in
from tests.e2e.test_editor import READY, errors, new_user
from webapp.flows.models import Flow

__all__ = ["errors"]  # the fixture: an uncaught exception in the page fails the test

EXAMPLES = Path(__file__).parents[2] / "examples"
PATTERNS = [
    "Chaining",
    "Routing",
    "Parallelization",
    "Orchestrator-workers",
    "Evaluator-optimizer",
    "Agent",
]
NODE_TYPES = ["http", "parse", "code", "subflow", "map", "structured output"]


def example(name: str) -> dict:
    return json.loads((EXAMPLES / f"{name}.json").read_text())


def test_descriptions_show_in_the_flow_list_and_the_editor(
    page: Page, server: Server, errors: list[str]
) -> None:
    alice = new_user(server)  # a new user gets the examples
    log_in(page, server, alice)
    page.goto(f"{server.url}/")
    router = example("router")["graph"]
    row = page.locator("tr", has=page.get_by_role("link", name=router["name"], exact=True))
    expect(row.get_by_test_id("flow-description")).to_have_text(router["description"])

    row.get_by_role("link", name=router["name"], exact=True).click()
    page.wait_for_function(READY)
    expect(page.get_by_test_id("flow-description")).to_have_text(router["description"])


def test_the_gallery_has_a_template_per_pattern_and_node_type_and_use_copies_it(
    page: Page, server: Server, errors: list[str]
) -> None:
    bob = new_user(server)
    log_in(page, server, bob)
    page.goto(f"{server.url}/")
    page.get_by_test_id("templates").click()
    expect(page.get_by_role("heading", name="Templates")).to_be_visible()
    shows = " | ".join(page.locator(".gallery-shows").all_text_contents())
    for pattern in PATTERNS:
        assert pattern in shows, pattern
    for node_type in NODE_TYPES:
        assert node_type in shows, node_type
    card = page.get_by_test_id("template-subflow")
    expect(card.get_by_test_id("template-description")).to_have_text(
        example("subflow")["graph"]["description"]
    )

    def flows() -> list[tuple[int, str]]:
        user = get_user_model().objects.get(username=bob)
        return list(Flow.objects.filter(owner=user).order_by("pk").values_list("pk", "name"))

    before = server.orm(flows)
    card.get_by_role("button", name="Use the template").click()
    page.wait_for_function(READY)
    created = [f for f in server.orm(flows) if f not in before]
    # The triage flow it calls comes along, first; the editor opens the copy.
    assert [name for _, name in created] == [
        example("classify")["graph"]["name"],
        example("subflow")["graph"]["name"],
    ]
    assert page.url.rstrip("/").endswith(f"/flows/{created[1][0]}")
    document = page.evaluate("Switchyard.canvas.documentJSON()")
    triage = next(n for n in document["nodes"] if n["type"] == "subflow")
    assert triage["config"]["flow"] == str(created[0][0])
    # The copy is whole: the sub-flow's ports came from the copied triage flow.
    expect(page.locator('[data-cell-id="triage"] [port="out:reason"]')).to_have_count(1)
    expect(page.get_by_test_id("flow-description")).to_contain_text("Sub-flow")


def test_a_flow_shared_with_a_team_shows_in_the_teams_section(
    page: Page, server: Server, errors: list[str]
) -> None:
    alice = new_user(server)
    bob = new_user(server)

    def share() -> tuple[int, str]:
        from webapp.flows import services
        from webapp.flows.models import FlowShare
        from webapp.teams.models import Membership, Role, Team

        users = get_user_model().objects
        owner, member = users.get(username=alice), users.get(username=bob)
        team = Team.objects.create(name=f"Research {alice}")
        Membership.objects.create(team=team, user=owner, role=Role.OWNER)
        Membership.objects.create(team=team, user=member, role=Role.EDITOR)
        flow = services.create(owner, "Team notes", example("chain"))
        FlowShare.objects.create(flow=flow, team=team, role="editor", created_by=owner)
        return team.pk, team.name

    team_id, _ = server.orm(share)
    log_in(page, server, bob)
    page.goto(f"{server.url}/")
    section = page.locator(f'section.space[data-space="team-{team_id}"]')
    expect(section.get_by_role("link", name="Team notes")).to_be_visible()
    expect(section.get_by_test_id("shared-with-team")).to_be_visible()
    expect(section.locator(".empty")).to_have_count(0)
    expect(page.locator('section.space[data-space="shared"]')).to_have_count(0)


def test_two_teams_of_one_name_can_be_told_apart_in_the_share_picker(
    page: Page, server: Server, errors: list[str]
) -> None:
    alice = new_user(server)

    def teams() -> int:
        from webapp.flows import services
        from webapp.teams.models import Membership, Role, Team

        owner = get_user_model().objects.get(username=alice)
        for size in (1, 2):
            team = Team.objects.create(name="Research")
            Membership.objects.create(team=team, user=owner, role=Role.OWNER)
            for _ in range(size - 1):
                other = get_user_model().objects.create(username=f"m{team.pk}_{alice}")
                Membership.objects.create(team=team, user=other, role=Role.VIEWER)
        return services.create(owner, "To share", example("chain")).pk

    flow_id = server.orm(teams)
    log_in(page, server, alice)
    page.goto(f"{server.url}/flows/{flow_id}/share/")
    labels = page.locator("#share-team option").all_text_contents()
    assert len(labels) == 2
    assert len(set(labels)) == 2, labels
    assert all(label.startswith("Research (") for label in labels), labels
    assert any("2 members" in label for label in labels), labels


def test_a_waiting_invitation_shows_as_a_badge_on_teams(
    page: Page, server: Server, errors: list[str]
) -> None:
    alice = new_user(server)
    carol = new_user(server)

    def invite() -> None:
        from webapp.teams import services as teams
        from webapp.teams.models import Membership, Role, Team

        owner = get_user_model().objects.get(username=alice)
        team = Team.objects.create(name=f"Lab {alice}")
        Membership.objects.create(team=team, user=owner, role=Role.OWNER)
        teams.invite_user(team, owner, carol, Role.VIEWER)

    log_in(page, server, carol)
    expect(page.get_by_test_id("invitations-badge")).to_have_count(0)
    server.orm(invite)
    page.goto(f"{server.url}/")
    expect(page.get_by_test_id("invitations-badge")).to_have_text("1")
