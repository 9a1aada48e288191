"""An agent's tool call that needs approval, on the in-process driver with the fake model
server: the run parks before the call (kind tool_approval, the tool and its arguments on
the run page), an editor answers through the API, and the model sees the tool's result or
who rejected the call and why. A cancelled agent run resumed later goes on at its next
turn: the fake server's request log shows no earlier turn asked for again.

Alice owns the flow (in her team), bob edits it, carol views it, dave is a stranger.
"""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync

from tests.fakes.anthropic_server import FakeResponse
from tests.support.wait import wait_for
from webapp import execution
from webapp.execution import plans
from webapp.flows import services
from webapp.runs import approvals
from webapp.runs import services as run_services
from webapp.runs.models import Run, RunEvent

pytestmark = pytest.mark.django_db(transaction=True)

CALL = '#fake:tool=calculator {"expression": "6*7"}'


def agent_graph(prompt: str, **config) -> dict:
    def node(id_: str, type_: str, **config) -> dict:
        return {"id": id_, "type": type_, "config": config, "position": {"x": 0, "y": 0}}

    def edge(source: str, port: str, target: str, target_port: str) -> dict:
        return {"source": source, "target": target, "source_port": port, "target_port": target_port}

    return {
        "directed": True,
        "multigraph": True,
        "graph": {"name": "Agent"},
        "nodes": [
            node("q", "input", name="q"),
            node("solve", "agent", prompt=prompt, tools=["calculator"], **config),
            node("out", "output", name="answer"),
        ],
        "edges": [edge("q", "value", "solve", "q"), edge("solve", "text", "out", "value")],
    }


@pytest.fixture
def model(anthropic_env):
    plans.engine_services.cache_clear()
    yield anthropic_env
    plans.engine_services.cache_clear()


def idle() -> None:
    async_to_sync(execution.driver().wait_idle)()


def start(flow, user, q: str = "What is 6*7?") -> Run:
    run = Run.objects.create(
        flow=flow, flow_version=flow.current(), started_by=user, inputs={"q": q}
    )
    execution.start(run.pk)
    idle()
    run.refresh_from_db()
    return run


@pytest.fixture
def waiting_run(model, alice, team) -> Run:
    graph = agent_graph("{{ q }}\n" + CALL, approve_tools=["calculator"])
    flow = services.create(alice, "Agent", graph, team=team)
    run = start(flow, alice)
    assert run.status == Run.Status.WAITING, run.error
    return run


def url(run: Run) -> str:
    return f"/api/runs/{run.pk}/approvals/solve"


def events(run: Run, type_: str) -> list[dict]:
    rows = RunEvent.objects.filter(run=run, type=type_).order_by("seq")
    return list(rows.values_list("payload", flat=True))


def test_the_agent_waits_before_the_call_showing_the_tool_and_its_arguments(
    waiting_run, model, client, bob, api
):
    wait = waiting_run.state["waiting"]["solve"]
    assert wait["kind"] == "tool_approval"
    assert (wait["tool"], wait["input"]) == ("calculator", {"expression": "6*7"})
    assert not events(waiting_run, "agent_tool"), "the tool must not run before approval"
    assert [t["turn"] for t in events(waiting_run, "agent_turn")] == [1]
    assert len(model.message_requests) == 1
    # The run holds nothing while it waits.
    driver = execution.driver()
    assert waiting_run.pk not in driver.active and not driver.running
    client.force_login(bob)
    page = client.get(f"/runs/{waiting_run.pk}/approvals/").content.decode()
    assert 'data-testid="approval-tool">calculator<' in page
    assert "&quot;expression&quot;: &quot;6*7&quot;" in page
    assert f'name="call" value="{wait["tool_use_id"]}"' in page
    pending = api("bob").get("/api/approvals").json()["items"]
    (mine,) = [p for p in pending if p["run"] == waiting_run.pk]
    assert (mine["kind"], mine["tool"], mine["call"]) == (
        "tool_approval",
        "calculator",
        wait["tool_use_id"],
    )


