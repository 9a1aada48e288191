"""The evaluator-optimizer example (examples/evaluate.json) as a new user meets it: opened
from the flow list, its appending loop-back edge drawn "+=", run on the fake model: a
structured verdict read by a condition router sends the first draft round again with its
feedback, the loop's second pass passes, and the accepted draft is the output."""

from __future__ import annotations

import json

from playwright.sync_api import Page, expect

from tests.e2e.conftest import Server
from tests.e2e.test_example_classify import CARRIED, open_example
from tests.e2e.test_loop_edges import click_label, edge_label
from tests.e2e.test_runs import TIMEOUT_MS, start_run, step
from tests.fakes.anthropic_server import FakeResponse

# The canvas and the steps count a node's passes: a multiplication sign, then 2.
TWICE = "\u00d72"
HAIKU = "Tasks wait in a row\nworkers take them one by one\nthe queue empties out"


def verdict(verdict: str, feedback: str) -> FakeResponse:
    return FakeResponse(text=json.dumps({"verdict": verdict, "feedback": feedback}))


def test_the_evaluate_example_loops_with_its_history_until_the_verdict_passes(
    page: Page, server: Server, model_server
) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    open_example(page, server, "Generate, evaluate, revise")

    # The loop-back edge accumulates: drawn "+=", and its form says so.
    expect(edge_label(page)).to_have_text("+=")
    click_label(page)
    form = page.locator('form[data-testid="edge-form"][data-ready]')
    expect(form.get_by_test_id("edge-ends")).to_have_text("gate.revise → generate.attempts")
    expect(form.get_by_test_id("edge-append")).to_be_checked()
    expect(page.get_by_test_id("warnings")).to_be_hidden()

    before = len(model_server.message_requests)
    model_server.enqueue(
        FakeResponse(text="Queues wait"),
        verdict("FAIL", "A haiku has three lines."),
        FakeResponse(text=HAIKU),
        verdict("PASS", ""),
    )
    start_run(page)
    expect(page.get_by_test_id("run-status")).to_have_attribute(
        "data-status", "succeeded", timeout=TIMEOUT_MS
    )

    # Two passes round the loop, each node's count on the canvas; then the accepted draft.
    for node in ("generate", "evaluate", "attempt", "gate"):
        expect(page.locator(f'[data-cell-id="{node}"] .sy-badge')).to_contain_text(TWICE)
    for node in ("final", "result"):
        expect(step(page, node)).to_have_attribute("data-status", "done")
    expect(step(page, "generate")).to_contain_text(TWICE)
    assert page.evaluate(f"({CARRIED})('gate')") == {"revise": True, "accept": True}
    expect(page.get_by_test_id("outputs")).to_contain_text("workers take them one by one")

    # The second draft was written with the first attempt and its feedback in view; the
    # evaluator answered in its schema both times.
    sent = model_server.message_requests[before:]
    assert len(sent) == 4
    first, second = sent[0]["messages"][0]["content"], sent[2]["messages"][0]["content"]
    assert "earlier attempts" not in first
    assert (
        "<attempt>\nQueues wait\n</attempt>\n<feedback>\nA haiku has three lines.\n</feedback>"
        in second
    )
    verdicts = [r["output_config"]["format"]["schema"]["properties"]["verdict"] for r in sent[1::2]]
    assert [v["enum"] for v in verdicts] == [["PASS", "FAIL"], ["PASS", "FAIL"]]
    assert errors == []
