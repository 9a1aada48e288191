"""What a run of a flow may cost, before it starts: the run form's and the API's estimate.

- The first model nodes (every input a run input: ``graphs.estimate``): the request each
  would send is rendered, its input tokens counted by the API (``count_tokens``), priced at
  the model's input price, plus the node's ``max_tokens`` at its output price: the most its
  first reply may cost. A ``map`` whose list is a run input counts its inline flow's first
  calls for one item, times its items.
- Every other node that cost something before: the mean of what it cost in the flow's
  last ``PAST_RUNS`` succeeded runs (its ``node_finished`` figures).
- On the offline model, nothing costs anything: the estimate is 0.
- File inputs sent with the estimate (checked as a run's, never stored) are lent to the
  render from memory, so their image and document blocks are counted with the prompt.

Each node's line says where its figure comes from (``source``: ``count_tokens``,
``past_runs``, ``offline``); a first model node whose count failed falls back to its past.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from asgiref.sync import sync_to_async

from graphs.errors import ModelError
from graphs.estimate import first_calls
from graphs.llm.types import ModelClient
from webapp.credentials.service import model_key
from webapp.execution.plans import compiled_version, keyed_model_client
from webapp.flows.models import Flow, FlowVersion
from webapp.runs import pricing
from webapp.runs.files import HeldFiles, Upload, refs
from webapp.runs.models import Run, RunEvent

PAST_RUNS = 20


@dataclass(frozen=True)
class NodeCost:
    node: str
    usd: Decimal
    source: str
    input_tokens: int | None = None
    max_tokens: int | None = None
    items: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "usd": float(self.usd),
            "source": self.source,
            "input_tokens": self.input_tokens,
            "max_tokens": self.max_tokens,
            "items": self.items,
        }


@dataclass(frozen=True)
class Estimate:
    usd: Decimal
    nodes: list[NodeCost]

    def as_json(self) -> dict[str, Any]:
        return {"estimate_usd": float(self.usd), "nodes": [n.as_json() for n in self.nodes]}


async def estimate(
    flow: Flow,
    version: FlowVersion,
    user,
    inputs: dict[str, Any],
    uploads: list[Upload] | None = None,
) -> Estimate:
    """The estimate of a run of ``version`` by ``user`` with ``inputs`` and file
    ``uploads`` (``webapp.runs.files.check``'s) (FlowInvalid when the version cannot run
    or the inputs do not fit it)."""
    compiled, client = await sync_to_async(_compiled_and_client)(flow, version, user)
    if uploads:
        inputs = {**inputs, **refs(uploads)}
    calls = await first_calls(compiled, inputs, HeldFiles(uploads) if uploads else None)
    if client.name == "offline":
        zero = [NodeCost(call.map_node or call.node, Decimal(0), "offline") for call in calls]
        return Estimate(Decimal(0), _merged(zero))
    counted: list[NodeCost] = []
    count = getattr(client, "count_tokens", None)
    for call in calls:
        if count is None:
            break
        try:
            tokens = await count(call.request)
        except ModelError:
            continue  # its past runs say what they can
        usage = {"input_tokens": tokens, "output_tokens": call.request.max_tokens}
        usd = (pricing.cost_usd(call.request.model, usage) or Decimal(0)) * call.items
        counted.append(
            NodeCost(
                call.map_node or call.node,
                usd,
                "count_tokens",
                tokens,
                call.request.max_tokens,
                call.items if call.map_node else None,
            )
        )
    nodes = _merged(counted)
    known = {cost.node for cost in nodes}
    past = await sync_to_async(past_costs)(flow.pk)
    for node in compiled.nodes:
        if node not in known and past.get(node):
            nodes.append(NodeCost(node, past[node], "past_runs"))
    return Estimate(sum((n.usd for n in nodes), Decimal(0)), nodes)


def _compiled_and_client(flow: Flow, version: FlowVersion, user) -> tuple[Any, ModelClient]:
    compiled = compiled_version(version, getattr(user, "pk", None))
    key = model_key(flow.team_id, getattr(user, "pk", None))
    client = keyed_model_client(key) if key is not None else compiled.services.model_client
    return compiled, client


def _merged(costs: list[NodeCost]) -> list[NodeCost]:
    """One line per node: a map's inline calls add up under the map."""
    by_node: dict[str, NodeCost] = {}
    for cost in costs:
        seen = by_node.get(cost.node)
        if seen is None:
            by_node[cost.node] = cost
        else:
            by_node[cost.node] = NodeCost(
                cost.node,
                seen.usd + cost.usd,
                seen.source,
                (seen.input_tokens or 0) + (cost.input_tokens or 0),
                seen.max_tokens,
                seen.items,
            )
    return list(by_node.values())


def past_costs(flow_id: int) -> dict[str, Decimal]:
    """node -> its mean cost per run over the flow's last PAST_RUNS succeeded runs (the
    runs in which it cost something; a node in a loop adds up its iterations)."""
    runs = list(
        Run.objects.filter(flow_id=flow_id, status=Run.Status.SUCCEEDED)
        .order_by("-created")
        .values_list("pk", flat=True)[:PAST_RUNS]
    )
    if not runs:
        return {}
    per_run: defaultdict[str, defaultdict[int, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    events = RunEvent.objects.filter(run_id__in=runs, type="node_finished")
    for run_id, payload in events.values_list("run_id", "payload"):
        cost = payload.get("cost_usd")
        node = payload.get("node")
        if isinstance(cost, int | float) and cost > 0 and isinstance(node, str):
            per_run[node][run_id] += Decimal(str(cost))
    return {
        node: (sum(costs.values(), Decimal(0)) / len(costs)).quantize(pricing.CENTS)
        for node, costs in per_run.items()
    }
