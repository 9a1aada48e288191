"""The Content-Security-Policy in a real browser. Every e2e test fails on a violation
(conftest.py); these make sure that check hears one, and cover the pages and behaviours no
other browser test opens: the settings page's token field and Copy button (their handlers
were inline) and the API docs."""

from __future__ import annotations

import uuid

from playwright.sync_api import Page, expect

from tests.e2e.conftest import CspWatch, Server, log_in, pause
from tests.support.wait import wait_for


def test_the_watch_hears_what_the_policy_refuses(page: Page, server: Server, csp_watch: CspWatch):
    page.goto(f"{server.url}/login/")
    page.evaluate(
        """() => {
            const script = document.createElement("script");
            script.textContent = "window.inlineRan = true";
            document.head.append(script);
        }"""
    )
    wait_for(
        lambda: any("script-src" in violation for violation in csp_watch.violations),
        timeout=5,
        message="the script-src violation",
        sleep=pause(page),
    )
    assert page.evaluate("() => window.inlineRan") is None
    csp_watch.violations.clear()  # heard, as it should be: not this test's failure


def test_a_new_token_selects_on_focus_and_copies_under_the_policy(page: Page, server: Server):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    username = server.create_user(f"csp_{uuid.uuid4().hex[:8]}")
    log_in(page, server, username)
    for path in ("/", "/runs/", "/teams/"):
        assert page.goto(f"{server.url}{path}").status == 200
    page.goto(f"{server.url}/settings/")
    page.fill("input[name=name]", "laptop")
    page.locator("form[action$='/settings/tokens/new/'] button[type=submit]").click()
    field = page.locator("#new-token")
    token = field.input_value()
    assert token.startswith("sy_")
    # page.js is deferred: the click returns once the new page commits, before it has run.
    page.wait_for_load_state("load")

    field.focus()
    assert field.evaluate("el => [el.selectionStart, el.selectionEnd]") == [0, len(token)]
    copy = page.locator("[data-copy-from=new-token]")
    copy.click()
    expect(copy).to_have_text("Copied")
    assert page.evaluate("() => navigator.clipboard.readText()") == token


def test_the_api_docs_render_under_the_policy(page: Page, server: Server):
    page.goto(f"{server.url}/api/docs")
    expect(page.locator(".opblock").first).to_be_visible(timeout=15_000)
