"""The cost estimate before a run starts: first model nodes counted with the API's token
counting (the fake server's ``count_tokens``, asserted in its request log), other nodes
at the mean of past runs, a map times its items, 0 on the offline model; the API
endpoint and the run form's partial, for editors only.

Alice owns the flow (in her team), bob edits it, carol views it, dave is a stranger.
"""

from __future__ import annotations

import json
import urllib.request

import pytest

from tests.webapp.test_budgets import edge, fan_out_graph, node
from webapp.execution import plans
from webapp.flows import services
from webapp.runs.models import Run, RunEvent

pytestmark = pytest.mark.django_db(transaction=True)

# claude-sonnet-4-6, $3 / $15 a million: "Topic N: tea" counts 3 words (the fake server
# counts words), so 3 x 3 + 100 x 15 = $0.001509 a call.
PER_CALL = 0.001509


def fake_log(fake) -> list[dict]:
    with urllib.request.urlopen(f"{fake.url}/_fake/requests", timeout=10) as response:
        return json.load(response)


def paths(fake) -> list[str]:
    return [r["path"].split("?")[0] for r in fake_log(fake)]


@pytest.fixture
def model(anthropic_env):
    plans.engine_services.cache_clear()
    yield anthropic_env
    plans.engine_services.cache_clear()


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    plans.engine_services.cache_clear()
    yield
    plans.engine_services.cache_clear()


@pytest.fixture
def flow(alice, team):
    return services.create(alice, "Fan-out", fan_out_graph(), team=team)


def estimate(api, flow, who="alice", **body):
    return api(who).post(f"/api/flows/{flow.pk}/estimate", {"inputs": {"q": "tea"}, **body})


def test_first_model_nodes_are_counted_by_the_api_and_priced_with_max_tokens(model, flow, api):
    response = estimate(api, flow, budget_usd=0.005)
    assert response.status_code == 200, response.content
    answer = response.json()
    counted = [r for r in fake_log(model) if r["path"] == "/v1/messages/count_tokens"]
    assert sorted(r["body"]["messages"][0]["content"] for r in counted) == [
        f"Topic {i}: tea" for i in range(4)
    ]
    assert "/v1/messages" not in paths(model), "an estimate calls no model"
    assert {n["node"] for n in answer["nodes"]} == {f"ask{i}" for i in range(4)}
    for line in answer["nodes"]:
        assert line["source"] == "count_tokens"
        assert (line["input_tokens"], line["max_tokens"]) == (3, 100)
        assert line["usd"] == pytest.approx(PER_CALL)
    assert answer["estimate_usd"] == pytest.approx(4 * PER_CALL)
    assert answer["budget_usd"] == 0.005 and answer["over_budget"] is True


def test_nodes_after_the_first_take_the_mean_of_past_runs(model, alice, team, api):
    graph = {
        "directed": True,
        "multigraph": True,
        "graph": {"name": "Two steps"},
        "nodes": [
            node("q", "input", name="q"),
            node("first", "llm", prompt="About {{ q }}", max_tokens=10),
            node("second", "llm", prompt="More on {{ t }}", max_tokens=10),
            node("out", "output", name="a"),
        ],
        "edges": [
            edge("q", "value", "first", "q"),
            edge("first", "text", "second", "t"),
            edge("second", "text", "out", "value"),
        ],
    }
    flow = services.create(alice, "Two steps", graph, team=team)
    for cost in (0.002, 0.004):
        run = Run.objects.create(
            flow=flow, flow_version=flow.current(), started_by=alice, status="succeeded"
        )
        payload = {"type": "node_finished", "node": "second", "iteration": 1, "cost_usd": cost}
        RunEvent.objects.create(run=run, seq=1, type="node_finished", payload=payload)
    answer = estimate(api, flow).json()
    lines = {n["node"]: n for n in answer["nodes"]}
    assert lines["first"]["source"] == "count_tokens"
    assert lines["second"]["source"] == "past_runs"
    assert lines["second"]["usd"] == pytest.approx(0.003)
    assert answer["estimate_usd"] == pytest.approx(lines["first"]["usd"] + 0.003)
    assert answer["budget_usd"] is None and answer["over_budget"] is False


