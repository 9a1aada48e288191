"""MCP tools for agents, in the engine: against a real MCP server (the SDK's own, on
127.0.0.1 in a thread) and the fake Messages API, through the real Anthropic SDK."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace

import pytest

from graphs.credentials import Secret
from graphs.errors import FlowInvalid
from graphs.llm.anthropic import AnthropicClient
from graphs.net import AllowList
from graphs.tools import mcp
from graphs.tools.base import ToolError, ToolSettings
from tests.graphs.support import compiled, flow, node, of_type, run, run_with
from tests.support.mcp_server import McpTestServer

SECRET = "planted-secret-5b1d0c9e"
ALLOW = ToolSettings(
    http_allow=AllowList.parse("127.0.0.1"), mcp_timeout_s=5, mcp_max_response_bytes=200_000
)


class Lent:
    def __init__(self, **secrets: Secret):
        self.secrets = secrets

    def look_up(self, name: str) -> Secret | None:
        return self.secrets.get(name)


@pytest.fixture(scope="module")
def server() -> Iterator[McpTestServer]:
    with McpTestServer() as running:
        yield running


@pytest.fixture(scope="module")
def listed(server: McpTestServer) -> list[mcp.McpToolInfo]:
    import asyncio

    return asyncio.run(mcp.list_tools(server.url, ALLOW))


def agent(*tools: str, max_turns: int = 3) -> dict:
    return flow(
        node("q", "input", name="q"),
        node("agent", "agent", prompt="{{ q }}", tools=list(tools), max_turns=max_turns),
        node("out", "output", name="a"),
        edges=[("q", "value", "agent", "q"), ("agent", "text", "out", "value")],
    )


def servers(server: McpTestServer, listed: list, auth: str | None = None) -> dict:
    return {"t": mcp.McpServer("t", server.url, auth, tuple(listed))}


async def call_via_agent(server, listed, prompt, tools, settings=ALLOW, auth=None, lent=None):
    return await run(
        agent(*tools),
        {"q": prompt},
        model_client=AnthropicClient(),
        tool_settings=settings,
        mcp=servers(server, listed, auth),
        **({"credentials": lent} if lent is not None else {}),
    )


# Listing


def test_refresh_lists_each_tool_with_its_description_and_input_schema(listed):
    by_name = {tool.name: tool for tool in listed}
    assert sorted(by_name) == ["add", "big", "deny", "echo", "fail", "hang", "whoami"]
    add = by_name["add"]
    assert add.description == "Add two integers."
    assert add.input_schema["properties"]["a"]["type"] == "integer"
    assert sorted(add.input_schema["required"]) == ["a", "b"]
    assert mcp.McpToolInfo.from_json(add.as_json()) == add


async def test_listing_a_private_address_not_on_the_allow_list_is_refused_naming_why(server):
    with pytest.raises(ToolError) as refused:
        await mcp.list_tools(server.url, ToolSettings())
    assert "refused: 127.0.0.1 is a loopback address" in str(refused.value)
    before = len(server.requests)
    with pytest.raises(ToolError, match="loopback"):
        await mcp.call_tool(server.url, "echo", {"text": "x"}, ToolSettings())
    assert len(server.requests) == before  # nothing was sent


async def test_a_name_that_resolves_to_loopback_is_refused_too(server):
    url = server.url.replace("127.0.0.1", "localhost")
    with pytest.raises(ToolError) as refused:
        await mcp.list_tools(url, ToolSettings())
    assert "is a loopback address" in str(refused.value)


# Calls from an agent


async def test_an_agent_calls_an_mcp_tool_and_the_result_reaches_the_model(
    anthropic_env, server, listed
):
    prompt = '#fake:tool=mcp__t__add {"a": 2, "b": 40}'
    result, events = await call_via_agent(server, listed, prompt, ["mcp:t/add", "calculator"])
    assert result.status == "succeeded", result.error
    assert result.outputs == {"a": "tool results: 42"}
    first, second = anthropic_env.message_requests
    offered = {tool["name"]: tool for tool in first["tools"]}
    assert sorted(offered) == ["calculator", "mcp__t__add"]
    assert offered["mcp__t__add"]["description"] == "Add two integers."
    assert offered["mcp__t__add"]["input_schema"]["required"] == ["a", "b"]
    tool_result = second["messages"][-1]["content"][0]
    assert tool_result["content"] == "42" and "is_error" not in tool_result
    (done,) = [e for e in of_type(events, "node_finished") if e["node"] == "agent"]
    (call,) = done["detail"]["tool_calls"]
    assert call["name"] == "mcp__t__add" and call["is_error"] is False
    assert isinstance(call["duration_ms"], int) and call["duration_ms"] >= 0
    uses = [b for b in done["detail"]["messages"][1]["content"] if b["type"] == "tool_use"]
    assert uses[0]["id"] == call["id"] and uses[0]["input"] == {"a": 2, "b": 40}


async def test_a_tool_that_fails_is_an_error_result_with_its_message(anthropic_env, server, listed):
    prompt = '#fake:tool=mcp__t__fail {"reason": "no disk"}'
    result, _ = await call_via_agent(server, listed, prompt, ["mcp:t/fail"])
    assert result.status == "succeeded"
    tool_result = anthropic_env.message_requests[1]["messages"][-1]["content"][0]
    assert tool_result["is_error"] is True
    assert "the tool failed: no disk" in tool_result["content"]


async def test_a_server_that_hangs_is_cut_at_the_timeout_as_an_error_result(
    anthropic_env, server, listed
):
    quick = ToolSettings(http_allow=ALLOW.http_allow, mcp_timeout_s=1.5)
    result, events = await call_via_agent(
        server, listed, "#fake:tool=mcp__t__hang {}", ["mcp:t/hang"], quick
    )
    assert result.status == "succeeded"
    tool_result = anthropic_env.message_requests[1]["messages"][-1]["content"][0]
    assert tool_result["is_error"] is True
    assert "no answer within 1.5s" in tool_result["content"]
    (done,) = [e for e in of_type(events, "node_finished") if e["node"] == "agent"]
    assert done["detail"]["tool_calls"][0]["duration_ms"] >= 1400


async def test_ten_megabytes_back_is_a_clear_error_not_a_memory_blow_up(
    anthropic_env, server, listed
):
    prompt = '#fake:tool=mcp__t__big {"size": 10000000}'
    result, _ = await call_via_agent(server, listed, prompt, ["mcp:t/big"])
    assert result.status == "succeeded"
    tool_result = anthropic_env.message_requests[1]["messages"][-1]["content"][0]
    assert tool_result["is_error"] is True
    assert tool_result["content"] == "the MCP server's response is over the 200000-byte limit"


async def test_ten_megabytes_as_one_json_body_are_cut_off_at_the_cap_too():
    with McpTestServer(json_response=True) as plain:
        text, is_error = await mcp.call_tool(plain.url, "echo", {"text": "hi"}, ALLOW)
        assert (text, is_error) == ("echo: hi", False)
        with pytest.raises(ToolError) as refused:
            await mcp.call_tool(plain.url, "big", {"size": 10_000_000}, ALLOW)
    assert str(refused.value) == "the MCP server's response is over the 200000-byte limit"


async def test_a_call_to_a_server_not_on_the_allow_list_is_refused_naming_why(
    anthropic_env, server, listed
):
    before = len(server.requests)
    result, _ = await call_via_agent(
        server, listed, '#fake:tool=mcp__t__echo {"text": "hi"}', ["mcp:t/echo"], ToolSettings()
    )
    assert result.status == "succeeded"
    tool_result = anthropic_env.message_requests[1]["messages"][-1]["content"][0]
    assert tool_result["is_error"] is True
    assert "refused: 127.0.0.1 is a loopback address" in tool_result["content"]
    assert len(server.requests) == before


async def test_the_credential_goes_in_the_headers_only_and_never_into_events_or_results(
    anthropic_env, server, listed
):
    lent = Lent(tok=Secret(kind="bearer", value=SECRET))
    prompt = "#fake:tool=mcp__t__whoami {}"
    result, events = await call_via_agent(
        server, listed, prompt, ["mcp:t/whoami"], auth="tok", lent=lent
    )
    assert result.status == "succeeded", result.error
    assert server.authorization == f"Bearer {SECRET}"  # the server did get it
    tool_result = anthropic_env.message_requests[1]["messages"][-1]["content"][0]
    # The server echoed it back: cut out before the model, the events or the outputs see it.
    assert tool_result["content"] == "you sent [redacted]"
    assert SECRET not in json.dumps(events)
    assert SECRET not in json.dumps(anthropic_env.message_requests)
    assert SECRET not in json.dumps(result.outputs)


async def test_an_error_that_quotes_the_credential_reaches_nobody_with_it(
    anthropic_env, server, listed
):
    lent = Lent(tok=Secret(kind="api_key", value=SECRET, header="X-Key"))
    result, events = await call_via_agent(
        server, listed, "#fake:tool=mcp__t__deny {}", ["mcp:t/deny"], auth="tok", lent=lent
    )
    assert result.status == "succeeded", result.error
    assert server.requests[-1]["headers"]["x-key"] == SECRET
    tool_result = anthropic_env.message_requests[1]["messages"][-1]["content"][0]
    assert tool_result["is_error"] is True
    assert "'x-key': '[redacted]'" in tool_result["content"]
    assert SECRET not in json.dumps(events) + json.dumps(anthropic_env.message_requests)


async def test_a_credential_the_run_is_not_lent_fails_the_call_naming_it_not_its_value(
    anthropic_env, server, listed
):
    result, _ = await call_via_agent(
        server, listed, "#fake:tool=mcp__t__whoami {}", ["mcp:t/whoami"], auth="gone", lent=Lent()
    )
    assert result.status == "succeeded"  # the model reads the error and answers
    tool_result = anthropic_env.message_requests[1]["messages"][-1]["content"][0]
    assert tool_result["is_error"] is True
    assert (
        tool_result["content"] == "MCP server 't': credential 'gone' is not available to this run"
    )


# Checking a flow


def test_mcp_tool_names_are_checked_against_the_servers_the_host_lends(server, listed):
    with pytest.raises(FlowInvalid) as invalid:
        compiled(agent("mcp:t/nope", "mcp:other/x", "mcp:bad name/x"), mcp=servers(server, listed))
    text = str(invalid.value)
    assert "MCP server 't' lists no tool 'nope'" in text
    assert "no MCP server named 'other' is registered (known: t)" in text
    assert "server name 'bad name' is not a letter or _" in text
    compiled(agent("mcp:t/echo"), mcp=servers(server, listed))


def test_without_servers_lent_only_the_shape_is_checked_and_running_fails_clearly():
    with pytest.raises(FlowInvalid, match="write MCP tools as mcp:<server>/<tool>"):
        compiled(agent("mcp:t"))
    compiled(agent("mcp:t/echo"))  # the command line cannot know the servers


async def test_a_server_gone_since_the_check_fails_the_node_naming_it():
    # Checked without servers (as a host's shared plan is), run with none lent.
    flow_ = compiled(agent("mcp:t/echo"))
    flow_.services = replace(flow_.services, mcp={})
    result, _ = await run_with(flow_, {"q": "hi"})
    assert result.status == "failed"
    assert "no MCP server named 't' is registered" in result.error


def test_an_agent_with_mcp_tools_is_not_served_from_the_node_cache(server, listed):
    flow_ = compiled(agent("mcp:t/echo"), mcp=servers(server, listed))
    from graphs.nodes.agent import AgentConfig, AgentNode

    config = AgentConfig(prompt="x", tools=["mcp:t/echo"])
    assert AgentNode().cacheable(config, flow_.services) is False


def test_model_names_fit_the_api():
    assert mcp.model_name("docs", "a.b-c") == "mcp__docs__a_b-c"
    assert len(mcp.model_name("s" * 40, "t" * 128)) == 64


# One session per run and server


def calls(*lines: tuple[str, dict]) -> str:
    """A prompt whose first reply calls these tools, all in one turn (run in parallel)."""
    return "\n".join(f"#fake:tool={name} {json.dumps(args)}" for name, args in lines)


THREE_CALLS = calls(
    ("mcp__t__echo", {"text": "one"}),
    ("mcp__t__add", {"a": 1, "b": 2}),
    ("mcp__t__echo", {"text": "three"}),
)


async def test_a_runs_calls_share_one_session_which_closes_when_the_run_ends(
    anthropic_env, server, listed
):
    before = len(server.requests)
    result, _ = await call_via_agent(server, listed, THREE_CALLS, ["mcp:t/echo", "mcp:t/add"])
    assert result.status == "succeeded", result.error
    assert result.outputs == {"a": "tool results: echo: one; 3; echo: three"}
    sent = server.requests[before:]
    assert [r["rpc"] for r in sent if r.get("rpc") == "initialize"] == ["initialize"]
    assert len([r for r in sent if r.get("rpc") == "tools/call"]) == 3
    (session,) = {r["headers"]["mcp-session-id"] for r in sent if "mcp-session-id" in r["headers"]}
    # Closed as the run ended: the SDK's DELETE of that very session, before run() returned.
    assert [r["headers"]["mcp-session-id"] for r in sent if r["method"] == "DELETE"] == [session]

    before = len(server.requests)
    for _ in range(2):
        result, _ = await call_via_agent(server, listed, THREE_CALLS, ["mcp:t/echo", "mcp:t/add"])
        assert result.status == "succeeded", result.error
    sent = server.requests[before:]
    print(
        f"\n6 MCP tool calls in 2 runs: {len([r for r in sent if r.get('rpc') == 'initialize'])} "
        f"initialize, {len(sent)} HTTP requests in all"
    )
    assert len([r for r in sent if r.get("rpc") == "initialize"]) == 2  # one per run
    opened = {r["headers"]["mcp-session-id"] for r in sent if "mcp-session-id" in r["headers"]}
    assert len(opened) == 2 and session not in opened  # never shared across runs
    assert sorted(r["headers"]["mcp-session-id"] for r in sent if r["method"] == "DELETE") == (
        sorted(opened)
    )


async def test_parallel_agents_of_one_run_share_the_session(anthropic_env, server, listed):
    doc = flow(
        node("q", "input", name="q"),
        node(
            "left",
            "agent",
            prompt=calls(("mcp__t__echo", {"text": "L"})) + "\n{{ q }}",
            tools=["mcp:t/echo"],
        ),
        node(
            "right",
            "agent",
            prompt=calls(("mcp__t__add", {"a": 2, "b": 2})) + "\n{{ q }}",
            tools=["mcp:t/add"],
        ),
        node("a", "output", name="a"),
        node("b", "output", name="b"),
        edges=[
            ("q", "value", "left", "q"),
            ("q", "value", "right", "q"),
            ("left", "text", "a", "value"),
            ("right", "text", "b", "value"),
        ],
    )
    before = len(server.requests)
    result, _ = await run(
        doc,
        {"q": "go"},
        model_client=AnthropicClient(),
        tool_settings=ALLOW,
        mcp=servers(server, listed),
    )
    assert result.status == "succeeded", result.error
    assert result.outputs == {"a": "tool results: echo: L", "b": "tool results: 4"}
    sent = server.requests[before:]
    assert len([r for r in sent if r.get("rpc") == "initialize"]) == 1
    assert len([r for r in sent if r.get("rpc") == "tools/call"]) == 2


async def test_another_credential_gets_a_session_of_its_own(server):
    sessions = mcp.McpSessions()
    before = len(server.requests)
    try:
        for token in ("first-token", "second-token", "first-token"):
            headers = [("Authorization", f"Bearer {token}")]
            answer = await sessions.call(server.url, "echo", {"text": token}, ALLOW, headers)
            assert answer == (f"echo: {token}", False)
    finally:
        await sessions.aclose()
    sent = server.requests[before:]
    handshakes = [r["headers"]["authorization"] for r in sent if r.get("rpc") == "initialize"]
    assert handshakes == ["Bearer first-token", "Bearer second-token"]
    assert len(server.deletes()) >= 2 and len([r for r in sent if r["method"] == "DELETE"]) == 2
    with pytest.raises(ToolError, match="the run has ended"):
        await sessions.call(server.url, "echo", {"text": "late"}, ALLOW)


async def test_a_session_the_server_dropped_is_opened_again_once_transparently(server):
    sessions = mcp.McpSessions()
    before = len(server.requests)
    try:
        assert await sessions.call(server.url, "echo", {"text": "a"}, ALLOW) == ("echo: a", False)
        server.forget()  # as a restarted server: 404 to the session's id
        assert await sessions.call(server.url, "echo", {"text": "b"}, ALLOW) == ("echo: b", False)
        assert await sessions.call(server.url, "echo", {"text": "c"}, ALLOW) == ("echo: c", False)
    finally:
        await sessions.aclose()
    sent = server.requests[before:]
    assert len([r for r in sent if r.get("rpc") == "initialize"]) == 2
    # The call refused with 404 was sent once more on the new session, and ran once.
    calls_ = [r for r in sent if r.get("rpc") == "tools/call"]
    assert len(calls_) == 4
    assert sessions.opened == 2


async def test_a_call_over_the_limit_or_the_time_fails_alone_and_the_session_goes_on(server):
    quick = ToolSettings(
        http_allow=ALLOW.http_allow, mcp_timeout_s=1.5, mcp_max_response_bytes=200_000
    )
    sessions = mcp.McpSessions()
    before = len(server.requests)
    try:
        with pytest.raises(ToolError) as big:
            await sessions.call(server.url, "big", {"size": 10_000_000}, ALLOW)
        assert str(big.value) == "the MCP server's response is over the 200000-byte limit"
        with pytest.raises(ToolError) as slow:
            await sessions.call(server.url, "hang", {}, quick)
        # Its own failure, not the earlier call's.
        assert str(slow.value) == f"MCP server {server.url}: no answer within 1.5s"
        assert await sessions.call(server.url, "echo", {"text": "ok"}, quick) == (
            "echo: ok",
            False,
        )
    finally:
        await sessions.aclose()
    assert len([r for r in server.requests[before:] if r.get("rpc") == "initialize"]) == 1


async def test_a_cancelled_run_closes_its_session_too(anthropic_env, server, listed):
    import asyncio

    slow = ToolSettings(http_allow=ALLOW.http_allow, mcp_timeout_s=60)
    flow_ = compiled(
        agent("mcp:t/hang"),
        model_client=AnthropicClient(),
        tool_settings=slow,
        mcp=servers(server, listed),
    )
    before = len(server.requests)
    handle = flow_.start({"q": "#fake:tool=mcp__t__hang {}"})

    def hanging() -> list[dict]:
        return [r for r in server.requests[before:] if r.get("rpc") == "tools/call"]

    async with asyncio.timeout(120):  # the first model call loads the SDK: slow when loaded
        while not hanging():
            await asyncio.sleep(0.05)
    handle.cancel()
    result = await handle.wait()
    assert result.status == "cancelled"
    session = hanging()[0]["headers"]["mcp-session-id"]
    # Closed by the time the run's result is out, not at the 60 s deadline.
    assert session in server.deletes()
