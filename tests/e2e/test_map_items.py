"""A map node's items in the inspector, in a real browser: selected while the map runs,
its card lists each item (index, status, output or error, tokens) as they go; after the
run, the same list in full, and as of a replay's position."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.e2e.conftest import Server, log_in
from tests.e2e.test_replay import PLAYER
from tests.e2e.test_runs import TIMEOUT_MS, create_flow, map_document, start_run


def item(page: Page, index: int):
    return page.locator(
        f'[data-testid="inspector"] [data-testid="map-items"] tr[data-item="{index}"]'
    )


def test_a_maps_items_are_listed_live_and_in_replay(page: Page, server: Server) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # Slow enough that the first item still runs when the run page has opened on a busy
    # machine: about 1 s a word.
    username, _, url = create_flow(server, map_document(chunk_delay=1.0))
    log_in(page, server, username)
    page.goto(url)
    run_id = start_run(page)

    # The run page, while the items stream (each one slowly): select the map node.
    page.goto(f"{server.url}/runs/{run_id}/")
    page.locator('[data-cell-id="each"] .sy-title').click()
    card = page.get_by_test_id("inspector")
    expect(card).to_contain_text("Items (2)", timeout=TIMEOUT_MS)
    expect(item(page, 0)).to_have_attribute("data-status", "running")
    # The card follows the items: they finish with their outputs and tokens.
    expect(item(page, 1)).to_have_attribute("data-status", "done", timeout=TIMEOUT_MS)
    expect(item(page, 0)).to_have_attribute("data-status", "done")
    expect(item(page, 0)).to_contain_text("fake reply: calm ant")
    expect(item(page, 1)).to_contain_text("fake reply: calm bee")
    expect(item(page, 1)).to_contain_text(" out")
    tokens = item(page, 0).locator("td").nth(3).text_content() or ""
    assert tokens.split()[0].isdigit() and int(tokens.split()[3]) > 0, tokens

    # Replay, at the moment item 1 first streamed: item 0 has run, item 1 runs.
    page.reload()
    page.wait_for_selector("html[data-replay=ready]", timeout=TIMEOUT_MS)
    moment = page.evaluate(
        f"""() => {PLAYER}.events.findIndex(
            (e) => e.type === "node_item" && e.item === 1 && e.event === "node_delta") + 1"""
    )
    page.get_by_test_id("replay-scrub").fill(str(moment))
    page.locator('[data-cell-id="each"] .sy-title').click()
    expect(card.get_by_test_id("inspector-upto")).to_be_visible()
    expect(item(page, 1)).to_have_attribute("data-status", "running")
    expect(item(page, 1)).to_contain_text("fake")  # its first streamed words, no more
    assert errors == []
