"""The node cache: identical executions are served from it, everything else runs."""

from __future__ import annotations

import asyncio
import logging

import pytest

from graphs import RunOptions
from graphs.cache import CachedOutput, MemoryCache, cache_key
from graphs.llm.anthropic import AnthropicClient
from graphs.nodes import NODE_TYPES
from graphs.settings import default_services
from tests.graphs.support import (
    CountingClient,
    Probe,
    compiled,
    finished,
    flow,
    node,
    of_type,
    run_with,
)
from tests.support.wait import wait_for_async


def ask(**config) -> dict:
    return flow(
        node("q", "input", name="q"),
        node("ask", "llm", prompt="Say {{ q }}", **config),
        node("out", "output", name="a"),
        edges=[("q", "value", "ask", "q"), ("ask", "text", "out", "value")],
    )


async def test_an_identical_execution_is_served_from_the_cache_without_a_model_call():
    client = CountingClient()
    flow_ = compiled(ask(), model_client=client)
    cache = MemoryCache(source="run 1")
    options = RunOptions(cache=cache)
    first, first_events = await run_with(flow_, {"q": "hi"}, options)
    assert len(client.prompts) == 1 and cache.puts == 1

    second, events = await run_with(flow_, {"q": "hi"}, options)
    assert len(client.prompts) == 1
    assert second.outputs == first.outputs
    original = finished(first_events, "ask")[0]
    [hit] = finished(events, "ask")
    assert hit["output"] == original["output"]
    assert hit["model"] == "offline" and hit["detail"] == original["detail"]
    assert hit["usage"] == {"input_tokens": 0, "output_tokens": 0}
    assert hit["cached"] == {"source": "run 1", "usage": original["usage"]}
    streamed = "".join(e["text"] for e in of_type(first_events, "node_delta"))
    [delta] = [e for e in of_type(events, "node_delta") if e["node"] == "ask"]
    assert delta["text"] == streamed == first.outputs["a"]
    node_events = [e["type"] for e in events if e.get("node") == "ask"]
    assert node_events == ["node_started", "node_delta", "node_finished"]
    assert events[-1]["usage"] == {"input_tokens": 0, "output_tokens": 0}
    assert events[-1]["usage_by_model"] == {}


async def test_a_changed_input_is_a_miss():
    client = CountingClient()
    flow_ = compiled(ask(), model_client=client)
    options = RunOptions(cache=MemoryCache())
    await run_with(flow_, {"q": "hi"}, options)
    _, events = await run_with(flow_, {"q": "hello"}, options)
    assert client.prompts == ["Say hi", "Say hello"]
    assert "cached" not in finished(events, "ask")[0]


async def test_a_changed_model_setting_is_a_miss_and_a_changed_retry_count_is_not():
    client = CountingClient()
    cache = MemoryCache()
    options = RunOptions(cache=cache)
    await run_with(compiled(ask(), model_client=client), {"q": "hi"}, options)
    await run_with(compiled(ask(retries=5), model_client=client), {"q": "hi"}, options)
    assert len(client.prompts) == 1
    await run_with(compiled(ask(model="claude-other"), model_client=client), {"q": "hi"}, options)
    await run_with(
        compiled(ask(), model_client=client, default_model="claude-other"), {"q": "hi"}, options
    )
    assert len(client.prompts) == 3


async def test_ignore_cache_runs_the_node_and_still_stores_the_fresh_result():
    client = CountingClient()
    flow_ = compiled(ask(), model_client=client)
    cache = MemoryCache()
    await run_with(flow_, {"q": "hi"}, RunOptions(cache=cache))
    _, events = await run_with(flow_, {"q": "hi"}, RunOptions(cache=cache, read_cache=False))
    assert len(client.prompts) == 2
    assert cache.gets == 1 and cache.puts == 2
    assert "cached" not in finished(events, "ask")[0]


async def test_a_node_with_its_cache_switched_off_always_runs_and_stores_nothing():
    client = CountingClient()
    flow_ = compiled(ask(cache=False), model_client=client)
    cache = MemoryCache()
    for _ in range(2):
        await run_with(flow_, {"q": "hi"}, RunOptions(cache=cache))
    assert len(client.prompts) == 2
    assert cache.gets == cache.puts == 0