def test_a_map_over_a_run_input_counts_one_item_times_its_items(model, alice, team, api):
    inner = {
        "graph": {"name": "each"},
        "nodes": [
            {"id": "item", "type": "input", "config": {"name": "item"}},
            {"id": "ask", "type": "llm", "config": {"prompt": "Rate {{ item }}", "max_tokens": 20}},
            {"id": "out", "type": "output", "config": {"name": "r"}},
        ],
        "edges": [
            {"source": "item", "target": "ask", "source_port": "value", "target_port": "item"},
            {"source": "ask", "target": "out", "source_port": "text", "target_port": "value"},
        ],
    }
    graph = {
        "directed": True,
        "multigraph": True,
        "graph": {"name": "Map"},
        "nodes": [
            node("xs", "input", name="xs"),
            node("each", "map", flow=inner),
            node("out", "output", name="rs"),
        ],
        "edges": [edge("xs", "value", "each", "items"), edge("each", "results", "out", "value")],
    }
    flow = services.create(alice, "Map", graph, team=team)
    response = api("alice").post(
        f"/api/flows/{flow.pk}/estimate", {"inputs": {"xs": ["tea", "coffee", "milk"]}}
    )
    [line] = response.json()["nodes"]
    assert (line["node"], line["items"], line["input_tokens"]) == ("each", 3, 2)
    # "Rate tea": 2 words at $3, 20 reply tokens at $15, per item.
    assert line["usd"] == pytest.approx(3 * (2 * 3 + 20 * 15) / 1_000_000)
    assert paths(model).count("/v1/messages/count_tokens") == 1


def test_the_offline_model_costs_nothing(offline, flow, api):
    answer = estimate(api, flow).json()
    assert answer["estimate_usd"] == 0
    assert {n["source"] for n in answer["nodes"]} == {"offline"}


def test_inputs_that_do_not_fit_are_a_400_naming_them(model, flow, api):
    response = api("alice").post(f"/api/flows/{flow.pk}/estimate", {"inputs": {}})
    assert response.status_code == 400
    assert "input 'q' is required" in response.json()["problems"][0]["text"]


@pytest.mark.parametrize(
    ("who", "status"), [("alice", 200), ("bob", 200), ("carol", 403), ("dave", 404)]
)
def test_only_editors_may_estimate(offline, flow, api, who, status):
    assert estimate(api, flow, who).status_code == status


@pytest.mark.parametrize(
    ("who", "status"), [("alice", 200), ("bob", 200), ("carol", 403), ("dave", 404)]
)
def test_only_editors_set_a_flows_budget(flow, api, who, status):
    response = api(who).put(f"/api/flows/{flow.pk}/budget", {"budget_usd": 1.5})
    assert response.status_code == status
    flow.refresh_from_db()
    assert (flow.budget_usd is not None) is (status == 200)


def test_a_flows_budget_is_checked_and_can_be_removed(flow, api):
    assert api("alice").put(f"/api/flows/{flow.pk}/budget", {"budget_usd": -1}).status_code in (
        400,
        422,
    )
    assert api("alice").put(f"/api/flows/{flow.pk}/budget", {"budget_usd": 2}).json() == {
        "budget_usd": 2.0
    }
    assert api("bob").put(f"/api/flows/{flow.pk}/budget", {"budget_usd": None}).json() == {
        "budget_usd": None
    }


def test_the_run_forms_estimate_follows_its_inputs(model, flow, client, alice, carol):
    client.force_login(alice)
    url = f"/flows/{flow.pk}/run-estimate/"
    missing = client.get(url)
    assert "Fill in the inputs" in missing.content.decode()
    page = client.get(url, {"q": "tea", "run-budget-usd": "0.001"}).content.decode()
    assert "Estimated cost: <strong>$0.006036</strong>" in page
    assert "budget $0.001" in page and 'data-testid="estimate-over-budget"' in page
    form = client.get(f"/flows/{flow.pk}/run-form/").content.decode()
    assert 'data-testid="run-budget"' in form and f"/flows/{flow.pk}/run-estimate/" in form
    client.force_login(carol)
    assert client.get(url, {"q": "tea"}).status_code == 403
