"""``merge``: waits for every live input port and emits them as one object."""

from __future__ import annotations

from graphs.nodes.base import NodeContext, NodeType


class MergeNode(NodeType):
    name = "merge"
    label = "Merge"
    category = "control"
    description = "Waits for all its connected input ports; emits `value`, an object port -> value."
    holds_slot = False  # it only regroups its inputs (see InputNode)
    instant = True

    def input_ports(self, config: object) -> None:
        return None

    def output_ports(self, config: object) -> frozenset[str]:
        return frozenset({"value"})

    async def run(self, ctx: NodeContext, config: object, inputs: dict) -> dict:
        return {"value": dict(sorted(inputs.items()))}
