"""graphs.log: the one fold of an event log, against the golden logs and step by step."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from graphs.log import RunLog, fold

LOGS = Path(__file__).parents[1] / "fixtures" / "logs"
GOLDEN = sorted(LOGS.glob("*.json"))


def golden(name: str) -> dict:
    return json.loads((LOGS / f"{name}.json").read_text())


def test_the_golden_logs_cover_every_scenario_the_readers_meet():
    names = {path.stem for path in GOLDEN}
    assert names >= {
        "chain", "router", "loop", "fanout", "map", "failure", "on_error_continue",
        "retries", "cancel", "cache_hit", "reused", "interrupted", "old_schemaless",
        "thinking", "approval", "approval_parked", "budget",
    }  # fmt: skip


@pytest.mark.parametrize("path", GOLDEN, ids=lambda path: path.stem)
def test_every_golden_log_folds_to_its_recorded_state(path):
    document = json.loads(path.read_text())
    assert fold(document["events"]).to_json() == document["fold"]


@pytest.mark.parametrize("path", GOLDEN, ids=lambda path: path.stem)
def test_folding_event_by_event_reads_the_same_state_at_every_step(path):
    events = json.loads(path.read_text())["events"]
    log = RunLog()
    for i, event in enumerate(events, start=1):
        assert log.apply(event)
        state = log.to_json()
        # JSON-exact: what a browser gets is what the fold holds.
        assert json.loads(json.dumps(state)) == state
        assert state == fold(events[:i]).to_json()


def test_a_map_in_a_map_reads_the_inner_maps_items_in_the_outer_item():
    state = fold(golden("map_nested")["events"]).to_json()
    items = state["nodes"]["each"][0]["items"]
    # Each level's item_events: 1 outer item streams, 2 of its inner map's 3 items.
    assert list(items) == ["0"]
    deep = items["0"]["maps"]["deep"]
    assert sorted(deep) == ["0", "1"]
    assert deep["1"]["status"] == "done" and deep["1"]["text"].endswith("Spell bee")
    assert deep["1"]["usage"]["output_tokens"] > 0
    # The outer item's own state is its own nodes' (the inner map's tokens count once).
    assert items["0"]["node"] == "deep" and items["0"]["text"] == ""
    # A log without nested items folds without the key.
    flat = fold(golden("map_items")["events"]).to_json()["nodes"]["each"][0]["items"]
    assert "maps" not in flat["0"]


def test_a_chain_reads_each_visit_done_with_its_text_model_and_usage():
    state = golden("chain")["fold"]
    assert state["status"] == "succeeded" and state["schema"] == 1
    draft = state["nodes"]["draft"]
    assert len(draft) == 1 and draft[0]["status"] == "done"
    assert draft[0]["model"] == "offline" and draft[0]["usage"]["output_tokens"] > 0
    assert draft[0]["text"] == draft[0]["output"]["text"]
    total = sum(v[0]["usage"]["output_tokens"] for v in state["nodes"].values() if v[0]["usage"])
    assert state["usage"]["output_tokens"] == total


def test_a_router_skips_the_route_not_taken():
    states = fold(golden("router")["events"]).final_states()
    assert sorted(states.values()).count("skipped") == 1


def test_a_loop_keeps_one_visit_per_iteration():
    state = golden("loop")["fold"]
    fixes = state["nodes"]["fix"]
    assert [v["iteration"] for v in fixes] == list(range(1, len(fixes) + 1))
    assert len(fixes) >= 2 and all(v["status"] == "done" for v in fixes)


def test_a_map_reads_its_progress():
    each = golden("map")["fold"]["nodes"]["each"][0]
    assert each["progress"] == {"done": 5, "total": 5}


def test_retries_count_attempts_and_keep_only_the_last_attempts_text():
    ask = golden("retries")["fold"]["nodes"]["ask"][0]
    assert ask["attempts"] == 3 and [r["attempt"] for r in ask["retries"]] == [1, 2]
    assert ask["text"] == ask["output"]["text"]


def test_a_cancelled_run_cancels_the_waiting_node_and_keeps_the_finished_one():
    log = fold(golden("cancel")["events"])
    assert log.status == "cancelled"
    assert log.final_states()["slow"] == "cancelled" and log.final_states()["fast"] == "done"
    assert log.open_visits() == []


def test_an_interrupted_log_before_its_closing_has_the_visit_recover_runs_closed():
    events = golden("interrupted")["events"]
    closing = [e for e in events if e["type"] == "node_failed"]
    before = fold(events[: -len(closing) - 1])
    assert before.open_visits() == [(e["node"], e["iteration"]) for e in closing]
    assert fold(events).status == "failed" and fold(events).open_visits() == []


def test_a_cache_hit_reads_its_source_and_the_usage_it_saved():
    state = golden("cache_hit")["fold"]
    ask = state["nodes"]["ask"][0]
    assert ask["cached"]["source"] == "run 41" and ask["cached"]["run"] == 41
    assert ask["cached"]["usage"]["output_tokens"] > 0 and ask["saved_usd"] > 0
    assert ask["text"] == "hello there" and state["cache_hits"] == 1


def test_reused_nodes_read_their_source_run_in_old_and_new_logs():
    for name in ("reused", "old_schemaless"):
        nodes = golden(name)["fold"]["nodes"]
        assert nodes["outline"][0]["reused"] == {"source": "run 42", "run": 42}
        assert nodes["draft"][0]["reused"] is None
    assert golden("old_schemaless")["fold"]["schema"] == 1


def test_a_source_given_only_as_a_run_id_reads_as_run_n():
    log = fold([{"type": "node_finished", "node": "a", "reused": {"run": 7}}])
    assert log.visits("a")[0].reused == {"source": "run 7", "run": 7}


def test_an_event_seen_again_changes_nothing():
    log = RunLog()
    delta = {"seq": 2, "type": "node_delta", "node": "a", "iteration": 1, "text": "x"}
    assert log.apply({"seq": 1, "type": "run_started"}) and log.apply(delta)
    assert not log.apply(delta)
    assert log.visits("a")[0].text == "x" and log.last_seq == 2


def test_a_failure_whose_error_went_on_is_failed_and_continued():
    ask = golden("on_error_continue")["fold"]["nodes"]["ask"][0]
    assert ask["status"] == "failed" and ask["continued"] and ask["error"]
    assert golden("on_error_continue")["fold"]["status"] == "succeeded"


def test_a_node_failing_before_it_started_is_a_visit_with_an_end_and_no_start():
    log = fold([{"type": "node_failed", "node": "a", "iteration": 6, "ts": 5.0, "error": "max"}])
    (visit,) = log.visits("a")
    assert (visit.iteration, visit.status, visit.started_ts, visit.ended_ts) == (
        6,
        "failed",
        None,
        5.0,
    )


def test_a_takeover_starts_the_visits_stream_over():
    log = fold(
        [
            {"type": "node_started", "node": "a", "ts": 1.0},
            {"type": "node_delta", "node": "a", "text": "half"},
            {"type": "node_retrying", "node": "a", "attempt": 1, "takeover": True},
            {"type": "node_started", "node": "a", "ts": 2.0},
            {"type": "node_delta", "node": "a", "text": "whole"},
        ]
    )
    (visit,) = log.visits("a")
    assert visit.text == "whole" and visit.started_ts == 2.0 and visit.retries[0]["takeover"]


def test_run_totals_add_up_the_nodes_until_the_run_gives_its_own():
    usage = {"input_tokens": 2, "output_tokens": 3}
    log = fold(
        [
            {"type": "run_started", "ts": 1.0},
            {"type": "node_finished", "node": "a", "model": "m", "usage": usage, "cost_usd": 0.5},
            {"type": "node_finished", "node": "b", "model": "m", "usage": usage, "cost_usd": 0.25},
        ]
    )
    assert log.usage == {"input_tokens": 4, "output_tokens": 6} and log.cost_usd == 0.75
    assert log.usage_by_model == {"m": {"input_tokens": 4, "output_tokens": 6}}
    log.apply({"type": "run_finished", "ts": 3.5, "status": "failed", "usage": usage})
    assert log.usage == usage and log.duration_s == 2.5 and log.cost_usd == 0.75


def test_events_before_run_started_belong_to_no_run():
    log = fold([{"type": "node_started", "node": "a"}, {"type": "run_started", "ts": 1.0}])
    assert log.nodes() == [] and log.status == "running"


def test_thinking_reads_apart_from_the_text_and_its_tokens_are_counted_and_priced():
    document = golden("thinking")
    solve = document["fold"]["nodes"]["solve"][0]
    assert solve["thinking"].startswith("fake thinking about: What is 17*23?")
    assert "thinking" not in solve["text"] and solve["text"].endswith("tool results: 391")
    usage = solve["usage"]
    assert 0 < usage["thinking_tokens"] < usage["output_tokens"]
    # Billed as output: the cost is the output tokens (thinking included) at output price.
    dollars = (usage["input_tokens"] * 3 + usage["output_tokens"] * 15) / 1e6
    assert solve["cost_usd"] == round(dollars, 6)
    assert document["fold"]["usage"]["thinking_tokens"] == usage["thinking_tokens"]
    # Logs without thinking keep the two figures they always had.
    assert set(golden("chain")["fold"]["usage"]) == {"input_tokens", "output_tokens"}


def test_a_retry_starts_the_thinking_over_and_thinking_tokens_join_the_totals():
    log = fold(
        [
            {"type": "run_started", "ts": 1.0},
            {"type": "node_started", "node": "a"},
            {"type": "node_thinking", "node": "a", "text": "first "},
            {"type": "node_retrying", "node": "a", "attempt": 1},
            {"type": "node_thinking", "node": "a", "text": "second "},
            {"type": "node_thinking", "node": "a", "text": "try"},
            {"type": "node_delta", "node": "a", "text": "answer"},
            {"type": "node_finished", "node": "b", "usage": {"input_tokens": 1}},
            {
                "type": "node_finished",
                "node": "a",
                "usage": {"input_tokens": 1, "output_tokens": 9, "thinking_tokens": 7},
            },
        ]
    )
    (visit,) = log.visits("a")
    assert (visit.thinking, visit.text) == ("second try", "answer")
    assert log.usage == {"input_tokens": 2, "output_tokens": 9, "thinking_tokens": 7}


def test_a_breakpoint_shows_the_paused_inputs_then_the_edited_ones_it_ran_on():
    events = golden("breakpoint")["events"]
    paused = next(i for i, e in enumerate(events) if e["type"] == "node_waiting") + 1
    log = fold(events[:paused])
    visit = log.last_visit("a")
    assert (visit.status, visit.inputs) == ("waiting", {"x": "hi"})
    assert visit.detail == {"wait": {"kind": "breakpoint", "inputs": {"x": "hi"}}}
    resumed = fold(events[: paused + 1]).last_visit("a")
    assert (resumed.status, resumed.inputs) == ("running", {"x": "edited"})
    answered = fold(events)
    assert answered.last_visit("a").inputs == {"x": "edited"}
    assert answered.final_states() == {"q": "done", "a": "done", "b": "done", "out": "done"}
    assert answered.outputs == {"answer": "b(a(edited))"}


def test_a_budget_pause_reads_its_figures_until_the_raise_resumes_the_run():
    events = golden("budget")["events"]
    paused_at = next(i for i, e in enumerate(events) if e["type"] == "run_paused") + 1
    log = fold(events[:paused_at])
    assert log.paused == {
        "node": "ask2",
        "iteration": 1,
        "spent_usd": 46.0,
        "remaining_usd": 4.0,
        "needed_usd": 24.0,
        "budget_usd": 50,
    }
    assert log.budget_usd == 50 and log.final_states()["ask2"] == "waiting"
    assert log.final_states()["ask0"] == "done"
    resumed = fold(events)
    assert resumed.paused is None and resumed.budget_usd == 100
    assert resumed.final_states()["ask2"] == "done" and resumed.status == "succeeded"


def statuses(events: list[dict]) -> dict[int, str]:
    """seq -> the run's status once that event is folded in, one event at a time."""
    log, seen = RunLog(), {}
    for event in events:
        log.apply(event)
        seen[event["seq"]] = log.status
    return seen


