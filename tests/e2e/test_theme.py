"""Dark mode: the colour tokens' dark values follow the system's preference until the
header's toggle is pressed; the choice is remembered; the canvas follows it too."""

from __future__ import annotations

from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import log_in
from tests.e2e.test_runs import create_flow, flow_document

DARK_BG = "rgb(15, 19, 24)"
LIGHT_BG = "rgb(246, 247, 249)"
DARK_PANEL = "rgb(23, 28, 35)"
LIGHT_PANEL = "rgb(255, 255, 255)"


def colours(page: Page) -> dict[str, str]:
    return page.evaluate(
        """() => {
            const style = (el, prop) => el ? getComputedStyle(el)[prop] : null;
            const grid = document.querySelector(".x6-graph-grid");
            return {
                page: style(document.body, "backgroundColor"),
                node: style(document.querySelector('[data-cell-id="write"] .sy-body'), "fill"),
                edge: style(document.querySelector(".sy-edge-line"), "stroke"),
                grid: grid ? grid.style.backgroundImage : null,
            };
        }"""
    )


def test_the_editor_follows_the_system_until_alice_chooses_and_remembers_her_choice(
    browser: Browser, server
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, color_scheme="dark")
    page = context.new_page()
    try:
        username, _, url = create_flow(server, flow_document("Summarise {{ topic }}."))
        log_in(page, server, username)
        page.goto(url)
        page.wait_for_function("() => document.documentElement.dataset.canvas === 'ready'")
        toggle = page.get_by_test_id("theme-toggle")
        dark = colours(page)
        assert dark["page"] == DARK_BG
        assert dark["node"] == DARK_PANEL
        expect(toggle).to_have_attribute("aria-pressed", "true")

        toggle.click()
        expect(toggle).to_have_attribute("aria-pressed", "false")
        light = colours(page)
        assert (light["page"], light["node"]) == (LIGHT_BG, LIGHT_PANEL)
        # Wires and the grid (painted from JS) change with it.
        assert light["edge"] != dark["edge"]
        assert light["grid"] != dark["grid"]

        # Remembered: the system still prefers dark, the page opens light.
        page.reload()
        page.wait_for_function("() => document.documentElement.dataset.canvas === 'ready'")
        assert colours(page)["page"] == LIGHT_BG
        assert colours(page)["grid"] == light["grid"]
        page.goto(server.url + "/")
        assert colours(page)["page"] == LIGHT_BG
    finally:
        context.close()


def test_a_light_system_gets_light_and_the_toggle_gives_dark(page: Page, server) -> None:
    username, _, url = create_flow(server, flow_document("Summarise {{ topic }}."))
    log_in(page, server, username)
    page.emulate_media(color_scheme="light")
    page.goto(server.url + "/")
    assert colours(page)["page"] == LIGHT_BG
    page.get_by_test_id("theme-toggle").click()
    assert colours(page)["page"] == DARK_BG
    page.goto(url)
    page.wait_for_function("() => document.documentElement.dataset.canvas === 'ready'")
    assert colours(page)["node"] == DARK_PANEL
