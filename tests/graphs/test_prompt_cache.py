"""Prompt caching against the fake Messages API: the exact cache_control breakpoints sent
(tools, system, a prompt's stable prefix, an agent's conversation), none where the prefix
is too short or caching is off, the cache figures in usage and events, the fake's checks
of cache_control, and warm-then-fan (one write, N-1 reads)."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest

from graphs.errors import ModelError
from graphs.llm.anthropic import AnthropicClient
from graphs.llm.types import ModelRequest
from graphs.warm import WarmGate
from tests.fakes.anthropic_server import FakeAnthropic
from tests.graphs.support import finished, flow, node, of_type, run

MODEL = "claude-sonnet-4-6"
# 4,800 characters (about 1,200 tokens by characters / 4): over the 1,024 of Sonnet.
RULES = "Follow the house rules. " * 200
RULES_WORDS = len(RULES.split())
# A map's item prompt: RULES + "Item {{ item }}", its prefix one word longer.
ITEM_PREFIX_WORDS = RULES_WORDS + 1
EPHEMERAL = {"type": "ephemeral"}


def client_for(server: FakeAnthropic) -> AnthropicClient:
    return AnthropicClient(anthropic.AsyncAnthropic(api_key="test-key", base_url=server.url))


def one_llm(prompt: str, **config: Any) -> dict:
    return flow(
        node("q", "input", name="q", default="tides"),
        node("ask", "llm", prompt=prompt, **{"model": MODEL, **config}),
        node("out", "output", name="answer"),
        edges=[("q", "value", "ask", "q"), ("ask", "text", "out", "value")],
    )


def markers(body: dict) -> list[tuple[str, dict]]:
    """Where a request's cache_control breakpoints are, in prompt order."""
    found = []
    for i, tool in enumerate(body.get("tools") or []):
        if "cache_control" in tool:
            found.append((f"tools.{i}", tool["cache_control"]))
    system = body.get("system")
    if isinstance(system, list):
        for i, block in enumerate(system):
            if "cache_control" in block:
                found.append((f"system.{i}", block["cache_control"]))
    for m, message in enumerate(body["messages"]):
        if isinstance(message["content"], list):
            for b, block in enumerate(message["content"]):
                if "cache_control" in block:
                    found.append((f"messages.{m}.content.{b}", block["cache_control"]))
    return found


async def test_a_long_stable_prefix_is_cached_in_a_block_of_its_own(fake_anthropic):
    doc = one_llm(RULES + "Question: {{ q }}")
    result, events = await run(doc, model_client=client_for(fake_anthropic))
    assert result.status == "succeeded"
    [sent] = fake_anthropic.message_requests
    assert markers(sent) == [("messages.0.content.0", EPHEMERAL)]
    head, rest = sent["messages"][0]["content"]
    # The template's text before its first variable, "Question: " included.
    assert head == {"type": "text", "text": RULES + "Question: ", "cache_control": EPHEMERAL}
    assert rest == {"type": "text", "text": "tides"}
    # The API's count: the prefix written, the rest of the prompt as input.
    [done] = finished(events, "ask")
    assert done["usage"]["cache_creation_input_tokens"] == RULES_WORDS + 1
    assert done["usage"]["input_tokens"] == 1
    assert "cache_read_input_tokens" not in done["usage"]
    # The next call with the same prefix reads it.
    _, again = await run(doc, {"q": "waves"}, model_client=client_for(fake_anthropic))
    [read] = finished(again, "ask")
    assert read["usage"]["cache_read_input_tokens"] == RULES_WORDS + 1
    assert "cache_creation_input_tokens" not in read["usage"]
    [run_end] = of_type(again, "run_finished")
    assert run_end["usage"]["cache_read_input_tokens"] == RULES_WORDS + 1


async def test_a_short_prefix_or_caching_off_sends_no_cache_control(fake_anthropic):
    client = client_for(fake_anthropic)
    await run(one_llm("Be brief. Question: {{ q }}"), model_client=client)
    await run(one_llm(RULES + "{{ q }}", cache_ttl="off"), model_client=client)
    # A prefix that is long but for a model whose minimum is higher (Haiku 4.5: 4,096).
    await run(one_llm(RULES + "{{ q }}", model="claude-haiku-4-5"), model_client=client)
    short, off, haiku = fake_anthropic.message_requests
    for sent in (short, off, haiku):
        assert markers(sent) == []
        assert isinstance(sent["messages"][0]["content"], str)
        assert "cache_creation_input_tokens" not in str(sent)


