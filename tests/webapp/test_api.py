"""The JSON API: flows and runs, who may reach them, and how it says no."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from channels.testing import HttpCommunicator
from django.db import connection
from django.middleware.csrf import get_token
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext

from tests.support.wait import wait_for_async
from webapp import execution
from webapp.accounts.models import ApiToken
from webapp.asgi import application
from webapp.execution import plans
from webapp.flows import services
from webapp.flows.models import Flow, FlowVersion
from webapp.runs.eventlog import write_batch
from webapp.runs.models import Run, RunEvent

EXAMPLES = Path(__file__).parents[2] / "examples"
JSON = "application/json"

ECHO = {
    "graph": {"name": "echo"},
    "nodes": [
        {"id": "q", "type": "input", "config": {"name": "q"}},
        {"id": "o", "type": "output", "config": {"name": "a"}},
    ],
    "edges": [{"source": "q", "target": "o", "source_port": "value", "target_port": "value"}],
}


def example(name: str) -> dict:
    return json.loads((EXAMPLES / f"{name}.json").read_text())


def bad_documents() -> dict[str, tuple[dict | list, str]]:
    """Broken flows and a phrase the engine's explanation must contain."""
    unknown_type = copy.deepcopy(ECHO)
    unknown_type["nodes"][1]["type"] = "outptu"
    dangling = copy.deepcopy(ECHO)
    dangling["edges"].append(
        {"source": "q", "target": "ghost", "source_port": "value", "target_port": "value"}
    )
    cycle = {
        "graph": {"name": "cycle"},
        "nodes": [
            {"id": "a", "type": "template", "config": {"template": "{{ x }}"}},
            {"id": "b", "type": "template", "config": {"template": "{{ x }}"}},
        ],
        "edges": [
            {"source": "a", "target": "b", "source_port": "text", "target_port": "x"},
            {"source": "b", "target": "a", "source_port": "text", "target_port": "x"},
        ],
    }
    escape = example("chain")
    escape["nodes"][1]["config"]["prompt"] = "{{ ''.__class__.__mro__ }}"
    return {
        "unknown type": (unknown_type, "unknown node type 'outptu'"),
        "dangling edge": (dangling, "dangling edge"),
        "unguarded cycle": (cycle, "unguarded cycle"),
        "sandbox escape": (escape, "which the sandbox forbids"),
        "not an object": ([], "a flow document is a JSON object"),
    }


ALL_BAD = bad_documents()
# Well-formed but unfinished: saved, with its problems on the version.
UNFINISHED = {name: ALL_BAD[name] for name in ("unguarded cycle", "sandbox escape")}
# Not well-formed: refused, nothing stored.
BAD = {name: case for name, case in ALL_BAD.items() if name not in UNFINISHED}


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """Runs use the offline model, built afresh from this test's environment."""
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("SWITCHYARD_OFFLINE_DELAY_MS", raising=False)
    plans.engine_services.cache_clear()
    yield
    plans.engine_services.cache_clear()


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def api(client, alice_token):
    """A client speaking as alice through her bearer token."""

    class Api:
        def get(self, path: str, **kw):
            return client.get(path, headers=auth(alice_token), **kw)

        def post(self, path: str, data=None, **kw):
            return client.post(path, data, content_type=JSON, headers=auth(alice_token), **kw)

        def put(self, path: str, data=None, **kw):
            return client.put(path, data, content_type=JSON, headers=auth(alice_token), **kw)

    return Api()


@pytest.fixture
def echo(alice) -> Flow:
    return services.create(alice, "echo", ECHO)


@pytest.fixture
def chain(alice) -> Flow:
    return services.create(alice, "chain", example("chain"))


@pytest.fixture
def alice_run(echo, alice) -> Run:
    run = Run.objects.create(
        flow=echo, flow_version=echo.current(), started_by=alice, inputs={"q": "hi"}
    )
    write_batch(
        run.pk,
        [{"seq": seq, "ts": 1_700_000_000.0 + seq, "type": "node_delta"} for seq in range(1, 6)],
    )
    return run


def counts() -> tuple[int, int, int]:
    return Flow.objects.count(), FlowVersion.objects.count(), Run.objects.count()


# Flows


