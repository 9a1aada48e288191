"""Thinking in the browser: a node says it is thinking while its thinking streams, and the
inspector folds the thinking away, apart from the answer, until it is opened."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import log_in
from tests.e2e.test_runs import TIMEOUT_MS, create_flow, flow_document, start_run, step


@pytest.fixture
def errors(page: Page) -> list[str]:
    """Every uncaught error in the page; the test fails if there is any."""
    seen: list[str] = []
    page.on("pageerror", lambda error: seen.append(str(error)))
    yield seen
    assert seen == []


def thinking_flow(prompt: str) -> dict:
    document = flow_document(prompt)
    write = next(n for n in document["nodes"] if n["id"] == "write")
    write["config"].update(max_tokens=4096, thinking="enabled", thinking_budget=2048)
    return document


def test_a_thinking_node_says_so_and_the_inspector_keeps_its_thinking_apart(
    page: Page, server, model_server, errors
):
    username, _, url = create_flow(
        server, thinking_flow("Think about {{ topic }} slowly. #fake:chunk_delay=0.15")
    )
    log_in(page, server, username)
    page.goto(url)
    start_run(page, {"topic": "tiny queues"})

    # While only thinking has streamed, the run panel says the node is thinking.
    expect(step(page, "write")).to_contain_text("thinking…", timeout=TIMEOUT_MS)
    expect(step(page, "write")).to_have_attribute("data-status", "done", timeout=TIMEOUT_MS)
    expect(page.get_by_test_id("outputs")).to_contain_text(
        "fake reply: Think about tiny queues slowly."
    )
    # The fake server is shared by the worker's browser tests (test_runs.py also asks about
    # tiny queues): this test's call is the one with its own prompt, made once.
    mine = [r for r in model_server.message_requests if "Think about tiny queues" in json.dumps(r)]
    assert len(mine) == 1, mine
    [sent] = mine
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 2048}

    step(page, "write").locator("button.step").click()
    thinking = page.get_by_test_id("inspector-thinking")
    expect(thinking).to_be_visible(timeout=TIMEOUT_MS)
    # Folded: the summary shows, the thinking does not until it is opened.
    body = thinking.locator("pre.thinking")
    expect(body).to_be_hidden()
    thinking.locator("summary").click()
    expect(body).to_have_text(
        "fake thinking about: Think about tiny queues slowly. #fake:chunk_delay=0.15"
    )
    inspector = page.get_by_test_id("inspector")
    output = inspector.locator("details", has=page.locator("summary", has_text="Output"))
    expect(output).to_contain_text("fake reply: Think about tiny queues slowly.")
    expect(output).not_to_contain_text("fake thinking")
    expect(inspector).to_contain_text("of them thinking")
