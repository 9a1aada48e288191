"""Runs on the celery driver do not wait for people yet (issue 16): an answer to an
approval is refused with a 409 that says so, and the run is left as it was (it was a 500:
the driver had no resume)."""

from __future__ import annotations

import json

from django.contrib.auth import get_user_model
from django.test import Client

from tests.webapp.test_api_contract import assert_problem
from webapp.accounts.models import ApiToken
from webapp.flows import services
from webapp.runs.models import Run


def test_an_answer_on_the_celery_driver_is_refused_and_changes_nothing(db):
    alice = get_user_model().objects.create_user("alice", "alice@example.com")
    flow = services.create(alice, "Flow", services.starter_graph("Flow"))
    run = Run.objects.create(
        flow=flow, flow_version=flow.current(), started_by=alice, status=Run.Status.WAITING,
        state={"waiting": {"ask": {"iteration": 1}}},
    )  # fmt: skip
    headers = {"Authorization": f"Bearer {ApiToken.issue(alice, 'tests')[1]}"}
    response = Client().post(
        f"/api/runs/{run.pk}/approvals/ask",
        json.dumps({"action": "approve", "values": {}}),
        "application/json",
        headers=headers,
    )
    problem = assert_problem(response, 409, "not_waiting")
    assert "celery driver" in problem["detail"]
    run.refresh_from_db()
    assert run.status == Run.Status.WAITING
