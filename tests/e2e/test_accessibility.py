"""An axe-core audit of the pages people build and watch flows on: the flow list, the
editor, a run page and the share page report no serious or critical violations.

axe-core is vendored (static/vendor/axe.min.js, pinned in static/vendor/README.md) and
loaded only here, from the server's own static files so the page's Content-Security-Policy
admits it like any other script of the app's.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import log_in
from tests.e2e.test_runs import create_flow, flow_document, start_run

TIMEOUT_MS = 20_000
SEVERE = ("serious", "critical")


def audit(page: Page, server) -> list[str]:
    """The serious and critical violations axe finds on the page as it is now."""
    page.add_script_tag(url=f"{server.url}/static/vendor/axe.min.js")
    results = page.evaluate(
        """async () => {
            const r = await axe.run(document, {resultTypes: ["violations"]});
            return r.violations.map((v) => ({
                id: v.id, impact: v.impact, help: v.help,
                targets: v.nodes.slice(0, 5).map((n) => n.target.join(" ")),
            }));
        }"""
    )
    return [
        f"{v['impact']} {v['id']} ({v['help']}): {v['targets']}"
        for v in results
        if v["impact"] in SEVERE
    ]


@pytest.fixture
def alices_run(page: Page, server) -> tuple[int, int]:
    """Alice is logged in, owns a flow (with a note and a group), and has run it once:
    (flow id, run id)."""
    document = flow_document("Summarise {{ topic }}.")
    # A note and a group, so that what they draw is audited too.
    document["notes"] = [{"id": "why", "text": "Why a summary", "position": {"x": 40, "y": 10}}]
    document["groups"] = [
        {
            "id": "work",
            "title": "The work",
            "color": "purple",
            "position": {"x": 290, "y": 60},
            "size": {"width": 300, "height": 200},
            "nodes": ["write"],
        }
    ]
    username, flow_id, url = create_flow(server, document)
    log_in(page, server, username)
    page.goto(url)
    run_id = start_run(page)
    expect(page.get_by_test_id("run-status")).to_have_attribute(
        "data-status", "succeeded", timeout=TIMEOUT_MS
    )
    return flow_id, run_id


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_main_pages_have_no_serious_accessibility_violations(
    page: Page, server, alices_run, scheme: str
) -> None:
    flow_id, run_id = alices_run
    page.emulate_media(color_scheme=scheme)
    found: dict[str, list[str]] = {}
    for name, path, ready in [
        ("flow list", "/", "main"),
        ("editor", f"/flows/{flow_id}/", "html[data-canvas=ready]"),
        ("run page", f"/runs/{run_id}/", "[data-testid=run-status][data-status=succeeded]"),
        ("share page", f"/flows/{flow_id}/share/", "main"),
        ("approvals inbox", "/approvals/", "[data-testid=approval-inbox]"),
    ]:
        page.goto(server.url + path)
        page.wait_for_selector(ready, timeout=TIMEOUT_MS)
        if violations := audit(page, server):
            found[name] = violations
    assert found == {}, "\n".join(f"{k}: {v}" for k, vs in found.items() for v in vs)
