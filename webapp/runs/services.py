"""Creating runs, and the rules of a run's life that every driver follows.

Every ``create_*`` checks everything it can before storing a run: a request that
cannot run raises FlowInvalid (the engine's problems) or ValueError (what is wrong, in
words) and leaves nothing behind. A user at one of the deployment's limits (runs in
flight, stored bytes: webapp.runs.limits) gets RunRefused instead, from ``_store``, the
one place runs are made. A stored run is handed to the driver (webapp.execution.start)
once the transaction that stored it commits; ``start_notice`` says what the driver said.

``fail``, ``cancel_queued`` and ``cancel_orphan`` are how a run ends when no engine closes
its event log: both drivers use them.
"""

from __future__ import annotations

import copy
from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from graphs import CompiledFlow
from graphs.errors import FlowInvalid, Problem
from webapp import execution
from webapp.execution.plans import compiled_graph, compiled_version
from webapp.flows.models import Flow, FlowVersion
from webapp.runs import budgets, limits
from webapp.runs import files as run_files
from webapp.runs.models import Run


def create_run(
    flow: Flow,
    user,
    inputs: dict[str, Any],
    *,
    version: FlowVersion | None = None,
    trigger: str = Run.Trigger.EDITOR,
    ignore_cache: bool = False,
    breakpoints: list[str] | None = None,
    budget_usd: Any = None,
    files: dict[str, Any] | None = None,
    sent_files: dict[str, run_files.Sent] | None = None,
    latency: str = "stream",
) -> Run:
    """A queued run of `version` (default: the flow's current one); FlowInvalid (nothing
    stored) if it cannot run. ``files``: file inputs, {input: {name, data (base64)}};
    ``sent_files``: file inputs as bytes, from a multipart body (webapp.runs.files;
    FileRefused, nothing stored, naming the input at fault).
    ``breakpoints``: the editor's (webapp.runs.breakpoints). ``latency``: "batch" sends its
    model calls to the Message Batches API (graphs.llm.batch). ``budget_usd``: its cost
    budget, else its flow's (budgets.BudgetInvalid, nothing stored, when it cannot be one).

    The flow is compiled and the inputs resolved here so that a bad request never
    leaves a run behind that could only fail.
    """
    version = version or flow.current()
    # The flows it calls are checked for its runner here: one they may not run is a problem.
    compiled = compiled_version(version, _id(user))
    uploads = run_files.check(files, sent_files) if files or sent_files else []
    both = set(inputs) & {u.input_name for u in uploads}
    if both:
        raise run_files.FileRefused(
            f"input {sorted(both)[0]!r} is given both as a value and a file"
        )
    resolved = compiled.resolve_inputs({**inputs, **run_files.refs(uploads)})
    return _store(
        uploads=uploads,
        flow=flow,
        flow_version=version,
        started_by=user,
        inputs=resolved,
        trigger=trigger,
        ignore_cache=ignore_cache,
        breakpoints=breakpoints or [],
        budget_usd=budgets.budget_for(flow.budget_usd, budget_usd),
        latency=latency,
    )


def version_for_outside(flow: Flow) -> FlowVersion:
    """What a run from outside the editor runs when it names no version: the published
    version, else the newest."""
    return flow.published or flow.current()


def _id(user) -> int | None:
    return getattr(user, "pk", None)


def _store(**fields: Any) -> Run:
    """A new queued run, if its user is within their limits (else limits.RunRefused)."""
    if fields.get("parent") is not None:
        fields.setdefault("trigger", Run.Trigger.RERUN)
    if "budget_usd" not in fields:
        # Runs made otherwise (re-runs, webhooks, schedules, sub-flows) take their flow's.
        fields["budget_usd"] = fields["flow"].budget_usd
    uploads = fields.pop("uploads", [])
    with transaction.atomic():
        limits.check_start(fields["started_by"])
        run = Run(**fields)
        run.stored_bytes = limits.start_bytes(run)
        run.save()
        if uploads:
            # The run's id names its files; its inputs then name theirs.
            run.stored_bytes += run_files.store(run, uploads)
            run.save(update_fields=["inputs", "stored_bytes"])
        limits.charge(run.started_by_id, run.stored_bytes)
        transaction.on_commit(lambda: _start(run))
    return run


def _start(run: Run) -> None:
    run._start_notice = execution.start(run.pk)  # type: ignore[attr-defined]


def start_notice(run: Run) -> str | None:
    """Why the run cannot start yet (the celery driver's queue is unreachable), or None."""
    return getattr(run, "_start_notice", None)


# How a run ends when no engine closes its log


def fail(run_id: int, error: str) -> None:
    """The run could not be executed (its flow no longer compiles, the engine crashed)."""
    Run.objects.filter(pk=run_id).update(
        status=Run.Status.FAILED, error=error, finished_at=timezone.now()
    )


