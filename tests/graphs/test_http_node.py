"""The ``http`` node, run by the engine against real HTTP servers on 127.0.0.1.

The servers are allow-listed exactly as a deployment would allow an internal API
(``ToolSettings.http_allow``, from ``SWITCHYARD_HTTP_ALLOW_HOSTS``); without that, the
same requests are refused before any connection.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator

import pytest

from graphs import net
from graphs.cache import MemoryCache
from graphs.errors import FlowInvalid
from graphs.net import AllowList
from graphs.nodes import NODE_TYPES
from graphs.nodes.http import DISABLED_MESSAGE
from graphs.schedule import RunOptions
from graphs.settings import default_services
from graphs.tools import ToolSettings
from tests.graphs.support import compiled, finished, flow, node, of_type, run, run_with
from tests.support.http_server import Reply, Seen, Server, json_reply, redirect, serve

slow_may_answer = threading.Event()


def _slow(seen: Seen) -> Reply:
    slow_may_answer.wait(timeout=30)
    return Reply(200, b"late")


class Flaky:
    """Answers 429 with Retry-After the first `times` calls, then 200."""

    def __init__(self, times: int, retry_after: str = "0.05", status: int = 429):
        self.left = times
        self.retry_after = retry_after
        self.status = status

    def __call__(self, seen: Seen) -> Reply:
        if self.left:
            self.left -= 1
            return Reply(self.status, b"slow down", (("Retry-After", self.retry_after),))
        return json_reply({"ok": True})


@pytest.fixture
def internal() -> Iterator[Server]:
    """Stands for an internal service nobody allow-listed."""
    with serve({"/secret": lambda s: Reply(200, b"internal secret")}) as server:
        yield server


@pytest.fixture
def api(internal: Server) -> Iterator[Server]:
    routes = {
        "/items/7": lambda s: json_reply({"id": 7, "name": "lamp", "tags": ["a", "b"]}),
        "/echo": lambda s: json_reply(
            {
                "method": s.method,
                "path": s.path,
                "type": s.headers.get("content-type"),
                "body": s.body.decode(),
                "auth": s.headers.get("authorization"),
            },
            X_Request_Id="r-1",
        ),
        "/text": lambda s: Reply(200, "héllo".encode()),
        "/problem": lambda s: Reply(
            404, b'{"detail": "no such item"}', (("Content-Type", "application/problem+json"),)
        ),
        "/big": lambda s: Reply(200, b"x" * 5000),
        "/slow": _slow,
        "/flaky": Flaky(times=1),
        "/down": Flaky(times=99, status=503, retry_after="0"),
        "/to-items": lambda s: redirect("/items/7"),
        "/to-internal": lambda s: redirect(internal.url("/secret")),
        "/to-metadata": lambda s: redirect("http://169.254.169.254/latest/meta-data/"),
        "/to-echo-elsewhere": lambda s: redirect(f"http://localhost:{s_port[0]}/echo", 307),
    }
    s_port: list[int] = []
    with serve(routes) as server:
        s_port.append(server.port)
        yield server


def settings_for(*servers: Server, **changes: object) -> ToolSettings:
    allow = AllowList.parse(",".join(f"127.0.0.1:{s.port}" for s in servers))
    base = {"http_node_enabled": True, "http_allow": allow}
    return ToolSettings(**(base | changes))  # type: ignore[arg-type]


def call(port_inputs: dict[str, str] | None = None, **config: object) -> dict:
    """input nodes for each port -> http -> outputs status, headers, body."""
    ports = port_inputs or {}
    nodes = [node(p, "input", name=p) for p in ports]
    nodes += [
        node("call", "http", **config),
        node("status", "output", name="status"),
        node("headers", "output", name="headers"),
        node("body", "output", name="body"),
    ]
    edges = [(p, "value", "call", p) for p in ports]
    edges += [("call", out, out, "value") for out in ("status", "headers", "body")]
    return flow(*nodes, edges=edges)


async def test_a_json_response_comes_out_decoded_with_status_and_headers(api: Server) -> None:
    result, _ = await run(call(url=api.url("/items/7")), tool_settings=settings_for(api))
    assert result.status == "succeeded", result.error
    assert result.outputs["status"] == 200
    assert result.outputs["body"] == {"id": 7, "name": "lamp", "tags": ["a", "b"]}
    assert result.outputs["headers"]["content-type"] == "application/json"
    assert api.seen[0].headers["host"] == f"127.0.0.1:{api.port}"


async def test_a_text_response_comes_out_as_text(api: Server) -> None:
    result, _ = await run(call(url=api.url("/text")), tool_settings=settings_for(api))
    assert result.outputs["body"] == "héllo"
    assert result.outputs["headers"]["content-type"] == "text/plain; charset=utf-8"


async def test_url_headers_and_query_are_templates_over_the_ports(api: Server) -> None:
    doc = call(
        {"item": "", "token": "", "term": ""},
        url=f"http://127.0.0.1:{api.port}/{{{{ item }}}}",
        headers=[{"name": "Authorization", "value": "Bearer {{ token }}"}],
        query=[{"name": "q", "value": "{{ term }}"}, {"name": "page", "value": "2"}],
    )
    result, _ = await run(
        doc,
        {"item": "echo", "token": "s3cret", "term": "a b&c"},
        tool_settings=settings_for(api),
    )
    assert result.status == "succeeded", result.error
    body = result.outputs["body"]
    assert body["path"] == "/echo?q=a+b%26c&page=2"
    assert body["auth"] == "Bearer s3cret"
    assert result.outputs["headers"]["x-request-id"] == "r-1"


async def test_a_json_body_template_is_sent_as_json(api: Server) -> None:
    doc = call(
        {"question": ""},
        method="POST",
        url=api.url("/echo"),
        body_type="json",
        body='{"query": {{ question | tojson }}, "n": 3}',
    )
    result, _ = await run(doc, {"question": 'say "hi"'}, tool_settings=settings_for(api))
    echoed = result.outputs["body"]
    assert echoed["method"] == "POST"
    assert echoed["type"] == "application/json"
    assert json.loads(echoed["body"]) == {"query": 'say "hi"', "n": 3}


async def test_form_and_text_bodies(api: Server) -> None:
    form = call(
        {"name": ""},
        method="PUT",
        url=api.url("/echo"),
        body_type="form",
        form=[{"name": "name", "value": "{{ name }}"}, {"name": "x", "value": "1&2"}],
    )
    result, _ = await run(form, {"name": "Ada L"}, tool_settings=settings_for(api))
    assert result.outputs["body"]["type"] == "application/x-www-form-urlencoded"
    assert result.outputs["body"]["body"] == "name=Ada+L&x=1%262"
    text = call(
        {"name": ""},
        method="PATCH",
        url=api.url("/echo"),
        body_type="text",
        body="hello {{ name }}",
    )
    result, _ = await run(text, {"name": "Ada"}, tool_settings=settings_for(api))
    assert result.outputs["body"]["body"] == "hello Ada"
    assert result.outputs["body"]["type"] == "text/plain; charset=utf-8"


async def test_a_body_template_that_renders_no_json_fails_naming_the_field(api: Server) -> None:
    doc = call({"v": ""}, method="POST", url=api.url("/echo"), body_type="json", body="{{ v }}")
    result, _ = await run(doc, {"v": "not json"}, tool_settings=settings_for(api))
    assert result.status == "failed"
    assert result.error.startswith(
        "node 'call' failed: body: the rendered template is not JSON: Expecting value"
    )
    assert api.seen == []


async def test_an_error_status_fails_the_node_with_the_body_excerpt(api: Server) -> None:
    result, events = await run(call(url=api.url("/problem")), tool_settings=settings_for(api))
    assert result.status == "failed"
    [failed] = of_type(events, "node_failed")
    assert failed["error"] == (
        f'HTTP 404 Not Found from {api.url("/problem")}: {{"detail": "no such item"}}'
    )


async def test_with_fail_on_status_off_the_status_goes_out(api: Server) -> None:
    result, _ = await run(
        call(url=api.url("/problem"), fail_on_status=False), tool_settings=settings_for(api)
    )
    assert result.outputs["status"] == 404
    assert result.outputs["body"] == {"detail": "no such item"}


async def test_retries_wait_as_long_as_retry_after_says(api: Server) -> None:
    result, events = await run(
        call(url=api.url("/flaky"), retries=2), tool_settings=settings_for(api)
    )
    assert result.status == "succeeded", result.error
    [retrying] = of_type(events, "node_retrying")
    # The runner's own backoff would be 0.005-0.01 s here (backoff_base_s 0.01): this is
    # the server's 0.05 s.
    assert retrying["delay_s"] == 0.05
    assert "HTTP 429" in retrying["error"]
    assert "retry after 0.05s" in retrying["error"]
    assert finished(events, "call")[0]["attempts"] == 2
    assert api.paths == ["/flaky", "/flaky"]


async def test_a_server_error_is_retried_and_then_fails_after_its_attempts(api: Server) -> None:
    result, _ = await run(call(url=api.url("/down"), retries=1), tool_settings=settings_for(api))
    assert result.status == "failed"
    assert "HTTP 503" in result.error
    assert "(after 2 attempts)" in result.error


async def test_a_connection_refused_is_retried_and_a_refusal_is_not(api: Server) -> None:
    with socket.socket() as probe:  # a port nothing listens on once this closes
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    allow = AllowList.parse(f"127.0.0.1:{port}")
    settings = settings_for(http_allow=allow)
    result, events = await run(
        call(url=f"http://127.0.0.1:{port}/", retries=1), tool_settings=settings
    )
    assert result.error.startswith("node 'call' failed: could not connect to 127.0.0.1")
    assert result.error.endswith("(after 2 attempts)")
    result, events = await run(call(url=api.url("/items/7"), retries=1), tool_settings=settings)
    assert "refused: 127.0.0.1 is a loopback address" in result.error
    assert of_type(events, "node_retrying") == []


async def test_a_client_error_is_not_retried(api: Server) -> None:
    await run(call(url=api.url("/problem"), retries=3), tool_settings=settings_for(api))
    assert api.paths == ["/problem"]


async def test_a_redirect_is_followed_to_an_allowed_target(api: Server) -> None:
    result, _ = await run(call(url=api.url("/to-items")), tool_settings=settings_for(api))
    assert result.outputs["body"]["id"] == 7
    assert api.paths == ["/to-items", "/items/7"]


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/to-internal", "refused: 127.0.0.1 is a loopback address"),
        ("/to-metadata", "refused: 169.254.169.254 is a link-local address"),
    ],
)
async def test_each_redirect_is_checked_again(
    api: Server, internal: Server, path: str, message: str
) -> None:
    result, _ = await run(call(url=api.url(path)), tool_settings=settings_for(api))
    assert result.status == "failed"
    assert message in result.error
    assert api.paths == [path]
    assert internal.seen == []


async def test_a_redirect_to_an_allow_listed_internal_host_is_followed(
    api: Server, internal: Server
) -> None:
    result, _ = await run(
        call(url=api.url("/to-internal")), tool_settings=settings_for(api, internal)
    )
    assert result.outputs["body"] == "internal secret"
    assert internal.paths == ["/secret"]


async def test_credentials_do_not_follow_a_redirect_to_another_origin(api: Server) -> None:
    # localhost:port is another origin than 127.0.0.1:port, though the same server.
    allow = AllowList.parse(f"127.0.0.1:{api.port}, localhost:{api.port}")
    doc = call(
        method="POST",
        url=api.url("/to-echo-elsewhere"),
        headers=[{"name": "Authorization", "value": "Bearer s3cret"}],
        body_type="text",
        body="kept",
    )
    result, _ = await run(doc, tool_settings=settings_for(http_allow=allow))
    echoed = result.outputs["body"]
    assert echoed["auth"] is None
    assert (echoed["method"], echoed["body"]) == ("POST", "kept")  # 307 keeps both
    assert api.seen[0].headers["authorization"] == "Bearer s3cret"


async def test_the_connection_goes_to_the_address_checked_once(
    api: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ".invalid" never resolves: success proves nothing looked the name up a second time,
    # and the allow-list entry for the name is what let its loopback address through.
    lookups: list[str] = []

    async def resolve_once(host: str, port: int) -> list[str]:
        lookups.append(host)
        return ["127.0.0.1"]

    monkeypatch.setattr(net, "_getaddrinfo", resolve_once)
    settings = settings_for(http_allow=AllowList.parse(f"api.invalid:{api.port}"))
    result, _ = await run(
        call(url=f"http://api.invalid:{api.port}/items/7"), tool_settings=settings
    )
    assert result.outputs["body"]["id"] == 7
    assert lookups == ["api.invalid"]
    assert api.seen[0].headers["host"] == f"api.invalid:{api.port}"


async def test_the_server_is_refused_unless_allow_listed(api: Server) -> None:
    result, _ = await run(
        call(url=api.url("/items/7")), tool_settings=ToolSettings(http_node_enabled=True)
    )
    assert result.status == "failed"
    assert "refused: 127.0.0.1 is a loopback address" in result.error
    assert api.seen == []


async def test_the_node_is_off_unless_enabled(api: Server) -> None:
    settings = settings_for(api, http_node_enabled=False)
    result, _ = await run(call(url=api.url("/items/7")), tool_settings=settings)
    assert result.status == "failed"
    assert DISABLED_MESSAGE in result.error
    assert "SWITCHYARD_HTTP_NODE_ENABLED=1" in DISABLED_MESSAGE
    assert api.seen == []


async def test_a_response_over_the_cap_fails_the_node(api: Server) -> None:
    settings = settings_for(api, http_max_response_bytes=4999)
    result, _ = await run(call(url=api.url("/big")), tool_settings=settings)
    assert result.status == "failed"
    assert "the response body is 5000 bytes, over the 4999-byte limit" in result.error
    exactly = settings_for(api, http_max_response_bytes=5000)
    result, _ = await run(call(url=api.url("/big")), tool_settings=exactly)
    assert result.outputs["body"] == "x" * 5000


async def test_a_request_body_over_the_cap_is_not_sent(api: Server) -> None:
    doc = call(method="POST", url=api.url("/echo"), body_type="text", body="y" * 101)
    result, _ = await run(doc, tool_settings=settings_for(api, http_max_request_bytes=100))
    assert result.status == "failed"
    assert "the request body is 101 bytes, over the 100-byte limit" in result.error
    assert api.seen == []


async def test_timeout_s_bounds_the_request(api: Server) -> None:
    slow_may_answer.clear()
    try:
        result, _ = await run(
            call(url=api.url("/slow"), timeout_s=0.2), tool_settings=settings_for(api)
        )
    finally:
        slow_may_answer.set()
    assert result.status == "failed"
    assert "timed out after 0.2s" in result.error


async def test_the_servers_budget_applies_when_the_node_sets_none(api: Server) -> None:
    slow_may_answer.clear()
    try:
        settings = settings_for(api, http_timeout_s=0.2)
        result, _ = await run(call(url=api.url("/slow")), tool_settings=settings)
    finally:
        slow_may_answer.set()
    assert "timed out after 0.2s" in result.error


async def test_it_is_not_cached_by_default(api: Server) -> None:
    config = NODE_TYPES["http"].Config.model_validate({"url": api.url("/items/7")})
    assert NODE_TYPES["http"].cacheable(config, default_services()) is False
    flow_ = compiled(call(url=api.url("/items/7")), tool_settings=settings_for(api))
    cache = MemoryCache()
    for _ in range(2):
        result, _ = await run_with(flow_, options=RunOptions(cache=cache))
        assert result.status == "succeeded"
    assert api.paths == ["/items/7", "/items/7"]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"url": "ftp://example.com/"}, "url: refused: scheme 'ftp' is not allowed"),
        ({"url": "gopher://x/{{ a }}"}, "url: refused: scheme 'gopher' is not allowed"),
        (
            {"url": "https://x.example/", "headers": [{"name": "Host", "value": "a"}]},
            "header 'Host' is set by the server",
        ),
        (
            {"url": "https://x.example/", "headers": [{"name": "Bad Name", "value": "a"}]},
            "'Bad Name' is not a header name",
        ),
        (
            {"url": "https://x.example/", "method": "POST", "body_type": "json"},
            "a json body needs a body template",
        ),
        (
            {"url": "https://x.example/", "body_type": "text", "body": "x"},
            "a GET request sends no body",
        ),
        ({"url": "https://x.example/{{ a"}, "url"),
        ({"url": "https://x.example/", "method": "TRACE"}, "method"),
    ],
)
def test_bad_config_is_refused_naming_the_node(config: dict, message: str) -> None:
    with pytest.raises(FlowInvalid) as excinfo:
        compiled(flow(node("call", "http", **config)))
    text = str(excinfo.value)
    assert text.startswith("node 'call': ")
    assert message in text


def test_a_literal_internal_url_is_checked_when_it_runs_not_when_saved() -> None:
    # The running server's allow-list may permit it; the check that needs none still holds.
    config = NODE_TYPES["http"].Config.model_validate({"url": "http://10.0.0.1/"})
    assert NODE_TYPES["http"].problems(config, default_services()) == []
