"""The batch lane against the fake Messages API: a ``map`` with ``latency: batch`` sends its
items' calls in one Message Batch (exact create request: custom ids and params), parks
with a ``batch`` wait, and once resumed with the batch's results finishes with them, priced
under ``<model>@batch``; an expired or errored item is streamed instead; the offline model,
which cannot batch, streams."""

from __future__ import annotations

from typing import Any

import anthropic

from graphs.history import EventHistory
from graphs.llm import batch
from graphs.llm.anthropic import AnthropicClient
from graphs.llm.types import ModelRequest, Usage
from graphs.log import fold
from graphs.schedule import RunOptions
from tests.fakes.anthropic_server import FakeAnthropic
from tests.graphs.support import compiled, finished, flow, node, of_type

MODEL = "claude-haiku-4-5"
BY = {"batch": True}


def client_for(server: FakeAnthropic) -> AnthropicClient:
    return AnthropicClient(anthropic.AsyncAnthropic(api_key="test-key", base_url=server.url))


def batch_map(latency: str = "batch", prompt: str = "Summarise {{ item }}") -> dict:
    inner = flow(
        node("item", "input", name="item"),
        node("ask", "llm", prompt=prompt, model=MODEL, max_tokens=200, cache_ttl="off"),
        node("result", "output", name="result"),
        edges=[("item", "value", "ask", "item"), ("ask", "text", "result", "value")],
    )
    return flow(
        node("items", "input", name="items"),
        node("map", "map", flow=inner, latency=latency, concurrency=2),
        node("out", "output", name="results"),
        edges=[("items", "value", "map", "items"), ("map", "results", "out", "value")],
    )


def request_for(text: str) -> ModelRequest:
    """The request an item's llm makes (what its custom_id is the digest of)."""
    return ModelRequest(
        model=MODEL, messages=[{"role": "user", "content": f"Summarise {text}"}], max_tokens=200
    )


async def park(server: FakeAnthropic, items: list[str]) -> tuple[Any, Any, list[dict], Any]:
    client = client_for(server)
    flow_ = compiled(batch_map(), model_client=client)
    events: list[dict] = []
    options = RunOptions(history=EventHistory(events))
    parked = await flow_.run({"items": items}, events.append, options=options)
    return flow_, parked, events, options


async def finish(server, flow_, parked, events, options) -> Any:
    """What the host's poller does: look at the batch, take its results, resume the map."""
    client = client_for(server)
    wait = parked.state["waiting"]["map"]
    assert await client.batch_status(wait["batch_id"]) == "ended"
    results = await client.batch_results(wait["batch_id"])
    return await flow_.resume(
        parked.state,
        "map",
        1,
        batch.answer(results),
        BY,
        events.append,
        seq=events[-1]["seq"],
        options=options,
    )


async def test_a_map_on_the_batch_lane_sends_one_batch_and_finishes_from_its_results(
    fake_anthropic,
):
    items = ["tides", "waves", "storms"]
    flow_, parked, events, options = await park(fake_anthropic, items)

    assert parked.status == "waiting"
    assert fake_anthropic.message_requests == []  # nothing streamed
    [create] = fake_anthropic.batch_requests
    assert (create.method, create.path) == ("POST", "/v1/messages/batches")
    sent = {r["custom_id"]: r["params"] for r in create.body["requests"]}
    expected = {
        batch.custom_id(request_for(item)): {
            "model": MODEL,
            "max_tokens": 200,
            "messages": [{"role": "user", "content": f"Summarise {item}"}],
        }
        for item in items
    }
    assert sent == expected
    [waiting] = of_type(events, "node_waiting")
    wait = waiting["wait"]
    assert wait["kind"] == "batch" and wait["rerun"] is True
    assert wait["custom_ids"] == sorted(expected)
    assert fake_anthropic.batches == {wait["batch_id"]: "in_progress"}
    assert fold(events).final_states()["map"] == "waiting"

    result = await finish(fake_anthropic, flow_, parked, events, options)

    assert result.status == "succeeded"
    assert result.outputs["results"] == [f"fake reply: Summarise {item}" for item in items]
    assert fake_anthropic.message_requests == []  # still nothing streamed
    paths = [(r.method, r.path.split("?")[0]) for r in fake_anthropic.batch_requests]
    results_path = f"/v1/messages/batches/{wait['batch_id']}/results"
    assert paths[1:] == [
        ("GET", f"/v1/messages/batches/{wait['batch_id']}"),  # the poll
        ("GET", f"/v1/messages/batches/{wait['batch_id']}"),  # results: the SDK looks first
        ("GET", results_path),
    ]
    [done] = finished(events, "map")
    # Usage counts under the batch name (priced at the batch rate); the fake counts words.
    assert done["model"] == f"{MODEL}@batch"
    input_words = 2 * len(items)
    output_words = 4 * len(items)  # "fake reply: Summarise X"
    assert done["usage"] == Usage(input_words, output_words).as_dict()
    assert result.usage_by_model == {f"{MODEL}@batch": Usage(input_words, output_words)}
    assert fold(events).final_states()["map"] == "done"


