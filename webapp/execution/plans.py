"""What every driver needs before a run executes: its compiled flow and its run options.

Compiled flows are cached per flow version (versions never change), so many runs, and
every node task of a run on a worker, share one. A flow that calls saved flows
(webapp.execution.subflows) is the exception: what it may call, and the ports of what it
calls, depend on who runs it and on the called flows' current versions, so it is
compiled afresh for its runner (``user_id``) each time, and for a run (``compiled_run``)
with the run's own source of flows, which starts its children.
"""

from __future__ import annotations

import copy
import datetime as dt
import threading
import time
from collections import OrderedDict
from dataclasses import replace
from functools import cache, lru_cache
from typing import Any

from channels.db import database_sync_to_async

import graphs
from graphs import files
from graphs.errors import FlowInvalid, Problem
from graphs.executor import RunOptions
from graphs.llm.anthropic import AnthropicClient
from graphs.llm.types import ModelClient
from graphs.naming import node_name, problem_text
from graphs.nodes.base import Services
from graphs.replan import reuse_for_resume, reuse_from_node
from graphs.settings import services_from_env
from webapp.credentials.service import model_key, names_credentials, run_credentials
from webapp.execution.cache import DbNodeCache
from webapp.execution.history import RunHistory
from webapp.execution.subflows import SavedFlows, calls_flows, chain_of
from webapp.flows.models import Flow, FlowVersion
from webapp.mcpservers.service import names_mcp_tools, run_servers
from webapp.runs import breakpoints
from webapp.runs.budgets import DbBudget
from webapp.runs.files import RunFiles
from webapp.runs.models import Run, RunEvent


@cache
def engine_services() -> Services:
    # Compiled flows hold the services they were built with.
    _compiled.clear()
    _runs.clear()
    return services_from_env()


def compile_version(graph: dict, flows: SavedFlows | None = None) -> graphs.CompiledFlow:
    services = engine_services()
    if flows is not None:
        services = replace(services, flows=flows)
    return graphs.compile_flow(graph, services)


def user_services(user_id: int | None, *, role: str | None = None) -> Services:
    """The engine's services with the saved flows `user_id` may run (or see: `role`)."""
    flows = SavedFlows(user_id) if role is None else SavedFlows(user_id, role=role)
    return replace(engine_services(), flows=flows)


_compiled: OrderedDict[tuple[int, dt.datetime], graphs.CompiledFlow] = OrderedDict()
# A worker's node tasks run on threads of their own, all sharing this cache.
_compiled_lock = threading.Lock()
COMPILED_CACHE_SIZE = 256


class VersionCannotRun(FlowInvalid):
    """A saved version with problems (unfinished work is saved): every way of running or
    publishing it is refused with this, which names its number and its problems."""

    def __init__(self, number: int, problems: list[Problem], graph: dict | None = None):
        super().__init__(problems)
        self.number = number
        # How the message names each node: its label, with its key (graphs.naming).
        nodes = (graph or {}).get("nodes") or []
        self.names = {n["id"]: node_name(n["id"], n) for n in nodes if isinstance(n, dict)}

    def __str__(self) -> str:
        count = len(self.problems)
        shown = "; ".join(problem_text(p, self.names) for p in self.problems[:3])
        shown += "; ..." if count > 3 else ""
        return (
            f"version {self.number} has {count} problem{'s' if count != 1 else ''} to fix "
            f"before it can run: {shown}"
        )


def compiled_version(version: FlowVersion, user_id: int | None = None) -> graphs.CompiledFlow:
    """The compiled plan of a flow version. Versions never change, so many runs share one.

    One that calls saved flows is compiled for `user_id`, who is to run it. A version with
    problems raises VersionCannotRun."""
    try:
        return _compiled_version(version, user_id)
    except FlowInvalid as exc:
        raise VersionCannotRun(version.number, exc.problems, version.graph) from None


def _compiled_version(version: FlowVersion, user_id: int | None) -> graphs.CompiledFlow:
    if calls_flows(version.graph):
        return compile_version(version.graph, SavedFlows(user_id, chain=(str(version.flow_id),)))
    # The creation time guards against a reused primary key (a flushed test database).
    key = (version.pk, version.created)
    with _compiled_lock:
        flow = _compiled.get(key)
        if flow is not None:
            _compiled.move_to_end(key)
            return flow
    flow = compile_version(version.graph)
    with _compiled_lock:
        _compiled[key] = flow
        if len(_compiled) > COMPILED_CACHE_SIZE:
            _compiled.popitem(last=False)
    return flow


def compiled_graph(
    version: FlowVersion, override: dict | None = None, user_id: int | None = None
) -> graphs.CompiledFlow:
    """The compiled plan of a run's graph: its version's, or the edited graph it ran instead."""
    if override is None:
        return compiled_version(version, user_id)
    # An edited graph belongs to one run (and its resumes): not worth a cache slot.
    if calls_flows(override):
        return compile_version(override, SavedFlows(user_id, chain=(str(version.flow_id),)))
    return compile_version(override)


