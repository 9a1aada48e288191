"""What the model-calling node types share: sampling and thinking settings, and answers in
a schema.

Sampling fields are declared once here and listed in each type's config, where they read in
the form's order. Unset, a setting is not sent and the API's default applies.

>>> from graphs.nodes import NODE_TYPES
>>> llm = NODE_TYPES["llm"]
>>> config = llm.Config.model_validate(
...     {"prompt": "Hi", "temperature": 0.2, "stop_sequences": ["END"]}
... )
>>> sampling(config)
{'temperature': 0.2, 'top_p': None, 'top_k': None, 'stop_sequences': ['END'], 'thinking': None}

Thinking (``thinking``: ``off``, ``enabled`` with a ``thinking_budget``, or ``adaptive``,
where the model decides how much to think) goes to the API as its ``thinking`` parameter.
The API takes it with neither temperature nor top_k, top_p only from 0.95, and a budget
of at least 1024 tokens that fits inside max_tokens; ``thinking_problems`` says so on the
field at fault before anything is sent:

>>> thinking = llm.Config.model_validate(
...     {"prompt": "Hi", "thinking": "enabled", "thinking_budget": 2048, "temperature": 0.5}
... )
>>> [(p.field, p.message) for p in llm.problems(thinking, None)]  # doctest: +NORMALIZE_WHITESPACE
[('thinking_budget', 'must be less than max_tokens (1024): thinking counts toward max_tokens;
  raise max_tokens or lower the budget'),
 ('temperature', 'thinking does not take a temperature: leave it empty')]
>>> thinking_param(thinking)
{'type': 'enabled', 'budget_tokens': 2048}
>>> llm.output_ports(llm.Config.model_validate({
...     "prompt": "Rate {{ text }}",
...     "output_schema": {"type": "object", "properties": {"score": {"type": "integer"}}},
...     "citations": False,
... })) == {"score", "value"}
True

With ``citations`` on (the default) the node also has a ``citations`` port: the list of
passages its reply cites from the documents it was sent ([] when none):

>>> sorted(llm.output_ports(llm.Config.model_validate({"prompt": "Hi"})))
['citations', 'text']
>>> off = llm.Config.model_validate({"prompt": "Hi", "citations": False})
>>> with_citations(off, {"text": "a"}, []), sorted(llm.output_ports(off))
({'text': 'a'}, ['text'])
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any, Literal, Protocol

from pydantic import AfterValidator, Field

from graphs import structured
from graphs.errors import NodeError
from graphs.llm import caching
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
ThinkingMode = Literal["off", "enabled", "adaptive"]
THINKING_HELP = (
    "Let the model think before it answers: enabled, up to a budget of tokens; adaptive, "
    "as much as the model sees fit (models that support it). Its thinking streams apart "
    "from the answer and is billed as output tokens. Thinking takes no temperature or top k."
)
THINKING: Any = Field(default="off", description=THINKING_HELP, json_schema_extra=ADVANCED)
# The API's floor for an enabled budget.
MIN_THINKING_BUDGET = 1024
THINKING_BUDGET = Field(
    default=None,
    ge=MIN_THINKING_BUDGET,
    le=127_999,
    title="Thinking budget",
    description="enabled: the most tokens the model may think for, at least 1024 and less "
    "than max_tokens (thinking counts toward it).",
    json_schema_extra={"advanced": True, "when": {"thinking": ["enabled"]}},
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


CacheTTL = Literal["off", "5m", "1h"]
CACHE_TTL: Any = Field(
    default="5m",
    title="Prompt cache",
    description="Cache the prompt's unchanging start (tools, system prompt, the prompt's text "
    "before its first variable, an agent's conversation so far) with the provider, for 5 "
    "minutes or 1 hour after its last use. Calls within that time read it at a tenth of the "
    "input price; writing it costs 1.25x input (2x for 1 hour). Only prefixes long enough "
    "for the model (about 1,024 tokens, 2,048-4,096 for some) are cached. off: never.",
    json_schema_extra=ADVANCED,
)


CITATIONS: Any = Field(
    default=True,
    description="When a file input is a document (PDF, text), ask the model to cite it: "
    "the passages it quotes come out on the port citations, a list of {text, cited_text, "
    "document_title, document_index, type, and where: start/end_char_index for text, "
    "start/end_page_number for a PDF} ([] when it cites nothing), and in the node's "
    "detail. Off: no such port.",
    json_schema_extra=ADVANCED,
)


class Sampled(Protocol):
    temperature: float | None
    top_p: float | None
    top_k: int | None
    stop_sequences: list[str]


class Thinks(Sampled, Protocol):
    thinking: ThinkingMode
    thinking_budget: int | None


class Shaped(Protocol):
    output_schema: dict[str, Any] | None


def sampling(config: Thinks) -> dict[str, Any]:
    """The config's sampling and thinking settings, as ``ModelRequest`` keywords."""
    return {
        "temperature": config.temperature,
        "top_p": config.top_p,
        "top_k": config.top_k,
        "stop_sequences": list(config.stop_sequences),
        "thinking": thinking_param(config),
    }


