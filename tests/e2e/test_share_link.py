"""A share link in the browser: the owner shares a finished run, a logged-out browser sees
its canvas in its final state with the replay, and once revoked the link shows nothing.

The run goes through the real stack (Daphne, the fake Anthropic API). The logged-out
browser has its own context: no session cookie, nothing in common with the owner's.
"""

from __future__ import annotations

from playwright.sync_api import Browser, Page, expect

from tests.e2e.test_runs import (
    TIMEOUT_MS,
    canvas_status,
    create_flow,
    errors,  # noqa: F401 - the fixture
    flow_document,
    log_in,
    start_run,
    step,
)

NODES = ("topic", "write", "out")


def test_a_run_share_link_shows_the_run_logged_out_until_revoked(
    page: Page,
    browser: Browser,
    server,
    errors,  # noqa: F811
):
    # alice runs her flow to the end.
    username, _, editor_url = create_flow(server, flow_document("Summarise {{ topic }}."))
    log_in(page, server, username)
    page.goto(editor_url)
    run_id = start_run(page)
    expect(page.get_by_test_id("run-status")).to_have_attribute(
        "data-status", "succeeded", timeout=TIMEOUT_MS
    )

    # She makes a link to that run ("Share this run").
    page.goto(f"{server.url}/runs/{run_id}/share-link/")
    page.get_by_test_id("share-run-submit").click()
    link = page.get_by_test_id("new-share-link").locator("input").input_value()
    assert link.startswith(f"{server.url}/s/")

    # Someone without an account opens it in a fresh browser.
    stranger = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        public = stranger.new_page()
        public_errors: list[str] = []
        public.on("pageerror", lambda error: public_errors.append(str(error)))
        response = public.goto(link)
        assert response is not None and response.status == 200
        assert public.url.endswith(f"/runs/{run_id}/")
        expect(public.get_by_test_id("public-badge")).to_be_visible()
        expect(public.get_by_test_id("run-status")).to_have_attribute("data-status", "succeeded")
        expect(public.get_by_test_id("outputs")).to_contain_text("fake reply: Summarise queues.")
        for node in NODES:
            expect(step(public, node)).to_have_attribute("data-status", "done")
        # The canvas draws the flow and paints each node's final state from the events.
        public.wait_for_function(
            """() => document.querySelectorAll('[data-cell-id] .sy-node.st-done').length === 3""",
            timeout=TIMEOUT_MS,
        )
        assert [canvas_status(public, node) for node in NODES] == ["done"] * 3
        expect(public.get_by_test_id("replay")).to_be_visible()
        expect(public.get_by_test_id("replay-play")).to_be_enabled(timeout=TIMEOUT_MS)
        # Nothing to change, cancel or follow live.
        expect(public.get_by_test_id("cancel")).to_have_count(0)
        expect(public.locator("form")).to_have_count(0)
        assert public_errors == []

        # alice revokes it from the flow's Share panel.
        page.goto(editor_url)
        page.get_by_test_id("share").click()
        panel = page.get_by_test_id("share-panel")
        expect(panel).to_be_visible()
        links = panel.get_by_test_id("share-links")
        expect(links).to_contain_text(f"run #{run_id}")
        links.get_by_role("button", name="Revoke").click()
        expect(panel).to_contain_text("Revoked the link")
        expect(panel.get_by_test_id("share-links")).to_have_count(0)

        # The logged-out page now gets 404, and so do the run's events.
        again = public.reload()
        assert again is not None and again.status == 404
        events = public.request.get(f"{link.rstrip('/')}/runs/{run_id}/events")
        assert events.status == 404
    finally:
        stranger.close()
