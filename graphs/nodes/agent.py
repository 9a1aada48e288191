"""``agent``: the agent loop. The model may call tools; their results go back until it stops.

Tools named in the config come from ``services.tools``, an open mapping: the
built-ins live in ``graphs.tools.BUILTIN_TOOLS`` and a host may add its own.

A tool named ``flow:<reference>`` is a saved flow (``graphs.subflows``): the model sees
it as ``flow_<reference>``, described by the flow's description, with its inputs as the
input schema (required unless they have a default). Each call runs the flow as a child
run of this node (its id goes into the node's ``child_runs``, its usage into the node's),
and its outputs go back as the tool's result: one output's text as is, else JSON. A
child that fails goes back as an error result, for the model to act on.

Turns are recorded. Each reply of the model is an ``agent_turn`` event and each answered
tool call an ``agent_tool`` event, stored before the agent goes on (``ctx.record``). When
the same visit runs again (a wait for approval answered, a worker's takeover, a retry, a
run resuming a failed one), the agent reads them back (``ctx.prior``, see
``graphs.history``) and goes on from the next turn: recorded replies are not asked for
again, recorded tool calls not run again. Records of another conversation (another
prompt, system, model or tools: their ``key`` differs) are not used.

Tools that need approval (``approve_tools``, by the names in ``tools``). Before such a
call runs, the node waits (``NodeWaits``, kind ``tool_approval``, showing the tool and its
arguments) holding nothing; the wait says ``rerun``, so the answer runs the node again
(``graphs.schedule``), and it reads the answer from its history: ``approve`` runs the
tool, ``reject`` sends the model a tool result saying who rejected the call and why. The
other calls of the same turn run before it waits; several calls that need approval wait
one after the other.

A tool named ``mcp:<server>/<tool>`` is a tool of an MCP server the host lends through
``services.mcp`` (``graphs.tools.mcp``). Each call's duration goes into the node's
``tool_calls`` detail, by the id of its tool_use (its input and result are in ``messages``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field, field_validator

from graphs import files, structured
from graphs.errors import NodeError
from graphs.history import ELSEWHERE
from graphs.llm.types import ModelRequest, ModelResponse, Usage
from graphs.nodes import approval, modelcall
from graphs.nodes.base import (
    CommonConfig,
    FieldProblem,
    NodeContext,
    NodeType,
    NodeWaits,
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
from graphs.tools import mcp
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
    approve_tools: list[str] = Field(
        default_factory=list,
        max_length=50,
        title="Tools needing approval",
        description="Of the tools above, those whose every call waits for a person to "
        "approve or reject it (seeing its arguments); a rejection goes back to the model "
        "as the tool's result.",
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
    cache_ttl: modelcall.CacheTTL = modelcall.CACHE_TTL
    citations: bool = modelcall.CITATIONS
    retries: int = MODEL_RETRIES

    @field_validator("tools", "approve_tools")
    @classmethod
    def _unique(cls, tools: list[str]) -> list[str]:
        if len(set(tools)) != len(tools):
            raise ValueError("tool names must be unique")
        return tools


class AgentNode(NodeType):
    name = "agent"
    calls_model = True
    uses_mcp = True
    label = "Agent"
    description = (
        "Calls the model with tools, runs the tools it asks for, repeats until it is done. "
        "With citations on, `citations` carries the passages its answer cites from "
        "documents sent to it ([] if none)."
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
        for name in config.approve_tools:
            if name not in config.tools:
                found.append(
                    FieldProblem(
                        "approve_tools",
                        f"tool {name!r} is not one of the agent's tools; add it to tools first",
                    )
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
            elif mcp.reference(name) is not None:
                problem = (
                    mcp.reference_problem(name)
                    if services.mcp is None
                    else mcp.lookup_problem(name, services.mcp)
                )
                if problem is not None:
                    found.append(FieldProblem("tools", f"tool {name!r}: {problem}"))
            elif name not in services.tools:
                found.append(FieldProblem("tools", f"unknown tool {name!r} (known: {known})"))
        return found

    async def run(self, ctx: NodeContext, config: AgentConfig, inputs: dict) -> dict:
        # A file input becomes an image or document block where its variable is; the
        # conversation as recorded (detail, the turns' key) names it, never holds its bytes.
        values, refs = files.with_markers(inputs)
        rendered = await ctx.render("prompt", config.prompt, values)
        prompt = files.readable(rendered, refs)
        first = await files.content(rendered, refs, ctx.services.files, citations=config.citations)
        system = await ctx.render("system", config.system, inputs) if config.system else None
        prepared: Prepared = ctx.prepared
        tools: dict[str, Tool | FlowTool] = {}
        approve: set[str] = set()
        for name in config.tools:
            found = prepared.flows.get(name)
            if isinstance(found, str):
                raise NodeError(f"tool {name!r}: {found}")
            tool: Tool | FlowTool
            if mcp.reference(name) is not None:
                tool = _mcp_tool(name, ctx)
            else:
                tool = ctx.services.tools[name] if found is None else FlowTool(found)
            tools[tool.name] = tool
            if name in config.approve_tools:
                approve.add(tool.name)
        messages: list[dict[str, Any]] = [{"role": "user", "content": prompt}]
        ctx.detail.update(prompt=prompt, system=system, messages=messages)
        shape = prepared.shape
        model = config.model or ctx.services.default_model
        schemas = [_schema(tool) for tool in tools.values()]
        shas = "".join(f" {ref['sha256']}" for ref in refs)
        key = _conversation_key(model, system, prompt + shas, schemas, config)
        past = Past.read(await ctx.prior(), key)
        loop = Loop(ctx, tools, approve, past, key)
        # Each turn also caches the conversation so far, which the next turn reads.
        cache = modelcall.cache_settings(config, config.prompt, rendered, conversation=True)
        retried = False
        for turn in range(1, config.max_turns + 1):
            if turn > 1:
                ctx.emit_text("\n")
            response = await loop.reply(
                turn,
                ModelRequest(
                    model=model,
                    messages=[{"role": "user", "content": first}, *messages[1:]],
                    system=system,
                    max_tokens=config.max_tokens,
                    tools=schemas,
                    output_schema=config.output_schema,
                    **modelcall.sampling(config),
                    **cache,
                ),
            )
            messages.append({"role": "assistant", "content": response.content or _NO_REPLY})
            if response.stop_reason != "tool_use" or not response.tool_uses:
                ctx.detail["turns"] = turn
                cited = files.citations_of(response.content)
                if cited:
                    ctx.detail["citations"] = cited
                if config.output_schema is None or shape is None:
                    return modelcall.with_citations(config, {"text": response.text}, cited)
                reason = modelcall.mismatch(response, config.max_tokens, shape)
                if reason is None:
                    outputs = shape.outputs(shape.parse(response.text))
                    return modelcall.with_citations(config, outputs, cited)
                if retried:
                    raise modelcall.failed(reason)
                # The final answer did not fit: one more turn, with the reason.
                retried = True
                ctx.detail["output_schema_retry"] = reason
                messages.append(modelcall.correction(reason))
                continue
            results = await asyncio.gather(
                *(loop.tool_result(turn, use) for use in response.tool_uses)
            )
            asked = next((r for r in results if isinstance(r, Ask)), None)
            if asked is not None:
                # The other calls of the turn are answered and recorded: only this waits.
                ctx.detail["turns"] = turn
                raise NodeWaits(asked.wait)
            messages.append({"role": "user", "content": list(results)})
        ctx.detail["turns"] = config.max_turns
        raise NodeError(
            f"the agent did not finish within max_turns={config.max_turns}; "
            "raise max_turns or make the task smaller"
        )


def answer_tool(
    wait: dict[str, Any], action: str, values: dict[str, Any], *, by: dict[str, Any]
) -> dict[str, Any]:
    """The answer to a ``tool_approval`` wait: what its node reads when it runs again.
    Raises ``approval.AnswerInvalid`` for an action or a field the wait does not have.

    >>> wait = tool_wait(2, {"id": "tu_1", "name": "calculator", "input": {"x": 1}})
    >>> answer_tool(wait, "reject", {"reason": "too costly"}, by={"user": "bob"})
    {'action': 'reject', 'reason': 'too costly', 'by': {'user': 'bob'}, 'tool_use_id': 'tu_1'}
    """
    (carried,) = approval.answer(wait, action, values, by=by).values()
    return {**carried, "tool_use_id": wait.get("tool_use_id", "")}


def tool_wait(turn: int, use: dict[str, Any]) -> dict[str, Any]:
    """What an agent waits for before a call of a tool that needs approval: an approval's
    wait (message, a reason field, approve or reject), with the tool and its arguments,
    and ``rerun``: the answer runs the node again."""
    name = use.get("name", "")
    return {
        "kind": "tool_approval",
        "rerun": True,
        "message": f"The agent asks to call the tool {name}.",
        "tool": name,
        "input": use.get("input") or {},
        "tool_use_id": use.get("id", ""),
        "turn": turn,
        "fields": [
            {"name": "reason", "label": "Reason", "kind": "text", "choices": [], "required": False}
        ],
        "actions": list(TOOL_ACTIONS),
        "timeout_s": None,
        "approvers": [],
    }


TOOL_ACTIONS = ("approve", "reject")


def rejection(by: dict[str, Any], reason: str | None) -> str:
    """The tool result a rejected call sends the model.

    >>> rejection({"user": "bob"}, "not today")
    'This tool call was rejected by bob: not today'
    >>> rejection({}, None)
    'This tool call was rejected by a person (no reason given)'
    """
    who = by.get("user") if isinstance(by, dict) else None
    who = str(who) if who else "a person"
    if reason:
        return f"This tool call was rejected by {who}: {reason}"
    return f"This tool call was rejected by {who} (no reason given)"


@dataclass(frozen=True)
class Ask:
    """A tool call that waits for a person's approval."""

    wait: dict[str, Any]


