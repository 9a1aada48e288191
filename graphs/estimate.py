"""What a run's first model calls will send, before it starts: for a cost estimate.

The *first* model nodes of a flow are those whose every input comes straight from the
run's inputs (an ``input`` node's value): their prompt is known before the run starts.
``first_calls`` renders each one's first request exactly as the node would (its type's
own ``run``, with a model client that keeps the request instead of sending it), and,
for a ``map`` whose list is a run input, the first calls of its inline flow for one item,
with the number of items to multiply by. What the other nodes cost is for the host to
say (the web app: the mean of past runs of the flow).

Only node types that say ``calls_model`` are rendered: their ``run`` does nothing outside
the engine before its first model call, so rendering one has no effect anywhere.

File inputs (``graphs.files`` references) are read from the ``files`` source the host
lends, as a run reads them: the rendered request holds their image and document blocks,
so counting its tokens counts the files too.

>>> import asyncio
>>> from graphs.compile import compile_flow
>>> from graphs.settings import default_services
>>> flow = compile_flow({
...     "graph": {"name": "ask"},
...     "nodes": [
...         {"id": "q", "type": "input", "config": {"name": "q"}},
...         {"id": "ask", "type": "llm", "config": {"prompt": "Say {{ q }}", "max_tokens": 50}},
...         {"id": "out", "type": "output", "config": {"name": "a"}},
...     ],
...     "edges": [
...         {"source": "q", "target": "ask", "source_port": "value", "target_port": "q"},
...         {"source": "ask", "target": "out", "source_port": "text", "target_port": "value"},
...     ],
... }, default_services())
>>> [call] = asyncio.run(first_calls(flow, {"q": "hi"}))
>>> call.node, call.items, call.request.messages, call.request.max_tokens
('ask', 1, [{'role': 'user', 'content': 'Say hi'}], 50)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from graphs.budget import NO_BUDGET
from graphs.files import FileSource
from graphs.llm.types import ModelRequest, ModelResponse, Usage
from graphs.nodes.base import NodeContext

if TYPE_CHECKING:
    from graphs.compile import CompiledFlow


@dataclass(frozen=True)
class FirstCall:
    """A first model node's first request; ``items``: how many times a map makes it."""

    node: str
    request: ModelRequest
    items: int = 1
    # The map it belongs to, for a call of a map's inline flow.
    map_node: str | None = None


class _Captured(BaseException):
    # BaseException: no node's own ``except Exception`` may mistake it for a failure.
    def __init__(self, request: ModelRequest):
        super().__init__("captured")
        self.request = request


class _Keeper:
    """A model client that keeps the request it is asked to send, and sends nothing."""

    name = "estimate"

    async def complete(
        self,
        request: ModelRequest,
        on_text: Callable[[str], None],
        *,
        on_thinking: Callable[[str], None] | None = None,
        on_start: Callable[[Usage], None] | None = None,
    ) -> ModelResponse:
        raise _Captured(request)


def first_nodes(flow: CompiledFlow, inputs: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """node -> the values on its ports, for each node whose every input comes from an
    ``input`` node (the run's ``inputs``, resolved) and that has at least one."""
    names = {spec.node: name for name, spec in flow.inputs.items()}
    found: dict[str, dict[str, Any]] = {}
    for node in flow.nodes:
        edges = list(flow.graph.in_edges(node, data=True))
        if not edges or node in names:
            continue
        if all(source in names for source, _, _ in edges):
            found[node] = {
                str(data.get("target_port")): inputs.get(names[source]) for source, _, data in edges
            }
    return found


async def first_calls(
    flow: CompiledFlow, inputs: Mapping[str, Any], files: FileSource | None = None
) -> list[FirstCall]:
    """The first request of each first model node (see the module), in node order, file
    inputs read from ``files`` (default: the flow's services'). Raises FlowInvalid when the
    inputs do not fit the flow."""
    resolved = flow.resolve_inputs(inputs)
    calls: list[FirstCall] = []
    for node, values in first_nodes(flow, resolved).items():
        spec = flow.nodes[node]
        if spec.type.calls_model:
            request = await _render(flow, node, values, files)
            if request is not None:
                calls.append(FirstCall(node, request))
        elif spec.type.name == "map" and isinstance(values.get("items"), list) and values["items"]:
            items = values["items"]
            context = {port: value for port, value in values.items() if port != "items"}
            inner = spec.prepared
            try:
                inner_calls = await first_calls(inner, {**context, "item": items[0]}, files)
            except ValueError:  # FlowInvalid: the inline flow takes other inputs
                continue
            calls += [
                replace(call, items=len(items) * call.items, map_node=node) for call in inner_calls
            ]
    return calls


async def _render(
    flow: CompiledFlow, node: str, values: dict[str, Any], files: FileSource | None
) -> ModelRequest | None:
    """The node's first request as its run would make it; None when it makes none (a
    router choosing by rule) or cannot be rendered (a template that fails)."""
    spec = flow.nodes[node]
    services = replace(
        flow.services,
        model_client=_Keeper(),
        budget=NO_BUDGET,
        files=files if files is not None else flow.services.files,
    )
    ctx = NodeContext(
        node_id=node,
        iteration=1,
        attempt=1,
        run_inputs={},
        services=services,
        prepared=spec.prepared,
        emit_text=_ignore,
        emit_progress=_ignore,
        run_subflow=_no_subflow,
    )
    try:
        await spec.type.run(ctx, spec.config, values)
    except _Captured as captured:
        return captured.request
    except Exception:
        return None  # its failure is the run's to report, not the estimate's
    return None


def _ignore(*_: Any) -> None:
    return None


async def _no_subflow(*_: Any, **__: Any) -> Any:
    raise RuntimeError("an estimate runs no sub-flow")
