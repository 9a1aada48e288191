"""The page header and the run page's Compare picker at laptop sizes (1280x800 and
1440x900): nothing in the header overlaps or wraps onto a second line, and the Compare
button is wholly inside its section and the window."""

from __future__ import annotations

import itertools

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import log_in
from tests.e2e.test_runs import TIMEOUT_MS, create_flow, flow_document, start_run

SIZES = [(1280, 800), (1440, 900)]

# The header's items as laid out: each direct item of the topbar, and each item of its
# blocks (the editor's name, version, actions...; the account links), with its box and
# how many lines its text takes.
HEADER_ITEMS = """() => {
    const bar = document.querySelector('header.topbar');
    const items = [];
    const visible = (el) => {
        const r = el.getBoundingClientRect();
        return r.width > 0 && r.height > 0 && getComputedStyle(el).visibility !== 'hidden';
    };
    const add = (el) => {
        if (!visible(el)) return;
        const r = el.getBoundingClientRect();
        const lines = el.getClientRects().length;
        items.push({name: (el.dataset.testid || el.className || el.tagName) + ':'
                    + (el.textContent || '').trim().slice(0, 20),
                    x: r.x, y: r.y, width: r.width, height: r.height, lines,
                    lineHeight: parseFloat(getComputedStyle(el).lineHeight) || 0,
                    fontSize: parseFloat(getComputedStyle(el).fontSize)});
    };
    for (const child of bar.children) {
        const parts = child.matches('.ed-top, .crumbs, .account, .ed-actions')
            ? [...child.children].flatMap((c) => c.matches('.ed-actions, .account')
                ? [...c.children] : [c])
            : [child];
        parts.forEach(add);
    }
    // Text cut short by its box (an ellipsis, or a clipped word): the header had no room.
    const clipped = [...bar.querySelectorAll('*')]
        .filter((el) => !el.matches('input, select, textarea') && visible(el))
        .filter((el) => getComputedStyle(el).overflowX !== 'visible'
                        && el.scrollWidth > el.clientWidth + 1)
        .map((el) => (el.className || el.tagName) + ': ' + el.textContent.trim().slice(0, 30));
    const bar_box = bar.getBoundingClientRect();
    return {items, clipped, bar: {x: bar_box.x, y: bar_box.y, width: bar_box.width,
                         height: bar_box.height, scrollWidth: bar.scrollWidth,
                         clientWidth: bar.clientWidth}};
}"""


def overlap(a: dict, b: dict) -> bool:
    return (
        a["x"] < b["x"] + b["width"] - 0.5
        and b["x"] < a["x"] + a["width"] - 0.5
        and a["y"] < b["y"] + b["height"] - 0.5
        and b["y"] < a["y"] + a["height"] - 0.5
    )


def assert_header_fits(page: Page) -> None:
    found = page.evaluate(HEADER_ITEMS)
    items, bar = found["items"], found["bar"]
    assert len(items) >= 4, items
    for a, b in itertools.combinations(items, 2):
        assert not overlap(a, b), f"{a['name']} overlaps {b['name']}"
    for item in items:
        # Inside the bar, on one line: no taller than two lines of its text would be.
        assert item["x"] >= bar["x"] - 0.5, item
        assert item["x"] + item["width"] <= bar["x"] + bar["width"] + 0.5, item
        assert item["y"] >= bar["y"] - 0.5, item
        assert item["y"] + item["height"] <= bar["y"] + bar["height"] + 0.5, item
        assert item["height"] < 2 * item["fontSize"] * 1.2 + 16, f"{item['name']} wraps"
    assert bar["scrollWidth"] <= bar["clientWidth"] + 1, bar
    assert found["clipped"] == [], "text cut short in the header"


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_the_run_pages_header_fits_and_compare_is_not_clipped(
    browser: Browser, server, width: int, height: int
) -> None:
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # A long flow name and user name: the header's worst case.
    username, _, url = create_flow(server, flow_document("Write about {{ topic }}"))
    log_in(page, server, username)
    page.goto(url)
    page.get_by_test_id("flow-name").fill("A flow with a rather long name for the header")
    assert_header_fits(page)
    first = start_run(page)
    second = start_run(page)
    assert first != second
    page.goto(f"{server.url}/runs/{second}/")
    expect(page.locator("[data-run-status]").first).to_have_attribute(
        "data-status", "succeeded", timeout=TIMEOUT_MS
    )
    button = page.get_by_test_id("compare-go")
    expect(button).to_be_visible(timeout=TIMEOUT_MS)
    section = page.get_by_test_id("compare-picker")
    box, outer = button.bounding_box(), section.bounding_box()
    assert box is not None and outer is not None
    page.screenshot(path=f"/tmp/h2/run-{width}.png")
    assert box["x"] >= outer["x"] and box["x"] + box["width"] <= outer["x"] + outer["width"], (
        box,
        outer,
    )
    assert box["x"] + box["width"] <= width, (box, width)
    # Nothing inside the section scrolls sideways or clips it.
    clipped = page.evaluate(
        """() => {
            let el = document.querySelector('[data-testid="compare-go"]');
            const r = el.getBoundingClientRect();
            const out = [];
            for (el = el.parentElement; el; el = el.parentElement) {
                const c = el.getBoundingClientRect();
                const style = getComputedStyle(el);
                const out_of = r.right > c.right + 0.5 || r.left < c.left - 0.5;
                if (style.overflowX !== 'visible' && out_of)
                    out.push(el.className || el.tagName);
            }
            return out;
        }"""
    )
    assert clipped == []
    assert_header_fits(page)
    context.close()
    assert errors == []
