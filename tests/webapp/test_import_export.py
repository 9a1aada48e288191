"""Export a flow or a version as its JSON document; import one as a new flow or as a new
version. Imports pass the engine's checks, run nothing, and a refused document stores
nothing: every bad document of the engine's own tests is tried on every way in."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils.html import escape

from graphs.diff import diff_graphs
from tests.graphs.support import flow, node
from tests.webapp.test_versions import Api, greeting, logged_in
from webapp.flows import services
from webapp.flows.models import Flow, FlowVersion
from webapp.runs.models import Run


def stored() -> tuple[int, int, int]:
    return Flow.objects.count(), FlowVersion.objects.count(), Run.objects.count()


def simple(**llm_config) -> dict:
    """The engine tests' small valid flow: input -> llm -> output."""
    return flow(
        node("q", "input", name="q"),
        node("ask", "llm", **({"prompt": "Answer {{ q }}"} | llm_config)),
        node("out", "output", name="a"),
        edges=[("q", "value", "ask", "q"), ("ask", "text", "out", "value")],
        name="simple",
    )


def changed(doc: dict, change) -> dict:
    change(doc)
    return doc


def nested(depth: int) -> list:
    deep: list = []
    for _ in range(depth):
        deep = [deep]
    return deep


def bad_documents() -> dict[str, tuple[str, str]]:
    """Each bad document of tests/graphs/test_validation.py as JSON text, with a phrase
    the refusal must contain."""
    documents = {
        "unknown node type": (
            changed(simple(), lambda d: d["nodes"][1].update(type="llmm")),
            "unknown node type 'llmm'",
        ),
        "a type named like a python builtin": (
            changed(simple(), lambda d: d["nodes"][1].update(type="__import__")),
            "unknown node type '__import__'",
        ),
        "bad config key": (simple(temprature=0.2), "unknown config key 'temprature'"),
        "missing and mistyped config": (
            changed(simple(), lambda d: d["nodes"][1].update(config={"max_tokens": "many"})),
            "config.prompt is required",
        ),
        "dangling edge": (
            changed(
                simple(),
                lambda d: d["edges"].append(
                    {
                        "source": "ask",
                        "target": "ghost",
                        "source_port": "text",
                        "target_port": "value",
                    }
                ),
            ),
            "dangling edge: target node 'ghost' does not exist",
        ),
        "duplicate node ids": (
            changed(simple(), lambda d: d["nodes"].append(node("ask", "template", template="x"))),
            "duplicate node id",
        ),
        "unguarded cycle": (
            flow(
                node("a", "template", template="{{ x }}"),
                node("b", "template", template="{{ x }}"),
                edges=[("a", "text", "b", "x"), ("b", "text", "a", "x")],
            ),
            "unguarded cycle a -> b -> a",
        ),
        "unguarded self loop": (
            flow(node("a", "template", template="{{ x }}"), edges=[("a", "text", "a", "x")]),
            "unguarded cycle a -> a",
        ),
        "router route with no port": (
            flow(
                node("q", "input", name="q"),
                node("r", "router", routes=["yes", "no"], default="no"),
                node("o", "output", name="o"),
                edges=[
                    ("q", "value", "r", "input"),
                    ("r", "yes", "o", "value"),
                    ("r", "maybe", "o", "value"),
                ],
            ),
            "'r' has no route 'maybe'",
        ),
        "router rule naming an unknown route": (
            flow(
                node("q", "input", name="q"),
                node("r", "router", routes=["a"], rules=[{"route": "b", "pattern": "x"}]),
                edges=[("q", "value", "r", "input")],
            ),
            "rule names route 'b', which is not in routes",
        ),
        "router regex that does not compile": (
            flow(node("r", "router", routes=["a"], rules=[{"route": "a", "pattern": "("}])),
            "invalid regex '('",
        ),
        "template variable with no port": (
            simple(prompt="Answer {{ q }} using {{ context }}"),
            "template variable {{ context }} has no port",
        ),
        "edge into a port the node does not read": (
            changed(
                simple(),
                lambda d: d["edges"].append(
                    {"source": "q", "target": "ask", "source_port": "value", "target_port": "qq"}
                ),
            ),
            "'ask' has no input port 'qq'",
        ),
        "unknown agent tool": (
            flow(node("a", "agent", prompt="hi", tools=["calculator", "shell"])),
            "unknown tool 'shell'",
        ),
        "inline map flow without an item input": (
            flow(
                node("items", "input", name="items"),
                node(
                    "m",
                    "map",
                    flow=flow(
                        node("x", "input", name="x"),
                        node("o", "output", name="o"),
                        edges=[("x", "value", "o", "value")],
                    ),
                ),
                edges=[("items", "value", "m", "items")],
            ),
            "inline flow needs an input node named 'item'",
        ),
        "input with an incoming edge and a reused name": (
            flow(
                node("a", "input", name="q"),
                node("b", "input", name="q"),
                edges=[("a", "value", "b", "value")],
            ),
            "an input node takes no incoming edges",
        ),
        "flow without a name": (
            changed(simple(), lambda d: d.update(graph={})),
            "the flow needs a name (graph.name)",
        ),
        "sandbox escape in a prompt": (
            simple(prompt="{{ ''.__class__.__mro__ }}"),
            "which the sandbox forbids",
        ),
        "nested too deep inside a config": (
            changed(simple(), lambda d: d["nodes"][0]["config"].update(default=nested(200))),
            "nested more than 64 levels deep",
        ),
        "a lone surrogate": (simple(prompt="bad \ud800 text"), "holds a lone surrogate"),
        "not an object": ([1, 2], "a flow document is a JSON object"),
        "unknown top-level key": (
            changed(simple(), lambda d: d.update(run="rm -rf /")),
            "unknown top-level keys: 'run'",
        ),
        "a prompt over the engine's limit": (
            simple(prompt="x" * 1_100_000),
            "config.prompt: String should have at most 1000000 characters",
        ),
    }
    texts = {name: (json.dumps(doc), phrase) for name, (doc, phrase) in documents.items()}
    # Documents that are not JSON objects at all, only as text.
    texts["JSON nested 100,000 deep"] = ("[" * 100_000 + "]" * 100_000, "nested too deeply")
    texts["not JSON"] = ("{nope", "not valid JSON")
    return texts


