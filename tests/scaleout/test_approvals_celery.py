"""Runs that wait for a person on the celery driver (real workers, PostgreSQL, Redis).

A run whose running nodes all wait is stored ``waiting`` with its state and holds no task,
lease or slot (and no worker thread); an answer through the API continues it on the
workers, numbering its events on; a second answer is refused; cancel closes it; a worker
SIGKILLed while it waits changes nothing; a timeout fires from the workers' sweepers, and
two sweeps racing fire it once.
"""

from __future__ import annotations

import json
import threading

from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client

from tests.scaleout.conftest import finished, sound_log
from tests.support.wait import wait_for
from tests.webapp.test_approvals import refund_graph
from webapp.accounts.models import ApiToken
from webapp.execution import slots, sweeper
from webapp.execution.distributed import CeleryDriver
from webapp.runs import approvals, timeouts
from webapp.runs.models import NodeTask, Run, RunEvent, Slot

BODY = {"action": "approve", "values": {"note": "ok"}}


def api_post(path: str, body: dict | None = None):
    alice = get_user_model().objects.get_or_create(username="alice")[0]
    headers = {"Authorization": f"Bearer {ApiToken.issue(alice, 'tests')[1]}"}
    return Client().post(path, json.dumps(body or {}), "application/json", headers=headers)


def answer(run: Run, body: dict = BODY):
    return api_post(f"/api/runs/{run.pk}/approvals/ask", body)


def parked(cluster, graph: dict | None = None, q: str = "12 EUR") -> Run:
    run = cluster.start(graph or refund_graph(), {"q": q})

    def waiting() -> Run | None:
        run.refresh_from_db()
        assert not run.finished, run.error
        return run if run.status == Run.Status.WAITING else None

    return wait_for(waiting, 60, message=f"run {run.pk} to park")


def holds_nothing(run: Run) -> None:
    tasks = NodeTask.objects.filter(run=run)
    assert tasks.exists()
    assert not tasks.exclude(status=NodeTask.Status.DONE).exists(), "a parked run holds a task"
    assert not tasks.filter(lease_until__isnull=False).exists(), "a parked run holds a lease"
    assert not Slot.objects.filter(task__run=run).exists(), "a parked run holds a slot row"
    assert slots.held(f"run:{run.pk}") == 0


def threads_of(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("Threads:"))


def test_a_parked_run_holds_nothing_and_an_answer_finishes_it_on_the_workers(cluster):
    [worker] = cluster.workers(1)
    run = parked(cluster)
    assert run.state["waiting"]["ask"]["message"] == "Refund 12 EUR?"
    holds_nothing(run)
    threads = threads_of(worker.pid)
    more = [parked(cluster, q=f"{n} EUR") for n in range(6)]
    for other in more:
        holds_nothing(other)
    # The worker's pools grow lazily to their bounds as work comes, so a thread or two may
    # appear; a thread held by each waiting run would be six.
    grown = threads_of(worker.pid) - threads
    assert grown < len(more) // 2, f"waiting runs hold worker threads: {grown} more"

    response = answer(run)
    assert response.status_code == 202, response.content
    run = finished(run)
    assert run.status == Run.Status.SUCCEEDED, run.error
    assert run.outputs == {"answer": "approved by alice: ok"}
    events = sound_log(run)
    assert [e["type"] for e in events].count("node_resumed") == 1
    again = answer(run, {"action": "reject", "values": {"note": "no"}})
    assert again.status_code == 409
    assert Run.objects.get(pk=run.pk).outputs == {"answer": "approved by alice: ok"}
    assert all(Run.objects.get(pk=o.pk).status == Run.Status.WAITING for o in more)


def test_a_worker_killed_while_the_run_waits_changes_nothing(cluster):
    [first] = cluster.workers(1)
    run = parked(cluster)
    seq = run.last_seq
    first.kill()
    cluster.workers(1)
    counts = sweeper.sweep()  # what the new worker's sweeper finds: nothing to take over
    assert counts["taken_over"] == 0 and counts["timed_out"] == 0
    run.refresh_from_db()
    assert run.status == Run.Status.WAITING and run.last_seq == seq
    assert not RunEvent.objects.filter(run=run, type="node_retrying").exists()
    assert answer(run).status_code == 202
    run = finished(run)
    assert run.status == Run.Status.SUCCEEDED, run.error
    assert run.outputs == {"answer": "approved by alice: ok"}
    sound_log(run)


def test_cancel_while_waiting_closes_the_run_and_a_late_answer_is_refused(cluster):
    cluster.workers(1)
    run = parked(cluster)
    response = api_post(f"/api/runs/{run.pk}/cancel")
    assert response.status_code == 202, response.content
    run.refresh_from_db()
    assert run.status == Run.Status.CANCELLED
    events = sound_log(run)
    assert events[-1]["type"] == "run_finished" and events[-1]["status"] == "cancelled"
    assert answer(run).status_code == 409


def test_a_timeout_fires_from_the_workers_sweepers(cluster):
    cluster.workers(1)
    run = parked(cluster, refund_graph(timeout_s=1))
    assert run.wait_deadline is not None
    run = finished(run)
    assert run.status == Run.Status.SUCCEEDED, run.error
    assert run.outputs == {"answer": "timed out after 1.0 s"}
    events = sound_log(run)
    resumed = [e for e in events if e["type"] == "node_resumed"]
    assert [e["by"] for e in resumed] == [approvals.TIMED_OUT_BY]


def test_two_sweeps_racing_time_a_wait_out_once(cluster):
    cluster.workers(1)
    run = parked(cluster, refund_graph(timeout_s=3600))
    now = run.state["waiting"]["ask"]["deadline"] + 1
    start = threading.Barrier(2)
    fired: list[int] = []

    def sweep() -> None:
        try:
            start.wait()
            fired.append(timeouts.fire_due(CeleryDriver(), now=now))
        finally:
            connection.close()

    racers = [threading.Thread(target=sweep) for _ in range(2)]
    for thread in racers:
        thread.start()
    for thread in racers:
        thread.join()
    assert sorted(fired) == [0, 1]
    run = finished(run)
    assert run.outputs == {"answer": "timed out after 3600.0 s"}
    assert [e["type"] for e in sound_log(run)].count("node_resumed") == 1
