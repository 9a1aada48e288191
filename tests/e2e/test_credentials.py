"""The credentials page in a real browser: alice adds a team credential through the htmx
form, sees it listed by name and kind (never its value, not even in the form she typed it
into), the page has no serious accessibility problems, and she deletes it."""

from __future__ import annotations

import uuid

from django.contrib.auth import get_user_model
from playwright.sync_api import Page, expect

from tests.e2e.conftest import Server, log_in
from tests.e2e.test_accessibility import audit
from webapp.teams.models import Membership, Role, Team

PLANTED = "sk-planted-e2e-4c1d"


def test_alice_adds_a_team_credential_whose_value_never_comes_back(page: Page, server: Server):
    alice = server.create_user(f"alice_{uuid.uuid4().hex[:6]}")

    def team() -> None:
        owner = get_user_model().objects.get(username=alice)
        made = Team.objects.create(name="Research")
        Membership.objects.create(team=made, user=owner, role=Role.OWNER)

    server.orm(team)
    log_in(page, server, alice)
    page.goto(f"{server.url}/settings/credentials/")
    assert audit(page, server) == []
    page.fill("input[name=name]", "bad name")
    page.select_option("select[name=kind]", "bearer")
    page.fill("input[name=value]", PLANTED)
    page.click("text=Save credential")
    expect(page.get_by_test_id("error-name")).to_contain_text("identifier")
    # Refused, the form does not hand the value back.
    expect(page.locator("input[name=value]")).to_have_value("")
    page.fill("input[name=name]", "billing")
    page.fill("input[name=value]", PLANTED)
    page.select_option("select[name=team]", label="Research")
    page.click("text=Save credential")
    row = page.get_by_test_id("credential-billing")
    expect(row).to_contain_text("Bearer token")
    expect(row).to_contain_text("Research")
    assert PLANTED not in page.content()
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Delete billing").click()
    expect(page.get_by_test_id("credential-billing")).to_have_count(0)
    expect(page.get_by_text("No credentials yet.")).to_be_visible()
