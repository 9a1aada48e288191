"""Budgets on the celery driver: the reservations live in PostgreSQL, so a fan-out whose
branches run on two workers at once still stops before the call that would exceed the
run's budget (``run_paused``), the fake server counting the calls made. The paused run
parks ``waiting``, holding no task, lease or reservation; raising its budget through the
API resumes it on the workers (``resumed: true``): the paused call is made, none of the
three that finished is made again."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from tests.scaleout.conftest import finished, sound_log
from tests.support.wait import wait_for
from tests.webapp.test_budgets import BRANCHES, BUDGET, fan_out_graph, topics
from webapp.accounts.models import ApiToken
from webapp.execution import coordinator
from webapp.execution.distributed import CeleryDriver
from webapp.flows import services as flow_services
from webapp.runs.models import BudgetReservation, NodeTask, Run, RunEvent

pytestmark = pytest.mark.django_db(transaction=True)


def start(budget: str = BUDGET) -> Run:
    owner = get_user_model().objects.get_or_create(username="alice")[0]
    flow = flow_services.create(owner, "Fan-out", fan_out_graph())
    run = Run.objects.create(
        flow=flow,
        flow_version=flow.current(),
        started_by=owner,
        inputs={"q": "tea"},
        budget_usd=Decimal(budget),
    )
    assert CeleryDriver.send_begin(run.pk) is None
    return run


def raise_budget(run: Run, budget: float):
    alice = get_user_model().objects.get(username="alice")
    headers = {"Authorization": f"Bearer {ApiToken.issue(alice, 'tests')[1]}"}
    body = json.dumps({"budget_usd": budget})
    return Client().post(f"/api/runs/{run.pk}/budget", body, "application/json", headers=headers)


def paused_run(cluster) -> tuple[Run, dict]:
    run = start()

    def paused() -> dict | None:
        finished = RunEvent.objects.filter(
            run=run, type="node_finished", payload__node__startswith="ask"
        )
        if finished.count() < BRANCHES - 1:
            return None
        return (
            RunEvent.objects.filter(run=run, type="run_paused")
            .values_list("payload", flat=True)
            .first()
        )

    event = wait_for(paused, 120, message="three calls, then run_paused")
    run = wait_for(
        lambda: Run.objects.filter(pk=run.pk, status=Run.Status.WAITING).first(),
        60,
        message="the paused run to park",
    )
    return run, event


def test_a_fan_out_on_two_workers_pauses_before_the_call_past_its_budget(cluster):
    cluster.workers(2, pool="threads", size=4)
    run, event = paused_run(cluster)
    assert len(cluster.model_server.message_requests) == BRANCHES - 1
    assert event["needed_usd"] == pytest.approx(0.001512)
    assert event["spent_usd"] == pytest.approx(3 * 0.000084)
    assert run.spent_usd == Decimal("0.000252")
    assert run.state["waiting"][event["node"]]["kind"] == "budget"
    # Parked: no task, lease or reservation held while it waits.
    assert not BudgetReservation.objects.filter(run=run).exists()
    tasks = NodeTask.objects.filter(run=run)
    assert not tasks.exclude(status=NodeTask.Status.DONE).exists()
    assert not tasks.filter(lease_until__isnull=False).exists()

    response = raise_budget(run, 1)
    assert response.status_code == 200, response.content
    assert response.json()["resumed"] is True
    run = finished(run)
    assert run.status == Run.Status.SUCCEEDED, run.error
    calls = cluster.model_server.message_requests
    # One call more, the paused one: the three that finished were not made again.
    assert len(calls) == BRANCHES
    assert topics(calls) == sorted(f"Topic {i}: tea" for i in range(BRANCHES))
    events = sound_log(run)
    [resumed] = [e for e in events if e["type"] == "run_resumed"]
    assert resumed["by"]["user"] == "alice" and resumed["nodes"] == [event["node"]]
    assert run.spent_usd == Decimal("0.000336") and run.budget_usd == 1
    assert len(run.outputs["answers"]) == BRANCHES
    # The paused node ran again in its own task row, one epoch on.
    task = NodeTask.objects.get(run=run, node=event["node"], item=NodeTask.NODE)
    assert task.epoch == 2 and task.status == NodeTask.Status.DONE
    again = raise_budget(run, 2)
    assert again.status_code == 409 and again.json()["code"] == "run_finished"
    assert len(cluster.model_server.message_requests) == BRANCHES


def test_a_paused_run_can_be_cancelled(cluster):
    cluster.workers(1)
    run, _ = paused_run(cluster)
    assert coordinator.cancel(run.pk)
    run = finished(run)
    assert run.status == Run.Status.CANCELLED
    assert raise_budget(run, 1).status_code == 409
    assert len(cluster.model_server.message_requests) == BRANCHES - 1
    sound_log(run)