async def test_a_node_type_off_by_default_can_be_switched_on():
    probe = Probe()
    doc = flow(node("s", "sleep", cache=True), node("t", "sleep"))
    flow_ = compiled(doc, probe)
    options = RunOptions(cache=MemoryCache())
    await run_with(flow_, options=options)
    _, events = await run_with(flow_, options=options)
    assert probe.calls == {"s": 1, "t": 2}
    assert "cached" in finished(events, "s")[0]


async def test_without_a_cache_in_the_options_nothing_is_looked_up():
    client = CountingClient()
    flow_ = compiled(ask(), model_client=client)
    await run_with(flow_, {"q": "hi"})
    await run_with(flow_, {"q": "hi"}, RunOptions())
    assert len(client.prompts) == 2


def agent(tools: list[str]) -> dict:
    return flow(
        node("q", "input", name="q"),
        node("calc", "agent", prompt="{{ q }}", tools=tools),
        node("out", "output", name="a"),
        edges=[("q", "value", "calc", "q"), ("calc", "text", "out", "value")],
    )


async def test_an_agent_with_deterministic_tools_is_cached():
    client = CountingClient()
    flow_ = compiled(agent(["calculator"]), model_client=client)
    options = RunOptions(cache=MemoryCache())
    first, _ = await run_with(flow_, {"q": "what is 6 * 7"}, options)
    second, events = await run_with(flow_, {"q": "what is 6 * 7"}, options)
    assert len(client.prompts) == 2  # both turns of the first run only
    assert second.outputs == first.outputs and "42" in first.outputs["a"]
    assert "cached" in finished(events, "calc")[0]


async def test_an_agent_with_a_non_deterministic_tool_is_not_cached():
    client = CountingClient()
    flow_ = compiled(agent(["calculator", "http_get"]), model_client=client)
    cache = MemoryCache()
    for _ in range(2):
        await run_with(flow_, {"q": "what is 6 * 7"}, RunOptions(cache=cache))
    assert len(client.prompts) == 4
    assert cache.puts == 0


async def test_failures_are_never_cached():
    probe = Probe()
    cache = MemoryCache()
    failing = flow(node("s", "sleep", cache=True, fail_times=1, retryable=False))
    result, _ = await run_with(compiled(failing, probe), options=RunOptions(cache=cache))
    assert result.status == "failed"
    continued = flow(node("s", "sleep", cache=True, fail_times=1, on_error="continue"))
    result, _ = await run_with(compiled(continued, probe), options=RunOptions(cache=cache))
    assert result.status == "succeeded"
    assert cache.puts == 0 and cache.entries == {}


async def test_only_the_text_of_the_attempt_that_succeeded_is_stored(anthropic_env):
    prompt = "{{ q }}\n#fake:break_after=2 #fake:times=1\n#fake:reply=one two three four five"
    flow_ = compiled(
        flow(
            node("q", "input", name="q"),
            node("ask", "llm", prompt=prompt),
            edges=[("q", "value", "ask", "q")],
        ),
        model_client=AnthropicClient(),
    )
    cache = MemoryCache()
    result, events = await run_with(flow_, {"q": "count"}, RunOptions(cache=cache))
    assert result.status == "succeeded" and of_type(events, "node_retrying")
    [entry] = cache.entries.values()
    assert entry.text == "one two three four five"
    assert entry.model == "claude-sonnet-4-6" and entry.usage.output_tokens == 5
    assert entry.detail["prompt"].startswith("count\n")


async def test_a_cache_lookup_does_not_hold_a_concurrency_slot():
    class SlowCache(MemoryCache):
        def __init__(self) -> None:
            super().__init__()
            self.release = asyncio.Event()

        async def get(self, key: str) -> CachedOutput | None:
            await self.release.wait()
            return await super().get(key)

    probe = Probe()
    doc = flow(node("cached", "sleep", cache=True), node("other", "sleep", seconds=0.01))
    cache = SlowCache()
    task = asyncio.ensure_future(
        compiled(doc, probe, max_concurrency=1).run({}, options=RunOptions(cache=cache))
    )
    await wait_for_async(lambda: "other" in probe.calls, interval=0.001, message="'other' to run")
    cache.release.set()
    result = await asyncio.wait_for(task, 2)
    assert result.status == "succeeded" and probe.calls == {"other": 1, "cached": 1}