# Runs' compiled flows, with what each is lent, by run, for RUN_CACHE_S: a worker runs
# many node tasks of a run, and the coordinator's steps on it, each of which would look up
# its team and credentials (and compile it afresh, for a flow that calls saved flows).
# Briefly: a credential changed while the run runs reaches its later nodes soon after, and
# a run resumed after a wait looks everything up again, as the in-process driver does.
RUN_CACHE_S = 30.0
_runs: OrderedDict[tuple[int, dt.datetime], tuple[float, graphs.CompiledFlow]] = OrderedDict()
_runs_lock = threading.Lock()


def compiled_run(run: Run) -> graphs.CompiledFlow:
    """The run's compiled plan; one that calls saved flows starts its children as `run`'s,
    and one that names credentials or MCP tools is lent the run's credentials and MCP servers
    (its team's, else its starter's). The same for RUN_CACHE_S (see _runs)."""
    flow = cached_run(run)
    if flow is not None:
        return flow
    # The creation time guards against a reused primary key (a flushed test database).
    key = (run.pk, run.created)
    now = time.monotonic()
    flow = _compiled_run(run)
    with _runs_lock:
        _runs[key] = (now, flow)
        _runs.move_to_end(key)
        while len(_runs) > COMPILED_CACHE_SIZE:
            _runs.popitem(last=False)
    return flow


def cached_run(run: Run) -> graphs.CompiledFlow | None:
    """``compiled_run``'s answer if it has one cached, else None; never touches the
    database, so an event loop may ask (a worker's node, without a thread hop)."""
    key = (run.pk, run.created)
    with _runs_lock:
        found = _runs.get(key)
        if found is not None and time.monotonic() - found[0] < RUN_CACHE_S:
            _runs.move_to_end(key)
            return found[1]
    return None


def _compiled_run(run: Run) -> graphs.CompiledFlow:
    if not calls_flows(run.graph):
        flow = compiled_graph(run.flow_version, run.graph_override)
    else:
        flows = SavedFlows(run.started_by_id, run_id=run.pk, chain=chain_of(run))
        flow = compile_version(run.graph, flows)
    if Run.flow.is_cached(run):  # loaded with the run (the in-process driver's start)
        team_id = run.flow.team_id
    else:
        team_id = Flow.objects.filter(pk=run.flow_id).values_list("team_id", flat=True).first()
    changes: dict[str, Any] = {}
    uses_mcp = names_mcp_tools(run.graph)
    if uses_mcp:
        changes["mcp"] = run_servers(team_id, run.started_by_id)
    if uses_mcp or names_credentials(run.graph):
        changes["credentials"] = run_credentials(team_id, run.started_by_id)
    key = model_key(team_id, run.started_by_id)
    if key is not None:
        changes["model_client"] = keyed_model_client(key)
    if any(files.is_ref(value) for value in (run.inputs or {}).values()):
        changes["files"] = RunFiles(run.flow_id)
    if run.budget_usd is not None:
        # Each model call reserves its cost against the run's budget, in the database.
        changes["budget"] = DbBudget(run.pk)
    if not changes:
        return flow
    # A shallow copy: the cached plan is shared by other runs and must not hold these.
    flow = copy.copy(flow)
    flow.services = replace(flow.services, **changes)
    return flow


@lru_cache(maxsize=64)
def keyed_model_client(key: str) -> ModelClient:
    """The Anthropic client of a team's (or user's) own key: one per key, so its runs share
    a connection pool as the server's client does."""
    import anthropic  # as graphs.llm.anthropic does: slow to load, only when needed

    return AnthropicClient(anthropic.AsyncAnthropic(api_key=key))


# What re-planning reads of an earlier run: where each node got to, and its outputs.
REPLAN_EVENTS = ("node_started", "node_finished", "node_failed", "node_skipped")


def options_for(run: Run) -> RunOptions:
    """How the engine runs `run`: what it reuses of its parent, port overrides, the cache.

    Raises ValueError (FlowInvalid among them) when the run cannot start as asked.
    """
    reuse = {}
    if run.kind in (Run.Kind.FROM_NODE, Run.Kind.RESUME):
        if run.parent_id is None:
            raise ValueError("the run this one continues no longer exists")
        events = RunEvent.objects.filter(run_id=run.parent_id, type__in=REPLAN_EVENTS)
        recorded = list(events.order_by("seq").values_list("payload", flat=True))
        source = f"run {run.parent_id}"
        if run.kind == Run.Kind.FROM_NODE:
            reuse = reuse_from_node(run.graph, recorded, run.from_node, source)
        else:
            reuse = reuse_for_resume(run.graph, recorded, source)
    # A resumed run keeps its parent's port overrides, but only for nodes that run again.
    overrides = {node: ports for node, ports in run.input_overrides.items() if node not in reuse}
    return RunOptions(
        reuse=reuse,
        overrides=overrides,
        cache=DbNodeCache(run.flow_id, run.pk),
        read_cache=not run.ignore_cache,
        breakpoints=breakpoints.applied(run),
        history=RunHistory.of(run),
        latency="batch" if run.latency == "batch" else "stream",
    )


run_options = database_sync_to_async(options_for)
