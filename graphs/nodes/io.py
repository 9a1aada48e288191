"""The flow's boundary: ``input`` emits a run input, ``output`` collects a run output."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from graphs.nodes.base import CommonConfig, NodeContext, NodeType

_NAME = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")


class InputConfig(CommonConfig):
    name: str = _NAME
    default: Any = None


class InputNode(NodeType):
    name = "input"
    description = "Emits the run input of this name on port `value`."
    Config = InputConfig

    def output_ports(self, config: InputConfig) -> frozenset[str]:
        return frozenset({"value"})

    async def run(self, ctx: NodeContext, config: InputConfig, inputs: dict) -> dict:
        return {"value": ctx.run_inputs[config.name]}


class OutputConfig(CommonConfig):
    name: str = _NAME


class OutputNode(NodeType):
    name = "output"
    description = "Its port `value` becomes the run output of this name."
    Config = OutputConfig

    def input_ports(self, config: OutputConfig) -> frozenset[str]:
        return frozenset({"value"})

    async def run(self, ctx: NodeContext, config: OutputConfig, inputs: dict) -> dict:
        # The executor reads outputs from node_finished; this port is not wired further.
        return {"value": inputs["value"]}
