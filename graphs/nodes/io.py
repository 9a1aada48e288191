"""The flow's boundary: ``input`` emits a run input, ``output`` collects a run output.

An input of kind ``chat`` makes the flow a chat flow. Its run input is one JSON value,
``{"message": "...", "history": [{"role": "user"|"assistant", "content": "..."}, ...]}``
(the conversation so far, oldest first, without the new message); a plain string is a
first message with no history. It emits the message on port ``message``, the history on
``history`` and the whole value on ``value``, so a prompt can render the conversation:

>>> import asyncio
>>> node, config = InputNode(), InputConfig(name="chat", kind="chat")
>>> sorted(node.output_ports(config))
['history', 'message', 'value']
>>> turn = {"message": "and 3?", "history": [{"role": "user", "content": "2?"},
...         {"role": "assistant", "content": "two"}]}
>>> out = chat_value(turn)
>>> out["message"], [m["role"] for m in out["history"]]
('and 3?', ['user', 'assistant'])
>>> chat_value("hello")
{'message': 'hello', 'history': []}
>>> chat_value({"message": "hi", "history": [{"role": "system", "content": "x"}]})
Traceback (most recent call last):
...
ValueError: chat input: history[0].role must be user or assistant
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from graphs import files
from graphs.nodes.base import CommonConfig, NodeContext, NodeType

CHAT_ROLES = ("user", "assistant")


def _name(help_text: str) -> Any:
    return Field(
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description=help_text,
        json_schema_extra={"widget": "code"},
    )


class InputConfig(CommonConfig):
    name: str = _name("The run input this node reads: letters, digits and _.")
    default: Any = Field(
        default=None,
        description="Used when a run gives no value. JSON; plain text is taken as a string.",
    )
    kind: Literal["value", "chat", "file"] = Field(
        default="value",
        description="chat: the value is a chat turn {message, history}; the node emits the "
        "message on `message` and the conversation so far on `history` (a list of "
        "{role, content}), which makes the flow a chat flow whose output is the reply. "
        "file: the run form asks for a file (an image, a PDF or text); a prompt variable "
        "fed by it sends the file to the model.",
    )


def chat_value(value: Any) -> dict[str, Any]:
    """A chat turn as the node emits it; ValueError names what is wrong with it."""
    if isinstance(value, str):
        return {"message": value, "history": []}
    if not isinstance(value, dict):
        raise ValueError("chat input: expected {message, history} or a string")
    message = value.get("message")
    if not isinstance(message, str):
        raise ValueError("chat input: message must be a string")
    history = value.get("history", [])
    if not isinstance(history, list):
        raise ValueError("chat input: history must be a list of {role, content}")
    turns = []
    for i, turn in enumerate(history):
        if not isinstance(turn, dict) or turn.get("role") not in CHAT_ROLES:
            raise ValueError(f"chat input: history[{i}].role must be user or assistant")
        if not isinstance(turn.get("content"), str):
            raise ValueError(f"chat input: history[{i}].content must be a string")
        turns.append({"role": turn["role"], "content": turn["content"]})
    return {"message": message, "history": turns}


class InputNode(NodeType):
    name = "input"
    label = "Input"
    description = (
        "Emits the run input of this name on port `value`; of kind chat, also the user's "
        "`message` and the conversation's `history`."
    )
    category = "io"
    Config = InputConfig
    default_config = {"name": "input"}
    # No model call, no I/O, no wait: a slot would only cost it a round trip on the celery
    # driver (and a provider slot some model call is waiting for).
    holds_slot = False
    instant = True

    def output_ports(self, config: InputConfig) -> frozenset[str]:
        if config.kind == "chat":
            return frozenset({"value", "message", "history"})
        return frozenset({"value"})

    async def run(self, ctx: NodeContext, config: InputConfig, inputs: dict) -> dict:
        value = ctx.run_inputs[config.name]
        if config.kind == "chat":
            turn = chat_value(value)
            return {"value": turn, **turn}
        if config.kind == "file" and value is not None and not files.is_ref(value):
            raise ValueError(f"input {config.name!r} takes a file: start the run with one")
        return {"value": value}


class OutputConfig(CommonConfig):
    name: str = _name("The run output this node writes: letters, digits and _.")


class OutputNode(NodeType):
    name = "output"
    label = "Output"
    description = "Its port `value` becomes the run output of this name."
    category = "io"
    Config = OutputConfig
    default_config = {"name": "output"}
    holds_slot = False  # as the input's
    instant = True

    def input_ports(self, config: OutputConfig) -> frozenset[str]:
        return frozenset({"value"})

    async def run(self, ctx: NodeContext, config: OutputConfig, inputs: dict) -> dict:
        # The executor reads outputs from node_finished; this port is not wired further.
        return {"value": inputs["value"]}
