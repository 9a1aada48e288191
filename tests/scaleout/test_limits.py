"""The run limits (webapp.runs.limits) on the celery driver: real workers, PostgreSQL."""

from __future__ import annotations

import threading
import time

import pytest
from django.contrib.auth import get_user_model
from django.db import connection

from tests.scaleout import flows
from tests.scaleout.conftest import finished, sound_log
from webapp.flows import services as flow_services
from webapp.runs import limits, services
from webapp.runs.models import NodeTask, Run, RunEvent, UserStorage

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_loop_that_fills_its_event_log_on_workers_fails_with_the_log_closed(cluster):
    cluster.workers(2, pool="threads", size=4, SWITCHYARD_MAX_RUN_EVENT_BYTES="40000")
    run = finished(cluster.start(flows.echo_loop(iterations=60), {"text": "x" * 2_000}))

    assert run.status == Run.Status.FAILED
    assert run.error == limits.event_log_error(40_000) == run.limit_error
    assert run.outputs == {}
    events = sound_log(run)
    assert events[-1]["type"] == "run_finished" and events[-1]["error"] == run.error
    open_visits = set()
    for event in events:
        visit = (event.get("node"), event.get("iteration"))
        if event["type"] == "node_started":
            open_visits.add(visit)
        elif event["type"] in ("node_finished", "node_failed", "node_skipped"):
            open_visits.discard(visit)
    assert not open_visits
    passes = [e for e in events if e["type"] == "node_started" and e["node"] == "a"]
    assert 1 < len(passes) < 10  # stopped, not run round 60 times
    assert run.event_bytes == sum(limits.size_of(e) for e in events) <= 40_000 + 2_000

    time.sleep(1)  # nothing more is stored, and no node is left to run
    assert RunEvent.objects.filter(run=run).count() == len(events)
    assert set(NodeTask.objects.filter(run=run).values_list("status", flat=True)) == {"done"}


def test_starts_at_the_same_moment_take_turns_for_the_places_in_flight(settings):
    """Eight requests of one user at once, three places: three runs, five refusals, and the
    user's storage counts exactly the three (PostgreSQL, a connection per request)."""
    settings.MAX_RUNS_IN_FLIGHT = 3
    alice = get_user_model().objects.create_user("alice")
    flow = flow_services.create(alice, "Echo loop", flows.echo_loop())
    gate = threading.Barrier(8, timeout=30)
    outcomes: list[str] = []

    def start() -> None:
        try:
            gate.wait()
            services.create_run(flow, alice, {"text": "x" * 100})
            outcomes.append("started")
        except limits.TooManyRuns:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(outcomes) == ["refused"] * 5 + ["started"] * 3
    runs = Run.objects.filter(started_by=alice)
    assert runs.count() == 3
    stored = sum(runs.values_list("stored_bytes", flat=True))
    assert UserStorage.objects.get(user=alice).stored_bytes == stored > 300
