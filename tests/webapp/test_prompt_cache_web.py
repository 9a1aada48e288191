"""Prompt caching in the web app: a run of a map whose items share a long prompt prefix,
through the in-process driver against the fake Messages API, warm then fan: the cache
and thinking tokens in its events, its cost and provider-cache saving on the run's row,
and the figures the run page, the inspector and the history show."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.test import Client
from django.urls import reverse

from tests.graphs.support import flow, node
from webapp import execution
from webapp.execution import plans
from webapp.flows import services
from webapp.runs.models import Run, RunEvent

MODEL = "claude-sonnet-4-6"
PRICES = {"claude-sonnet-4": {"input": 3.0, "output": 15.0}}
RULES = "Follow the house rules. " * 200
ITEMS = 4


@pytest.fixture(autouse=True)
def real_model(anthropic_env, monkeypatch, settings):
    monkeypatch.setenv("SWITCHYARD_WARM_THEN_FAN", "1")
    settings.MODEL_PRICES = PRICES
    plans.engine_services.cache_clear()
    yield anthropic_env
    plans.engine_services.cache_clear()


def cached_map() -> dict:
    each = flow(
        node("item", "input", name="item"),
        node(
            "ask",
            "llm",
            prompt=RULES + "Item {{ item }}\n#fake:delay=0.2",
            model=MODEL,
            max_tokens=2048,
            thinking="enabled",
            thinking_budget=1024,
        ),
        node("result", "output", name="result"),
        edges=[("item", "value", "ask", "item"), ("ask", "text", "result", "value")],
    )
    return flow(
        node("q", "input", name="q", default=[f"n{i}" for i in range(ITEMS)]),
        node("each", "map", concurrency=ITEMS, flow=each),
        node("out", "output", name="answers"),
        edges=[("q", "value", "each", "items"), ("each", "results", "out", "value")],
        name="cached map",
    )


def new_run(owner) -> Run:
    made = services.create(owner, "cached map", cached_map())
    return Run.objects.create(flow=made, flow_version=made.current(), started_by=owner)


def run_end(run: Run) -> dict:
    return RunEvent.objects.get(run=run, type="run_finished").payload


def per_million(tokens: int, price: float) -> Decimal:
    return Decimal(str(price)) * tokens


@pytest.mark.django_db(transaction=True)
async def test_a_warmed_map_records_cache_and_thinking_tokens_cost_and_saving(alice, real_model):
    run = await sync_to_async(new_run)(alice)
    execution.start(run.pk)
    await execution.driver().wait_idle()
    await run.arefresh_from_db()
    assert run.status == "succeeded", run.error

    end = await sync_to_async(run_end)(run)
    usage = end["usage"]
    words = len((RULES + "Item ").split())
    # Warm, then fan: the first item wrote the prefix, the other three read it.
    assert usage["cache_creation_input_tokens"] == words
    assert usage["cache_read_input_tokens"] == (ITEMS - 1) * words
    assert usage["thinking_tokens"] > 0
    assert end["usage_by_model"][MODEL] == usage
    marked = [r for r in real_model.message_requests if r["messages"][0]["content"][0].get(
        "cache_control") == {"type": "ephemeral"}]  # fmt: skip
    assert len(marked) == ITEMS

    # Priced as the API bills: input 3, output (thinking included) 15, writes 3.75, reads 0.3.
    cost = (
        per_million(usage["input_tokens"], 3.0)
        + per_million(usage["output_tokens"], 15.0)
        + per_million(usage["cache_creation_input_tokens"], 3.75)
        + per_million(usage["cache_read_input_tokens"], 0.3)
    ) / 1_000_000
    saved = (
        per_million(usage["cache_creation_input_tokens"], 3.0 - 3.75)
        + per_million(usage["cache_read_input_tokens"], 3.0 - 0.3)
    ) / 1_000_000
    quantum = Decimal("0.000001")
    assert run.cost_usd == cost.quantize(quantum)
    assert run.provider_saved_usd == saved.quantize(quantum) > 0
    assert end["cost_usd"] == float(run.cost_usd)
    assert end["provider_saved_usd"] == float(run.provider_saved_usd)
    [done] = await sync_to_async(list)(
        RunEvent.objects.filter(run=run, type="node_finished", payload__node="each").values_list(
            "payload", flat=True
        )
    )
    assert done["provider_saved_usd"] == float(run.provider_saved_usd)

    share = int(100 * usage["cache_read_input_tokens"] / (
        usage["input_tokens"] + usage["cache_creation_input_tokens"]
        + usage["cache_read_input_tokens"]) + 0.5)  # fmt: skip
    await sync_to_async(shown_everywhere)(alice, run, share)


def shown_everywhere(user, run: Run, share: int) -> None:
    client = Client()
    client.force_login(user)
    saved = f"${float(run.provider_saved_usd):.4g}"

    page = client.get(reverse("run_detail", args=[run.pk])).content.decode()
    figure = re.search(r'data-testid="run-provider-cache"[^>]*>([^<]*)<', page)
    assert figure is not None
    assert figure[1] == f"provider cache: {share}% read, saved {saved}"

    inspector = client.get(reverse("run_node", args=[run.pk, "each"])).content.decode()
    figure = re.search(r'data-testid="inspector-provider-cache"[^>]*>([^<]*)<', inspector)
    assert figure is not None
    assert figure[1] == f"provider cache: {share}% read, saved {saved}"

    history = client.get(reverse("flow_runs", args=[run.flow_id])).content.decode()
    figure = re.search(r'data-testid="history-provider-cache"[^>]*>([^<]*)<', history)
    assert figure is not None
    assert figure[1] == f"(provider cache saved {saved})"


@pytest.mark.django_db
def test_a_run_without_caching_shows_no_provider_cache(alice, real_model):
    run = new_run(alice)
    Run.objects.filter(pk=run.pk).update(status="succeeded", last_seq=1)
    usage = {"input_tokens": 5, "output_tokens": 2}
    RunEvent.objects.create(
        run=run,
        seq=1,
        type="run_finished",
        payload={"seq": 1, "ts": 1.0, "type": "run_finished", "status": "succeeded",
                 "usage": usage},
    )  # fmt: skip
    client = Client()
    client.force_login(alice)
    page = client.get(reverse("run_detail", args=[run.pk])).content.decode()
    # The live view's slot for it, empty and hidden.
    assert re.search(r'data-testid="run-provider-cache"[^>]* hidden></span>', page)
    history = client.get(reverse("flow_runs", args=[run.flow_id])).content.decode()
    assert "history-provider-cache" not in history
