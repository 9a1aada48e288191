"""An agent on the celery driver whose worker is SIGKILLed at turn 4 of 5: the worker that
takes its node over reads turns 1-3 from the run's log and goes on at turn 4. The fake
Messages API's request log shows no earlier turn asked for again, and the calculator ran
each call once (one agent_tool event per call in the log).
"""

from __future__ import annotations

import pytest

from tests.fakes.anthropic_server import FakeResponse
from tests.scaleout.conftest import finished, sound_log
from tests.scaleout.test_durability import by_host, task, warm_up
from tests.support.wait import wait_for
from webapp.runs.models import Run, RunEvent

pytestmark = pytest.mark.django_db(transaction=True)


def agent_graph() -> dict:
    def node(id_: str, type_: str, **config) -> dict:
        return {"id": id_, "type": type_, "config": config, "position": {"x": 0, "y": 0}}

    def edge(source: str, target: str, port: str, target_port: str) -> dict:
        return {"source": source, "target": target, "source_port": port, "target_port": target_port}

    return {
        "directed": True,
        "multigraph": True,
        "graph": {"name": "Agent"},
        "nodes": [
            node("q", "input", name="q", default="count"),
            node("solve", "agent", prompt="{{ q }}", tools=["calculator"], max_turns=6),
            node("out", "output", name="answer"),
        ],
        "edges": [edge("q", "solve", "value", "q"), edge("solve", "out", "text", "value")],
    }


def logged(run: Run, type_: str) -> list[dict]:
    rows = RunEvent.objects.filter(run=run, type=type_).order_by("seq")
    return list(rows.values_list("payload", flat=True))


def test_an_agent_whose_worker_dies_at_turn_4_goes_on_there_on_another(cluster):
    workers = cluster.workers(2)
    warm_up(cluster, branches=2)
    server = cluster.model_server
    for expression in ("1+1", "2+2", "3+3"):
        server.enqueue(FakeResponse(tool_uses=[("calculator", {"expression": expression})]))
    server.enqueue(FakeResponse(hang=True))
    run = cluster.start(agent_graph())
    wait_for(lambda: len(server.message_requests) == 4, message="turn 4 to be asked for")
    assert [t["turn"] for t in logged(run, "agent_turn")] == [1, 2, 3]
    server.enqueue(
        FakeResponse(tool_uses=[("calculator", {"expression": "4+4"})]),
        FakeResponse(text="all done"),
    )
    by_host(workers)[task(run, "solve").worker].kill()

    run = finished(run, timeout=90)
    assert run.status == Run.Status.SUCCEEDED, run.error
    events = sound_log(run)
    assert any(e["type"] == "node_retrying" and e.get("takeover") for e in events)
    asked = server.message_requests
    assert len(asked) == 6, "turns 1-3 are not asked for again: only 4 (again) and 5"
    assert asked[4]["messages"] == asked[3]["messages"]
    assert [t["turn"] for t in logged(run, "agent_turn")] == [1, 2, 3, 4, 5]
    assert [t["content"] for t in logged(run, "agent_tool")] == ["2", "4", "6", "8"]
    assert run.outputs["answer"].endswith("all done")
