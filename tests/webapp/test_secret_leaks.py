"""The secret-leak search on the embedded driver (issue 17): for each way a run uses a
credential — the http node's ``auth`` (bearer, API key, basic, custom headers), a team's
Anthropic key, an MCP server's auth — a run that succeeds and runs that fail (the upstream
refuses or breaks and echoes the headers it got, redirects to another origin, cannot be
reached), then the planted value (and the forms it takes on the wire) is searched for in
the flow and its versions, the exports, the events, every API answer and page about the
run (inspector, replay, share link), the node cache, every log line and the database dump
of every table. Alice owns the team "Research", bob edits in it.

The same search on the Celery driver: tests/scaleout/test_secret_leaks_celery.py."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.fakes.anthropic_server import FakeResponse
from tests.support.http_server import Reply, Seen, Server, json_reply, redirect, serve
from tests.support.leaks import PLANTED, assert_nowhere, every_place, leaks
from tests.support.mcp_server import McpTestServer
from tests.webapp.test_credentials import model_flow
from tests.webapp.test_mcp_servers import agent_flow
from webapp import execution
from webapp.credentials import service as credentials
from webapp.execution import plans
from webapp.flows import services
from webapp.mcpservers import service as mcp_servers
from webapp.runs.models import Run, RunEvent

pytestmark = pytest.mark.django_db(transaction=True)

BASIC = f"leaky-user:{PLANTED}"
HEADERS = f"X-Team-Token: {PLANTED}\nX-Other: plain-{PLANTED}"


def echo_headers(seen: Seen) -> str:
    return "; ".join(f"{k}: {v}" for k, v in sorted(seen.headers.items()))


@pytest.fixture(scope="module")
def upstream() -> Iterator[Server]:
    """An API that tells what it got: in a 200's body, a 401's and a 500's error text."""
    routes = {
        "/echo": lambda s: json_reply({"you_sent": s.headers}),
        "/deny": lambda s: Reply(401, f"bad credentials: {echo_headers(s)}".encode()),
        "/boom": lambda s: json_reply({"error": echo_headers(s)}, 500),
    }
    with serve(routes) as server:
        yield server


@pytest.fixture(scope="module")
def elsewhere() -> Iterator[Server]:
    """Another origin a redirect leads to; it echoes what it got."""
    with serve({"/echo": lambda s: json_reply({"you_sent": s.headers})}) as server:
        yield server


@pytest.fixture(scope="module")
def hop(elsewhere) -> Iterator[Server]:
    with serve({"/hop": lambda s: redirect(elsewhere.url("/echo"))}) as server:
        yield server


@pytest.fixture
def allow_listed(monkeypatch, upstream, elsewhere, hop):
    hosts = [f"127.0.0.1:{s.port}" for s in (upstream, elsewhere, hop)] + ["127.0.0.1:9"]
    monkeypatch.setenv("SWITCHYARD_HTTP_NODE_ENABLED", "1")
    monkeypatch.setenv("SWITCHYARD_HTTP_ALLOW_HOSTS", ",".join(hosts))
    plans.engine_services.cache_clear()
    yield
    plans.engine_services.cache_clear()


def http_flow(url: str) -> dict:
    return {
        "graph": {"name": "Authed call"},
        "nodes": [
            {"id": "item", "type": "input", "config": {"name": "item"}},
            # Cached: the cache key and row must not hold the secret either.
            {"id": "call", "type": "http", "config": {"url": url, "auth": "key", "cache": True}},
            {"id": "out", "type": "output", "config": {"name": "body"}},
        ],
        "edges": [
            {"source": "item", "target": "call", "source_port": "value", "target_port": "item"},
            {"source": "call", "target": "out", "source_port": "body", "target_port": "value"},
        ],
    }


def run_once(api, who: str, flow, inputs: dict) -> Run:
    started = api(who).post(f"/api/flows/{flow.pk}/runs", {"inputs": inputs})
    assert started.status_code == 201, started.content
    asyncio.run(execution.driver().wait_idle())
    return Run.objects.get(pk=started.json()["id"])


@dataclass(frozen=True)
class Call:
    """One http-node scenario: the credential's kind and value, where the node calls, and
    how the run ends."""

    kind: str
    value: str
    path: str  # on `upstream`, or "hop" (a redirect to another origin), or "closed"
    status: str
    error: str = ""


CALLS = {
    "bearer, 200 echoing the headers": Call("bearer", PLANTED, "/echo", "succeeded"),
    "api key, 401 echoing the headers": Call("api_key", PLANTED, "/deny", "failed", "HTTP 401"),
    "basic, 500 echoing the headers": Call("basic", BASIC, "/boom", "failed", "HTTP 500"),
    "headers, redirect to another origin": Call("headers", HEADERS, "hop", "succeeded"),
    "bearer, unreachable host": Call("bearer", PLANTED, "closed", "failed", "could not connect"),
}


