"""``router``: passes its ``input`` on exactly one output port, named after the route chosen.

In ``match`` mode the first rule whose regex occurs in the input wins (``re.search``
semantics, matched by RE2 in linear time: see ``graphs.regex``); in ``condition`` mode the
first rule whose expression holds (``graphs.expressions``: Jinja2, in the templates'
sandbox) over the input and the node's other ports; in ``llm`` mode the model is asked to
name a route. Each falls back to ``default``.

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
"""

from __future__ import annotations

import json
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from graphs import expressions, regex
from graphs.errors import NodeError
from graphs.llm.types import ModelRequest
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
    label = "Router"
    description = (
        "Sends its `input` down exactly one route, chosen by regex rules, by conditions "
        "on its ports or by the model."
    )
    category = "control"
    Config = RouterConfig
    default_config = {
        "routes": ["yes", "no"],
        "rules": [{"route": "yes", "pattern": "(?i)\\byes\\b"}],
        "default": "no",
    }

    def templates(self, config: RouterConfig) -> dict[str, str]:
        return {"prompt": config.prompt} if config.mode == "llm" and config.prompt else {}

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
        if config.default is not None and config.default not in config.routes:
            found.append(
                FieldProblem("default", f"default route {config.default!r} is not in routes")
            )
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


async def _ask_model(ctx: NodeContext, config: RouterConfig, inputs: dict) -> str | None:
    question = (
        await ctx.render("prompt", config.prompt, inputs)
        if config.prompt
        else _as_text(inputs["input"])
    )
    system = (
        "You are a router. Read the user's message and answer with exactly one of these "
        f"route names and nothing else: {', '.join(config.routes)}."
    )
    ctx.detail.update(prompt=question, system=system)
    response = await ctx.call_model(
        ModelRequest(
            model=config.model or ctx.services.default_model,
            messages=[{"role": "user", "content": question}],
            system=system,
            max_tokens=20,
            **modelcall.sampling(config),
        )
    )
    return _route_named(response.text, config.routes) or config.default


def _route_named(reply: str, routes: list[str]) -> str | None:
    words = re.findall(r"[A-Za-z0-9_-]+", reply.lower())
    by_lower = {route.lower(): route for route in routes}
    for word in words:
        if word in by_lower:
            return by_lower[word]
    return None
