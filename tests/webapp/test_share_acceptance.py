"""A flow shared with a person reaches them only once they accept it.

Dave shares his flow with alice: until she accepts, it is not among her flows, its pages
and API are a 404 to her, and it waits in a section of her flow list (and in
``/api/shares/pending``) with Accept and Decline. Declined, it is gone. Shares with a
team need no acceptance (only members make them), and shares made before acceptance
existed stay accepted.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse

from webapp.flows import access, services
from webapp.flows.models import Flow, FlowShare
from webapp.flows.sharing import service as sharing
from webapp.teams.models import Membership, Role, Team


@pytest.fixture
def daves_flow(dave) -> Flow:
    return services.create(dave, "Dave's flow", services.starter_graph("Dave's flow"))


def shared_by_dave(client, daves_flow: Flow, dave, who: str = "alice", role: str = "editor"):
    client.force_login(dave)
    url = reverse("flow_share_create", args=[daves_flow.pk])
    client.post(url, {"who": who, "role": role}, headers={"HX-Request": "true"})
    return FlowShare.objects.get(flow=daves_flow, invitee=who)


def flow_ids(response) -> list[int]:
    return [flow.pk for flow in response.context["flows"]]


def test_a_share_waits_on_the_flow_list_and_gives_nothing_until_accepted(
    client, daves_flow, dave, alice
):
    share = shared_by_dave(client, daves_flow, dave)
    client.force_login(alice)

    listed = client.get(reverse("flow_list"))
    assert daves_flow.pk not in flow_ids(listed)
    assert all(daves_flow.pk not in [f.pk for f in s["flows"]] for s in listed.context["spaces"])
    assert [s.pk for s in listed.context["pending_shares"]] == [share.pk]
    html = listed.content.decode()
    assert 'data-testid="pending-shares"' in html
    assert "Dave&#x27;s flow" in html and "from dave" in html
    assert reverse("share_accept", args=[share.pk]) in html
    assert reverse("share_decline", args=[share.pk]) in html
    assert reverse("flow_editor", args=[daves_flow.pk]) not in html

    assert client.get(reverse("flow_editor", args=[daves_flow.pk])).status_code == 404
    assert client.get(reverse("flow_versions", args=[daves_flow.pk])).status_code == 404
    assert access.role_on_flow(alice, daves_flow) is None

    accepted = client.post(reverse("share_accept", args=[share.pk]))
    assert accepted.url == reverse("flow_editor", args=[daves_flow.pk])
    assert client.get(reverse("flow_editor", args=[daves_flow.pk])).status_code == 200
    listed = client.get(reverse("flow_list"))
    assert daves_flow.pk in flow_ids(listed)
    assert not listed.context["pending_shares"]
    assert access.role_on_flow(alice, daves_flow) == "editor"


def test_a_declined_share_is_gone(client, daves_flow, dave, alice):
    share = shared_by_dave(client, daves_flow, dave)
    client.force_login(alice)
    assert client.post(reverse("share_decline", args=[share.pk])).url == reverse("flow_list")

    listed = client.get(reverse("flow_list"))
    assert not listed.context["pending_shares"]
    assert daves_flow.pk not in flow_ids(listed)
    assert client.get(reverse("flow_editor", args=[daves_flow.pk])).status_code == 404
    assert not FlowShare.objects.filter(flow=daves_flow).exists()
    assert client.post(reverse("share_accept", args=[share.pk])).status_code == 404


def test_only_the_recipient_answers_a_share(client, daves_flow, dave, alice, bob):
    share = shared_by_dave(client, daves_flow, dave)
    for someone in (bob, dave):
        client.force_login(someone)
        assert client.post(reverse("share_accept", args=[share.pk])).status_code == 404
        assert client.post(reverse("share_decline", args=[share.pk])).status_code == 404
        assert not client.get(reverse("flow_list")).context["pending_shares"]
    assert FlowShare.objects.get(pk=share.pk).accepted_at is None


def test_api_pending_shares_list_accept_and_decline(api, client, daves_flow, dave, alice, carol):
    made = (
        api("dave")
        .post(f"/api/flows/{daves_flow.pk}/shares", {"user": "alice", "role": "viewer"})
        .json()
    )
    other = services.create(dave, "Another", services.starter_graph("Another"))
    second = api("dave").post(f"/api/flows/{other.pk}/shares", {"user": "alice"}).json()

    pending = api("alice").get("/api/shares/pending").json()["items"]
    assert [(p["id"], p["flow"], p["flow_name"], p["role"], p["shared_by"]) for p in pending] == [
        (second["id"], other.pk, "Another", "viewer", "dave"),
        (made["id"], daves_flow.pk, "Dave's flow", "viewer", "dave"),
    ]
    assert api("carol").get("/api/shares/pending").json() == {"items": [], "count": 0, "next": None}
    assert api("alice").get(f"/api/flows/{daves_flow.pk}").status_code == 404
    assert api("carol").post(f"/api/shares/{made['id']}/accept").status_code == 404

    accepted = api("alice").post(f"/api/shares/{made['id']}/accept")
    assert accepted.json() == {"flow": daves_flow.pk, "flow_name": "Dave's flow", "role": "viewer"}
    assert api("alice").get(f"/api/flows/{daves_flow.pk}").status_code == 200
    assert api("alice").post(f"/api/shares/{made['id']}/accept").status_code == 404

    assert api("alice").post(f"/api/shares/{second['id']}/decline").status_code == 204
    assert api("alice").get("/api/shares/pending").json()["items"] == []
    assert api("alice").get(f"/api/flows/{other.pk}").status_code == 404
    assert api("alice").post(f"/api/shares/{second['id']}/decline").status_code == 404


def test_the_owner_sees_a_share_as_not_accepted_until_it_is(client, daves_flow, dave, alice):
    share = shared_by_dave(client, daves_flow, dave, who="alice@example.com")
    panel = client.get(reverse("flow_share", args=[daves_flow.pk])).content.decode()
    assert "alice@example.com</strong>" in panel
    assert "(not accepted)" in panel
    sharing.accept_share(alice, share.pk)
    panel = client.get(reverse("flow_share", args=[daves_flow.pk])).content.decode()
    assert "<strong>alice</strong>" in panel
    assert "(not accepted)" not in panel


def test_a_share_with_a_team_reaches_its_members_at_once(client, daves_flow, dave, carol):
    team = Team.objects.create(name="Daves")
    Membership.objects.create(team=team, user=dave, role=Role.OWNER)
    Membership.objects.create(team=team, user=carol, role=Role.VIEWER)
    client.force_login(dave)
    client.post(
        reverse("flow_share_create", args=[daves_flow.pk]),
        {"team": team.pk, "role": "viewer"},
        headers={"HX-Request": "true"},
    )
    assert access.role_on_flow(carol, daves_flow) == "viewer"
    assert not sharing.pending_shares(carol).exists()
    assert FlowShare.objects.get(team=team).accepted_at is not None


# ---- Shares made before acceptance existed -------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_shares_made_before_acceptance_existed_stay_accepted():
    executor = MigrationExecutor(connection)
    before, after = [("flows", "0003_presence")], [("flows", "0004_pending_shares")]
    executor.migrate(before)
    try:
        old = executor.loader.project_state(before).apps
        User = old.get_model("auth", "User")
        owner = User.objects.create(username="olga")
        friend = User.objects.create(username="fred")
        team = old.get_model("teams", "Team").objects.create(name="Old team")
        flow = old.get_model("flows", "Flow").objects.create(owner=owner, name="Old flow")
        Share = old.get_model("flows", "FlowShare")
        Share.objects.create(flow=flow, user=friend, role="editor", created_by=owner)
        Share.objects.create(flow=flow, team=team, role="viewer", created_by=owner)

        executor = MigrationExecutor(connection)
        executor.migrate(after)
        new = executor.loader.project_state(after).apps.get_model("flows", "FlowShare")
        rows = sorted(
            new.objects.values_list("invitee", "user__username", "team__name", "role"),
            key=str,
        )
        assert rows == [("", None, "Old team", "viewer"), ("fred", "fred", None, "editor")]
        assert not new.objects.filter(accepted_at__isnull=True).exists()
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
