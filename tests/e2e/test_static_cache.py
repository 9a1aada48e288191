"""The editor's second load asks the server for no static file (webapp/core/assets.py).

Every script, module (relative imports included), stylesheet and X6 come from
/static/v/<version>/..., which the browser keeps: opening the editor again costs the page
and its API calls only. Before, each load revalidated ~45 files, about a second on the one
Daphne process before the editor's code could start (bench/editor_open.py).
"""

from __future__ import annotations

import re

from playwright.sync_api import Page

from tests.e2e.conftest import Server, log_in
from tests.e2e.test_editor import READY, create_flow, new_user
from webapp.flows import services


def test_a_second_editor_load_fetches_no_static_file_from_the_server(server: Server, page: Page):
    username = new_user(server)
    flow_id = create_flow(server, username, services.starter_graph("Cached"))
    log_in(page, server, username)
    page.goto(f"{server.url}/flows/{flow_id}/")
    page.wait_for_function(READY)
    page.wait_for_load_state("networkidle")
    first = static_resources(page)
    # Every static URL is versioned, the modules that editor.js imports among them.
    assert any(name.endswith("/js/canvas/panel.js") for name, _ in first)
    assert all(re.search(r"/static/v/[0-9a-f]{12}/", name) for name, _ in first), first

    page.goto(f"{server.url}/flows/{flow_id}/")
    page.wait_for_function(READY)
    page.wait_for_load_state("networkidle")
    again = static_resources(page)
    assert {name for name, _ in again} == {name for name, _ in first}
    # transferSize 0: taken from the browser's cache; a revalidation (304) would be ~300.
    assert [name for name, size in again if size != 0] == []
    # ... and the page works from its cached modules.
    assert page.evaluate("Switchyard.canvas.graph.getNodes().length") == 2


def static_resources(page: Page) -> list[tuple[str, int]]:
    """(URL, bytes over the network) of each static file this page load used."""
    return [
        (name, size)
        for name, size in page.evaluate(
            "performance.getEntriesByType('resource').map((r) => [r.name, r.transferSize])"
        )
        if "/static/" in name
    ]
