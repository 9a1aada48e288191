"""MCP tools in a real browser, the whole way: alice registers an MCP server (a real one,
the SDK's, which the deployment allow-lists) on the settings page and sees its tools listed
at once, refreshes them, opens an agent's form in the editor, finds the server's tools in the
picker with their descriptions, ticks one, runs the flow (the fake model calls that tool),
and reads the call, its arguments and its result in the node's inspector. The server saw one
handshake for the run, and the run closed its session."""

from __future__ import annotations

import json

from playwright.sync_api import Page, expect

from tests.e2e.conftest import Server, log_in
from tests.e2e.test_editor import doc, errors, new_user, open_editor  # noqa: F401 - the fixture
from tests.e2e.test_runs import TIMEOUT_MS, start_run, step
from tests.support.mcp_server import McpTestServer
from tests.support.wait import wait_for


def agent_flow() -> dict:
    return {
        "graph": {"name": "Ask the docs"},
        "nodes": [
            {"id": "q", "type": "input", "config": {"name": "q"}, "position": {"x": 40, "y": 120}},
            {
                "id": "agent",
                "type": "agent",
                "config": {"prompt": "{{ q }}", "tools": []},
                "position": {"x": 320, "y": 120},
            },
            {
                "id": "out",
                "type": "output",
                "config": {"name": "answer"},
                "position": {"x": 620, "y": 120},
            },
        ],
        "edges": [
            {"source": "q", "target": "agent", "source_port": "value", "target_port": "q"},
            {"source": "agent", "target": "out", "source_port": "text", "target_port": "value"},
        ],
    }


def test_alice_registers_an_mcp_server_picks_its_tool_and_sees_the_call_in_the_inspector(
    page: Page,
    server: Server,
    mcp_tools: McpTestServer,
    errors: list[str],  # noqa: F811
) -> None:
    alice = new_user(server)
    log_in(page, server, alice)

    # Register: the tools are listed at once, no second step needed.
    page.goto(f"{server.url}/settings/mcp-servers/")
    form = page.get_by_test_id("mcp-server-form")
    form.locator("input[name=name]").fill("docs")
    form.locator("input[name=url]").fill(mcp_tools.url)
    form.get_by_role("button", name="Register server").click()
    card = page.get_by_test_id("mcp-server-docs")
    # Registering lists the tools: a round trip to the server, slow on a loaded machine.
    expect(card).to_contain_text(mcp_tools.url, timeout=TIMEOUT_MS)
    tools = card.get_by_test_id("mcp-tools")
    expect(tools).to_contain_text("mcp:docs/echo — Say the text back.")
    notice = page.get_by_test_id("mcp-notice")
    expect(notice).to_have_text("Registered. “docs” lists 7 tools.")
    # Refresh asks the server again.
    listed = len(mcp_tools.rpcs("tools/list"))
    card.get_by_role("button", name="Refresh docs").click()
    expect(notice).to_have_text("“docs” lists 7 tools.", timeout=TIMEOUT_MS)
    wait_for(lambda: len(mcp_tools.rpcs("tools/list")) > listed, timeout=10, message="a refresh")
    expect(page.get_by_test_id("mcp-server-docs").get_by_test_id("mcp-tools")).to_contain_text(
        "mcp:docs/add — Add two integers."
    )

    # The editor: the agent's picker offers the server's tools, described.
    def create() -> int:
        from django.contrib.auth import get_user_model

        from webapp.flows import services

        user = get_user_model().objects.get(username=alice)
        return services.create(user, "Ask the docs", agent_flow()).pk

    flow_id = server.orm(create)
    open_editor(page, server, flow_id)
    page.click('[data-cell-id="agent"] .sy-title')
    form = page.locator('form[data-testid="node-form"][data-node="agent"][data-ready]')
    expect(form).to_be_visible()
    picker = form.get_by_test_id("tools-mcp-docs")
    expect(picker).to_contain_text("docs")
    echo = picker.locator("label", has=page.locator('input[value="mcp:docs/echo"]'))
    expect(echo).to_contain_text("Say the text back.")
    expect(
        picker.locator("label", has=page.locator('input[value="mcp:docs/add"]'))
    ).to_contain_text("Add two integers.")
    page.wait_for_load_state("networkidle")
    echo.locator("input").check()
    page.wait_for_function(
        """() => Switchyard.canvas.documentJSON().nodes.find(n => n.id === 'agent')
            .config.tools?.includes('mcp:docs/echo')"""
    )
    expect(form.locator(".field-error, [data-testid^=error-]")).to_have_count(0)
    page.keyboard.press("Control+s")
    expect(page.get_by_test_id("version")).to_have_text("v2")
    saved = next(n for n in doc(page)["nodes"] if n["id"] == "agent")["config"]
    assert saved["tools"] == ["mcp:docs/echo"]

    # Run: the fake model calls the tool; the run makes one handshake and closes its session.
    handshakes = len(mcp_tools.rpcs("initialize"))
    prompt = '#fake:tool=mcp__docs__echo {"text": "hello from alice"}'
    run_id = start_run(page, {"q": prompt})
    # Generous: the server's first model call loads the SDK, slow on a loaded machine.
    expect(page.get_by_test_id("run-status")).to_have_attribute(
        "data-status", "succeeded", timeout=4 * TIMEOUT_MS
    )
    expect(step(page, "agent")).to_have_attribute("data-status", "done")
    assert len(mcp_tools.rpcs("initialize")) == handshakes + 1
    (call,) = [r for r in mcp_tools.requests if r.get("rpc") == "tools/call"][-1:]
    session = call["headers"]["mcp-session-id"]
    wait_for(lambda: session in mcp_tools.deletes(), timeout=10, message="the session closed")

    # The run's page: the inspector shows the call as the picker named it, its arguments,
    # its result and how long it took.
    page.goto(f"{server.url}/runs/{run_id}/")
    page.wait_for_selector("html[data-replay=ready]", timeout=TIMEOUT_MS)
    page.wait_for_function(
        "() => document.querySelectorAll('[data-cell-id] .sy-node.st-done').length === 3"
    )
    page.locator('[data-cell-id="agent"]').first.click()
    inspector = page.get_by_test_id("inspector")
    turns = inspector.get_by_test_id("inspector-turns")
    expect(turns).to_be_visible()
    if turns.get_attribute("open") is None:
        turns.locator("summary").first.click()
    used = turns.get_by_test_id("inspector-tool-use")
    expect(used).to_contain_text("mcp:docs/echo")
    assert json.loads(used.locator("pre").inner_text()) == {"text": "hello from alice"}
    result = turns.get_by_test_id("inspector-tool")
    expect(result).to_contain_text("mcp:docs/echo")
    expect(result.locator("pre")).to_have_text("echo: hello from alice")
    expect(result).to_contain_text(" ms")
    expect(inspector).to_contain_text("tool results: echo: hello from alice")
