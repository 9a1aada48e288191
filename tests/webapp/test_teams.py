"""Teams: pages and API for members and roles, invitations (by name, e-mail and link),
the last-owner rule, and the flow list grouped by space.

Personas (tests/webapp/conftest.py): alice owns the team "Research", bob is its editor,
carol its viewer, dave a stranger.
"""

from __future__ import annotations

import datetime as dt
import re

from django.test import Client
from django.urls import reverse
from django.utils import timezone

from webapp.accounts.models import ApiToken
from webapp.flows import services
from webapp.flows.models import Flow, FlowShare
from webapp.teams.models import Invite, Membership, Role, Team

JSON = "application/json"


def as_user(client, user):
    client.force_login(user)
    return client


def role_of(team: Team, user) -> str | None:
    return Membership.objects.filter(team=team, user=user).values_list("role", flat=True).first()


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def follow_post(client, url: str, data: dict | None = None):
    return client.post(url, data or {}, follow=True)


# ---- Team list and creation ---------------------------------------------------------------


def test_creating_a_team_makes_the_creator_its_owner(client, dave):
    as_user(client, dave)
    response = client.post(reverse("team_list"), {"name": "  Ops  "})
    team = Team.objects.get(name="Ops")
    assert response.status_code == 302
    assert response.url == reverse("team_detail", args=[team.pk])
    assert role_of(team, dave) == Role.OWNER


def test_a_team_needs_a_name(client, dave):
    as_user(client, dave)
    response = client.post(reverse("team_list"), {"name": "   "})
    assert response.status_code == 400
    assert not Team.objects.exists()


def test_the_team_list_shows_my_teams_with_my_role_and_no_others(client, team, carol, dave):
    Team.objects.create(name="Someone else's")
    html = as_user(client, carol).get(reverse("team_list")).content.decode()
    assert "Research" in html
    assert "viewer" in html
    assert "Someone else" not in html
    assert "Research" not in as_user(client, dave).get(reverse("team_list")).content.decode()


def test_the_nav_links_to_teams(client, alice):
    html = as_user(client, alice).get(reverse("flow_list")).content.decode()
    assert f'href="{reverse("team_list")}"' in html


# ---- Who sees what --------------------------------------------------------------------------


def team_urls(team: Team, target) -> list[tuple[str, str]]:
    """Every team page and action, with the method it takes."""
    return [
        ("get", reverse("team_detail", args=[team.pk])),
        ("post", reverse("team_rename", args=[team.pk])),
        ("get", reverse("team_delete", args=[team.pk])),
        ("post", reverse("team_delete", args=[team.pk])),
        ("post", reverse("team_leave", args=[team.pk])),
        ("post", reverse("team_member_role", args=[team.pk, target.pk])),
        ("post", reverse("team_member_remove", args=[team.pk, target.pk])),
        ("post", reverse("team_invite", args=[team.pk])),
        ("post", reverse("team_invite_link", args=[team.pk])),
        ("post", reverse("team_invite_revoke", args=[team.pk, 1])),
    ]


def test_every_team_page_is_404_for_a_stranger(client, team, carol, dave):
    as_user(client, dave)
    for method, url in team_urls(team, carol):
        assert getattr(client, method)(url, {"role": "owner"}).status_code == 404, url
    assert role_of(team, carol) == Role.VIEWER
    assert Team.objects.filter(pk=team.pk).exists()


def test_a_missing_team_looks_like_someone_elses(client, dave):
    as_user(client, dave)
    assert client.get(reverse("team_detail", args=[999])).status_code == 404


def test_managing_the_team_is_403_for_editors_and_viewers(client, team, bob, carol):
    owner_only = [(m, u) for m, u in team_urls(team, carol) if "leave" not in u]
    owner_only.remove(("get", reverse("team_detail", args=[team.pk])))
    for user in (bob, carol):
        as_user(client, user)
        for method, url in owner_only:
            response = getattr(client, method)(url, {"role": "owner", "who": "dave"})
            assert response.status_code == 403, (user.username, url)
    assert role_of(team, carol) == Role.VIEWER
    assert not Invite.objects.exists()


