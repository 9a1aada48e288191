"""RunEvent.node: the node an event names, in a column of the (run, node, seq) index, kept
by every way events are stored and filled in for events stored before it existed."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from tests.webapp.test_run_pages import GRAPH, make_run
from webapp.flows import services
from webapp.runs import eventlog
from webapp.runs.models import RunEvent


@pytest.mark.django_db
def test_every_writer_keeps_the_events_node(alice):
    flow = services.create(alice, "Greeter", GRAPH)
    run = make_run(flow, [{"type": "run_started", "inputs": {}}])  # RunEvent.objects.create
    eventlog.write_batch(run.pk, [{"seq": 2, "type": "node_started", "node": "greet"}])
    eventlog.append(run.pk, [{"type": "node_delta", "node": "greet", "text": "Hi"}])
    rows = list(RunEvent.objects.filter(run=run).values_list("seq", "node"))
    assert rows == [(1, ""), (2, "greet"), (3, "greet")]
    assert list(
        RunEvent.objects.filter(run=run).of_node("greet").values_list("seq", flat=True)
    ) == [2, 3]


@pytest.mark.django_db(transaction=True)
def test_events_stored_before_the_column_get_their_node():
    executor = MigrationExecutor(connection)
    before, after = [("runs", "0013_run_batch_lane")], [("runs", "0014_runevent_node")]
    executor.migrate(before)
    try:
        old = executor.loader.project_state(before).apps
        owner = old.get_model("auth", "User").objects.create(username="olga")
        flow = old.get_model("flows", "Flow").objects.create(owner=owner, name="Old flow")
        version = old.get_model("flows", "FlowVersion").objects.create(
            flow=flow, number=1, graph=GRAPH, author=owner
        )
        run = old.get_model("runs", "Run").objects.create(
            flow=flow, flow_version=version, started_by=owner, inputs={}
        )
        OldEvent = old.get_model("runs", "RunEvent")
        for seq, payload in enumerate(
            [{"type": "run_started"}, {"type": "node_started", "node": "greet"}], 1
        ):
            OldEvent.objects.create(run=run, seq=seq, type=payload["type"], payload=payload)

        executor = MigrationExecutor(connection)
        executor.migrate(after)
        new = executor.loader.project_state(after).apps.get_model("runs", "RunEvent")
        assert list(new.objects.order_by("seq").values_list("node", flat=True)) == ["", "greet"]
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
