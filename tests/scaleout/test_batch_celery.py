"""The batch lane on the celery driver (real workers, PostgreSQL, Redis, the fake Messages
API): a ``map`` with ``latency: batch``, and every model node of a run started with
``latency: "batch"``, send their calls in one Message Batch each and park holding no task,
lease or slot; the workers' sweepers poll the batch and resume the run with its results,
priced at half. The fake server's request log is asserted exactly: one create with the
map's N requests, polls, one read of the results, and no streamed call. Cancelling the run
cancels its batch; an item that expired or errored is streamed instead; a budget reserves
the batch price, not the full one.

Each test holds its batch open (``batch_delay``) until it has looked at the parked run,
then lets it end (``FakeAnthropic.end_batches``).
"""

from __future__ import annotations

import os
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model

from graphs.llm import batch
from graphs.llm.types import ModelRequest
from tests.graphs.support import flow, node
from tests.scaleout.conftest import finished, sound_log
from tests.scaleout.test_approvals_celery import holds_nothing
from tests.support.wait import wait_for
from webapp.execution import coordinator
from webapp.execution.distributed import CeleryDriver
from webapp.flows import services as flow_services
from webapp.runs.budgets import call_cost
from webapp.runs.models import NodeTask, Run

pytestmark = pytest.mark.django_db(transaction=True)

MODEL = "claude-haiku-4-5"  # $1 / $5 a million tokens in settings.MODEL_PRICES
MAX_TOKENS = 200
# The workers look at a parked run's batches this often (their sweepers every 0.5 s).
POLL = {"SWITCHYARD_BATCH_POLL_S": "0.2"}
CENT = Decimal("0.000001")


