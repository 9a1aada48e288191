"""What the model-calling node types share: sampling settings and answers in a schema.

Sampling fields are declared once here and listed in each type's config, where they read in
the form's order. Unset, a setting is not sent and the API's default applies.

>>> from graphs.nodes import NODE_TYPES
>>> llm = NODE_TYPES["llm"]
>>> config = llm.Config.model_validate(
...     {"prompt": "Hi", "temperature": 0.2, "stop_sequences": ["END"]}
... )
>>> sampling(config)
{'temperature': 0.2, 'top_p': None, 'top_k': None, 'stop_sequences': ['END']}
>>> llm.output_ports(llm.Config.model_validate({
...     "prompt": "Rate {{ text }}",
...     "output_schema": {"type": "object", "properties": {"score": {"type": "integer"}}},
... })) == {"score", "value"}
True
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any, Protocol

from pydantic import AfterValidator, Field

from graphs import structured
from graphs.errors import NodeError
from graphs.llm.types import ModelRequest, ModelResponse
from graphs.nodes.base import FieldProblem, NodeContext

# Sampling is for the few nodes that need it: a host shows it with the common keys.
ADVANCED: dict[str, Any] = {"advanced": True}
TEMPERATURE = Field(
    default=None,
    ge=0,
    le=1,
    description="Randomness, 0 to 1: lower for analysis and choices, higher for creative "
    "work. Empty: the API's default (1).",
    json_schema_extra=ADVANCED,
)
TOP_P = Field(
    default=None,
    ge=0,
    le=1,
    title="Top p",
    description="Nucleus sampling, 0 to 1: sample only from the likeliest tokens whose "
    "probabilities add up to this. Set it or temperature, not both.",
    json_schema_extra=ADVANCED,
)
TOP_K = Field(
    default=None,
    ge=1,
    le=1_000_000,
    title="Top k",
    description="Sample only from the k likeliest tokens. Rarely needed.",
    json_schema_extra=ADVANCED,
)


def _stop_sequences(stops: list[str]) -> list[str]:
    # The API refuses whitespace-only ones; its own message would not name the node.
    for stop in stops:
        if not stop.strip():
            raise ValueError("a stop sequence must contain something other than whitespace")
        if len(stop) > 1000:
            raise ValueError("a stop sequence is at most 1000 characters")
    return stops


# On the list, not its items: a host sees list[str] (one per line) with the check attached.
StopSequences = Annotated[list[str], AfterValidator(_stop_sequences)]
STOP_SEQUENCES: Any = Field(
    default_factory=list,
    max_length=16,
    description="One per line: the reply ends just before the first of these it writes.",
    json_schema_extra=ADVANCED,
)
OUTPUT_SCHEMA = Field(
    default=None,
    title="Output schema",
    description="A JSON Schema object the reply must fit, e.g. "
    '{"type": "object", "properties": {"verdict": {"enum": ["PASS", "FAIL"]}, '
    '"feedback": {"type": "string"}}, "required": ["verdict"]}. Each property becomes an '
    "output port, and value holds the whole object; a reply that does not fit is retried "
    "once, then the node fails. Empty: the reply is text, on the port text.",
    json_schema_extra={"widget": "schema", "rows": 10},
)


class Sampled(Protocol):
    temperature: float | None
    top_p: float | None
    top_k: int | None
    stop_sequences: list[str]


class Shaped(Protocol):
    output_schema: dict[str, Any] | None


def sampling(config: Sampled) -> dict[str, Any]:
    """The config's sampling settings, as ``ModelRequest`` keywords."""
    return {
        "temperature": config.temperature,
        "top_p": config.top_p,
        "top_k": config.top_k,
        "stop_sequences": list(config.stop_sequences),
    }


def sampling_problems(config: Sampled) -> list[FieldProblem]:
    # Current models refuse both at once; older ones allowed it, to no one's benefit.
    if config.temperature is not None and config.top_p is not None:
        return [FieldProblem("top_p", "set temperature or top_p, not both")]
    return []


def schema_problems(config: Shaped) -> list[FieldProblem]:
    if config.output_schema is None:
        return []
    found = structured.schema_problems(config.output_schema)
    return [FieldProblem("output_schema", message) for message in found]


def output_ports(config: Shaped) -> frozenset[str]:
    if config.output_schema is None:
        return frozenset({"text"})
    return structured.ports(config.output_schema)


def shape_of(config: Shaped) -> structured.Shape | None:
    """The compiled schema (``prepare`` builds it once per flow), or None for text replies."""
    return None if config.output_schema is None else structured.Shape(config.output_schema)


def mismatch(response: ModelResponse, max_tokens: int, shape: structured.Shape) -> str | None:
    """Why ``response`` does not fit ``shape``, or None when it does."""
    try:
        shape.parse(response.text)
    except structured.ReplyMismatch as exc:
        if response.stop_reason == "max_tokens":
            return f"the reply was cut off at max_tokens={max_tokens} ({exc})"
        if response.stop_reason == "refusal":
            return f"the model declined to answer ({exc})"
        if response.stop_reason == "stop_sequence":
            return f"a stop sequence ({response.stop_sequence!r}) cut the reply short ({exc})"
        return str(exc)
    return None


def correction(reason: str) -> dict[str, Any]:
    """The user turn that sends a reply that did not fit back to the model, once."""
    return {
        "role": "user",
        "content": f"Your reply did not fit the required JSON Schema: {reason}. "
        "Answer again with only the JSON value, fitting the schema.",
    }


def failed(reason: str) -> NodeError:
    return NodeError(
        f"the model's reply does not fit output_schema, also after one retry: {reason}"
    )


async def shaped_reply(
    ctx: NodeContext, request: ModelRequest, response: ModelResponse, shape: structured.Shape
) -> dict[str, Any]:
    """The ports of a reply fitting ``shape``, asking once more when the first does not fit."""
    reason = mismatch(response, request.max_tokens, shape)
    if reason is not None:
        ctx.detail["output_schema_retry"] = reason
        ctx.emit_text("\n")
        retry = replace(
            request,
            messages=[
                *request.messages,
                {"role": "assistant", "content": response.content or _empty()},
                correction(reason),
            ],
        )
        response = await ctx.call_model(retry)
        reason = mismatch(response, request.max_tokens, shape)
        if reason is not None:
            raise failed(reason)
    return shape.outputs(shape.parse(response.text))


def _empty() -> list[dict[str, Any]]:
    # The API refuses an assistant turn with no content; say what it was.
    return [{"type": "text", "text": "(no reply)"}]