def test_a_rejection_reaches_the_model_with_who_rejected_it_and_why(waiting_run, model, api):
    call = waiting_run.state["waiting"]["solve"]["tool_use_id"]
    response = api("bob").post(
        url(waiting_run), {"action": "reject", "values": {"reason": "too risky"}, "call": call}
    )
    assert response.status_code == 202, response.content
    idle()
    wait_for(lambda: Run.objects.get(pk=waiting_run.pk).finished, message="the run to end")
    waiting_run.refresh_from_db()
    assert waiting_run.status == Run.Status.SUCCEEDED, waiting_run.error
    _, second = model.message_requests  # turn 1 was not asked for again
    (result,) = second["messages"][-1]["content"]
    assert result["type"] == "tool_result" and result["tool_use_id"] == call
    assert result["content"] == "This tool call was rejected by bob: too risky"
    assert result["is_error"] is True
    (tool,) = events(waiting_run, "agent_tool")
    assert tool["rejected"]["by"]["user"] == "bob"
    # The same answer again is refused: the agent no longer waits.
    again = api("alice").post(url(waiting_run), {"action": "approve", "call": call})
    assert again.status_code == 409


def test_the_inspector_lists_the_turns_and_replay_shows_them_as_they_were(
    waiting_run, api, client, carol
):
    waited_at = waiting_run.last_seq
    api("bob").post(url(waiting_run), {"action": "reject", "values": {"reason": "<no>"}})
    idle()
    wait_for(lambda: Run.objects.get(pk=waiting_run.pk).finished, message="the run to end")
    client.force_login(carol)  # a viewer sees what the agent did
    page = client.get(f"/runs/{waiting_run.pk}/nodes/solve/").content.decode()
    assert 'data-testid="inspector-turns"' in page and "Turns (2)" in page
    assert '<li data-turn="1">' in page and '<li data-turn="2">' in page
    assert "tool_use calculator" in page
    assert "rejected by bob: &lt;no&gt;" in page and "<no>" not in page
    # Replayed to the moment it waited: turn 1 only, its call not yet answered.
    page = client.get(f"/runs/{waiting_run.pk}/nodes/solve/?upto={waited_at}").content.decode()
    assert "Turns (1)" in page and 'data-testid="inspector-tool"' not in page


def test_an_approval_runs_the_tool_and_the_model_gets_its_result(waiting_run, model, api):
    response = api("alice").post(url(waiting_run), {"action": "approve"})
    assert response.status_code == 202, response.content
    idle()
    wait_for(lambda: Run.objects.get(pk=waiting_run.pk).finished, message="the run to end")
    waiting_run.refresh_from_db()
    assert waiting_run.status == Run.Status.SUCCEEDED, waiting_run.error
    assert waiting_run.outputs == {"answer": "tool results: 42"}
    (_, second) = model.message_requests
    assert second["messages"][-1]["content"][0]["content"] == "42"
    seqs = list(RunEvent.objects.filter(run=waiting_run).values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))


def test_an_answer_to_another_call_is_refused_and_viewers_cannot_answer(waiting_run, api):
    stale = api("bob").post(url(waiting_run), {"action": "approve", "call": "toolu_other"})
    assert stale.status_code == 409
    assert api("carol").post(url(waiting_run), {"action": "approve"}).status_code == 403
    assert api("dave").post(url(waiting_run), {"action": "approve"}).status_code == 404
    bad = api("bob").post(url(waiting_run), {"action": "maybe"})
    assert bad.status_code == 400
    assert Run.objects.get(pk=waiting_run.pk).status == Run.Status.WAITING


def test_a_cancelled_agent_resumed_goes_on_at_its_next_turn(model, alice):
    flow = services.create(alice, "Five", agent_graph("{{ q }}", max_turns=6))
    for expression in ("1+1", "2+2", "3+3"):
        model.enqueue(FakeResponse(tool_uses=[("calculator", {"expression": expression})]))
    model.enqueue(FakeResponse(hang=True))
    run = Run.objects.create(
        flow=flow, flow_version=flow.current(), started_by=alice, inputs={"q": "count"}
    )
    execution.start(run.pk)
    wait_for(lambda: len(model.message_requests) == 4, message="turn 4 to be asked for")
    execution.cancel(run.pk)
    idle()
    run.refresh_from_db()
    assert run.status == Run.Status.CANCELLED
    assert [t["turn"] for t in events(run, "agent_turn")] == [1, 2, 3]

    model.enqueue(
        FakeResponse(tool_uses=[("calculator", {"expression": "4+4"})]),
        FakeResponse(text="done"),
    )
    resumed = run_services.create_resume(run, alice)
    execution.start(resumed.pk)
    idle()
    resumed.refresh_from_db()
    assert resumed.status == Run.Status.SUCCEEDED, resumed.error
    asked = model.message_requests[4:]
    assert len(asked) == 2, "only turns 4 and 5 are asked for"
    assert sum(m["role"] == "assistant" for m in asked[0]["messages"]) == 3
    results = [
        block["content"]
        for message in asked[0]["messages"]
        if isinstance(message["content"], list)
        for block in message["content"]
        if block.get("type") == "tool_result"
    ]
    assert results == ["2", "4", "6"]
    # The resumed run's log holds the whole visit: turns 1-3 carried over, 4-5 its own.
    turns = events(resumed, "agent_turn")
    assert [(t["turn"], t.get("source")) for t in turns] == [
        (1, f"run {run.pk}"),
        (2, f"run {run.pk}"),
        (3, f"run {run.pk}"),
        (4, None),
        (5, None),
    ]
    assert approvals.waits_of(resumed) == {}