async def test_a_failing_cache_is_a_miss_not_a_failed_node(caplog):
    class BrokenCache:
        async def get(self, key: str) -> CachedOutput | None:
            raise ConnectionError("cache down")

        async def put(self, key: str, node_type: str, entry: CachedOutput) -> None:
            raise ConnectionError("cache down")

    client = CountingClient()
    with caplog.at_level(logging.WARNING, logger="graphs.executor"):
        result, _ = await run_with(
            compiled(ask(), model_client=client), {"q": "hi"}, RunOptions(cache=BrokenCache())
        )
    assert result.status == "succeeded" and len(client.prompts) == 1
    assert "lookup failed" in caplog.text and "store failed" in caplog.text


async def test_map_items_share_the_run_cache():
    inner = flow(
        node("item", "input", name="item"),
        node("ask", "llm", prompt="Say {{ x }}"),
        node("out", "output", name="r"),
        edges=[("item", "value", "ask", "x"), ("ask", "text", "out", "value")],
    )
    doc = flow(
        node("items", "input", name="items"),
        node("each", "map", flow=inner),
        node("out", "output", name="results"),
        edges=[("items", "value", "each", "items"), ("each", "results", "out", "value")],
    )
    client = CountingClient()
    flow_ = compiled(doc, model_client=client)
    cache = MemoryCache()
    first, _ = await run_with(flow_, {"items": ["a", "b"]}, RunOptions(cache=cache))
    second, _events = await run_with(flow_, {"items": ["a", "b", "c"]}, RunOptions(cache=cache))
    assert sorted(client.prompts) == ["Say a", "Say b", "Say c"]
    assert second.outputs["results"][:2] == first.outputs["results"]
    assert cache.puts == 3


async def test_an_input_that_is_not_plain_json_is_not_cached():
    probe = Probe()
    doc = flow(
        node("q", "input", name="q"),
        node("s", "sleep", cache=True),
        edges=[("q", "value", "s", "value")],
    )
    cache = MemoryCache()
    for _ in range(2):
        result, _ = await run_with(
            compiled(doc, probe), {"q": float("nan")}, RunOptions(cache=cache)
        )
        assert result.status == "succeeded"
    assert probe.calls == {"s": 2} and cache.gets == cache.puts == 0


def key(**changes) -> str | None:
    fields = {
        "node_type": "llm",
        "version": 1,
        "config": {"prompt": "p", "max_tokens": 10},
        "default_model": "m",
        "inputs": {"x": [1, {"b": 2, "a": 1}]},
    }
    return cache_key(**(fields | changes))


def test_the_cache_key_covers_type_version_config_model_and_inputs_only():
    base = key()
    assert base == key(inputs={"x": [1, {"a": 1, "b": 2}]})  # key order does not matter
    assert base == key(config={"prompt": "p", "max_tokens": 10, "timeout_s": 5, "cache": True})
    different = [
        key(node_type="agent"),
        key(version=2),
        key(config={"prompt": "p", "max_tokens": 11}),
        key(default_model="n"),
        key(inputs={"x": [1]}),
        key(client="anthropic"),
    ]
    assert base not in different and len(set(different)) == len(different)
    assert key(inputs={"x": {1, 2}}) is None
    assert key(inputs={"x": "\ud800"}) is None


@pytest.mark.parametrize(
    ("type_name", "config", "expected"),
    [
        ("llm", {"prompt": "p"}, True),
        ("router", {"routes": ["a"], "mode": "llm"}, True),
        ("router", {"routes": ["a"], "default": "a"}, False),
        ("agent", {"prompt": "p", "tools": ["calculator"]}, True),
        ("agent", {"prompt": "p", "tools": ["calculator", "http_get"]}, False),
        ("template", {"template": "t"}, False),
        ("merge", {}, False),
        ("input", {"name": "x"}, False),
        ("map", {"flow": {}}, False),
        ("http", {"url": "https://example.com/"}, False),
    ],
)
def test_which_node_types_are_cached_by_default(type_name, config, expected):
    node_type = NODE_TYPES[type_name]
    parsed = node_type.Config.model_validate(config)
    assert node_type.cacheable(parsed, default_services()) is expected