async def test_one_hour_ttl_and_a_long_system_prompt(fake_anthropic):
    doc = one_llm(RULES + "{{ q }}", system=RULES, cache_ttl="1h")
    _, events = await run(doc, model_client=client_for(fake_anthropic))
    [sent] = fake_anthropic.message_requests
    hour = {"type": "ephemeral", "ttl": "1h"}
    assert markers(sent) == [("system.0", hour), ("messages.0.content.0", hour)]
    assert sent["system"] == [{"type": "text", "text": RULES, "cache_control": hour}]
    [done] = finished(events, "ask")
    # Both breakpoints were written, for an hour.
    assert done["usage"]["cache_creation_input_tokens"] == 2 * RULES_WORDS
    assert done["usage"]["cache_creation_1h_input_tokens"] == 2 * RULES_WORDS


async def test_an_agent_caches_its_tools_and_its_growing_conversation(fake_anthropic):
    calculator = '#fake:tool=calculator {"expression": "17*23"}'
    doc = flow(
        node("q", "input", name="q", default="What is 17*23?"),
        node(
            "solve",
            "agent",
            prompt=RULES + "{{ q }}\n" + calculator,
            system=RULES,
            tools=["calculator"],
            model=MODEL,
        ),
        node("out", "output", name="answer"),
        edges=[("q", "value", "solve", "q"), ("solve", "text", "out", "value")],
    )
    result, events = await run(doc, model_client=client_for(fake_anthropic))
    assert result.status == "succeeded"
    first, second = fake_anthropic.message_requests
    # The tool list alone is short; the system prompt after it is long enough.
    assert markers(first) == [
        ("system.0", EPHEMERAL),
        ("messages.0.content.0", EPHEMERAL),
        ("messages.0.content.1", EPHEMERAL),
    ]
    # The second turn moves the conversation's breakpoint to its last message.
    assert markers(second) == [
        ("system.0", EPHEMERAL),
        ("messages.0.content.0", EPHEMERAL),
        ("messages.2.content.0", EPHEMERAL),
    ]
    assert second["messages"][2]["content"][0]["type"] == "tool_result"
    # So the second turn read everything the first wrote.
    [done] = finished(events, "solve")
    prompt_words = 2 * RULES_WORDS + 3 + len(calculator.split())  # "What is 17*23?"
    assert done["usage"]["cache_read_input_tokens"] == prompt_words
    assert done["usage"]["cache_creation_input_tokens"] > prompt_words


async def test_tools_long_enough_get_a_breakpoint_of_their_own(fake_anthropic):
    tools = [
        {"name": f"tool_{i}", "description": RULES, "input_schema": {"type": "object"}}
        for i in range(2)
    ]
    request = ModelRequest(MODEL, [{"role": "user", "content": "hi"}], tools=tools, cache_ttl="5m")
    await client_for(fake_anthropic).complete(request, lambda _t: None)
    [sent] = fake_anthropic.message_requests
    # On the first tool the prefix is long enough at, and on the last.
    assert markers(sent) == [("tools.1", EPHEMERAL)]
    assert "cache_control" not in sent["tools"][0]


