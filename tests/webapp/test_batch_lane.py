"""The batch lane in the web app, on the in-process driver against the fake Messages API: a
run whose map has ``latency: batch`` parks on its Message Batch (``Run.batch_poll_at`` set,
holding no thread or slot), a poll of a batch still processing only moves the next look on,
a poll of an ended one resumes the run from its results priced at half (the cost on the
row and in the log), an expired item is streamed instead, and cancelling the run cancels
its batch.

The polls here are given the time (``now``) rather than waiting for it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync

from tests.graphs.support import flow, node
from tests.support.wait import wait_for
from webapp import execution
from webapp.execution import plans
from webapp.flows import services
from webapp.runs import batches, timeouts
from webapp.runs.models import Run, RunEvent

pytestmark = pytest.mark.django_db(transaction=True)

MODEL = "claude-haiku-4-5"
PRICES = {"claude-haiku-4-5": {"input": 1.0, "output": 5.0}}


@pytest.fixture(autouse=True)
def real_model(anthropic_env, settings):
    settings.MODEL_PRICES = PRICES
    plans.engine_services.cache_clear()
    yield anthropic_env
    plans.engine_services.cache_clear()


def batch_map(items: list[str]) -> dict:
    each = flow(
        node("item", "input", name="item"),
        node("ask", "llm", prompt="Summarise {{ item }}", model=MODEL, cache_ttl="off"),
        node("result", "output", name="result"),
        edges=[("item", "value", "ask", "item"), ("ask", "text", "result", "value")],
    )
    return flow(
        node("q", "input", name="q", default=items),
        node("each", "map", flow=each, latency="batch"),
        node("out", "output", name="answers"),
        edges=[("q", "value", "each", "items"), ("each", "results", "out", "value")],
        name="batch map",
    )


def idle() -> None:
    async_to_sync(execution.driver().wait_idle)()


def park(owner, items: list[str]) -> Run:
    made = services.create(owner, "batch map", batch_map(items))
    run = Run.objects.create(flow=made, flow_version=made.current(), started_by=owner)
    execution.start(run.pk)
    idle()
    run.refresh_from_db()
    assert run.status == Run.Status.WAITING, run.error
    return run


def later(settings) -> float:
    return time.time() + settings.BATCH_POLL_S + 1


def payloads(run: Run, type_: str) -> list[dict]:
    return list(RunEvent.objects.filter(run=run, type=type_).values_list("payload", flat=True))


def test_a_parked_batch_run_is_polled_and_resumed_from_its_results_at_half_price(
    alice, real_model, settings
):
    items = ["tides", "waves", "storms"]
    run = park(alice, items)
    wait = run.state["waiting"]["each"]
    assert wait["kind"] == "batch"
    assert run.batch_poll_at is not None and run.wait_deadline is None
    assert real_model.message_requests == []
    [create] = real_model.batch_requests
    assert [r["params"]["messages"][0]["content"] for r in create.body["requests"]] == [
        f"Summarise {item}" for item in sorted(items, key=lambda i: _cid(create, i))
    ]
    # Not due yet: nothing is looked at.
    assert batches.poll_due(now=time.time()) == 0
    assert len(real_model.batch_requests) == 1

    assert batches.poll_due(now=later(settings)) == 1
    idle()
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED, run.error
    assert run.outputs == {"answers": [f"fake reply: Summarise {item}" for item in items]}
    assert run.batch_poll_at is None
    assert real_model.message_requests == []  # nothing streamed
    [resumed] = payloads(run, "node_resumed")
    assert resumed["by"] == {"batch": wait["batch_id"]}
    assert sorted(resumed["answer"]["batch_results"]) == wait["custom_ids"]
    [done] = [p for p in payloads(run, "node_finished") if p["node"] == "each"]
    assert done["model"] == f"{MODEL}@batch"
    # Half of the price table: 2 input words and 4 output words per item, at 1 and 5 $/M.
    full = (Decimal(2 * len(items)) * 1 + Decimal(4 * len(items)) * 5) / 1_000_000
    assert run.cost_usd == (full / 2).quantize(Decimal("0.000001"))
    assert done["cost_usd"] == float(run.cost_usd)
    [end] = payloads(run, "run_finished")
    assert end["usage_by_model"] == {f"{MODEL}@batch": done["usage"]}


def _cid(create, item: str) -> str:
    """The custom_id the create request gave the item's call."""
    for request in create.body["requests"]:
        if request["params"]["messages"][0]["content"] == f"Summarise {item}":
            return request["custom_id"]
    raise AssertionError(f"no request for {item}")


