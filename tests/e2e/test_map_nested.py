"""A map in a map on the run page, in a real browser: drilled into the outer map's inner
flow, then into the inner map, the canvas paints the inner map's items as the outer item
ran them, live while the run goes and in replay (their events come nested in the outer
item's node_item events)."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.e2e.conftest import Server, log_in
from tests.e2e.test_replay import PLAYER, wait_painted
from tests.e2e.test_runs import TIMEOUT_MS, canvas_status, create_flow, errors, start_run

__all__ = ["errors"]  # a fixture
DONE = re.compile(r"\bst-done\b")


def nested_document(chunk_delay: float) -> dict:
    """Groups of words: the outer map `each` takes a group, its inner map `deep` a word,
    whose model call streams slowly (`chunk_delay` seconds between words)."""

    def at(x: int) -> dict:
        return {"x": x, "y": 120}

    words = {
        "graph": {"name": "one word"},
        "nodes": [
            {"id": "item", "type": "input", "config": {"name": "item"}, "position": at(0)},
            {
                "id": "call",
                "type": "llm",
                "position": at(250),
                "config": {"prompt": f"Say {{{{ item }}}} #fake:chunk_delay={chunk_delay}"},
            },
            {"id": "r", "type": "output", "config": {"name": "r"}, "position": at(500)},
        ],
        "edges": [
            {"source": "item", "target": "call", "source_port": "value", "target_port": "item"},
            {"source": "call", "target": "r", "source_port": "text", "target_port": "value"},
        ],
    }
    groups = {
        "graph": {"name": "one group"},
        "nodes": [
            {"id": "item", "type": "input", "config": {"name": "item"}, "position": at(0)},
            {
                "id": "deep",
                "type": "map",
                "label": "Each word",
                "config": {"flow": words, "concurrency": 1},
                "position": at(250),
            },
            {"id": "r", "type": "output", "config": {"name": "r"}, "position": at(500)},
        ],
        "edges": [
            {"source": "item", "target": "deep", "source_port": "value", "target_port": "items"},
            {"source": "deep", "target": "r", "source_port": "results", "target_port": "value"},
        ],
    }
    default = [["ant", "bee"], ["cat"]]
    return {
        "graph": {"name": "Groups"},
        "nodes": [
            {"id": "groups", "type": "input", "config": {"name": "groups", "default": default},
             "position": at(0)},
            {"id": "each", "type": "map", "label": "Each group",
             "config": {"flow": groups, "concurrency": 1}, "position": at(300)},
            {"id": "out", "type": "output", "config": {"name": "results"}, "position": at(600)},
        ],
        "edges": [
            {"source": "groups", "target": "each", "source_port": "value",
             "target_port": "items"},
            {"source": "each", "target": "out", "source_port": "results", "target_port": "value"},
        ],
    }  # fmt: skip


def drill(page: Page, node: str, inner_node: str) -> None:
    page.locator(f'[data-testid="canvas"] [data-cell-id="{node}"] .sy-title').dblclick()
    page.wait_for_selector(f'[data-testid="canvas"] [data-cell-id="{inner_node}"]')


def call_text(page: Page) -> str:
    return " ".join((page.locator('[data-cell-id="call"]').text_content() or "").split())


def test_a_nested_maps_items_show_at_both_drill_levels_live_and_in_replay(
    page: Page,
    server: Server,
    errors: list[str],
) -> None:
    # Slow enough that the run still goes when its page has opened on a busy machine.
    username, _, url = create_flow(server, nested_document(chunk_delay=0.6))
    log_in(page, server, username)
    page.goto(url)
    run_id = start_run(page)
    page.goto(f"{server.url}/runs/{run_id}/")
    page.wait_for_selector('[data-cell-id="each"]')

    # Live: into the first group's flow, then into its map of words.
    drill(page, "each", "deep")
    crumbs = page.get_by_test_id("drill-crumbs")
    expect(crumbs).to_contain_text("Each group")
    drill(page, "deep", "call")
    expect(crumbs).to_contain_text("Each group #0")
    # The words of group 0 run one by one: word 1 ("bee") streams and ends here, live.
    picker = page.get_by_test_id("drill-item")
    expect(picker).to_have_attribute("data-depth", "2")
    expect(picker.locator("option")).to_have_count(2, timeout=TIMEOUT_MS)
    picker.select_option("1")
    call = page.locator('[data-cell-id="call"] .sy-node')
    expect(page.locator('[data-cell-id="call"]')).to_contain_text(
        "fake reply: Say bee", timeout=TIMEOUT_MS
    )
    expect(call).to_have_class(DONE, timeout=TIMEOUT_MS)
    picker.select_option("0")
    expect(page.locator('[data-cell-id="call"]')).to_contain_text("fake reply: Say ant")
    assert canvas_status(page, "call") == "done"

    # Up one level: the group's own nodes, its map of words done; then group 1's words.
    page.get_by_test_id("drill-up-1").click()
    page.wait_for_selector('[data-testid="canvas"] [data-cell-id="deep"]')
    outer = page.get_by_test_id("drill-item")
    expect(outer).to_have_attribute("data-depth", "1")
    expect(page.locator('[data-cell-id="deep"] .sy-node')).to_have_class(DONE, timeout=TIMEOUT_MS)
    expect(outer.locator("option")).to_have_count(2, timeout=TIMEOUT_MS)
    outer.select_option("1")
    drill(page, "deep", "call")
    expect(crumbs).to_contain_text("Each group #1")
    expect(page.locator('[data-cell-id="call"]')).to_contain_text(
        "fake reply: Say cat", timeout=TIMEOUT_MS
    )
    expect(page.get_by_test_id("drill-item").locator("option")).to_have_count(1)

    # Replay, at the moment group 0's word 1 first streamed: word 0 is done, word 1 runs.
    expect(page.get_by_test_id("run-status")).to_have_attribute(
        "data-status", "succeeded", timeout=TIMEOUT_MS
    )
    page.reload()
    page.wait_for_selector("html[data-replay=ready]", timeout=TIMEOUT_MS)
    moment = page.evaluate(
        f"""() => {PLAYER}.events.findIndex((e) => e.type === "node_item" && e.item === 0
            && e.event === "node_item" && e.nested.item === 1
            && e.nested.event === "node_delta") + 1"""
    )
    assert moment > 0
    page.get_by_test_id("replay-scrub").fill(str(moment))
    wait_painted(page)
    drill(page, "each", "deep")
    assert canvas_status(page, "deep") == "running"
    drill(page, "deep", "call")
    expect(page.locator('[data-cell-id="call"]')).to_contain_text("fake reply: Say ant")
    assert canvas_status(page, "call") == "done"
    page.get_by_test_id("drill-item").select_option("1")
    expect(page.locator('[data-cell-id="call"] .sy-node')).to_have_class(
        re.compile(r"\bst-running\b")
    )
    shown = call_text(page)
    assert "fake" in shown and "Say bee" not in shown, shown  # its first words, no more