@pytest.mark.parametrize(
    ("blocks", "field"),
    [
        ([{"type": "text", "text": "x", "cache_control": EPHEMERAL}] * 5, "cache_control:"),
        (
            [{"type": "text", "text": "x", "cache_control": {"type": "ephemeral", "ttl": "2h"}}],
            "messages.0.content.0.cache_control.ttl",
        ),
        (
            [
                {"type": "text", "text": "x", "cache_control": EPHEMERAL},
                {"type": "text", "text": "y", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
            ],
            "messages.0.content.1.cache_control.ttl",
        ),
        (
            [{"type": "text", "text": "x", "cache_control": {"type": "persistent"}}],
            "messages.0.content.0.cache_control.type",
        ),
    ],
)
async def test_the_fake_refuses_cache_control_the_api_refuses(fake_anthropic, blocks, field):
    request = ModelRequest(MODEL, [{"role": "user", "content": blocks}])
    with pytest.raises(ModelError) as failed:
        await client_for(fake_anthropic).complete(request, lambda _t: None)
    assert failed.value.status == 400
    assert field in str(failed.value)


def cached_map(items: int, concurrency: int) -> dict:
    each = flow(
        node("item", "input", name="item"),
        # The delay keeps the calls in flight together, as a real model's latency does.
        node("ask", "llm", prompt=RULES + "Item {{ item }}\n#fake:delay=0.3", model=MODEL),
        node("result", "output", name="result"),
        edges=[("item", "value", "ask", "item"), ("ask", "text", "result", "value")],
    )
    return flow(
        node("q", "input", name="q", default=[f"n{i}" for i in range(items)]),
        node("each", "map", concurrency=concurrency, flow=each),
        node("out", "output", name="answers"),
        edges=[("q", "value", "each", "items"), ("each", "results", "out", "value")],
    )


def item_usages(events: list[dict]) -> list[dict]:
    return [
        e["usage"] for e in events if e["type"] == "node_item" and e["event"] == "node_finished"
    ]


async def test_warm_then_fan_sends_one_cache_write_and_n_minus_one_reads(fake_anthropic):
    gate = WarmGate()
    result, events = await run(
        cached_map(6, concurrency=6), model_client=client_for(fake_anthropic), warm=gate
    )
    assert result.status == "succeeded"
    requests = fake_anthropic.message_requests
    assert len(requests) == 6
    # Every call marked the same prefix.
    assert all(markers(r) == [("messages.0.content.0", EPHEMERAL)] for r in requests)
    usages = item_usages(events)
    writes = [u for u in usages if u.get("cache_creation_input_tokens")]
    reads = [u for u in usages if u.get("cache_read_input_tokens")]
    assert len(writes) == 1 and writes[0]["cache_creation_input_tokens"] == ITEM_PREFIX_WORDS
    assert len(reads) == 5
    assert all(u["cache_read_input_tokens"] == ITEM_PREFIX_WORDS for u in reads)
    assert gate.leads == 1 and gate.waits == 5
    [done] = finished(events, "each")
    assert done["usage"]["cache_creation_input_tokens"] == ITEM_PREFIX_WORDS
    assert done["usage"]["cache_read_input_tokens"] == 5 * ITEM_PREFIX_WORDS


async def test_without_the_gate_calls_sent_together_all_write(fake_anthropic):
    doc = cached_map(4, concurrency=4)
    result, events = await run(doc, model_client=client_for(fake_anthropic))
    assert result.status == "succeeded"
    usages = item_usages(events)
    assert [u.get("cache_creation_input_tokens") for u in usages] == [ITEM_PREFIX_WORDS] * 4
    assert not any(u.get("cache_read_input_tokens") for u in usages)


async def test_a_leader_that_fails_hands_the_lead_on(fake_anthropic):
    # The first call fails (400) before any event: the next one leads, and the rest read.
    fake_anthropic.enqueue({"status": 400})
    gate = WarmGate()
    doc = cached_map(3, concurrency=3)
    doc["nodes"][1]["config"]["flow"]["nodes"][1]["config"]["retries"] = 0
    doc["nodes"][1]["config"]["flow"]["nodes"][1]["config"]["on_error"] = "continue"
    result, events = await run(doc, model_client=client_for(fake_anthropic), warm=gate)
    assert result.status == "succeeded"
    usages = item_usages(events)
    assert gate.leads == 2
    assert sum(1 for u in usages if u.get("cache_creation_input_tokens")) == 1
    assert sum(1 for u in usages if u.get("cache_read_input_tokens")) == 1


async def test_a_fan_out_of_model_nodes_sharing_a_prefix_warms_then_fans(fake_anthropic):
    # Three llm nodes ready at once whose prompts start with the same text: one writes it,
    # the two others wait for that and read it.
    asks = [
        node(
            f"ask{i}",
            "llm",
            prompt=RULES + "{{ q }}, from angle " + str(i) + "\n#fake:delay=0.3",
            model=MODEL,
        )
        for i in range(3)
    ]
    doc = flow(
        node("q", "input", name="q", default="tides"),
        *asks,
        node("join", "merge"),
        node("out", "output", name="answer"),
        edges=[
            *[("q", "value", f"ask{i}", "q") for i in range(3)],
            *[(f"ask{i}", "text", "join", f"a{i}") for i in range(3)],
            ("join", "value", "out", "value"),
        ],
    )
    gate = WarmGate()
    result, events = await run(doc, model_client=client_for(fake_anthropic), warm=gate)
    assert result.status == "succeeded"
    usages = [finished(events, f"ask{i}")[0]["usage"] for i in range(3)]
    assert gate.leads == 1 and gate.waits == 2
    assert sorted(u.get("cache_creation_input_tokens", 0) for u in usages) == [0, 0, RULES_WORDS]
    assert sorted(u.get("cache_read_input_tokens", 0) for u in usages) == [
        0,
        RULES_WORDS,
        RULES_WORDS,
    ]