def cancel_queued(run_id: int) -> bool:
    """Cancel a run no driver has begun; False when it is no longer queued."""
    return _cancel(Run.objects.filter(pk=run_id, status=Run.Status.QUEUED))


def cancel_orphan(run_id: int) -> bool:
    """Cancel a run left queued or running that nothing executes (say, after a restart);
    False when it has ended."""
    return _cancel(
        Run.objects.filter(pk=run_id, status__in=[Run.Status.QUEUED, Run.Status.RUNNING])
    )


def _cancel(runs: QuerySet[Run]) -> bool:
    updated = runs.update(
        status=Run.Status.CANCELLED, error="cancelled", finished_at=timezone.now()
    )
    return bool(updated)


class NotResumable(ValueError):
    """Only a failed or cancelled run can be resumed."""


def create_rerun(
    run: Run,
    user,
    *,
    inputs: dict[str, Any] | None = None,
    on_current: bool = False,
    ignore_cache: bool = False,
) -> Run:
    """A queued re-run: the run's inputs (or `inputs`), on its graph or the flow's current one.

    On its own version a re-run runs exactly the graph the run ran (an edited node's
    override included); port overrides belonged to a re-run from a node and are not kept.
    """
    if on_current:
        version = run.flow.current()
        override = None
        compiled = compiled_version(version, _id(user))
    else:
        version = run.flow_version
        override = run.graph_override
        compiled = compiled_graph(version, override, _id(user))
    resolved = compiled.resolve_inputs(run.inputs if inputs is None else inputs)
    return _store(
        flow=run.flow,
        flow_version=version,
        started_by=user,
        inputs=resolved,
        kind=Run.Kind.RERUN,
        parent=run,
        graph_override=override,
        ignore_cache=ignore_cache,
    )


def create_from_node(
    run: Run,
    user,
    node: str,
    *,
    config: dict[str, Any] | None = None,
    port_values: dict[str, Any] | None = None,
    ignore_cache: bool = False,
) -> Run:
    """A queued re-run from `node`: upstream outputs come from `run`, `node` and below run.

    `config` replaces the node's config (the edited graph is stored with the run);
    `port_values` replace what arrives on the node's input ports.
    """
    if not run.finished:
        raise ValueError(f"run {run.pk} has not finished: re-run from a node once it has")
    graph = run.graph
    if node_of(graph, node) is None:
        raise ValueError(f"run {run.pk}'s flow has no node {node!r}")
    override = run.graph_override
    if config is not None:
        if not isinstance(config, dict):
            raise FlowInvalid([Problem("config must be a JSON object", node)])
        graph = with_config(graph, node, config)
        override = graph
    compiled = compiled_graph(run.flow_version, override, _id(user))
    overrides: dict[str, dict[str, Any]] = {}
    if port_values:
        if not isinstance(port_values, dict):
            raise ValueError("input values must be an object: {port: value}")
        ports = input_ports(compiled, node)
        unknown = sorted(set(port_values) - ports)
        if unknown:
            names = ", ".join(sorted(ports)) or "none"
            raise FlowInvalid(
                [
                    Problem(f"no input port {port!r} (input ports: {names})", node)
                    for port in unknown
                ]
            )
        overrides = {node: dict(port_values)}
    return _store(
        flow=run.flow,
        flow_version=run.flow_version,
        started_by=user,
        inputs=run.inputs,
        kind=Run.Kind.FROM_NODE,
        parent=run,
        from_node=node,
        graph_override=override,
        input_overrides=overrides,
        ignore_cache=ignore_cache,
    )


def create_resume(run: Run, user) -> Run:
    """A queued resume of a failed or cancelled run: only what did not finish runs again."""
    if run.status not in Run.RESUMABLE:
        raise NotResumable(
            f"run {run.pk} is {run.status}: only a failed or cancelled run can be resumed"
        )
    # Checked now so that a graph the engine no longer accepts fails here, not in the run.
    compiled_graph(run.flow_version, run.graph_override, _id(user))
    return _store(
        flow=run.flow,
        flow_version=run.flow_version,
        started_by=user,
        inputs=run.inputs,
        kind=Run.Kind.RESUME,
        parent=run,
        graph_override=run.graph_override,
        input_overrides=run.input_overrides,
        ignore_cache=run.ignore_cache,
    )


def node_of(graph: dict[str, Any], node_id: str) -> dict[str, Any] | None:
    return next((n for n in graph.get("nodes", []) if n.get("id") == node_id), None)


def with_config(graph: dict[str, Any], node_id: str, config: dict[str, Any]) -> dict[str, Any]:
    """A copy of the flow document with one node's config replaced."""
    edited = copy.deepcopy(graph)
    node_of(edited, node_id)["config"] = config  # type: ignore[index]
    return edited


def input_ports(compiled: CompiledFlow, node_id: str) -> set[str]:
    """The ports a node reads values on: those an edge arrives at."""
    return set(compiled.nodes[node_id].in_ports)