def test_members_see_the_members_and_their_roles_but_only_owners_get_controls(
    client, team, alice, bob, carol
):
    html = as_user(client, carol).get(reverse("team_detail", args=[team.pk])).content.decode()
    for name in ("alice", "bob", "carol"):
        assert f'data-member="{name}"' in html
    assert 'name="role"' not in html
    assert "Invite link" not in html
    assert "Leave team" in html

    html = as_user(client, alice).get(reverse("team_detail", args=[team.pk])).content.decode()
    assert 'name="role"' in html
    assert "Invite link" in html
    assert reverse("team_member_remove", args=[team.pk, bob.pk]) in html


# ---- Roles, removal, leaving, the last owner ----------------------------------------------


def test_an_owner_changes_a_role(client, team, alice, carol, team_flow):
    as_user(client, alice)
    response = client.post(
        reverse("team_member_role", args=[team.pk, carol.pk]), {"role": "editor"}
    )
    assert response.status_code == 302
    assert role_of(team, carol) == Role.EDITOR


def test_an_owner_removes_a_member_who_then_loses_the_teams_flows(
    client, team, alice, bob, team_flow
):
    as_user(client, alice)
    client.post(reverse("team_member_remove", args=[team.pk, bob.pk]))
    assert role_of(team, bob) is None
    as_user(client, bob)
    assert client.get(reverse("flow_editor", args=[team_flow.pk])).status_code == 404
    assert client.get(reverse("team_detail", args=[team.pk])).status_code == 404


def test_any_member_can_leave(client, team, carol):
    as_user(client, carol)
    response = client.post(reverse("team_leave", args=[team.pk]))
    assert response.status_code == 302
    assert response.url == reverse("team_list")
    assert role_of(team, carol) is None


def test_the_last_owner_cannot_leave_be_demoted_or_removed(client, team, alice):
    as_user(client, alice)
    for url, data in [
        (reverse("team_leave", args=[team.pk]), {}),
        (reverse("team_member_role", args=[team.pk, alice.pk]), {"role": "editor"}),
        (reverse("team_member_remove", args=[team.pk, alice.pk]), {}),
    ]:
        response = follow_post(client, url, data)
        assert response.status_code == 200
        assert any("last owner of Research" in m for m in messages_of(response)), url
        assert role_of(team, alice) == Role.OWNER


def test_with_a_second_owner_the_first_may_leave(client, team, alice, bob):
    as_user(client, alice)
    client.post(reverse("team_member_role", args=[team.pk, bob.pk]), {"role": "owner"})
    client.post(reverse("team_leave", args=[team.pk]))
    assert role_of(team, alice) is None
    assert role_of(team, bob) == Role.OWNER
    # And now bob is the last one.
    as_user(client, bob)
    follow_post(client, reverse("team_member_role", args=[team.pk, bob.pk]), {"role": "viewer"})
    assert role_of(team, bob) == Role.OWNER


def test_an_owner_renames_and_deletes_the_team_with_its_flows(client, team, alice, team_flow):
    as_user(client, alice)
    client.post(reverse("team_rename", args=[team.pk]), {"name": "Lab"})
    team.refresh_from_db()
    assert team.name == "Lab"
    page = client.get(reverse("team_delete", args=[team.pk])).content.decode()
    assert "1 flow" in page
    assert client.post(reverse("team_delete", args=[team.pk])).status_code == 302
    assert not Team.objects.filter(pk=team.pk).exists()
    assert not Flow.objects.filter(pk=team_flow.pk).exists()


# ---- Invitations for a person ---------------------------------------------------------------


def test_an_invitation_by_username_waits_on_the_invitees_team_list(client, team, alice, dave):
    as_user(client, alice)
    response = client.post(
        reverse("team_invite", args=[team.pk]), {"who": "dave", "role": "viewer"}
    )
    assert response.status_code == 302
    assert role_of(team, dave) is None  # not a member until they accept

    html = as_user(client, dave).get(reverse("team_list")).content.decode()
    assert "Invitations" in html
    assert "Research" in html
    invite = Invite.objects.get(user=dave)
    response = client.post(reverse("invitation_accept", args=[invite.pk]))
    assert response.url == reverse("team_detail", args=[team.pk])
    assert role_of(team, dave) == Role.VIEWER
    assert "Invitations" not in client.get(reverse("team_list")).content.decode()