def test_create_stores_the_flow_as_version_one(api, alice):
    response = api.post("/api/flows", {"name": "Echo", "graph": ECHO})
    assert response.status_code == 201
    body = response.json()
    assert body["version"] == 1
    flow = Flow.objects.get(pk=body["id"])
    assert flow.owner == alice and flow.name == "Echo"
    assert flow.current().graph["nodes"][0]["id"] == "q"


def test_get_returns_the_current_version(api, echo, alice):
    services.save(echo, alice, example("chain"), base_version=1, name="Now a chain")
    response = api.get(f"/api/flows/{echo.pk}")
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == echo.pk and body["name"] == "Now a chain" and body["version"] == 2
    assert body["graph"]["graph"]["name"] == "Draft, critique, revise"


def test_list_shows_the_callers_flows_and_no_one_elses(api, echo, charlie):
    services.create(charlie, "charlie's own", ECHO)
    response = api.get("/api/flows")
    assert response.status_code == 200
    listed = response.json()["items"]
    mine = set(Flow.objects.filter(owner__username="alice").values_list("pk", flat=True))
    assert {f["id"] for f in listed} == mine
    entry = next(f for f in listed if f["id"] == echo.pk)
    assert entry["name"] == "echo" and entry["version"] == 1 and entry["updated"]


def test_save_adds_a_version_and_may_rename(api, echo):
    response = api.put(
        f"/api/flows/{echo.pk}", {"graph": example("chain"), "base_version": 1, "name": "Chain"}
    )
    assert response.status_code == 200
    assert response.json() == {"version": 2, "problems": [], "warnings": []}
    echo.refresh_from_db()
    assert echo.version == 2 and echo.name == "Chain"
    assert list(echo.versions.values_list("number", flat=True)) == [2, 1]


def test_of_two_saves_from_the_same_base_one_wins_and_one_gets_409(api, echo):
    first = api.put(f"/api/flows/{echo.pk}", {"graph": ECHO, "base_version": 1})
    second = api.put(f"/api/flows/{echo.pk}", {"graph": example("chain"), "base_version": 1})
    assert first.status_code == 200 and first.json() == {
        "version": 2,
        "problems": [],
        "warnings": [],
    }
    assert second.status_code == 409
    assert second.json()["current_version"] == 2
    assert "the flow is now at version 2" in second.json()["detail"]
    assert echo.versions.count() == 2
    # The loser changed nothing: version 2 is the winner's graph.
    assert echo.versions.get(number=2).graph["graph"]["name"] == "echo"


def test_save_without_base_version_is_refused_not_applied(api, echo):
    response = api.put(f"/api/flows/{echo.pk}", {"graph": example("chain")})
    assert response.status_code == 400
    assert "base_version is required" in response.json()["detail"]
    echo.refresh_from_db()
    assert echo.version == 1 and echo.versions.count() == 1


@pytest.mark.parametrize("case", BAD)
def test_an_invalid_graph_is_refused_on_create_and_nothing_is_stored(api, alice, case):
    document, phrase = BAD[case]
    before = counts()
    response = api.post("/api/flows", {"name": "broken", "graph": document})
    assert response.status_code == 400
    body = response.json()
    assert body["detail"] == "invalid flow"
    assert any(phrase in p["text"] for p in body["problems"])
    for problem in body["problems"]:
        assert set(problem) == {"message", "node", "edge", "text"}
    assert counts() == before


@pytest.mark.parametrize("case", BAD)
def test_an_invalid_graph_is_refused_on_save_and_nothing_is_stored(api, echo, case):
    document, phrase = BAD[case]
    before = counts()
    response = api.put(f"/api/flows/{echo.pk}", {"graph": document, "base_version": 1})
    assert response.status_code == 400
    assert any(phrase in p["text"] for p in response.json()["problems"])
    assert counts() == before
    echo.refresh_from_db()
    assert echo.version == 1


def test_problems_name_their_node_or_edge(api):
    problems = api.post("/api/flows", {"name": "x", "graph": BAD["dangling edge"][0]}).json()[
        "problems"
    ]
    assert problems[0]["edge"] == ["q", "ghost", 1] and problems[0]["node"] is None
    problems = api.post("/api/flows", {"name": "x", "graph": BAD["unknown type"][0]}).json()[
        "problems"
    ]
    assert problems[0]["node"] == "o" and problems[0]["edge"] is None


