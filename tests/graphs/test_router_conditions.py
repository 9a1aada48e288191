"""A router in condition mode: the first rule whose expression holds over its ports wins.

Expressions run as templates do: inline when provably cheap, else in the sandbox's worker
processes under its limits (real processes here, with half-second budgets).
"""

from __future__ import annotations

import asyncio

import pytest

from graphs import expressions, validate
from graphs.document import load
from graphs.errors import FlowInvalid
from graphs.sandbox import SandboxSettings
from tests.graphs.support import compiled, finished, flow, node, run, services, statuses

QUICK = SandboxSettings(workers=1, timeout_s=0.5, memory_mib=256)


def gate(*conditions: tuple[str, str], default: str | None = "revise", **ports: str) -> dict:
    """Run inputs draft (into port input) and ``ports`` (input name -> port) -> router."""
    config = {
        "mode": "condition",
        "routes": ["accept", "revise"],
        "conditions": [{"route": r, "expression": e} for r, e in conditions],
    }
    if default is not None:
        config["default"] = default
    inputs = {"draft": "input", **ports}
    return flow(
        *(node(name, "input", name=name) for name in inputs),
        node("gate", "router", **config),
        node("accepted", "output", name="accepted"),
        node("revised", "output", name="revised"),
        edges=[
            *((name, "value", "gate", port) for name, port in inputs.items()),
            ("gate", "accept", "accepted", "value"),
            ("gate", "revise", "revised", "value"),
        ],
    )


async def test_the_first_condition_that_holds_sends_the_input_down_its_route():
    doc = gate(("revise", 'verdict == "FAIL"'), ("accept", 'verdict == "PASS"'), verdict="verdict")
    result, events = await run(doc, {"draft": "a haiku", "verdict": "PASS"})
    assert result.outputs == {"accepted": "a haiku"}
    assert statuses(events)["revised"] == "skipped"
    [done] = finished(events, "gate")
    assert done["output"] == {"accept": "a haiku"}


async def test_rules_are_tried_in_order_and_the_first_match_wins():
    doc = gate(("revise", "score < 9"), ("accept", "score >= 7"), score="score")
    result, _ = await run(doc, {"draft": "d", "score": 8})
    assert result.outputs == {"revised": "d"}


async def test_when_no_condition_holds_the_default_route_is_taken():
    doc = gate(("accept", "score >= 7"), score="score")
    result, _ = await run(doc, {"draft": "d", "score": 3})
    assert result.outputs == {"revised": "d"}


async def test_no_match_and_no_default_fails_the_node_naming_the_routes():
    doc = gate(("accept", "score >= 7"), default=None, score="score")
    result, _ = await run(doc, {"draft": "d", "score": 3})
    assert result.status == "failed"
    assert result.failed_node == "gate"
    assert result.error == (
        "node 'gate' failed: no route matched and there is no default (routes: accept, revise)"
    )


async def test_values_are_json_so_an_objects_fields_and_a_lists_items_can_be_tested():
    doc = gate(
        ("accept", 'verdict.score >= 7 and "style" not in verdict.issues'), verdict="verdict"
    )
    good = {"score": 8, "issues": []}
    result, _ = await run(doc, {"draft": "d", "verdict": good})
    assert result.outputs == {"accepted": "d"}
    result, _ = await run(doc, {"draft": "d", "verdict": {"score": 8, "issues": ["style"]}})
    assert result.outputs == {"revised": "d"}


async def test_the_input_port_itself_can_be_tested():
    doc = gate(("accept", '"code" in input.labels'))
    result, _ = await run(doc, {"draft": {"labels": ["code", "bug"]}})
    assert result.outputs == {"accepted": {"labels": ["code", "bug"]}}


def test_the_ports_are_input_plus_the_names_the_expressions_read():
    doc = gate(
        ("accept", 'verdict == "PASS" and score | int >= 7'),
        ("revise", "labels | length > 2"),
        verdict="verdict",
        score="score",
        labels="labels",
    )
    flow_ = compiled(doc)
    assert set(flow_.nodes["gate"].in_ports) == {"input", "verdict", "score", "labels"}