def test_the_node_form_offers_approve_tools_and_names_one_that_is_not_a_tool(alice, client):
    flow = services.create(alice, "Form", services.starter_graph("Form"))
    client.force_login(alice)
    data = {
        "type": "agent",
        "node_id": "solve",
        "form_key": "k1",
        "f_prompt": "Solve {{ x }}",
        "f_tools": ["calculator"],
        "f_approve_tools": ["http_get"],
    }
    page = client.post(f"/flows/{flow.pk}/node-form/", data).content.decode()
    assert "Tools needing approval" in page
    error = page.split('data-testid="error-approve_tools">')[1].split("<")[0]
    assert "&#x27;http_get&#x27; is not one of the agent&#x27;s tools" in error


async def test_the_sink_has_stored_every_event_it_was_given_when_commit_returns(alice):
    from asgiref.sync import sync_to_async

    from webapp.execution.sink import Sink

    def new_run() -> Run:
        flow = services.create(alice, "Sink", services.starter_graph("Sink"))
        return Run.objects.create(flow=flow, flow_version=flow.current(), started_by=alice)

    def stored(run: Run) -> list[str]:
        return list(RunEvent.objects.filter(run=run).values_list("type", flat=True))

    run = await sync_to_async(new_run)()
    sink = Sink(run.pk)
    try:
        sink({"seq": 1, "ts": 1000.0, "type": "run_started", "schema": 1})
        sink({"seq": 2, "ts": 1000.0, "type": "node_started", "node": "solve", "iteration": 1})
        turn = {"seq": 3, "ts": 1000.1, "type": "agent_turn", "node": "solve", "iteration": 1}
        sink({**turn, "turn": 1, "content": [], "stop_reason": "tool_use"})
        await sink.commit()
        # Read before anything else may run on the loop (the writer among it).
        assert (sink.given, sink.stored) == (3, 3)
        assert await sync_to_async(stored)(run) == ["run_started", "node_started", "agent_turn"]
        await sink.commit()  # nothing more to wait for
    finally:
        await sink.close()


def test_recover_runs_counts_the_turns_an_interrupted_agent_paid_for(alice):
    from django.core.management import call_command

    from webapp.runs.eventlog import write_batch

    flow = services.create(alice, "Cut", agent_graph("{{ q }}"))
    run = Run.objects.create(
        flow=flow, flow_version=flow.current(), started_by=alice, status=Run.Status.RUNNING
    )
    visit = {"node": "solve", "iteration": 1}

    def turn(seq: int, number: int, source: str | None = None) -> dict:
        usage = {"input_tokens": 100 * number, "output_tokens": number}
        event = {"seq": seq, "ts": 1000.0 + seq, "type": "agent_turn", **visit, "turn": number}
        return {
            **event,
            "model": "claude-x",
            "usage": usage,
            **({"source": source} if source else {}),
        }

    write_batch(
        run.pk,
        [
            {"seq": 1, "ts": 1000.0, "type": "run_started", "schema": 1},
            {"seq": 2, "ts": 1000.0, "type": "node_started", **visit},
            turn(3, 1, source="run 1"),  # carried over: paid for by run 1
            turn(4, 2),
            turn(5, 3),
        ],
    )
    call_command("recover_runs")
    run.refresh_from_db()
    assert run.status == Run.Status.FAILED
    assert (run.input_tokens, run.output_tokens) == (500, 5)
    finished = events(run, "run_finished")[0]
    assert finished["usage_by_model"] == {"claude-x": {"input_tokens": 500, "output_tokens": 5}}