ALL_BAD = bad_documents()
# Well-formed but unfinished: imported all the same, as a version listing its problems
# (which stop it running); the rest are not well-formed, and nothing is stored.
UNFINISHED = {
    name: ALL_BAD[name]
    for name in (
        "unguarded cycle",
        "unguarded self loop",
        "router route with no port",
        "router rule naming an unknown route",
        "router regex that does not compile",
        "template variable with no port",
        "edge into a port the node does not read",
        "unknown agent tool",
        "inline map flow without an item input",
        "input with an incoming edge and a reused name",
        "sandbox escape in a prompt",
    )
}
BAD = {name: case for name, case in ALL_BAD.items() if name not in UNFINISHED}
# Those a client can also send as a parsed object in the request body.
BAD_OBJECTS = [name for name in BAD if name not in ("JSON nested 100,000 deep", "not JSON")]


UNICODE = "must be valid Unicode (no lone surrogates)"


def problem_texts(response) -> str:
    return "\n".join(problem["text"] for problem in response.json()["problems"])


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_document_is_refused_as_a_new_flow_or_version_and_nothing_is_stored(
    case, team_flow, bob
):
    text, phrase = BAD[case]
    before = stored()
    api = Api(bob)
    new_flow = api.post("/api/flows/import", {"document": text, "team": team_flow.team_id})
    assert new_flow.status_code == 400
    assert new_flow.json()["detail"] == "the document was not imported"
    assert phrase in problem_texts(new_flow)
    new_version = api.post(
        f"/api/flows/{team_flow.pk}/import", {"document": text, "base_version": 1}
    )
    assert new_version.status_code == 400
    assert phrase in problem_texts(new_version)

    client = logged_in(bob)
    pasted = client.post("/flows/import/", {"text": text, "space": "personal"})
    assert pasted.status_code == 400
    assert escape(phrase) in pasted.content.decode()
    upload = SimpleUploadedFile("bad.json", text.encode("utf-8", "surrogatepass"))
    as_file = client.post(
        f"/flows/{team_flow.pk}/import/", {"file": upload, "base_version": 1, "message": ""}
    )
    assert as_file.status_code == 400
    assert 'data-testid="import-problems"' in as_file.content.decode()
    assert stored() == before
    team_flow.refresh_from_db()
    assert team_flow.version == 1


