"""Saved flows that a flow calls (``subflow`` nodes, agents' ``flow:ID`` tools): the web
app's side of the engine's seam, ``graphs.subflows.FlowSource``.

A reference is a flow's id (digits). ``SavedFlows`` is bound to a user and a role: the
flows that user has that role on are the ones it finds; any other id is "no flow N you
may run" whether it exists or not, so a reference tells a stranger nothing. Running
needs the editor role (what running a flow needs anywhere: webapp.flows.access); a page
that only draws a flow looks up with the viewer role.

When a run starts (webapp.runs.services) its flow is compiled with the runner's
``SavedFlows``, so every flow it calls directly is checked then: a forbidden or missing
one is a problem naming the node and field, and nothing is stored. Each child start
checks again (``run``): the runner's role now, the nesting depth
(``settings.SUBFLOW_MAX_DEPTH``) and cycles, over the chain of flows from the root run
down (``chain_of``).

A child run is a ``Run`` of kind ``subflow`` whose ``parent`` is the calling run and
``parent_node`` the calling node, started by the same user. It runs inside the calling
node's execution, in the same process and on the same event loop, whichever driver runs
the parent (the in-process driver, or a celery worker running that node): its events go
to its own log through the one writer (``sink.Sink`` -> ``eventlog.append``), so its
run page follows it live. Cancelling the calling node (the parent's cancel reaches it on
either driver) cancels the child, whose log then ends ``cancelled``. The child's usage
comes back to the node (``ChildResult.usage_by_model``), so the parent's cost includes
it; the parent's ``node_finished`` names the child in ``child_runs``.

A child does not count against the user's runs in flight (its parent did), but its bytes
count against their storage like any run's.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from graphs.compile import CompiledFlow, compile_flow
from graphs.errors import FlowInvalid
from graphs.nodes.base import Services
from graphs.schedule import RunOptions
from graphs.subflows import (
    ChildCall,
    ChildResult,
    FlowInfo,
    FlowUnavailable,
    check_reference,
    describe,
    refusal,
)
from webapp.credentials.service import names_credentials, run_credentials
from webapp.execution.cache import DbNodeCache
from webapp.execution.provider_cap import run_slots
from webapp.execution.sink import Sink
from webapp.flows import access
from webapp.flows.models import Flow, FlowVersion
from webapp.mcpservers.service import names_mcp_tools, run_servers
from webapp.runs import limits
from webapp.runs.models import Run


class SavedFlows:
    """The flows `user_id` has `role` on, for a run (`run_id`) inside `chain` (flow ids)."""

    def __init__(
        self,
        user_id: int | None,
        *,
        run_id: int | None = None,
        chain: tuple[str, ...] = (),
        role: str = access.EDITOR,
        max_depth: int | None = None,
    ):
        self.user_id = user_id
        self.run_id = run_id
        self.chain = chain
        self.role = role
        self.max_depth = settings.SUBFLOW_MAX_DEPTH if max_depth is None else max_depth

    def look_up(self, reference: str, version: int | None = None) -> FlowInfo:
        return describe(reference, *self._version(reference, version))

    def _version(self, reference: str, version: int | None) -> tuple[dict, int]:
        if (problem := check_reference(reference)) is not None:
            raise FlowUnavailable(problem)
        if not reference.isdigit() or len(reference) > 18:
            raise FlowUnavailable(f"flow {reference!r}: a saved flow is named by its id")
        if (refused := refusal(self.chain, reference, self.max_depth)) is not None:
            raise FlowUnavailable(refused)
        verb = "run" if self.role != access.VIEWER else "see"
        missing = FlowUnavailable(f"no flow {reference} that you may {verb}")
        if self.user_id is None:
            raise missing
        # A flow in the user's personal space is theirs to run: one query for it and its
        # version, where the general check below makes three (validating a flow that calls
        # another looks it up for its ports and for its problems).
        personal = (
            FlowVersion.objects.filter(
                flow_id=int(reference),
                flow__owner_id=self.user_id,
                flow__team__isnull=True,
                number=F("flow__version") if version is None else version,
            )
            .values_list("graph", "number")
            .first()
        )
        if personal is not None:
            return personal
        from django.contrib.auth import get_user_model

        user = get_user_model().objects.filter(pk=self.user_id).first()
        if user is None:
            raise missing
        flow = access.flows_with_role(user, self.role).filter(pk=int(reference)).first()
        if flow is None:
            raise missing
        number = flow.version if version is None else version
        graph = (
            FlowVersion.objects.filter(flow=flow, number=number)
            .values_list("graph", flat=True)
            .first()
        )
        if graph is None:
            raise FlowUnavailable(f"flow {reference} has no version {number}", "version")
        return graph, number

    async def run(self, call: ChildCall, services: Services) -> ChildResult:
        starting = asyncio.ensure_future(database_sync_to_async(self._start_child)(call, services))
        try:
            started = await asyncio.shield(starting)
        except asyncio.CancelledError:
            # The row may be stored all the same: it must not stay running with nothing
            # running it.
            made = await starting
            if not isinstance(made, ChildResult):
                await database_sync_to_async(_cancelled_before_start)(made[0].pk)
            raise
        if isinstance(started, ChildResult):
            return started
        child, flow, inputs, options = started
        sink = Sink(child.pk)
        try:
            # The provider's cap holds for a child's calls too (per process on a worker,
            # where only a node's own calls take the cluster-wide slots).
            handle = flow.start(inputs, sink, slots=run_slots(flow.services), options=options)
            sink.stop_run = handle.cancel
            # Cancelling this task cancels the child's run, which closes its log first.
            result = await handle.wait()
        finally:
            await sink.close()
        return ChildResult(
            result.status, result.outputs, result.error, dict(result.usage_by_model), child.pk
        )

    def _start_child(
        self, call: ChildCall, services: Services
    ) -> ChildResult | tuple[Run, CompiledFlow, dict[str, Any], RunOptions]:
        """The child's row and compiled flow, or why it cannot start (nothing stored)."""
        try:
            graph, number = self._version(call.reference, call.version)
        except FlowUnavailable as exc:
            return ChildResult("failed", {}, str(exc))
        parent = Run.objects.only("pk", "ignore_cache").get(pk=self.run_id)
        version = FlowVersion.objects.get(flow_id=int(call.reference), number=number)
        child_flows = SavedFlows(
            self.user_id,
            chain=(*self.chain, call.reference),
            role=self.role,
            max_depth=self.max_depth,
        )
        lent = services.credentials
        servers = services.mcp
        uses_mcp = names_mcp_tools(graph)
        if uses_mcp or names_credentials(graph):
            # The called flow's own (its team's, else the runner's), not its caller's.
            team_id = Flow.objects.filter(pk=version.flow_id).values_list("team_id", flat=True)
            lent = run_credentials(team_id.first(), self.user_id)
            if uses_mcp:
                servers = run_servers(team_id.first(), self.user_id)
        try:
            flow = _compile(
                graph, replace(services, flows=child_flows, credentials=lent, mcp=servers)
            )
            inputs = flow.resolve_inputs(call.inputs)
        except FlowInvalid as exc:
            return ChildResult("failed", {}, f"flow {call.reference} cannot run: {exc}")
        with transaction.atomic():
            child = Run(
                flow_id=version.flow_id,
                flow_version=version,
                started_by_id=self.user_id,
                inputs=inputs,
                kind=Run.Kind.SUBFLOW,
                parent_id=self.run_id,
                parent_node=call.node,
                status=Run.Status.RUNNING,
                ignore_cache=parent.ignore_cache,
            )
            child.stored_bytes = limits.start_bytes(child)
            child.save()
            limits.charge(self.user_id, child.stored_bytes)
        child_flows.run_id = child.pk
        options = RunOptions(
            cache=DbNodeCache(child.flow_id, child.pk), read_cache=not child.ignore_cache
        )
        return child, flow, inputs, options