@pytest.mark.parametrize("case", CALLS.values(), ids=list(CALLS))
def test_an_http_nodes_credential_leaks_nowhere(
    case, api, alice, bob, team, upstream, elsewhere, hop, allow_listed, caplog
):
    caplog.set_level(logging.DEBUG)
    credentials.create(alice, "key", case.kind, case.value, team.pk, header="X-Api-Key")
    url = {
        "hop": hop.url("/hop?id={{ item }}"),
        "closed": "http://127.0.0.1:9/echo?id={{ item }}",
    }.get(case.path, upstream.url(f"{case.path}?id={{{{ item }}}}"))
    flow = services.create(alice, "Authed", http_flow(url), team=team)
    before = len(upstream.seen) + len(elsewhere.seen)
    run = run_once(api, "bob", flow, {"item": "7"})
    assert run.status == case.status, run.error
    assert case.error in (run.error or "")
    if case.error.startswith("HTTP"):  # the upstream's error text, the secret cut out
        assert "bad credentials" in run.error or "error" in run.error
        assert "[redacted]" in run.error, run.error
    # The secret did go where it was meant to, and only there.
    if case.path.startswith("/"):
        sent = upstream.seen[-1].headers
        assert leaks({"request": str(sent)}, case.value), sent
    if case.path == "hop":
        assert elsewhere.seen[-1].path.startswith("/echo")
        assert not leaks({"redirected": str(elsewhere.seen[-1].headers)}, case.value)
        assert leaks({"first hop": str(hop.seen[-1].headers)}, case.value)
    if case.path == "closed":
        assert len(upstream.seen) + len(elsewhere.seen) == before
    places = every_place(bob, alice, run)
    places["caplog"] = "\n".join(r.getMessage() for r in caplog.records)
    assert_nowhere(places, [case.value])


@pytest.fixture
def no_server_key(anthropic_env, monkeypatch):
    """The fake Messages API, and no server-wide key: only the team's key calls it."""
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    # One client per key, made on the first fake server's URL: each test has its own.
    plans.keyed_model_client.cache_clear()
    plans.engine_services.cache_clear()
    yield anthropic_env
    plans.engine_services.cache_clear()
    plans.keyed_model_client.cache_clear()


MODEL_FAILURES = {
    "succeeds": None,
    "401 echoing the key": FakeResponse(status=401, error_message=f"invalid x-api-key {PLANTED}"),
    "403 echoing the key": FakeResponse(status=403, error_message=f"key {PLANTED} may not"),
    # Retried: the first attempt's error is in the log (node_retrying), the run succeeds.
    "500 echoing the key, then an answer": FakeResponse(
        status=500, error_message=f"upstream said {PLANTED}"
    ),
}


@pytest.mark.parametrize("failure", MODEL_FAILURES.values(), ids=list(MODEL_FAILURES))
def test_a_teams_anthropic_key_leaks_nowhere(failure, api, alice, bob, team, no_server_key, caplog):
    caplog.set_level(logging.DEBUG)
    credentials.create(alice, "claude", "anthropic_key", PLANTED, team.pk)
    flow = services.create(alice, "Ask", model_flow(), team=team)
    if failure is not None:
        no_server_key.enqueue(failure)
    run = run_once(api, "bob", flow, {"question": "hi"})
    calls = no_server_key.requests
    assert calls and all(
        PLANTED in r.headers.get("x-api-key", "") + r.headers.get("authorization", "")
        for r in calls
    )
    events = RunEvent.objects.filter(run=run).values_list("payload", flat=True)
    errors = [e["error"] for e in events if e["type"] in ("node_retrying", "node_failed")]
    if failure is None:
        assert run.status == "succeeded", run.error
    elif failure.status == 500:
        assert run.status == "succeeded", run.error
        assert len(calls) == 2 and "HTTP 500" in errors[0] and "[redacted]" in errors[0]
    else:
        assert run.status == "failed"
        assert f"HTTP {failure.status}" in run.error and "[redacted]" in run.error
    places = every_place(bob, alice, run)
    places["caplog"] = "\n".join(r.getMessage() for r in caplog.records)
    assert_nowhere(places, [PLANTED])


@pytest.fixture(scope="module")
def mcp_server() -> Iterator[McpTestServer]:
    with McpTestServer() as running:
        yield running


MCP_CALLS = {
    # whoami answers with the Authorization header it got; deny fails quoting the headers.
    "a tool that echoes the header": ("mcp:t/whoami", "#fake:tool=mcp__t__whoami {}"),
    "a tool that fails quoting the headers": ("mcp:t/deny", "#fake:tool=mcp__t__deny {}"),
}


@pytest.mark.parametrize(("tool", "prompt"), MCP_CALLS.values(), ids=list(MCP_CALLS))
def test_an_mcp_servers_credential_leaks_nowhere(
    tool, prompt, api, alice, bob, team, mcp_server, anthropic_env, monkeypatch, caplog
):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("SWITCHYARD_HTTP_ALLOW_HOSTS", f"127.0.0.1:{mcp_server.port}")
    monkeypatch.setenv("SWITCHYARD_MCP_TIMEOUT_S", "10")
    plans.engine_services.cache_clear()
    credentials.create(alice, "mcpkey", "bearer", PLANTED, team.pk)
    server = mcp_servers.create(alice, "t", mcp_server.url, "mcpkey", team_id=team.pk)
    mcp_servers.refresh(server)
    assert server.refresh_error == "", server.refresh_error
    flow = services.create(alice, "Agent", agent_flow(tool), team=team)
    run = run_once(api, "bob", flow, {"q": prompt})
    plans.engine_services.cache_clear()
    assert run.status == "succeeded", run.error
    assert mcp_server.authorization == f"Bearer {PLANTED}"
    places = every_place(bob, alice, run)
    places["model requests"] = str(anthropic_env.message_requests)
    # The test's MCP server runs in this process and logs what it got; the app's lines only.
    server_side = ("mcp.server", "sse_starlette", "uvicorn")
    places["caplog"] = "\n".join(
        r.getMessage() for r in caplog.records if not r.name.startswith(server_side)
    )
    assert_nowhere(places, [PLANTED])