async def test_an_expired_or_errored_item_is_streamed_instead(fake_anthropic):
    items = ["tides", "waves #fake:batch_item=expired", "storms #fake:batch_item=errored"]
    flow_, parked, events, options = await park(fake_anthropic, items)
    assert parked.status == "waiting"
    assert fake_anthropic.message_requests == []

    result = await finish(fake_anthropic, flow_, parked, events, options)

    assert result.status == "succeeded"
    assert result.outputs["results"] == [f"fake reply: Summarise {item}" for item in items]
    streamed = [m["messages"][0]["content"] for m in fake_anthropic.message_requests]
    assert sorted(streamed) == sorted(f"Summarise {item}" for item in items[1:])
    assert all(m["stream"] is True for m in fake_anthropic.message_requests)
    # One item at the batch rate, two streamed at the full price.
    assert set(result.usage_by_model) == {MODEL, f"{MODEL}@batch"}
    assert result.usage_by_model[f"{MODEL}@batch"] == Usage(2, 4)


async def test_a_batch_that_has_not_ended_says_so_and_a_cancelled_one_ends_canceled(
    fake_anthropic,
):
    fake_anthropic.batch_delay = 3600
    _, parked, _, _ = await park(fake_anthropic, ["tides"])
    client = client_for(fake_anthropic)
    batch_id = parked.state["waiting"]["map"]["batch_id"]
    assert await client.batch_status(batch_id) == "in_progress"
    await client.cancel_batch(batch_id)
    assert fake_anthropic.batch_requests[-1].path == f"/v1/messages/batches/{batch_id}/cancel"
    assert await client.batch_status(batch_id) == "ended"
    # A canceled item has no reply: the node would stream it.
    assert await client.batch_results(batch_id) == {batch.custom_id(request_for("tides")): None}


async def test_the_offline_model_cannot_batch_so_the_lane_streams():
    flow_ = compiled(batch_map())
    result = await flow_.run({"items": ["a", "b"]})
    assert result.status == "succeeded"
    assert len(result.outputs["results"]) == 2


async def test_the_fake_refuses_a_batch_item_the_api_would_refuse(fake_anthropic):
    client = client_for(fake_anthropic)
    bad = ModelRequest(model=MODEL, messages=[{"role": "user", "content": "x"}], temperature=3)
    try:
        await client.submit_batch({"ok": request_for("a"), "bad": bad})
    except Exception as exc:
        assert "requests.1.params" in str(exc) and "temperature" in str(exc)
    else:
        raise AssertionError("a temperature of 3 was accepted")