@dataclass
class Past:
    """What this visit recorded before it ran this time: replies by turn, tool results
    and approval answers by tool_use id."""

    turns: dict[int, dict[str, Any]] = field(default_factory=dict)
    tools: dict[str, dict[str, Any]] = field(default_factory=dict)
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def read(cls, events: list[dict[str, Any]], key: str) -> Past:
        past = cls()
        for event in events:
            kind = event.get("type")
            if kind == "node_resumed":
                answer = event.get("answer")
                if isinstance(answer, dict) and answer.get("tool_use_id"):
                    past.answers[answer["tool_use_id"]] = answer
            elif event.get("key") != key:
                continue  # of another conversation (the prompt or the tools changed)
            elif kind == "agent_turn" and isinstance(event.get("turn"), int):
                past.turns[event["turn"]] = event
            elif kind == "agent_tool" and event.get("tool_use_id"):
                past.tools[event["tool_use_id"]] = event
        return past


class Loop:
    """One run of an agent's loop: its replies and tool results, recorded or replayed."""

    def __init__(
        self,
        ctx: NodeContext,
        tools: dict[str, Tool | FlowTool],
        approve: set[str],
        past: Past,
        key: str,
    ):
        self.ctx, self.tools, self.approve, self.past, self.key = ctx, tools, approve, past, key

    async def reply(self, turn: int, request: ModelRequest) -> ModelResponse:
        """The model's reply for ``turn``: the recorded one, else a new call, recorded."""
        ctx = self.ctx
        recorded = self.past.turns.get(turn)
        if recorded is not None:
            content = list(recorded.get("content") or [])
            response = ModelResponse(
                str(recorded.get("model") or request.model),
                content,
                recorded.get("stop_reason"),
                Usage(),  # paid when it was recorded
            )
            ctx.emit_text(response.text)
            await self.carry(recorded)
            return response
        response = await ctx.call_model(request)
        await ctx.record(
            "agent_turn",
            {
                "turn": turn,
                "content": response.content,
                "stop_reason": response.stop_reason,
                "model": response.model,
                "usage": response.usage.as_dict(),
                "key": self.key,
            },
        )
        return response

    async def tool_result(self, turn: int, use: dict[str, Any]) -> dict[str, Any] | Ask:
        """The tool_result block answering ``use``: recorded, or run (with approval, where
        its tool needs it) and recorded; an ``Ask`` when it waits for an approval."""
        ctx = self.ctx
        use_id, name = use.get("id", ""), use.get("name", "")
        args = use.get("input") or {}
        recorded = self.past.tools.get(use_id)
        if recorded is not None:
            content, is_error = str(recorded.get("content", "")), bool(recorded.get("is_error"))
            await self.carry(recorded)
        else:
            rejected: dict[str, Any] | None = None
            if name in self.approve:
                answer = self.past.answers.get(use_id)
                if answer is None:
                    return Ask(tool_wait(turn, use))
                if answer.get("action") != "approve":
                    by = answer.get("by")
                    reason = answer.get("reason")
                    rejected = {
                        "by": by if isinstance(by, dict) else {},
                        "reason": reason if isinstance(reason, str) and reason else None,
                    }
            if rejected is None:
                started = time.monotonic()
                content, is_error = await _call_tool(ctx, self.tools, name, args)
                took = round((time.monotonic() - started) * 1000)
                ctx.detail.setdefault("tool_calls", []).append(
                    {"id": use_id, "name": name, "duration_ms": took, "is_error": is_error}
                )
            else:
                content, is_error = rejection(rejected["by"], rejected["reason"]), True
            fields: dict[str, Any] = {
                "turn": turn,
                "tool_use_id": use_id,
                "name": name,
                "input": args,
                "content": content,
                "is_error": is_error,
                "key": self.key,
            }
            if rejected is not None:
                fields["rejected"] = rejected
            await ctx.record("agent_tool", fields)
        shown = json.dumps(args, ensure_ascii=False)[:200]
        ctx.emit_text(f"\n[{name}({shown}) -> {'error: ' if is_error else ''}{content[:200]}]\n")
        return {
            "type": "tool_result",
            "tool_use_id": use_id,
            "content": content,
            **({"is_error": True} if is_error else {}),
        }

    async def carry(self, recorded: dict[str, Any]) -> None:
        """A record another run made goes into this run's log too, saying where it came
        from: this run's own log then holds its whole visit (a resume of it reads it)."""
        if recorded.get(ELSEWHERE):
            fields = {k: v for k, v in recorded.items() if k not in _EVENT_KEYS}
            await self.ctx.record(recorded["type"], {**fields, "source": recorded.get("source")})


