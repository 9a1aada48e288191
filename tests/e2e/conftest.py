"""End-to-end fixtures: the real Daphne server in a subprocess on its own SQLite file
(tests/services.py's DaphneServer; tests build their world in that file through the ORM,
``server.orm()``), the fake Anthropic API on loopback, and Debian's Chromium driven by
Playwright.

Every browser context reports Content-Security-Policy violations (the page's
``securitypolicyviolation`` events, and the console's CSP errors); a test during which
any page broke the policy fails at teardown, with what was refused and where.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, sync_playwright

from tests.fakes.anthropic_server import FakeAnthropic
from tests.services import PASSWORD, DaphneServer, Server
from tests.support.http_server import Server as HttpServer
from tests.support.http_server import github_stand_in
from tests.support.mcp_server import McpTestServer

ROOT = Path(__file__).parents[2]
CHROMIUM = os.environ.get("SWITCHYARD_CHROMIUM", "/usr/bin/chromium")
# Runs in every frame before the page's own scripts, so it hears violations during parsing.
CSP_LISTENER = """
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolation(
    `${e.effectiveDirective} refused ${e.blockedURI || "inline"} at ` +
    `${e.sourceFile || e.documentURI}:${e.lineNumber} ${e.sample || ""}`.trim()
  );
}, true);
"""


class CspWatch:
    """Collects the CSP violations of every browser context it is attached to."""

    def __init__(self) -> None:
        self.violations: list[str] = []

    def attach(self, context: BrowserContext) -> None:
        context.expose_binding("__cspViolation", self._reported)
        context.add_init_script(script=CSP_LISTENER)
        context.on("console", self._console)

    def _reported(self, source: dict, text: str) -> None:
        self.violations.append(f"{source['frame'].url}: {text}")

    def _console(self, message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            self.violations.append(f"console: {message.text}")


@pytest.fixture(scope="session")
def csp_watch() -> CspWatch:
    return CspWatch()


@pytest.fixture(autouse=True)
def no_csp_violations(csp_watch: CspWatch) -> Iterator[None]:
    """Fails the test if any page it opened broke the Content-Security-Policy."""
    csp_watch.violations.clear()
    yield
    violations, csp_watch.violations = csp_watch.violations, []
    assert not violations, "Content-Security-Policy violations:\n" + "\n".join(violations)


@pytest.fixture(scope="session")
def model_server() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as server:
        yield server


@pytest.fixture(scope="session")
def http_api() -> Iterator[HttpServer]:
    """A stand-in for the GitHub API on 127.0.0.1, which the server allow-lists."""
    with github_stand_in() as server:
        yield server


@pytest.fixture(scope="session")
def mcp_tools() -> Iterator[McpTestServer]:
    """A real MCP server (the SDK's) on 127.0.0.1, which the server allow-lists."""
    with McpTestServer() as running:
        yield running


@pytest.fixture(scope="session")
def server(
    tmp_path_factory, model_server, http_api, mcp_tools, django_db_blocker
) -> Iterator[DaphneServer]:
    """Daphne on a SQLite file of its own, calling the fake model server, its http node on
    and allowed to reach ``http_api`` and ``mcp_tools`` alone. Tests build their world in it
    with ``server.orm()`` (and ``server.create_user``)."""
    folder = tmp_path_factory.mktemp("e2e")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "DJANGO_"))},
        "DATABASE_URL": f"sqlite:///{folder / 'e2e.sqlite3'}",
        "ANTHROPIC_API_KEY": "test-key",
        "ANTHROPIC_BASE_URL": model_server.url,
        "DEBUG": "1",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "NO_PROXY": "127.0.0.1,localhost",
        "PYTHONUNBUFFERED": "1",
        "SWITCHYARD_HTTP_NODE_ENABLED": "1",
        "SWITCHYARD_HTTP_ALLOW_HOSTS": f"127.0.0.1:{http_api.port},127.0.0.1:{mcp_tools.port}",
    }
    server = DaphneServer(env, folder / "daphne.log", django_db_blocker)
    server.manage("migrate", "--noinput")
    server.start(timeout=90)  # a loaded machine (2 cores, many test runs) starts it slowly
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser(csp_watch: CspWatch) -> Iterator[Browser]:
    # Module scope, not session: while Playwright's sync API is active it holds an event
    # loop on this thread, and every async test collected after it would fail.
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        new_context = browser.new_context

        def watched_context(**options) -> BrowserContext:
            context = new_context(**options)
            csp_watch.attach(context)
            return context

        # Every context a test opens, through this fixture's page or its own.
        browser.new_context = watched_context
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    yield page
    context.close()


def pause(page: Page) -> Callable[[float], None]:
    """wait_for's sleep in a browser test: Playwright's sync API delivers the page's events
    (console messages, the CSP binding) only while one of its calls runs."""
    return lambda seconds: page.wait_for_timeout(seconds * 1000)


def log_in(page: Page, server: Server, username: str) -> None:
    page.goto(f"{server.url}/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)