@pytest.mark.parametrize("name", ["", "   ", "x" * 201])
def test_a_name_must_have_1_to_200_characters(api, name):
    before = counts()
    response = api.post("/api/flows", {"name": name, "graph": ECHO})
    assert response.status_code == 422
    assert response.json()["errors"][0]["path"] == "body.name"
    assert counts() == before


def test_a_200_character_name_is_fine(api):
    assert api.post("/api/flows", {"name": "x" * 200, "graph": ECHO}).status_code == 201


def test_a_body_that_is_not_json_gets_a_clear_400(api):
    before = counts()
    response = api.post("/api/flows", '{"name": "x", "graph": ')
    assert response.status_code == 400
    assert response.json()["code"] == "malformed_json"
    assert "the body is not JSON" in response.json()["detail"]
    assert counts() == before


@pytest.mark.parametrize("body", ["[]", '"flow"', "{}", ""])
def test_a_body_of_the_wrong_shape_is_refused_not_a_500(api, body):
    response = api.post("/api/flows", body)
    assert response.status_code in (400, 422)
    assert response.json()["detail"]


def test_an_oversized_body_gets_413_and_nothing_is_stored(api, settings):
    settings.API_MAX_BODY_BYTES = 10_000
    before = counts()
    document = copy.deepcopy(ECHO)
    document["graph"]["description"] = "x" * 20_000
    response = api.post("/api/flows", {"name": "huge", "graph": document})
    assert response.status_code == 413
    assert "limit is 10,000" in response.json()["detail"]
    assert counts() == before


# Who may reach what


def test_a_stranger_gets_the_same_404_as_for_a_missing_flow(client, echo, charlie_token):
    missing = echo.pk + 1000
    headers = auth(charlie_token)
    for flow_id in (echo.pk, missing):
        got = client.get(f"/api/flows/{flow_id}", headers=headers)
        put = client.put(
            f"/api/flows/{flow_id}",
            {"graph": ECHO, "base_version": 1},
            content_type=JSON,
            headers=headers,
        )
        run = client.post(
            f"/api/flows/{flow_id}/runs",
            {"inputs": {"q": "hi"}},
            content_type=JSON,
            headers=headers,
        )
        assert [r.status_code for r in (got, put, run)] == [404, 404, 404]
        assert got.json() == put.json() == run.json()
        assert got.json()["code"] == "not_found"
    echo.refresh_from_db()
    assert echo.version == 1 and not echo.runs.exists()


def test_a_stranger_gets_the_same_404_as_for_a_missing_run(client, alice_run, charlie_token):
    headers = auth(charlie_token)
    bodies = []
    for run_id in (alice_run.pk, alice_run.pk + 1000):
        for response in (
            client.get(f"/api/runs/{run_id}", headers=headers),
            client.get(f"/api/runs/{run_id}/events", headers=headers),
            client.post(f"/api/runs/{run_id}/cancel", headers=headers),
        ):
            assert response.status_code == 404
            bodies.append(response.json())
    assert all(body == bodies[0] for body in bodies)
    alice_run.refresh_from_db()
    assert alice_run.status == "queued"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/flows"),
        ("post", "/api/flows"),
        ("get", "/api/flows/1"),
        ("put", "/api/flows/1"),
        ("post", "/api/flows/1/runs"),
        ("get", "/api/runs/1"),
        ("get", "/api/runs/1/events"),
        ("post", "/api/runs/1/cancel"),
    ],
)
def test_no_credentials_or_a_bad_token_get_401(alice, method, path):
    # With CSRF enforced, a bad token must still be a 401, not a CSRF failure.
    send = getattr(Client(enforce_csrf_checks=True), method)
    for headers in ({}, auth("sy_not-a-real-token"), auth("nonsense"), {"Authorization": "Bearer"}):
        response = send(path, {"name": "x", "graph": ECHO}, content_type=JSON, headers=headers)
        assert response.status_code == 401, headers
        assert response["Content-Type"] == "application/problem+json"
        assert response.json()["code"] == "not_authenticated"
    assert Flow.objects.filter(name="x").count() == 0


def test_a_revoked_token_stops_working(client, alice, alice_token):
    assert client.get("/api/flows", headers=auth(alice_token)).status_code == 200
    alice.api_tokens.all().delete()
    assert client.get("/api/flows", headers=auth(alice_token)).status_code == 401


