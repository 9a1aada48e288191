"""Comparing two runs of a flow: the page, the run page's picker and the API."""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from webapp import execution
from webapp.execution import plans
from webapp.flows import services
from webapp.runs.compare import compare_runs, text_diff
from webapp.runs.models import Run, RunEvent

EXAMPLES = Path(__file__).parents[2] / "examples"

GRAPH = {
    "graph": {"name": "writer"},
    "nodes": [
        {"id": "topic", "type": "input", "config": {"name": "topic"}, "position": {"x": 0, "y": 0}},
        {
            "id": "draft",
            "type": "llm",
            "config": {"prompt": "Write about {{ topic }}.", "model": "claude-sonnet-4-6"},
            "label": "Draft",
            "position": {"x": 250, "y": 0},
        },
        {"id": "out", "type": "output", "config": {"name": "text"}, "position": {"x": 500, "y": 0}},
    ],
    "edges": [
        {"source": "topic", "target": "draft", "source_port": "value", "target_port": "topic"},
        {"source": "draft", "target": "out", "source_port": "text", "target_port": "value"},
    ],
}


def finished_events(topic: str, text: str, **draft: object) -> list[dict]:
    """The events of a succeeded run of GRAPH, as the recorder writes them."""
    usage = {"input_tokens": 1000, "output_tokens": 200}
    finished = {
        "type": "node_finished",
        "node": "draft",
        "iteration": 1,
        "output": {"text": text},
        "duration_s": 1.5,
        "usage": usage,
        "model": "claude-sonnet-4-6",
        "cost_usd": 0.006,
        "detail": {"prompt": f"Write about {topic}."},
        **draft,
    }
    return [
        {"type": "run_started", "flow": "writer", "inputs": {"topic": topic}, "schema": 1},
        {"type": "node_started", "node": "topic", "iteration": 1, "inputs": {}},
        {"type": "node_finished", "node": "topic", "iteration": 1, "output": {"value": topic}},
        {"type": "node_started", "node": "draft", "iteration": 1, "inputs": {"topic": topic}},
        {"type": "node_delta", "node": "draft", "iteration": 1, "text": text},
        finished,
        {"type": "node_started", "node": "out", "iteration": 1, "inputs": {"value": text}},
        {"type": "node_finished", "node": "out", "iteration": 1, "output": {"value": text}},
        {
            "type": "run_finished",
            "status": "succeeded",
            "outputs": {"text": text},
            "usage": usage,
            "usage_by_model": {"claude-sonnet-4-6": usage},
        },
    ]


def make_run(flow, events: list[dict], version=None, **fields) -> Run:
    inputs = next(e["inputs"] for e in events if e["type"] == "run_started")
    finished = events[-1]
    run = Run.objects.create(
        flow=flow,
        flow_version=version or flow.current(),
        started_by=flow.owner,
        inputs=inputs,
        status=finished.get("status", Run.Status.RUNNING),
        outputs=finished.get("outputs", {}),
        input_tokens=finished.get("usage", {}).get("input_tokens", 0),
        output_tokens=finished.get("usage", {}).get("output_tokens", 0),
        **fields,
    )
    RunEvent.objects.bulk_create(
        RunEvent(
            run=run,
            seq=seq,
            type=event["type"],
            payload={"seq": seq, "ts": 1_700_000_000.0 + seq, **event},
        )
        for seq, event in enumerate(events, 1)
    )
    Run.objects.filter(pk=run.pk).update(last_seq=len(events))
    run.refresh_from_db()
    return run


@pytest.fixture
def flow(alice):
    return services.create(alice, "Writer", GRAPH)


@pytest.fixture
def two_runs(flow):
    a = make_run(
        flow,
        finished_events("cats", "Cats <b>sleep</b> all day."),
        cost_usd=Decimal("0.006"),
        duration_s=2.0,
    )
    b = make_run(
        flow,
        finished_events("cats", "Cats <b>purr</b> all day. <script>alert(1)</script>"),
        cost_usd=Decimal("0.006"),
        duration_s=3.5,
    )
    return a, b


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def compare_url(a, b) -> str:
    return f"{reverse('run_compare')}?a={a}&b={b}"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# ---- The page -------------------------------------------------------------------