def test_an_edge_into_a_port_no_expression_reads_is_refused():
    doc = gate(("accept", "score >= 7"), score="score", extra="verdict")
    problems = [str(p) for p in validate(load(doc), services())]
    assert any("'verdict'" in p and "gate" in p for p in problems), problems


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("score >=", "syntax error: unexpected end of the expression"),
        ('verdict = "PASS"', "syntax error: unexpected '=' after the expression"),
        ("a }}{% for x in y %}{{ x", "syntax error: unexpected '}}' after the expression"),
        ("verdict.__class__", "uses '__class__', which the sandbox forbids"),
    ],
)
def test_a_broken_expression_is_refused_when_the_flow_is_checked_naming_rule_and_route(
    expression, message
):
    doc = gate(("accept", "score >= 7"), ("revise", expression), score="score")
    problems = [str(p) for p in validate(load(doc), services())]
    assert f"node 'gate': rule 2 (route 'revise'): {message}" in problems
    with pytest.raises(FlowInvalid):
        compiled(doc)


def test_a_condition_naming_an_unknown_route_is_refused():
    doc = gate(("approve", "score >= 7"), score="score")
    problems = [str(p) for p in validate(load(doc), services())]
    assert "node 'gate': rule names route 'approve', which is not in routes" in problems


def test_condition_mode_needs_conditions_or_a_default():
    doc = gate(default=None)
    problems = [str(p) for p in validate(load(doc), services())]
    assert "node 'gate': condition mode needs conditions or a default route" in problems


async def test_an_expression_failing_at_run_time_fails_the_node_naming_rule_and_route():
    doc = gate(("accept", "verdict.score >= 7"), verdict="verdict")
    result, _ = await run(doc, {"draft": "d", "verdict": {"grade": "A"}})
    assert result.status == "failed"
    assert result.error == (
        "node 'gate' failed: conditions: rule 1 (route 'accept'): "
        "'dict object' has no attribute 'score'"
    )


@pytest.mark.parametrize(
    "expression",
    ['verdict == "PASS"', "value.score >= 7", '"code" in labels', "not (a or b) and c | length"],
)
def test_conditions_that_only_compare_their_inputs_run_inline(expression):
    values = {"verdict": "x", "value": {"score": 1}, "labels": [], "a": 0, "b": 0, "c": "s"}
    assert expressions.runs_inline(expression, values)


@pytest.mark.parametrize(
    ("expression", "values"),
    [
        ("text.split() | length > 3", {"text": "a b c d"}),  # a call: not provably bounded
        ("text | sort | first == 'a'", {"text": "ba"}),  # a filter with no known bound
        ('verdict == "PASS"', {"verdict": "x" * 2_000_000}),  # too large an input
    ],
)
def test_conditions_whose_work_is_not_provably_small_go_to_the_sandbox(expression, values):
    assert not expressions.runs_inline(expression, values)


@pytest.mark.parametrize(
    ("expression", "values", "expected"),
    [
        ("text.split() | length > 3", {"text": "a b c d"}, True),
        ("text | sort | first == 'a'", {"text": "ba"}, True),
        ("value.issues | select('equalto', 'style') | list", {"value": {"issues": ["x"]}}, False),
    ],
)
async def test_sandboxed_conditions_hold_as_they_would_inline(expression, values, expected):
    assert expressions.holds(expression, values) is expected
    assert await expressions.holds_async(expression, values, QUICK) is expected


async def test_a_runaway_condition_fails_within_the_sandbox_budget_and_the_loop_keeps_ticking():
    # 20 million steps of the unique filter: seconds of CPU, in a worker process.
    doc = gate(("accept", "text.center(20000000) | unique | list | length > 0"), text="text")
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    result = await compiled(doc, sandbox=QUICK).run({"draft": "d", "text": "x"})
    ticker.cancel()
    assert result.status == "failed"
    assert result.error == (
        "node 'gate' failed: conditions: rule 1 (route 'accept'): the expression exceeded 0.5 s"
    )
    # The loop ran other coroutines meanwhile: ~50 ticks of 10 ms fit in half a second.
    assert ticks >= 20


async def test_a_condition_that_allocates_past_the_limit_fails_cleanly():
    doc = gate(("accept", "text.center(400000000) | length > 0"), text="text")
    result = await compiled(doc, sandbox=QUICK).run({"draft": "d", "text": "x"})
    assert result.error == (
        "node 'gate' failed: conditions: rule 1 (route 'accept'): "
        "the expression exceeded the 256 MiB memory limit"
    )


def test_condition_routers_are_not_cached_by_default_like_match_routers():
    router = services().registry["router"]
    config = router.Config.model_validate({"routes": ["a"], "mode": "condition", "default": "a"})
    assert router.cacheable(config, services()) is False
