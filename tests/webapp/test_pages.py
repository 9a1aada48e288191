"""The flow list and its actions: search, new, duplicate, delete."""

from __future__ import annotations

import pytest
from django.urls import reverse

import graphs
from webapp.flows import services
from webapp.flows.examples import example_documents
from webapp.flows.models import Flow, FlowVersion
from webapp.runs.models import Run

# Every user starts with one flow per file in examples/.
EXAMPLE_COUNT = len(example_documents())


@pytest.fixture
def alice_client(client, alice):
    client.force_login(alice)
    return client


def flow_named(user, name: str) -> Flow:
    return Flow.objects.get(owner=user, name=name)


def add_runs(flow: Flow, count: int) -> None:
    for _ in range(count):
        Run.objects.create(
            flow=flow, flow_version=flow.current(), started_by=flow.owner, status="succeeded"
        )


def services_graph(name: str) -> dict:
    return {
        "graph": {"name": name},
        "nodes": [
            {"id": "q", "type": "input", "config": {"name": "q"}},
            {"id": "out", "type": "output", "config": {"name": "answer"}},
        ],
        "edges": [{"source": "q", "target": "out", "source_port": "value", "target_port": "value"}],
    }


# ---- Access -----------------------------------------------------------------------


def test_anonymous_is_redirected_to_login(client, alice):
    flow = flow_named(alice, "Calculator agent")
    for method, url in [
        ("get", reverse("flow_list")),
        ("post", reverse("flow_new")),
        ("post", reverse("flow_duplicate", args=[flow.pk])),
        ("get", reverse("flow_delete", args=[flow.pk])),
        ("post", reverse("flow_delete", args=[flow.pk])),
    ]:
        response = getattr(client, method)(url)
        assert response.status_code == 302, url
        assert response.url == f"{reverse('login')}?next={url}"
    assert Flow.objects.filter(owner=alice).count() == EXAMPLE_COUNT


def test_a_stranger_gets_404_for_duplicate_and_delete(client, alice, charlie):
    flow = flow_named(alice, "Calculator agent")
    client.force_login(charlie)

    assert client.post(reverse("flow_duplicate", args=[flow.pk])).status_code == 404
    assert client.get(reverse("flow_delete", args=[flow.pk])).status_code == 404
    assert client.post(reverse("flow_delete", args=[flow.pk])).status_code == 404
    assert Flow.objects.filter(pk=flow.pk).exists()
    assert Flow.objects.filter(owner=charlie).count() == EXAMPLE_COUNT
    assert not Flow.objects.filter(name="Copy of Calculator agent").exists()


# ---- The list ------------------------------------------------------------------------


def test_list_shows_only_my_flows(alice_client, alice, charlie):
    services.create(charlie, "Charlie's private flow", services_graph("Charlie's private flow"))

    response = alice_client.get(reverse("flow_list"))

    assert response.status_code == 200
    html = response.content.decode()
    assert "Calculator agent" in html
    assert "Charlie&#x27;s private flow" not in html
    assert {flow.owner_id for flow in response.context["flows"]} == {alice.pk}
    assert len(response.context["flows"]) == EXAMPLE_COUNT


def test_each_row_links_to_the_editor_and_shows_version_runs_and_owner(alice_client, alice):
    flow = flow_named(alice, "Three perspectives")
    services.save(flow, alice, flow.current().graph, base_version=1)
    add_runs(flow, 3)

    response = alice_client.get(reverse("flow_list"))

    html = response.content.decode()
    assert f'href="{reverse("flow_editor", args=[flow.pk])}"' in html
    rows = {row.name: row for row in response.context["flows"]}
    assert rows["Three perspectives"].run_count == 3
    assert rows["Three perspectives"].version == 2
    assert rows["Calculator agent"].run_count == 0
    assert "v2" in html
    assert "just now" in html
    assert ">you<" in html


def test_list_puts_the_latest_changed_flow_first(alice_client, alice):
    flow = flow_named(alice, "Summarise each text")
    services.save(flow, alice, flow.current().graph, base_version=1)
    response = alice_client.get(reverse("flow_list"))
    assert response.context["flows"][0].pk == flow.pk


def test_search_filters_by_name(alice_client):
    response = alice_client.get(reverse("flow_list"), {"q": "PIPELINE"})

    assert [flow.name for flow in response.context["flows"]] == ["Support ticket pipeline"]
    html = response.content.decode()
    assert "<html" in html  # a plain request gets the whole page
    assert 'value="PIPELINE"' in html
    assert "Calculator agent" not in html