def test_a_batch_still_processing_is_looked_at_again_later(alice, real_model, settings):
    real_model.batch_delay = 3600
    run = park(alice, ["tides"])
    first = run.batch_poll_at
    assert batches.poll_due(now=later(settings)) == 0
    run.refresh_from_db()
    assert run.status == Run.Status.WAITING
    assert run.batch_poll_at > first
    polls = [r for r in real_model.batch_requests if r.method == "GET"]
    assert len(polls) == 1


def test_an_expired_item_is_streamed_when_the_run_resumes(alice, real_model, settings):
    items = ["tides", "waves #fake:batch_item=expired"]
    run = park(alice, items)
    assert batches.poll_due(now=later(settings)) == 1
    idle()
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED, run.error
    assert run.outputs == {"answers": [f"fake reply: Summarise {item}" for item in items]}
    [streamed] = real_model.message_requests
    assert streamed["messages"][0]["content"] == f"Summarise {items[1]}"
    [end] = payloads(run, "run_finished")
    assert set(end["usage_by_model"]) == {MODEL, f"{MODEL}@batch"}


def test_cancelling_the_run_cancels_its_batch(alice, real_model, settings):
    real_model.batch_delay = 3600
    run = park(alice, ["tides", "waves"])
    batch_id = run.state["waiting"]["each"]["batch_id"]
    assert execution.driver().cancel(run.pk)
    idle()
    run.refresh_from_db()
    assert run.status == Run.Status.CANCELLED
    assert run.batch_poll_at is None
    last = real_model.batch_requests[-1]
    assert (last.method, last.path) == ("POST", f"/v1/messages/batches/{batch_id}/cancel")
    assert real_model.batches[batch_id] == "canceling"
    # Nothing is left to poll.
    assert batches.poll_due(now=later(settings)) == 0


def test_runs_parked_on_batches_hold_no_thread_and_no_task(alice, real_model):
    from webapp.execution import inprocess

    real_model.batch_delay = 3600
    loop = inprocess.own_loop()
    parked = [park(alice, [f"a{n}"]) for n in range(2)]
    before = {thread.name for thread in threading.enumerate()}
    tasks = len(asyncio.run_coroutine_threadsafe(_tasks(), loop).result(10))
    parked += [park(alice, [f"b{n}"]) for n in range(4)]
    driver = execution.driver()
    # Executor workers (the SDK resolving the fake's address, say) are shared by every run
    # and come and go with the pool: what a parked run would hold is a thread of its own,
    # or a task on the driver's loop.
    more = {
        name
        for thread in threading.enumerate()
        if not (name := thread.name).startswith("ThreadPoolExecutor-")
    } - before
    assert not more, f"parked runs hold threads: {more}"
    assert len(asyncio.run_coroutine_threadsafe(_tasks(), loop).result(10)) == tasks
    assert not driver.active and not driver.running and not driver.starting
    waiting = Run.objects.filter(pk__in=[r.pk for r in parked], status="waiting")
    assert waiting.exclude(batch_poll_at=None).count() == 6


async def _tasks() -> set:
    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}


def test_the_servers_ticker_polls_and_resumes_by_itself(alice, real_model, settings):
    from webapp.execution import inprocess

    settings.WAIT_TICK_S = 0.05
    settings.BATCH_POLL_S = 0.1
    loop = inprocess.own_loop()
    timeouts.start_with_server(loop)
    try:
        run = park(alice, ["tides"])
        wait_for(lambda: Run.objects.get(pk=run.pk).finished, 30, message="the batch's poll")
    finally:
        timeouts.stop_on(loop)
    idle()
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED, run.error


def test_a_run_started_on_the_batch_lane_through_the_api_batches_its_calls(
    alice, real_model, settings, api
):
    doc = flow(
        node("q", "input", name="q"),
        node("ask", "llm", prompt="Name {{ q }}", model=MODEL, cache_ttl="off"),
        node("out", "output", name="a"),
        edges=[("q", "value", "ask", "q"), ("ask", "text", "out", "value")],
    )
    made = services.create(alice, "one call", doc)
    bad = api("alice").post(f"/api/flows/{made.pk}/runs", {"inputs": {"q": "x"}, "latency": "x"})
    assert bad.status_code in (400, 422)
    started = api("alice").post(
        f"/api/flows/{made.pk}/runs", {"inputs": {"q": "tides"}, "latency": "batch"}
    )
    assert started.status_code == 201, started.content
    idle()
    run = Run.objects.get(pk=started.json()["id"])
    assert run.latency == "batch"
    assert run.status == Run.Status.WAITING, run.error
    assert run.state["waiting"]["ask"]["kind"] == "batch"
    [create] = real_model.batch_requests
    assert [r["params"]["messages"] for r in create.body["requests"]] == [
        [{"role": "user", "content": "Name tides"}]
    ]
    assert batches.poll_due(now=later(settings)) == 1
    idle()
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED, run.error
    assert run.outputs == {"a": "fake reply: Name tides"}
    assert real_model.message_requests == []
    # 2 input words and 4 output words at 1 and 5 $/M, halved.
    assert run.cost_usd == Decimal("0.000011")