def cache_settings(
    config: Any, template: str, rendered: str, *, conversation: bool = False
) -> dict[str, Any]:
    """The config's prompt caching, as ``ModelRequest`` keywords: its lifetime, and how much
    of the rendered prompt is the template's own text before its first variable.

    >>> from graphs.nodes import NODE_TYPES
    >>> config = NODE_TYPES["llm"].Config.model_validate({"prompt": "Be brief. {{ q }}"})
    >>> cache_settings(config, config.prompt, "Be brief. why?")
    {'cache_ttl': '5m', 'cache_prefix': 10, 'cache_conversation': False}
    >>> cache_settings(config.model_copy(update={"cache_ttl": "off"}), "", "")["cache_ttl"]
    """
    ttl = getattr(config, "cache_ttl", "off")
    if ttl == "off":
        return {"cache_ttl": None, "cache_prefix": 0, "cache_conversation": False}
    return {
        "cache_ttl": ttl,
        "cache_prefix": caching.stable_prefix(template, rendered),
        "cache_conversation": conversation,
    }


def thinking_param(config: Thinks) -> dict[str, Any] | None:
    """The API's ``thinking`` parameter for the config; None when thinking is off."""
    if config.thinking == "enabled" and config.thinking_budget is not None:
        return {"type": "enabled", "budget_tokens": config.thinking_budget}
    if config.thinking == "adaptive":
        return {"type": "adaptive"}
    return None


def thinking_problems(config: Thinks, max_tokens: int | None) -> list[FieldProblem]:
    """What the API would refuse in this thinking set-up, on the field to change.

    ``max_tokens`` None: the node sizes its own (a router's choice).
    """
    if config.thinking == "off":
        return []
    found = []
    budget = config.thinking_budget
    if config.thinking == "enabled":
        if budget is None:
            found.append(
                FieldProblem(
                    "thinking_budget",
                    f"thinking enabled needs a budget: at least {MIN_THINKING_BUDGET} tokens, "
                    "less than max_tokens",
                )
            )
        elif max_tokens is not None and budget >= max_tokens:
            found.append(
                FieldProblem(
                    "thinking_budget",
                    f"must be less than max_tokens ({max_tokens}): thinking counts toward "
                    "max_tokens; raise max_tokens or lower the budget",
                )
            )
    if config.temperature is not None:
        found.append(
            FieldProblem("temperature", "thinking does not take a temperature: leave it empty")
        )
    if config.top_k is not None:
        found.append(FieldProblem("top_k", "thinking does not take top k: leave it empty"))
    if config.top_p is not None and config.top_p < 0.95:
        found.append(FieldProblem("top_p", "with thinking, top p must be from 0.95 to 1"))
    return found


def sampling_problems(config: Sampled) -> list[FieldProblem]:
    # Current models refuse both at once; older ones allowed it, to no one's benefit.
    if getattr(config, "thinking", "off") != "off":
        return []  # thinking_problems says what thinking allows of these
    if config.temperature is not None and config.top_p is not None:
        return [FieldProblem("top_p", "set temperature or top_p, not both")]
    return []


def schema_problems(config: Shaped) -> list[FieldProblem]:
    if config.output_schema is None:
        return []
    found = structured.schema_problems(config.output_schema)
    return [FieldProblem("output_schema", message) for message in found]


# The port a node with citations on carries its reply's cited passages on.
CITATIONS_PORT = "citations"


def output_ports(config: Shaped) -> frozenset[str]:
    if config.output_schema is None:
        ports = frozenset({"text"})
    else:
        ports = structured.ports(config.output_schema)
    if _cites(config) and CITATIONS_PORT not in ports:
        # An output schema's own "citations" property keeps the port: the passages
        # then stay in the detail only.
        ports |= {CITATIONS_PORT}
    return ports


def _cites(config: Any) -> bool:
    return bool(getattr(config, "citations", False))


def with_citations(
    config: Shaped, outputs: dict[str, Any], cited: list[dict[str, Any]]
) -> dict[str, Any]:
    """``outputs`` with the reply's cited passages on the citations port, when it has one."""
    if CITATIONS_PORT in outputs or not _cites(config):
        return outputs
    return {**outputs, CITATIONS_PORT: cited}


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
) -> tuple[dict[str, Any], ModelResponse]:
    """The ports of a reply fitting ``shape``, asking once more when the first does not fit;
    and the reply they come from."""
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
    return shape.outputs(shape.parse(response.text)), response


def _empty() -> list[dict[str, Any]]:
    # The API refuses an assistant turn with no content; say what it was.
    return [{"type": "text", "text": "(no reply)"}]