def seq_of(events: list[dict], kind: str, node: str | None = None) -> int:
    return next(e["seq"] for e in events if e["type"] == kind and e.get("node", node) == node)


def test_a_parked_run_reads_waiting_until_its_answer_then_running_to_its_end():
    events = golden("approval")["events"]
    seen = statuses(events)
    assert seen[seq_of(events, "node_started", "ask")] == "running"
    assert seen[seq_of(events, "node_waiting", "ask")] == "waiting"
    assert seen[seq_of(events, "node_resumed", "ask")] == "running"
    assert seen[events[-1]["seq"]] == golden("approval")["fold"]["status"] == "succeeded"


def test_a_run_waits_only_while_every_open_visit_waits():
    document = golden("approval_parked")
    events = document["events"]
    seen = statuses(events)
    # note runs beside the two waiting approvals: the run runs.
    assert seen[seq_of(events, "node_started", "note")] == "running"
    resumed = seq_of(events, "node_resumed", "ask")
    assert seen[resumed - 1] == "waiting", "parked: nothing but the approvals is open"
    assert seen[resumed] == "running"
    # check still waits once ask's branch is done: parked again, and the fold says so.
    assert document["fold"]["status"] == "waiting"
    assert fold(events).final_states()["check"] == "waiting"


def test_a_waiting_run_cancelled_reads_cancelled():
    events = golden("approval")["events"]
    parked = [e for e in events if e["seq"] <= seq_of(events, "node_waiting", "ask")]
    seq = parked[-1]["seq"]
    log = fold(parked)
    assert log.status == "waiting"
    log.apply({"seq": seq + 1, "type": "node_failed", "node": "ask", "cancelled": True})
    assert log.status == "running", "no visit waits any more (the run_finished follows)"
    log.apply({"seq": seq + 2, "type": "run_finished", "status": "cancelled"})
    assert log.status == "cancelled"
