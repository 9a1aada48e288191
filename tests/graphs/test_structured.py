"""Structured output and sampling on llm, agent and router: the engine, offline and on the SDK.

The SDK path runs the real ``anthropic`` client against the fake Messages API
(``anthropic_env``), and checks the whole request body it sends.
"""

from __future__ import annotations

import anthropic
import pytest

from graphs.cache import MemoryCache
from graphs.errors import FlowInvalid
from graphs.llm.anthropic import AnthropicClient
from graphs.runner import RunOptions
from tests.fakes.anthropic_server import FakeResponse
from tests.graphs.support import (
    CountingClient,
    compiled,
    finished,
    flow,
    node,
    of_type,
    run,
    run_with,
)

TEXT = {"type": "string"}
VERDICT = {
    "type": "object",
    "properties": {
        "verdict": {"enum": ["PASS", "FAIL"], "description": "PASS when the joke is funny."},
        "feedback": {"type": "string"},
        "score": {"type": "integer", "minimum": 0, "maximum": 10},
    },
    "required": ["verdict", "feedback"],
}


def judge(node_type: str = "llm", **config) -> dict:
    """input q -> judge (structured) -> outputs verdict, feedback and the whole value."""
    config = {"prompt": "Judge: {{ q }}", "output_schema": VERDICT} | config
    return flow(
        node("q", "input", name="q"),
        node("judge", node_type, **config),
        node("v", "output", name="verdict"),
        node("f", "output", name="feedback"),
        node("all", "output", name="all"),
        edges=[
            ("q", "value", "judge", "q"),
            ("judge", "verdict", "v", "value"),
            ("judge", "feedback", "f", "value"),
            ("judge", "value", "all", "value"),
        ],
    )


def problems_of(doc: dict) -> list[str]:
    with pytest.raises(FlowInvalid) as info:
        compiled(doc)
    return [str(p) for p in info.value.problems]


async def real(doc: dict, inputs: dict, **overrides):
    return await run(doc, inputs, model_client=AnthropicClient(), **overrides)


# --- the engine, on the offline model --------------------------------------------------------


async def test_each_property_gets_a_port_and_value_holds_the_whole_object_offline():
    result, _ = await run(judge(), {"q": "a joke that did not FAIL"})
    assert result.status == "succeeded", result.error
    value = result.outputs["all"]
    assert result.outputs["verdict"] == value["verdict"] == "FAIL"  # enum picked by overlap
    assert result.outputs["feedback"] == value["feedback"] == "[offline model]"
    assert value["score"] == 0


async def test_an_offline_agent_calls_its_tool_then_answers_in_the_schema():
    schema = {"type": "object", "properties": {"answer": {"type": "number"}}}
    doc = flow(
        node("ask", "agent", prompt="What is 17*23?", tools=["calculator"], output_schema=schema),
        node("out", "output", name="answer"),
        edges=[("ask", "answer", "out", "value")],
    )
    result, events = await run(doc)
    assert result.outputs == {"answer": 0}  # offline: it fits, it does not think
    assert finished(events, "ask")[0]["detail"]["turns"] == 2  # the calculator ran first


def test_a_structured_node_has_no_text_port():
    doc = judge()
    doc["edges"].append(
        {"source": "judge", "target": "all", "source_port": "text", "target_port": "value"}
    )
    assert any("text" in p and "judge" in p for p in problems_of(doc))


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ({"type": "string"}, 'must be an object schema ("type": "object")'),
        ({"type": "object"}, "needs at least one property"),
        ({"type": "object", "properties": {"value": TEXT}}, "property 'value' is taken"),
        ({"type": "object", "properties": {"error": TEXT}}, "property 'error' is taken"),
        ({"type": "object", "properties": {"two words": TEXT}}, "cannot name a port"),
        (
            {"type": "object", "properties": {"a": {"type": "array", "items": {"minimum": 1}}}},
            "property 'a[]' needs a type (or enum, const, anyOf)",
        ),
        ({"type": "strng"}, "not a valid JSON Schema"),
        (
            {"type": "object", "properties": {"a": {"type": "string", "pattern": "(?=a)b"}}},
            "not a valid JSON Schema",
        ),
        ({"$ref": "https://example.com/schema.json"}, "not a valid JSON Schema"),
    ],
)
def test_a_bad_output_schema_is_refused_naming_the_node_and_field(schema, expected):
    doc = flow(node("ask", "llm", prompt="x", output_schema=schema))
    found = problems_of(doc)
    assert len(found) == 1
    assert found[0].startswith("node 'ask': ") and expected in found[0]


