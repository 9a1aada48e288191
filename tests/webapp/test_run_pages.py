"""The run pages and the run panel's server-rendered partials."""

from __future__ import annotations

import json

import pytest
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from webapp.flows import services
from webapp.runs.models import Run, RunEvent
from webapp.runs.views import field_text, input_fields

pytestmark = pytest.mark.django_db

GRAPH = {
    "graph": {"name": "greet"},
    "nodes": [
        {
            "id": "who",
            "type": "input",
            "config": {"name": "who", "default": "world"},
            "position": {"x": 0, "y": 0},
        },
        {
            "id": "n",
            "type": "input",
            "config": {"name": "count", "default": 3},
            "position": {"x": 0, "y": 100},
        },
        {
            "id": "topic",
            "type": "input",
            "config": {"name": "topic"},
            "position": {"x": 0, "y": 200},
            "label": "Topic to write about",
        },
        {
            "id": "greet",
            "type": "template",
            "config": {"template": "Hello {{ who }} x{{ count }} on {{ topic }}!"},
            "position": {"x": 250, "y": 100},
            "label": "Greeting",
        },
        {
            "id": "out",
            "type": "output",
            "config": {"name": "greeting"},
            "position": {"x": 500, "y": 100},
        },
    ],
    "edges": [
        {"source": "who", "target": "greet", "source_port": "value", "target_port": "who"},
        {"source": "n", "target": "greet", "source_port": "value", "target_port": "count"},
        {"source": "topic", "target": "greet", "source_port": "value", "target_port": "topic"},
        {"source": "greet", "target": "out", "source_port": "text", "target_port": "value"},
    ],
}


@pytest.fixture
def flow(alice):
    return services.create(alice, "Greeter <b>", GRAPH)


def make_run(flow, events: list[dict], **fields) -> Run:
    run = Run.objects.create(
        flow=flow,
        flow_version=flow.current(),
        started_by=flow.owner,
        inputs=fields.pop("inputs", {"who": "world", "count": 3, "topic": "tests"}),
        **fields,
    )
    for seq, event in enumerate(events, 1):
        payload = {"seq": seq, "ts": 1_700_000_000.0 + seq, **event}
        RunEvent.objects.create(run=run, seq=seq, type=event["type"], payload=payload)
    Run.objects.filter(pk=run.pk).update(last_seq=len(events))
    run.refresh_from_db()
    return run


FINISHED_EVENTS = [
    {"type": "run_started", "inputs": {}},
    {"type": "node_started", "node": "greet", "iteration": 1, "inputs": {"who": "world"}},
    {"type": "node_delta", "node": "greet", "iteration": 1, "text": "Hello "},
    {"type": "node_delta", "node": "greet", "iteration": 1, "text": "world"},
    {
        "type": "node_finished",
        "node": "greet",
        "iteration": 1,
        "output": {"text": "Hello world"},
        "duration_s": 0.25,
        "detail": {"prompt": "Say <hi>"},
    },
    {
        "type": "run_finished",
        "status": "succeeded",
        "outputs": {"greeting": "Hello world"},
        "usage": {"input_tokens": 0, "output_tokens": 0},
    },
]


def test_field_text_reads_back_as_the_same_value():
    assert field_text("plain words") == "plain words"
    assert json.loads(field_text("42")) == "42"
    assert field_text(3) == "3"
    assert json.loads(field_text({"a": [1, "x"]})) == {"a": [1, "x"]}
    assert field_text(None) == "null"


def test_input_fields_follow_the_canvas_top_to_bottom():
    fields = input_fields(GRAPH)
    assert [f["name"] for f in fields] == ["who", "count", "topic"]
    assert [f["required"] for f in fields] == [False, False, True]
    assert fields[2]["label"] == "Topic to write about"


