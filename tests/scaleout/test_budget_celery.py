"""Budgets on the celery driver: the reservations live in PostgreSQL, so a fan-out whose
branches run on two workers at once still stops before the call that would exceed the
run's budget (``run_paused``), the fake server counting the calls made. Parking the
paused run and resuming it when the budget is raised are the in-process driver's only,
so far (tests/webapp/test_budgets.py): this test cancels the paused run."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model

from tests.support.wait import wait_for
from tests.webapp.test_budgets import BRANCHES, BUDGET, fan_out_graph
from webapp.execution import coordinator
from webapp.execution.distributed import CeleryDriver
from webapp.flows import services as flow_services
from webapp.runs.models import BudgetReservation, Run, RunEvent

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_fan_out_on_two_workers_pauses_before_the_call_past_its_budget(cluster):
    cluster.workers(2, pool="threads", size=4)
    owner = get_user_model().objects.get_or_create(username="alice")[0]
    flow = flow_services.create(owner, "Fan-out", fan_out_graph())
    run = Run.objects.create(
        flow=flow,
        flow_version=flow.current(),
        started_by=owner,
        inputs={"q": "tea"},
        budget_usd=Decimal(BUDGET),
    )
    assert CeleryDriver.send_begin(run.pk) is None

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
    assert len(cluster.model_server.message_requests) == BRANCHES - 1
    assert event["needed_usd"] == pytest.approx(0.001512)
    assert event["spent_usd"] == pytest.approx(3 * 0.000084)
    run.refresh_from_db()
    assert run.spent_usd == Decimal("0.000252")
    assert not BudgetReservation.objects.filter(run=run).exists()
    coordinator.cancel(run.pk)
    wait_for(lambda: Run.objects.get(pk=run.pk).finished, 60, message="the cancel")
    assert len(cluster.model_server.message_requests) == BRANCHES - 1
