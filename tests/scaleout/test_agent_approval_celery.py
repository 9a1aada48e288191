"""An agent's tool call that needs approval, on the celery driver (real workers,
PostgreSQL, Redis, the fake model server): the run parks before the call, holding no task
or lease; the answer through the API queues the agent's visit again (its own task row, a
new epoch) and the agent goes on from its recorded turn: the fake server's request log
shows turn 1 asked for once, then turn 2 with the tool's result or the rejection.
"""

from __future__ import annotations

from tests.scaleout.conftest import finished, sound_log
from tests.scaleout.test_approvals_celery import api_post
from tests.support.wait import wait_for
from tests.webapp.test_agent_approval import CALL, agent_graph
from webapp.runs.models import NodeTask, Run


def parked_agent(cluster) -> Run:
    graph = agent_graph("{{ q }}\n" + CALL, approve_tools=["calculator"])
    run = cluster.start(graph, {"q": "What is 6*7?"})

    def waiting() -> Run | None:
        run.refresh_from_db()
        assert not run.finished, run.error
        return run if run.status == Run.Status.WAITING else None

    run = wait_for(waiting, 60, message=f"run {run.pk} to park")
    wait = run.state["waiting"]["solve"]
    assert wait["kind"] == "tool_approval" and wait["rerun"]
    assert (wait["tool"], wait["input"]) == ("calculator", {"expression": "6*7"})
    tasks = NodeTask.objects.filter(run=run)
    assert not tasks.exclude(status=NodeTask.Status.DONE).exists(), "a parked run holds a task"
    assert not tasks.filter(lease_until__isnull=False).exists(), "a parked run holds a lease"
    assert len(cluster.model_server.message_requests) == 1
    return run


def agent_task(run: Run) -> NodeTask:
    return NodeTask.objects.get(run=run, node="solve", item=NodeTask.NODE)


def test_an_approved_tool_call_runs_and_the_agent_goes_on_at_its_next_turn(cluster):
    cluster.workers(1)
    run = parked_agent(cluster)
    assert agent_task(run).epoch == 1
    response = api_post(f"/api/runs/{run.pk}/approvals/solve", {"action": "approve"})
    assert response.status_code == 202, response.content
    run = finished(run)
    assert run.status == Run.Status.SUCCEEDED, run.error
    assert run.outputs == {"answer": "tool results: 42"}
    first, second = cluster.model_server.message_requests  # turn 1 was not asked again
    assert first["messages"][-1]["content"].startswith("What is 6*7?")
    (result,) = second["messages"][-1]["content"]
    assert result["type"] == "tool_result" and result["content"] == "42"
    events = sound_log(run)
    assert [e["turn"] for e in events if e["type"] == "agent_turn"] == [1, 2]
    assert len([e for e in events if e["type"] == "agent_tool"]) == 1
    # The same visit ran again: its own row, one epoch on, and finished once.
    task = agent_task(run)
    assert task.epoch == 2 and task.status == NodeTask.Status.DONE
    again = api_post(f"/api/runs/{run.pk}/approvals/solve", {"action": "approve"})
    assert again.status_code == 409
    assert len(cluster.model_server.message_requests) == 2


def test_a_rejection_reaches_the_model_and_the_tool_never_runs(cluster):
    cluster.workers(1)
    run = parked_agent(cluster)
    call = run.state["waiting"]["solve"]["tool_use_id"]
    body = {"action": "reject", "values": {"reason": "too risky"}, "call": call}
    response = api_post(f"/api/runs/{run.pk}/approvals/solve", body)
    assert response.status_code == 202, response.content
    run = finished(run)
    assert run.status == Run.Status.SUCCEEDED, run.error
    _, second = cluster.model_server.message_requests
    (result,) = second["messages"][-1]["content"]
    assert result["tool_use_id"] == call and result["is_error"] is True
    assert result["content"] == "This tool call was rejected by alice: too risky"
    events = sound_log(run)
    (tool,) = [e for e in events if e["type"] == "agent_tool"]
    assert tool["rejected"]["by"]["user"] == "alice"
