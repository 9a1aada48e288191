"""End-to-end fixtures: the real Daphne server in a subprocess on its own SQLite file,
the fake Anthropic API on loopback, and Debian's Chromium driven by Playwright.

Every browser context reports Content-Security-Policy violations (the page's
``securitypolicyviolation`` events, and the console's CSP errors); a test during which
any page broke the policy fails at teardown, with what was refused and where.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, sync_playwright

from tests.fakes.anthropic_server import FakeAnthropic
from tests.services import PASSWORD, Server, free_port

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
def server(tmp_path_factory, model_server) -> Iterator[Server]:
    port = free_port()
    database = tmp_path_factory.mktemp("e2e") / "e2e.sqlite3"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "DJANGO_"))},
        "DATABASE_URL": f"sqlite:///{database}",
        "ANTHROPIC_API_KEY": "test-key",
        "ANTHROPIC_BASE_URL": model_server.url,
        "DEBUG": "1",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "NO_PROXY": "127.0.0.1,localhost",
    }
    url = f"http://127.0.0.1:{port}"
    server = Server(url, env)
    server.manage("migrate", "--noinput")
    log = open(database.with_suffix(".log"), "w")  # noqa: SIM115 - closed at teardown
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "daphne",
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "webapp.asgi:application",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(database.with_suffix(".log").read_text()) from None
            time.sleep(0.1)
    yield server
    process.terminate()
    process.wait(timeout=10)
    log.close()


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


def log_in(page: Page, server: Server, username: str) -> None:
    page.goto(f"{server.url}/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)
