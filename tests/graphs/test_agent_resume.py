"""An agent records its turns and resumes mid-loop; a tool call may wait for approval.

Each reply is an ``agent_turn`` and each answered tool call an ``agent_tool``, stored
(the sink's ``commit``) before the next model call. A visit that runs again reads them back
(``RunOptions.history``) and goes on at the next turn, running no recorded tool call again.
A tool listed in ``approve_tools`` parks the run (kind ``tool_approval``); the answer runs
the node again: approve runs the tool, reject sends the model who rejected it and why.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from graphs.history import ELSEWHERE, EventHistory
from graphs.llm.types import ModelRequest, ModelResponse, Usage
from graphs.log import fold
from graphs.nodes import agent
from graphs.schedule import RunOptions, RunState, Schedule, StepRefused
from tests.graphs.support import compiled, flow, node, of_type

BOB = {"user": "bob"}


class Scripted:
    """A model that replies from a script: a list of tool calls (a tool_use turn) or a text
    (the end). It keeps every request, and what the sink had stored when it came."""

    name = "scripted"

    def __init__(self, script: list[Any], sink: Durable | None = None, hang_at: int = 0):
        self.script = script
        self.sink = sink
        self.hang_at = hang_at
        self.requests: list[ModelRequest] = []
        self.stored_at_call: list[list[dict]] = []
        self.reached = asyncio.Event()

    async def complete(self, request: ModelRequest, on_text: Any, **_: Any) -> ModelResponse:
        self.requests.append(request)
        if self.sink is not None:
            self.stored_at_call.append(list(self.sink.stored))
        turn = sum(1 for m in request.messages if m["role"] == "assistant") + 1
        if turn == self.hang_at:
            self.reached.set()
            await asyncio.Event().wait()  # until cancelled: the worker dies here
        step = self.script[turn - 1]
        if isinstance(step, str):
            on_text(step)
            content = [{"type": "text", "text": step}]
            return ModelResponse("m", content, "end_turn", Usage(10, 1))
        content = [
            {"type": "tool_use", "id": f"t{turn}_{i}", "name": "calculator"}
            | {"input": {"expression": e}}
            for i, e in enumerate(step)
        ]
        return ModelResponse("m", content, "tool_use", Usage(10, 1))


class Durable:
    """A sink that stores events a while after it is given them (as the web app's does),
    with the ``commit`` the engine awaits."""

    def __init__(self) -> None:
        self.given: list[dict] = []
        self.stored: list[dict] = []

    def __call__(self, event: dict) -> None:
        self.given.append(event)
        asyncio.get_running_loop().call_later(0.01, self._store)

    def _store(self) -> None:
        self.stored[:] = self.given

    async def commit(self) -> None:
        # Each event is stored 10 ms after it is given: 5 s is far past any of them.
        async with asyncio.timeout(5):
            while len(self.stored) < len(self.given):
                await asyncio.sleep(0.005)


def five_turns() -> list[Any]:
    return [["1+1"], ["2+2"], ["3+3"], ["4+4"], "done"]


def agent_flow(**config: Any) -> dict:
    return flow(
        node("q", "input", name="q"),
        node("agent", "agent", prompt="{{ q }}", tools=["calculator"], **config),
        node("out", "output", name="a"),
        edges=[("q", "value", "agent", "q"), ("agent", "text", "out", "value")],
    )


def tool_results(request: ModelRequest) -> list[dict]:
    return [
        block
        for message in request.messages
        if message["role"] == "user" and isinstance(message["content"], list)
        for block in message["content"]
    ]


async def test_each_turn_is_recorded_and_stored_before_the_next_model_call():
    sink = Durable()
    model = Scripted(five_turns(), sink)
    result = await compiled(agent_flow(), model_client=model).run({"q": "go"}, sink)
    assert result.status == "succeeded" and result.outputs["a"].endswith("done")
    turns = of_type(sink.given, "agent_turn")
    tools = of_type(sink.given, "agent_tool")
    assert [t["turn"] for t in turns] == [1, 2, 3, 4, 5]
    assert [(t["turn"], t["content"]) for t in tools] == [(1, "2"), (2, "4"), (3, "6"), (4, "8")]
    assert turns[0]["content"][0]["type"] == "tool_use" and turns[0]["usage"]["input_tokens"] == 10
    # Call k+1 came after turn k's reply and its tool result were stored.
    for k, stored in enumerate(model.stored_at_call[1:], start=1):
        assert [t["turn"] for t in of_type(stored, "agent_turn")][-1] == k
        assert [t["turn"] for t in of_type(stored, "agent_tool")][-1] == k
    visit = fold(sink.given).last_visit("agent")
    assert [t["turn"] for t in visit.turns] == [1, 2, 3, 4, 5]
    assert visit.turns[2]["tools"][0]["content"] == "6"


async def test_an_agent_killed_at_turn_4_resumes_there_paying_for_no_turn_again():
    doc = agent_flow()
    first = Durable()
    model = Scripted(five_turns(), first, hang_at=4)
    handle = compiled(doc, model_client=model).start({"q": "go"}, first)
    await asyncio.wait_for(model.reached.wait(), 10)
    handle.cancel()  # the worker's death, as far as this test is concerned
    await handle.wait()
    assert len(model.requests) == 4
    recorded = [e for e in first.stored if e["type"] in ("agent_turn", "agent_tool")]
    assert len(recorded) == 6  # turns 1-3, each with its tool result

    again = Scripted(five_turns())
    options = RunOptions(history=EventHistory(first.stored))
    result = await compiled(doc, model_client=again).run({"q": "go"}, Durable(), options=options)
    assert result.status == "succeeded"
    # Only turns 4 and 5 were asked for; turn 4's request carries turns 1-3 as recorded.
    assert len(again.requests) == 2
    assert [b["content"] for b in tool_results(again.requests[0])] == ["2", "4", "6"]
    assert result.usage_by_model["m"] == Usage(20, 2)


async def test_turns_of_another_prompt_are_not_reused():
    doc = agent_flow()
    events: list[dict] = []
    await compiled(doc, model_client=Scripted(five_turns())).run({"q": "go"}, events.append)
    again = Scripted(five_turns())
    options = RunOptions(history=EventHistory(events))
    await compiled(doc, model_client=again).run({"q": "other"}, options=options)
    assert len(again.requests) == 5


async def test_a_tool_needing_approval_waits_and_a_rejection_reaches_the_model():
    doc = agent_flow(approve_tools=["calculator"])
    events: list[dict] = []
    model = Scripted([["6*7"], "ok"])
    flow_ = compiled(doc, model_client=model)
    options = RunOptions(history=EventHistory(events))
    parked = await flow_.run({"q": "go"}, events.append, options=options)
    assert parked.status == "waiting" and parked.state is not None
    (waiting,) = of_type(events, "node_waiting")
    wait = waiting["wait"]
    assert wait["kind"] == "tool_approval" and wait["rerun"] is True
    assert (wait["tool"], wait["input"]) == ("calculator", {"expression": "6*7"})
    assert wait["tool_use_id"] == "t1_0"
    assert not of_type(events, "agent_tool")  # the tool did not run
    assert fold(events).final_states()["agent"] == "waiting"

    answer = agent.answer_tool(wait, "reject", {"reason": "not now"}, by=BOB)
    result = await flow_.resume(
        parked.state, "agent", 1, answer, BOB, events.append, seq=events[-1]["seq"], options=options
    )
    assert result.status == "succeeded"
    assert len(model.requests) == 2  # turn 1 was not asked for again
    (rejected,) = tool_results(model.requests[1])
    assert rejected["is_error"] is True
    assert rejected["content"] == "This tool call was rejected by bob: not now"
    (tool,) = of_type(events, "agent_tool")
    assert tool["rejected"] == {"by": BOB, "reason": "not now"}
    resumed = of_type(events, "node_resumed")[0]
    assert resumed["answer"]["action"] == "reject" and resumed["by"] == BOB
    assert fold(events).last_visit("agent").status == "done"


async def test_an_approved_tool_call_runs_and_a_second_answer_is_refused():
    doc = agent_flow(approve_tools=["calculator"])
    events: list[dict] = []
    model = Scripted([["6*7", "1+1"], "ok"])
    flow_ = compiled(doc, model_client=model)
    options = RunOptions(history=EventHistory(events))
    parked = await flow_.run({"q": "go"}, events.append, options=options)
    first_wait = of_type(events, "node_waiting")[-1]["wait"]
    answer = agent.answer_tool(first_wait, "approve", {}, by=BOB)
    again = await flow_.resume(
        parked.state, "agent", 1, answer, BOB, events.append, seq=events[-1]["seq"], options=options
    )
    # The turn's second call needs approval too: the run waits again, for it.
    assert again.status == "waiting"
    assert [t["content"] for t in of_type(events, "agent_tool")] == ["42"]
    second_wait = of_type(events, "node_waiting")[-1]["wait"]
    assert second_wait["tool_use_id"] == "t1_1"
    answer = agent.answer_tool(second_wait, "approve", {}, by=BOB)
    result = await flow_.resume(
        again.state, "agent", 1, answer, BOB, events.append, seq=events[-1]["seq"], options=options
    )
    assert result.status == "succeeded"
    with pytest.raises(StepRefused):  # answered: a second answer changes nothing
        await flow_.resume(result.state, "agent", 1, answer, BOB, options=options)
    assert [b["content"] for b in tool_results(model.requests[-1])] == ["42", "2"]
    assert len(model.requests) == 2


def test_resuming_a_rerun_wait_makes_its_node_ready_again_step_by_step():
    flow_ = compiled(agent_flow(approve_tools=["calculator"]))
    schedule = Schedule(flow_.plan)
    schedule.begin({"q": "go"})
    schedule.node_finished("q", 1, {"value": "go"})
    wait = agent.tool_wait(1, {"id": "t", "name": "calculator", "input": {"expression": "1"}})
    step = schedule.node_waiting("agent", 1, wait)
    assert step.waiting
    saved = json.loads(json.dumps(schedule.state.to_json()))
    schedule = Schedule(flow_.plan, RunState.from_json(saved))
    answer = agent.answer_tool(wait, "approve", {}, by=BOB)
    step = schedule.resume("agent", 1, answer, by=BOB)
    assert [t for t, _ in step.events] == ["node_resumed"]
    assert step.events[0][1]["answer"] == answer
    assert [(r.node, r.iteration, r.inputs) for r in step.ready] == [("agent", 1, {"q": "go"})]
    assert not step.waiting and not step.done
    # It runs again, and may finish as any running node does.
    step = schedule.node_finished("agent", 1, {"text": "ok"})
    assert step.ready[0].node == "out"


def test_approve_tools_must_be_among_the_agents_tools():
    from graphs.errors import FlowInvalid

    with pytest.raises(FlowInvalid, match="'http_get' is not one of the agent's tools"):
        compiled(agent_flow(approve_tools=["http_get"]))
    spec = agent.AgentNode.Config.model_fields["approve_tools"]
    assert spec.description and spec.json_schema_extra == {"widget": "tools"}


class ResumedHistory:
    """As the web app reads a resumed run's visits: its own, else its parent's (marked)."""

    def __init__(self, own: list[dict], parent: list[dict]):
        self.own, self.parent = EventHistory(own), EventHistory(parent)

    async def events(self, node: str, iteration: int) -> list[dict]:
        own = await self.own.events(node, iteration)
        if own:
            return own
        parent = await self.parent.events(node, iteration)
        return [{**e, "source": "run 7", ELSEWHERE: True} for e in parent]


async def test_turns_of_the_run_resumed_are_carried_over_once_even_across_a_wait():
    doc = agent_flow(approve_tools=["calculator"])
    parent: list[dict] = []
    flow_ = compiled(doc, model_client=Scripted([["6*7"], "ok"]))
    await flow_.run({"q": "go"}, parent.append, options=RunOptions(history=EventHistory(parent)))
    assert [e["type"] for e in parent if e["type"].startswith("agent")] == ["agent_turn"]

    own: list[dict] = []
    model = Scripted([["6*7"], "ok"])
    flow_ = compiled(doc, model_client=model)
    options = RunOptions(history=ResumedHistory(own, parent))
    parked = await flow_.run({"q": "go"}, own.append, options=options)
    assert parked.status == "waiting" and not model.requests  # turn 1 came from the parent
    wait = of_type(own, "node_waiting")[-1]["wait"]
    answer = agent.answer_tool(wait, "approve", {}, by=BOB)
    result = await flow_.resume(
        parked.state, "agent", 1, answer, BOB, own.append, seq=own[-1]["seq"], options=options
    )
    assert result.status == "succeeded" and len(model.requests) == 1
    turns = [(t["turn"], t.get("source")) for t in of_type(own, "agent_turn")]
    assert turns == [(1, "run 7"), (2, None)]
    assert all(ELSEWHERE not in e for e in own)
