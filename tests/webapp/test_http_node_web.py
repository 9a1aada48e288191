"""The ``http`` node in the web app: palette entry and generated form, a flow holding one
saved and checked through the API, and run by the web app's executor against a real local
server that the test allow-lists as a deployment would (``SWITCHYARD_HTTP_ALLOW_HOSTS``)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from asgiref.sync import sync_to_async

from tests.support.http_server import Server, json_reply, serve
from tests.webapp.test_adding_a_node_type import client_for, payload
from tests.webapp.test_api import JSON, api, auth, offline  # noqa: F401 - fixtures
from webapp import execution
from webapp.execution import plans
from webapp.flows import services


@pytest.fixture
def flow(alice):
    return services.create(alice, "Calling", services.starter_graph("Calling"))


def edit(user, flow, **fields) -> str:
    body = {"type": "http", "node_id": "http1", "form_key": "k1", **fields}
    return client_for(user).post(f"/flows/{flow.pk}/node-form/", body).content.decode()


def test_the_palette_offers_http_with_its_ports_and_colour(alice, flow):
    response = client_for(alice).get(f"/flows/{flow.pk}/")
    assert 'data-testid="palette-http"' in response.content.decode()
    data = response.context["editor_data"]
    assert data["palette"]["http"]["config"] == {"method": "GET", "url": "https://example.com/"}
    ports = data["palette"]["http"]["ports"]
    assert (ports["inputs"], ports["outputs"]) == ([], ["body", "headers", "status"])
    assert data["categories"]["http"] == "io"


def test_its_form_edits_headers_and_query_as_rows_of_templates(alice, flow):
    html = edit(
        alice,
        flow,
        f_method="POST",
        f_url="https://api.example.com/items/{{ id }}",
        f_headers="rows",
        **{"f_headers.name": ["Authorization", ""], "f_headers.value": ["Bearer {{ t }}", ""]},
        f_query="rows",
        **{"f_query.name": ["q"], "f_query.value": ["{{ term }}"]},
        f_body_type="json",
        f_body='{"a": {{ a | tojson }}}',
        f_fail_on_status="on",
    )
    assert payload(html)["valid"] is True, payload(html)
    assert payload(html)["config"] == {
        "method": "POST",
        "url": "https://api.example.com/items/{{ id }}",
        "headers": [{"name": "Authorization", "value": "Bearer {{ t }}"}],
        "query": [{"name": "q", "value": "{{ term }}"}],
        "body_type": "json",
        "body": '{"a": {{ a | tojson }}}',
    }
    assert 'data-testid="rows-headers"' in html
    assert 'data-testid="rows-query"' in html


def test_its_form_puts_each_problem_on_its_field(alice, flow):
    html = edit(alice, flow, f_method="GET", f_url="ftp://x.example/", f_body_type="text")
    assert payload(html)["valid"] is False
    assert re.search(r'data-testid="error-url">url: refused: scheme &#x27;ftp&#x27;', html), html
    assert 'data-testid="error-body">a text body needs a body template' in html
    assert 'data-testid="error-body_type">a GET request sends no body' in html


def http_flow(url: str) -> dict:
    return {
        "graph": {"name": "Call an API"},
        "nodes": [
            {"id": "item", "type": "input", "config": {"name": "item"}},
            {"id": "call", "type": "http", "config": {"url": url}},
            {"id": "out", "type": "output", "config": {"name": "body"}},
        ],
        "edges": [
            {"source": "item", "target": "call", "source_port": "value", "target_port": "item"},
            {"source": "call", "target": "out", "source_port": "body", "target_port": "value"},
        ],
    }


@pytest.fixture
def server() -> Iterator[Server]:
    with serve({"/items/7": lambda s: json_reply({"id": 7, "name": "lamp"})}) as server:
        yield server


@pytest.fixture
def allow_listed(monkeypatch, server):
    monkeypatch.setenv("SWITCHYARD_HTTP_NODE_ENABLED", "1")
    monkeypatch.setenv("SWITCHYARD_HTTP_ALLOW_HOSTS", f"127.0.0.1:{server.port}")
    plans.engine_services.cache_clear()
    yield
    plans.engine_services.cache_clear()


def test_a_flow_with_an_http_node_is_checked_on_save(api):  # noqa: F811
    response = api.post("/api/flows", {"name": "bad", "graph": http_flow("gopher://x/{{ item }}")})
    # Kept with its problem, which a run of it is refused for.
    assert response.status_code == 201
    [problem] = response.json()["problems"]
    assert problem["node"] == "call"
    assert "refused: scheme 'gopher' is not allowed" in problem["text"]
    run = api.post(f"/api/flows/{response.json()['id']}/runs", {"inputs": {"item": "7"}})
    assert run.status_code == 400
    assert [p["text"] for p in run.json()["problems"]] == [problem["text"]]
    good_flow = http_flow("https://x.example/{{ item }}")
    good = api.post("/api/flows", {"name": "good", "graph": good_flow})
    assert good.status_code == 201, good.content


@pytest.mark.django_db(transaction=True)
async def test_a_run_through_the_api_calls_the_allow_listed_server(
    async_client, alice, alice_token, server, allow_listed
):
    doc = http_flow(f"http://127.0.0.1:{server.port}/items/{{{{ item }}}}")
    flow = await sync_to_async(services.create)(alice, "Call an API", doc)
    headers = auth(alice_token)
    response = await async_client.post(
        f"/api/flows/{flow.pk}/runs", {"inputs": {"item": "7"}}, content_type=JSON, headers=headers
    )
    assert response.status_code == 201, response.content
    run_id = response.json()["id"]
    await execution.driver().wait_idle()
    body = (await async_client.get(f"/api/runs/{run_id}", headers=headers)).json()
    assert body["status"] == "succeeded", body["error"]
    assert body["outputs"] == {"body": {"id": 7, "name": "lamp"}}
    assert server.paths == ["/items/7"]


@pytest.mark.django_db(transaction=True)
async def test_without_the_allow_list_the_same_run_is_refused(
    async_client, alice, alice_token, server, monkeypatch
):
    monkeypatch.setenv("SWITCHYARD_HTTP_NODE_ENABLED", "1")
    monkeypatch.delenv("SWITCHYARD_HTTP_ALLOW_HOSTS", raising=False)
    plans.engine_services.cache_clear()
    doc = http_flow(f"http://127.0.0.1:{server.port}/items/{{{{ item }}}}")
    flow = await sync_to_async(services.create)(alice, "Call an API", doc)
    headers = auth(alice_token)
    response = await async_client.post(
        f"/api/flows/{flow.pk}/runs", {"inputs": {"item": "7"}}, content_type=JSON, headers=headers
    )
    run_id = response.json()["id"]
    await execution.driver().wait_idle()
    body = (await async_client.get(f"/api/runs/{run_id}", headers=headers)).json()
    assert body["status"] == "failed"
    assert body["error"] == "node 'call' failed: refused: 127.0.0.1 is a loopback address"
    assert server.seen == []
