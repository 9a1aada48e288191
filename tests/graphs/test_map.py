"""map: shared context from its other ports, and its items' events in the run's one log."""

from __future__ import annotations

from typing import Any

from graphs import document
from graphs.llm.offline import OfflineClient
from graphs.llm.types import ModelRequest, ModelResponse
from graphs.log import fold
from graphs.validation import validate
from tests.graphs.support import flow, node, of_type, run, services


def each_item(*extra_inputs: str, template: str | None = None) -> dict:
    """An inline flow: item (and extra inputs) -> template -> output r."""
    names = ("item", *extra_inputs)
    template = template or " ".join(f"{{{{ {name} }}}}" for name in names)
    return flow(
        *[node(name, "input", name=name) for name in names],
        node("t", "template", template=template),
        node("r", "output", name="r"),
        edges=[(name, "value", "t", name) for name in names] + [("t", "text", "r", "value")],
    )


def mapped(inner: dict, *context: str, **map_config) -> dict:
    """items and each context name are run inputs wired into map `each`."""
    return flow(
        node("items", "input", name="items"),
        *[node(name, "input", name=name) for name in context],
        node("each", "map", flow=inner, **map_config),
        node("out", "output", name="results"),
        edges=[("items", "value", "each", "items")]
        + [(name, "value", "each", name) for name in context]
        + [("each", "results", "out", "value")],
    )


ZERO = {"input_tokens": 0, "output_tokens": 0}


def problems(doc: dict) -> list[str]:
    return [str(p) for p in validate(document.load(doc), services())]


def items_of(events: list[dict]) -> list[dict]:
    return of_type(events, "node_item")


# Shared context ------------------------------------------------------------------------


async def test_every_item_gets_the_maps_other_ports_as_inputs_of_the_same_name():
    inner = each_item("task", "tone", template="{{ tone }} {{ task }}: {{ item }}")
    doc = mapped(inner, "task", "tone")
    result, _ = await run(doc, {"items": ["a", "b", "c"], "task": "sort", "tone": "calm"})
    assert result.status == "succeeded", result.error
    assert result.outputs == {"results": ["calm sort: a", "calm sort: b", "calm sort: c"]}


async def test_shared_context_can_be_structured():
    inner = each_item("rules", template="{{ item }}={{ rules[item] }}")
    result, _ = await run(mapped(inner, "rules"), {"items": ["x", "y"], "rules": {"x": 1, "y": 2}})
    assert result.outputs == {"results": ["x=1", "y=2"]}


def test_a_map_offers_one_port_per_inline_input_besides_item():
    doc = mapped(each_item("task"), "task")
    assert problems(doc) == []


def test_an_inline_input_no_port_feeds_is_named_as_missing():
    doc = mapped(each_item("task", "tone"), "task")
    assert problems(doc) == [
        "node 'each': the inline flow's input 'tone' has no value: connect an edge into "
        "the map's port 'tone' (every item gets it)"
    ]


def test_an_edge_into_a_port_no_inline_input_reads_is_refused():
    doc = mapped(each_item(), "task")
    assert problems(doc) == [
        "edge 'task' -> 'each' (0): 'each' has no input port 'task' (it reads: items)"
    ]


def test_an_inline_input_named_items_is_refused_as_a_clash():
    found = problems(mapped(each_item("items")))
    assert any("inline flow input 'items' clashes with the map's list port" in p for p in found), (
        found
    )


# Item events -----------------------------------------------------------------------------


async def test_items_events_join_the_runs_log_numbered_without_gaps():
    result, events = await run(mapped(each_item()), {"items": ["a", "b"]})
    assert result.status == "succeeded"
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    forwarded = items_of(events)
    assert {(e["node"], e["iteration"]) for e in forwarded} == {("each", 1)}
    for index in (0, 1):
        own = [e for e in forwarded if e["item"] == index]
        assert own[0]["event"] == "run_started"
        assert own[-1] == {**own[-1], "event": "run_finished", "status": "succeeded"}
        assert {(e["event"], e.get("inner")) for e in own} >= {
            ("node_started", "t"),
            ("node_finished", "t"),
        }
    # Every item event comes before the map's own finish.
    map_finished = next(e for e in events if e["type"] == "node_finished" and e["node"] == "each")
    assert all(e["seq"] < map_finished["seq"] for e in forwarded)