def test_an_inactive_users_token_is_refused(client, alice, alice_token):
    alice.is_active = False
    alice.save()
    assert client.get("/api/flows", headers=auth(alice_token)).status_code == 401


def test_the_session_works_for_reads(client, alice, echo):
    client.force_login(alice)
    response = client.get(f"/api/flows/{echo.pk}")
    assert response.status_code == 200 and response.json()["id"] == echo.pk


def test_session_writes_need_the_csrf_token(alice, echo, settings):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    body = {"graph": ECHO, "base_version": 1}
    refused = client.put(f"/api/flows/{echo.pk}", body, content_type=JSON)
    assert refused.status_code == 403
    assert (
        client.post("/api/flows", {"name": "x", "graph": ECHO}, content_type=JSON).status_code
        == 403
    )
    echo.refresh_from_db()
    assert echo.version == 1

    request = RequestFactory().get("/")
    token = get_token(request)
    client.cookies[settings.CSRF_COOKIE_NAME] = request.META["CSRF_COOKIE"]
    accepted = client.put(
        f"/api/flows/{echo.pk}", body, content_type=JSON, headers={"X-CSRFToken": token}
    )
    assert accepted.status_code == 200 and accepted.json() == {
        "version": 2,
        "problems": [],
        "warnings": [],
    }


def test_bearer_requests_need_no_csrf_token(alice_token):
    client = Client(enforce_csrf_checks=True)
    response = client.post(
        "/api/flows", {"name": "x", "graph": ECHO}, content_type=JSON, headers=auth(alice_token)
    )
    assert response.status_code == 201


def test_a_bad_token_is_not_rescued_by_a_session(client, alice):
    client.force_login(alice)
    assert client.get("/api/flows", headers=auth("sy_wrong")).status_code == 401


def test_the_openapi_schema_lists_every_endpoint(client):
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert set(paths["/api/flows"]) == {"get", "post"}
    assert set(paths["/api/flows/{flow_id}"]) == {"get", "put"}
    assert set(paths["/api/flows/{flow_id}/runs"]) == {"post"}
    assert set(paths["/api/runs/{run_id}"]) == {"get"}
    assert set(paths["/api/runs/{run_id}/events"]) == {"get"}
    assert set(paths["/api/runs/{run_id}/cancel"]) == {"post"}
    schemes = response.json()["components"]["securitySchemes"]
    assert schemes["BearerAuth"]["scheme"] == "bearer"


# Runs


@pytest.mark.parametrize(
    ("inputs", "phrase"),
    [
        ({}, "input 'q' is required and has no default"),
        ({"q": "hi", "p": "extra"}, "unknown input 'p'"),
    ],
)
def test_a_run_with_wrong_inputs_is_refused_and_not_stored(api, echo, inputs, phrase):
    response = api.post(f"/api/flows/{echo.pk}/runs", {"inputs": inputs})
    assert response.status_code == 400
    assert any(phrase in p["text"] for p in response.json()["problems"])
    assert not Run.objects.exists()


def test_a_run_request_without_a_body_means_no_inputs(api, echo):
    response = api.post(f"/api/flows/{echo.pk}/runs")
    assert response.status_code == 400
    assert response.json()["problems"][0]["node"] == "q"
    assert not Run.objects.exists()


def test_run_detail_shows_state_version_and_usage(api, alice_run):
    response = api.get(f"/api/runs/{alice_run.pk}")
    assert response.status_code == 200
    assert response.json() == {
        "id": alice_run.pk,
        "flow": alice_run.flow_id,
        "flow_version": 1,
        "status": "queued",
        "inputs": {"q": "hi"},
        "outputs": {},
        "error": "",
        "started_at": None,
        "finished_at": None,
        "usage": {"input_tokens": 0, "output_tokens": 0},
        "cost_usd": None,
        "saved_usd": None,
        "cache_hits": None,
        "duration_s": None,
        "kind": "run",
        "trigger": "editor",
        "parent": None,
        "from_node": "",
        "parent_node": "",
        "budget": None,
    }


