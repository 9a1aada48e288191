"""The provider's prompt cache in the browser: a second run whose prompt starts with the
same long text reads it, and its run page shows how much it read and saved, on the canvas
node, in the inspector and in the run's totals."""

from __future__ import annotations

import json
import re
import uuid

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


def test_a_run_that_reads_the_prompt_cache_shows_its_share_and_saving(
    page: Page, server, model_server, errors
):
    # Its own rules, so no other test's run has cached them in the shared fake server.
    tag = uuid.uuid4().hex[:8]
    rules = f"Rules {tag}: answer in plain words, briefly and kindly. " * 400
    username, _, url = create_flow(server, flow_document(rules + "Topic: {{ topic }}"))
    log_in(page, server, username)
    page.goto(url)
    expect(page.get_by_test_id("run")).to_be_visible()

    start_run(page, {"topic": "tides"})
    expect(page.get_by_test_id("run-status")).to_have_attribute(
        "data-status", "succeeded", timeout=TIMEOUT_MS
    )
    # Another topic: the node cache misses, the prompt's start is the same.
    second = start_run(page, {"topic": "waves"})
    expect(page.get_by_test_id("run-status")).to_have_attribute(
        "data-status", "succeeded", timeout=TIMEOUT_MS
    )
    mine = [r for r in model_server.message_requests if f"Rules {tag}" in json.dumps(r)]
    assert len(mine) == 2
    heads = [r["messages"][0]["content"][0] for r in mine]
    assert all(head["cache_control"] == {"type": "ephemeral"} for head in heads)

    page.goto(f"{server.url}/runs/{second}/")
    share = re.compile(r"provider cache: 100% read, saved \$0\.\d+")
    tag_on_canvas = page.locator('[data-cell-id="write"] .sy-tag-provider-cache')
    expect(tag_on_canvas).to_have_count(1, timeout=TIMEOUT_MS)
    expect(tag_on_canvas).to_contain_text("cache 100%")
    expect(page.get_by_test_id("run-provider-cache")).to_have_text(share)
    step(page, "write").locator("button.step").click()
    expect(page.get_by_test_id("inspector-provider-cache")).to_have_text(share, timeout=TIMEOUT_MS)