async def test_a_run_on_the_batch_lane_sends_each_ready_call_in_a_batch(fake_anthropic):
    doc = flow(
        node("q", "input", name="q"),
        node("first", "llm", prompt="Name {{ q }}", model=MODEL, cache_ttl="off"),
        node("second", "llm", prompt="Rhyme {{ text }}", model=MODEL, cache_ttl="off"),
        node("out", "output", name="a"),
        edges=[
            ("q", "value", "first", "q"),
            ("first", "text", "second", "text"),
            ("second", "text", "out", "value"),
        ],
    )
    client = client_for(fake_anthropic)
    flow_ = compiled(doc, model_client=client)
    events: list[dict] = []
    options = RunOptions(history=EventHistory(events), latency="batch")
    result = await flow_.run({"q": "tides"}, events.append, options=options)
    for node_id in ("first", "second"):
        assert result.status == "waiting"
        wait = result.state["waiting"][node_id]
        assert wait["kind"] == "batch"
        results = await client.batch_results(wait["batch_id"])
        result = await flow_.resume(
            result.state,
            node_id,
            1,
            batch.answer(results),
            BY,
            events.append,
            seq=events[-1]["seq"],
            options=options,
        )
    assert result.status == "succeeded"
    assert result.outputs == {"a": "fake reply: Rhyme fake reply: Name tides"}
    assert fake_anthropic.message_requests == []
    creates = [r.body for r in fake_anthropic.batch_requests if r.method == "POST"]
    assert [[i["params"]["messages"][0]["content"] for i in c["requests"]] for c in creates] == [
        ["Name tides"],
        ["Rhyme fake reply: Name tides"],
    ]
    assert set(result.usage_by_model) == {f"{MODEL}@batch"}
    # Node text streams as one piece from the batch's reply.
    deltas = [e["text"] for e in of_type(events, "node_delta") if e["node"] == "first"]
    assert "".join(deltas) == "fake reply: Name tides"


async def test_a_map_run_again_before_it_parked_parks_on_the_batch_it_sent(fake_anthropic):
    items = ["tides", "waves"]
    flow_, parked, events, options = await park(fake_anthropic, items)
    wait = parked.state["waiting"]["map"]
    [sent] = of_type(events, batch.SENT)
    assert (sent["node"], sent["iteration"]) == ("map", 1)
    assert (sent["batch_id"], sent["custom_ids"]) == (wait["batch_id"], wait["custom_ids"])
    # Recorded before the node parks: what a worker lost in between leaves in the log.
    types = [e["type"] for e in events]
    assert types.index(batch.SENT) < types.index("node_waiting")

    # Run again from its history (a takeover of a worker lost before the park was stored):
    # it parks on the batch it sent, and sends none.
    again = await flow_.run({"items": items}, events.append, options=options)
    assert again.status == "waiting"
    assert again.state["waiting"]["map"] == wait
    assert [r.method for r in fake_anthropic.batch_requests] == ["POST"]
    assert len(of_type(events, batch.SENT)) == 1

    result = await finish(fake_anthropic, flow_, again, events, options)
    assert result.status == "succeeded"
    assert result.outputs["results"] == [f"fake reply: Summarise {item}" for item in items]
    assert fake_anthropic.message_requests == []
    assert fold(events).final_states()["map"] == "done"


async def test_a_node_on_the_runs_lane_run_again_before_it_parked_sends_no_second_batch(
    fake_anthropic,
):
    doc = flow(
        node("q", "input", name="q"),
        node("ask", "llm", prompt="Name {{ q }}", model=MODEL, cache_ttl="off"),
        node("out", "output", name="a"),
        edges=[("q", "value", "ask", "q"), ("ask", "text", "out", "value")],
    )
    flow_ = compiled(doc, model_client=client_for(fake_anthropic))
    events: list[dict] = []
    options = RunOptions(history=EventHistory(events), latency="batch")
    first = await flow_.run({"q": "tides"}, events.append, options=options)
    again = await flow_.run({"q": "tides"}, events.append, options=options)
    assert first.status == again.status == "waiting"
    [sent] = of_type(events, batch.SENT)
    assert again.state["waiting"]["ask"]["batch_id"] == sent["batch_id"]
    assert [r.method for r in fake_anthropic.batch_requests] == ["POST"]
