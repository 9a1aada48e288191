"""``llm``: one streamed Anthropic Messages call; emits ``text``."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from graphs import files, structured
from graphs.llm.types import ModelRequest
from graphs.nodes import modelcall
from graphs.nodes.base import (
    RETRIES_HELP,
    CommonConfig,
    FieldProblem,
    NodeContext,
    NodeType,
    Services,
    template_ports,
)

MODEL_NAME = Field(
    default=None, min_length=1, max_length=200, description="Empty: the server's default model."
)
PROMPT = Field(max_length=1_000_000, json_schema_extra={"widget": "template", "rows": 8})
SYSTEM = Field(default=None, max_length=1_000_000, json_schema_extra={"widget": "template"})
# Model calls fail transiently (429, 529); retry them by default.
MODEL_RETRIES = Field(default=2, ge=0, le=10, description=RETRIES_HELP)


PROMPT_REQUIRED = "the prompt is required: write what to ask the model"


class LLMConfig(CommonConfig):
    prompt: str = PROMPT
    system: str | None = SYSTEM
    model: str | None = MODEL_NAME
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


class LLMNode(NodeType):
    name = "llm"
    calls_model = True
    label = "LLM call"
    description = (
        "One model call, streamed; emits `text`, or with an output schema `value` and one "
        "port per property, and records token usage. With citations on, `citations` "
        "carries the passages the reply cites from documents sent to it ([] if none)."
    )
    category = "model"
    Config = LLMConfig
    default_config = {"prompt": ""}

    def templates(self, config: LLMConfig) -> dict[str, str]:
        return {"prompt": config.prompt, **({"system": config.system} if config.system else {})}

    def input_ports(self, config: LLMConfig) -> frozenset[str]:
        return template_ports(self.templates(config))

    def output_ports(self, config: LLMConfig) -> frozenset[str]:
        return modelcall.output_ports(config)

    def problems(self, config: LLMConfig, services: Services | None) -> list[FieldProblem]:
        # A new node starts with an empty prompt so that it can be saved unfinished; it
        # must not run that way (the model would be asked nothing).
        empty = [FieldProblem("prompt", PROMPT_REQUIRED)] if not config.prompt.strip() else []
        return (
            empty
            + modelcall.schema_problems(config)
            + modelcall.sampling_problems(config)
            + modelcall.thinking_problems(config, config.max_tokens)
        )

    def cacheable(self, config: LLMConfig, services: Services) -> bool:
        return True

    def prepare(self, config: LLMConfig, services: Services) -> structured.Shape | None:
        return modelcall.shape_of(config)

    async def run(self, ctx: NodeContext, config: LLMConfig, inputs: dict) -> dict:
        # A file input becomes an image or document block where its variable is.
        values, refs = files.with_markers(inputs)
        prompt = await ctx.render("prompt", config.prompt, values)
        system = await ctx.render("system", config.system, inputs) if config.system else None
        ctx.detail.update(prompt=files.readable(prompt, refs), system=system)
        content = await files.content(prompt, refs, ctx.services.files, citations=config.citations)
        request = ModelRequest(
            model=config.model or ctx.services.default_model,
            messages=[{"role": "user", "content": content}],
            system=system,
            max_tokens=config.max_tokens,
            output_schema=config.output_schema,
            **modelcall.sampling(config),
            **modelcall.cache_settings(config, config.prompt, prompt),
        )
        response = await ctx.call_model(request)
        if config.output_schema is None:
            outputs = {"text": response.text}
        else:
            outputs, response = await modelcall.shaped_reply(ctx, request, response, ctx.prepared)
        cited = files.citations_of(response.content)
        if cited:
            ctx.detail["citations"] = cited
        return modelcall.with_citations(config, outputs, cited)
