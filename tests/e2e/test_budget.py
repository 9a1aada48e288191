"""Budgets in the browser: the run form estimates the cost as its inputs change (htmx,
the fake server's count_tokens), a run started with a budget below it pauses before the
call that would exceed it, and raising the budget on the run page resumes it live, with
nothing paid twice (issue 16)."""

from __future__ import annotations

import json
import urllib.request
import uuid

from playwright.sync_api import Page, expect

from tests.e2e.conftest import log_in
from tests.e2e.test_runs import TIMEOUT_MS, create_flow, errors
from tests.webapp.test_budgets import BRANCHES, fan_out_graph

__all__ = ["errors"]  # the fixture: an uncaught exception in the page fails the test


def laid_out() -> dict:
    graph = fan_out_graph()
    for index, node in enumerate(graph["nodes"]):
        node["position"] = {"x": 40 + 260 * (index // 3), "y": 40 + 140 * (index % 3)}
    return graph


def calls_about(model_server, word: str) -> list[dict]:
    with urllib.request.urlopen(f"{model_server.url}/_fake/requests", timeout=10) as response:
        log = json.load(response)
    return [
        r
        for r in log
        if r["path"] == "/v1/messages" and word in json.dumps(r["body"].get("messages"))
    ]


def test_the_estimate_follows_the_inputs_and_a_paused_run_resumes_when_raised(
    page: Page, server, model_server, errors
):
    word = f"tea{uuid.uuid4().hex[:8]}"
    username, _, url = create_flow(server, laid_out())
    log_in(page, server, username)
    page.goto(url)
    page.get_by_test_id("run").click()
    estimate = page.get_by_test_id("run-estimate")
    expect(estimate).to_contain_text("Fill in the inputs", timeout=TIMEOUT_MS)

    page.locator('[data-input-name="q"]').fill(word)
    # Four prompts of three words counted, each with up to 100 reply tokens.
    expect(page.get_by_test_id("estimate-total")).to_have_text(
        "Estimated cost: $0.006036", timeout=TIMEOUT_MS
    )
    page.get_by_test_id("run-budget").fill("0.0017")
    expect(page.get_by_test_id("estimate-over-budget")).to_be_visible(timeout=TIMEOUT_MS)

    with page.expect_response(
        lambda r: r.url.endswith("/runs") and r.request.method == "POST"
    ) as info:
        page.get_by_test_id("run-submit").click()
    assert info.value.status == 201, info.value.text()
    run_id = info.value.json()["id"]

    page.goto(f"{server.url}/runs/{run_id}/")
    expect(page.get_by_test_id("budget-paused")).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.get_by_test_id("budget-figures")).to_have_text("$0.000252 spent of $0.0017")
    assert len(calls_about(model_server, word)) == BRANCHES - 1

    page.get_by_test_id("budget-input").fill("1")
    page.get_by_test_id("budget-raise").click()
    expect(page.get_by_test_id("run-status")).to_have_attribute(
        "data-status", "succeeded", timeout=TIMEOUT_MS
    )
    expect(page.get_by_test_id("budget-paused")).to_have_count(0, timeout=TIMEOUT_MS)
    assert len(calls_about(model_server, word)) == BRANCHES, "nothing is paid twice"
