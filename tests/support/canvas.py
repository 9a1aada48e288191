"""Mouse gestures on the X6 canvas, for the browser tests and scripts/editor_tour.py.

Playwright only: no Django, so a script can import it without settings.
"""

from __future__ import annotations

from playwright.sync_api import Page


def centre(page: Page, selector: str) -> tuple[float, float]:
    # The palette scrolls when it is taller than the window: bring the chip into view first.
    page.locator(selector).first.scroll_into_view_if_needed()
    box = page.locator(selector).first.bounding_box()
    assert box is not None, selector
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def drag(page: Page, start: tuple[float, float], end: tuple[float, float]) -> None:
    page.mouse.move(*start)
    page.mouse.down()
    for step in range(1, 13):
        t = step / 12
        page.mouse.move(start[0] + (end[0] - start[0]) * t, start[1] + (end[1] - start[1]) * t)
    page.mouse.up()


def connect(page: Page, source: str, out_port: str, target: str, in_port: str) -> None:
    """Drag a wire from a port to a port, once both have stopped moving.

    A node whose ports just changed is re-laid out by X6 on a later frame; on a loaded
    machine a drag aimed at the old position misses the port.
    """
    start = f'[data-cell-id="{source}"] [port="out:{out_port}"]'
    end = f'[data-cell-id="{target}"] [port="in:{in_port}"]'
    page.wait_for_function(
        """(selectors) => new Promise((done) => {
            const boxes = () => selectors.map((s) => {
                const r = document.querySelector(s)?.getBoundingClientRect();
                return r ? `${r.x},${r.y},${r.width}` : null;
            });
            const before = boxes();
            requestAnimationFrame(() => requestAnimationFrame(() => {
                const after = boxes();
                done(before.every((b, i) => b !== null && b === after[i]));
            }));
        })""",
        arg=[start, end],
    )
    drag(page, centre(page, start), centre(page, end))
