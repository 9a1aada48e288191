"""``template``: renders a Jinja template over its inputs and emits ``text``."""

from __future__ import annotations

from pydantic import Field

from graphs.nodes.base import CommonConfig, NodeContext, NodeType, template_ports


class TemplateConfig(CommonConfig):
    template: str = Field(max_length=1_000_000, json_schema_extra={"widget": "template", "rows": 8})


class TemplateNode(NodeType):
    name = "template"
    label = "Template"
    description = "Renders its template over its inputs; emits `text`."
    category = "text"
    Config = TemplateConfig
    default_config = {"template": ""}

    def templates(self, config: TemplateConfig) -> dict[str, str]:
        return {"template": config.template}

    def input_ports(self, config: TemplateConfig) -> frozenset[str]:
        return template_ports(self.templates(config))

    def output_ports(self, config: TemplateConfig) -> frozenset[str]:
        return frozenset({"text"})

    async def run(self, ctx: NodeContext, config: TemplateConfig, inputs: dict) -> dict:
        return {"text": await ctx.render("template", config.template, inputs)}
