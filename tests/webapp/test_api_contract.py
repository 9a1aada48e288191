"""Issue 11, "API contract findings": one regression test per finding (Schemathesis found
them; tests/webapp/test_api_schemathesis.py keeps looking).

Personas as in conftest.py: alice owns the team (bob edits, carol views), dave is a stranger.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.test import Client

from webapp.api import api as ninja_api
from webapp.flows import services
from webapp.flows.models import Flow, ShareLink
from webapp.flows.sharing import service as sharing
from webapp.runs.models import Run
from webapp.teams.models import Invite, Team

JSON = "application/json"
PROBLEM = "application/problem+json"
TOO_BIG = 2**63


@pytest.fixture
def flow(alice):
    return services.create(alice, "Echo", services.starter_graph("Echo"))


@pytest.fixture
def run(flow, alice):
    return Run.objects.create(
        flow=flow, flow_version=flow.current(), started_by=alice, inputs={"input": "hi"}
    )


def assert_problem(response, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"] == PROBLEM
    body = response.json()
    assert {"type", "title", "status", "code", "detail"} <= set(body)
    assert body["status"] == status and body["type"] == f"/api/problems/{body['code']}"
    if code is not None:
        assert body["code"] == code, body
    return body


def openapi() -> dict[str, Any]:
    """The schema as clients read it (JSON: status codes are strings)."""
    return json.loads(json.dumps(ninja_api.get_openapi_schema()))


def operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in openapi()["paths"].items()
        for method, operation in item.items()
    ]


# ---- Findings 1-3: ids and offsets past 64 bits were 500s on SQLite ------------------------


@pytest.mark.parametrize(
    "path",
    [
        f"/api/teams/{TOO_BIG}",
        f"/api/flows/{TOO_BIG}",
        f"/api/runs/{TOO_BIG}/events",
        f"/api/runs?flow={TOO_BIG}",
        f"/api/runs?offset={TOO_BIG}",
        f"/api/runs/compare?a={TOO_BIG}&b=1",
    ],
)
def test_ids_past_64_bits_are_a_422_not_a_500(api, flow, path):
    body = assert_problem(api("alice").get(path), 422, "validation_error")
    assert body["errors"][0]["path"].split(".")[0] in ("path", "query")


def test_offsets_and_seqs_past_64_bits_are_a_422(api, flow, run):
    for path in (
        f"/api/flows/{flow.pk}/versions?offset={TOO_BIG}",
        f"/api/runs/{run.pk}/events?after={TOO_BIG}",
    ):
        assert_problem(api("alice").get(path), 422)
    # The largest 64-bit values are fine: an empty page.
    page = api("alice").get(f"/api/flows/{flow.pk}/versions?offset={TOO_BIG - 1}").json()
    assert page == {"items": [], "count": 1, "next": None}


def test_ids_in_bodies_past_64_bits_are_a_422(api, flow):
    create = api("alice").post("/api/flows", {"name": "x", "graph": flow.current().graph})
    assert create.status_code == 201
    for path, body in (
        ("/api/flows", {"name": "x", "graph": flow.current().graph, "team": TOO_BIG}),
        (f"/api/flows/{flow.pk}/share-links", {"run": TOO_BIG}),
        (f"/api/flows/{flow.pk}/shares", {"team": TOO_BIG}),
    ):
        problem = assert_problem(api("alice").post(path, body), 422)
        assert problem["errors"][0]["path"] in ("body.team", "body.run")


# ---- Finding 4: a NUL character in any stored text was a 500 on PostgreSQL -----------------
# Refused the same on every database (tests/scaleout/test_api_contract_postgres.py runs
# these on PostgreSQL itself).


def nul_requests(flow: Flow, team: Team) -> list[tuple[str, str, dict[str, Any], str]]:
    graph = flow.current().graph
    named = json.loads(json.dumps(graph))
    named["graph"]["description"] = "a\x00b"
    return [
        ("post", "/api/teams", {"name": "Ops\x00"}, "body.name"),
        ("patch", f"/api/teams/{team.pk}", {"name": "\x00"}, "body.name"),
        ("post", "/api/flows", {"name": "x", "graph": named}, "body.graph.graph.description"),
        ("post", f"/api/flows/{flow.pk}/runs", {"inputs": {"input": "\x00"}}, "body.inputs.input"),
        ("post", f"/api/flows/{flow.pk}/shares", {"user": "dave\x00"}, "body.user"),
        ("post", f"/api/teams/{team.pk}/invites", {"user": "\x00bob"}, "body.user"),
        ("post", "/api/teams/join", {"token": "\x00"}, "body.token"),
        ("post", "/api/flows", {"name": "x", "graph": {"nodes": [], "a\x00": 1}}, "body.graph"),
    ]


def test_nul_characters_are_refused_in_every_body(api, alice, team):
    flow = services.create(alice, "Team flow", services.starter_graph("Team flow"), team=team)
    before = (Team.objects.count(), Flow.objects.count(), Run.objects.count())
    for method, path, body, where in nul_requests(flow, team):
        response = getattr(api("alice"), method)(path, body)
        problem = assert_problem(response, 422, "validation_error")
        assert problem["errors"][0]["path"] == where, (path, problem)
        assert "NUL" in problem["errors"][0]["message"]
    assert (Team.objects.count(), Flow.objects.count(), Run.objects.count()) == before
    assert Team.objects.get(pk=team.pk).name == "Research"


def test_nul_characters_are_refused_in_query_strings_and_imported_text(api, flow):
    assert_problem(api("alice").get("/api/runs?status=%00"), 422)
    text = json.dumps({**flow.current().graph, "graph": {"name": "x\x00"}})
    response = api("alice").post("/api/flows/import", {"document": text})
    problem = assert_problem(response, 400, "invalid_flow")
    assert "NUL" in problem["problems"][0]["text"]


def test_lone_surrogates_and_non_finite_numbers_are_refused(api, flow, client):
    headers = api("alice").headers
    for raw in ('{"name": "\\ud800"}', '{"name": "x", "n": NaN}', '{"name": "x", "n": 1e999}'):
        response = client.post("/api/teams", raw, content_type=JSON, headers=headers)
        assert response.status_code in (400, 422), raw
        assert response["Content-Type"] == PROBLEM
    assert not Team.objects.exists()


# ---- Findings 6-7: a body of null, 5 or [1,2] was "all defaults"; Content-Type ignored --


@pytest.mark.parametrize("raw", ["null", "5", "[1, 2]", '"text"', "true"])
def test_a_body_that_is_not_an_object_is_a_400_and_makes_nothing(client, api, team, flow, raw):
    headers = api("alice").headers
    for path in (
        f"/api/teams/{team.pk}/invites",
        f"/api/flows/{flow.pk}/share-links",
        f"/api/flows/{flow.pk}/runs",
        "/api/teams",
    ):
        response = client.post(path, raw, content_type=JSON, headers=headers)
        assert_problem(response, 400, "body_not_object")
    assert not Invite.objects.exists() and not ShareLink.objects.exists()
    assert not Run.objects.exists() and Team.objects.count() == 1


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"]
)
def test_a_json_body_sent_as_another_type_is_a_415(client, api, flow, content_type):
    response = client.post(
        f"/api/flows/{flow.pk}/share-links",
        "{}",
        content_type=content_type,
        headers=api("alice").headers,
    )
    body = assert_problem(response, 415, "unsupported_media_type")
    assert content_type in body["detail"]
    assert not ShareLink.objects.exists()


def test_json_with_a_charset_is_fine(client, api, flow):
    response = client.post(
        f"/api/flows/{flow.pk}/share-links",
        "{}",
        content_type="application/json; charset=utf-8",
        headers=api("alice").headers,
    )
    assert response.status_code == 201


def test_a_rerun_without_a_body_still_means_the_defaults(client, api, run):
    # An absent body is not a body of the wrong shape: rerun's is optional.
    response = client.generic("POST", f"/api/runs/{run.pk}/rerun", headers=api("alice").headers)
    assert response.status_code == 201
    rerun = openapi()["paths"]["/api/runs/{run_id}/rerun"]["post"]["requestBody"]
    assert rerun["required"] is False
    assert rerun["content"][JSON]["schema"] == {"$ref": "#/components/schemas/RerunIn"}


# ---- Finding 8: one error shape for every 4xx and 5xx --------------------------------------


def test_an_unknown_path_under_the_api_is_a_problem_not_an_html_page(api):
    for path in ("/api/nope", "/api/flows/1/nope", "/api/flows/", "/api/"):
        assert_problem(api("alice").get(path), 404, "not_found")
    assert_problem(Client().post("/api/no/such/thing", {}), 404, "not_found")


def test_a_method_the_path_does_not_take_is_a_405_problem_with_allow(api):
    response = api("alice").delete("/api/flows")
    assert_problem(response, 405, "method_not_allowed")
    assert set(response["Allow"].replace(" ", "").split(",")) == {"GET", "POST"}


def test_validation_errors_name_each_field(api):
    response = api("alice").post("/api/teams", {"name": 5})
    body = assert_problem(response, 422, "validation_error")
    assert body["errors"] == [{"path": "body.name", "message": "Input should be a valid string"}]
    assert body["detail"] == "body.name: Input should be a valid string"


def test_auth_and_permission_answers_are_problems(api, team, flow):
    unauthenticated = Client().get("/api/flows")
    assert_problem(unauthenticated, 401, "not_authenticated")
    assert unauthenticated["WWW-Authenticate"].startswith("Bearer")
    assert_problem(api("carol").patch(f"/api/teams/{team.pk}", {"name": "X"}), 403, "forbidden")
    assert_problem(api("dave").get(f"/api/flows/{flow.pk}"), 404, "not_found")


def test_a_session_write_without_csrf_is_a_403_problem(alice, flow):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    response = client.post(f"/api/flows/{flow.pk}/share-links", "{}", content_type=JSON)
    assert_problem(response, 403, "csrf_failed")


def test_the_413_of_the_body_limit_is_a_problem(api, settings):
    settings.API_MAX_BODY_BYTES = 100
    body = assert_problem(api("alice").post("/api/teams", {"name": "x" * 200}), 413)
    assert "the limit is 100" in body["detail"]


def test_a_production_500_is_a_problem_not_an_html_page(api, monkeypatch, settings):
    settings.DEBUG = False

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("webapp.teams.services.member_teams", broken)
    client = Client(raise_request_exception=False)
    response = client.get("/api/teams", headers=api("alice").headers)
    body = assert_problem(response, 500, "server_error")
    assert "boom" not in json.dumps(body)


def test_errors_keep_their_extra_members(api, flow):
    graph = flow.current().graph
    stale = api("alice").put(f"/api/flows/{flow.pk}", {"graph": graph, "base_version": 1})
    assert stale.status_code == 200
    again = api("alice").put(f"/api/flows/{flow.pk}", {"graph": graph, "base_version": 1})
    assert assert_problem(again, 409, "stale_version")["current_version"] == 2
    broken = api("alice").put(f"/api/flows/{flow.pk}", {"graph": {"nodes": []}, "base_version": 2})
    problems = assert_problem(broken, 400, "invalid_flow")["problems"]
    assert problems and {"message", "node", "edge", "text"} <= set(problems[0])


# ---- Finding 9: the schema documents every status each operation can return ---------------


def test_the_schema_documents_every_status_an_operation_can_answer():
    for method, path, operation in operations():
        documented = set(operation["responses"])
        needed = {"422"} if operation.get("parameters") or "requestBody" in operation else set()
        if operation.get("security"):
            needed |= {"401", "429"} | ({"403"} if method != "get" else set())
        if "requestBody" in operation:
            needed |= {"400", "413", "415"}
        if "{" in path:
            needed.add("404")
        assert needed <= documented, (method, path, needed - documented)
        for status, answer in operation["responses"].items():
            if int(status) >= 400:
                assert list(answer["content"]) == [PROBLEM], (method, path, status)


def test_run_starting_operations_document_429_and_invalid_flows():
    schema = openapi()["paths"]
    for path in (
        "/api/flows/{flow_id}/runs",
        "/api/runs/{run_id}/rerun",
        "/api/runs/{run_id}/rerun-from",
        "/api/runs/{run_id}/resume",
    ):
        responses = schema[path]["post"]["responses"]
        assert {"400", "403", "404", "429"} <= set(responses)
        ref = responses["400"]["content"][PROBLEM]["schema"]["$ref"]
        assert ref.endswith("/InvalidOut")


# ---- Finding 10: every request and response body is typed ----------------------------------


def resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def test_every_body_is_typed():
    schema = openapi()
    for method, path, operation in operations():
        bodies = [
            answer["content"][media]["schema"]
            for answer in operation["responses"].values()
            for media in answer.get("content", {})
        ]
        if "requestBody" in operation:
            bodies.append(operation["requestBody"]["content"][JSON]["schema"])
        for body in bodies:
            resolved = resolve(schema, body)
            assert resolved.get("properties"), (method, path, resolved)


@pytest.mark.parametrize(
    ("path", "method", "status", "keys"),
    [
        ("/api/runs/{run_id}/events", "get", "200", {"items"}),
        ("/api/runs/compare", "get", "200", {"a", "b", "nodes", "inputs", "graph_diff"}),
        ("/api/flows/{flow_id}/export", "get", "200", {"nodes", "edges", "graph"}),
        ("/api/flows/{flow_id}/versions/diff", "get", "200", {"nodes", "edges", "summary"}),
    ],
)
def test_events_compare_export_and_diff_are_typed(path, method, status, keys):
    schema = openapi()
    answer = schema["paths"][path][method]["responses"][status]["content"][JSON]["schema"]
    assert keys <= set(resolve(schema, answer)["properties"])


def test_the_flow_document_is_typed_in_requests_and_answers():
    schema = openapi()
    save = schema["paths"]["/api/flows/{flow_id}"]["put"]["requestBody"]["content"][JSON]
    graph = resolve(schema, save["schema"])["properties"]["graph"]
    assert {"nodes", "edges", "graph"} <= set(graph["properties"])
    detail = schema["paths"]["/api/flows/{flow_id}"]["get"]["responses"]["200"]
    flow = resolve(schema, detail["content"][JSON]["schema"])
    assert {"nodes", "edges"} <= set(flow["properties"]["graph"]["properties"])


def test_event_pages_carry_events_as_recorded(api, run):
    from webapp.runs.eventlog import write_batch

    write_batch(run.pk, [{"seq": 1, "ts": 1.5, "type": "run_started", "inputs": {}}])
    page = api("alice").get(f"/api/runs/{run.pk}/events").json()
    # Exactly as stored: no node/iteration nulls added by the typing.
    assert page["items"] == [{"seq": 1, "ts": 1.5, "type": "run_started", "inputs": {}}]


# ---- Finding 11: stable operation names, with descriptions ----------------------------------


def test_operations_have_stable_unique_names_and_descriptions():
    ids = [operation["operationId"] for _, _, operation in operations()]
    assert len(ids) == len(set(ids))
    for method, path, operation in operations():
        assert re.fullmatch(r"[a-z][a-z0-9_]*", operation["operationId"]), (method, path)
        assert "webapp" not in operation["operationId"]
        assert operation.get("description"), (method, path)
        assert operation["summary"] and "``" not in operation["description"]


# ---- Finding 12: one pagination convention, one timestamp format, relative URLs ------------


def test_every_list_is_a_page_with_limit_and_a_next_link():
    schema = openapi()
    for method, path, operation in operations():
        answer = operation["responses"].get("200", {}).get("content", {}).get(JSON)
        if answer is None:
            continue
        resolved = resolve(schema, answer["schema"])
        assert resolved.get("type") != "array", (method, path)
        if "items" in resolved.get("properties", {}):
            assert {"items", "count", "next"} == set(resolved["properties"]), path
            names = {p["name"] for p in operation["parameters"]}
            assert "limit" in names and names & {"offset", "after"}, path


def test_pages_follow_next_to_the_end(api, alice):
    for n in range(5):
        services.create(alice, f"Flow {n}", services.starter_graph(f"Flow {n}"))
    seen = []
    url = "/api/flows?limit=2"
    while url:
        page = api("alice").get(url).json()
        assert len(page["items"]) <= 2
        seen += [f["name"] for f in page["items"]]
        url = page["next"]
    assert len(seen) == len(set(seen)) == page["count"]
    assert {f"Flow {n}" for n in range(5)} <= set(seen)


def test_timestamps_have_one_format(api, flow, alice):
    runs = [
        Run.objects.create(flow=flow, flow_version=flow.current(), started_by=alice)
        for _ in range(2)
    ]
    rfc3339_utc = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z")
    compared = api("alice").get(f"/api/runs/compare?a={runs[0].pk}&b={runs[1].pk}").json()
    listed = api("alice").get("/api/runs").json()["items"][0]
    for value in (compared["a"]["created"], listed["created"]):
        assert rfc3339_utc.fullmatch(value), value


def test_urls_in_answers_are_relative(api, team, flow, run):
    invite = api("alice").post(f"/api/teams/{team.pk}/invites", {}).json()
    link = api("alice").post(f"/api/flows/{flow.pk}/share-links", {}).json()
    rerun = api("alice").post(f"/api/runs/{run.pk}/rerun", {}).json()
    for url in (invite["url"], link["url"], rerun["url"], rerun["api_url"]):
        assert url.startswith("/") and not url.startswith("//"), url
    assert link["url"] == f"/s/{link['token']}/"
    sharing.revoke_link(ShareLink.objects.get(pk=link["id"]))


# ---- Finding 13: /api/docs works offline, without inline script ----------------------------


def test_the_docs_page_loads_swagger_ui_from_this_server_without_inline_script(client):
    response = client.get("/api/docs")
    assert response.status_code == 200
    html = response.content.decode()
    # {% static %} URLs carry the files' version (webapp/core/assets.py).
    for name in ("vendor/swagger-ui-bundle.js", "vendor/swagger-ui.css", "js/api-docs.js"):
        assert re.search(rf'"/static/v/[0-9a-f]{{12}}/{re.escape(name)}"', html), name
    assert not re.search(r"https?://", html), "nothing from another host"
    for script in re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S):
        assert "src=" in script[0] and not script[1].strip(), "no inline script"
    assert 'data-openapi-url="/api/openapi.json"' in html


def test_the_vendored_docs_assets_are_served(client):
    for name in ("vendor/swagger-ui-bundle.js", "vendor/swagger-ui.css", "js/api-docs.js"):
        response = client.get(f"/static/{name}")
        assert response.status_code == 200, name


def test_bodies_take_json_types_as_they_are(api, team):
    # Schemathesis found {"sizes": {"n": {"width": 0, "height": false}}} laid out as 0.
    graph = services.starter_graph("Layout")
    sizes = {"input": {"width": 10, "height": False}}
    response = api("alice").post("/api/editor/layout", {"graph": graph, "sizes": sizes})
    assert assert_problem(response, 422)["errors"][0]["path"] == "body.sizes.input.height"
    assert_problem(
        api("alice").post(f"/api/teams/{team.pk}/invites", {"expires_in_days": True}), 422
    )
    assert_problem(api("alice").post("/api/flows", {"name": "x", "graph": graph, "team": "1"}), 422)
    assert not Invite.objects.exists()
