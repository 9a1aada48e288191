"""A flow that calls a saved flow, on the celery driver: the child runs inside the calling
node's task on a worker, as a run of its own with its own log; a cancel reaches it."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from tests.scaleout import flows
from tests.scaleout.conftest import finished, sound_log
from tests.support.wait import wait_for
from webapp.execution import coordinator
from webapp.flows import services as flow_services
from webapp.runs.models import Run

pytestmark = pytest.mark.django_db(transaction=True)


def caller(child_id: int) -> dict:
    return {
        "directed": True,
        "multigraph": True,
        "graph": {"name": "Caller"},
        "nodes": [
            {"id": "q", "type": "input", "config": {"name": "q", "default": "subflows"}},
            {"id": "call", "type": "subflow", "config": {"flow": str(child_id)}},
            {"id": "out", "type": "output", "config": {"name": "answer"}},
        ],
        "edges": [
            {"source": "q", "target": "call", "source_port": "value", "target_port": "topic"},
            {"source": "call", "target": "out", "source_port": "answer", "target_port": "value"},
        ],
    }


def child_flow(delays: list[float]):
    alice = get_user_model().objects.get_or_create(username="alice")[0]
    return alice, flow_services.create(alice, "Chain", flows.chain(delays))


def test_a_subflow_runs_its_child_on_a_worker_with_its_own_log(cluster):
    cluster.workers(1, pool="threads", size=4)
    alice, child = child_flow([0.1, 0.1])
    run = finished(cluster.start(caller(child.pk), owner=alice))
    assert run.status == Run.Status.SUCCEEDED, run.error
    assert run.outputs["answer"].startswith("fake reply: step s2")
    [sub] = Run.objects.filter(parent=run)
    assert (sub.kind, sub.parent_node, sub.flow_id, sub.status) == (
        "subflow", "call", child.pk, "succeeded")  # fmt: skip
    sub_events = sound_log(sub)
    assert {e["node"] for e in sub_events if e["type"] == "node_finished"} >= {"s1", "s2"}
    events = sound_log(run)
    [call] = [e for e in events if e["type"] == "node_finished" and e["node"] == "call"]
    assert call["child_runs"] == [sub.pk]
    # The child's two model calls are the parent's tokens.
    assert (run.input_tokens, run.output_tokens) == (sub.input_tokens, sub.output_tokens)
    assert run.output_tokens > 0


def test_cancelling_the_parent_on_a_worker_cancels_the_child(cluster):
    cluster.workers(1, pool="threads", size=4)
    # The model answers in two minutes: only a child that heard the cancel stops before.
    alice, child = child_flow([120])
    run = cluster.start(caller(child.pk), owner=alice)

    def child_calling() -> Run | None:
        sub = Run.objects.filter(parent=run).first()
        return sub if sub is not None and sub.last_seq >= 3 else None

    sub = wait_for(child_calling, timeout=60, message="the child's model call")
    assert coordinator.cancel(run.pk) is True
    run = finished(run, timeout=30)
    sub = finished(sub, timeout=30)
    assert (run.status, sub.status) == ("cancelled", "cancelled")
    assert sound_log(sub)[-1]["status"] == "cancelled"