def test_a_batch_answer_is_kept_in_the_node_cache_and_the_next_run_sends_no_batch(
    alice, real_model, settings
):
    items = ["tides", "waves"]
    first = park(alice, items)
    assert batches.poll_due(now=later(settings)) == 1
    idle()
    first.refresh_from_db()
    assert first.status == Run.Status.SUCCEEDED, first.error
    again = Run.objects.create(flow=first.flow, flow_version=first.flow_version, started_by=alice)
    execution.start(again.pk)
    idle()
    again.refresh_from_db()
    assert again.status == Run.Status.SUCCEEDED, again.error
    assert again.outputs == first.outputs
    assert len([r for r in real_model.batch_requests if r.method == "POST"]) == 1
    assert real_model.message_requests == []
    # Its items' calls were answered from the cache: the run spent nothing.
    assert again.cost_usd == 0 < first.cost_usd


# ---- Budgets at the batch price -----------------------------------------------------------

# An item's call reserves its prompt ("Summarise tides", 5 tokens counted conservatively)
# and max_tokens: at 1 and 5 $/M, $0.001005 streamed, $0.000503 in a batch (half, rounded).
# The items are of one length, so whichever item's call the run pauses on reserves this much.
MAX_TOKENS = 200
FULL_ESTIMATE = Decimal("0.001005")
BATCH_ESTIMATE = Decimal("0.000503")


def budgeted(owner, budget: str, latency: str = "batch") -> Run:
    doc = batch_map(["tides", "waves", "winds"])
    doc["nodes"][1]["config"]["latency"] = latency
    inner = doc["nodes"][1]["config"]["flow"]
    inner["nodes"][1]["config"]["max_tokens"] = MAX_TOKENS
    made = services.create(owner, "batch map", doc)
    run = Run.objects.create(
        flow=made, flow_version=made.current(), started_by=owner, budget_usd=Decimal(budget)
    )
    execution.start(run.pk)
    idle()
    run.refresh_from_db()
    return run


def test_a_batched_call_reserves_the_batch_estimate():
    from graphs.llm import batch
    from graphs.llm.types import ModelRequest
    from webapp.runs.budgets import call_cost

    request = ModelRequest(
        model=MODEL, messages=[{"role": "user", "content": "Summarise tides"}], max_tokens=200
    )
    assert call_cost(request) == FULL_ESTIMATE
    assert call_cost(batch.priced(request)) == BATCH_ESTIMATE


def test_a_budget_that_fits_the_batch_price_but_not_the_full_price_lets_the_batched_map_run(
    alice, real_model, settings
):
    budget = "0.0008"
    assert BATCH_ESTIMATE < Decimal(budget) < FULL_ESTIMATE
    # Streamed, its first call would not fit: the run pauses before any call.
    streamed = budgeted(alice, budget, latency="stream")
    assert streamed.status == Run.Status.WAITING, streamed.error
    [paused] = payloads(streamed, "run_paused")
    assert Decimal(str(paused["needed_usd"])) == FULL_ESTIMATE
    assert real_model.message_requests == [] and real_model.batch_requests == []

    run = budgeted(alice, budget)
    assert run.status == Run.Status.WAITING, run.error
    assert run.state["waiting"]["each"]["kind"] == "batch"
    assert not payloads(run, "run_paused")
    [create] = real_model.batch_requests
    assert len(create.body["requests"]) == 3
    assert batches.poll_due(now=later(settings)) == 1
    idle()
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED, run.error
    assert real_model.message_requests == []
    # What was spent is what the batch charged: 3 x (2 input, 4 output tokens), halved.
    assert run.spent_usd == run.cost_usd == Decimal("0.000033")
    assert not run.reservations.exists()


def test_a_budget_below_the_batch_estimate_pauses_before_any_batch_is_sent(
    alice, real_model, settings
):
    run = budgeted(alice, "0.0004")
    assert run.status == Run.Status.WAITING, run.error
    [paused] = payloads(run, "run_paused")
    # The figure reserved is the batch estimate, not the streamed one.
    assert Decimal(str(paused["needed_usd"])) == BATCH_ESTIMATE
    assert run.state["waiting"]["each"]["kind"] == "budget"
    assert real_model.batch_requests == [] and real_model.message_requests == []
    assert run.batch_poll_at is None
    assert not run.reservations.exists()
