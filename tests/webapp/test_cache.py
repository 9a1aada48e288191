"""The node cache in the web app: entries per flow, hits in the events, ignore cache, the
per-node switch in the editor's node form. Runs go through the real driver and the
fake Anthropic server, whose request log says whether the model was called."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async
from django.http import QueryDict
from django.test import Client

from graphs.cache import CachedOutput
from graphs.llm.types import Usage
from graphs.nodes import NODE_TYPES
from webapp import execution
from webapp.execution import plans
from webapp.execution.cache import DbNodeCache
from webapp.flows import forms, services
from webapp.runs.models import CacheEntry, Run, RunEvent

JSON = "application/json"


def chain(prompt_b: str = "second: {{ a }}", cache_b: bool | None = None) -> dict:
    """input -> a (llm) -> b (llm) -> output."""
    b_config: dict = {"prompt": prompt_b}
    if cache_b is not None:
        b_config["cache"] = cache_b
    return {
        "graph": {"name": "two calls"},
        "nodes": [
            {"id": "topic", "type": "input", "config": {"name": "topic", "default": "queues"}},
            {"id": "a", "type": "llm", "config": {"prompt": "first: {{ topic }}"}},
            {"id": "b", "type": "llm", "config": b_config},
            {"id": "out", "type": "output", "config": {"name": "text"}},
        ],
        "edges": [
            {"source": "topic", "target": "a", "source_port": "value", "target_port": "topic"},
            {"source": "a", "target": "b", "source_port": "text", "target_port": "a"},
            {"source": "b", "target": "out", "source_port": "text", "target_port": "value"},
        ],
    }


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def prompts(server) -> list[str]:
    """The prompt of every model call the fake server has seen, in order."""
    return [body["messages"][-1]["content"] for body in server.message_requests]


async def run_flow(async_client, token: str, flow_id: int, **body) -> Run:
    response = await async_client.post(
        f"/api/flows/{flow_id}/runs", body, content_type=JSON, headers=auth(token)
    )
    assert response.status_code == 201, response.content
    await execution.driver().wait_idle()
    return await Run.objects.aget(pk=response.json()["id"])


async def finished_events(run: Run) -> dict[str, dict]:
    events = RunEvent.objects.filter(run=run, type="node_finished").order_by("seq")
    return {e["node"]: e async for e in events.values_list("payload", flat=True)}


# ---- The per-node switch in the editor's node form ---------------------------------------


def node_form(user, flow, node_type: str, **post) -> str:
    client = Client()
    client.force_login(user)
    data = {"type": node_type, "node_id": "n", **post}
    return client.post(f"/flows/{flow.pk}/node-form/", data).content.decode()


@pytest.fixture
def flow(alice):
    return services.create(alice, "Cached", chain())


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("config", "selected"),
    [({}, ""), ({"cache": True}, "true"), ({"cache": False}, "false")],
)
def test_the_node_form_offers_default_always_and_never_for_the_cache(alice, flow, config, selected):
    html = node_form(alice, flow, "llm", config=json.dumps({"prompt": "hi", **config}))
    select = html.split('name="f_cache"')[1].split("</select>")[0]
    assert '<option value="">Default (on for this node)</option>' in select.replace(" selected", "")
    assert ">Always</option>" in select and ">Never</option>" in select
    assert f'<option value="{selected}" selected>' in select


@pytest.mark.django_db
def test_the_default_says_off_for_a_type_that_is_not_cached(alice, flow):
    html = node_form(alice, flow, "template", config=json.dumps({"template": "hi"}))
    assert '<option value="" selected>Default (off for this node)</option>' in html


@pytest.mark.django_db
@pytest.mark.parametrize(("posted", "expected"), [("", None), ("true", True), ("false", False)])
def test_the_cache_switch_reads_back_as_unset_yes_or_no(alice, flow, posted, expected):
    html = node_form(alice, flow, "llm", form_key="k1", f_prompt="hi {{ x }}", f_cache=posted)
    payload = json.loads(html.split('<script type="application/json">')[1].split("</script>")[0])
    assert payload["valid"] is True
    assert payload["config"].get("cache") is expected


def test_an_unknown_cache_choice_is_an_error_on_the_field():
    _, errors, keep = forms.read_form(
        NODE_TYPES["llm"], _query({"f_prompt": "hi", "f_cache": "sometimes"})
    )
    assert errors == {"cache": "choose default, always or never"} and keep == ["cache"]


def _query(data: dict) -> QueryDict:
    query = QueryDict(mutable=True)
    query.update(data)
    return query


# ---- DbNodeCache ------------------------------------------------------------------------

pytestmark_db = pytest.mark.django_db(transaction=True)


@pytestmark_db
async def test_an_entry_serves_its_own_flow_and_counts_hits(alice, flow):
    other = await sync_to_async(services.create)(alice, "Other", chain())
    cache = DbNodeCache(flow.pk, None)
    entry = CachedOutput({"text": "hello"}, text="hello", model="m", usage=Usage(3, 5))
    await cache.put("k" * 64, "llm", entry)
    hit = await cache.get("k" * 64)
    assert hit is not None and hit.output == {"text": "hello"} and hit.usage == Usage(3, 5)
    assert hit.text == "hello" and hit.model == "m"
    assert await DbNodeCache(other.pk, None).get("k" * 64) is None
    assert await cache.get("x" * 64) is None
    stored = await CacheEntry.objects.aget(flow=flow)
    assert stored.hits == 1


@pytestmark_db
async def test_a_store_replaces_the_entry_for_the_same_key(alice, flow):
    first = await sync_to_async(Run.objects.create)(
        flow=flow, flow_version=await sync_to_async(flow.current)(), started_by=alice
    )
    cache = DbNodeCache(flow.pk, first.pk)
    await cache.put("k" * 64, "llm", CachedOutput({"text": "old"}))
    await cache.put("k" * 64, "llm", CachedOutput({"text": "new"}))
    assert await CacheEntry.objects.filter(flow=flow).acount() == 1
    hit = await cache.get("k" * 64)
    assert hit.output == {"text": "new"} and hit.source == f"run {first.pk}"


# ---- Through the driver, with the fake model server ---------------------------------------


@pytest.fixture
def model(anthropic_env):
    plans.engine_services.cache_clear()
    yield anthropic_env
    plans.engine_services.cache_clear()


@pytestmark_db
async def test_a_second_identical_run_is_served_from_the_cache_without_a_model_call(
    async_client, model, alice_token, flow
):
    first = await run_flow(async_client, alice_token, flow.pk)
    assert first.status == "succeeded"
    assert len(model.message_requests) == 2
    second = await run_flow(async_client, alice_token, flow.pk)
    assert second.status == "succeeded" and second.outputs == first.outputs
    assert len(model.message_requests) == 2, "a cache hit must not call the model"
    finished = await finished_events(second)
    for node in ("a", "b"):
        assert finished[node]["cached"]["source"] == f"run {first.pk}"
        assert finished[node]["cached"]["usage"]["output_tokens"] > 0
        assert finished[node]["usage"] == {"input_tokens": 0, "output_tokens": 0}
    deltas = RunEvent.objects.filter(run=second, type="node_delta", payload__node="b")
    assert [e["text"] async for e in deltas.values_list("payload", flat=True)] == [
        first.outputs["text"]
    ]
    assert await CacheEntry.objects.filter(flow=flow).acount() == 2


@pytestmark_db
async def test_ignore_cache_calls_the_model_and_refreshes_the_entries(
    async_client, model, alice_token, flow
):
    first = await run_flow(async_client, alice_token, flow.pk)
    fresh = await run_flow(async_client, alice_token, flow.pk, ignore_cache=True)
    assert fresh.ignore_cache is True
    assert len(model.message_requests) == 4
    assert not any("cached" in e for e in (await finished_events(fresh)).values())
    sources = {e.run_id async for e in CacheEntry.objects.filter(flow=flow)}
    assert sources == {fresh.pk} and first.pk not in sources


@pytestmark_db
async def test_a_node_switched_off_always_calls_the_model(async_client, model, alice, alice_token):
    flow = await sync_to_async(services.create)(alice, "No cache on b", chain(cache_b=False))
    await run_flow(async_client, alice_token, flow.pk)
    second = await run_flow(async_client, alice_token, flow.pk)
    assert [p.split(":")[0] for p in prompts(model)] == ["first", "second", "second"]
    finished = await finished_events(second)
    assert "cached" in finished["a"] and "cached" not in finished["b"]


@pytestmark_db
async def test_changed_inputs_miss_the_cache(async_client, model, alice_token, flow):
    await run_flow(async_client, alice_token, flow.pk)
    await run_flow(async_client, alice_token, flow.pk, inputs={"topic": "locks"})
    assert len(model.message_requests) == 4


@pytestmark_db
async def test_a_user_never_gets_a_cached_output_of_a_flow_he_cannot_see(
    async_client, model, alice_token, charlie, charlie_token, flow
):
    await run_flow(async_client, alice_token, flow.pk)
    his = await sync_to_async(services.create)(charlie, "Same nodes", chain())
    run = await run_flow(async_client, charlie_token, his.pk)
    assert run.status == "succeeded"
    assert len(model.message_requests) == 4, "charlie's identical nodes must call the model"
    assert not any("cached" in e for e in (await finished_events(run)).values())
    assert await CacheEntry.objects.filter(flow=his).acount() == 2
