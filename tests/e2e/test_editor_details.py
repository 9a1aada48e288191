"""Small things in the way of building a flow (issue 14, the Low list): identifier errors
in plain words, broken JSON in the run form refused, "Not run yet" only when it is true,
a favicon, and the version-message popover out of the way of a banner."""

from __future__ import annotations

from django.utils import timezone
from playwright.sync_api import Page, expect

from tests.e2e.conftest import Server, log_in
from tests.e2e.test_editor import (
    create_flow,
    errors,
    new_user,
    open_editor,
    save_from_elsewhere,
)
from webapp.flows.models import Flow
from webapp.runs.models import Run

__all__ = ["errors"]  # the fixture: an uncaught exception in the page fails the test


def echo() -> dict:
    return {
        "graph": {"name": "Echo"},
        "nodes": [
            {"id": "q", "type": "input", "config": {"name": "q"}, "position": {"x": 0, "y": 100}},
            {
                "id": "out",
                "type": "output",
                "config": {"name": "out"},
                "position": {"x": 400, "y": 100},
            },
        ],
        "edges": [{"source": "q", "target": "out", "source_port": "value", "target_port": "value"}],
    }


def editor_for(page: Page, server: Server) -> int:
    alice = new_user(server)
    flow_id = create_flow(server, alice, echo())
    log_in(page, server, alice)
    open_editor(page, server, flow_id)
    return flow_id


def test_an_identifier_error_names_the_allowed_characters_in_plain_words(
    page: Page,
    server: Server,
    errors: list[str],
) -> None:
    editor_for(page, server)
    page.click('[data-cell-id="q"] .sy-title')
    form = page.locator('form[data-testid="node-form"][data-node="q"][data-ready]')
    form.locator('input[name="f_name"]').fill("my input")
    error = page.get_by_test_id("error-name")
    expect(error).to_contain_text(
        "use only letters (A-Z, a-z), digits (0-9) and _, not starting with a digit"
    )
    expect(error).not_to_contain_text("String should match pattern")


def test_broken_json_in_the_run_form_is_refused_not_sent_as_text(
    page: Page,
    server: Server,
    errors: list[str],
) -> None:
    editor_for(page, server)
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.url) if r.url.endswith("/runs") else None)
    page.get_by_test_id("run").click()
    field = page.locator('[data-input-name="q"]')
    field.fill('{"depth": 2')
    page.get_by_test_id("run-submit").click()
    message = page.locator("[data-run-message]")
    expect(message).to_contain_text("“q” looks like JSON but is not valid JSON")
    expect(field).to_have_attribute("aria-invalid", "true")
    assert sent == []
    # Plain text still goes as text.
    field.fill("just words")
    with page.expect_response(lambda r: r.url.endswith("/runs")) as info:
        page.get_by_test_id("run-submit").click()
    assert info.value.status == 201
    assert info.value.request.post_data_json["inputs"] == {"q": "just words"}


def test_not_run_yet_is_said_only_of_a_flow_with_no_runs(
    page: Page,
    server: Server,
    errors: list[str],
) -> None:
    flow_id = editor_for(page, server)
    status = page.get_by_test_id("run-status")
    expect(status).to_contain_text("Not run yet")

    def a_run() -> None:
        flow = Flow.objects.get(pk=flow_id)
        Run.objects.create(
            flow=flow,
            flow_version=flow.current(),
            started_by=flow.owner,
            inputs={"q": "hi"},
            status=Run.Status.SUCCEEDED,
            started_at=timezone.now(),
            finished_at=timezone.now(),
        )

    server.orm(a_run)
    page.reload()
    # The past runs are listed in the "Run & outputs" tab (the run bar's status is above both).
    page.get_by_test_id("tab-run").click()
    expect(page.locator("[data-run-recent] a").first).to_be_visible()
    expect(status).to_contain_text("Ready to run")
    expect(status).not_to_contain_text("Not run yet")


def test_pages_have_a_favicon_and_no_request_404s(
    page: Page,
    server: Server,
    errors: list[str],
) -> None:
    missing: list[str] = []
    page.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)
    editor_for(page, server)
    page.goto(f"{server.url}/")  # the flow list
    icon = page.locator('link[rel="icon"]')
    href = icon.get_attribute("href")
    assert href and href.endswith(".svg")
    answer = page.request.get(server.url + href)
    assert answer.status == 200 and "svg" in answer.headers["content-type"]
    assert missing == []


def test_the_version_message_popover_does_not_cover_a_save_banner(
    page: Page,
    server: Server,
    errors: list[str],
) -> None:
    flow_id = editor_for(page, server)
    # Changed here first: a teammate's save then cannot be loaded in place, and ours conflicts.
    page.get_by_test_id("flow-name").fill("Renamed")
    save_from_elsewhere(server, flow_id, base=1)
    describe = page.get_by_test_id("describe")
    describe.locator("summary").click()
    page.get_by_test_id("save-message").fill("my change")
    page.keyboard.press("Control+s")
    banner = page.get_by_test_id("conflict")
    expect(banner).to_be_visible()
    expect(describe).not_to_have_attribute("open", "")
    # What is on top at the banner's text is the banner itself.
    on_top = page.evaluate(
        """() => {
            const el = document.querySelector('[data-testid="conflict"] span');
            const r = el.getBoundingClientRect();
            const hit = document.elementFromPoint(r.left + r.width - 4, r.top + r.height / 2);
            return Boolean(hit && hit.closest('[data-testid="conflict"]'));
        }"""
    )
    assert on_top
    # The message waits for the next save.
    expect(page.get_by_test_id("save-message")).to_have_value("my change")