def test_events_page_by_seq(api, alice_run):
    url = f"/api/runs/{alice_run.pk}/events"

    def seqs(**query):
        return [e["seq"] for e in api.get(url, data=query).json()["items"]]

    assert seqs() == [1, 2, 3, 4, 5]
    assert seqs(after=2) == [3, 4, 5]
    assert seqs(after=1, limit=2) == [2, 3]
    assert seqs(after=5) == []
    assert api.get(url).json()["items"][0] == {
        "seq": 1,
        "ts": 1_700_000_001.0,
        "type": "node_delta",
    }


def test_event_pages_link_to_the_next_until_the_last(api, alice_run):
    url = f"/api/runs/{alice_run.pk}/events"
    page = api.get(url, data={"limit": 2}).json()
    assert page["count"] == 5 and page["next"] == f"{url}?limit=2&after=2"
    seen = [e["seq"] for e in page["items"]]
    while page["next"]:
        page = api.get(page["next"]).json()
        seen += [e["seq"] for e in page["items"]]
    assert seen == [1, 2, 3, 4, 5]


def assert_event_pages_count_without_reading_the_log(user) -> None:
    """Each page's count is what follows its ``after``; after a full page it comes from the
    run's last_seq (the log has no gaps), not from counting the rest of a long log. A log
    that shows a gap on the page, or goes past last_seq, is counted: still exact."""
    headers = {"Authorization": f"Bearer {ApiToken.issue(user, 'tests')[1]}"}
    flow = services.create(user, "Long", services.starter_graph("Long"))
    run = Run.objects.create(flow=flow, flow_version=flow.current(), started_by=user)
    write_batch(run.pk, [{"seq": seq, "ts": 1.0, "type": "node_delta"} for seq in range(1, 2501)])
    url, pages = f"/api/runs/{run.pk}/events?limit=1000", []
    while url:
        with CaptureQueriesContext(connection) as queries:
            page = Client().get(url, headers=headers).json()
        assert not [q["sql"] for q in queries if "COUNT(" in q["sql"].upper()]
        pages.append((page["items"][0]["seq"], page["items"][-1]["seq"], page["count"]))
        url = page["next"]
    assert pages == [(1, 1000, 2500), (1001, 2000, 1500), (2001, 2500, 500)]

    def first_page(run: Run, limit: int) -> tuple[list[int], int, bool]:
        page = Client().get(f"/api/runs/{run.pk}/events?limit={limit}", headers=headers).json()
        return [e["seq"] for e in page["items"]], page["count"], page["next"] is not None

    gapped = Run.objects.create(flow=flow, flow_version=flow.current(), started_by=user)
    write_batch(gapped.pk, [{"seq": seq, "ts": 1.0, "type": "node_delta"} for seq in (1, 2, 4, 5)])
    assert first_page(gapped, 3) == ([1, 2, 4], 4, True)
    behind = Run.objects.create(flow=flow, flow_version=flow.current(), started_by=user)
    RunEvent.objects.bulk_create(
        RunEvent(run=behind, seq=seq, type="node_delta", payload={"seq": seq}) for seq in (1, 2, 3)
    )
    assert Run.objects.get(pk=behind.pk).last_seq == 0
    assert first_page(behind, 2) == ([1, 2], 3, True)


def test_event_pages_count_without_reading_the_log(alice):
    assert_event_pages_count_without_reading_the_log(alice)


@pytest.mark.parametrize("query", [{"limit": 5001}, {"limit": 0}, {"after": -1}, {"after": "x"}])
def test_event_paging_out_of_range_is_a_422(api, alice_run, query):
    response = api.get(f"/api/runs/{alice_run.pk}/events", data=query)
    assert response.status_code == 422


# The cancel operation is async and reaches the database through another thread, which
# cannot share the test's transaction: this test needs real commits.
@pytest.mark.django_db(transaction=True)
def test_cancelling_a_run_no_one_is_executing_marks_it_cancelled(api, alice_run):
    response = api.post(f"/api/runs/{alice_run.pk}/cancel")
    assert response.status_code == 202
    assert response.json() == {"status": "cancelled"}


# Runs that really execute: the request and the run share this test's event loop.


async def wait_for_event(async_client, token: str, run_id: int, type_: str) -> None:
    async def recorded() -> bool:
        answer = await async_client.get(f"/api/runs/{run_id}/events", headers=auth(token))
        return any(e["type"] == type_ for e in answer.json()["items"])

    await wait_for_async(recorded, timeout=10, interval=0.02, message=f"a {type_} event")


