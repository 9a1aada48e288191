"""Approval timeouts and what a parked run holds, on the in-process driver (the embedded
default): a wait with ``timeout_s`` unanswered by its deadline resumes from the approval's
``timeout`` port, once, even with two sweeps racing; the deadline is stored (the wait's
JSON and the indexed ``Run.wait_deadline``) so it outlives a restart; the server's ticker
fires it by itself; a parked run holds no thread and no concurrency slot.

The sweeps here are given the time (``now``) rather than waiting for it: nothing sleeps.
"""

from __future__ import annotations

import threading
import time

import pytest
from django.core.management import call_command
from django.db import connection

from tests.support.wait import wait_for
from tests.webapp.test_approvals import answer_url, idle, refund_graph, types
from webapp import execution
from webapp.execution import inprocess, provider_cap
from webapp.flows import services
from webapp.runs import approvals, timeouts
from webapp.runs.models import Run, RunEvent

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def timed_flow(alice, team):
    return services.create(alice, "Refund", refund_graph(timeout_s=30), team=team)


def park(flow, alice, q: str = "12 EUR") -> Run:
    run = Run.objects.create(
        flow=flow, flow_version=flow.current(), started_by=alice, inputs={"q": q}
    )
    execution.start(run.pk)
    idle()
    run.refresh_from_db()
    assert run.status == Run.Status.WAITING, run.error
    return run


def deadline_of(run: Run) -> float:
    return run.state["waiting"]["ask"]["deadline"]


def test_the_deadline_is_stored_in_the_wait_and_on_the_row(timed_flow, alice):
    run = park(timed_flow, alice)
    deadline = deadline_of(run)
    assert run.created.timestamp() + 29 < deadline < run.created.timestamp() + 60
    assert run.wait_deadline.timestamp() == pytest.approx(deadline, abs=1e-3)
    waiting = RunEvent.objects.get(run=run, type="node_waiting").payload
    assert waiting["wait"]["deadline"] == deadline


def test_nothing_fires_before_the_deadline(timed_flow, alice):
    run = park(timed_flow, alice)
    assert timeouts.fire_due(now=deadline_of(run) - 1) == 0
    idle()
    run.refresh_from_db()
    assert run.status == Run.Status.WAITING
    assert "node_resumed" not in types(run)


def test_a_deadline_outlives_a_restart_and_the_run_goes_on_from_the_timeout_port(timed_flow, alice):
    run = park(timed_flow, alice)
    call_command("recover_runs")  # what a restarted server does first
    run.refresh_from_db()
    assert run.status == Run.Status.WAITING and run.wait_deadline is not None
    assert timeouts.fire_due(now=deadline_of(run) + 1) == 1
    idle()
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED, run.error
    assert run.outputs == {"answer": "timed out after 30.0 s"}
    resumed = RunEvent.objects.get(run=run, type="node_resumed").payload
    assert resumed["by"] == approvals.TIMED_OUT_BY
    seqs = list(RunEvent.objects.filter(run=run).values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))


def test_two_sweeps_racing_time_a_wait_out_once(timed_flow, alice):
    run = park(timed_flow, alice)
    now = deadline_of(run) + 1
    start = threading.Barrier(2)
    fired: list[int] = []

    def sweep() -> None:
        try:
            start.wait()
            fired.append(timeouts.fire_due(now=now))
        finally:
            connection.close()

    sweeps = [threading.Thread(target=sweep) for _ in range(2)]
    for thread in sweeps:
        thread.start()
    for thread in sweeps:
        thread.join()
    idle()
    assert sorted(fired) == [0, 1]
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED
    assert types(run).count("node_resumed") == 1
    assert types(run).count("run_finished") == 1


def test_an_answer_before_the_deadline_leaves_nothing_to_time_out(timed_flow, alice, api):
    run = park(timed_flow, alice)
    response = api("bob").post(answer_url(run), {"action": "approve", "values": {"note": "ok"}})
    assert response.status_code == 202
    idle()
    assert timeouts.fire_due(now=deadline_of(run) + 1) == 0
    run.refresh_from_db()
    assert run.outputs == {"answer": "approved by bob: ok"}


def test_a_timed_out_wait_refuses_a_late_answer(timed_flow, alice, api):
    run = park(timed_flow, alice)
    assert timeouts.fire_due(now=deadline_of(run) + 1) == 1
    idle()
    late = api("bob").post(answer_url(run), {"action": "approve", "values": {"note": "ok"}})
    assert late.status_code == 409


def test_the_servers_ticker_fires_a_timeout_by_itself(alice, team, settings):
    settings.WAIT_TICK_S = 0.05
    flow = services.create(alice, "Refund", refund_graph(timeout_s=0.3), team=team)
    loop = inprocess.own_loop()  # the loop a sync caller's runs go to, as the server's would
    timeouts.start_with_server(loop)
    try:
        run = park(flow, alice)
        wait_for(lambda: Run.objects.get(pk=run.pk).finished, 30, message="the timeout")
    finally:
        timeouts.stop_on(loop)
    idle()
    run.refresh_from_db()
    assert run.outputs == {"answer": "timed out after 0.3 s"}


def test_parked_runs_hold_no_thread_and_no_concurrency_slot(timed_flow, alice, settings):
    # Capped, so every run takes the provider's semaphore on its loop as it starts.
    settings.MODEL_CONCURRENCY = {"anthropic": 2, "offline": 2}
    # A few first, so that the thread pools the driver uses have grown (they grow as work
    # comes, up to their bounds) before the count.
    parked = [park(timed_flow, alice, q=f"{n} EUR") for n in range(3)]
    before = {thread.name for thread in threading.enumerate()}
    parked += [park(timed_flow, alice, q=f"{n} EUR") for n in range(3, 9)]
    driver = execution.driver()
    # A thread that is ending (asgiref's async_to_sync makes one per call from a sync
    # thread, and lets it go) is held by nothing: only one that stays counts.
    deadline = time.monotonic() + 5
    while (more := {thread.name for thread in threading.enumerate()} - before) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.05)
    assert not more, f"parked runs hold threads: {more}"
    assert not driver.active and not driver.running and not driver.starting
    semaphores = provider_cap._provider[inprocess.own_loop()]
    capped = [(key, sem) for key, sem in semaphores.items() if key[1] == 2]
    assert capped, "the runs took no provider semaphore: the test proves nothing"
    for (_, limit), semaphore in capped:
        assert semaphore._value == limit, "a parked run holds a provider slot"
    assert Run.objects.filter(pk__in=[r.pk for r in parked], status="waiting").count() == 9
