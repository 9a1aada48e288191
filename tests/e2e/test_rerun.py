"""Re-run from a node in the browser: from a finished run's inspector, with an edited
prompt, to the new run's page; the fake Anthropic API's log shows which nodes ran."""

from __future__ import annotations

import json
import re
import uuid

from playwright.sync_api import Page, expect

from tests.e2e.test_runs import (
    TIMEOUT_MS,
    create_flow,
    errors,  # noqa: F401 - the fixture
    log_in,
    start_run,
    step,
)


def chain(tag: str) -> dict:
    """topic -> draft -> critique -> revise -> text; every prompt carries `tag`."""

    def node(id_: str, type_: str, x: int, config: dict) -> dict:
        return {"id": id_, "type": type_, "config": config, "position": {"x": x, "y": 120}}

    def edge(source: str, target: str, source_port: str, target_port: str) -> dict:
        return {
            "source": source,
            "target": target,
            "source_port": source_port,
            "target_port": target_port,
        }

    return {
        "graph": {"name": "Re-run"},
        "nodes": [
            node("topic", "input", 40, {"name": "topic", "default": "queues"}),
            node("draft", "llm", 280, {"prompt": f"draft {tag}: {{{{ topic }}}}"}),
            node("critique", "llm", 520, {"prompt": f"critique {tag}: {{{{ draft }}}}"}),
            node("revise", "llm", 760, {"prompt": f"revise {tag}: {{{{ critique }}}}"}),
            node("out", "output", 1000, {"name": "text"}),
        ],
        "edges": [
            edge("topic", "draft", "value", "topic"),
            edge("draft", "critique", "text", "draft"),
            edge("critique", "revise", "text", "critique"),
            edge("revise", "out", "text", "value"),
        ],
    }


def calls_since(model_server, start: int, tag: str) -> list[str]:
    """The nodes (first word of their prompt) of this test's model calls after `start`."""
    prompts = [b["messages"][-1]["content"] for b in model_server.message_requests[start:]]
    return [p.split()[0] for p in prompts if tag in p]


def test_rerun_from_a_node_with_an_edited_prompt(
    page: Page,
    server,
    model_server,
    errors,  # noqa: F811
):
    tag = uuid.uuid4().hex[:8]
    username, _, url = create_flow(server, chain(tag))
    log_in(page, server, username)
    page.goto(url)
    expect(page.get_by_test_id("run")).to_be_visible()
    before = len(model_server.message_requests)
    parent_id = start_run(page)
    expect(page.get_by_test_id("run-status")).to_have_attribute(
        "data-status", "succeeded", timeout=TIMEOUT_MS
    )
    assert calls_since(model_server, before, tag) == ["draft", "critique", "revise"]

    page.goto(f"{server.url}/runs/{parent_id}/")
    step(page, "critique").get_by_role("button").click()
    inspector = page.locator("[data-node-card]")
    expect(inspector).to_contain_text("Re-run from this node")
    inspector.get_by_test_id("rerun-from").click()
    config = inspector.get_by_test_id("rerun-config")
    assert json.loads(config.input_value()) == {"prompt": f"critique {tag}: {{{{ draft }}}}"}
    edited = {"prompt": f"critique {tag}: in one line, {{{{ draft }}}}"}
    config.fill(json.dumps(edited))
    before = len(model_server.message_requests)
    inspector.get_by_test_id("rerun-from-submit").click()

    page.wait_for_url(re.compile(r"/runs/(\d+)/$"))
    child_id = int(page.url.rstrip("/").rsplit("/", 1)[1])
    assert child_id != parent_id
    relation = page.get_by_test_id("run-relation")
    expect(relation).to_contain_text(f"from node critique of #{parent_id}")
    expect(page.get_by_test_id("run-status")).to_have_attribute(
        "data-status", "succeeded", timeout=TIMEOUT_MS
    )
    # Only the edited node and what follows it called the model, with the edit.
    assert calls_since(model_server, before, tag) == ["critique", "revise"]
    assert "in one line" in model_server.message_requests[before]["messages"][-1]["content"]

    # Upstream nodes were reused from the parent, and the inspector says so.
    step(page, "draft").get_by_role("button").click()
    expect(page.locator('[data-node-card="draft"]').get_by_test_id("badge-reused")).to_be_visible()
    expect(page.locator('[data-node-card="draft"]')).to_contain_text(f"run {parent_id}")

    # The parent lists its re-run.
    page.goto(f"{server.url}/runs/{parent_id}/")
    expect(page.get_by_test_id("run-children")).to_contain_text(f"#{child_id}")


def test_a_second_identical_run_is_served_from_the_cache_and_says_so(
    page: Page,
    server,
    model_server,
    errors,  # noqa: F811
):
    tag = uuid.uuid4().hex[:8]
    username, _, url = create_flow(server, chain(tag))
    log_in(page, server, username)
    page.goto(url)
    expect(page.get_by_test_id("run")).to_be_visible()
    start_run(page)
    expect(page.get_by_test_id("run-status")).to_have_attribute(
        "data-status", "succeeded", timeout=TIMEOUT_MS
    )

    before = len(model_server.message_requests)
    second = start_run(page)
    expect(page.get_by_test_id("run-status")).to_have_attribute(
        "data-status", "succeeded", timeout=TIMEOUT_MS
    )
    assert calls_since(model_server, before, tag) == []

    page.goto(f"{server.url}/runs/{second}/")
    # Every model node carries the "cached" tag on the canvas, and the inspector says so.
    for node in ("draft", "critique", "revise"):
        tag_on_canvas = page.locator(f'[data-cell-id="{node}"] .sy-tag-cached')
        expect(tag_on_canvas).to_have_count(1, timeout=TIMEOUT_MS)
    step(page, "draft").get_by_role("button").click()
    expect(page.locator('[data-node-card="draft"]').get_by_test_id("badge-cached")).to_be_visible()

    # "Ignore cache" calls the model again.
    page.goto(url)
    page.get_by_test_id("run").click()
    page.get_by_test_id("run-ignore-cache").check()
    before = len(model_server.message_requests)
    with page.expect_response(
        lambda r: r.url.endswith("/runs") and r.request.method == "POST"
    ) as info:
        page.get_by_test_id("run-submit").click()
    assert info.value.status == 201
    expect(page.get_by_test_id("run-status")).to_have_attribute(
        "data-status", "succeeded", timeout=TIMEOUT_MS
    )
    assert calls_since(model_server, before, tag) == ["draft", "critique", "revise"]