@pytest.mark.parametrize("case", list(UNFINISHED))
def test_an_unfinished_document_is_imported_with_its_problems_listed(case, team_flow, bob):
    text, phrase = UNFINISHED[case]
    api = Api(bob)
    new_flow = api.post("/api/flows/import", {"document": text, "team": team_flow.team_id})
    assert new_flow.status_code == 201
    assert phrase in problem_texts(new_flow)
    imported = Flow.objects.get(pk=new_flow.json()["id"])
    assert phrase in "\n".join(p["text"] for p in imported.current().problems)
    new_version = api.post(
        f"/api/flows/{team_flow.pk}/import", {"document": text, "base_version": 1}
    )
    assert new_version.status_code == 201
    assert phrase in problem_texts(new_version)
    team_flow.refresh_from_db()
    assert team_flow.version == 2 and team_flow.current().problems


@pytest.mark.parametrize("case", BAD_OBJECTS)
def test_a_bad_document_sent_as_json_is_refused_and_nothing_is_stored(case, team_flow, alice):
    text, phrase = BAD[case]
    before = stored()
    response = Api(alice).post("/api/flows/import", {"document": json.loads(text)})
    if case == "a lone surrogate":
        # Refused with every other body holding one, before the engine sees it.
        assert response.status_code == 422
        assert response.json()["errors"][0]["message"] == UNICODE
    else:
        assert response.status_code == 400
        assert phrase in problem_texts(response)
    assert stored() == before


def test_a_file_that_is_not_utf8_is_refused(team_flow, bob):
    before = stored()
    upload = SimpleUploadedFile("latin1.json", '{"graph": {"name": "caf\xe9"}}'.encode("latin-1"))
    response = logged_in(bob).post("/flows/import/", {"file": upload, "space": "personal"})
    assert response.status_code == 400
    assert "not valid JSON" in response.content.decode()
    assert stored() == before


def test_too_many_nodes_are_refused(alice, settings):
    settings.API_MAX_BODY_BYTES = settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 20_000_000
    doc = flow(*(node(f"n{i}", "template", template="x") for i in range(100_000)))
    before = stored()
    response = Api(alice).post("/api/flows/import", {"document": doc})
    assert response.status_code == 400
    assert problem_texts(response) == "100,000 nodes; the limit is 10,000"
    assert stored() == before


def test_an_oversized_document_is_refused_everywhere_and_nothing_is_stored(
    team_flow, bob, settings
):
    settings.API_MAX_BODY_BYTES = 5_000
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 5_000
    doc = greeting("{{ input }}" + " " * 6_000)
    text = json.dumps(doc)
    before = stored()
    api = Api(bob)
    response = api.post("/api/flows/import", {"document": doc})
    assert response.status_code == 413
    assert "the limit is 5,000" in response.json()["detail"]
    response = api.post(f"/api/flows/{team_flow.pk}/import", {"document": text, "base_version": 1})
    assert response.status_code == 413

    client = logged_in(bob)
    upload = SimpleUploadedFile("big.json", text.encode())
    as_file = client.post("/flows/import/", {"file": upload, "space": "personal"})
    assert as_file.status_code == 400
    assert f"the document is {len(text):,} bytes; the limit is 5,000" in as_file.content.decode()
    pasted = client.post(
        f"/flows/{team_flow.pk}/import/", {"text": text, "base_version": 1, "message": ""}
    )
    assert pasted.status_code == 413
    assert "Not imported: the request is" in pasted.content.decode()
    assert "the limit is 5,000" in pasted.content.decode()
    huge = SimpleUploadedFile("huge.json", b" " * 200_000)
    assert client.post("/flows/import/", {"file": huge, "space": "personal"}).status_code == 413
    assert stored() == before


def test_the_import_page_checks_the_csrf_token(team_flow, bob):
    client = Client(enforce_csrf_checks=True)
    client.force_login(bob)
    before = stored()
    response = client.post("/flows/import/", {"text": json.dumps(greeting()), "space": "personal"})
    assert response.status_code == 403
    assert stored() == before


# Export