@pytest.mark.django_db
def test_the_page_marks_what_changed_in_a_nodes_output_and_escapes_it(alice, two_runs):
    a, b = two_runs
    response = client_for(alice).get(compare_url(a.pk, b.pk))
    assert response.status_code == 200
    html = response.content.decode()
    assert "<del>sleep</del><ins>purr</ins>" in html
    assert "<ins> &lt;script&gt;alert(1)&lt;/script&gt;</ins>" in html
    assert "<script>alert(1)" not in html and "<b>sleep" not in html
    assert 'data-node="draft" data-same-output="false"' in html
    assert 'data-node="topic" data-same-output="true"' in html
    assert "2 node outputs differ;" in html  # the draft and the output node


@pytest.mark.django_db
def test_inputs_are_side_by_side_and_differences_flagged(alice, flow):
    a = make_run(flow, finished_events("cats", "Cats."))
    b = make_run(flow, finished_events("dogs", "Dogs."))
    html = client_for(alice).get(compare_url(a.pk, b.pk)).content.decode()
    assert 'data-input="topic" data-equal="false"' in html
    assert "Different inputs" in html
    same = make_run(flow, finished_events("cats", "Cats again."))
    html = client_for(alice).get(compare_url(a.pk, same.pk)).content.decode()
    assert 'data-input="topic" data-equal="true"' in html and "Same inputs" in html


@pytest.mark.django_db
def test_totals_and_per_node_figures_show_duration_tokens_and_cost(alice, two_runs):
    a, b = two_runs
    html = client_for(alice).get(compare_url(a.pk, b.pk)).content.decode()
    assert "2 s" in html and "3.5 s" in html and "+1.5 s" in html
    assert "1000 in · 200 out" in html
    assert "$0.006" in html and "+$0" in html
    assert "1.5 s" in html  # the draft node's own time


@pytest.mark.django_db
def test_old_runs_without_recorded_costs_are_priced_from_their_usage(flow):
    events = finished_events("cats", "Cats.")
    del events[5]["cost_usd"]
    old = make_run(flow, events)  # cost_usd 0 on the row, as before runs were priced
    comparison = compare_runs(old, old)
    assert comparison.a.cost_usd == Decimal("0.006")
    draft = next(row for row in comparison.nodes if row.id == "draft")
    assert draft.a.cost_usd == Decimal("0.006") and draft.a.cost_text == "$0.006"


@pytest.mark.django_db
def test_cached_and_reused_nodes_carry_their_badges(alice, flow):
    a = make_run(flow, finished_events("cats", "Cats."))
    hit = {
        "usage": {"input_tokens": 0, "output_tokens": 0},
        "cost_usd": 0.0,
        "cached": {"source": f"run {a.pk}", "usage": {"input_tokens": 1000, "output_tokens": 200}},
        "saved_usd": 0.006,
    }
    b = make_run(flow, finished_events("cats", "Cats.", **hit))
    reused = make_run(
        flow,
        finished_events("cats", "Cats.", reused={"source": f"run {a.pk}"}, duration_s=0),
        kind=Run.Kind.FROM_NODE,
        parent=a,
    )
    html = client_for(alice).get(compare_url(a.pk, b.pk)).content.decode()
    assert 'data-testid="cached-badge"' in html and "saved $0.006" in html
    html = client_for(alice).get(compare_url(a.pk, reused.pk)).content.decode()
    assert 'data-testid="reused-badge"' in html and f"reused from run {a.pk}" in html
    assert f'of <a href="/runs/{a.pk}/">#{a.pk}</a>' in html


@pytest.mark.django_db
def test_failed_and_skipped_nodes_show_their_state_and_error(alice, flow):
    a = make_run(flow, finished_events("cats", "Cats."))
    failed = [
        *finished_events("cats", "")[:4],
        {"type": "node_failed", "node": "draft", "iteration": 1, "error": "overloaded <503>"},
        {"type": "node_skipped", "node": "out", "iteration": 1},
        {"type": "run_finished", "status": "failed", "outputs": {}, "usage": {}},
    ]
    b = make_run(flow, failed)
    comparison = compare_runs(a, b)
    draft = next(row for row in comparison.nodes if row.id == "draft")
    assert (draft.a.status, draft.b.status, draft.b.error) == ("done", "failed", "overloaded <503>")
    assert not draft.same_output and draft.diff is None
    html = client_for(alice).get(compare_url(a.pk, b.pk)).content.decode()
    assert "overloaded &lt;503&gt;" in html
    assert f"only run #{a.pk} has one" in html


