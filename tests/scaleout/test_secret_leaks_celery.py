"""The secret-leak search on the Celery driver (issue 17): the runs of
tests/webapp/test_secret_leaks.py — the http node's auth of each kind against an upstream
that echoes what it got (200, 401, 500), a redirect to another origin, an unreachable host;
a team's Anthropic key answered and refused; an MCP server's auth echoed by a tool and
quoted by a failing one — executed by a real ``celery worker`` (logging at DEBUG) on
PostgreSQL and Redis. The planted value is then searched for in every API answer and page
about each run, its share links, the dump of every table, the worker's log file (its
stdout and stderr) and this process's log lines."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import redis
from cryptography.fernet import Fernet
from django.contrib.auth import get_user_model
from django.test import Client

from tests.fakes.anthropic_server import FakeResponse
from tests.scaleout.conftest import finished, sound_log
from tests.support.http_server import Reply, Server, json_reply, redirect, serve
from tests.support.leaks import PLANTED, assert_nowhere, every_place, leaks
from tests.support.mcp_server import McpTestServer
from tests.webapp.test_credentials import model_flow
from tests.webapp.test_mcp_servers import agent_flow
from tests.webapp.test_secret_leaks import BASIC, HEADERS, echo_headers, http_flow
from webapp.accounts.models import ApiToken
from webapp.credentials import service as credentials
from webapp.execution import plans
from webapp.flows import services
from webapp.mcpservers import service as mcp_servers
from webapp.runs.models import Run
from webapp.teams.models import Membership, Role, Team

pytestmark = pytest.mark.django_db(transaction=True)


def redis_dump(url: str) -> str:
    """Every key of the session's Redis database and its value, whatever its type (the
    broker's queues, task results, the channel layer's groups and messages)."""
    client = redis.Redis.from_url(url)
    read = {
        b"string": client.get,
        b"list": lambda k: client.lrange(k, 0, -1),
        b"set": client.smembers,
        b"zset": lambda k: client.zrange(k, 0, -1),
        b"hash": client.hgetall,
        b"stream": lambda k: client.xrange(k),
    }
    dump = []
    for key in client.scan_iter():
        kind = client.type(key)
        dump.append(repr((key, read[kind](key) if kind in read else kind)))
    assert dump, "the broker's keys are there to search"
    return "\n".join(dump)


@pytest.fixture
def servers() -> Iterator[tuple[Server, Server, Server, McpTestServer]]:
    routes = {
        "/echo": lambda s: json_reply({"you_sent": s.headers}),
        "/deny": lambda s: Reply(401, f"bad credentials: {echo_headers(s)}".encode()),
        "/boom": lambda s: json_reply({"error": echo_headers(s)}, 500),
    }
    with (
        serve(routes) as upstream,
        serve({"/echo": lambda s: json_reply({"you_sent": s.headers})}) as elsewhere,
        serve({"/hop": lambda s: redirect(elsewhere.url("/echo"))}) as hop,
        McpTestServer() as mcp_server,
    ):
        yield upstream, elsewhere, hop, mcp_server


def test_no_credential_leaks_from_runs_the_workers_execute(
    cluster, servers, settings, monkeypatch, caplog
):
    caplog.set_level(logging.DEBUG)
    upstream, elsewhere, hop, mcp_server = servers
    key = Fernet.generate_key().decode()
    settings.CREDENTIAL_KEYS = [key]  # this process encrypts what the worker decrypts
    ports = [s.port for s in (upstream, elsewhere, hop, mcp_server)] + [9]
    allowed = ",".join(f"127.0.0.1:{port}" for port in ports)
    monkeypatch.setenv("SWITCHYARD_HTTP_ALLOW_HOSTS", allowed)  # to register the MCP server
    plans.engine_services.cache_clear()
    [worker] = cluster.workers(
        1,
        loglevel="DEBUG",
        SWITCHYARD_CREDENTIAL_KEYS=key,
        SWITCHYARD_HTTP_NODE_ENABLED="1",
        SWITCHYARD_HTTP_ALLOW_HOSTS=allowed,
        SWITCHYARD_MCP_TIMEOUT_S="10",
    )
    users = get_user_model().objects
    alice, bob = users.create_user("alice"), users.create_user("bob")
    team = Team.objects.create(name="Research")
    Membership.objects.create(team=team, user=alice, role=Role.OWNER)
    Membership.objects.create(team=team, user=bob, role=Role.EDITOR)
    api = Client(headers={"Authorization": f"Bearer {ApiToken.issue(bob, 't')[1]}"})
    model = cluster.model_server

    def run(doc: dict, inputs: dict, status: str) -> Run:
        flow = services.create(alice, doc["graph"]["name"], doc, team=team)
        started = api.post(f"/api/flows/{flow.pk}/runs", {"inputs": inputs}, "application/json")
        assert started.status_code == 201, started.content
        done = finished(Run.objects.get(pk=started.json()["id"]), timeout=90)
        assert done.status == status, done.error
        sound_log(done)
        return done

    runs: list[Run] = []
    # The http node, one credential of each kind.
    for name, kind, value in (
        ("bearer", "bearer", PLANTED),
        ("apikey", "api_key", PLANTED),
        ("basic", "basic", BASIC),
        ("headers", "headers", HEADERS),
    ):
        credentials.create(alice, name, kind, value, team.pk)
    for auth, url, status in (
        ("bearer", upstream.url("/echo?id={{ item }}"), "succeeded"),
        ("apikey", upstream.url("/deny?id={{ item }}"), "failed"),
        ("basic", upstream.url("/boom?id={{ item }}"), "failed"),
        ("headers", hop.url("/hop?id={{ item }}"), "succeeded"),
        ("bearer", "http://127.0.0.1:9/echo?id={{ item }}", "failed"),
    ):
        doc = http_flow(url)
        doc["nodes"][1]["config"]["auth"] = auth
        runs.append(run(doc, {"item": "7"}, status))
    assert [s.path.split("?")[0] for s in upstream.seen] == ["/echo", "/deny", "/boom"]
    for seen, value in zip(upstream.seen, (PLANTED, PLANTED, BASIC), strict=True):
        assert leaks({"sent": str(seen.headers)}, value)  # it went where it was meant to
    assert leaks({"first hop": str(hop.seen[-1].headers)}, HEADERS)
    assert not leaks({"redirected": str(elsewhere.seen[-1].headers)}, HEADERS)
    for failed in (runs[1], runs[2]):
        assert "[redacted]" in failed.error, failed.error

    # The team's Anthropic key: answered, then refused by an API that echoes it.
    credentials.create(alice, "claude", "anthropic_key", PLANTED, team.pk)
    runs.append(run(model_flow(), {"question": "hi"}, "succeeded"))
    model.enqueue(FakeResponse(status=401, error_message=f"invalid x-api-key {PLANTED}"))
    runs.append(run(model_flow(), {"question": "hi"}, "failed"))
    assert "HTTP 401" in runs[-1].error and "[redacted]" in runs[-1].error
    calls = [r for r in model.requests if r.path.startswith("/v1/messages")]
    assert len(calls) == 2 and all(
        PLANTED in r.headers.get("x-api-key", "") + r.headers.get("authorization", "")
        for r in calls
    ), [r.headers for r in calls]

    # An MCP server's auth, echoed by one tool and quoted by another that fails.
    credentials.create(alice, "mcpkey", "bearer", PLANTED, team.pk)
    server = mcp_servers.create(alice, "t", mcp_server.url, "mcpkey", team_id=team.pk)
    mcp_servers.refresh(server)
    plans.engine_services.cache_clear()
    assert server.refresh_error == "", server.refresh_error
    for tool in ("whoami", "deny"):
        doc = agent_flow(f"mcp:t/{tool}")
        runs.append(run(doc, {"q": f"#fake:tool=mcp__t__{tool} {{}}"}, "succeeded"))
    assert mcp_server.authorization == f"Bearer {PLANTED}"

    places: dict[str, str] = {}
    for done in runs:
        for place, text in every_place(bob, alice, done).items():
            places[f"run {done.pk}: {place}"] = text
    places["redis"] = redis_dump(settings.REDIS_URL)
    places["worker log"] = worker.log()
    assert "DEBUG" in places["worker log"] and "succeeded" in places["worker log"]
    places["model requests"] = str(model.message_requests)
    server_side = ("mcp.server", "sse_starlette", "uvicorn")
    places["caplog"] = "\n".join(
        r.getMessage() for r in caplog.records if not r.name.startswith(server_side)
    )
    assert_nowhere(places, [PLANTED, BASIC, HEADERS])