def test_an_invitation_by_email_finds_the_account(client, team, alice, dave):
    as_user(client, alice)
    client.post(
        reverse("team_invite", args=[team.pk]), {"who": "DAVE@example.com", "role": "editor"}
    )
    invite = Invite.objects.get(user=dave)
    assert invite.role == Role.EDITOR
    assert invite.email == "DAVE@example.com"


def test_declining_an_invitation_leaves_the_team_alone(client, team, alice, dave):
    as_user(client, alice)
    client.post(reverse("team_invite", args=[team.pk]), {"who": "dave", "role": "editor"})
    invite = Invite.objects.get(user=dave)
    as_user(client, dave)
    client.post(reverse("invitation_decline", args=[invite.pk]))
    assert role_of(team, dave) is None
    assert client.post(reverse("invitation_accept", args=[invite.pk])).status_code == 404


def test_inviting_a_member_by_their_username_says_they_are_in(client, team, alice):
    as_user(client, alice)
    response = client.post(reverse("team_invite", args=[team.pk]), {"who": "bob", "role": "owner"})
    assert response.status_code == 400
    assert "bob is already a member of Research" in response.content.decode()
    assert not Invite.objects.exists()


def test_nobody_else_can_accept_an_invitation(client, team, alice, dave, charlie):
    as_user(client, alice)
    client.post(reverse("team_invite", args=[team.pk]), {"who": "dave", "role": "owner"})
    invite = Invite.objects.get(user=dave)
    as_user(client, charlie)
    assert client.post(reverse("invitation_accept", args=[invite.pk])).status_code == 404
    assert role_of(team, charlie) is None


def test_an_owner_withdraws_an_invitation(client, team, alice, dave):
    as_user(client, alice)
    client.post(reverse("team_invite", args=[team.pk]), {"who": "dave", "role": "editor"})
    invite = Invite.objects.get(user=dave)
    client.post(reverse("team_invite_revoke", args=[team.pk, invite.pk]))
    as_user(client, dave)
    assert "Research" not in client.get(reverse("team_list")).content.decode()
    assert client.post(reverse("invitation_accept", args=[invite.pk])).status_code == 404


# ---- Invite links -----------------------------------------------------------------------------


def make_link(client, team, alice, role: str = "editor", days: int = 7) -> str:
    """The invite link's path, as the owner's page shows it (once)."""
    as_user(client, alice)
    response = client.post(
        reverse("team_invite_link", args=[team.pk]), {"role": role, "days": days}
    )
    assert response.status_code == 200
    match = re.search(r'value="http://testserver(/invites/[^/"]+/)"', response.content.decode())
    assert match, "the new link is shown"
    return match.group(1)


def test_an_invite_link_is_shown_once_and_joins_with_its_role(client, team, alice, dave):
    path = make_link(client, team, alice, role="viewer")
    raw = path.split("/")[2]
    assert not Invite.objects.filter(digest=raw).exists()  # only the hash is stored
    page = client.get(reverse("team_detail", args=[team.pk])).content.decode()
    assert raw not in page

    as_user(client, dave)
    page = client.get(path)
    assert page.status_code == 200
    assert "Join “Research”?" in page.content.decode()
    assert role_of(team, dave) is None  # a GET never joins
    response = client.post(path)
    assert response.url == reverse("team_detail", args=[team.pk])
    assert role_of(team, dave) == Role.VIEWER


def test_a_used_invite_link_says_so(client, team, alice, dave, charlie):
    path = make_link(client, team, alice)
    as_user(client, dave).post(path)
    client = as_user(Client(), charlie)
    response = client.get(path)
    assert response.status_code == 410
    assert "already been used" in response.content.decode()
    assert "Research" not in response.content.decode()
    assert client.post(path).status_code == 410
    assert role_of(team, charlie) is None


def test_an_expired_invite_link_says_so(client, team, alice, dave):
    path = make_link(client, team, alice, days=1)
    Invite.objects.update(expires=timezone.now() - dt.timedelta(seconds=1))
    response = as_user(client, dave).post(path)
    assert response.status_code == 410
    assert "expired" in response.content.decode()
    assert role_of(team, dave) is None


