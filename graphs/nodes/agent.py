"""``agent``: the agent loop. The model may call tools; their results go back until it stops.

Tools named in the config come from ``services.tools``, an open mapping: the
built-ins live in ``graphs.tools.BUILTIN_TOOLS`` and a host may add its own.

A tool named ``flow:<reference>`` is a saved flow (``graphs.subflows``): the model sees
it as ``flow_<reference>``, described by the flow's description, with its inputs as the
input schema (required unless they have a default). Each call runs the flow as a child
run of this node (its id goes into the node's ``child_runs``, its usage into the node's),
and its outputs go back as the tool's result: one output's text as is, else JSON. A
child that fails goes back as an error result, for the model to act on.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from pydantic import Field, field_validator

from graphs import structured
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
from graphs.nodes.llm import MODEL_NAME, MODEL_RETRIES, PROMPT, PROMPT_REQUIRED, SYSTEM
from graphs.subflows import (
    API_TOOL_PREFIX,
    ChildCall,
    FlowInfo,
    FlowUnavailable,
    check_reference,
    tool_content,
    tool_reference,
)
from graphs.tools.base import Tool, ToolError

MAX_TOOL_RESULT_CHARS = 100_000
# The API refuses an assistant turn with no content (a reply cut at once by max_tokens).
_NO_REPLY = [{"type": "text", "text": "(no reply)"}]


class AgentConfig(CommonConfig):
    prompt: str = PROMPT
    system: str | None = SYSTEM
    model: str | None = MODEL_NAME
    tools: list[str] = Field(
        default_factory=list,
        max_length=50,
        description="Tools the agent may call; flow:ID offers the saved flow ID as a tool.",
        json_schema_extra={"widget": "tools"},
    )
    max_turns: int = Field(default=10, ge=1, le=200)
    max_tokens: int = Field(default=1024, ge=1, le=128_000)
    output_schema: dict[str, Any] | None = modelcall.OUTPUT_SCHEMA
    temperature: float | None = modelcall.TEMPERATURE
    top_p: float | None = modelcall.TOP_P
    top_k: int | None = modelcall.TOP_K
    stop_sequences: modelcall.StopSequences = modelcall.STOP_SEQUENCES
    thinking: modelcall.ThinkingMode = modelcall.THINKING
    thinking_budget: int | None = modelcall.THINKING_BUDGET
    retries: int = MODEL_RETRIES

    @field_validator("tools")
    @classmethod
    def _unique(cls, tools: list[str]) -> list[str]:
        if len(set(tools)) != len(tools):
            raise ValueError("tool names must be unique")
        return tools


class AgentNode(NodeType):
    name = "agent"
    calls_model = True
    label = "Agent"
    description = (
        "Calls the model with tools, runs the tools it asks for, repeats until it is done."
    )
    category = "model"
    Config = AgentConfig
    default_config = {"prompt": "", "tools": ["calculator"]}

    def templates(self, config: AgentConfig) -> dict[str, str]:
        return {"prompt": config.prompt, **({"system": config.system} if config.system else {})}

    def input_ports(self, config: AgentConfig) -> frozenset[str]:
        return template_ports(self.templates(config))

    def output_ports(self, config: AgentConfig) -> frozenset[str]:
        return modelcall.output_ports(config)

    def prepare(self, config: AgentConfig, services: Services) -> Prepared:
        flows: dict[str, FlowInfo | str] = {}
        for name in config.tools:
            reference = tool_reference(name)
            if reference is None:
                continue
            try:
                flows[name] = services.flows.look_up(reference)
            except FlowUnavailable as exc:  # gone since the flow was checked
                flows[name] = str(exc)
        return Prepared(modelcall.shape_of(config), flows)

    def cacheable(self, config: AgentConfig, services: Services) -> bool:
        # A tool that does not say it is deterministic might answer differently next time.
        return all(
            getattr(services.tools.get(name), "deterministic", False) for name in config.tools
        )

    def problems(self, config: AgentConfig, services: Services | None) -> list[FieldProblem]:
        # Saved unfinished, never run asking nothing (as an llm's).
        empty = [FieldProblem("prompt", PROMPT_REQUIRED)] if not config.prompt.strip() else []
        found = (
            empty
            + modelcall.schema_problems(config)
            + modelcall.sampling_problems(config)
            + modelcall.thinking_problems(config, config.max_tokens)
        )
        if services is None:
            return found
        known = ", ".join(sorted(services.tools)) or "none"
        for name in config.tools:
            reference = tool_reference(name)
            if reference is not None:
                problem = check_reference(reference)
                if problem is None:
                    try:
                        services.flows.look_up(reference)
                    except FlowUnavailable as exc:
                        problem = str(exc)
                if problem is not None:
                    found.append(FieldProblem("tools", f"tool {name!r}: {problem}"))
            elif name not in services.tools:
                found.append(FieldProblem("tools", f"unknown tool {name!r} (known: {known})"))
        return found

    async def run(self, ctx: NodeContext, config: AgentConfig, inputs: dict) -> dict:
        prompt = await ctx.render("prompt", config.prompt, inputs)
        system = await ctx.render("system", config.system, inputs) if config.system else None
        prepared: Prepared = ctx.prepared
        tools: dict[str, Tool | FlowTool] = {}
        for name in config.tools:
            found = prepared.flows.get(name)
            if isinstance(found, str):
                raise NodeError(f"tool {name!r}: {found}")
            tool = ctx.services.tools[name] if found is None else FlowTool(found)
            tools[tool.name] = tool
        messages: list[dict[str, Any]] = [{"role": "user", "content": prompt}]
        ctx.detail.update(prompt=prompt, system=system, messages=messages)
        shape = prepared.shape
        retried = False
        for turn in range(1, config.max_turns + 1):
            if turn > 1:
                ctx.emit_text("\n")
            response = await ctx.call_model(
                ModelRequest(
                    model=config.model or ctx.services.default_model,
                    messages=list(messages),
                    system=system,
                    max_tokens=config.max_tokens,
                    tools=[_schema(tool) for tool in tools.values()],
                    output_schema=config.output_schema,
                    **modelcall.sampling(config),
                )
            )
            messages.append({"role": "assistant", "content": response.content or _NO_REPLY})
            if response.stop_reason != "tool_use" or not response.tool_uses:
                ctx.detail["turns"] = turn
                if config.output_schema is None or shape is None:
                    return {"text": response.text}
                reason = modelcall.mismatch(response, config.max_tokens, shape)
                if reason is None:
                    return shape.outputs(shape.parse(response.text))
                if retried:
                    raise modelcall.failed(reason)
                # The final answer did not fit: one more turn, with the reason.
                retried = True
                ctx.detail["output_schema_retry"] = reason
                messages.append(modelcall.correction(reason))
                continue
            results = await asyncio.gather(
                *(_call_tool(ctx, tools, use) for use in response.tool_uses)
            )
            messages.append({"role": "user", "content": list(results)})
        ctx.detail["turns"] = config.max_turns
        raise NodeError(
            f"the agent did not finish within max_turns={config.max_turns}; "
            "raise max_turns or make the task smaller"
        )


@dataclass(frozen=True)
class Prepared:
    shape: structured.Shape | None
    # flow:ID tool name -> the flow, or why it cannot be had.
    flows: dict[str, FlowInfo | str]


class FlowTool:
    """A saved flow offered to the model; each call is a child run of the agent's node."""

    def __init__(self, info: FlowInfo):
        self.info = info
        self.name = API_TOOL_PREFIX + info.reference
        self.description = info.tool_description()
        self.input_schema = info.tool_schema()

    async def run(self, ctx: NodeContext, args: dict[str, Any]) -> str:
        if not isinstance(args, dict):
            raise ToolError("the tool's input must be an object of the flow's inputs")
        call = ChildCall(self.info.reference, None, args, ctx.node_id, ctx.iteration)
        result = await ctx.services.flows.run(call, ctx.services)
        for model, usage in result.usage_by_model.items():
            ctx.add_usage(model, usage)
        if result.run is not None:
            ctx.child_runs.append(result.run)
        if result.status != "succeeded":
            raise ToolError(result.failure(self.info.reference))
        return tool_content(result.outputs)


def _schema(tool: Tool | FlowTool) -> dict[str, Any]:
    return {"name": tool.name, "description": tool.description, "input_schema": tool.input_schema}


async def _call_tool(
    ctx: NodeContext, tools: dict[str, Tool | FlowTool], use: dict
) -> dict[str, Any]:
    name, args = use.get("name", ""), use.get("input") or {}
    tool = tools.get(name)
    try:
        if tool is None:
            raise ToolError(f"unknown tool {name!r}; available: {', '.join(tools) or 'none'}")
        if isinstance(tool, FlowTool):
            content, is_error = await tool.run(ctx, args), False
        else:
            content, is_error = await tool.call(args, ctx.services.tool_settings), False
    except ToolError as exc:
        content, is_error = str(exc), True
    content = content[:MAX_TOOL_RESULT_CHARS]
    shown = json.dumps(args, ensure_ascii=False)[:200]
    ctx.emit_text(f"\n[{name}({shown}) -> {'error: ' if is_error else ''}{content[:200]}]\n")
    return {
        "type": "tool_result",
        "tool_use_id": use.get("id", ""),
        "content": content,
        **({"is_error": True} if is_error else {}),
    }
