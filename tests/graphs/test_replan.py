"""Planning a resume or a re-run from a node out of a recorded event log."""

from __future__ import annotations

import networkx as nx
import pytest

from graphs import Recorded, RunOptions, load
from graphs.replan import final_states, reuse_for_resume, reuse_from_node
from tests.graphs.support import Probe, compiled, flow, node, run_with
from tests.graphs.test_executor import loop, routed


def done(name: str, output: dict | None = None) -> list[dict]:
    return [
        {"type": "node_started", "node": name, "iteration": 1},
        {"type": "node_finished", "node": name, "iteration": 1, "output": output or {}},
    ]


def test_the_last_event_of_a_node_decides_its_final_state():
    events = [
        *done("loop"),
        {"type": "node_started", "node": "loop", "iteration": 2},
        {"type": "node_delta", "node": "loop", "iteration": 2, "text": "..."},
        {"type": "node_started", "node": "retried", "iteration": 1},
        {"type": "node_retrying", "node": "retried", "iteration": 1, "attempt": 1},
        {"type": "node_failed", "node": "continued", "iteration": 1, "continued": True},
        {"type": "node_failed", "node": "stopped", "iteration": 1, "cancelled": True},
        {"type": "node_skipped", "node": "other", "iteration": 1},
        {"type": "run_finished", "status": "failed"},
    ]
    assert final_states(events) == {
        "loop": "running",
        "retried": "running",
        "continued": "failed",
        "stopped": "cancelled",
        "other": "skipped",
    }


def test_the_recorded_output_is_the_last_one_a_node_finished_with():
    graph = nx.MultiDiGraph([("a", "b")])
    events = [*done("a", {"value": 1}), *done("a", {"value": 2}), *done("b", {"value": 3})]
    assert reuse_from_node(graph, iter(events), "b", source="run 5") == {
        "a": Recorded({"value": 2}, "run 5")
    }


def test_resume_reruns_what_follows_an_on_error_continue_failure():
    graph = nx.MultiDiGraph([("a", "flaky"), ("flaky", "handler"), ("a", "ok")])
    events = [
        *done("a"),
        {"type": "node_failed", "node": "flaky", "iteration": 1, "continued": True},
        *done("handler"),
        *done("ok"),
    ]
    assert sorted(reuse_for_resume(graph, events)) == ["a", "ok"]


def test_resume_reruns_nodes_never_reached_and_everything_after_them():
    graph = nx.MultiDiGraph([("a", "b"), ("b", "c"), ("x", "c"), ("x", "y")])
    events = [*done("a"), *done("b"), *done("y")]
    # x never started (the run stopped first): c and y wait on it, so they run again.
    assert sorted(reuse_for_resume(graph, events)) == ["a", "b"]


def test_resume_of_a_run_that_succeeded_reuses_everything_that_ran():
    graph = nx.MultiDiGraph([("r", "taken"), ("r", "skipped")])
    events = [*done("r"), *done("taken"), {"type": "node_skipped", "node": "skipped"}]
    assert sorted(reuse_for_resume(graph, events)) == ["r", "taken"]


def test_a_loop_with_an_unfinished_node_is_resumed_as_a_whole():
    graph = load(loop(max_iterations=3, passes_at=9))
    events = [
        *done("start", {"value": 0}),
        *done("count", {"value": 1}),
        *done("check", {"again": 1}),
        {"type": "node_failed", "node": "count", "iteration": 4, "error": "max_iterations"},
    ]
    assert list(reuse_for_resume(graph, events)) == ["start"]


def test_rerun_from_a_node_accepts_a_flow_document_and_refuses_an_unknown_node():
    doc = routed()
    events = [*done("q", {"value": "v"}), *done("route", {"code": "v"}), *done("code")]
    assert sorted(reuse_from_node(doc, events, "code")) == ["q", "route"]
    with pytest.raises(ValueError, match="the flow has no node 'nope'"):
        reuse_from_node(doc, events, "nope")


def test_nodes_missing_from_the_flow_are_not_reused():
    graph = nx.MultiDiGraph([("a", "b")])
    events = [*done("a"), *done("gone"), *done("b")]
    assert sorted(reuse_for_resume(graph, events)) == ["a", "b"]
    assert sorted(reuse_from_node(graph, events, "b")) == ["a"]


async def test_resume_of_a_failed_fan_out_reruns_only_the_failed_branch_and_the_join():
    probe = Probe()

    def doc(fail: int) -> dict:
        return flow(
            node("in", "input", name="x"),
            node("a", "sleep"),
            node("b", "sleep", seconds=0.05, fail_times=fail, retryable=False),
            node("join", "merge"),
            node("out", "output", name="y"),
            edges=[
                ("in", "value", "a", "value"),
                ("in", "value", "b", "value"),
                ("a", "value", "join", "a"),
                ("b", "value", "join", "b"),
                ("join", "value", "out", "value"),
            ],
        )

    first, events = await run_with(compiled(doc(1), probe), {"x": 1})
    assert first.status == "failed"
    probe.calls.clear()
    flow_ = compiled(doc(0), probe)
    reuse = reuse_for_resume(flow_.graph, events, source="run 2")
    assert sorted(reuse) == ["a", "in"]
    second, _ = await run_with(flow_, {"x": 1}, RunOptions(reuse=reuse))
    assert second.outputs == {"y": {"a": 1, "b": 1}}
    assert probe.calls == {"b": 1}