@pytest.mark.parametrize("node_type", ["llm", "agent"])
@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"temperature": 1.5}, "temperature"),
        ({"top_p": -0.1}, "top_p"),
        ({"top_k": 0}, "top_k"),
        ({"stop_sequences": ["  "]}, "stop_sequences"),
        ({"temperature": 0.2, "top_p": 0.9}, "set temperature or top_p, not both"),
    ],
)
def test_sampling_settings_out_of_range_are_refused_naming_the_field(node_type, config, expected):
    found = problems_of(flow(node("ask", node_type, prompt="x", **config)))
    assert len(found) == 1 and found[0].startswith("node 'ask'") and expected in found[0]


def test_router_takes_sampling_settings_and_refuses_bad_ones():
    def router(**config) -> dict:
        return flow(
            node("q", "input", name="q"),
            node("r", "router", mode="llm", routes=["a", "b"], **config),
            node("a", "output", name="a"),
            node("b", "output", name="b"),
            edges=[
                ("q", "value", "r", "input"),
                ("r", "a", "a", "value"),
                ("r", "b", "b", "value"),
            ],
        )

    compiled(router(temperature=0, top_k=5, stop_sequences=["\n\nUser:"]))
    assert "temperature" in problems_of(router(temperature=2))[0]


async def test_the_output_schema_and_sampling_settings_are_part_of_the_cache_key():
    client = CountingClient()
    options = RunOptions(cache=MemoryCache())

    async def once(**config) -> None:
        await run_with(compiled(judge(**config), model_client=client), {"q": "hi"}, options)

    await once()
    await once(retries=4)  # executor-only: the same execution
    assert len(client.prompts) == 1
    await once(temperature=0.0)
    await once(temperature=0.0, top_k=3)
    await once(temperature=0.0, top_k=3, stop_sequences=["END"])
    await once(top_p=0.5)
    schema = {**VERDICT, "required": ["verdict"]}
    await once(output_schema=schema)
    assert len(client.prompts) == 6
    await once(output_schema=schema)
    assert len(client.prompts) == 6


async def test_a_cache_hit_restores_every_property_port():
    cache = MemoryCache()
    flow_ = compiled(judge(), model_client=CountingClient())
    first, _ = await run_with(flow_, {"q": "PASS"}, RunOptions(cache=cache))
    second, events = await run_with(flow_, {"q": "PASS"}, RunOptions(cache=cache))
    assert finished(events, "judge")[0].get("cached")
    assert second.outputs == first.outputs and second.outputs["verdict"] == "PASS"


# --- the real SDK against the fake Messages API ---------------------------------------------


