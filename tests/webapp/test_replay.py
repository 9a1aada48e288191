"""Replay, the inspector and the timeline on the run page, from runs written with the ORM."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from tests.webapp.test_run_pages import GRAPH, make_run
from webapp.flows import services
from webapp.flows.models import FlowVersion
from webapp.runs.models import RunEvent
from webapp.runs.replay import REPLAYED_EVENTS, check_replay
from webapp.runs.timeline import build_timeline

pytestmark = pytest.mark.django_db

RUNS_JS = Path(__file__).parents[2] / "static" / "js" / "runs"
PRICES = {"claude-sonnet-4": {"input": 3.0, "output": 15.0}}


@pytest.fixture
def flow(alice):
    return services.create(alice, "Greeter", GRAPH)


def finished(flow, events, **fields):
    fields.setdefault("status", "succeeded")
    fields.setdefault("started_at", timezone.now())
    fields.setdefault("finished_at", timezone.now())
    return make_run(flow, events, **fields)


def greet_run(flow, **finished_fields):
    """template `greet` streams "Hello " + "world", an llm-like visit with a prompt."""
    finished_fields = {
        "output": {"text": "Hello world"},
        "duration_s": 2.0,
        **finished_fields,
    }
    return finished(
        flow,
        [
            {"type": "run_started", "inputs": {}, "schema": 1},
            {"type": "node_started", "node": "greet", "iteration": 1, "inputs": {"who": "world"}},
            {"type": "node_delta", "node": "greet", "iteration": 1, "text": "Hello "},
            {"type": "node_delta", "node": "greet", "iteration": 1, "text": "world"},
            {"type": "node_finished", "node": "greet", "iteration": 1, **finished_fields},
            {"type": "node_started", "node": "out", "iteration": 1, "inputs": {}},
            {"type": "node_finished", "node": "out", "iteration": 1, "output": {}},
            {"type": "run_finished", "status": "succeeded", "outputs": {}},
        ],
    )


def inspector(client, run, node, upto=None) -> str:
    url = reverse("run_node", args=[run.pk, node])
    response = client.get(url, {"upto": upto} if upto is not None else {})
    assert response.status_code == 200
    return response.content.decode()


# ---- Inspector ---------------------------------------------------------------------------


def test_inspector_folds_only_the_events_up_to_the_replay_position(client, alice, flow):
    run = greet_run(flow)
    client.force_login(alice)
    html = inspector(client, run, "greet", upto=3)
    assert 'data-status="running"' in html and "Hello " in html and "Hello world" not in html
    assert "As of event 3 of 8" in html
    html = inspector(client, run, "greet", upto=5)
    assert 'data-status="done"' in html and "Hello world" in html
    html = inspector(client, run, "out", upto=5)
    assert "not run yet at this point of the replay" in html
    # Without upto (or at the end) it is the whole run, with no replay note.
    for html in (inspector(client, run, "greet"), inspector(client, run, "greet", upto=8)):
        assert 'data-status="done"' in html and "As of event" not in html


def test_inspector_shows_prompts_model_usage_cost_attempts_and_retries(client, alice, flow):
    run = finished(
        flow,
        [
            {"type": "run_started", "inputs": {}},
            {"type": "node_started", "node": "greet", "iteration": 1, "inputs": {"who": "<w>"}},
            {
                "type": "node_retrying",
                "node": "greet",
                "iteration": 1,
                "attempt": 1,
                "error": "overloaded",
                "delay_s": 0.5,
            },
            {
                "type": "node_finished",
                "node": "greet",
                "iteration": 1,
                "output": {"text": "hi"},
                "duration_s": 1.5,
                "attempts": 2,
                "model": "claude-sonnet-4-6",
                "usage": {"input_tokens": 1000, "output_tokens": 200},
                "cost_usd": 0.0042,
                "detail": {"prompt": "Say <hi>", "system": "Be brief", "route": "yes"},
            },
        ],
    )
    client.force_login(alice)
    html = inspector(client, run, "greet")
    assert 'data-testid="inspector-prompt">Say &lt;hi&gt;' in html
    assert 'data-testid="inspector-system">Be brief' in html
    assert "claude-sonnet-4-6" in html and "1000 in · 200 out tokens" in html
    assert 'data-testid="inspector-cost">$0.0042' in html
    assert "<dt>Attempts</dt><dd>2</dd>" in html
    assert "attempt 1 failed: overloaded; retrying in 0.5 s" in html
    assert "1.50 s" in html and "&lt;w&gt;" in html and "route" in html


@override_settings(MODEL_PRICES=PRICES)
def test_inspector_prices_a_run_recorded_before_costs_were(client, alice, flow):
    run = greet_run(
        flow, model="claude-sonnet-4-6", usage={"input_tokens": 1000, "output_tokens": 200}
    )
    client.force_login(alice)
    assert 'data-testid="inspector-cost">$0.006' in inspector(client, run, "greet")


def test_inspector_says_where_cached_and_reused_outputs_came_from(client, alice, charlie, flow):
    parent = greet_run(flow)
    strangers = services.create(charlie, "Theirs", GRAPH)
    hidden = greet_run(strangers)
    run = finished(
        flow,
        [
            {"type": "run_started", "inputs": {}, "schema": 1},
            {"type": "node_started", "node": "greet", "iteration": 1, "inputs": {}},
            {"type": "node_delta", "node": "greet", "iteration": 1, "text": "Hello world"},
            {
                "type": "node_finished",
                "node": "greet",
                "iteration": 1,
                "output": {"text": "Hello world"},
                "usage": {"input_tokens": 0, "output_tokens": 0},
                "model": "m",
                "cached": {
                    "source": f"run {parent.pk}",
                    "usage": {"input_tokens": 10, "output_tokens": 20},
                },
                "saved_usd": 0.25,
                "cost_usd": 0,
            },
            {"type": "node_started", "node": "out", "iteration": 1, "inputs": {}},
            {
                "type": "node_finished",
                "node": "out",
                "iteration": 1,
                "output": {},
                "duration_s": 0,
                "reused": {"source": f"run {hidden.pk}"},
            },
        ],
    )
    client.force_login(alice)
    html = inspector(client, run, "greet")
    assert 'data-testid="badge-cached"' in html and "Saved $0.25" in html
    assert f'<a href="/runs/{parent.pk}/">run {parent.pk}</a>' in html
    assert "10 in · 20 out tokens not spent" in html
    html = inspector(client, run, "out")
    assert 'data-testid="badge-reused"' in html and "the node did not run" in html
    # A run alice may not see is named (the event says so) but never linked.
    assert f"run {hidden.pk}" in html and f'href="/runs/{hidden.pk}/"' not in html


def test_inspector_has_one_collapsible_section_per_loop_iteration(client, alice, flow):
    events = [{"type": "run_started", "inputs": {}}]
    for i in (1, 2, 3):
        events += [
            {"type": "node_started", "node": "greet", "iteration": i, "inputs": {"n": i}},
            {
                "type": "node_finished",
                "node": "greet",
                "iteration": i,
                "output": {"text": f"round {i}"},
                "cost_usd": 0.001,
            },
        ]
    run = finished(flow, events)
    client.force_login(alice)
    html = inspector(client, run, "greet")
    sections = re.findall(r'<details( open)? class="visit"[^>]*data-iteration="(\d)"', html)
    assert sections == [("", "1"), ("", "2"), (" open", "3")]
    assert "round 1" in html and "round 3" in html
    assert "3 iterations, $0.003 in all" in html


def test_inspector_shows_an_agents_conversation(client, alice, flow):
    messages = [
        {"role": "user", "content": "What is 2+2?"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "name": "calculator", "input": {"e": "2+2"}}],
        },
        {"role": "user", "content": [{"type": "tool_result", "content": "4"}]},
    ]
    run = finished(
        flow,
        [
            {"type": "run_started", "inputs": {}},
            {"type": "node_started", "node": "greet", "iteration": 1, "inputs": {}},
            {
                "type": "node_finished",
                "node": "greet",
                "iteration": 1,
                "output": {"text": "4"},
                "detail": {"prompt": "What is 2+2?", "messages": messages, "turns": 2},
            },
        ],
    )
    client.force_login(alice)
    html = inspector(client, run, "greet")
    assert "Conversation (3 messages)" in html
    assert "tool_use calculator" in html and "tool_result" in html and "turns" in html


# ---- Timeline ----------------------------------------------------------------------------


OVERLAP = [
    {"type": "run_started", "ts": 10.0},
    {"type": "node_started", "node": "a", "iteration": 1, "ts": 10.0},
    {"type": "node_started", "node": "b", "iteration": 1, "ts": 11.0},
    {"type": "node_delta", "node": "a", "iteration": 1, "ts": 11.5, "text": "x" * 30},
    {"type": "node_finished", "node": "a", "iteration": 1, "ts": 12.0, "cached": {}},
    {"type": "node_failed", "node": "b", "iteration": 1, "ts": 13.0, "error": "no"},
    {"type": "node_started", "node": "a", "iteration": 2, "ts": 13.0},
    {"type": "run_finished", "ts": 14.0, "status": "failed"},
]


def test_timeline_geometry_puts_overlapping_visits_on_one_time_scale():
    t = build_timeline(OVERLAP, [{"id": "a", "label": "Alpha"}, {"id": "b", "label": "Beta"}])
    assert t["duration"] == 4.0 and t["x0"] == 150.0
    scale = (760 - 16 - 150) / 4
    assert t["scale"] == scale
    bars = {(b["node"], b["iteration"]): b for b in t["bars"]}
    a1, b1, a2 = bars["a", 1], bars["b", 1], bars["a", 2]
    assert (a1["x"], a1["width"], a1["status"]) == (150.0, round(2 * scale, 2), "done")
    assert (b1["x"], b1["width"], b1["status"]) == (round(150 + scale, 2), 2 * scale, "failed")
    # a and b overlap in time (b starts before a finishes), on different rows.
    assert b1["x"] < a1["x"] + a1["width"] and a1["y"] != b1["y"]
    assert a1["cached"] == "" and "cached" in a1["title"] and "2.00 s" in a1["title"]
    # Still running when the run ended: drawn to the end of the run.
    assert a2["status"] == "running" and a2["x"] + a2["width"] == t["x1"]
    # No token counts were recorded: the plot counts streamed characters, and says so.
    assert t["plot"]["unit"] == "characters" and t["plot"]["total"] == 30
    assert "Streamed characters" in t["plot"]["label"]
    assert [tick["label"] for tick in t["ticks"]][:3] == ["0 s", "0.5 s", "1 s"]


def test_timeline_view_renders_the_svg_with_its_time_scale(client, alice, flow):
    run = greet_run(flow, usage={"input_tokens": 3, "output_tokens": 7}, model="m")
    client.force_login(alice)
    response = client.get(reverse("run_timeline", args=[run.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    t = response.context["t"]
    assert f'data-t0="{t["t0"]!r}"' in html and f'data-scale="{t["scale"]!r}"' in html
    assert 'data-x0="150.0"' in html and "data-timeline-cursor" in html
    assert html.count('data-testid="timeline-bar"') == 2
    assert 'data-node="greet"' in html and "Greeting · done · 2.00 s" not in html
    assert "Greeting · done" in html  # the bar's hover title names the node by its label
    assert "Output tokens, cumulative" in html and ": 7 tokens" in html


def test_timeline_view_plots_streamed_characters_read_apart_from_the_deltas(client, alice, flow):
    """No node counted its tokens: the plot is the deltas' characters, which the view reads
    as (ts, length) pairs, not as whole events."""
    run = greet_run(flow)  # "Hello " + "world", no usage
    client.force_login(alice)
    response = client.get(reverse("run_timeline", args=[run.pk]))
    t = response.context["t"]
    assert t["plot"]["unit"] == "characters" and t["plot"]["total"] == len("Hello world")
    assert "Streamed characters, cumulative" in response.content.decode()
    assert [bar["node"] for bar in t["bars"]] == ["greet", "out"]


def test_the_inspector_finds_a_nodes_events_through_the_node_index(client, alice, flow):
    """Each stored event keeps its node in a column of the (run, node, seq) index."""
    from django.db import connection

    run = greet_run(flow)
    client.force_login(alice)
    sql, params = RunEvent.objects.filter(run=run).of_node("greet").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
        plan = " ".join(str(row[-1]) for row in cursor.fetchall())
    assert "runevent_node" in plan
    assert RunEvent.objects.filter(run=run).of_node("greet").count() == 4
    assert RunEvent.objects.get(run=run, seq=1).node == ""  # run_started names no node
    assert "Hello " in inspector(client, run, "greet")
    assert "Hello " not in inspector(client, run, "out")


def test_timeline_of_a_run_without_events_says_so(client, alice, flow):
    run = make_run(flow, [], status="running")
    client.force_login(alice)
    html = client.get(reverse("run_timeline", args=[run.pk])).content.decode()
    assert "Nothing recorded yet" in html and "<svg" not in html


# ---- Replay availability -----------------------------------------------------------------


def test_a_finished_run_gets_the_player(client, alice, flow):
    run = greet_run(flow)
    client.force_login(alice)
    html = client.get(reverse("run_detail", args=[run.pk])).content.decode()
    assert 'data-replay-state="ready"' in html and 'data-testid="replay-play"' in html
    assert 'max="8"' in html and "js/runs/replay.js" in html
    assert reverse("run_timeline", args=[run.pk]) in html
    assert 'data-testid="replay-problem"' not in html
    assert "pauses longer than 2 s shortened to 2 s" in html
    # The log the player reads first is fetched while the page's scripts load.
    preload = f'rel="preload" href="/api/runs/{run.pk}/events?after=0&amp;limit=5000"'
    assert preload in html and 'data-events-page="5000"' in html


def test_a_run_recorded_before_schemas_and_costs_still_replays(client, alice, flow):
    run = finished(
        flow,
        [
            {"type": "run_started", "flow": "greet", "inputs": {}},
            {"type": "node_started", "node": "greet", "iteration": 1, "inputs": {}},
            {
                "type": "node_finished",
                "node": "greet",
                "iteration": 1,
                "output": {"text": "hi"},
                "usage": {"input_tokens": 1, "output_tokens": 2},
                "model": "unpriced-model",
            },
            {"type": "run_finished", "status": "succeeded", "outputs": {}},
        ],
    )
    client.force_login(alice)
    html = client.get(reverse("run_detail", args=[run.pk])).content.decode()
    assert 'data-replay-state="ready"' in html and 'data-testid="replay-problem"' not in html
    # No cost was recorded: no "$0" pretending it was free.
    assert re.search(r'data-testid="run-cost"[^>]*></span>', html)
    assert "not priced" in inspector(client, run, "greet")
    assert client.get(reverse("run_timeline", args=[run.pk])).status_code == 200


def test_a_run_from_a_newer_engine_says_why_it_cannot_replay(client, alice, flow):
    run = finished(flow, [{"type": "run_started", "inputs": {}, "schema": 99}])
    client.force_login(alice)
    html = client.get(reverse("run_detail", args=[run.pk])).content.decode()
    assert 'data-replay-state="unavailable"' in html
    assert "Replay is unavailable" in html and "event schema 99" in html
    # No player, and the event log is not fetched ahead (the canvas modules still are).
    assert 'data-testid="replay-play"' not in html and 'as="fetch"' not in html


def test_unknown_event_types_limit_the_replay_and_are_named(client, alice, flow):
    run = finished(
        flow,
        [
            {"type": "run_started", "inputs": {}},
            {"type": "node_thought", "node": "greet", "iteration": 1},
            {"type": "run_finished", "status": "succeeded"},
        ],
    )
    client.force_login(alice)
    html = client.get(reverse("run_detail", args=[run.pk])).content.decode()
    assert 'data-replay-state="limited"' in html and 'data-replay-problem="events"' in html
    assert "events of type node_thought" in html and 'data-testid="replay-play"' in html


def test_node_types_no_longer_registered_limit_the_replay(client, alice, flow):
    graph = json.loads(json.dumps(GRAPH))
    graph["nodes"][3]["type"] = "retired_type"
    FlowVersion.objects.filter(flow=flow).update(graph=graph)
    run = greet_run(flow)
    client.force_login(alice)
    html = client.get(reverse("run_detail", args=[run.pk])).content.decode()
    assert 'data-replay-problem="node_types"' in html
    assert "retired_type (node greet)" in html and 'data-replay-state="limited"' in html


def test_a_live_run_waits_and_the_bar_is_fetched_again_when_it_ends(client, alice, flow):
    run = make_run(flow, [{"type": "run_started", "inputs": {}, "schema": 1}], status="running")
    client.force_login(alice)
    html = client.get(reverse("run_detail", args=[run.pk])).content.decode()
    assert 'data-replay-state="waiting"' in html and "Replay opens when the run finishes" in html
    assert 'data-run-finished="false"' in html
    html = client.get(reverse("run_replay", args=[run.pk])).content.decode()
    assert 'data-replay-state="waiting"' in html


def test_no_template_comment_leaks_into_the_pages(client, alice, flow):
    run = greet_run(flow)
    client.force_login(alice)
    for url in (
        reverse("run_detail", args=[run.pk]),
        reverse("run_timeline", args=[run.pk]),
        reverse("run_replay", args=[run.pk]),
        reverse("run_node", args=[run.pk, "greet"]),
    ):
        html = client.get(url).content.decode()
        assert "{#" not in html and "#}" not in html, url


def test_check_replay_covers_each_case():
    assert check_replay("succeeded", {}, [], []).state == "ready"
    assert check_replay("failed", None, [], []).state == "ready"
    assert check_replay("succeeded", {"schema": "two"}, [], []).state == "unavailable"
    assert check_replay("succeeded", {}, [], [], has_events=False).state == "unavailable"
    limited = check_replay("cancelled", {}, ["x", "y", "x"], [("n", "gone")])
    assert limited.state == "limited" and limited.playable
    assert [p.kind for p in limited.problems] == ["events", "node_types"]
    assert "x, y" in limited.problems[0].message


def test_the_player_folds_exactly_the_event_types_the_server_calls_replayable():
    # The player's RunModel (model.js) folds through log.js's RunLog, the one place in the
    # browser that says what an event means; model.js names no event type of its own.
    source = (RUNS_JS / "log.js").read_text()
    apply = source[source.index("  apply(event) {") : source.index("export function fold(")]
    assert set(re.findall(r'(?:type|kind) === "(\w+)"', apply)) == REPLAYED_EVENTS
    model = (RUNS_JS / "model.js").read_text()
    assert 'import { RunLog } from "./log.js";' in model
    assert not re.findall(r'"(?:run|node)_\w+"', model)


# ---- Permissions -------------------------------------------------------------------------


def test_strangers_get_404_on_every_replay_url(client, charlie, flow):
    run = greet_run(flow)
    urls = [
        reverse("run_timeline", args=[run.pk]),
        reverse("run_replay", args=[run.pk]),
        reverse("run_node", args=[run.pk, "greet"]) + "?upto=3",
        reverse("run_detail", args=[run.pk]),
    ]
    for url in urls:
        assert client.get(url).status_code == 302  # logged out: to the login page
    client.force_login(charlie)
    for url in urls:
        assert client.get(url).status_code == 404, url
