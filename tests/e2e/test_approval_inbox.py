"""Alice's run waits for bob's approval (issue 16), in two browsers: bob's header counts
it without a reload, he answers it from his inbox, and alice's open run page follows the
run on, live, to its end; and on the run page's canvas the waiting node says it waits
and, clicked, shows its form."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import log_in
from tests.e2e.test_accessibility import audit
from tests.e2e.test_runs import TIMEOUT_MS, canvas_status, start_run
from tests.webapp.test_approvals import refund_graph
from webapp.flows import services
from webapp.flows.models import FlowShare


@pytest.fixture
def shared_flow(server) -> tuple[str, str, int]:
    """alice's refund flow, shared with bob as its editor (a share he accepted)."""
    suffix = uuid.uuid4().hex[:6]
    alice = server.create_user(f"alice_{suffix}")
    bob = server.create_user(f"bob_{suffix}")

    def create() -> int:
        users = get_user_model().objects
        owner, editor = users.get(username=alice), users.get(username=bob)
        graph = refund_graph()
        # Laid out apart, so that a click on a node reaches it (refund_graph piles them up).
        spots = {"q": (40, 160), "ask": (300, 160), "yes": (560, 60), "no": (560, 300)}
        for node in graph["nodes"]:
            x, y = spots.get(node["id"], (820, 160))
            node["position"] = {"x": x, "y": y}
        flow = services.create(owner, "Refund", graph)
        FlowShare.objects.create(
            flow=flow,
            user=editor,
            invitee=bob,
            role=FlowShare.Role.EDITOR,
            created_by=owner,
            accepted_at=timezone.now(),
        )
        return flow.pk

    return alice, bob, server.orm(create)


@pytest.fixture
def two_pages(browser: Browser) -> Iterator[tuple[Page, Page, list[str]]]:
    errors: list[str] = []
    contexts = [browser.new_context(viewport={"width": 1280, "height": 800}) for _ in range(2)]
    pages = [context.new_page() for context in contexts]
    for page in pages:
        page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield pages[0], pages[1], errors
    for context in contexts:
        context.close()
    assert errors == []


def start_waiting_run(page: Page, server, flow_id: int) -> int:
    """Starts a run from the editor and opens its page, where it waits at `ask`."""
    page.goto(f"{server.url}/flows/{flow_id}/")
    expect(page.get_by_test_id("run")).to_be_visible()
    run_id = start_run(page, {"q": "12 EUR"})
    page.goto(f"{server.url}/runs/{run_id}/")
    expect(page.get_by_test_id("run-status")).to_have_attribute(
        "data-status", "waiting", timeout=TIMEOUT_MS
    )
    expect(page.get_by_test_id("run-status")).to_have_text("Waiting")
    # On the canvas: the node waits, and says so under its frame.
    expect(page.locator('[data-cell-id="ask"] .sy-node.st-waiting')).to_have_count(
        1, timeout=TIMEOUT_MS
    )
    expect(page.locator('[data-cell-id="ask"] .sy-problem-text.is-waiting')).to_have_text(
        "Waiting for an answer"
    )
    return run_id


def test_bob_sees_the_badge_approves_from_his_inbox_and_alices_canvas_goes_on(
    server, shared_flow, two_pages
):
    alice, bob, flow_id = shared_flow
    alice_page, bob_page, _ = two_pages
    log_in(bob_page, server, bob)
    bob_page.goto(f"{server.url}/")
    # Nothing waits for bob: the header has no count, only its poller.
    expect(bob_page.get_by_test_id("approvals-nav")).to_be_attached()
    expect(bob_page.get_by_test_id("approvals-badge")).to_have_count(0)

    log_in(alice_page, server, alice)
    run_id = start_waiting_run(alice_page, server, flow_id)
    alice_page.evaluate("window.__stillThisPage = true")
    assert audit(alice_page, server) == [], "the waiting run's page, its status pill included"

    # Bob's page polls: the count arrives without a reload.
    bob_page.evaluate("window.__stillThisPage = true")
    expect(bob_page.get_by_test_id("approvals-badge")).to_have_text("1", timeout=TIMEOUT_MS)
    assert bob_page.evaluate("window.__stillThisPage === true")
    bob_page.get_by_test_id("approvals-link").click()
    bob_page.wait_for_url(f"{server.url}/approvals/")
    item = bob_page.locator(f'[data-testid="inbox-item"][data-run="{run_id}"]')
    expect(item).to_contain_text("Refund 12 EUR?")
    expect(item).to_contain_text(f"run #{run_id}")
    assert audit(bob_page, server) == [], "the inbox with its form"
    item.locator('input[name="f_note"]').fill("fine")
    item.get_by_test_id("approval-action-approve").click()
    expect(item.get_by_test_id("approval-answered")).to_contain_text("approve")
    # The answer asks the header again at once: nothing waits for bob any more.
    expect(bob_page.get_by_test_id("approvals-badge")).to_have_count(0, timeout=TIMEOUT_MS)

    # Alice's page, never reloaded, follows the run on to its end.
    expect(alice_page.get_by_test_id("run-status")).to_have_attribute(
        "data-status", "succeeded", timeout=TIMEOUT_MS
    )
    expect(alice_page.get_by_test_id("outputs")).to_contain_text(
        f"approved by {bob}: fine", timeout=TIMEOUT_MS
    )
    expect(alice_page.locator('[data-cell-id="ask"] .sy-node.st-done')).to_have_count(1)
    assert canvas_status(alice_page, "yes") == "done"
    assert canvas_status(alice_page, "no") == "skipped"
    expect(alice_page.get_by_test_id("run-approvals")).to_be_hidden(timeout=TIMEOUT_MS)
    assert alice_page.evaluate("window.__stillThisPage === true")


def test_clicking_the_waiting_node_on_the_canvas_shows_its_form_and_answers_it(
    server, shared_flow, page: Page
):
    alice, _, flow_id = shared_flow
    log_in(page, server, alice)
    start_waiting_run(page, server, flow_id)
    page.click('[data-cell-id="ask"] .sy-title')
    card = page.get_by_test_id("node-approval")
    expect(card).to_be_visible(timeout=TIMEOUT_MS)
    expect(card.get_by_test_id("approval-message")).to_have_text("Refund 12 EUR?")
    card.locator('input[name="f_note"]').fill("no way")
    card.get_by_test_id("approval-action-reject").click()
    expect(card.get_by_test_id("approval-answered")).to_contain_text("reject")
    expect(page.get_by_test_id("run-status")).to_have_attribute(
        "data-status", "succeeded", timeout=TIMEOUT_MS
    )
    expect(page.get_by_test_id("outputs")).to_contain_text("rejected: no way", timeout=TIMEOUT_MS)
    assert canvas_status(page, "no") == "done"
    assert canvas_status(page, "yes") == "skipped"