def test_run_form_lists_the_inputs_with_their_defaults(client, alice, flow):
    client.force_login(alice)
    response = client.get(reverse("run_form", args=[flow.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-input-name="who"' in html and 'data-input-name="count"' in html
    assert 'data-input-name="topic"' in html and "required" in html
    assert ">\nworld</textarea>" in html and ">\n3</textarea>" in html
    assert 'data-testid="run-submit"' in html
    assert f'data-flow-id="{flow.pk}"' in html


def test_run_form_is_for_the_current_version(client, alice, flow):
    graph = json.loads(json.dumps(GRAPH))
    graph["nodes"][0]["config"]["default"] = "everyone"
    services.save(flow, alice, graph, base_version=1)
    client.force_login(alice)
    html = client.get(reverse("run_form", args=[flow.pk])).content.decode()
    assert "everyone</textarea>" in html and "version 2" in html


def test_run_form_is_not_found_for_strangers(client, charlie, flow):
    client.force_login(charlie)
    assert client.get(reverse("run_form", args=[flow.pk])).status_code == 404


def test_run_page_shows_the_run_to_its_owner(client, alice, flow):
    run = make_run(
        flow,
        FINISHED_EVENTS,
        status="succeeded",
        outputs={"greeting": "Hello world"},
        started_at=timezone.now(),
        finished_at=timezone.now(),
        input_tokens=12,
        output_tokens=34,
    )
    client.force_login(alice)
    response = client.get(reverse("run_detail", args=[run.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-testid="run-status"' in html and 'data-status="succeeded"' in html
    assert 'data-testid="outputs"' in html and "Hello world" in html
    assert f'data-run-id="{run.pk}"' in html
    assert "12 in · 34 out" in html
    # The flow's name is escaped wherever it appears.
    assert "Greeter &lt;b&gt;" in html and "Greeter <b>" not in html
    assert 'id="editor-data"' in html and "js/runs/view.js" in html


def test_run_page_shows_the_version_the_run_used(client, alice, flow):
    run = make_run(flow, FINISHED_EVENTS, status="succeeded")
    graph = json.loads(json.dumps(GRAPH))
    graph["nodes"][3]["label"] = "Renamed later"
    services.save(flow, alice, graph, base_version=1)
    client.force_login(alice)
    response = client.get(reverse("run_detail", args=[run.pk]))
    assert response.context["graph"] == run.flow_version.graph
    html = response.content.decode()
    assert "Greeting" in html and "Renamed later" not in html
    assert "latest is v2" in html


def test_run_page_is_not_found_for_strangers_and_needs_a_login(client, charlie, flow):
    run = make_run(flow, FINISHED_EVENTS, status="succeeded")
    url = reverse("run_detail", args=[run.pk])
    assert client.get(url).status_code == 302
    client.force_login(charlie)
    assert client.get(url).status_code == 404
    assert client.get(reverse("run_outputs", args=[run.pk])).status_code == 404
    assert client.get(reverse("run_node", args=[run.pk, "greet"])).status_code == 404
    assert client.get(reverse("run_detail", args=[run.pk + 1000])).status_code == 404


def test_outputs_partial_shows_outputs_error_and_usage_escaped(client, alice, flow):
    run = make_run(
        flow,
        [],
        status="failed",
        error="node 'x' failed: <b>boom</b>",
        outputs={"page": "<script>alert(1)</script>", "data": {"n": [1, 2]}},
        input_tokens=7,
        output_tokens=9,
    )
    client.force_login(alice)
    response = client.get(reverse("run_outputs", args=[run.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;boom&lt;/b&gt;" in html and "<b>boom</b>" not in html
    assert '"n": [' in html.replace("&quot;", '"')
    assert "7 input · 9 output tokens" in html
    assert 'data-outputs-final="true"' in html


def test_outputs_partial_of_a_running_run_says_they_are_coming(client, alice, flow):
    run = make_run(flow, FINISHED_EVENTS[:2], status="running")
    client.force_login(alice)
    html = client.get(reverse("run_outputs", args=[run.pk])).content.decode()
    assert "Outputs appear when the run finishes" in html
    assert 'data-outputs-final="false"' in html


def test_steps_partial_lists_the_run_versions_nodes(client, alice, flow):
    run = make_run(flow, FINISHED_EVENTS, status="succeeded")
    client.force_login(alice)
    html = client.get(reverse("run_steps", args=[run.pk])).content.decode()
    for node in ("who", "n", "topic", "greet", "out"):
        assert f'data-node="{node}"' in html
    assert (
        html.index('data-node="who"')
        < html.index('data-node="greet"')
        < html.index('data-node="out"')
    )


def test_node_card_folds_the_nodes_events(client, alice, flow):
    run = make_run(flow, FINISHED_EVENTS, status="succeeded")
    client.force_login(alice)
    html = client.get(reverse("run_node", args=[run.pk, "greet"])).content.decode()
    assert "Greeting" in html and "done" in html and "0.25 s" in html
    assert "Hello world" in html and "Say &lt;hi&gt;" in html
    html = client.get(reverse("run_node", args=[run.pk, "out"])).content.decode()
    assert "has not run" in html


def test_node_card_shows_failures_and_retries(client, alice, flow):
    run = make_run(
        flow,
        [
            {"type": "run_started", "inputs": {}},
            {"type": "node_started", "node": "greet", "iteration": 1, "inputs": {}},
            {"type": "node_delta", "node": "greet", "iteration": 1, "text": "lost"},
            {
                "type": "node_retrying",
                "node": "greet",
                "iteration": 1,
                "attempt": 1,
                "error": "overloaded",
                "delay_s": 0.5,
            },
            {"type": "node_failed", "node": "greet", "iteration": 1, "error": "still overloaded"},
        ],
        status="running",
    )
    client.force_login(alice)
    html = client.get(reverse("run_node", args=[run.pk, "greet"])).content.decode()
    assert "attempt 1 failed: overloaded" in html and "still overloaded" in html
    assert "lost" not in html


def test_recent_runs_link_to_run_pages_and_name_the_active_one(client, alice, charlie, flow):
    done = make_run(flow, FINISHED_EVENTS, status="succeeded")
    going = make_run(flow, FINISHED_EVENTS[:2], status="running")
    client.force_login(alice)
    html = client.get(reverse("recent_runs", args=[flow.pk])).content.decode()
    assert reverse("run_detail", args=[done.pk]) in html
    assert reverse("run_detail", args=[going.pk]) in html
    assert f'data-active-run="{going.pk}"' in html
    client.force_login(charlie)
    assert client.get(reverse("recent_runs", args=[flow.pk])).status_code == 404


def test_run_panel_offers_run_only_to_editors(flow):
    html = render_to_string("runs/_run_panel.html", {"flow": flow})
    assert 'data-testid="run"' in html and 'data-testid="cancel"' in html
    assert 'data-testid="run-status"' in html and 'data-testid="outputs"' in html
    assert reverse("run_form", args=[flow.pk]) in html
    assert reverse("recent_runs", args=[flow.pk]) in html
    html = render_to_string("runs/_run_panel.html", {"flow": flow, "editable": False})
    assert 'data-testid="run"' not in html and 'data-testid="run-status"' in html