def _cancelled_before_start(run_id: int) -> None:
    Run.objects.filter(pk=run_id, status=Run.Status.RUNNING).update(
        status=Run.Status.CANCELLED, error="cancelled", finished_at=timezone.now()
    )


def _compile(graph: dict, services: Services) -> CompiledFlow:
    return compile_flow(graph, services)


def chain_of(run: Run) -> tuple[str, ...]:
    """The flow ids from the root run down to `run`, through its sub-flow parents."""
    chain = [str(run.flow_id)]
    kind, parent_id = run.kind, run.parent_id
    while kind == Run.Kind.SUBFLOW and parent_id is not None and len(chain) < 100:
        row = Run.objects.filter(pk=parent_id).values("flow_id", "kind", "parent_id").first()
        if row is None:
            break
        chain.append(str(row["flow_id"]))
        kind, parent_id = row["kind"], row["parent_id"]
    return tuple(reversed(chain))


def calls_flows(document: Any) -> bool:
    """Whether a flow document calls saved flows (a subflow node, an agent's flow: tool),
    itself or in a map's inline flow: then its compiled form depends on who runs it."""
    nodes = document.get("nodes") if isinstance(document, dict) else None
    for node in nodes if isinstance(nodes, list) else []:
        if not isinstance(node, dict):
            continue
        config = node.get("config") if isinstance(node.get("config"), dict) else {}
        kind = node.get("type")
        if kind == "subflow":
            return True
        tools = config.get("tools")
        if (
            kind == "agent"
            and isinstance(tools, list)
            and any(isinstance(t, str) and t.startswith("flow:") for t in tools)
        ):
            return True
        if kind == "map" and calls_flows(config.get("flow")):
            return True
    return False