async def test_the_sdk_sends_the_schema_as_output_config_and_the_sampling_settings(
    anthropic_env,
):
    doc = judge(
        model="claude-test",
        system="You judge jokes.",
        max_tokens=300,
        temperature=0.25,
        top_k=40,
        stop_sequences=["END"],
    )
    anthropic_env.enqueue(FakeResponse(text='{"verdict": "PASS", "feedback": "ok", "score": 8}'))
    result, _ = await real(doc, {"q": "knock knock"})
    assert result.status == "succeeded", result.error
    assert result.outputs == {
        "verdict": "PASS",
        "feedback": "ok",
        "all": {"verdict": "PASS", "feedback": "ok", "score": 8},
    }
    [sent] = anthropic_env.message_requests
    assert sent == {
        "model": "claude-test",
        "max_tokens": 300,
        "messages": [{"role": "user", "content": "Judge: knock knock"}],
        "system": "You judge jokes.",
        "temperature": 0.25,
        "top_k": 40,
        "stop_sequences": ["END"],
        "output_config": {
            "format": {
                "type": "json_schema",
                # What the API constrains: closed objects; the rest moves to descriptions
                # (and is still checked here, on the reply).
                "schema": {
                    "type": "object",
                    "properties": {
                        "verdict": {
                            "enum": ["PASS", "FAIL"],
                            "description": "PASS when the joke is funny.",
                        },
                        "feedback": {"type": "string"},
                        "score": {
                            "type": "integer",
                            "description": "{minimum: 0, maximum: 10}",
                        },
                    },
                    "additionalProperties": False,
                    "required": ["verdict", "feedback"],
                },
            }
        },
        "stream": True,
    }
    assert sent["output_config"]["format"]["schema"] == anthropic.transform_schema(VERDICT)


async def test_an_optional_property_the_reply_leaves_out_goes_out_as_null(anthropic_env):
    doc = judge()
    doc["nodes"].append({"id": "s", "type": "output", "config": {"name": "score"}})
    doc["edges"].append(
        {"source": "judge", "target": "s", "source_port": "score", "target_port": "value"}
    )
    anthropic_env.enqueue(FakeResponse(text='{"verdict": "PASS", "feedback": "ok"}'))
    result, _ = await real(doc, {"q": "x"})
    assert result.outputs["score"] is None
    assert result.outputs["all"] == {"verdict": "PASS", "feedback": "ok"}


async def test_unset_sampling_settings_are_not_sent(anthropic_env):
    await real(judge(), {"q": "x"})
    sent = anthropic_env.message_requests[0]
    assert not {"temperature", "top_p", "top_k", "stop_sequences", "tool_choice"} & set(sent)


async def test_the_fake_made_up_reply_fits_the_schema_end_to_end(anthropic_env):
    result, _ = await real(judge(), {"q": "x"})
    assert result.status == "succeeded", result.error
    assert result.outputs["verdict"] == "PASS" and result.outputs["feedback"] == "fake"


async def test_a_reply_that_does_not_fit_is_sent_back_once_with_the_reason(anthropic_env):
    bad = '{"verdict": "MAYBE", "feedback": "meh", "score": 11}'
    good = '{"verdict": "FAIL", "feedback": "not funny"}'
    anthropic_env.enqueue(FakeResponse(text=bad), FakeResponse(text=good))
    result, events = await real(judge(), {"q": "x"})
    assert result.outputs["all"] == {"verdict": "FAIL", "feedback": "not funny"}
    first, second = anthropic_env.message_requests
    assert second["messages"][:2] == [
        first["messages"][0],
        {"role": "assistant", "content": [{"type": "text", "text": bad}]},
    ]
    correction = second["messages"][2]["content"]
    assert correction.startswith("Your reply did not fit the required JSON Schema: ")
    assert 'at verdict: "MAYBE" is not one of "PASS" or "FAIL"' in correction
    assert "at score: 11 is greater than the maximum of 10" in correction
    [done] = finished(events, "judge")
    assert "MAYBE" in done["detail"]["output_schema_retry"]
    assert done["usage"]["input_tokens"] > 0  # both calls counted on the one node


async def test_a_reply_that_never_fits_fails_the_node_with_a_clear_error(anthropic_env):
    anthropic_env.enqueue(FakeResponse(text="I think it PASSes."), FakeResponse(text="{}"))
    result, _ = await real(judge(retries=0), {"q": "x"})
    assert result.status == "failed" and result.failed_node == "judge"
    assert result.error == (
        "node 'judge' failed: the model's reply does not fit output_schema, also after one "
        'retry: "verdict" is a required property; "feedback" is a required property'
    )
    assert len(anthropic_env.message_requests) == 2


