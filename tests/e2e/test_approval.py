"""A run that waits for a person, in the browser: the run page shows the approval's
question and form; answering it there resumes the run, and the page follows it live to
its end (issue 16)."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.e2e.conftest import log_in
from tests.e2e.test_runs import TIMEOUT_MS, create_flow, errors, start_run
from tests.webapp.test_approvals import refund_graph

__all__ = ["errors"]  # the fixture: an uncaught exception in the page fails the test


def test_a_waiting_run_is_approved_from_its_page_and_succeeds(page: Page, server, errors):
    username, _, url = create_flow(server, refund_graph())
    log_in(page, server, username)
    page.goto(url)
    expect(page.get_by_test_id("run")).to_be_visible()
    run_id = start_run(page, {"q": "12 EUR"})

    page.goto(f"{server.url}/runs/{run_id}/")
    form = page.get_by_test_id("approval-ask")
    expect(form).to_be_visible(timeout=TIMEOUT_MS)
    expect(form.get_by_test_id("approval-message")).to_have_text("Refund 12 EUR?")
    form.locator('input[name="f_note"]').fill("fine")
    form.get_by_test_id("approval-action-approve").click()

    expect(page.get_by_test_id("approval-answered")).to_contain_text("approve", timeout=TIMEOUT_MS)
    expect(page.get_by_test_id("run-status")).to_have_attribute(
        "data-status", "succeeded", timeout=TIMEOUT_MS
    )
    expect(page.get_by_test_id("outputs")).to_contain_text(
        f"approved by {username}: fine", timeout=TIMEOUT_MS
    )
