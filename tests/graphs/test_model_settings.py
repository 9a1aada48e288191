"""The model seam's request settings (tool_choice, output_schema, sampling, stop sequences):
the real SDK against the fake Messages API, and the offline model."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import pytest

from graphs import structured
from graphs.errors import ModelError
from graphs.llm.anthropic import AnthropicClient
from graphs.llm.offline import OfflineClient
from graphs.llm.types import ModelRequest
from tests.fakes.anthropic_server import FakeAnthropic

MODEL = "claude-sonnet-4-6"
ROUTE_TOOL = {
    "name": "choose_route",
    "description": "Choose where the message goes.",
    "input_schema": {
        "type": "object",
        "properties": {
            "route": {"enum": ["story", "joke", "poem"]},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            "reason": {"type": "string", "maxLength": 40},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
        },
        "required": ["route", "confidence", "reason", "tags"],
    },
}
FORCED = {"type": "tool", "name": "choose_route"}


def client_for(server: FakeAnthropic) -> AnthropicClient:
    return AnthropicClient(anthropic.AsyncAnthropic(api_key="test-key", base_url=server.url))


def ask(text: str, **kwargs: Any) -> ModelRequest:
    return ModelRequest(model=MODEL, messages=[{"role": "user", "content": text}], **kwargs)


async def test_a_forced_tool_is_sent_and_answered_with_that_tool(fake_anthropic):
    request = ask(
        '#fake:tool=choose_route {"route": "joke", "confidence": 0.9, "reason": "r", "tags": []}',
        tools=[ROUTE_TOOL],
        tool_choice=FORCED,
    )
    response = await client_for(fake_anthropic).complete(request, lambda _t: None)
    assert response.stop_reason == "tool_use"
    [use] = response.tool_uses
    assert use["name"] == "choose_route" and use["input"]["route"] == "joke"
    [sent] = fake_anthropic.message_requests
    assert sent == {
        "model": MODEL,
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": request.messages[0]["content"]}],
        "tools": [ROUTE_TOOL],
        "tool_choice": FORCED,
        "stream": True,
    }


async def test_an_unscripted_forced_tool_gets_input_made_up_from_its_schema(fake_anthropic):
    response = await client_for(fake_anthropic).complete(
        ask("which?", tools=[ROUTE_TOOL], tool_choice=FORCED), lambda _t: None
    )
    assert response.tool_uses[0]["input"]["route"] == "story"


async def test_sampling_settings_go_in_the_body_as_the_api_names_them(fake_anthropic):
    await client_for(fake_anthropic).complete(
        ask("hi", temperature=0.0, top_p=0.5, top_k=7, stop_sequences=["END", "\nHuman:"]),
        lambda _t: None,
    )
    [sent] = fake_anthropic.message_requests
    assert {k: sent[k] for k in ("temperature", "top_p", "top_k", "stop_sequences")} == {
        "temperature": 0.0,
        "top_p": 0.5,
        "top_k": 7,
        "stop_sequences": ["END", "\nHuman:"],
    }


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"temperature": 1.5}, "temperature"),
        ({"top_k": -1}, "top_k"),
        ({"stop_sequences": [" "]}, "stop_sequences"),
        ({"tool_choice": {"type": "tool", "name": "nope"}, "tools": [ROUTE_TOOL]}, "tool_choice"),
        ({"tool_choice": {"type": "any"}}, "tool_choice"),
    ],
)
async def test_the_fake_refuses_what_the_api_refuses_and_the_error_names_the_field(
    fake_anthropic, settings, named
):
    with pytest.raises(ModelError) as info:
        await client_for(fake_anthropic).complete(ask("hi", **settings), lambda _t: None)
    assert info.value.status == 400 and not info.value.retryable
    assert named in str(info.value)


async def test_a_stop_sequence_ends_the_reply_and_is_reported(fake_anthropic):
    deltas: list[str] = []
    response = await client_for(fake_anthropic).complete(
        ask("#fake:reply=one two STOP three", stop_sequences=["STOP"]), deltas.append
    )
    assert response.text == "".join(deltas) == "one two "
    assert response.stop_reason == "stop_sequence" and response.stop_sequence == "STOP"


async def test_a_schema_the_api_cannot_take_fails_before_any_request(fake_anthropic):
    schema = {"type": "object", "properties": {"anything": {}}}
    with pytest.raises(ModelError) as info:
        await client_for(fake_anthropic).complete(ask("hi", output_schema=schema), print)
    assert "the output schema cannot be sent to the Anthropic API" in str(info.value)
    assert not info.value.retryable and fake_anthropic.message_requests == []


# --- the offline model ----------------------------------------------------------------------


async def test_offline_answers_a_forced_tool_with_an_object_that_fits_its_schema():
    request = ask("Once upon a time, a story", tools=[ROUTE_TOOL], tool_choice=FORCED)
    response = await OfflineClient().complete(request, lambda _t: None)
    [use] = response.tool_uses
    assert response.stop_reason == "tool_use" and use["name"] == "choose_route"
    shape = structured.Shape(ROUTE_TOOL["input_schema"])
    assert shape.parse(json.dumps(use["input"])) == use["input"]
    assert use["input"]["route"] == "story"  # the option sharing most words with the prompt
    assert use["input"]["reason"].startswith("[offline")  # it says it is offline
    again = await OfflineClient().complete(request, lambda _t: None)
    assert again.content == response.content  # deterministic, id included


async def test_offline_picks_the_enum_option_the_prompt_names():
    request = ask("write me a poem", tools=[ROUTE_TOOL], tool_choice=FORCED)
    response = await OfflineClient().complete(request, lambda _t: None)
    assert response.tool_uses[0]["input"]["route"] == "poem"


async def test_offline_answers_an_output_schema_with_json_that_fits_it():
    schema = {
        "type": "object",
        "properties": {
            "title": {"type": "string", "minLength": 20},
            "year": {"type": "integer", "exclusiveMinimum": 1999},
            "when": {"type": "string", "format": "date"},
            "draft": {"type": ["boolean", "null"]},
        },
        "required": ["title", "year"],
    }
    deltas: list[str] = []
    response = await OfflineClient().complete(ask("x", output_schema=schema), deltas.append)
    value = structured.Shape(schema).parse(response.text)
    assert "".join(deltas) == response.text
    assert value["title"].startswith("[offline model]") and len(value["title"]) >= 20
    assert value["year"] == 2000 and value["draft"] is True


async def test_offline_honours_stop_sequences():
    response = await OfflineClient().complete(
        ask("alpha beta gamma", stop_sequences=["beta"]), lambda _t: None
    )
    assert response.text.endswith("alpha ") and response.stop_sequence == "beta"
    assert response.stop_reason == "stop_sequence"


async def test_the_request_body_the_sdk_sends_byte_for_byte(fake_anthropic):
    request = ModelRequest(
        model="m",
        messages=[{"role": "user", "content": "Judge: x"}],
        max_tokens=300,
        system="S",
        output_schema={
            "type": "object",
            "properties": {"v": {"enum": ["A", "B"]}, "n": {"type": "integer", "minimum": 0}},
            "required": ["v"],
        },
        temperature=0.0,
        top_k=40,
        stop_sequences=["END"],
    )
    await client_for(fake_anthropic).complete(request, lambda _t: None)
    assert fake_anthropic.requests[-1].raw == (
        '{"max_tokens":300,"messages":[{"role":"user","content":"Judge: x"}],"model":"m",'
        '"output_config":{"format":{"type":"json_schema","schema":{"type":"object",'
        '"properties":{"v":{"enum":["A","B"]},"n":{"type":"integer",'
        '"description":"{minimum: 0}"}},"additionalProperties":false,"required":["v"]}}},'
        '"stop_sequences":["END"],"stream":true,"system":"S","temperature":0.0,"top_k":40}'
    )
