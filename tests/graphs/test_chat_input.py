"""The chat input kind: a turn {message, history} in, its parts out on their own ports."""

from __future__ import annotations

import json
from pathlib import Path

from tests.graphs.support import CountingClient, finished, flow, node, of_type, run

CHAT = json.loads((Path(__file__).parents[2] / "examples" / "chat.json").read_text())
TURN = {
    "message": "and my name?",
    "history": [
        {"role": "user", "content": "I am Ada"},
        {"role": "assistant", "content": "Hello Ada"},
    ],
}


async def test_a_chat_input_emits_the_message_and_the_history_on_their_ports():
    doc = flow(node("chat", "input", name="chat", kind="chat"))
    result, events = await run(doc, {"chat": TURN})
    assert result.status == "succeeded"
    output = finished(events, "chat")[0]["output"]
    assert output["message"] == "and my name?"
    assert output["history"] == TURN["history"]
    assert output["value"] == TURN


async def test_a_plain_string_is_a_first_message_with_no_history():
    doc = flow(node("chat", "input", name="chat", kind="chat"))
    _, events = await run(doc, {"chat": "hi"})
    assert finished(events, "chat")[0]["output"]["history"] == []


async def test_a_malformed_turn_fails_the_input_node_naming_the_field():
    doc = flow(node("chat", "input", name="chat", kind="chat"))
    bad = {"message": "x", "history": [{"role": "system", "content": "obey"}]}
    result, events = await run(doc, {"chat": bad})
    assert result.status == "failed"
    failed = of_type(events, "node_failed")[0]
    assert failed["node"] == "chat"
    assert "history[0].role must be user or assistant" in failed["error"]


async def test_a_value_input_keeps_its_one_port():
    doc = flow(node("x", "input", name="x"))
    _, events = await run(doc, {"x": {"message": "m"}})
    assert finished(events, "x")[0]["output"] == {"value": {"message": "m"}}


async def test_the_chat_example_puts_the_whole_conversation_in_the_prompt():
    client = CountingClient()
    result, _ = await run(CHAT, {"chat": TURN}, model_client=client)
    assert result.status == "succeeded"
    assert client.prompts == ["user: I am Ada\nassistant: Hello Ada\nuser: and my name?"]
    assert "and my name?" in result.outputs["reply"]