def test_search_from_htmx_returns_only_the_list(alice_client):
    response = alice_client.get(
        reverse("flow_list"), {"q": "agent"}, headers={"HX-Request": "true"}
    )

    html = response.content.decode()
    assert "<html" not in html
    assert 'id="flow-list"' in html
    assert "Calculator agent" in html
    assert "Code or docs question" not in html
    assert response.templates[0].name == "flows/_list.html"
    assert "HX-Request" in response["Vary"]


def test_an_htmx_history_restore_gets_the_whole_page(alice_client):
    headers = {"HX-Request": "true", "HX-History-Restore-Request": "true"}
    response = alice_client.get(reverse("flow_list"), headers=headers)
    assert "<html" in response.content.decode()


def test_search_without_matches_says_so(alice_client):
    html = alice_client.get(reverse("flow_list"), {"q": "zebra"}).content.decode()
    assert "No flows match “zebra”" in html


def test_empty_list_shows_the_empty_state(alice_client, alice):
    Flow.objects.filter(owner=alice).delete()
    html = alice_client.get(reverse("flow_list")).content.decode()
    assert "No flows yet" in html
    assert "New flow" in html


# ---- New, duplicate, delete -----------------------------------------------------------


def test_new_flow_is_valid_and_opens_in_the_editor(alice_client, alice):
    response = alice_client.post(reverse("flow_new"))

    flow = Flow.objects.filter(owner=alice).latest("pk")
    assert response.status_code == 302
    assert response.url == f"/flows/{flow.pk}/" == reverse("flow_editor", args=[flow.pk])
    assert flow.name == "Untitled flow"
    assert flow.version == 1
    document = flow.current().graph
    assert graphs.validate(graphs.load(document)) == []
    assert sorted(node["type"] for node in document["nodes"]) == ["input", "output"]
    assert len(document["edges"]) == 1


def test_new_flow_is_a_post(alice_client, alice):
    assert alice_client.get(reverse("flow_new")).status_code == 405
    assert Flow.objects.filter(owner=alice).count() == EXAMPLE_COUNT


def test_duplicate_copies_the_current_version(alice_client, alice):
    flow = flow_named(alice, "Draft, critique, revise")
    newer = flow.current().graph
    newer["graph"]["description"] = "the second version"
    services.save(flow, alice, newer, base_version=1)

    response = alice_client.post(reverse("flow_duplicate", args=[flow.pk]))

    assert response.status_code == 302
    assert response.url == reverse("flow_list")
    copy = flow_named(alice, "Copy of Draft, critique, revise")
    assert copy.pk != flow.pk
    assert copy.version == 1
    copied = copy.current().graph
    assert copied["graph"]["description"] == "the second version"
    assert copied["graph"]["name"] == "Copy of Draft, critique, revise"
    assert copied["nodes"] == flow.current().graph["nodes"]
    assert copied["edges"] == flow.current().graph["edges"]
    flow.refresh_from_db()
    assert flow.version == 2
    assert flow.name == "Draft, critique, revise"


def test_duplicate_is_a_post(alice_client, alice):
    flow = flow_named(alice, "Calculator agent")
    assert alice_client.get(reverse("flow_duplicate", args=[flow.pk])).status_code == 405


def test_delete_asks_for_confirmation_naming_the_flow_and_its_runs(alice_client, alice):
    flow = flow_named(alice, "Generate, check, fix")
    add_runs(flow, 2)

    response = alice_client.get(reverse("flow_delete", args=[flow.pk]))

    assert response.status_code == 200
    html = response.content.decode()
    assert "Generate, check, fix" in html
    assert "2 runs" in html
    assert 'method="post"' in html
    assert Flow.objects.filter(pk=flow.pk).exists()


def test_delete_removes_the_flow_its_versions_and_runs(alice_client, alice):
    flow = flow_named(alice, "Generate, check, fix")
    add_runs(flow, 2)

    response = alice_client.post(reverse("flow_delete", args=[flow.pk]))

    assert response.status_code == 302
    assert response.url == reverse("flow_list")
    assert not Flow.objects.filter(pk=flow.pk).exists()
    assert not FlowVersion.objects.filter(flow_id=flow.pk).exists()
    assert not Run.objects.filter(flow_id=flow.pk).exists()
    assert Flow.objects.filter(owner=alice).count() == EXAMPLE_COUNT - 1
    assert (
        "Deleted “Generate, check, fix”" in alice_client.get(reverse("flow_list")).content.decode()
    )
