"""Model set-up in the app (issue 14, item 12): while the offline model is in use (no
ANTHROPIC_API_KEY) the editor and the run page say so up front, with how to add a key; the
Model field offers the priced models and still takes any name."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import log_in
from tests.e2e.test_editor import create_flow, errors, new_user, open_editor
from tests.services import DaphneServer
from webapp.flows.models import Flow
from webapp.runs.models import Run

__all__ = ["errors"]  # the fixture: an uncaught exception in the page fails the test


def one_llm() -> dict:
    return {
        "graph": {"name": "Ask"},
        "nodes": [
            {"id": "q", "type": "input", "config": {"name": "q"}, "position": {"x": 0, "y": 100}},
            {
                "id": "ask",
                "type": "llm",
                "config": {"prompt": "Answer {{ q }}"},
                "position": {"x": 300, "y": 100},
            },
            {
                "id": "out",
                "type": "output",
                "config": {"name": "out"},
                "position": {"x": 600, "y": 100},
            },
        ],
        "edges": [
            {"source": "q", "target": "ask", "source_port": "value", "target_port": "q"},
            {"source": "ask", "target": "out", "source_port": "text", "target_port": "value"},
        ],
    }


@pytest.fixture(scope="module")
def offline_server(tmp_path_factory, django_db_blocker) -> Iterator[DaphneServer]:
    """Daphne with no API key at all: its runs call the offline model."""
    folder = tmp_path_factory.mktemp("offline")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "DJANGO_"))},
        "DATABASE_URL": f"sqlite:///{folder / 'offline.sqlite3'}",
        "DEBUG": "1",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "NO_PROXY": "127.0.0.1,localhost",
        "PYTHONUNBUFFERED": "1",
    }
    server = DaphneServer(env, folder / "daphne.log", django_db_blocker)
    server.manage("migrate", "--noinput")
    server.start()
    yield server
    server.stop()


def a_run(server: DaphneServer, flow_id: int) -> int:
    def make() -> int:
        flow = Flow.objects.get(pk=flow_id)
        return Run.objects.create(
            flow=flow, flow_version=flow.current(), started_by=flow.owner, inputs={"q": "hi"}
        ).pk

    return server.orm(make)


def test_the_offline_model_is_announced_in_the_editor_and_on_the_run_page(
    page: Page, offline_server: DaphneServer, errors: list[str]
) -> None:
    alice = new_user(offline_server)
    flow_id = create_flow(offline_server, alice, one_llm())
    log_in(page, offline_server, alice)
    open_editor(page, offline_server, flow_id)
    banner = page.get_by_test_id("offline-model-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("Offline model in use")
    expect(banner).to_contain_text("set ANTHROPIC_API_KEY")
    page.goto(f"{offline_server.url}/runs/{a_run(offline_server, flow_id)}/")
    expect(page.get_by_test_id("offline-model-banner")).to_be_visible()


def test_with_a_key_there_is_no_offline_banner_and_model_is_a_picker(
    page: Page, server, errors: list[str]
) -> None:
    alice = new_user(server)
    flow_id = create_flow(server, alice, one_llm())
    log_in(page, server, alice)
    open_editor(page, server, flow_id)
    expect(page.get_by_test_id("offline-model-banner")).to_have_count(0)

    page.click('[data-cell-id="ask"] .sy-title')
    form = page.locator('form[data-testid="node-form"][data-node="ask"][data-ready]')
    expect(form).to_be_visible()
    model = form.locator('input[name="f_model"]')
    choices = form.get_by_test_id("choices-model").locator("option")
    offered = choices.evaluate_all("(options) => options.map((o) => o.value)")
    assert "claude-sonnet-4" in offered and "claude-haiku-4-5" in offered
    assert "offline" not in offered
    assert model.get_attribute("list") == form.get_by_test_id("choices-model").get_attribute("id")
    # A name the price table does not know is still taken.
    model.fill("claude-sonnet-4-5-20250929")
    page.wait_for_function(
        "() => Switchyard.canvas.documentJSON().nodes.find(n => n.id === 'ask').config.model"
        " === 'claude-sonnet-4-5-20250929'"
    )
    model.fill("my-own-model")
    page.wait_for_function(
        "() => Switchyard.canvas.documentJSON().nodes.find(n => n.id === 'ask').config.model"
        " === 'my-own-model'"
    )
