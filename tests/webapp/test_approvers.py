"""Who may answer an approval: the flow's editors by default; only those its ``approvers``
name when it names any (usernames, ``team:<id>``), among those who can see the run.
Others who can see the run get 403, who cannot 404; ``pending_for`` lists for each user
exactly what they may answer.

Alice owns the flow (in her team), bob edits it, carol views it, dave is a stranger.
"""

from __future__ import annotations

import pytest

from graphs.nodes.approval import ApprovalConfig, ApprovalNode
from tests.webapp.test_approvals import answer_url, idle, refund_graph
from webapp import execution
from webapp.flows import services
from webapp.runs import approvals
from webapp.runs.models import Run, RunEvent
from webapp.teams.models import Membership, Role, Team

pytestmark = pytest.mark.django_db(transaction=True)

BODY = {"action": "approve", "values": {"note": "ok"}}


def park(alice, team, **ask) -> Run:
    flow = services.create(alice, "Refund", refund_graph(**ask), team=team)
    run = Run.objects.create(
        flow=flow, flow_version=flow.current(), started_by=alice, inputs={"q": "12 EUR"}
    )
    execution.start(run.pk)
    idle()
    run.refresh_from_db()
    assert run.status == Run.Status.WAITING, run.error
    return run


def pending_runs(user) -> list[int]:
    return [item["run"] for item in approvals.pending_for(user)]


def test_a_named_viewer_may_answer_and_the_editors_may_not(alice, bob, carol, dave, team, api):
    run = park(alice, team, approvers=["carol"])
    assert api("alice").post(answer_url(run), BODY).status_code == 403
    assert api("bob").post(answer_url(run), BODY).status_code == 403
    assert api("dave").post(answer_url(run), BODY).status_code == 404
    run.refresh_from_db()
    assert run.status == Run.Status.WAITING
    assert api("carol").post(answer_url(run), BODY).status_code == 202
    idle()
    run.refresh_from_db()
    assert run.outputs == {"answer": "approved by carol: ok"}


def test_pending_for_lists_a_wait_only_for_those_who_may_answer_it(
    alice, bob, carol, dave, team, api
):
    default = park(alice, team)
    named = park(alice, team, approvers=["carol"])
    assert pending_runs(alice) == [default.pk]
    assert pending_runs(bob) == [default.pk]
    assert pending_runs(carol) == [named.pk]
    assert pending_runs(dave) == []
    listed = api("carol").get("/api/approvals").json()["items"]
    assert [item["run"] for item in listed] == [named.pk]
    assert listed[0]["kind"] == "approval"
    assert set(listed[0]) == {
        *("run", "flow", "flow_name", "node", "kind", "message", "fields", "actions"),
        # An agent's tool call's (null here).
        *("tool", "input", "call"),
    }


def test_a_named_team_lets_its_members_answer(alice, bob, carol, team, api):
    reviewers = Team.objects.create(name="Reviewers")
    Membership.objects.create(team=reviewers, user=carol, role=Role.VIEWER)
    run = park(alice, team, approvers=[f"team:{reviewers.pk}"])
    assert pending_runs(carol) == [run.pk] and pending_runs(bob) == []
    assert api("bob").post(answer_url(run), BODY).status_code == 403
    assert api("carol").post(answer_url(run), BODY).status_code == 202
    idle()
    resumed = RunEvent.objects.get(run=run, type="node_resumed").payload
    assert resumed["by"]["user"] == "carol"


def test_a_named_stranger_still_cannot_see_the_run(alice, dave, team, api):
    run = park(alice, team, approvers=["dave"])
    assert api("dave").post(answer_url(run), BODY).status_code == 404
    assert pending_runs(dave) == []


def test_the_run_page_offers_the_form_to_the_approver_only(alice, bob, carol, team, client):
    run = park(alice, team, approvers=["carol"])
    client.force_login(carol)
    page = client.get(f"/runs/{run.pk}/approvals/").content.decode()
    assert 'name="f_note"' in page and 'value="approve"' in page
    client.force_login(bob)
    page = client.get(f"/runs/{run.pk}/approvals/").content.decode()
    assert 'name="f_note"' not in page and "Its approvers can answer it." in page
    refused = client.post(f"/runs/{run.pk}/approvals/ask/", {"action": "approve", "f_note": "x"})
    assert refused.status_code == 403


def test_an_approver_that_is_neither_a_username_nor_a_team_is_a_problem():
    config = ApprovalConfig.model_validate(
        {"approvers": ["carol", "team:7", "team:x", "no spaces", "<b>"]}
    )
    problems = [p.message for p in ApprovalNode().problems(config, None) if p.field == "approvers"]
    assert len(problems) == 3
    assert all("team:<id>" in message for message in problems)
    assert any("'team:x'" in message for message in problems)