def test_a_withdrawn_invite_link_says_so(client, team, alice, dave):
    path = make_link(client, team, alice)
    client.post(reverse("team_invite_revoke", args=[team.pk, Invite.objects.get().pk]))
    response = as_user(client, dave).get(path)
    assert response.status_code == 410
    assert "withdrawn" in response.content.decode()


def test_a_made_up_invite_token_is_404(client, dave):
    as_user(client, dave)
    assert client.get("/invites/not-a-real-token/").status_code == 404
    assert client.post("/invites/not-a-real-token/").status_code == 404


def test_an_invite_link_needs_a_login_first(client, team, alice):
    path = make_link(client, team, alice)
    client.logout()
    response = client.get(path)
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_a_member_following_an_invite_link_keeps_their_role_and_the_link(
    client, team, alice, carol, dave
):
    path = make_link(client, team, alice, role="owner")
    as_user(client, carol)
    assert "already in" in client.get(path).content.decode()
    client.post(path)
    assert role_of(team, carol) == Role.VIEWER
    as_user(client, dave).post(path)
    assert role_of(team, dave) == Role.OWNER


def test_an_invite_link_lasts_one_of_the_offered_times(client, team, alice):
    as_user(client, alice)
    response = client.post(
        reverse("team_invite_link", args=[team.pk]), {"role": "editor", "days": 365}
    )
    assert response.status_code == 400
    assert not Invite.objects.exists()
    make_link(client, team, alice, days=30)
    expires = Invite.objects.get().expires
    assert dt.timedelta(days=29) < expires - timezone.now() <= dt.timedelta(days=30)


# ---- The flow list by space ---------------------------------------------------------------


def test_the_flow_list_groups_flows_by_space_with_my_role(
    client, team, alice, bob, dave, team_flow
):
    mine = services.create(dave, "Dave's own", services.starter_graph("Dave's own"))
    FlowShare.objects.create(
        flow=mine,
        user=bob,
        invitee="bob",
        role="viewer",
        created_by=dave,
        accepted_at=timezone.now(),
    )

    response = as_user(client, bob).get(reverse("flow_list"))
    spaces = {space["title"]: space for space in response.context["spaces"]}
    assert list(spaces) == ["Personal", "Research", "Shared with me"]
    assert [f.pk for f in spaces["Research"]["flows"]] == [team_flow.pk]
    assert spaces["Research"]["role"] == Role.EDITOR
    assert [(f.name, f.role) for f in spaces["Shared with me"]["flows"]] == [
        ("Dave's own", "viewer")
    ]
    assert all(f.role == "owner" for f in spaces["Personal"]["flows"])
    html = response.content.decode()
    assert "Shared with me" in html
    assert f'data-space="team-{team.pk}"' in html
    # An editor may add flows to the team, but not delete its flows.
    assert f"{reverse('flow_new')}?team={team.pk}" in html
    assert reverse("flow_delete", args=[team_flow.pk]) not in html


def test_a_team_viewer_gets_no_new_flow_button_for_the_team(client, team, carol, team_flow):
    html = as_user(client, carol).get(reverse("flow_list")).content.decode()
    assert f"?team={team.pk}" not in html


def test_searching_hides_spaces_without_matches(client, team, alice, team_flow):
    response = as_user(client, alice).get(reverse("flow_list"), {"q": "team flow"})
    assert [space["title"] for space in response.context["spaces"]] == ["Research"]


def test_new_flow_in_a_team_needs_its_editor_role(client, team, bob, carol, dave):
    url = f"{reverse('flow_new')}?team={team.pk}"
    response = as_user(client, bob).post(url)
    flow = Flow.objects.get(team=team)
    assert response.url == reverse("flow_editor", args=[flow.pk])
    assert flow.owner == bob
    assert as_user(client, carol).post(url).status_code == 403
    assert as_user(client, dave).post(url).status_code == 404
    assert as_user(client, dave).post(f"{reverse('flow_new')}?team=x").status_code == 404
    assert Flow.objects.filter(team=team).count() == 1


