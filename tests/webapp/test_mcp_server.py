"""The MCP server at /mcp over real HTTP, on a Daphne server, with the official SDK's client.

The world: alice's team (bob edits, carol views) has a published flow "Greet" (its draft,
version 2, says something else), a published flow that always fails, and an unpublished
"Draft"; dave, a stranger, has a published flow of his own; erin is over her storage quota.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import httpx2
import pytest
from django.contrib.auth import get_user_model
from mcp import Client, ClientSession, types
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from graphs.spec import InputSpec
from tests.services import DaphneServer
from tests.support.wait import wait_for
from webapp.accounts.models import ApiToken, SignInFailures
from webapp.flows import services
from webapp.flows.versions import service as versions
from webapp.mcp import tools
from webapp.runs.models import Run, UserStorage
from webapp.teams.models import Membership, Role, Team


def greet_flow(greeting: str) -> dict:
    return {
        "graph": {"name": "Greet", "description": "Greets someone by name."},
        "nodes": [
            {"id": "who", "type": "input", "config": {"name": "who"}},
            {"id": "times", "type": "input", "config": {"name": "times", "default": 1}},
            {"id": "say", "type": "template", "config": {"template": greeting + " {{ who }}"}},
            {"id": "out", "type": "output", "config": {"name": "greeting"}},
            {"id": "count", "type": "output", "config": {"name": "times"}},
        ],
        "edges": [
            {"source": "who", "target": "say", "source_port": "value", "target_port": "who"},
            {"source": "say", "target": "out", "source_port": "text", "target_port": "value"},
            {"source": "times", "target": "count", "source_port": "value", "target_port": "value"},
        ],
    }


def failing_flow() -> dict:
    """Reads its text as JSON: prose fails the run."""
    return {
        "graph": {"name": "Parse"},
        "nodes": [
            {"id": "text", "type": "input", "config": {"name": "text"}},
            {"id": "parse", "type": "parse", "config": {"mode": "json"}},
            {"id": "out", "type": "output", "config": {"name": "value"}},
        ],
        "edges": [
            {"source": "text", "target": "parse", "source_port": "value", "target_port": "text"},
            {"source": "parse", "target": "out", "source_port": "value", "target_port": "value"},
        ],
    }


def slow_flow() -> dict:
    """topic -> llm -> answer: the offline model streams its reply word by word, slowly."""
    return {
        "graph": {"name": "Slow"},
        "nodes": [
            {"id": "topic", "type": "input", "config": {"name": "topic"}},
            {"id": "write", "type": "llm", "config": {"prompt": "Write about {{ topic }}."}},
            {"id": "answer", "type": "output", "config": {"name": "answer"}},
        ],
        "edges": [
            {"source": "topic", "target": "write", "source_port": "value", "target_port": "topic"},
            {"source": "write", "target": "answer", "source_port": "text", "target_port": "value"},
        ],
    }


WAIT_S = 2


@dataclass
class Live:
    server: DaphneServer
    tokens: dict[str, str]
    flows: dict[str, int]

    @property
    def url(self) -> str:
        return f"{self.server.url}/mcp"

    def tool(self, key: str, name: str) -> str:
        return tools.tool_name(self.flows[key], name)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, django_db_blocker) -> Iterator[Live]:
    folder = tmp_path_factory.mktemp("mcp")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "DJANGO_"))},
        "DATABASE_URL": f"sqlite:///{folder / 'db.sqlite3'}",
        "DEBUG": "1",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "NO_PROXY": "127.0.0.1,localhost",
        "PYTHONUNBUFFERED": "1",
        # A call waits this long; the slow flow's model takes several times as long.
        "SWITCHYARD_MCP_WAIT_S": str(WAIT_S),
        "SWITCHYARD_OFFLINE_DELAY_MS": "400",
    }
    server = DaphneServer(env, folder / "daphne.log", django_db_blocker)
    server.manage("migrate", "--noinput")

    def world() -> dict:
        users = {
            name: get_user_model().objects.create_user(name, password="x")
            for name in ("alice", "bob", "carol", "dave", "erin")
        }
        team = Team.objects.create(name="Research")
        for name, role in (("alice", Role.OWNER), ("bob", Role.EDITOR), ("carol", Role.VIEWER)):
            Membership.objects.create(team=team, user=users[name], role=role)
        greet = services.create(users["alice"], "Greet", greet_flow("Hello"), team=team)
        versions.publish(greet, users["alice"], 1)
        services.save(greet, users["alice"], greet_flow("Howdy"), 1)
        failing = services.create(users["alice"], "Parse JSON", failing_flow(), team=team)
        versions.publish(failing, users["alice"], 1)
        slow = services.create(users["alice"], "Slow", slow_flow(), team=team)
        versions.publish(slow, users["alice"], 1)
        draft = services.create(users["alice"], "Draft", greet_flow("Hi"), team=team)
        secret = services.create(users["dave"], "Secret", greet_flow("Psst"))
        versions.publish(secret, users["dave"], 1)
        hers = services.create(users["erin"], "Hers", greet_flow("Hey"))
        versions.publish(hers, users["erin"], 1)
        UserStorage.objects.create(user=users["erin"], stored_bytes=10**13)
        return {
            "tokens": {name: ApiToken.issue(user, "mcp")[1] for name, user in users.items()},
            "flows": {
                "greet": greet.pk,
                "failing": failing.pk,
                "slow": slow.pk,
                "draft": draft.pk,
                "secret": secret.pk,
                "hers": hers.pk,
            },
        }

    ids = server.orm(world)
    server.start()
    yield Live(server, ids["tokens"], ids["flows"])
    server.stop()
    log = server.process.log()
    assert "Traceback" not in log and "destroyed but it is pending" not in log, log
    # The SDK's session manager left its context before the loop stopped.
    assert "MCP server stopped" in log, log


@asynccontextmanager
async def connect(live: Live, token: str | None, **headers: str) -> AsyncIterator[ClientSession]:
    """An initialized session of the SDK's client (the 2025 handshake), as `token`'s user."""
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    timeout = httpx2.Timeout(30, read=60)
    async with (
        httpx2.AsyncClient(headers=headers, timeout=timeout, trust_env=False) as http,
        streamable_http_client(live.url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


async def tool_names(live: Live, who: str) -> list[str]:
    async with connect(live, live.tokens[who]) as session:
        return [tool.name for tool in (await session.list_tools()).tools]


def run_count(live: Live) -> int:
    return live.server.orm(Run.objects.count)


# Listing


async def test_initialize_names_the_server_and_offers_tools(live):
    async with connect(live, live.tokens["alice"]) as session:
        result = session.server_capabilities
        assert result is not None and result.tools is not None


async def test_an_editor_lists_the_published_flows_of_her_team_and_no_others(live):
    expected = sorted(
        [live.tool("greet", "Greet"), live.tool("failing", "Parse JSON"), live.tool("slow", "Slow")]
    )
    assert sorted(await tool_names(live, "alice")) == expected
    assert sorted(await tool_names(live, "bob")) == expected


async def test_a_viewer_sees_no_tool_of_a_flow_she_may_only_view(live):
    assert await tool_names(live, "carol") == []


async def test_a_strangers_flow_never_appears_and_he_sees_his_own(live):
    assert await tool_names(live, "dave") == [live.tool("secret", "Secret")]


async def test_a_tool_describes_its_flow_and_its_inputs(live):
    async with connect(live, live.tokens["bob"]) as session:
        listed = {tool.name: tool for tool in (await session.list_tools()).tools}
    greet = listed[live.tool("greet", "Greet")]
    assert greet.name == f"greet_{live.flows['greet']}"
    assert greet.title == "Greet"
    assert greet.description.startswith("Greets someone by name.")
    assert "'Greet' (published version 1)" in greet.description
    schema = greet.input_schema
    assert schema["required"] == ["who"]
    assert schema["properties"]["who"]["type"] == "string"
    assert schema["properties"]["times"]["type"] == "number"
    assert schema["properties"]["times"]["default"] == 1
    assert schema["additionalProperties"] is False
    assert set(greet.output_schema["properties"]["outputs"]["properties"]) == {"greeting", "times"}


async def test_a_cursor_continues_after_the_last_flow_and_a_bad_one_is_refused(live):
    greet = live.flows["greet"]
    async with connect(live, live.tokens["alice"]) as session:
        later = await session.list_tools(params=types.PaginatedRequestParams(cursor=str(greet)))
        assert live.tool("greet", "Greet") not in [tool.name for tool in later.tools]
        assert live.tool("slow", "Slow") in [tool.name for tool in later.tools]
        assert later.next_cursor is None
        with pytest.raises(MCPError) as raised:
            await session.list_tools(params=types.PaginatedRequestParams(cursor="x1"))
    assert raised.value.message == "invalid cursor 'x1'"


# Calling


async def test_a_call_runs_the_published_version_and_returns_its_outputs_and_run_url(live):
    name = live.tool("greet", "Greet")
    async with connect(live, live.tokens["bob"]) as session:
        result = await session.call_tool(name, {"who": "Ada", "times": 2})
    assert not result.is_error, result
    structured = result.structured_content
    # Version 1 is published; version 2 (the draft, "Howdy") is not what callers run.
    assert structured["outputs"] == {"greeting": "Hello Ada", "times": 2}
    assert structured["status"] == "succeeded"
    assert json.loads(result.content[0].text) == structured
    run_id = structured["run_id"]
    assert structured["run_url"] == f"{live.server.url}/runs/{run_id}/"

    def recorded() -> tuple:
        run = Run.objects.select_related("flow_version", "started_by").get(pk=run_id)
        return run.trigger, run.flow_version.number, run.started_by.username, run.inputs

    assert live.server.orm(recorded) == ("mcp", 1, "bob", {"who": "Ada", "times": 2})


async def test_a_failed_run_is_a_tool_error_with_its_error_and_url(live):
    async with connect(live, live.tokens["alice"]) as session:
        result = await session.call_tool(live.tool("failing", "Parse JSON"), {"text": "no JSON"})
    assert result.is_error
    text = result.content[0].text
    assert text.startswith("The run failed: ")
    assert re.search(rf"See {re.escape(live.server.url)}/runs/\d+/$", text), text
    assert result.structured_content["status"] == "failed"
    assert result.structured_content["error"]


async def test_a_run_still_going_when_the_wait_ends_is_a_tool_error_and_goes_on(live):
    async with connect(live, live.tokens["alice"]) as session:
        result = await session.call_tool(live.tool("slow", "Slow"), {"topic": uuid.uuid4().hex})
    assert result.is_error
    assert result.content[0].text.startswith(f"The run is still going after {WAIT_S} s")
    run_id = result.structured_content["run_id"]
    assert result.structured_content["status"] in ("queued", "running")

    def status() -> str:
        return Run.objects.get(pk=run_id).status

    wait_for(lambda: live.server.orm(status) == "succeeded", timeout=60, message="the run")


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        ({}, "input 'who' is required"),
        ({"who": 3}, "input 'who' must be a string, not a number"),
        ({"who": "Ada", "times": "twice"}, "input 'times' must be a number, not a string"),
        ({"who": "Ada", "tone": "dry"}, "unknown input 'tone' (inputs: times, who)"),
        ({"who": "A\x00da"}, "arguments.who must not contain NUL characters"),
    ],
)
async def test_wrong_arguments_are_a_tool_error_naming_the_input_and_start_nothing(
    live, arguments, says
):
    before = run_count(live)
    async with connect(live, live.tokens["alice"]) as session:
        result = await session.call_tool(live.tool("greet", "Greet"), arguments)
    assert result.is_error
    assert says in result.content[0].text
    assert "Nothing was run" in result.content[0].text
    assert run_count(live) == before


@pytest.mark.parametrize(
    ("who", "flow", "name"),
    [
        ("carol", "greet", "Greet"),  # a viewer
        ("alice", "draft", "Draft"),  # unpublished
        ("alice", "secret", "Secret"),  # a stranger's
        ("bob", "greet", "Renamed"),  # a name the flow does not have
    ],
)
async def test_a_tool_the_user_may_not_run_is_unknown_and_starts_nothing(live, who, flow, name):
    before = run_count(live)
    async with connect(live, live.tokens[who]) as session:
        with pytest.raises(MCPError) as raised:
            await session.call_tool(live.tool(flow, name), {"who": "Ada"})
    assert raised.value.message == f"Unknown tool: {live.tool(flow, name)}"
    assert run_count(live) == before


async def test_a_user_over_a_run_limit_gets_a_tool_error_and_no_run(live):
    before = run_count(live)
    async with connect(live, live.tokens["erin"]) as session:
        result = await session.call_tool(live.tool("hers", "Hers"), {"who": "Ada"})
    assert result.is_error
    assert result.content[0].text.startswith("The run was refused: ")
    assert "storage quota" in result.content[0].text
    assert run_count(live) == before


async def test_the_2026_protocol_lists_and_calls_too(live):
    headers = {"Authorization": f"Bearer {live.tokens['bob']}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30, trust_env=False) as http,
        Client(streamable_http_client(live.url, http_client=http), mode="auto") as client,
    ):
        assert client.protocol_version >= "2026"
        listed = await client.list_tools()
        result = await client.call_tool(live.tool("greet", "Greet"), {"who": "Eve"})
    assert live.tool("greet", "Greet") in [tool.name for tool in listed.tools]
    assert result.structured_content["outputs"]["greeting"] == "Hello Eve"


# Who may call


def post_initialize(live: Live, **headers: str) -> httpx.Response:
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "curl", "version": "1"},
        },
    }
    headers = {"Accept": "application/json, text/event-stream", **headers}
    return httpx.post(live.url, json=body, headers=headers, timeout=30, trust_env=False)


def test_without_a_token_the_answer_is_401_with_a_bearer_challenge(live):
    answer = post_initialize(live)
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == 'Bearer realm="switchyard"'
    assert "API token is required" in answer.json()["error"]["message"]


def test_an_unknown_token_is_401_invalid_token(live):
    answer = post_initialize(live, Authorization="Bearer sy_not-a-token")
    assert answer.status_code == 401
    assert 'error="invalid_token"' in answer.headers["WWW-Authenticate"]


def mcp_error(error: BaseException) -> MCPError:
    """The MCPError an exception is or holds (the client's task groups wrap it in a group)."""
    while isinstance(error, BaseExceptionGroup):
        assert len(error.exceptions) == 1, error
        error = error.exceptions[0]
    assert isinstance(error, MCPError), error
    return error


async def test_the_sdk_client_reports_the_refusal(live):
    with pytest.raises(BaseException) as raised:
        async with connect(live, None):
            pass
    assert "API token is required" in mcp_error(raised.value).message


async def test_a_revoked_token_stops_working(live):
    def issue() -> str:
        return ApiToken.issue(get_user_model().objects.get(username="bob"), "temp")[1]

    token = live.server.orm(issue)
    async with connect(live, token) as session:
        assert (await session.list_tools()).tools
        live.server.orm(ApiToken.objects.filter(name="temp").delete)
        with pytest.raises(MCPError) as raised:
            await session.list_tools()
    assert "unknown or revoked" in raised.value.message


def address_failures(live: Live) -> int:
    def count() -> int:
        row = SignInFailures.objects.filter(scope="address", key="127.0.0.1").first()
        return row.failures if row is not None else 0

    return live.server.orm(count)


def test_an_unknown_token_counts_against_the_address_and_a_locked_address_gets_429(live):
    before = address_failures(live)
    post_initialize(live, Authorization="Bearer sy_guess")
    assert address_failures(live) == before + 1

    def lock(until: dt.datetime | None) -> None:
        SignInFailures.objects.filter(scope="address", key="127.0.0.1").update(locked_until=until)

    live.server.orm(lambda: lock(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=90)))
    try:
        # Even the right token gets no answer while the address is locked.
        answer = post_initialize(live, Authorization=f"Bearer {live.tokens['alice']}")
    finally:
        live.server.orm(lambda: lock(None))
    assert answer.status_code == 429
    assert 80 <= int(answer.headers["Retry-After"]) <= 90


