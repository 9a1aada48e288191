"""MCP servers in the web app: registering, refreshing (against a real MCP server built with
the SDK, on 127.0.0.1, allow-listed as a deployment would), the agent's tools picker, and a
team's agent run calling a tool with the team's credential, through the fake Messages API.

Alice owns the team "Research", bob edits in it, carol views, dave is a stranger. A planted
secret is searched for everywhere a value could leak."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator

import pytest
from asgiref.sync import sync_to_async
from django.test import Client

from tests.graphs.support import flow as document
from tests.graphs.support import node
from tests.support.mcp_server import McpTestServer
from tests.webapp.conftest import JSON
from tests.webapp.test_credentials import stored_text
from webapp import execution
from webapp.accounts.models import ApiToken
from webapp.credentials import service as credentials
from webapp.execution import plans
from webapp.flows import services
from webapp.mcpservers import service
from webapp.mcpservers.models import McpServer
from webapp.runs.models import Run

PLANTED = "sk-planted-mcp-7c2f-do-not-leak"


@pytest.fixture(scope="module")
def mcp_server() -> Iterator[McpTestServer]:
    with McpTestServer() as running:
        yield running


@pytest.fixture
def allow_listed(monkeypatch, mcp_server):
    monkeypatch.setenv("SWITCHYARD_HTTP_ALLOW_HOSTS", f"127.0.0.1:{mcp_server.port}")
    monkeypatch.setenv("SWITCHYARD_MCP_TIMEOUT_S", "10")
    plans.engine_services.cache_clear()
    yield
    plans.engine_services.cache_clear()


@pytest.fixture
def not_allow_listed(monkeypatch):
    monkeypatch.delenv("SWITCHYARD_HTTP_ALLOW_HOSTS", raising=False)
    plans.engine_services.cache_clear()
    yield
    plans.engine_services.cache_clear()


def register(api, who: str, **body):
    return api(who).post(
        "/api/mcp-servers", {"name": "tools", "url": "https://mcp.example.com/mcp", **body}
    )


# ---- Registering, and who may do what ---------------------------------------------------


def test_owners_register_editors_use_viewers_and_strangers_see_nothing(api, alice, team):
    assert register(api, "bob", team=team.pk).status_code == 403
    assert register(api, "carol", team=team.pk).status_code == 403
    assert register(api, "dave", team=team.pk).status_code == 404
    made = register(api, "alice", team=team.pk)
    assert made.status_code == 201, made.content
    body = made.json()
    assert body["name"] == "tools" and body["team_name"] == "Research"
    assert body["tools"] == [] and body["refreshed"] is None and body["can_change"] is True
    server_id = body["id"]

    def names(who: str) -> list[str]:
        return [s["name"] for s in api(who).get("/api/mcp-servers").json()["items"]]

    assert names("alice") == names("bob") == ["tools"]
    assert names("carol") == names("dave") == []
    assert api("bob").get("/api/mcp-servers").json()["items"][0]["can_change"] is False
    for who, status in (("dave", 404), ("carol", 403), ("bob", 403)):
        assert api(who).delete(f"/api/mcp-servers/{server_id}").status_code == status
    for who, status in (("dave", 404), ("carol", 403)):
        assert api(who).post(f"/api/mcp-servers/{server_id}/refresh").status_code == status
    assert api("alice").delete(f"/api/mcp-servers/{server_id}").status_code == 204
    assert not McpServer.objects.exists()


def test_a_personal_server_is_its_owners_alone(api, alice, bob):
    made = register(api, "alice")
    assert made.status_code == 201
    server_id = made.json()["id"]
    assert api("bob").get("/api/mcp-servers").json()["items"] == []
    assert api("bob").post(f"/api/mcp-servers/{server_id}/refresh").status_code == 404
    assert api("bob").delete(f"/api/mcp-servers/{server_id}").status_code == 404
    # Names are unique per owner, not across owners.
    assert register(api, "bob").status_code == 201
    again = register(api, "alice")
    assert again.status_code == 400
    assert again.json()["detail"] == "you already have an MCP server named tools"


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://10.0.0.5/mcp", "the URL cannot be used: refused: 10.0.0.5 is a private address"),
        (
            "http://127.0.0.1:9/mcp",
            "the URL cannot be used: refused: 127.0.0.1 is a loopback address",
        ),
        (
            "http://169.254.169.254/mcp",
            "the URL cannot be used: refused: 169.254.169.254 is a link-local address "
            "(the cloud metadata service)",
        ),
        (
            "ftp://mcp.example.com/",
            "the URL cannot be used: refused: scheme 'ftp' is not allowed (only http and https)",
        ),
        (
            "https://me:pw@mcp.example.com/",
            "the URL cannot be used: refused: credentials in the URL (user:password@) are not "
            "allowed",
        ),
    ],
)
def test_a_url_the_ssrf_policy_refuses_is_refused_at_registration_naming_why(
    api, alice, not_allow_listed, url, why
):
    refused = register(api, "alice", url=url)
    assert refused.status_code == 400
    assert refused.json()["detail"] == why
    assert refused.json()["errors"] == [{"path": "body.url", "message": why}]
    assert not McpServer.objects.exists()


def test_names_and_auth_are_checked(api, alice, team):
    assert register(api, "alice", name="has space").status_code == 422
    assert register(api, "alice", name="a/b").status_code == 422
    missing = register(api, "alice", auth="nope")
    assert missing.status_code == 400
    assert missing.json()["detail"] == "there is no credential named nope among your credentials"
    credentials.create(alice, "claude", "anthropic_key", PLANTED)
    wrong = register(api, "alice", auth="claude")
    assert wrong.json()["detail"].startswith("credential claude is a anthropic_key credential")
    # A team's server takes the team's credentials, not its owner's own.
    credentials.create(alice, "mine", "bearer", PLANTED)
    other = register(api, "alice", auth="mine", team=team.pk)
    assert (
        other.json()["detail"] == "there is no credential named mine among the team's credentials"
    )
    credentials.create(alice, "teamkey", "bearer", PLANTED, team.pk)
    assert register(api, "alice", auth="teamkey", team=team.pk).status_code == 201


# ---- Refreshing ---------------------------------------------------------------------------


def test_refresh_lists_the_servers_tools_for_editors(api, alice, team, mcp_server, allow_listed):
    made = register(api, "alice", name="t", url=mcp_server.url, team=team.pk)
    assert made.status_code == 201, made.content
    refreshed = api("bob").post(f"/api/mcp-servers/{made.json()['id']}/refresh")
    assert refreshed.status_code == 200, refreshed.content
    body = refreshed.json()
    assert body["refresh_error"] is None and body["refreshed"] is not None
    tools = {t["name"]: t for t in body["tools"]}
    assert sorted(tools) == [
        f"mcp:t/{n}" for n in ("add", "big", "deny", "echo", "fail", "hang", "whoami")
    ]
    assert tools["mcp:t/add"]["tool"] == "add"
    assert tools["mcp:t/add"]["description"] == "Add two integers."
    assert sorted(tools["mcp:t/add"]["input_schema"]["required"]) == ["a", "b"]
    assert McpServer.objects.get().tools[0]["name"] == "echo"


def test_a_refresh_refused_by_the_policy_says_why_and_keeps_the_tools(
    api, alice, mcp_server, monkeypatch
):
    monkeypatch.setenv("SWITCHYARD_HTTP_ALLOW_HOSTS", f"127.0.0.1:{mcp_server.port}")
    plans.engine_services.cache_clear()
    server = service.create(alice, "t", mcp_server.url)
    service.refresh(server)
    assert len(server.tools) == 7
    monkeypatch.delenv("SWITCHYARD_HTTP_ALLOW_HOSTS")
    plans.engine_services.cache_clear()
    try:
        body = api("alice").post(f"/api/mcp-servers/{server.pk}/refresh").json()
    finally:
        plans.engine_services.cache_clear()
    assert body["refresh_error"].endswith("refused: 127.0.0.1 is a loopback address")
    assert len(body["tools"]) == 7  # what was listed before is not lost


def test_a_listing_past_the_cap_keeps_what_fits_and_says_so():
    tools = [{"name": f"t{i}", "description": "d" * 10_000, "input_schema": {}} for i in range(30)]
    kept, note = service.capped(tools)
    assert 0 < len(kept) < 30
    assert len(json.dumps(kept)) <= service.MAX_STORED_CHARS
    assert (
        note == f"kept {len(kept)} of 30 tools: a server's listing is capped at 200000 characters"
    )


# ---- The page and the picker --------------------------------------------------------------


def test_the_page_registers_refreshes_and_deletes(alice, mcp_server, allow_listed):
    client = Client()
    client.force_login(alice)
    refused = client.post(
        "/settings/mcp-servers/new/", {"name": "t", "url": "http://10.1.2.3/mcp", "team": ""}
    )
    assert refused.status_code == 400
    assert "refused: 10.1.2.3 is a private address" in refused.content.decode()
    made = client.post("/settings/mcp-servers/new/", {"name": "t", "url": mcp_server.url})
    assert made.status_code == 302
    server = McpServer.objects.get()
    page = client.post(f"/settings/mcp-servers/{server.pk}/refresh/", follow=True)
    text = page.content.decode()
    assert "“t” lists 7 tools." in text
    assert "<code>mcp:t/add</code> — Add two integers." in text
    client.post(f"/settings/mcp-servers/{server.pk}/delete/")
    assert not McpServer.objects.exists()
    assert "Manage MCP servers" in client.get("/settings/").content.decode()


def test_an_htmx_action_says_what_it_did_inside_the_section_it_swaps(
    alice, mcp_server, allow_listed
):
    client = Client()
    client.force_login(alice)
    htmx = {"HX-Request": "true"}
    made = client.post(
        "/settings/mcp-servers/new/", {"name": "t", "url": mcp_server.url}, headers=htmx
    )
    assert made.status_code == 200
    # htmx swaps #mcp-servers only: what happened must be said in it.
    section = made.content.decode().split('id="mcp-servers"', 1)[1]
    assert 'data-testid="mcp-notice"><li class="success">Registered. “t” lists 7 tools.' in section
    server = McpServer.objects.get()
    server.url = "http://10.1.2.3/mcp"  # somewhere the policy refuses
    server.save()
    refreshed = client.post(f"/settings/mcp-servers/{server.pk}/refresh/", headers=htmx)
    section = refreshed.content.decode().split('id="mcp-servers"', 1)[1]
    notice = section.split('data-testid="mcp-notice">', 1)[1].split("</ul>", 1)[0]
    assert notice.startswith('<li class="warning">“t”: ')  # its old tools are kept
    assert "10.1.2.3 is a private address" in notice


def node_form(user, flow, config: dict) -> str:
    client = Client()
    client.force_login(user)
    body = {"type": "agent", "node_id": "agent", "config": json.dumps(config)}
    return client.post(f"/flows/{flow.pk}/node-form/", body).content.decode()


def test_the_agents_tools_picker_offers_editors_the_teams_mcp_tools(
    alice, bob, carol, team, mcp_server, allow_listed
):
    server = service.create(alice, "t", mcp_server.url, team_id=team.pk)
    service.refresh(server)
    flow = services.create(alice, "Agent", services.starter_graph("Agent"), team=team)
    form = node_form(bob, flow, {"prompt": "hi", "tools": ["calculator"]})
    assert 'value="mcp:t/add"' in form and "Add two integers." in form
    # Under their server, apart from the built-in tools.
    group = form.split('data-testid="tools-mcp-t"', 1)[1].split("</fieldset>", 1)[0]
    assert 'value="mcp:t/add"' in group and 'value="calculator"' not in group
    assert 'value="calculator" checked' in form
    # An unknown tool of a known server is a problem on the field; viewers see no servers.
    checked = node_form(bob, flow, {"prompt": "hi", "tools": ["mcp:t/nope"]})
    assert "MCP server &#x27;t&#x27; lists no tool &#x27;nope&#x27;" in checked
    assert 'value="mcp:t/add"' not in node_form(carol, flow, {"prompt": "hi", "tools": []})


# ---- A run ---------------------------------------------------------------------------------


def agent_flow(*tools: str) -> dict:
    return {
        "graph": {"name": "Agent"},
        "nodes": [
            {"id": "q", "type": "input", "config": {"name": "q"}},
            {"id": "agent", "type": "agent", "config": {"prompt": "{{ q }}", "tools": list(tools)}},
            {"id": "out", "type": "output", "config": {"name": "answer"}},
        ],
        "edges": [
            {"source": "q", "target": "agent", "source_port": "value", "target_port": "q"},
            {"source": "agent", "target": "out", "source_port": "text", "target_port": "value"},
        ],
    }


@pytest.mark.django_db(transaction=True)
async def test_a_team_agent_calls_an_mcp_tool_with_the_teams_secret_which_leaks_nowhere(
    async_client, alice, bob, team, mcp_server, anthropic_env, allow_listed, caplog
):
    caplog.set_level(logging.DEBUG)
    await sync_to_async(credentials.create)(alice, "mcpkey", "bearer", PLANTED, team.pk)
    server = await sync_to_async(service.create)(
        alice, "t", mcp_server.url, "mcpkey", team_id=team.pk
    )
    await sync_to_async(service.refresh)(server)
    assert server.refresh_error == "", server.refresh_error
    doc = agent_flow("mcp:t/add", "mcp:t/whoami")
    flow = await sync_to_async(services.create)(alice, "Agent", doc, team=team)
    token = (await sync_to_async(ApiToken.issue)(bob, "t"))[1]
    headers = {"Authorization": f"Bearer {token}"}
    prompt = '#fake:tool=mcp__t__add {"a": 20, "b": 22}\n#fake:tool=mcp__t__whoami {}'
    started = await async_client.post(
        f"/api/flows/{flow.pk}/runs", {"inputs": {"q": prompt}}, content_type=JSON, headers=headers
    )
    assert started.status_code == 201, started.content
    run_id = started.json()["id"]
    await execution.driver().wait_idle()
    answer = await async_client.get(f"/api/runs/{run_id}", headers=headers)
    assert answer.json()["status"] == "succeeded", answer.json()["error"]
    # Both results reached the model; the server saw the secret, the model did not.
    assert answer.json()["outputs"] == {"answer": "tool results: 42; you sent [redacted]"}
    assert mcp_server.authorization == f"Bearer {PLANTED}"
    # The fake's request log, as GET /_fake/requests serves it.
    results = anthropic_env.message_requests[1]["messages"][-1]["content"]
    assert [r["content"] for r in results] == ["42", "you sent [redacted]"]
    events = await async_client.get(f"/api/runs/{run_id}/events", headers=headers)
    exported = await async_client.get(f"/api/flows/{flow.pk}/export", headers=headers)
    listed = await async_client.get("/api/mcp-servers", headers=headers)
    assert events.status_code == exported.status_code == listed.status_code == 200
    calls = [
        e["detail"]["tool_calls"]
        for e in events.json()["items"]
        if e["type"] == "node_finished" and e.get("node") == "agent"
    ]
    # In the order they finished (they run at once).
    assert sorted(c["name"] for c in calls[0]) == ["mcp__t__add", "mcp__t__whoami"]
    for text in (
        answer.content.decode(),
        events.content.decode(),
        exported.content.decode(),
        listed.content.decode(),
        json.dumps(anthropic_env.message_requests),
        await stored_text(run_id, flow.pk),
    ):
        assert PLANTED not in text
    # The app's own log lines (the test's MCP server, in this process, logs what it sends).
    server_side = ("mcp.server", "sse_starlette", "uvicorn")
    leaking = {
        r.name
        for r in caplog.records
        if PLANTED in r.getMessage() and not r.name.startswith(server_side)
    }
    assert leaking == set(), leaking


@pytest.mark.django_db(transaction=True)
async def test_a_personal_flow_cannot_reach_a_teams_server(
    async_client, alice, team, mcp_server, anthropic_env, allow_listed
):
    server = await sync_to_async(service.create)(alice, "t", mcp_server.url, team_id=team.pk)
    await sync_to_async(service.refresh)(server)
    flow = await sync_to_async(services.create)(alice, "Mine", agent_flow("mcp:t/add"))
    token = (await sync_to_async(ApiToken.issue)(alice, "t"))[1]
    headers = {"Authorization": f"Bearer {token}"}
    started = await async_client.post(
        f"/api/flows/{flow.pk}/runs", {"inputs": {"q": "hi"}}, content_type=JSON, headers=headers
    )
    assert started.status_code == 201, started.content
    await execution.driver().wait_idle()
    answer = (await async_client.get(f"/api/runs/{started.json()['id']}", headers=headers)).json()
    assert answer["status"] == "failed"
    assert "no MCP server named 't' is registered (known: none)" in answer["error"]


@pytest.mark.django_db(transaction=True)
def test_a_called_team_flow_calls_its_teams_server_not_its_callers(
    api, alice, team, mcp_server, anthropic_env, allow_listed
):
    team_server = service.create(alice, "t", mcp_server.url, team_id=team.pk)
    service.refresh(team_server)
    # Alice's own "t" lists the same tools but lives where nothing may go.
    McpServer.objects.create(
        owner=alice, name="t", url="http://10.0.0.9/mcp", tools=team_server.tools
    )
    child = document(
        node("text", "input", name="text"),
        node("agent", "agent", prompt="{{ text }}", tools=["mcp:t/echo"]),
        node("loud", "output", name="loud"),
        edges=[("text", "value", "agent", "text"), ("agent", "text", "loud", "value")],
        name="child",
    )
    child_flow = services.create(alice, "child", child, team=team)
    parent = document(
        node("q", "input", name="q"),
        node("call", "subflow", flow=str(child_flow.pk)),
        node("out", "output", name="a"),
        edges=[("q", "value", "call", "text"), ("call", "loud", "out", "value")],
        name="caller",
    )
    parent_flow = services.create(alice, "caller", parent)
    prompt = '#fake:tool=mcp__t__echo {"text": "hi"}'
    started = api("alice").post(f"/api/flows/{parent_flow.pk}/runs", {"inputs": {"q": prompt}})
    assert started.status_code == 201, started.content
    asyncio.run(execution.driver().wait_idle())
    run = Run.objects.get(pk=started.json()["id"])
    assert run.status == "succeeded", run.error
    assert run.outputs == {"a": "tool results: echo: hi"}