def test_deleting_a_flow_needs_its_owner(client, team, alice, bob, carol, team_flow):
    url = reverse("flow_delete", args=[team_flow.pk])
    assert as_user(client, bob).get(url).status_code == 403
    assert as_user(client, bob).post(url).status_code == 403
    assert as_user(client, carol).post(url).status_code == 403
    assert Flow.objects.filter(pk=team_flow.pk).exists()
    assert as_user(client, alice).post(url).status_code == 302
    assert not Flow.objects.filter(pk=team_flow.pk).exists()


# ---- The API ----------------------------------------------------------------------------------


def test_api_lists_and_creates_teams(api, team):
    assert [(t["name"], t["role"]) for t in api("carol").get("/api/teams").json()["items"]] == [
        ("Research", "viewer")
    ]
    assert api("dave").get("/api/teams").json() == {"items": [], "count": 0, "next": None}
    created = api("dave").post("/api/teams", {"name": "Ops"})
    assert created.status_code == 201
    assert created.json()["role"] == "owner"
    assert api("dave").post("/api/teams", {"name": " "}).status_code == 422


def test_api_team_detail_lists_members_and_is_404_for_strangers(api, team):
    detail = api("bob").get(f"/api/teams/{team.pk}").json()
    assert detail["role"] == "editor"
    assert [(m["username"], m["role"]) for m in detail["members"]] == [
        ("alice", "owner"),
        ("bob", "editor"),
        ("carol", "viewer"),
    ]
    missing = api("dave").get("/api/teams/999")
    stranger = api("dave").get(f"/api/teams/{team.pk}")
    assert stranger.status_code == missing.status_code == 404
    assert stranger.json() == missing.json()
    assert api("dave").get(f"/api/teams/{team.pk}/members").status_code == 404


def test_api_owner_only_actions_are_403_for_members_and_404_for_strangers(api, team, carol):
    calls = [
        ("patch", f"/api/teams/{team.pk}", {"name": "X"}),
        ("delete", f"/api/teams/{team.pk}", None),
        ("post", f"/api/teams/{team.pk}/invites", {"user": "dave"}),
        ("patch", f"/api/teams/{team.pk}/members/{carol.pk}", {"role": "owner"}),
        ("delete", f"/api/teams/{team.pk}/members/{carol.pk}", None),
        ("get", f"/api/teams/{team.pk}/invites", None),
        ("post", f"/api/teams/{team.pk}/invites", {"role": "owner"}),
        ("delete", f"/api/teams/{team.pk}/invites/1", None),
    ]
    for name, status in (("bob", 403), ("dave", 404)):
        for method, path, data in calls:
            caller = getattr(api(name), method)
            response = caller(path, data) if data is not None else caller(path)
            assert response.status_code == status, (name, method, path)
    assert Team.objects.get(pk=team.pk).name == "Research"
    assert role_of(team, carol) == Role.VIEWER
    assert not Invite.objects.exists()


def test_api_members_join_by_invitation_and_roles_change(api, team, dave):
    invited = api("alice").post(f"/api/teams/{team.pk}/invites", {"user": "dave", "role": "viewer"})
    assert invited.status_code == 201
    assert invited.json()["user"] == "dave"
    assert invited.json()["token"] is None  # a link's, and this is no link
    assert role_of(team, dave) is None

    mine = api("dave").get("/api/teams/invitations").json()["items"]
    assert [(i["team_name"], i["role"]) for i in mine] == [("Research", "viewer")]
    joined = api("dave").post(f"/api/teams/invitations/{mine[0]['id']}/accept")
    assert joined.json() == {"team": team.pk, "team_name": "Research", "role": "viewer"}

    changed = api("alice").patch(f"/api/teams/{team.pk}/members/{dave.pk}", {"role": "editor"})
    assert changed.json()["role"] == "editor"
    assert api("alice").delete(f"/api/teams/{team.pk}/members/{dave.pk}").status_code == 204
    assert role_of(team, dave) is None


def test_api_invitations_are_made_under_invites_not_members(api, team):
    # POST .../members answered with an invitation, not a member: a client following
    # /members/{id} with the answer's id reached nobody. It is gone, as the schema says.
    response = api("alice").post(f"/api/teams/{team.pk}/members", {"user": "dave"})
    assert response.status_code == 405
    assert response["Content-Type"] == "application/problem+json"
    assert not Invite.objects.exists()
    paths = api("alice").get("/api/openapi.json").json()["paths"]
    assert set(paths["/api/teams/{team_id}/members"]) == {"get"}
    assert "post" in paths["/api/teams/{team_id}/invites"]


