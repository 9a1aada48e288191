"""``router``: passes its ``input`` on exactly one output port, named after the route chosen.

In ``match`` mode the first rule whose regex occurs in the input wins (``re.search``
semantics, matched by RE2 in linear time: see ``graphs.regex``); in ``condition`` mode the
first rule whose expression holds (``graphs.expressions``: Jinja2, in the templates'
sandbox) over the input and the node's other ports; in ``llm`` mode the model must call a
tool whose one argument is an ``enum`` of the route names (a forced choice: a reply that
merely mentions a route cannot be misread as choosing it). The API forces no tool while
the model thinks, so with ``thinking`` on the choice is a structured answer instead, JSON
whose one property ``route`` is that same ``enum``. Each falls back to ``default``.
A route with no edge leaving it ends that branch of the run.

A condition's names are the node's ports, as a template's variables are; ``input`` is
always one, and it is what goes down the route chosen:

>>> from graphs.nodes import NODE_TYPES
>>> router = NODE_TYPES["router"]
>>> config = router.Config.model_validate({
...     "routes": ["accept", "revise"], "mode": "condition", "default": "revise",
...     "conditions": [{"route": "accept", "expression": "verdict.score >= 7"}],
... })
>>> sorted(router.input_ports(config))
['input', 'verdict']

In ``llm`` mode the choice itself is a value too, on the port ``route``:

>>> sorted(router.output_ports(router.Config.model_validate(
...     {"routes": ["story", "joke"], "mode": "llm"}
... )))
['joke', 'route', 'story']
>>> choice_tool(["story", "joke"])["input_schema"]["properties"]["route"]["enum"]
['story', 'joke']
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from graphs import expressions, regex
from graphs.errors import NodeError
from graphs.llm.types import ModelRequest, ModelResponse
from graphs.nodes import modelcall
from graphs.nodes.base import (
    CommonConfig,
    FieldProblem,
    NodeContext,
    NodeType,
    Services,
    template_ports,
)

ROUTE_NAME = r"^[A-Za-z_][A-Za-z0-9_-]*$"
# llm mode: the tool the model is made to call, and the port that carries its choice.
CHOICE_TOOL = "choose_route"
CHOICE_PORT = "route"
DEFAULT_SYSTEM = (
    "You are a router. Read the user's message and choose the one route it belongs on, "
    f"by calling the {CHOICE_TOOL} tool."
)
# The tool call is a few tokens ({"route": "..."}); route names are at most 100 characters.
CHOICE_MAX_TOKENS = 256
# Adaptive thinking has no budget of its own: room for it, before the choice.
ADAPTIVE_THINKING_TOKENS = 16_000
# Matching is linear in the text and runs inline on the event loop: the cap bounds it.
MAX_MATCH_CHARS = 100_000


class Rule(BaseModel):
    """A ``match`` rule: its route is taken when the pattern occurs in the input."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    route: str = Field(title="Route")
    pattern: str = Field(
        min_length=1,
        max_length=1000,
        title="Pattern (regex)",
        json_schema_extra={"placeholder": "(?i)\\bcode\\b"},
    )

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        try:
            regex.compile(pattern)
        except regex.RegexProblem as exc:
            raise ValueError(str(exc)) from None
        return pattern