@pytest.mark.django_db
def test_the_graph_diff_is_listed_when_the_versions_differ(alice, flow):
    a = make_run(flow, finished_events("cats", "Cats."))
    graph = copy.deepcopy(GRAPH)
    graph["nodes"][1]["config"]["prompt"] = "Write briefly about {{ topic }}."
    graph["nodes"].append(
        {"id": "log", "type": "output", "config": {"name": "log"}, "position": {"x": 500, "y": 99}}
    )
    graph["edges"].append(
        {"source": "draft", "target": "log", "source_port": "text", "target_port": "value"}
    )
    services.save(flow, alice, graph, base_version=1)
    b = make_run(flow, finished_events("cats", "Cats."))
    assert (a.flow_version.number, b.flow_version.number) == (1, 2)
    html = client_for(alice).get(compare_url(a.pk, b.pk)).content.decode()
    assert 'data-testid="graph-diff"' in html
    assert 'data-testid="node-added" data-node="log"' in html
    assert 'data-testid="node-changed" data-node="draft"' in html
    assert "config.prompt" in html and "Write<ins> briefly</ins> about" in html
    assert 'data-testid="edge-added"' in html and "draft.text → log.value" in html
    # The node only one graph has is a row of its own, marked.
    assert 'data-node="log" data-same-output="true"' in html
    assert "graph: 1 node added, 1 changed, 1 edge added" in html


@pytest.mark.django_db
def test_no_graph_diff_when_both_runs_ran_the_same_graph(alice, two_runs):
    a, b = two_runs
    html = client_for(alice).get(compare_url(a.pk, b.pk)).content.decode()
    assert 'data-testid="graph-diff"' not in html and "the same graph" in html
    assert compare_runs(a, b).as_dict()["graph_diff"] is None


@pytest.mark.django_db
def test_a_rerun_with_an_edited_node_diffs_against_the_graph_it_really_ran(alice, flow):
    a = make_run(flow, finished_events("cats", "Cats."))
    edited = copy.deepcopy(GRAPH)
    edited["nodes"][1]["config"]["model"] = "claude-haiku-4-5"
    b = make_run(flow, finished_events("cats", "Cats."), graph_override=edited, parent=a)
    comparison = compare_runs(a, b)
    assert [(n.id, n.keys) for n in comparison.graph_diff.changed] == [("draft", ("config.model",))]
    html = client_for(alice).get(compare_url(a.pk, b.pk)).content.decode()
    assert 'data-testid="node-changed" data-node="draft"' in html and ">edited<" in html


@pytest.mark.django_db
def test_runs_of_different_flows_are_refused_with_a_clear_page(alice, flow):
    other = services.create(alice, "Other", GRAPH)
    a = make_run(flow, finished_events("cats", "Cats."))
    b = make_run(other, finished_events("cats", "Cats."))
    response = client_for(alice).get(compare_url(a.pk, b.pk))
    assert response.status_code == 400
    assert "belong to different flows" in response.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize("query", ["", "?a=1", "?a=x&b=2", "?a=-1&b=2"])
def test_a_missing_or_malformed_run_id_is_a_400(alice, query):
    response = client_for(alice).get(reverse("run_compare") + query)
    assert response.status_code == 400
    assert "Pick two runs" in response.content.decode()


@pytest.mark.django_db
def test_a_stranger_gets_404_for_either_run(charlie, two_runs):
    a, b = two_runs
    client = client_for(charlie)
    own = services.create(charlie, "Mine", GRAPH)
    mine = make_run(own, finished_events("x", "y"))
    for query in ((a.pk, b.pk), (a.pk, mine.pk), (mine.pk, b.pk), (mine.pk, 999_999)):
        # Never 400 "different flows": that would tell him alice's run exists.
        assert client.get(compare_url(*query)).status_code == 404, query
    assert client.get(compare_url(mine.pk, mine.pk)).status_code == 200


@pytest.mark.django_db
def test_the_page_needs_a_login(two_runs):
    a, b = two_runs
    response = Client().get(compare_url(a.pk, b.pk))
    assert response.status_code == 302 and "/login" in response["Location"]