@pytest.mark.parametrize("persona", ["alice", "bob", "carol"])
def test_anyone_who_can_view_exports_the_current_version_as_a_download(team_flow, persona, request):
    services.save(team_flow, team_flow.owner, greeting(), 1)
    response = logged_in(request.getfixturevalue(persona)).get(f"/flows/{team_flow.pk}/export/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    assert response["Content-Disposition"] == 'attachment; filename="team-flow-v2.json"'
    assert json.loads(response.content) == team_flow.versions.get(number=2).graph


def test_any_version_can_be_exported(team_flow, carol, alice):
    services.save(team_flow, alice, greeting(), 1)
    response = logged_in(carol).get(f"/flows/{team_flow.pk}/export/?version=1")
    assert response["Content-Disposition"] == 'attachment; filename="team-flow-v1.json"'
    assert json.loads(response.content) == team_flow.versions.get(number=1).graph
    assert logged_in(carol).get(f"/flows/{team_flow.pk}/export/?version=5").status_code == 404
    assert logged_in(carol).get(f"/flows/{team_flow.pk}/export/?version=x").status_code == 400


def test_a_stranger_cannot_export(team_flow, dave):
    assert logged_in(dave).get(f"/flows/{team_flow.pk}/export/").status_code == 404
    assert Api(dave).get(f"/api/flows/{team_flow.pk}/export").status_code == 404


def test_the_api_exports_a_version_as_a_download(team_flow, carol, alice):
    services.save(team_flow, alice, greeting(), 1)
    api = Api(carol)
    current = api.get(f"/api/flows/{team_flow.pk}/export")
    assert current.status_code == 200
    assert current["Content-Disposition"] == 'attachment; filename="team-flow-v2.json"'
    assert current.json() == team_flow.versions.get(number=2).graph
    first = api.get(f"/api/flows/{team_flow.pk}/export?version=1")
    assert first.json() == team_flow.versions.get(number=1).graph
    assert api.get(f"/api/flows/{team_flow.pk}/export?version=3").status_code == 404


# Import: a round trip, spaces and roles


def test_an_export_imports_back_as_an_equal_flow_and_nothing_runs(team_flow, alice, bob):
    services.save(team_flow, alice, greeting("Hello {{ input }}"), 1)
    exported = Api(bob).get(f"/api/flows/{team_flow.pk}/export").content.decode()
    response = Api(bob).post("/api/flows/import", {"document": exported})
    assert response.status_code == 201
    body = response.json()
    assert body["version"] == 1
    copy = Flow.objects.get(pk=body["id"])
    assert (copy.name, copy.owner, copy.team) == ("Team flow", bob, None)
    version = copy.current()
    assert version.graph == team_flow.current().graph
    assert diff_graphs(version.graph, team_flow.current().graph, positions=True).is_empty
    assert (version.author, version.message) == (bob, "imported")
    assert Run.objects.count() == 0


def test_a_downloaded_file_uploads_back_through_the_page(team_flow, carol):
    exported = logged_in(carol).get(f"/flows/{team_flow.pk}/export/")
    upload = SimpleUploadedFile("team-flow-v1.json", exported.content, "application/json")
    response = logged_in(carol).post(
        "/flows/import/", {"file": upload, "space": "personal", "name": "My copy"}
    )
    copy = Flow.objects.get(name="My copy")
    assert response.status_code == 302
    assert response["Location"] == f"/flows/{copy.pk}/"
    assert (copy.owner, copy.team) == (carol, None)
    graph = copy.current().graph
    assert graph["graph"]["name"] == "My copy"
    assert graph["nodes"] == team_flow.current().graph["nodes"]


def test_a_file_with_a_byte_order_mark_imports(alice):
    text = "\ufeff" + json.dumps(greeting())
    upload = SimpleUploadedFile("bom.json", text.encode("utf-8"))
    response = logged_in(alice).post("/flows/import/", {"file": upload, "space": "personal"})
    assert response.status_code == 302
    assert Flow.objects.filter(owner=alice, name="Team flow", team=None).exists()


def test_a_pasted_document_imports_into_a_team_where_the_user_edits(team, bob):
    response = logged_in(bob).post(
        "/flows/import/", {"text": json.dumps(greeting()), "space": str(team.pk)}
    )
    assert response.status_code == 302
    assert Flow.objects.get(owner=bob, name="Team flow").team == team


def test_the_import_page_offers_only_teams_where_the_user_edits(team, bob, carol):
    assert "Team: Research" in logged_in(bob).get("/flows/import/").content.decode()
    page = logged_in(carol).get("/flows/import/")
    assert page.status_code == 200
    assert "Team: Research" not in page.content.decode()
    before = stored()
    response = logged_in(carol).post(
        "/flows/import/", {"text": json.dumps(greeting()), "space": str(team.pk)}
    )
    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()
    assert stored() == before


def test_the_import_form_wants_a_file_or_a_paste_not_both(alice):
    client = logged_in(alice)
    before = stored()
    neither = client.post("/flows/import/", {"space": "personal"})
    assert "Choose a JSON file or paste a flow document." in neither.content.decode()
    upload = SimpleUploadedFile("a.json", json.dumps(greeting()).encode())
    both = client.post(
        "/flows/import/", {"file": upload, "text": json.dumps(greeting()), "space": "personal"}
    )
    assert "Choose a file or paste the JSON, not both." in both.content.decode()
    assert stored() == before


@pytest.mark.parametrize(
    ("persona", "status"), [("alice", 201), ("bob", 201), ("carol", 403), ("dave", 404)]
)
def test_api_import_into_a_team_by_role(team, persona, status, request):
    api = Api(request.getfixturevalue(persona))
    before = stored()
    response = api.post(
        "/api/flows/import", {"document": greeting(), "team": team.pk, "name": "Into the team"}
    )
    assert response.status_code == status
    if status == 201:
        imported = Flow.objects.get(pk=response.json()["id"])
        assert (imported.team, imported.name) == (team, "Into the team")
        assert imported.current().graph["graph"]["name"] == "Into the team"
    else:
        assert stored() == before


def test_anyone_may_import_into_their_own_space(dave):
    response = Api(dave).post("/api/flows/import", {"document": greeting()})
    assert response.status_code == 201
    assert Flow.objects.get(pk=response.json()["id"]).owner == dave


def test_a_request_body_nested_too_deeply_is_a_400_and_stores_nothing(team_flow, bob):
    api = Api(bob)
    body = '{"document": ' + "[" * 100_000 + "]" * 100_000 + ', "base_version": 1}'
    before = stored()
    for path in ("/api/flows/import", f"/api/flows/{team_flow.pk}/import"):
        response = api.client.post(path, body, content_type="application/json", headers=api.headers)
        assert response.status_code == 400
    assert stored() == before


def test_an_import_without_a_document_is_a_422(alice):
    assert Api(alice).post("/api/flows/import", {"name": "x"}).status_code == 422


# Import as a new version


@pytest.mark.parametrize(
    ("persona", "status"), [("alice", 201), ("bob", 201), ("carol", 403), ("dave", 404)]
)
def test_api_import_as_a_new_version_by_role(team_flow, persona, status, request):
    user = request.getfixturevalue(persona)
    response = Api(user).post(
        f"/api/flows/{team_flow.pk}/import",
        {"document": json.dumps(greeting()), "base_version": 1, "message": "from a file"},
    )
    assert response.status_code == status
    team_flow.refresh_from_db()
    if status == 201:
        assert response.json() == {"version": 2, "problems": [], "warnings": []}
        version = team_flow.current()
        assert (version.number, version.author, version.message) == (2, user, "from a file")
        assert version.graph["nodes"][2]["id"] == "say"
    else:
        assert team_flow.version == 1


def test_an_import_from_a_stale_base_is_a_409_and_stores_nothing(team_flow, alice, bob):
    services.save(team_flow, alice, greeting(), 1)
    response = Api(bob).post(
        f"/api/flows/{team_flow.pk}/import",
        {"document": services.starter_graph("Team flow"), "base_version": 1},
    )
    assert response.status_code == 409
    assert response.json()["current_version"] == 2
    assert team_flow.versions.count() == 2


def test_the_import_version_page_saves_on_top_of_the_version_it_showed(team_flow, bob):
    client = logged_in(bob)
    page = client.get(f"/flows/{team_flow.pk}/import/")
    assert page.status_code == 200
    assert 'name="base_version" value="1"' in page.content.decode()
    response = client.post(
        f"/flows/{team_flow.pk}/import/",
        {"text": json.dumps(greeting()), "base_version": 1, "message": ""},
    )
    assert response.status_code == 302
    assert response["Location"] == f"/flows/{team_flow.pk}/versions/"
    team_flow.refresh_from_db()
    assert (team_flow.version, team_flow.current().message) == (2, "imported")


def test_the_import_version_page_refuses_a_stale_base(team_flow, alice, bob):
    services.save(team_flow, alice, greeting(), 1)
    response = logged_in(bob).post(
        f"/flows/{team_flow.pk}/import/",
        {"text": json.dumps(services.starter_graph("x")), "base_version": 1, "message": ""},
    )
    assert response.status_code == 409
    assert "Someone saved version 2 since this page was loaded" in response.content.decode()
    assert team_flow.versions.count() == 2


def test_viewers_and_strangers_cannot_import_a_version(team_flow, carol, dave):
    text = json.dumps(greeting())
    for user, status in ((carol, 403), (dave, 404)):
        client = logged_in(user)
        assert client.get(f"/flows/{team_flow.pk}/import/").status_code == status
        posted = client.post(f"/flows/{team_flow.pk}/import/", {"text": text, "base_version": 1})
        assert posted.status_code == status
    assert team_flow.versions.count() == 1