# What an event carries beside its own fields (its log's numbering, its node visit).
_EVENT_KEYS = frozenset({"seq", "ts", "type", "node", "iteration", "source", ELSEWHERE})


def _conversation_key(
    model: str,
    system: str | None,
    prompt: str,
    schemas: list[dict[str, Any]],
    config: AgentConfig,
) -> str:
    """A digest of how the conversation begins: recorded turns of another are not reused."""
    begins = {
        "model": model,
        "system": system,
        "prompt": prompt,
        "tools": schemas,
        "output_schema": config.output_schema,
        "thinking": config.thinking,
    }
    text = json.dumps(begins, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


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


def _mcp_tool(name: str, ctx: NodeContext) -> Tool:
    services = ctx.services
    try:
        return mcp.bind(name, services.mcp or {}, services.credentials, ctx.mcp_sessions)
    except ToolError as exc:  # the server or tool is gone since the flow was checked
        raise NodeError(str(exc)) from None


def _schema(tool: Tool | FlowTool) -> dict[str, Any]:
    return {"name": tool.name, "description": tool.description, "input_schema": tool.input_schema}


async def _call_tool(
    ctx: NodeContext, tools: dict[str, Tool | FlowTool], name: str, args: Any
) -> tuple[str, bool]:
    """Run one tool call: its result's text, and whether it is an error."""
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
    return content[:MAX_TOOL_RESULT_CHARS], is_error