# ---- The picker on the run page ---------------------------------------------


@pytest.mark.django_db
def test_the_run_page_loads_the_picker(alice, two_runs):
    a, _ = two_runs
    html = client_for(alice).get(reverse("run_detail", args=[a.pk])).content.decode()
    assert f'hx-get="{reverse("run_compare_picker", args=[a.pk])}"' in html


@pytest.mark.django_db
def test_the_picker_offers_other_runs_of_the_same_flow_and_preselects_the_parent(alice, flow):
    runs = [make_run(flow, finished_events("cats", f"Cats {n}.")) for n in range(3)]
    child = make_run(flow, finished_events("cats", "Cats."), parent=runs[0], kind=Run.Kind.RERUN)
    other = make_run(services.create(alice, "Other", GRAPH), finished_events("x", "y"))
    html = client_for(alice).get(reverse("run_compare_picker", args=[child.pk])).content.decode()
    offered = [int(v) for v in _option_values(html)]
    assert offered == [runs[2].pk, runs[1].pk, runs[0].pk]
    assert other.pk not in offered and child.pk not in offered
    assert f'<option value="{runs[0].pk}" selected>' in html
    assert f'name="b" value="{child.pk}"' in html and f'action="{reverse("run_compare")}"' in html
    # Without a parent, the run just before this one.
    html = client_for(alice).get(reverse("run_compare_picker", args=[runs[2].pk])).content.decode()
    assert f'<option value="{runs[1].pk}" selected>' in html


@pytest.mark.django_db
def test_the_picker_offers_at_most_50_runs(alice, flow):
    runs = [make_run(flow, finished_events("cats", "Cats.")) for _ in range(53)]
    html = client_for(alice).get(reverse("run_compare_picker", args=[runs[-1].pk])).content.decode()
    assert len(_option_values(html)) == 50


@pytest.mark.django_db
def test_the_picker_says_when_there_is_nothing_to_compare_and_hides_from_strangers(
    alice, charlie, flow
):
    only = make_run(flow, finished_events("cats", "Cats."))
    url = reverse("run_compare_picker", args=[only.pk])
    assert "No other run of this flow" in client_for(alice).get(url).content.decode()
    assert client_for(charlie).get(url).status_code == 404


def _option_values(html: str) -> list[str]:
    return [part.split('"', 1)[0] for part in html.split('<option value="')[1:]]


# ---- Loading ----------------------------------------------------------------------


@pytest.mark.django_db
def test_comparing_reads_the_settling_events_in_one_query_and_never_the_deltas(two_runs):
    a, b = two_runs
    with CaptureQueriesContext(connection) as queries:
        comparison = compare_runs(a, b)
    event_queries = [q["sql"] for q in queries if "runs_runevent" in q["sql"]]
    assert len(event_queries) == 1
    assert "node_delta" not in event_queries[0] and "node_finished" in event_queries[0]
    assert len(comparison.nodes) == 3


def test_the_text_diff_works_on_words_and_falls_back_to_lines_for_long_texts():
    assert text_diff("a b c", "a x c") == [
        ("equal", "a "),
        ("delete", "b"),
        ("insert", "x"),
        ("equal", " c"),
    ]
    long_a = "\n".join(f"line {n} same words here" for n in range(3000))
    long_b = long_a.replace("line 1500 same", "line 1500 changed")
    pieces = text_diff(long_a, long_b)
    assert [op for op, _ in pieces] == ["equal", "delete", "insert", "equal"]
    assert pieces[1][1] == "line 1500 same words here\n"


# ---- The API ----------------------------------------------------------------------