@pytest.fixture
def api_env(cluster, monkeypatch):
    """This process's own batch calls (a cancel) go to the fake server too."""
    monkeypatch.setenv("ANTHROPIC_BASE_URL", cluster.model_server.url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    no_proxy = ",".join(filter(None, [os.environ.get("NO_PROXY"), "127.0.0.1", "localhost"]))
    monkeypatch.setenv("NO_PROXY", no_proxy)
    monkeypatch.setenv("no_proxy", no_proxy)
    return cluster


def ask(node_id: str, prompt: str) -> dict:
    return node(node_id, "llm", prompt=prompt, model=MODEL, max_tokens=MAX_TOKENS, cache_ttl="off")


def each_item() -> dict:
    return flow(
        node("item", "input", name="item"),
        ask("ask", "Summarise {{ item }}"),
        node("result", "output", name="result"),
        edges=[("item", "value", "ask", "item"), ("ask", "text", "result", "value")],
    )


def batch_map(latency: str = "batch") -> dict:
    return flow(
        node("q", "input", name="q"),
        node("each", "map", flow=each_item(), latency=latency, concurrency=2, item_events=2),
        node("out", "output", name="answers"),
        edges=[("q", "value", "each", "items"), ("each", "results", "out", "value")],
        name="batch map",
    )


def request_for(prompt: str) -> ModelRequest:
    """The request an item's llm node makes for `prompt` (its custom_id's digest)."""
    return ModelRequest(
        model=MODEL, messages=[{"role": "user", "content": prompt}], max_tokens=MAX_TOKENS
    )


def start(graph: dict, inputs: dict, **fields) -> Run:
    owner = get_user_model().objects.get_or_create(username="alice")[0]
    made = flow_services.create(owner, graph["graph"]["name"], graph)
    run = Run.objects.create(
        flow=made, flow_version=made.current(), started_by=owner, inputs=inputs, **fields
    )
    assert CeleryDriver.send_begin(run.pk) is None
    return run


def parked(run: Run, waits: int = 1) -> Run:
    """The run once it is stored waiting on `waits` nodes."""

    def waiting() -> Run | None:
        run.refresh_from_db()
        assert not run.finished, run.error
        if run.status != Run.Status.WAITING or len(run.state["waiting"]) != waits:
            return None
        return run

    return wait_for(waiting, 90, message=f"run {run.pk} to park")


def kinds(server) -> list[tuple[str, str]]:
    """The batch requests the fake server saw: (method, path with the batch id as ID)."""
    seen = []
    for request in server.batch_requests:
        path = request.path.split("?")[0]
        for batch_id in server.batches:
            path = path.replace(batch_id, "ID")
        seen.append((request.method, path))
    return seen


def half(input_tokens: int, output_tokens: int) -> Decimal:
    """What a batch charges for these tokens of MODEL: half of $1 and $5 a million."""
    return (Decimal(input_tokens + 5 * output_tokens) / 2 / 1_000_000).quantize(CENT)


def test_a_batch_map_sends_one_batch_parks_holding_nothing_and_resumes_at_half_price(cluster):
    server = cluster.model_server
    server.batch_delay = 3600
    cluster.workers(1, pool="threads", size=2, **POLL)
    items = ["tides", "waves", "storms", "winds"]
    run = parked(start(batch_map(), {"q": items}))

    wait = run.state["waiting"]["each"]
    assert wait["kind"] == "batch" and wait["rerun"] is True
    ids = {batch.custom_id(request_for(f"Summarise {item}")): item for item in items}
    assert wait["custom_ids"] == sorted(ids)
    assert run.batch_poll_at is not None and run.wait_deadline is None
    holds_nothing(run)
    # The items ran in the map's own task: none has a task of its own.
    assert not NodeTask.objects.filter(run=run).exclude(item=NodeTask.NODE).exists()
    [create] = server.batch_requests
    assert (create.method, create.path) == ("POST", "/v1/messages/batches")
    assert [r["custom_id"] for r in create.body["requests"]] == sorted(ids)
    for request in create.body["requests"]:
        params = request["params"]
        assert params["model"] == MODEL and params["max_tokens"] == MAX_TOKENS
        assert params["messages"] == [
            {"role": "user", "content": f"Summarise {ids[request['custom_id']]}"}
        ]
        assert "stream" not in params
    assert server.message_requests == []
    # Still processing: the workers look again, and the run stays parked.
    wait_for(lambda: len(server.batch_requests) >= 3, 30, message="the workers' polls")
    run.refresh_from_db()
    assert run.status == Run.Status.WAITING
    assert set(kinds(server)) == {
        ("POST", "/v1/messages/batches"),
        ("GET", "/v1/messages/batches/ID"),
    }

    server.end_batches()
    run = finished(run)
    assert run.status == Run.Status.SUCCEEDED, run.error
    assert run.outputs == {"answers": [f"fake reply: Summarise {item}" for item in items]}
    seen = kinds(server)
    # Created once, looked at until it ended, its results read once; nothing streamed.
    assert seen[0] == ("POST", "/v1/messages/batches")
    assert seen[-1] == ("GET", "/v1/messages/batches/ID/results")
    assert set(seen[1:-1]) == {("GET", "/v1/messages/batches/ID")}
    assert server.message_requests == []
    assert run.batch_poll_at is None

    events = sound_log(run)
    [resumed] = [e for e in events if e["type"] == "node_resumed"]
    assert resumed["by"] == {"batch": wait["batch_id"]}
    assert sorted(resumed["answer"]["batch_results"]) == sorted(ids)
    [done] = [e for e in events if e["type"] == "node_finished" and e["node"] == "each"]
    assert done["model"] == f"{MODEL}@batch"
    # Each item: 2 input and 4 output tokens ("Summarise X" -> "fake reply: Summarise X").
    cost = half(2 * len(items), 4 * len(items))
    assert done["cost_usd"] == float(cost) and run.cost_usd == cost
    [end] = [e for e in events if e["type"] == "run_finished"]
    assert end["usage_by_model"] == {f"{MODEL}@batch": done["usage"]}
    assert end["cost_usd"] == float(cost)
    # The first item_events items' own events went into the log, as the map's node_item.
    assert {e["item"] for e in events if e["type"] == "node_item"} == {0, 1}
    # The map ran again after its wait in its own task row, one epoch on.
    task = NodeTask.objects.get(run=run, node="each", item=NodeTask.NODE)
    assert task.epoch == 2 and task.status == NodeTask.Status.DONE
    assert not NodeTask.objects.filter(run=run).exclude(item=NodeTask.NODE).exists()


def test_a_run_on_the_batch_lane_batches_every_model_node_and_its_maps_items(cluster):
    server = cluster.model_server
    server.batch_delay = 3600
    cluster.workers(1, pool="threads", size=2, **POLL)
    items = ["tides", "waves"]
    graph = flow(
        node("q", "input", name="q"),
        node("topic", "input", name="topic"),
        ask("name", "Name {{ topic }}"),
        # No latency of its own: the run's puts its items on the lane.
        node("each", "map", flow=each_item(), concurrency=2),
        node("a", "output", name="name"),
        node("b", "output", name="answers"),
        edges=[
            ("topic", "value", "name", "topic"),
            ("name", "text", "a", "value"),
            ("q", "value", "each", "items"),
            ("each", "results", "b", "value"),
        ],
        name="run lane",
    )
    run = parked(start(graph, {"q": items, "topic": "seas"}, latency="batch"), waits=2)

    assert {node: w["kind"] for node, w in run.state["waiting"].items()} == {
        "name": "batch",
        "each": "batch",
    }
    holds_nothing(run)
    creates = [r for r in server.batch_requests if r.method == "POST"]
    sent = sorted(
        [r["params"]["messages"][0]["content"] for r in create.body["requests"]]
        for create in creates
    )
    assert sent == [["Name seas"], sorted(f"Summarise {item}" for item in items)]
    assert server.message_requests == []

    server.end_batches()
    run = finished(run)
    assert run.status == Run.Status.SUCCEEDED, run.error
    assert run.outputs == {
        "name": "fake reply: Name seas",
        "answers": [f"fake reply: Summarise {item}" for item in items],
    }
    assert server.message_requests == []
    assert len([r for r in server.batch_requests if r.method == "POST"]) == 2
    assert len([r for r in server.batch_requests if r.path.endswith("/results")]) == 2
    events = sound_log(run)
    assert sorted(e["node"] for e in events if e["type"] == "node_resumed") == ["each", "name"]
    [end] = [e for e in events if e["type"] == "run_finished"]
    assert set(end["usage_by_model"]) == {f"{MODEL}@batch"}
    # "Name seas" 2 in, 4 out; each item 2 in, 4 out: all at half price.
    assert run.cost_usd == half(2 + 2 * len(items), 4 + 4 * len(items))
    assert not NodeTask.objects.filter(run=run).exclude(item=NodeTask.NODE).exists()


def test_cancelling_a_run_parked_on_its_batch_cancels_the_batch(api_env):
    server = api_env.model_server
    server.batch_delay = 3600
    api_env.workers(1, pool="threads", size=2, **POLL)
    run = parked(start(batch_map(), {"q": ["tides", "waves"]}))
    batch_id = run.state["waiting"]["each"]["batch_id"]

    assert coordinator.cancel(run.pk)
    run = finished(run)
    assert run.status == Run.Status.CANCELLED
    assert run.batch_poll_at is None
    cancels = [r for r in server.batch_requests if r.method == "POST"][1:]
    assert [r.path for r in cancels] == [f"/v1/messages/batches/{batch_id}/cancel"]
    # Canceling, or ended already should a sweep have looked at it since (it was cancelled).
    assert server.batches[batch_id] in ("canceling", "ended")
    assert server.message_requests == []
    sound_log(run)
    assert not NodeTask.objects.filter(run=run).exclude(status=NodeTask.Status.DONE).exists()


def test_items_that_expired_or_errored_in_the_batch_are_streamed(cluster):
    server = cluster.model_server
    cluster.workers(1, pool="threads", size=2, **POLL)
    items = ["tides", "waves #fake:batch_item=expired", "storms #fake:batch_item=errored"]
    run = finished(start(batch_map(), {"q": items}), 120)

    assert run.status == Run.Status.SUCCEEDED, run.error
    assert run.outputs == {"answers": [f"fake reply: Summarise {item}" for item in items]}
    [create] = [r for r in server.batch_requests if r.method == "POST"]
    assert len(create.body["requests"]) == 3
    # Only the two the batch did not answer streamed, once each.
    streamed = sorted(r["messages"][0]["content"] for r in server.message_requests)
    assert streamed == sorted(f"Summarise {item}" for item in items[1:])
    assert all(r.get("stream") for r in server.message_requests)
    events = sound_log(run)
    [done] = [e for e in events if e["type"] == "node_finished" and e["node"] == "each"]
    assert set(done["usage_by_model"]) == {MODEL, f"{MODEL}@batch"}
    # One item at the batch price, two at the full one.
    batched = done["usage_by_model"][f"{MODEL}@batch"]
    assert (batched["input_tokens"], batched["output_tokens"]) == (2, 4)
    full = done["usage_by_model"][MODEL]
    expected = half(2, 4) + (
        Decimal(full["input_tokens"] + 5 * full["output_tokens"]) / 1_000_000
    ).quantize(CENT)
    assert run.cost_usd == expected


# ---- Budgets at the batch price ------------------------------------------------------


def test_a_budget_reserves_the_batch_price_for_a_batched_map(cluster):
    server = cluster.model_server
    cluster.workers(1, pool="threads", size=2, **POLL)
    request = request_for("Summarise tides")
    full, batched = call_cost(request), call_cost(batch.priced(request))
    # "Summarise tides" counts 5 tokens, max_tokens 200: $0.001005 streamed, half in a batch.
    assert (full, batched) == (Decimal("0.001005"), Decimal("0.000503"))
    items = ["tides", "waves", "storms"]

    # Below the batch estimate: paused before anything is sent, needing the batch figure.
    short = parked(start(batch_map(), {"q": items}, budget_usd=(batched / 2).quantize(CENT)))
    assert short.state["waiting"]["each"]["kind"] == "budget"
    [paused] = [e for e in sound_log(short) if e["type"] == "run_paused"]
    assert Decimal(str(paused["needed_usd"])) == batched
    assert server.batch_requests == [] and server.message_requests == []
    assert not short.reservations.exists()
    assert coordinator.cancel(short.pk)

    # Between the two: the batched map runs, where a streamed one could not make a call.
    budget = ((batched + full) / 2).quantize(CENT)
    run = finished(start(batch_map(), {"q": items}, budget_usd=budget), 120)
    assert run.status == Run.Status.SUCCEEDED, run.error
    assert not [e for e in sound_log(run) if e["type"] == "run_paused"]
    [create] = [r for r in server.batch_requests if r.method == "POST"]
    assert len(create.body["requests"]) == len(items)
    assert server.message_requests == []
    assert run.spent_usd == run.cost_usd == half(2 * len(items), 4 * len(items))
    assert not run.reservations.exists()
