"""The flow's boundary: ``input`` emits a run input, ``output`` collects a run output."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from graphs.nodes.base import CommonConfig, NodeContext, NodeType


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


class InputNode(NodeType):
    name = "input"
    label = "Input"
    description = "Emits the run input of this name on port `value`."
    category = "io"
    Config = InputConfig
    default_config = {"name": "input"}

    def output_ports(self, config: InputConfig) -> frozenset[str]:
        return frozenset({"value"})

    async def run(self, ctx: NodeContext, config: InputConfig, inputs: dict) -> dict:
        return {"value": ctx.run_inputs[config.name]}


class OutputConfig(CommonConfig):
    name: str = _name("The run output this node writes: letters, digits and _.")


class OutputNode(NodeType):
    name = "output"
    label = "Output"
    description = "Its port `value` becomes the run output of this name."
    category = "io"
    Config = OutputConfig
    default_config = {"name": "output"}

    def input_ports(self, config: OutputConfig) -> frozenset[str]:
        return frozenset({"value"})

    async def run(self, ctx: NodeContext, config: OutputConfig, inputs: dict) -> dict:
        # The executor reads outputs from node_finished; this port is not wired further.
        return {"value": inputs["value"]}