async def test_item_events_carry_no_inputs_or_outputs():
    _, events = await run(mapped(each_item()), {"items": ["secret-ish"]})
    assert not any("inputs" in e or "output" in e or "outputs" in e for e in items_of(events))


class Streamer(OfflineClient):
    """The offline model, streaming its reply in 50 pieces at once, as a fast model might."""

    async def complete(self, request: ModelRequest, on_text: Any) -> ModelResponse:
        silent: list[str] = []
        response = await super().complete(request, silent.append)
        text = "".join(silent)
        step = max(1, len(text) // 50)
        for start in range(0, len(text), step):
            on_text(text[start : start + step])
        return response


async def test_an_items_streamed_text_arrives_as_coalesced_deltas_with_its_index():
    inner = flow(
        node("item", "input", name="item"),
        node("ask", "llm", prompt="Say {{ item }}"),
        node("r", "output", name="r"),
        edges=[("item", "value", "ask", "item"), ("ask", "text", "r", "value")],
    )
    result, events = await run(mapped(inner), {"items": ["one", "two"]}, model_client=Streamer())
    assert result.status == "succeeded", result.error
    for index, word in enumerate(["one", "two"]):
        deltas = [e for e in items_of(events) if e["item"] == index and e["event"] == "node_delta"]
        assert deltas and all(e["inner"] == "ask" for e in deltas)
        # 50 pieces streamed within the coalescing window arrive as one.
        assert len(deltas) == 1
        assert "".join(e["text"] for e in deltas) == result.outputs["results"][index]
        assert f"Say {word}" in result.outputs["results"][index]
        finished = next(
            e for e in items_of(events) if e["item"] == index and e["event"] == "node_finished"
        )
        assert finished["usage"]["output_tokens"] > 0


async def test_only_the_first_item_events_items_stream_the_rest_only_count():
    items = [f"w{i}" for i in range(30)]
    result, events = await run(mapped(each_item(), item_events=3), {"items": items})
    assert result.status == "succeeded"
    assert {e["item"] for e in items_of(events)} == {0, 1, 2}
    assert len(of_type(events, "node_progress")) == 31  # 0 of 30, then one per item


async def test_item_events_zero_streams_no_item_events():
    _, events = await run(mapped(each_item(), item_events=0), {"items": ["a", "b"]})
    assert items_of(events) == []


async def test_a_failing_items_error_reaches_the_log_under_its_index():
    inner = each_item(template="{{ item.missing }}")
    result, events = await run(mapped(inner), {"items": [{"missing": 1}, {}]})
    assert result.status == "failed"
    failed = [e for e in items_of(events) if e["event"] == "node_failed" and e["item"] == 1]
    assert failed and failed[0]["inner"] == "t" and failed[0]["error"]
    ended = [e for e in items_of(events) if e["event"] == "run_finished" and e["item"] == 1]
    assert ended[0]["status"] == "failed" and ended[0]["error"]


async def test_the_fold_shows_each_items_progress_and_text():
    _, events = await run(mapped(each_item()), {"items": ["a", "b"]})
    visit = fold(events).last_visit("each")
    assert visit is not None
    assert visit.items == {
        "0": {"status": "done", "node": "t", "text": "", "error": "", "usage": ZERO},
        "1": {"status": "done", "node": "t", "text": "", "error": "", "usage": ZERO},
    }


def test_a_retried_or_restarted_map_starts_its_items_afresh_in_the_fold():
    item = {"type": "node_item", "node": "m", "iteration": 1, "item": 0}
    log = fold(
        [
            {"type": "node_started", "node": "m"},
            {**item, "event": "node_delta", "inner": "ask", "text": "first try"},
            {"type": "node_retrying", "node": "m", "attempt": 1, "error": "x"},
        ]
    )
    assert log.last_visit("m").items is None
    log.apply({**item, "event": "node_delta", "inner": "ask", "text": "again"})
    assert log.last_visit("m").items["0"]["text"] == "again"
    log.apply({"type": "node_started", "node": "m"})  # a takeover runs it anew
    assert log.to_json()["nodes"]["m"][0]["items"] is None


# Maps in maps ------------------------------------------------------------------------------


def nested_maps(outer_events: int, inner_events: int) -> dict:
    """A map over lists whose inline flow maps each list's items through a template."""
    words = flow(
        node("item", "input", name="item"),
        node("deep", "map", flow=each_item(), concurrency=1, item_events=inner_events),
        node("r", "output", name="r"),
        edges=[("item", "value", "deep", "items"), ("deep", "results", "r", "value")],
    )
    return mapped(words, concurrency=1, item_events=outer_events)


async def test_an_inner_maps_items_are_forwarded_nested_in_the_outer_items_events():
    groups = [["a", "b", "c"], ["d", "e", "f"], ["g"]]
    result, events = await run(nested_maps(2, 2), {"items": groups})
    assert result.status == "succeeded", result.error
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    nested = [e for e in items_of(events) if e["event"] == "node_item"]
    assert {e["inner"] for e in nested} == {"deep"}
    # Only the first item_events items at each level stream: outer 0 and 1, inner 0 and 1.
    assert {(e["item"], e["nested"]["item"]) for e in nested} == {(0, 0), (0, 1), (1, 0), (1, 1)}
    one = [e["nested"] for e in nested if e["item"] == 1 and e["nested"]["item"] == 0]
    assert [(e["event"], e.get("inner")) for e in one] == [
        ("run_started", None),
        ("node_started", "t"),
        ("node_finished", "t"),
        ("run_finished", None),
    ]
    assert not any({"seq", "ts", "type", "node"} & set(e["nested"]) for e in nested)
    # The fold reads them into the outer item's maps.
    items = fold(events).last_visit("each").items
    assert sorted(items) == ["0", "1"]
    assert sorted(items["1"]["maps"]["deep"]) == ["0", "1"]
    assert items["1"]["maps"]["deep"]["1"]["status"] == "done"
    assert items["1"]["maps"]["deep"]["1"]["node"] == "t"


async def test_an_inner_map_with_item_events_zero_forwards_no_nested_events():
    _, events = await run(nested_maps(5, 0), {"items": [["a"], ["b"]]})
    assert not [e for e in items_of(events) if e["event"] == "node_item"]
    assert {e["item"] for e in items_of(events)} == {0, 1}


async def test_three_levels_nest_twice():
    deepest = flow(
        node("item", "input", name="item"),
        node("deeper", "map", flow=each_item(), concurrency=1),
        node("r", "output", name="r"),
        edges=[("item", "value", "deeper", "items"), ("deeper", "results", "r", "value")],
    )
    middle = flow(
        node("item", "input", name="item"),
        node("deep", "map", flow=deepest, concurrency=1),
        node("r", "output", name="r"),
        edges=[("item", "value", "deep", "items"), ("deep", "results", "r", "value")],
    )
    result, events = await run(mapped(middle), {"items": [[["x", "y"]]]})
    assert result.status == "succeeded", result.error
    twice = [
        e
        for e in items_of(events)
        if e["event"] == "node_item" and e["nested"]["event"] == "node_item"
    ]
    assert {(e["nested"]["inner"], e["nested"]["nested"]["item"]) for e in twice} == {
        ("deeper", 0),
        ("deeper", 1),
    }
    items = fold(events).last_visit("each").items
    assert items["0"]["maps"]["deep"]["0"]["maps"]["deeper"]["1"]["status"] == "done"