def test_api_declined_invitations_are_gone(api, team, dave):
    api("alice").post(f"/api/teams/{team.pk}/invites", {"user": "dave@example.com"})
    invite = api("dave").get("/api/teams/invitations").json()["items"][0]
    assert api("dave").post(f"/api/teams/invitations/{invite['id']}/decline").status_code == 204
    assert api("dave").get("/api/teams/invitations").json()["items"] == []
    assert api("dave").post(f"/api/teams/invitations/{invite['id']}/accept").status_code == 404


def test_api_invite_links_join_once(api, team, dave, charlie):
    made = api("alice").post(
        f"/api/teams/{team.pk}/invites", {"role": "editor", "expires_in_days": 1}
    )
    assert made.status_code == 201
    body = made.json()
    assert body["url"] == f"/invites/{body['token']}/"
    listed = api("alice").get(f"/api/teams/{team.pk}/invites").json()["items"]
    assert [i["id"] for i in listed] == [body["id"]]
    assert all("token" not in i for i in listed)

    joined = api("dave").post("/api/teams/join", {"token": body["token"]})
    assert joined.json()["role"] == "editor"
    assert role_of(team, dave) == Role.EDITOR
    assert api("dave").post("/api/teams/join", {"token": "made-up"}).status_code == 404


def test_api_refuses_used_expired_and_revoked_links(api, team, client, charlie):
    used = api("alice").post(f"/api/teams/{team.pk}/invites", {}).json()
    api("dave").post("/api/teams/join", {"token": used["token"]})
    expired = api("alice").post(f"/api/teams/{team.pk}/invites", {}).json()
    Invite.objects.filter(pk=expired["id"]).update(expires=timezone.now())
    revoked = api("alice").post(f"/api/teams/{team.pk}/invites", {}).json()
    assert api("alice").delete(f"/api/teams/{team.pk}/invites/{revoked['id']}").status_code == 204

    headers = {"Authorization": f"Bearer {ApiToken.issue(charlie, 't')[1]}"}
    for link, phrase in ((used, "used"), (expired, "expired"), (revoked, "withdrawn")):
        response = client.post(
            "/api/teams/join", {"token": link["token"]}, content_type=JSON, headers=headers
        )
        assert response.status_code == 410
        assert phrase in response.json()["detail"]
    assert role_of(team, charlie) is None


def test_api_the_last_owner_gets_409(api, team, alice, bob):
    for response in (
        api("alice").post(f"/api/teams/{team.pk}/leave"),
        api("alice").patch(f"/api/teams/{team.pk}/members/{alice.pk}", {"role": "viewer"}),
        api("alice").delete(f"/api/teams/{team.pk}/members/{alice.pk}"),
    ):
        assert response.status_code == 409
        assert "last owner" in response.json()["detail"]
    assert role_of(team, alice) == Role.OWNER
    # Anyone may leave, also by removing themselves.
    assert api("bob").delete(f"/api/teams/{team.pk}/members/{bob.pk}").status_code == 204
    assert api("carol").post(f"/api/teams/{team.pk}/leave").status_code == 204
    assert list(Membership.objects.filter(team=team).values_list("user__username", flat=True)) == [
        "alice"
    ]


def test_api_rename_and_delete(api, team, team_flow):
    assert api("alice").patch(f"/api/teams/{team.pk}", {"name": "Lab"}).json()["name"] == "Lab"
    assert api("alice").delete(f"/api/teams/{team.pk}").status_code == 204
    assert not Flow.objects.filter(pk=team_flow.pk).exists()


def test_api_creates_a_flow_in_a_team_for_its_editors(api, team):
    graph = services.starter_graph("T")
    made = api("bob").post("/api/flows", {"name": "T", "graph": graph, "team": team.pk})
    assert made.status_code == 201
    assert Flow.objects.get(pk=made.json()["id"]).team == team
    assert (
        api("carol").post("/api/flows", {"name": "T", "graph": graph, "team": team.pk}).status_code
        == 403
    )
    assert (
        api("dave").post("/api/flows", {"name": "T", "graph": graph, "team": team.pk}).status_code
        == 404
    )
