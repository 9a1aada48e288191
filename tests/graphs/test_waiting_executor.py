"""A run with an approval parks: the executor returns a waiting result holding the run's
state JSON and nothing else; a new execution built from that JSON takes the answer and runs
to the end. Flows without approvals are untouched (the rest of tests/graphs)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from graphs.compile import CompiledFlow
from graphs.log import fold
from graphs.nodes import approval
from graphs.schedule import StepRefused
from graphs.spec import RunResult
from tests.graphs.support import Probe, compiled, flow, node, of_type

BOB = {"user": "bob"}
FORM = [
    {"name": "note", "label": "Note", "kind": "text", "required": True},
    {"name": "amount", "kind": "number"},
    {"name": "tier", "kind": "choice", "choices": ["gold", "silver"]},
    {"name": "urgent", "kind": "boolean"},
]


def refund(**config: Any) -> dict:
    """q -> ask (approval) -> approve: yes / reject: no (/ timeout: late) -> answer."""
    timed = config.get("timeout_s") is not None
    late = [node("late", "template", template="nobody answered in {{ t.timeout_s }}s")]
    return flow(
        node("q", "input", name="q"),
        node("ask", "approval", message="Refund {{ q }}?", fields=FORM, **config),
        node("yes", "template", template="approved by {{ a.by.user }}: {{ a.note }}"),
        node("no", "template", template="rejected: {{ a.note }}"),
        *(late if timed else []),
        node("out", "output", name="answer"),
        edges=[
            ("q", "value", "ask", "q"),
            ("ask", "approve", "yes", "a"),
            ("ask", "reject", "no", "a"),
            ("yes", "text", "out", "value"),
            ("no", "text", "out", "value"),
            *([("ask", "timeout", "late", "t"), ("late", "text", "out", "value")] if timed else []),
        ],
    )


async def parked(flow_: CompiledFlow) -> tuple[RunResult, list[dict]]:
    events: list[dict] = []
    result = await flow_.run({"q": "12 EUR"}, events.append)
    assert result.status == "waiting"
    assert result.state is not None
    # Nothing of the run is left in this process: only the current task.
    assert asyncio.all_tasks() == {asyncio.current_task()}
    return result, events


def stored(result: RunResult) -> dict:
    """The state as a database row would hold it."""
    return json.loads(json.dumps(result.state, allow_nan=False))


async def test_an_approval_parks_the_run_and_an_approve_from_its_json_finishes_it():
    flow_ = compiled(refund())
    result, events = await parked(flow_)
    assert result.outputs == {}
    waiting = of_type(events, "node_waiting")
    assert len(waiting) == 1 and waiting[0]["node"] == "ask"
    wait = waiting[0]["wait"]
    assert wait["message"] == "Refund 12 EUR?"
    assert wait["actions"] == ["approve", "reject"]
    assert of_type(events, "run_finished") == []
    state = stored(result)
    assert state["waiting"] == {"ask": wait}
    del flow_, result  # the web layer keeps only the JSON and the events

    flow_ = compiled(refund())
    outputs = approval.answer(
        wait, "approve", {"note": "fine", "amount": "12.5", "urgent": "on"}, by=BOB
    )
    assert outputs == {
        "approve": {
            "action": "approve",
            "note": "fine",
            "amount": 12.5,
            "tier": None,
            "urgent": True,
            "by": BOB,
        }
    }
    more: list[dict] = []
    done = await flow_.resume(state, "ask", 1, outputs, BOB, more.append, seq=events[-1]["seq"])
    assert done.status == "succeeded"
    assert done.outputs == {"answer": "approved by bob: fine"}
    assert [e["seq"] for e in more] == list(
        range(events[-1]["seq"] + 1, events[-1]["seq"] + 1 + len(more))
    )
    assert [e["type"] for e in more][:2] == ["node_resumed", "node_finished"]
    assert more[0]["by"] == BOB
    assert {e["node"] for e in of_type(more, "node_skipped")} == {"no"}

    # The state after the answer is what the driver stores: a second answer is refused.
    with pytest.raises(StepRefused, match="the run is finished"):
        await compiled(refund()).resume(done.state, "ask", 1, outputs, {"user": "carol"})


async def test_a_reject_takes_the_reject_port():
    result, events = await parked(compiled(refund()))
    wait = of_type(events, "node_waiting")[0]["wait"]
    outputs = approval.answer(wait, "reject", {"note": "too much"}, by=BOB)
    done = await compiled(refund()).resume(stored(result), "ask", 1, outputs, BOB)
    assert done.status == "succeeded"
    assert done.outputs == {"answer": "rejected: too much"}


async def test_a_timeout_takes_the_timeout_port():
    flow_ = compiled(refund(timeout_s=60))
    result, events = await parked(flow_)
    wait = of_type(events, "node_waiting")[0]["wait"]
    assert wait["timeout_s"] == 60
    outputs = approval.timed_out(wait)
    done = await compiled(refund(timeout_s=60)).resume(
        stored(result), "ask", 1, outputs, {"timeout": True}
    )
    assert done.outputs == {"answer": "nobody answered in 60.0s"}


@pytest.mark.parametrize(
    ("action", "values", "field", "message"),
    [
        ("approve", {}, "note", "'Note' is required"),
        ("approve", {"note": "x", "amount": "lots"}, "amount", "must be a number"),
        ("approve", {"note": "x", "tier": "bronze"}, "tier", "must be one of gold, silver"),
        ("approve", {"note": "x", "urgent": "maybe"}, "urgent", "must be yes or no"),
        ("approve", {"note": "x", "colour": "red"}, "colour", "no field 'colour'"),
        ("escalate", {"note": "x"}, None, "no action 'escalate'"),
    ],
)
async def test_an_answer_that_does_not_fit_the_form_names_its_field(action, values, field, message):
    _, events = await parked(compiled(refund()))
    wait = of_type(events, "node_waiting")[0]["wait"]
    with pytest.raises(approval.AnswerInvalid, match=message) as caught:
        approval.answer(wait, action, values, by=BOB)
    assert caught.value.field == field


async def test_the_run_parks_only_after_its_other_branch_finished():
    doc = refund()
    doc["nodes"].append(node("slow", "sleep", seconds=0.3))
    doc["nodes"].append(node("slowed", "output", name="slowed"))
    doc["edges"] += [
        {"source": "q", "source_port": "value", "target": "slow", "target_port": "value"},
        {"source": "slow", "source_port": "value", "target": "slowed", "target_port": "value"},
    ]
    probe = Probe()
    result, events = await parked(compiled(doc, probe))
    assert probe.calls == {"slow": 1}
    assert result.outputs == {"slowed": "12 EUR"}
    kinds = [(e["type"], e.get("node")) for e in events]
    # ask parked first; the executor went on with slow before it let go of the run.
    assert kinds.index(("node_waiting", "ask")) < kinds.index(("node_finished", "slow"))
    wait = of_type(events, "node_waiting")[0]["wait"]
    outputs = approval.answer(wait, "approve", {"note": "ok"}, by=BOB)
    done = await compiled(doc, probe).resume(stored(result), "ask", 1, outputs, BOB)
    assert done.outputs == {"slowed": "12 EUR", "answer": "approved by bob: ok"}
    assert probe.calls == {"slow": 1}  # the finished branch is not run again


async def test_an_approval_config_that_cannot_be_answered_is_a_problem():
    node_type = approval.ApprovalNode()
    config = approval.ApprovalConfig.model_validate(
        {
            "actions": ["approve", "approve", "timeout", "no way"],
            "fields": [
                {"name": "by"},
                {"name": "pick", "kind": "choice"},
                {"name": "n", "kind": "number", "choices": ["1"]},
            ],
        }
    )
    assert [str(p) for p in node_type.problems(config, None)] == [
        "action 'approve' is listed twice",
        "'timeout' is the port taken when nobody answers",
        "action 'no way' is not a name (letters, _)",
        "field 'by': that key carries the answer's",
        "choice field 'pick' has no choices",
        "field 'n' has choices but is number",
    ]


async def test_the_fold_shows_a_parked_node_as_waiting_until_its_answer():
    flow_ = compiled(refund())
    result, events = await parked(flow_)
    parked_log = fold(events)
    assert parked_log.final_states()["ask"] == "waiting"
    assert parked_log.last_visit("ask").detail == {"wait": result.state["waiting"]["ask"]}
    wait = result.state["waiting"]["ask"]
    outputs = approval.answer(wait, "reject", {"note": "no"}, by=BOB)
    await compiled(refund()).resume(
        stored(result), "ask", 1, outputs, BOB, events.append, seq=events[-1]["seq"]
    )
    answered = fold(events)
    assert answered.final_states()["ask"] == "done"
    assert answered.last_visit("ask").detail == {"wait": wait, "by": BOB}


async def test_two_waits_are_answered_one_at_a_time_and_the_run_parks_again_in_between():
    doc = flow(
        node("q", "input", name="q"),
        node("legal", "approval", message="Legal: {{ q }}?"),
        node("money", "approval", message="Money: {{ q }}?"),
        node("both", "template", template="{{ l.by.user }} and {{ m.by.user }}"),
        node("out", "output", name="answer"),
        edges=[
            ("q", "value", "legal", "q"),
            ("q", "value", "money", "q"),
            ("legal", "approve", "both", "l"),
            ("money", "approve", "both", "m"),
            ("both", "text", "out", "value"),
        ],
    )
    result, _ = await parked(compiled(doc))
    assert set(result.state["waiting"]) == {"legal", "money"}
    wait = result.state["waiting"]["legal"]
    outputs = approval.answer(wait, "approve", {}, by=BOB)
    again = await compiled(doc).resume(stored(result), "legal", 1, outputs, BOB)
    assert again.status == "waiting" and set(again.state["waiting"]) == {"money"}
    assert asyncio.all_tasks() == {asyncio.current_task()}

    carol = {"user": "carol"}
    outputs = approval.answer(again.state["waiting"]["money"], "approve", {}, by=carol)
    done = await compiled(doc).resume(stored(again), "money", 1, outputs, carol)
    assert (done.status, done.outputs) == ("succeeded", {"answer": "bob and carol"})
