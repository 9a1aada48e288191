"""Sharing a flow with a person, inviting someone to a team and transferring a flow never
tell the one doing it which usernames or e-mail addresses have accounts.

Each test compares the whole answer for a name with no account ("ghost") with the
answer for names that have one but cannot receive what is offered (a stranger for a
transfer, an inactive account, an e-mail two accounts use) or can (a share or an
invitation, which now wait for their recipient): the same status and the same page or
body, once the typed name, ids and CSRF tokens are taken out.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from webapp.flows import services
from webapp.flows.models import Flow
from webapp.flows.sharing import service as sharing
from webapp.teams.models import Invite, Team

# Each name with an account (an active stranger, an inactive account, an e-mail two
# accounts use), next to one of the same form that has none.
GHOST, GHOST_EMAIL = "ghost", "ghost@example.com"
NAMES = {"dave": GHOST, "erin": GHOST, "dave@example.com": GHOST_EMAIL}
NAMES["twin@example.com"] = GHOST_EMAIL


@pytest.fixture(autouse=True)
def others(db, dave) -> None:
    User = get_user_model()
    User.objects.create_user("erin", "erin@example.com", "x", is_active=False)
    User.objects.create_user("twin1", "twin@example.com", "x")
    User.objects.create_user("twin2", "twin@example.com", "x")


def normal(text: str, name: str) -> str:
    """The answer without what legitimately differs: the name typed, ids, CSRF tokens."""
    text = text.replace(name, "NAME")
    text = re.sub(r"[A-Za-z0-9]{64}", "CSRF", text)
    text = re.sub(r"/(flows|shares|teams|invites)/\d+(?=/)", r"/\1/ID", text)
    text = re.sub(r'datetime="[^"]+"|\d+ \w{3} \d{4}, \d\d:\d\d', "WHEN", text)
    return re.sub(r"(share-role-|data-share=\"|data-link=\")\d+", r"\1ID", text)


def body(answer, name: str) -> dict[str, Any]:
    data = {k: v for k, v in answer.json().items() if k not in ("id", "created", "expires")}
    return {k: normal(v, name) if isinstance(v, str) else v for k, v in data.items()}


def items(answer) -> list[dict[str, Any]]:
    return answer.json()["items"]


def new_flow(owner) -> Flow:
    return services.create(owner, "Echo", services.starter_graph("Echo"))


# ---- Sharing with a person -------------------------------------------------------------------


def share_page(client, alice, name: str) -> tuple[int, str]:
    flow = new_flow(alice)
    client.force_login(alice)
    answer = client.post(
        reverse("flow_share_create", args=[flow.pk]),
        {"who": name, "role": "viewer"},
        headers={"HX-Request": "true"},
    )
    return answer.status_code, normal(answer.content.decode(), name)


def test_sharing_with_an_unknown_name_looks_like_sharing_with_an_account(client, alice):
    ghost = share_page(client, alice, GHOST)
    assert ghost[0] == 200
    assert "Shared with “NAME” (viewer)" in ghost[1]
    for name, unknown in NAMES.items():
        assert share_page(client, alice, name) == share_page(client, alice, unknown), name


def test_the_share_api_answers_alike_for_unknown_and_existing_names(api, alice):
    def share(name: str) -> tuple[int, dict, list]:
        flow = new_flow(alice)
        made = api("alice").post(f"/api/flows/{flow.pk}/shares", {"user": name})
        listed = items(api("alice").get(f"/api/flows/{flow.pk}/shares"))
        return made.status_code, body(made, name), [normal(s["user"], name) for s in listed]

    assert share(GHOST) == (
        201,
        {"user": "NAME", "team": None, "team_name": None, "role": "viewer", "accepted": False},
        ["NAME"],
    )
    for name, unknown in NAMES.items():
        assert share(name) == share(unknown), name


def test_a_share_sorts_by_the_name_typed_not_the_account_found(alice, dave):
    flow = new_flow(alice)
    for name in ("zed", "dave@example.com", "aaron"):
        sharing.share_with_user(flow, alice, name, "viewer")
    assert [s.shown_name for s in sharing.shares(flow)] == ["aaron", "dave@example.com", "zed"]


# ---- Inviting to a team ----------------------------------------------------------------------


@pytest.fixture
def alices_team(team) -> Team:
    return team


def invite_page(client, alice, team: Team, name: str) -> tuple[int, str, str]:
    Invite.objects.all().delete()
    client.force_login(alice)
    answer = client.post(reverse("team_invite", args=[team.pk]), {"who": name, "role": "viewer"})
    page = client.get(reverse("team_detail", args=[team.pk])).content.decode()
    # The message the redirect leads to, and the open invitations as listed.
    message = re.search(r'<ul class="messages".*?</ul>', page, re.S)
    table = re.search(r'<table class="table" data-testid="open-invites">.*?</table>', page, re.S)
    assert message and table, page
    return answer.status_code, normal(message.group(), name), normal(table.group(), name)


def test_inviting_an_unknown_name_looks_like_inviting_an_account(client, alice, alices_team):
    ghost = invite_page(client, alice, alices_team, GHOST)
    assert ghost[0] == 302
    assert "Invited “NAME” as viewer." in ghost[1]
    # A member's e-mail too: saying "already a member" would tell whose address it is.
    for name, unknown in {**NAMES, "bob@example.com": GHOST_EMAIL}.items():
        answer = invite_page(client, alice, alices_team, name)
        assert answer == invite_page(client, alice, alices_team, unknown), name


def test_the_invite_api_answers_alike_for_unknown_and_existing_names(api, alices_team):
    def invite(name: str) -> tuple[int, dict, list]:
        Invite.objects.all().delete()
        made = api("alice").post(f"/api/teams/{alices_team.pk}/invites", {"user": name})
        listed = items(api("alice").get(f"/api/teams/{alices_team.pk}/invites"))
        return made.status_code, body(made, name), [normal(i["user"], name) for i in listed]

    ghost = invite(GHOST)
    assert ghost[0] == 201 and ghost[1]["user"] == "NAME"
    for name, unknown in {**NAMES, "bob@example.com": GHOST_EMAIL}.items():
        assert invite(name) == invite(unknown), name


def test_an_invitation_that_found_no_account_reaches_nobody(api, alices_team, dave):
    for name in ("ghost", "erin", "twin@example.com", "bob@example.com"):
        api("alice").post(f"/api/teams/{alices_team.pk}/invites", {"user": name})
    for name in ("bob", "carol", "dave"):
        assert items(api(name).get("/api/teams/invitations")) == [], name
    assert Invite.objects.filter(user__isnull=True).exclude(invitee="").count() == 4


# ---- Transfer ----------------------------------------------------------------------------------


def transfer_page(client, owner, flow: Flow, name: str) -> tuple[int, str]:
    """The status and the panel's problem (the rest of the panel shows the flow's shares)."""
    client.force_login(owner)
    answer = client.post(
        reverse("flow_transfer", args=[flow.pk]), {"who": name}, headers={"HX-Request": "true"}
    )
    problem = re.search(r'<p class="form-errors".*?</p>', answer.content.decode(), re.S)
    assert problem, answer.content.decode()
    return answer.status_code, normal(problem.group(), name)


def test_transferring_a_personal_flow_is_refused_alike_for_unknown_and_existing_names(
    client, alice, dave
):
    flow = new_flow(alice)
    sharing.share_with_user(flow, alice, "dave", "editor")  # waiting: not his to take yet
    ghost = transfer_page(client, alice, flow, GHOST)
    assert ghost[0] == 200
    assert "“NAME” cannot take this flow" in ghost[1]
    for name, unknown in NAMES.items():
        assert (
            transfer_page(client, alice, flow, name)
            == ghost
            == (transfer_page(client, alice, flow, unknown))
        ), name
    assert Flow.objects.get(pk=flow.pk).owner == alice


def test_transferring_a_team_flow_is_refused_alike_for_unknown_names_and_non_members(
    client, alice, team_flow
):
    ghost = transfer_page(client, alice, team_flow, GHOST)
    assert "a team&#x27;s flow goes only to one of Research&#x27;s members" in ghost[1]
    for name, unknown in NAMES.items():
        assert (
            transfer_page(client, alice, team_flow, name)
            == ghost
            == (transfer_page(client, alice, team_flow, unknown))
        ), name


def test_the_transfer_api_refuses_alike(api, team_flow):
    def transfer(name: str) -> tuple[int, dict]:
        answer = api("alice").post(f"/api/flows/{team_flow.pk}/transfer", {"user": name})
        return answer.status_code, body(answer, name)

    ghost = transfer(GHOST)
    assert ghost[0] == 400
    for name, unknown in NAMES.items():
        assert transfer(name) == ghost == transfer(unknown), name