async def test_a_reply_that_is_not_json_says_so(anthropic_env):
    anthropic_env.enqueue(FakeResponse(text="PASS"), FakeResponse(text="still PASS"))
    result, _ = await real(judge(retries=0), {"q": "x"})
    assert "the reply is not JSON" in result.error


async def test_agent_uses_its_tools_then_answers_in_the_schema(anthropic_env):
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "number"}, "working": {"type": "string"}},
        "required": ["answer"],
    }
    doc = flow(
        node(
            "ask",
            "agent",
            prompt="What is 17*23?",
            tools=["calculator"],
            output_schema=schema,
            temperature=0,
        ),
        node("out", "output", name="answer"),
        edges=[("ask", "answer", "out", "value")],
    )
    anthropic_env.enqueue(
        FakeResponse(tool_uses=[("calculator", {"expression": "17*23"})]),
        FakeResponse(text='{"answer": 391, "working": "17*23"}'),
    )
    result, _ = await real(doc, {})
    assert result.outputs == {"answer": 391}
    first, second = anthropic_env.message_requests
    for sent in (first, second):
        assert sent["output_config"]["format"]["schema"]["required"] == ["answer"]
        assert sent["tools"][0]["name"] == "calculator" and sent["temperature"] == 0
    assert second["messages"][2]["content"][0]["type"] == "tool_result"


async def test_agent_final_answer_that_does_not_fit_gets_one_more_turn(anthropic_env):
    schema = {"type": "object", "properties": {"answer": {"type": "number"}}}
    doc = flow(
        node("ask", "agent", prompt="2+2?", tools=[], output_schema=schema),
        node("out", "output", name="answer"),
        edges=[("ask", "answer", "out", "value")],
    )
    anthropic_env.enqueue(FakeResponse(text='{"answer": "four"}'), FakeResponse(text="four"))
    result, _ = await real(doc, {})
    assert result.status == "failed"
    assert "the model's reply does not fit output_schema, also after one retry" in result.error
    assert "the reply is not JSON" in result.error
    assert len(anthropic_env.message_requests) == 2
    correction = anthropic_env.message_requests[1]["messages"][-1]["content"]
    assert 'at answer: "four" is not of type "number"' in correction


async def test_router_in_llm_mode_sends_its_sampling_settings(anthropic_env):
    doc = flow(
        node("q", "input", name="q"),
        node(
            "r",
            "router",
            mode="llm",
            routes=["code", "docs"],
            temperature=0,
            top_p=None,
            stop_sequences=["\nUser:"],
            prompt='{{ input }} #fake:tool=choose_route {"route": "docs"}',
        ),
        node("c", "output", name="code"),
        node("d", "output", name="docs"),
        edges=[
            ("q", "value", "r", "input"),
            ("r", "code", "c", "value"),
            ("r", "docs", "d", "value"),
        ],
    )
    result, _ = await real(doc, {"q": "manual?"})
    assert result.outputs == {"docs": "manual?"}
    sent = anthropic_env.message_requests[0]
    assert sent["temperature"] == 0 and sent["stop_sequences"] == ["\nUser:"]
    assert "top_p" not in sent


async def test_a_stop_sequence_ends_the_text_reply(anthropic_env):
    doc = flow(
        node("ask", "llm", prompt="#fake:reply=one two END three", stop_sequences=["END"]),
        node("out", "output", name="a"),
        edges=[("ask", "text", "out", "value")],
    )
    result, events = await real(doc, {})
    assert result.outputs == {"a": "one two "}
    assert "".join(e["text"] for e in of_type(events, "node_delta")) == "one two "


async def test_a_reply_cut_by_a_stop_sequence_says_so(anthropic_env):
    reply = '{"verdict": "PASS", "feedback": "the END"}'
    anthropic_env.enqueue(FakeResponse(text=reply), FakeResponse(text=reply))
    result, _ = await real(judge(retries=0, stop_sequences=["END"]), {"q": "x"})
    assert result.status == "failed"
    assert "a stop sequence ('END') cut the reply short (the reply is not JSON" in result.error