@pytest.mark.django_db(transaction=True)
async def test_starting_a_run_executes_it_and_records_every_event(
    async_client, alice, alice_token, chain
):
    headers = auth(alice_token)
    response = await async_client.post(
        f"/api/flows/{chain.pk}/runs",
        {"inputs": {"topic": "queues"}},
        content_type=JSON,
        headers=headers,
    )
    assert response.status_code == 201
    run_id = response.json()["id"]
    await execution.driver().wait_idle()

    run = await Run.objects.select_related("flow_version").aget(pk=run_id)
    assert run.started_by_id == alice.pk and run.flow_version.number == 1

    body = (await async_client.get(f"/api/runs/{run_id}", headers=headers)).json()
    assert body["status"] == "succeeded" and body["error"] == ""
    assert body["flow"] == chain.pk and body["flow_version"] == 1
    assert body["inputs"] == {"topic": "queues"}
    assert body["outputs"]["text"]
    assert body["started_at"] and body["finished_at"]
    assert body["usage"]["output_tokens"] > 0

    page = (await async_client.get(f"/api/runs/{run_id}/events", headers=headers)).json()
    events = page["items"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["type"] == "run_started"
    assert events[-1]["type"] == "run_finished" and events[-1]["status"] == "succeeded"


@pytest.mark.django_db(transaction=True)
async def test_a_run_is_pinned_to_the_version_current_when_it_started(
    async_client, alice_token, echo
):
    headers = auth(alice_token)
    response = await async_client.post(
        f"/api/flows/{echo.pk}/runs", {"inputs": {"q": "hi"}}, content_type=JSON, headers=headers
    )
    await execution.driver().wait_idle()
    saved = await async_client.put(
        f"/api/flows/{echo.pk}",
        {"graph": example("chain"), "base_version": 1},
        content_type=JSON,
        headers=headers,
    )
    assert saved.status_code == 200
    body = (await async_client.get(f"/api/runs/{response.json()['id']}", headers=headers)).json()
    assert body["flow_version"] == 1 and body["outputs"] == {"a": "hi"}


@pytest.mark.django_db(transaction=True)
async def test_cancel_stops_a_running_run(async_client, alice_token, chain, monkeypatch):
    # Slow words keep the run busy long enough to cancel it mid-way.
    monkeypatch.setenv("SWITCHYARD_OFFLINE_DELAY_MS", "200")
    plans.engine_services.cache_clear()
    headers = auth(alice_token)
    response = await async_client.post(
        f"/api/flows/{chain.pk}/runs", {"inputs": {}}, content_type=JSON, headers=headers
    )
    assert response.status_code == 201
    run_id = response.json()["id"]
    try:
        await wait_for_event(async_client, alice_token, run_id, "node_delta")
        cancelled = await async_client.post(f"/api/runs/{run_id}/cancel", headers=headers)
        assert cancelled.status_code == 202
        assert cancelled.json()["status"] in ("running", "cancelled")
    finally:
        await execution.driver().wait_idle()

    body = (await async_client.get(f"/api/runs/{run_id}", headers=headers)).json()
    assert body["status"] == "cancelled" and body["finished_at"]
    page = (await async_client.get(f"/api/runs/{run_id}/events", headers=headers)).json()
    events = page["items"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["type"] == "run_finished" and events[-1]["status"] == "cancelled"


@pytest.mark.django_db(transaction=True)
async def test_a_run_started_through_the_asgi_server_outlives_its_request(
    alice_token, chain, monkeypatch
):
    # The real server wraps each request in its own thread context; a run that
    # inherited it would stall as soon as the response went out.
    monkeypatch.setenv("SWITCHYARD_OFFLINE_DELAY_MS", "10")
    plans.engine_services.cache_clear()
    request = HttpCommunicator(
        application,
        "POST",
        f"/api/flows/{chain.pk}/runs",
        body=b'{"inputs": {}}',
        headers=[
            (b"host", b"localhost"),
            (b"content-type", JSON.encode()),
            (b"authorization", f"Bearer {alice_token}".encode()),
        ],
    )
    response = await request.get_response()
    assert response["status"] == 201
    await execution.driver().wait_idle()
    run = await Run.objects.aget(pk=json.loads(response["body"])["id"])
    assert run.status == "succeeded" and run.outputs["text"]
