"""The run page frames its flow for the area the canvas really has: at 1280x800, once the
timeline under the canvas has loaded (and so taken its height), every node is in view
without pressing Fit; and framed again when the timeline is folded and opened."""

from __future__ import annotations

import contextlib
import itertools

from playwright.sync_api import Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.e2e.conftest import log_in
from tests.e2e.test_runs import TIMEOUT_MS, create_flow, errors, start_run  # noqa: F401

# Two rows of chains, three deep: framed for the canvas's height before the timeline takes
# part of it, the lower row ends up under the timeline. (Small enough to fit whole above
# the readable zoom the framing keeps to, 0.85 since the canvas's text grew: see framing()
# in document.js. Four columns of 210 px nodes no longer fit in 1280 px beside the panel.)
COLUMNS = (40, 290, 540)
ROWS = (40, 220)


def tall_flow() -> dict:
    nodes = []
    edges = []
    for r, y in enumerate(ROWS):
        nodes.append(
            {
                "id": f"in{r}",
                "type": "input",
                "config": {"name": f"in{r}", "default": "x"},
                "position": {"x": COLUMNS[0], "y": y},
            }
        )
        for c, x in enumerate(COLUMNS[1:-1], start=1):
            nodes.append(
                {
                    "id": f"t{r}{c}",
                    "type": "template",
                    "config": {"template": "{{ v }}!"},
                    "position": {"x": x, "y": y},
                }
            )
        nodes.append(
            {
                "id": f"out{r}",
                "type": "output",
                "config": {"name": f"out{r}"},
                "position": {"x": COLUMNS[-1], "y": y},
            }
        )
        chain = [f"in{r}", *(f"t{r}{c}" for c in range(1, len(COLUMNS) - 1)), f"out{r}"]
        for a, b in itertools.pairwise(chain):
            source_port = "value" if a.startswith("in") else "text"
            target_port = "value" if b.startswith("out") else "v"
            edges.append(
                {"source": a, "target": b, "source_port": source_port, "target_port": target_port}
            )
    return {"graph": {"name": "Tall"}, "nodes": nodes, "edges": edges}


# The nodes not wholly inside the canvas's visible area (the canvas within the window).
OUTSIDE = """() => {
    const c = document.querySelector('[data-testid="canvas"]').getBoundingClientRect();
    const top = Math.max(c.top, 0), left = Math.max(c.left, 0);
    const bottom = Math.min(c.bottom, window.innerHeight);
    const right = Math.min(c.right, window.innerWidth);
    return [...document.querySelectorAll('[data-testid="canvas"] [data-cell-id]')]
        .filter((g) => g.querySelector('.sy-node'))
        .filter((g) => {
            const b = g.querySelector('.sy-node').getBoundingClientRect();
            return b.top < top - 1 || b.left < left - 1 || b.bottom > bottom + 1
                || b.right > right + 1;
        })
        .map((g) => g.dataset.cellId);
}"""


def all_in_view(page: Page) -> list[str]:
    """[] once every node is in view (a resize is framed on a later frame: waited for, up
    to 5 s); else the nodes left outside."""
    with contextlib.suppress(PlaywrightTimeout):
        page.wait_for_function(f"() => ({OUTSIDE})().length === 0", timeout=5000)
    return page.evaluate(OUTSIDE)


def test_every_node_of_a_run_is_in_view_on_load_at_1280x800(
    page: Page,
    server,
    errors: list[str],  # noqa: F811 (the fixture)
) -> None:
    username, _, url = create_flow(server, tall_flow())
    log_in(page, server, username)
    page.goto(url)
    expect(page.get_by_test_id("run")).to_be_visible()
    run_id = start_run(page)
    page.goto(f"{server.url}/runs/{run_id}/")
    expect(page.locator("[data-run-status]").first).to_have_attribute(
        "data-status", "succeeded", timeout=TIMEOUT_MS
    )
    # The timeline has taken its room under the canvas.
    expect(page.locator(".timeline-svg")).to_be_visible(timeout=TIMEOUT_MS)
    page.wait_for_function(
        "() => document.querySelectorAll('[data-testid=\"canvas\"] .sy-node').length === 6"
    )
    assert all_in_view(page) == []

    # The timeline folded away and opened again: the canvas grows, then shrinks back, and
    # the flow is framed for each.
    summary = page.locator(".run-timeline > summary")
    summary.click()
    assert all_in_view(page) == []
    summary.click()
    expect(page.locator(".timeline-svg")).to_be_visible()
    assert all_in_view(page) == []