class Condition(BaseModel):
    """A ``condition`` rule: its route is taken when the expression holds.

    The expression is checked by the node's ``problems()``, which can name the rule's
    route; a field validator's message could not.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    route: str = Field(title="Route")
    expression: str = Field(
        min_length=1,
        max_length=expressions.MAX_EXPRESSION_CHARS,
        title="Expression",
        json_schema_extra={"placeholder": 'verdict == "PASS"'},
    )


class RouterConfig(CommonConfig):
    routes: list[str] = Field(
        min_length=1,
        max_length=100,
        description="One route per line; each becomes an output port.",
    )
    mode: Literal["llm", "match", "condition"] = Field(
        default="match",
        description="match: regex rules on the input; condition: expressions over the "
        "ports; llm: the model chooses.",
    )
    prompt: str | None = Field(
        default=None,
        max_length=1_000_000,
        description="llm mode: what the model reads to choose (default: the input).",
        json_schema_extra={"widget": "template", "rows": 8, "when": {"mode": ["llm"]}},
    )
    system: str | None = Field(
        default=None,
        max_length=1_000_000,
        description="llm mode: the system prompt, e.g. what each route is for (default: "
        "a router's instructions). The route names reach the model as the choices it has.",
        json_schema_extra={"widget": "template", "when": {"mode": ["llm"]}},
    )
    rules: list[Rule] = Field(
        default_factory=list,
        max_length=100,
        description="match mode: the first rule whose pattern occurs in the input wins.",
        json_schema_extra={"widget": "rows", "when": {"mode": ["match"]}},
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        max_length=100,
        description="condition mode: the first rule whose expression holds wins, e.g. "
        'verdict == "PASS", value.score >= 7, "code" in labels. Its names are the ports.',
        json_schema_extra={"widget": "rows", "when": {"mode": ["condition"]}},
    )
    default: str | None = Field(
        default=None, description="The route taken when nothing else chooses one."
    )
    model: str | None = Field(
        # llm's MODEL_NAME, shown only in llm mode.
        default=None,
        min_length=1,
        max_length=200,
        description="Empty: the server's default model.",
        json_schema_extra={"when": {"mode": ["llm"]}},
    )
    # llm mode's sampling; a choice among routes usually wants temperature 0.
    temperature: float | None = modelcall.TEMPERATURE
    top_p: float | None = modelcall.TOP_P
    top_k: int | None = modelcall.TOP_K
    stop_sequences: modelcall.StopSequences = modelcall.STOP_SEQUENCES
    thinking: modelcall.ThinkingMode = Field(
        default="off",
        description=modelcall.THINKING_HELP,
        json_schema_extra={"when": {"mode": ["llm"]}},
    )
    thinking_budget: int | None = modelcall.THINKING_BUDGET
    cache_ttl: modelcall.CacheTTL = Field(
        default="5m",
        title="Prompt cache",
        description=modelcall.CACHE_TTL.description,
        json_schema_extra={"advanced": True, "when": {"mode": ["llm"]}},
    )

    @field_validator("routes")
    @classmethod
    def _route_names(cls, routes: list[str]) -> list[str]:
        for route in routes:
            if not re.match(ROUTE_NAME, route) or len(route) > 100:
                raise ValueError(f"route name {route!r} must be a short identifier")
            if route == "error":
                raise ValueError("'error' is reserved for the error port")
        if len(set(routes)) != len(routes):
            raise ValueError("route names must be unique")
        return routes


class RouterNode(NodeType):
    name = "router"
    calls_model = True
    label = "Router"
    description = (
        "Sends its `input` down exactly one route, chosen by regex rules, by conditions "
        "on its ports or by the model."
    )
    category = "control"
    Config = RouterConfig
    # 2: llm mode chooses by a forced tool call and adds the port `route`.
    version = 2
    default_config = {
        "routes": ["yes", "no"],
        "rules": [{"route": "yes", "pattern": "(?i)\\byes\\b"}],
        "default": "no",
    }

    def templates(self, config: RouterConfig) -> dict[str, str]:
        if config.mode != "llm":
            return {}
        named = {"prompt": config.prompt, "system": config.system}
        return {field: text for field, text in named.items() if text}

    def problems(self, config: RouterConfig, services: Services | None) -> list[FieldProblem]:
        found = [
            FieldProblem(field, f"rule names route {rule.route!r}, which is not in routes")
            for field, rules in (("rules", config.rules), ("conditions", config.conditions))
            for rule in rules
            if rule.route not in config.routes
        ]
        for number, condition in enumerate(config.conditions, 1):
            try:
                expressions.check(condition.expression)
            except expressions.ExpressionProblem as exc:
                found.append(FieldProblem("conditions", f"{_rule_name(number, condition)}: {exc}"))
        if config.mode == "llm" and CHOICE_PORT in config.routes:
            found.append(
                FieldProblem(
                    "routes",
                    f"in llm mode {CHOICE_PORT!r} is the port that carries the chosen route's "
                    "name: call the route something else",
                )
            )
        if config.default is not None and config.default not in config.routes:
            found.append(
                FieldProblem("default", f"default route {config.default!r} is not in routes")
            )
        if config.mode == "llm":
            # The node sizes max_tokens itself: the budget plus room for the choice.
            found += modelcall.sampling_problems(config) + modelcall.thinking_problems(config, None)
        if config.mode == "match" and not config.rules and config.default is None:
            found.append(FieldProblem("mode", "match mode needs rules or a default route"))
        if config.mode == "condition" and not config.conditions and config.default is None:
            found.append(FieldProblem("mode", "condition mode needs conditions or a default route"))
        return found

    def input_ports(self, config: RouterConfig) -> frozenset[str]:
        ports = frozenset({"input"}) | template_ports(self.templates(config))
        if config.mode == "condition":
            ports |= _condition_ports(config.conditions)
        return ports

    def output_ports(self, config: RouterConfig) -> frozenset[str]:
        if config.mode == "llm":
            return frozenset(config.routes) | {CHOICE_PORT}
        return frozenset(config.routes)

    def cacheable(self, config: RouterConfig, services: Services) -> bool:
        # Matching and conditions cost next to nothing (a sandboxed condition, a process
        # round trip: still less than a cache lookup); only the model's choice is worth keeping.
        return config.mode == "llm"

    def prepare(self, config: RouterConfig, services: Services) -> list[tuple[regex.Pattern, str]]:
        return [(regex.compile(rule.pattern), rule.route) for rule in config.rules]

    async def run(self, ctx: NodeContext, config: RouterConfig, inputs: dict) -> dict:
        value = inputs.get("input")
        if config.mode == "match":
            route = _match(ctx.prepared, _as_text(value), config.default)
        elif config.mode == "condition":
            route = await _first_holding(ctx, config, inputs)
        else:
            route = await _ask_model(ctx, config, inputs)
        if route is None:
            raise NodeError(
                f"no route matched and there is no default (routes: {', '.join(config.routes)})"
            )
        ctx.detail["route"] = route
        if config.mode == "llm":
            return {route: value, CHOICE_PORT: route}
        return {route: value}


def _as_text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def _match(rules: list[tuple[regex.Pattern, str]], text: str, default: str | None) -> str | None:
    data = regex.encode(text[:MAX_MATCH_CHARS])
    for pattern, route in rules:
        if pattern.search(data):
            return route
    return default


def _rule_name(number: int, condition: Condition) -> str:
    return f"rule {number} (route {condition.route!r})"


def _condition_ports(conditions: list[Condition]) -> frozenset[str]:
    # A broken expression raises ExpressionProblem: its ports cannot be told yet (an editor
    # keeps the ones it had while someone types), and problems() reports it.
    ports: set[str] = set()
    for condition in conditions:
        ports |= expressions.variables(condition.expression)
    return frozenset(ports)


async def _first_holding(ctx: NodeContext, config: RouterConfig, inputs: dict) -> str | None:
    for number, condition in enumerate(config.conditions, 1):
        try:
            holds = await expressions.holds_async(
                condition.expression, inputs, ctx.services.sandbox
            )
        except expressions.ExpressionProblem as exc:
            raise NodeError(f"conditions: {_rule_name(number, condition)}: {exc}") from None
        if holds:
            ctx.detail["rule"] = number
            return condition.route
    return config.default


def choice_tool(routes: list[str]) -> dict[str, Any]:
    """The tool the model is made to call in llm mode: its one argument is the route."""
    return {
        "name": CHOICE_TOOL,
        "description": f"Send the message down one of these routes: {', '.join(routes)}.",
        "input_schema": {
            "type": "object",
            "properties": {
                "route": {"type": "string", "enum": list(routes), "description": "The route."}
            },
            "required": ["route"],
        },
    }


async def _ask_model(ctx: NodeContext, config: RouterConfig, inputs: dict) -> str | None:
    question = (
        await ctx.render("prompt", config.prompt, inputs)
        if config.prompt
        else _as_text(inputs["input"])
    )
    system = await ctx.render("system", config.system, inputs) if config.system else DEFAULT_SYSTEM
    ctx.detail.update(prompt=question, system=system)
    sampling = modelcall.sampling(config)
    model = config.model or ctx.services.default_model
    messages = [{"role": "user", "content": question}]
    # Without a prompt of its own the question is the input: no stable start to cache.
    cache = modelcall.cache_settings(config, config.prompt or "{{ input }}", question)
    if sampling["thinking"] is None:
        response = await ctx.call_model(
            ModelRequest(
                model=model,
                messages=messages,
                system=system,
                max_tokens=CHOICE_MAX_TOKENS,
                tools=[choice_tool(config.routes)],
                tool_choice={"type": "tool", "name": CHOICE_TOOL},
                **sampling,
                **cache,
            )
        )
        return _chosen(response, config)
    # Thinking: no forced tool (the API refuses one), a structured answer instead.
    budget = config.thinking_budget or ADAPTIVE_THINKING_TOKENS
    response = await ctx.call_model(
        ModelRequest(
            model=model,
            messages=messages,
            system=system if config.system else THINKING_SYSTEM,
            max_tokens=budget + CHOICE_MAX_TOKENS,
            output_schema=choice_schema(config.routes),
            **sampling,
            **cache,
        )
    )
    return _answered(response, config)


THINKING_SYSTEM = (
    "You are a router. Read the user's message and choose the one route it belongs on; "
    'answer with JSON: {"route": "<one of the routes>"}.'
)


def choice_schema(routes: list[str]) -> dict[str, Any]:
    """With thinking on, the answer's shape: an object whose one property is the route."""
    tool = choice_tool(routes)
    return {**tool["input_schema"], "additionalProperties": False}


def _answered(response: ModelResponse, config: RouterConfig) -> str | None:
    """The route a structured answer names; else ``default``, else a node error."""
    try:
        answer = json.loads(response.text)
    except ValueError:
        answer = None
    route = answer.get("route") if isinstance(answer, dict) else None
    if route in config.routes:
        return route
    if config.default is not None:
        return config.default
    raise NodeError(
        f"the model answered {response.text[:200]!r}, which names no route "
        f"(routes: {', '.join(config.routes)}; stop reason: {response.stop_reason})"
    )


def _chosen(response: ModelResponse, config: RouterConfig) -> str | None:
    """The route the model's tool call names; else ``default``, else a node error."""
    calls = [use for use in response.tool_uses if use.get("name") == CHOICE_TOOL]
    arguments = calls[0].get("input") if calls else None
    answer = arguments.get("route") if isinstance(arguments, dict) else None
    if answer in config.routes:
        return answer
    if config.default is not None:
        return config.default
    if not calls:
        raise NodeError(
            f"the model did not call {CHOICE_TOOL} (stop reason: {response.stop_reason})"
        )
    raise NodeError(
        f"the model chose {answer!r}, which is not a route (routes: {', '.join(config.routes)})"
    )