@pytest.mark.django_db
def test_the_api_returns_the_comparison_as_plain_json(alice_token, two_runs):
    a, b = two_runs
    response = Client().get(f"/api/runs/compare?a={a.pk}&b={b.pk}", headers=auth(alice_token))
    assert response.status_code == 200
    data = response.json()
    assert set(data) >= {"a", "b", "flow", "same_graph", "graph_diff", "inputs", "nodes"}
    assert data["a"]["id"] == a.pk and data["b"]["id"] == b.pk
    assert data["a"]["usage"] == {"input_tokens": 1000, "output_tokens": 200}
    assert data["b"]["cost_usd"] == 0.006 and data["b"]["duration_s"] == 3.5
    assert data["same_graph"] is True and data["graph_diff"] is None
    assert data["inputs"] == [{"name": "topic", "equal": True, "a": "cats", "b": "cats"}]
    draft = next(node for node in data["nodes"] if node["id"] == "draft")
    assert draft["a"]["status"] == "done" and draft["a"]["cost_usd"] == 0.006
    assert draft["a"]["output"] == {"text": "Cats <b>sleep</b> all day."}
    assert ["delete", "sleep"] in draft["output_diff"] and ["insert", "purr"] in draft[
        "output_diff"
    ]
    assert [node["id"] for node in data["nodes"]] == ["topic", "draft", "out"]
    assert "<ins>" not in response.content.decode() and "<del>" not in response.content.decode()


@pytest.mark.django_db
def test_the_api_includes_the_graph_diff_when_versions_differ(alice, alice_token, flow):
    a = make_run(flow, finished_events("cats", "Cats."))
    graph = copy.deepcopy(GRAPH)
    graph["nodes"][1]["label"] = "First draft"
    services.save(flow, alice, graph, base_version=1)
    b = make_run(flow, finished_events("cats", "Cats."))
    data = Client().get(f"/api/runs/compare?a={a.pk}&b={b.pk}", headers=auth(alice_token)).json()
    assert data["same_graph"] is False
    assert data["graph_diff"]["nodes"]["changed"] == [
        {
            "id": "draft",
            "type": "llm",
            "label": "First draft",
            "changes": [
                {"key": "label", "kind": "changed", "before": "Draft", "after": "First draft"}
            ],
        }
    ]
    assert next(n for n in data["nodes"] if n["id"] == "draft")["change"] == "changed"


@pytest.mark.django_db
def test_the_api_refuses_other_flows_hides_from_strangers_and_validates(
    alice, alice_token, charlie_token, two_runs
):
    a, b = two_runs
    other = make_run(services.create(alice, "Other", GRAPH), finished_events("x", "y"))
    client = Client()
    response = client.get(f"/api/runs/compare?a={a.pk}&b={other.pk}", headers=auth(alice_token))
    assert response.status_code == 400 and "different flows" in response.json()["detail"]
    for query in (f"a={a.pk}&b={b.pk}", f"a={b.pk}&b={a.pk}"):
        assert (
            client.get(f"/api/runs/compare?{query}", headers=auth(charlie_token)).status_code == 404
        )
    assert client.get(f"/api/runs/compare?a={a.pk}", headers=auth(alice_token)).status_code == 422
    assert client.get(f"/api/runs/compare?a={a.pk}&b={b.pk}").status_code == 401
    # The route is not taken for a run id.
    assert client.get(f"/api/runs/{a.pk}", headers=auth(alice_token)).json()["id"] == a.pk


# ---- Real runs ----------------------------------------------------------------------


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    plans.engine_services.cache_clear()
    yield
    plans.engine_services.cache_clear()


@pytest.mark.django_db(transaction=True)
async def test_two_real_runs_of_an_example_compare_node_by_node(alice, offline):
    document = json.loads((EXAMPLES / "chain.json").read_text())
    flow = await sync_to_async(services.create)(alice, "chain", document)
    version = await sync_to_async(flow.current)()
    runs = []
    for topic in ("queues", "stacks"):
        run = await Run.objects.acreate(
            flow=flow, flow_version=version, started_by=alice, inputs={"topic": topic}
        )
        execution.start(run.pk)
        await execution.driver().wait_idle()
        await run.arefresh_from_db()
        assert run.status == "succeeded"
        runs.append(run)
    comparison = await sync_to_async(compare_runs)(*runs)
    by_id = {row.id: row for row in comparison.nodes}
    assert list(by_id) == ["topic", "draft", "critique", "revise", "final"]
    assert all(row.a.status == row.b.status == "done" for row in comparison.nodes)
    draft = by_id["draft"]
    assert not draft.same_output
    assert ("delete", "queues") in draft.diff and ("insert", "stacks") in draft.diff
    assert draft.a.model == "offline" and draft.a.tokens > 0 and draft.a.cost_text == "$0"
    assert comparison.graph_diff is None and not comparison.same_inputs
