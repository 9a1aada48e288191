"""``template``: renders a Jinja template over its inputs and emits ``text``, or, with
``output: json``, the JSON value the rendered text spells, on ``value``.

>>> import asyncio
>>> from graphs import compile_flow
>>> flow = compile_flow({
...     "graph": {"name": "plan"},
...     "nodes": [
...         {"id": "topic", "type": "input", "config": {"name": "topic"}},
...         {"id": "plan", "type": "template", "config": {
...             "output": "json",
...             "template": '{"topic": {{ topic | tojson }}, "steps": ["draft", "edit"]}'}},
...         {"id": "out", "type": "output", "config": {"name": "plan"}},
...     ],
...     "edges": [
...         {"source": "topic", "target": "plan", "source_port": "value", "target_port": "topic"},
...         {"source": "plan", "target": "out", "source_port": "value", "target_port": "value"},
...     ],
... })
>>> asyncio.run(flow.run({"topic": "bees"})).outputs
{'plan': {'topic': 'bees', 'steps': ['draft', 'edit']}}
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from graphs.errors import NodeError
from graphs.nodes.base import CommonConfig, NodeContext, NodeType, template_ports


class TemplateConfig(CommonConfig):
    template: str = Field(max_length=1_000_000, json_schema_extra={"widget": "template", "rows": 8})
    output: Literal["text", "json"] = Field(
        default="text",
        description="text: the rendered text, on port text. json: the rendered text read as "
        "one JSON value (an object, list, number...), on port value; use | tojson to put "
        "inputs into it.",
    )


class TemplateNode(NodeType):
    name = "template"
    label = "Template"
    description = "Renders its template over its inputs; emits `text`, or a JSON `value`."
    category = "text"
    Config = TemplateConfig
    default_config = {"template": ""}

    def templates(self, config: TemplateConfig) -> dict[str, str]:
        return {"template": config.template}

    def input_ports(self, config: TemplateConfig) -> frozenset[str]:
        return template_ports(self.templates(config))

    def output_ports(self, config: TemplateConfig) -> frozenset[str]:
        return frozenset({"value" if config.output == "json" else "text"})

    async def run(self, ctx: NodeContext, config: TemplateConfig, inputs: dict) -> dict:
        text = await ctx.render("template", config.template, inputs)
        if config.output == "text":
            return {"text": text}
        # Here, not at the top: checking a flow (the command line's ``validate``) loads
        # this module but runs nothing, and asyncio would add some 6% to its start-up.
        import asyncio

        from graphs import parsing

        try:
            # Linear in the text, but a megabyte is milliseconds: off the shared event loop.
            return {"value": await asyncio.to_thread(parsing.whole_json, text)}
        except parsing.ParseProblem as exc:
            raise NodeError(
                f"output is json, but the rendered text is not JSON ({exc}); "
                f"it starts {parsing.excerpt(text)}"
            ) from None
