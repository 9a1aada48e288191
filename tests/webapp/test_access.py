"""Roles on flows: personal space, team roles, shares with people and with teams."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.utils import timezone

from webapp.flows import access, services
from webapp.flows.models import FlowShare
from webapp.teams.models import Membership, Role, Team


@pytest.fixture
def personal_flow(alice):
    return services.create(alice, "Mine", services.starter_graph("Mine"))


def roles(flow, *users):
    return [access.role_on_flow(user, flow) for user in users]


def test_a_personal_flow_is_its_owners_alone(personal_flow, alice, bob, charlie):
    assert roles(personal_flow, alice, bob, charlie) == ["owner", None, None]
    assert personal_flow not in access.visible_flows(bob)


def test_team_members_get_their_team_role(team_flow, alice, bob, carol, dave):
    assert roles(team_flow, alice, bob, carol, dave) == ["owner", "editor", "viewer", None]
    assert team_flow in access.visible_flows(carol)
    assert team_flow not in access.editable_flows(carol)
    assert team_flow in access.editable_flows(bob)
    assert team_flow not in access.owned_flows(bob)
    assert team_flow in access.owned_flows(alice)


def test_the_maker_of_a_team_flow_has_only_their_team_role(team, bob, alice):
    flow = services.create(bob, "Bob's", services.starter_graph("Bob's"), team=team)
    assert roles(flow, bob, alice) == ["editor", "owner"]


def accepted_share(flow, user, role: str, by) -> FlowShare:
    return FlowShare.objects.create(
        flow=flow,
        user=user,
        invitee=user.username,
        role=role,
        created_by=by,
        accepted_at=timezone.now(),
    )


def test_a_share_with_a_person_gives_that_role(personal_flow, alice, dave):
    accepted_share(personal_flow, dave, "viewer", alice)
    assert roles(personal_flow, dave) == ["viewer"]
    assert personal_flow in access.visible_flows(dave)
    assert personal_flow not in access.editable_flows(dave)


def test_a_share_waiting_for_its_recipient_gives_nothing(personal_flow, team_flow, alice, carol):
    FlowShare.objects.create(flow=personal_flow, user=carol, invitee="carol", role="editor")
    FlowShare.objects.create(flow=team_flow, user=carol, invitee="carol", role="editor")
    assert roles(personal_flow, carol) == [None]
    assert roles(team_flow, carol) == ["viewer"]  # her team role only
    assert personal_flow not in access.visible_flows(carol)
    assert team_flow not in access.editable_flows(carol)


def test_a_share_with_a_team_reaches_every_member(personal_flow, alice, dave, charlie):
    other = Team.objects.create(name="Other")
    Membership.objects.create(team=other, user=dave, role=Role.VIEWER)
    FlowShare.objects.create(flow=personal_flow, team=other, role="editor", created_by=alice)
    assert roles(personal_flow, dave, charlie) == ["editor", None]
    assert personal_flow in access.editable_flows(dave)


def test_the_highest_role_wins(team_flow, carol, alice):
    accepted_share(team_flow, carol, "editor", alice)
    assert roles(team_flow, carol) == ["editor"]
    assert access.visible_flows(carol).filter(pk=team_flow.pk).count() == 1


def test_a_stranger_gets_404_and_a_viewer_403_for_editing(team_flow, carol, dave):
    with pytest.raises(Http404):
        access.flow_for_viewer(dave, team_flow.pk)
    with pytest.raises(Http404):
        access.flow_for_editor(dave, team_flow.pk)
    with pytest.raises(PermissionDenied):
        access.flow_for_editor(carol, team_flow.pk)
    assert access.flow_for_viewer(carol, team_flow.pk) == team_flow


def test_leaving_the_team_removes_access(team_flow, team, bob):
    Membership.objects.filter(team=team, user=bob).delete()
    assert access.role_on_flow(bob, team_flow) is None


def test_a_personal_flow_and_its_runs_reach_their_owner_in_one_plain_read(
    personal_flow, alice, bob
):
    # The common case skips the query over teams and shares, which costs the server
    # several times more to build (bench/load.py: every run POST and every run socket).
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from webapp.runs.access import can_view_run
    from webapp.runs.models import Run

    run = Run.objects.create(
        flow=personal_flow, flow_version=personal_flow.current(), started_by=alice
    )
    for check in (
        lambda: access.flow_for_editor(alice, personal_flow.pk),
        lambda: access.flow_for_owner(alice, personal_flow.pk),
        lambda: can_view_run(alice, run.pk),
    ):
        with CaptureQueriesContext(connection) as queries:
            assert check()
        assert len(queries) == 1
        assert "flowshare" not in queries[0]["sql"].lower()
    # Anyone else still goes through the full rules: bob is a stranger to it.
    assert not can_view_run(bob, run.pk)
    with pytest.raises(Http404):
        access.flow_for_viewer(bob, personal_flow.pk)
