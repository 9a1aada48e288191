"""``subflow``: runs a saved flow as a child run; its ports are that flow's inputs and outputs.

``flow`` names the flow to the services' source (``graphs.subflows``: in the web app its
id, on the command line a file in the flows directory) and ``version`` pins one of its
versions (else its current one runs). Ports come from the flow as the source describes it
when the calling flow is checked: an input of the child with a default is an optional
port. The child's usage is the node's, so its cost is in the caller's. The node is cached
only when it pins a version (a current version may change under the same config).

>>> node = SubflowNode()
>>> pinned = node.Config(flow="7", version=2)
>>> node.cacheable(node.Config(flow="7"), None), node.cacheable(pinned, None)
(False, True)
>>> node.Config(flow="../etc/passwd")
Traceback (most recent call last):
...
pydantic_core._pydantic_core.ValidationError: 1 validation error for SubflowConfig
flow
  String should match pattern ...
"""

from __future__ import annotations

from pydantic import Field

from graphs.errors import NodeError
from graphs.nodes.base import CommonConfig, FieldProblem, NodeContext, NodeType, Ports, Services
from graphs.subflows import REFERENCE, REFERENCE_HELP, ChildCall, FlowInfo, FlowUnavailable


class SubflowConfig(CommonConfig):
    flow: str = Field(
        pattern=f"^{REFERENCE.pattern}$",
        description=f"The saved flow to run (its id; on the command line, its file name "
        f"without .json): {REFERENCE_HELP}.",
        json_schema_extra={"widget": "flow"},
    )
    version: int | None = Field(
        default=None,
        ge=1,
        description="Run this version of it; empty: its current version when the run starts.",
    )


class SubflowNode(NodeType):
    name = "subflow"
    label = "Sub-flow"
    description = (
        "Runs a saved flow as a child run: its inputs are this node's ports in, its outputs "
        "the ports out."
    )
    category = "container"
    Config = SubflowConfig
    # A new node calls nothing yet; the form asks which flow.
    default_config = {"flow": "0"}
    # Its child's nodes take slots of their own.
    holds_slot = False

    def ports(self, config: SubflowConfig, services: Services | None) -> Ports:
        info = _info(config, services)
        if info is None:
            return Ports(frozenset(), frozenset())
        return Ports(frozenset(info.input_names), frozenset(info.outputs), frozenset(info.defaults))

    def problems(self, config: SubflowConfig, services: Services | None) -> list[FieldProblem]:
        if services is None:
            return []
        try:
            info = services.flows.look_up(config.flow, config.version)
        except FlowUnavailable as exc:
            return [FieldProblem(exc.field, str(exc))]
        if not info.outputs:
            return [FieldProblem("flow", f"flow {config.flow!r} has no output node")]
        return []

    def cacheable(self, config: SubflowConfig, services: Services | None) -> bool:
        return config.version is not None

    async def run(self, ctx: NodeContext, config: SubflowConfig, inputs: dict) -> dict:
        call = ChildCall(config.flow, config.version, inputs, ctx.node_id, ctx.iteration)
        result = await ctx.services.flows.run(call, ctx.services)
        for model, usage in result.usage_by_model.items():
            ctx.add_usage(model, usage)
        if result.run is not None:
            ctx.child_runs.append(result.run)
        if result.status != "succeeded":
            raise NodeError(result.failure(config.flow))
        return dict(result.outputs)


def _info(config: SubflowConfig, services: Services | None) -> FlowInfo | None:
    if services is None:
        return None
    try:
        return services.flows.look_up(config.flow, config.version)
    except FlowUnavailable:
        return None
