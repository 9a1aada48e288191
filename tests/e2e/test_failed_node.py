"""A runtime error shows on the failed node (issue 14, item 13): on the canvas, live and in
a replay, and in the inspector when the failed node is clicked."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.e2e.test_runs import TIMEOUT_MS, errors, open_editor, start_run

__all__ = ["errors"]  # the fixture: an uncaught exception in the page fails the test


def model_error(page: Page, node: str) -> str:
    """The error the run view's model holds for the node (from the run's events)."""
    return page.evaluate(
        """(node) => document.querySelector("[data-run-view]")
            .switchyardRunView.model.nodes.get(node).error""",
        node,
    )


def test_a_failed_nodes_error_is_on_the_node_and_in_its_inspector(
    page: Page,
    server,
    errors: list[str],
) -> None:
    open_editor(page, server, "Refuse {{ topic }}. #fake:status=400")
    run_id = start_run(page)
    expect(page.get_by_test_id("run-status")).to_have_attribute(
        "data-status", "failed", timeout=TIMEOUT_MS
    )
    error = model_error(page, "write")
    assert error, "the run's events carry the node's error"

    # Live, in the editor: the error is under the failed node ...
    on_node = page.locator('[data-cell-id="write"] .sy-problem-text.is-failure')
    expect(on_node).to_have_count(1)
    expect(on_node).to_contain_text(error[:20])
    # ... and clicking the node shows it whole in the inspector.
    page.click('[data-cell-id="write"] .sy-title')
    inspector = page.get_by_test_id("node-run-error")
    expect(inspector).to_contain_text("Failed in the run")
    expect(inspector.locator("pre")).to_have_text(error)
    # A node that did not fail shows no run error.
    page.click('[data-cell-id="topic"] .sy-title')
    expect(page.locator('form[data-node="topic"][data-ready]')).to_be_visible()
    expect(page.get_by_test_id("node-run-error")).to_have_count(0)

    # Replayed on the run page: on the node again, and its card tells the error.
    page.goto(f"{server.url}/runs/{run_id}/")
    replayed = page.locator('[data-cell-id="write"] .sy-problem-text.is-failure')
    expect(replayed).to_contain_text(error[:20], timeout=TIMEOUT_MS)
    page.click('[data-cell-id="write"] .sy-title')
    expect(page.locator("[data-run-node] .run-error")).to_contain_text(error[:20])
