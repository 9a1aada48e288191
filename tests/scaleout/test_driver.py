"""The celery driver end to end: runs executed node by node by real worker processes,
coordinated in PostgreSQL, with the fake Messages API as the model."""

from __future__ import annotations

import pytest

from tests.scaleout import flows
from tests.scaleout.conftest import finished, sound_log
from webapp.runs.models import NodeTask, Run

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_fan_out_runs_node_by_node_on_two_workers(cluster):
    cluster.workers(2, pool="threads", size=4)
    run = cluster.start(flows.fan_out(branches=3, delay_s=0.3))
    run = finished(run)
    assert run.status == Run.Status.SUCCEEDED, run.error
    assert run.outputs["answer"].startswith("fake reply: final")
    events = sound_log(run)
    done = {e["node"] for e in events if e["type"] == "node_finished"}
    assert done == {"topic", "b1", "b2", "b3", "join", "final", "out"}
    assert sorted(cluster.calls()) == ["branch b1 on scale-out #fake:delay=0.3",
        "branch b2 on scale-out #fake:delay=0.3", "branch b3 on scale-out #fake:delay=0.3",
        "final #fake:delay=0.3"]  # fmt: skip
    tasks = NodeTask.objects.filter(run=run)
    assert tasks.count() == 7 and set(tasks.values_list("status", flat=True)) == {"done"}
    # The branches ran at the same time, not one after another.
    branches = tasks.filter(node__startswith="b")
    first_end = min(t.finished_at for t in branches)
    assert all(t.started_at < first_end for t in branches)