def test_a_foreign_origin_is_403_and_the_servers_own_is_let_through(live):
    token = f"Bearer {live.tokens['alice']}"
    foreign = post_initialize(live, Authorization=token, Origin="http://evil.example")
    assert foreign.status_code == 403
    own = post_initialize(live, Authorization=token, Origin=live.server.url)
    assert own.status_code == 200, own.text
    assert own.json()["result"]["serverInfo"]["name"] == "switchyard"
    assert own.headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
    assert foreign.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_only_post_is_served(live, method):
    headers = {"Authorization": f"Bearer {live.tokens['alice']}", "Accept": "text/event-stream"}
    answer = httpx.request(method, live.url, headers=headers, timeout=30, trust_env=False)
    assert answer.status_code == 405
    assert answer.headers["Allow"] == "POST"


def test_a_host_not_allowed_is_refused(live):
    answer = post_initialize(live, Authorization=f"Bearer {live.tokens['alice']}", Host="evil")
    assert answer.status_code == 400


# The shapes, without a server


def test_tool_names_are_safe_unique_identifiers():
    assert tools.tool_name(12, "Summarize!") == "summarize_12"
    assert tools.tool_name(7, "Ünïcode — and SPACES") == "unicode_and_spaces_7"
    assert tools.tool_name(9, "日本") == "flow_9"
    long = tools.tool_name(2**62, "x" * 200)
    assert len(long) == 64 and long.endswith(f"_{2**62}")
    assert tools.flow_id_of("summarize_12") == 12
    for bad in ("summarize", "Summarize_12", "a-b_3", "x" * 65 + "_1", "_"):
        assert tools.flow_id_of(bad) is None


def test_the_input_schema_types_inputs_by_their_defaults():
    inputs = {
        "topic": InputSpec("a", "topic", False, None),
        "items": InputSpec("b", "items", True, ["x"]),
        "strict": InputSpec("c", "strict", True, False),
        "extra": InputSpec("d", "extra", True, None),
    }
    schema = tools.input_schema(inputs)
    assert schema["required"] == ["topic"]
    assert {k: v.get("type") for k, v in schema["properties"].items()} == {
        "extra": None,
        "items": "array",
        "strict": "boolean",
        "topic": "string",
    }
    assert tools.argument_problems(inputs, {"topic": "t", "strict": 1, "extra": {"a": 1}}) == [
        "input 'strict' must be a boolean, not a number"
    ]
    assert tools.argument_problems(inputs, {"topic": "t", "items": {}}) == [
        "input 'items' must be an array, not an object"
    ]
