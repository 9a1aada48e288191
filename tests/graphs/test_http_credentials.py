"""The ``http`` node's ``auth``: a credential named in the flow, its secret lent by the
host through ``Services.credentials``, sent to a real server on 127.0.0.1, and absent from
every event and output of the run (a planted secret is searched for)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from graphs.credentials import Secret, auth_headers, value_problem
from tests.graphs.support import run
from tests.graphs.test_http_node import call, settings_for
from tests.support.http_server import Reply, Server, json_reply, redirect, serve

PLANTED = "sk-planted-7f3a9c-never-anywhere"


class Lent:
    """A host's credentials: a plain mapping, as the web app's RunCredentials is."""

    def __init__(self, **secrets: Secret):
        self.secrets = secrets

    def look_up(self, name: str) -> Secret | None:
        return self.secrets.get(name)


@pytest.fixture
def server() -> Iterator[Server]:
    # Answers without echoing anything it was sent: what it got is read from `seen`.
    with serve({"/items": lambda s: json_reply({"ok": True})}) as server:
        yield server


def leaks(events: list[dict], result: object) -> bool:
    text = json.dumps(events, default=str) + repr(result)
    return PLANTED in text or "c2stcGxhbnRlZC03ZjNhOWMtbmV2ZXItYW55d2hlcmU" in text


@pytest.mark.parametrize(
    ("secret", "header", "expected"),
    [
        (Secret("bearer", PLANTED), "authorization", f"Bearer {PLANTED}"),
        (Secret("api_key", PLANTED, header="X-Key"), "x-key", PLANTED),
        (Secret("headers", f"X-Tenant: t1\nX-Token: {PLANTED}"), "x-token", PLANTED),
    ],
)
async def test_the_credential_arrives_as_its_kind_says_and_leaves_no_trace(
    server, secret, header, expected
):
    doc = call(url=server.url("/items"), auth="svc")
    result, events = await run(
        doc, tool_settings=settings_for(server), credentials=Lent(svc=secret)
    )
    assert result.status == "succeeded", result.error
    [seen] = server.seen
    assert seen.headers[header] == expected
    assert not leaks(events, result)


async def test_basic_auth_is_encoded_and_replaces_a_typed_placeholder_header(server):
    doc = call(
        url=server.url("/items"),
        auth="svc",
        headers=[{"name": "Authorization", "value": "Bearer placeholder"}],
    )
    result, events = await run(
        doc,
        tool_settings=settings_for(server),
        credentials=Lent(svc=Secret("basic", f"ann:{PLANTED}")),
    )
    assert result.status == "succeeded", result.error
    [seen] = server.seen
    assert seen.headers["authorization"] == auth_headers("basic", f"ann:{PLANTED}")[0][1]
    assert not leaks(events, result)


async def test_a_missing_credential_fails_the_node_naming_it_and_sends_nothing(server):
    doc = call(url=server.url("/items"), auth="nowhere")
    result, _ = await run(doc, tool_settings=settings_for(server))
    assert result.status == "failed"
    assert "auth: no credential named 'nowhere' is available to this run" in result.error
    assert server.seen == []


async def test_an_anthropic_key_cannot_authenticate_a_request(server):
    doc = call(url=server.url("/items"), auth="model")
    lent = Lent(model=Secret("anthropic_key", PLANTED))
    result, events = await run(doc, tool_settings=settings_for(server), credentials=lent)
    assert result.status == "failed"
    assert "cannot authenticate an HTTP request" in result.error
    assert server.seen == []
    assert not leaks(events, result)


def test_value_problems_never_quote_the_value():
    for kind, value in [("basic", PLANTED), ("headers", PLANTED), ("bearer", f"a\n{PLANTED}")]:
        problem = value_problem(kind, value)
        assert problem is not None and PLANTED not in problem, (kind, problem)
    assert value_problem("bearer", PLANTED) is None
    assert PLANTED not in repr(Secret("bearer", PLANTED))


async def test_auth_must_be_an_identifier():
    from graphs.errors import FlowInvalid
    from tests.graphs.support import compiled

    with pytest.raises(FlowInvalid, match="auth"):
        compiled(call(url="https://x.example/", auth="not a name"))


@pytest.mark.parametrize(
    ("secret", "header"),
    [
        (Secret("api_key", PLANTED, header="X-Key"), "x-key"),
        (Secret("headers", f"X-Token: {PLANTED}"), "x-token"),
        (Secret("bearer", PLANTED), "authorization"),
    ],
)
async def test_a_redirect_to_another_origin_does_not_carry_the_credential(server, secret, header):
    with serve({"/go": lambda s: redirect(server.url("/items"), 307)}) as first:
        doc = call(url=first.url("/go"), auth="svc")
        result, _ = await run(
            doc, tool_settings=settings_for(first, server), credentials=Lent(svc=secret)
        )
    assert result.status == "succeeded", result.error
    [asked] = first.seen
    [landed] = server.seen
    assert PLANTED in asked.headers[header]
    assert header not in landed.headers


def test_a_credential_cannot_set_a_header_the_client_owns():
    assert value_problem("api_key", "k", header="Host") is not None
    assert value_problem("headers", "Content-Length: 5") is not None


@pytest.fixture
def echoing() -> Iterator[Server]:
    """A server that tells what it got: in a body, a header, an error text."""

    def told(seen) -> str:
        return seen.headers.get("authorization", "")

    routes = {
        "/body": lambda s: json_reply({"you_sent": told(s)}),
        "/header": lambda s: Reply(200, b"ok", (("X-You-Sent", told(s)),)),
        "/error": lambda s: Reply(401, f"bad credentials: {told(s)}".encode()),
    }
    with serve(routes) as server:
        yield server


@pytest.mark.parametrize("secret", [Secret("bearer", PLANTED), Secret("basic", f"ann:{PLANTED}")])
async def test_a_server_echoing_the_credential_gets_it_cut_from_body_headers_and_error(
    echoing, secret
):
    lent = Lent(svc=secret)
    body, events = await run(
        call(url=echoing.url("/body"), auth="svc"),
        tool_settings=settings_for(echoing),
        credentials=lent,
    )
    assert body.status == "succeeded", body.error
    assert body.outputs["body"] == {"you_sent": "[redacted]"}
    header, header_events = await run(
        call(url=echoing.url("/header"), auth="svc"),
        tool_settings=settings_for(echoing),
        credentials=lent,
    )
    assert header.status == "succeeded", header.error
    assert header.outputs["headers"]["x-you-sent"] == "[redacted]"
    error, error_events = await run(
        call(url=echoing.url("/error"), auth="svc"),
        tool_settings=settings_for(echoing),
        credentials=lent,
    )
    assert error.status == "failed"
    assert "HTTP 401 Unauthorized" in error.error and "bad credentials: [redacted]" in error.error
    # What reached the server was the real thing; what came back holds none of it.
    sent = auth_headers(secret.kind, secret.value)[0][1]
    assert [s.headers["authorization"] for s in echoing.seen] == [sent] * 3
    for result, trail in ((body, events), (header, header_events), (error, error_events)):
        assert not leaks(trail, result)
