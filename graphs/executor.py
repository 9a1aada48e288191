"""The executor: compile a flow once, then run it as many times as you like.

>>> import asyncio
>>> flow = compile_flow({
...     "graph": {"name": "greet"},
...     "nodes": [
...         {"id": "who", "type": "input", "config": {"name": "who"}},
...         {"id": "greet", "type": "template", "config": {"template": "Hello {{ who }}!"}},
...         {"id": "out", "type": "output", "config": {"name": "greeting"}},
...     ],
...     "edges": [
...         {"source": "who", "target": "greet", "source_port": "value", "target_port": "who"},
...         {"source": "greet", "target": "out", "source_port": "text", "target_port": "value"},
...     ],
... })
>>> result = asyncio.run(flow.run({"who": "world"}))
>>> result.status, result.outputs
('succeeded', {'greeting': 'Hello world!'})

How values move. An edge carries what its source emits on ``source_port`` to
its target's ``target_port``. A node fires when it has a fresh value on at
least one port and every other port either holds a value or can no longer
receive one (its sources are done): joins wait only for live branches. Values
that come from outside the node's own cycle stay on the port for later
iterations; values that come round the cycle are used once.

When nothing more can reach a strongly connected component (a single node,
or a loop), it is done: its nodes that never ran are skipped, and the edges
that leave it can carry nothing more. That is how a route not taken skips
everything only it reaches, in time linear in the size of the flow.

Reuse and overrides (``RunOptions``). A node named in ``reuse`` does not run:
the first time it fires it reports the output an earlier run recorded
(``node_started``, then ``node_finished`` with ``reused`` and no usage), takes
no concurrency slot, and hands that output on as if it had computed it. Later
firings of a reused node do nothing, so a loop whose nodes are all reused
passes on its final values once and then falls idle, and a reused router
sends its recorded route only, so the route not taken is skipped again.
``overrides`` replace the values arriving on a node's ports, every time it
fires. Both are checked before the run starts: a node or port that does not
exist is a ``FlowInvalid``.

The node cache (``RunOptions.cache``, see ``graphs.cache``). A node whose type
says it is worth caching (``NodeType.cacheable``; ``config.cache`` overrides
it) looks its ``cache_key`` up before it runs, outside any concurrency slot.
A hit reports the stored output, streamed text, model and detail with zero
usage and a ``cached`` note of what it saved; a miss runs the node and stores
what a successful run produced. Failures are never stored. ``read_cache=False``
runs every node but still stores fresh results. A map's items share the run's
cache, not its reuse or overrides.

Usage. Every attempt's tokens count, failed ones included, and a map's node
reports those of its items; ``run_finished`` gives the total and the total per
model.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import defaultdict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import networkx as nx

from graphs import document, templating, validation
from graphs.cache import CachedOutput, NodeCache, cache_key
from graphs.errors import FlowInvalid, NodeError, Problem
from graphs.events import SCHEMA, Emitter, EventSink, discard
from graphs.llm.types import Usage
from graphs.nodes.base import CommonConfig, NodeContext, NodeType, Services

Status = Literal["succeeded", "failed", "cancelled"]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recorded:
    """An output recorded by an earlier run, used instead of running the node."""

    output: dict[str, Any]
    source: str | None = None  # e.g. "run 42", echoed in the event


@dataclass(frozen=True)
class RunOptions:
    """How a run may skip work: recorded outputs, edited inputs, the node cache."""

    reuse: Mapping[str, Recorded] = field(default_factory=dict)
    # node -> port -> value, replacing what arrives on that port.
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    cache: NodeCache | None = None
    # False ("ignore cache"): run every node, but still store the fresh results.
    read_cache: bool = True


NO_OPTIONS = RunOptions()


@dataclass(frozen=True)
class Target:
    node: str
    port: str
    # True when the edge stays inside one cycle: its value is used once, not kept.
    internal: bool


@dataclass(frozen=True)
class NodeSpec:
    id: str
    type: NodeType
    config: CommonConfig
    prepared: Any
    in_ports: tuple[str, ...]
    out_edges: Mapping[str, tuple[Target, ...]]
    component: int
    # The config as the cache key sees it; None when the node is not cached.
    cache_config: Mapping[str, Any] | None


@dataclass(frozen=True)
class Component:
    """A strongly connected component: one node, or the nodes of a loop."""

    nodes: tuple[str, ...]
    cyclic: bool
    external_in: int
    leaving: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class RunResult:
    status: Status
    outputs: dict[str, Any]
    usage: Usage = field(default_factory=Usage)
    error: str | None = None
    failed_node: str | None = None
    usage_by_model: dict[str, Usage] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {"status": self.status, "outputs": self.outputs}
        if self.error:
            result["error"] = self.error
        return result


@dataclass(frozen=True)
class InputSpec:
    node: str
    name: str
    has_default: bool
    default: Any


def compile_flow(
    flow: nx.MultiDiGraph | Mapping[str, Any], services: Services | None = None
) -> CompiledFlow:
    """Validate a flow (graph or document) and prepare it to run; raises FlowInvalid."""
    if services is None:
        from graphs.settings import services_from_env

        services = services_from_env()
    graph = flow if isinstance(flow, nx.MultiDiGraph) else document.load(flow)
    checked, problems = validation.check(graph, services)
    if problems:
        raise FlowInvalid(problems)
    return CompiledFlow(graph, checked, services)


class CompiledFlow:
    """A validated flow with its wiring worked out; ``run`` it with inputs."""

    def __init__(
        self,
        graph: nx.MultiDiGraph,
        checked: Mapping[str, validation.CheckedNode],
        services: Services,
    ):
        self.graph = graph
        self.name: str = graph.graph.get("name", "")
        self.services = services
        component_of: dict[str, int] = {}
        members = list(nx.strongly_connected_components(graph))
        for index, nodes in enumerate(members):
            for node in nodes:
                component_of[node] = index
        self.port_external: dict[tuple[str, str], int] = defaultdict(int)
        self.port_internal: dict[tuple[str, str], int] = defaultdict(int)
        out_edges: dict[str, dict[str, list[Target]]] = defaultdict(lambda: defaultdict(list))
        in_ports: dict[str, set[str]] = defaultdict(set)
        external_in = [0] * len(members)
        leaving: list[list[tuple[str, str]]] = [[] for _ in members]
        for source, target, data in graph.edges(data=True):
            port = data["target_port"]
            internal = component_of[source] == component_of[target]
            out_edges[source][data["source_port"]].append(Target(target, port, internal))
            in_ports[target].add(port)
            if internal:
                self.port_internal[target, port] += 1
            else:
                self.port_external[target, port] += 1
                external_in[component_of[target]] += 1
                leaving[component_of[source]].append((target, port))
        self.components = [
            Component(
                nodes=tuple(sorted(nodes)),
                cyclic=len(nodes) > 1 or graph.has_edge(next(iter(nodes)), next(iter(nodes))),
                external_in=external_in[i],
                leaving=tuple(leaving[i]),
            )
            for i, nodes in enumerate(members)
        ]
        self.nodes: dict[str, NodeSpec] = {}
        for node_id, node in checked.items():
            self.nodes[node_id] = NodeSpec(
                id=node_id,
                type=node.type,
                config=node.config,
                prepared=node.type.prepare(node.config, services),
                in_ports=tuple(sorted(in_ports[node_id])),
                out_edges={port: tuple(ts) for port, ts in out_edges[node_id].items()},
                component=component_of[node_id],
                cache_config=_cache_config(node.type, node.config, services),
            )
        self.sources = tuple(n for n in sorted(graph.nodes) if graph.in_degree(n) == 0)
        self.inputs = {
            spec.config.name: InputSpec(  # type: ignore[attr-defined]
                node_id,
                spec.config.name,  # type: ignore[attr-defined]
                "default" in spec.config.model_fields_set,
                spec.config.default,  # type: ignore[attr-defined]
            )
            for node_id, spec in self.nodes.items()
            if spec.type.name == "input"
        }

    def resolve_inputs(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """The run's inputs with defaults filled in; FlowInvalid names what is missing."""
        problems = [
            Problem(f"unknown input {name!r} (inputs: {', '.join(sorted(self.inputs)) or 'none'})")
            for name in inputs
            if name not in self.inputs
        ]
        resolved = {}
        for name, spec in self.inputs.items():
            if name in inputs:
                resolved[name] = inputs[name]
            elif spec.has_default:
                resolved[name] = spec.default
            else:
                problems.append(
                    Problem(f"input {name!r} is required and has no default", spec.node)
                )
        if problems:
            raise FlowInvalid(problems)
        return resolved

    def option_problems(self, options: RunOptions) -> list[Problem]:
        """What in ``options`` names a node or port this flow does not have."""
        problems = [
            Problem("is to be reused, but the flow has no such node", node)
            for node in options.reuse
            if node not in self.nodes
        ]
        for node, values in options.overrides.items():
            spec = self.nodes.get(node)
            if spec is None:
                problems.append(Problem("has input overrides, but the flow has no such node", node))
                continue
            if node in options.reuse:
                problems.append(
                    Problem("is reused, so overriding its inputs would do nothing", node)
                )
            ports = ", ".join(spec.in_ports) or "none"
            problems += [
                Problem(
                    f"override for input port {port!r}, which it does not have (ports: {ports})",
                    node,
                )
                for port in values
                if port not in spec.in_ports
            ]
        return problems

    def start(
        self,
        inputs: Mapping[str, Any],
        sink: EventSink | None = None,
        *,
        slots: asyncio.Semaphore | None = None,
        options: RunOptions | None = None,
    ) -> Run:
        """Check the inputs and options and start the run as a task.

        Raises FlowInvalid before any event.
        """
        return Run(self._execution(inputs, sink, slots=slots, options=options))

    async def run(
        self,
        inputs: Mapping[str, Any],
        sink: EventSink | None = None,
        *,
        slots: asyncio.Semaphore | None = None,
        options: RunOptions | None = None,
    ) -> RunResult:
        """Run to the end and return the result (``start`` gives a handle that can cancel).

        Cancelling the task that awaits this cancels the run, records it, and re-raises.
        """
        return await self._execution(inputs, sink, slots=slots, options=options).execute()

    def _execution(
        self,
        inputs: Mapping[str, Any],
        sink: EventSink | None,
        *,
        slots: asyncio.Semaphore | None,
        options: RunOptions | None,
    ) -> _Execution:
        resolved = self.resolve_inputs(inputs)
        options = options or NO_OPTIONS
        if problems := self.option_problems(options):
            raise FlowInvalid(problems)
        return _Execution(self, resolved, Emitter(sink or discard), slots=slots, options=options)


def _cache_config(node_type: NodeType, config: CommonConfig, services: Services) -> dict | None:
    wanted = config.cache if config.cache is not None else node_type.cacheable(config, services)
    return config.model_dump(mode="json") if wanted else None


class Run:
    """A run in progress: ``await run.wait()`` for its result, ``run.cancel()`` to stop it."""

    def __init__(self, execution: _Execution):
        self._execution = execution
        self._task = asyncio.ensure_future(execution.execute())

    def cancel(self) -> None:
        self._execution.stop("cancelled", None)

    async def wait(self) -> RunResult:
        return await self._task


class _Failed(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass(slots=True)  # not frozen: made once per node, and frozen init costs more
class _Success:
    """A node's successful attempt: its context (usage, model, detail) and what it made."""

    ctx: NodeContext
    outputs: dict[str, Any]
    text: str  # what it streamed, kept only when the result is to be cached


class _Execution:
    """The mutable state of one run and the rules that move values through it."""

    def __init__(
        self,
        flow: CompiledFlow,
        inputs: dict[str, Any],
        emitter: Emitter,
        *,
        slots: asyncio.Semaphore | None,
        options: RunOptions,
    ):
        self.flow = flow
        self.inputs = inputs
        self.emitter = emitter
        self.services = flow.services
        self.slots = slots or asyncio.Semaphore(flow.services.max_concurrency)
        self.reuse = options.reuse
        self.overrides = options.overrides
        self.cache = options.cache
        self.read_cache = options.read_cache
        # A map's items share the cache; what to reuse or override names this flow's nodes.
        self.subflow_options = RunOptions(cache=options.cache, read_cache=options.read_cache)
        self.fresh: dict[str, dict[str, deque[tuple[Any, bool]]]] = defaultdict(
            lambda: defaultdict(deque)
        )
        self.kept: dict[str, dict[str, Any]] = defaultdict(dict)
        self.unresolved = dict(flow.port_external)
        self.component_unresolved = [c.external_in for c in flow.components]
        self.component_active = [0] * len(flow.components)
        self.component_done = [False] * len(flow.components)
        self.quiescing = -1
        self.running: set[str] = set()
        self.started: set[str] = set()
        self.iterations: dict[str, int] = defaultdict(int)
        self.tasks: set[asyncio.Task[None]] = set()
        self.settle_queue: deque[int] = deque()
        self.outputs: dict[str, Any] = {}
        self.usage = Usage()
        self.usage_by_model: dict[str, Usage] = {}
        self.ending: tuple[Status, str | None, str | None] | None = None
        self.quiet = asyncio.Event()

    async def execute(self) -> RunResult:
        self.emitter.emit("run_started", flow=self.flow.name, inputs=self.inputs, schema=SCHEMA)
        if self.ending is None:  # cancel() may come before the run's task first runs
            for node in self.flow.sources:
                self.start_node(node, {})
            self.settle_queue.extend(range(len(self.flow.components)))
            self.settle()
        try:
            if self.tasks:
                await self.quiet.wait()
        except asyncio.CancelledError:
            # Whoever awaited the run was cancelled: stop the nodes, record it, pass it on.
            self.stop("cancelled", None)
            if self.tasks:
                await asyncio.wait(list(self.tasks))
            self.finish()
            raise
        return self.finish()

    def finish(self) -> RunResult:
        self.emitter.flush_all()
        status, error, failed_node = self.ending or ("succeeded", None, None)
        result = RunResult(
            status, self.outputs, self.usage, error, failed_node, dict(self.usage_by_model)
        )
        self.emitter.emit(
            "run_finished",
            status=status,
            outputs=self.outputs,
            usage=self.usage.as_dict(),
            usage_by_model={m: u.as_dict() for m, u in sorted(self.usage_by_model.items())},
            **({"error": error} if error else {}),
        )
        return result

    def stop(self, status: Status, error: str | None, failed_node: str | None = None) -> None:
        """End the run early: cancel every node still running."""
        if self.ending is not None:
            return
        self.ending = (status, error, failed_node)
        for task in self.tasks:
            task.cancel()
            # A task cancelled before its first step never enters its finally (node_done).
            task.add_done_callback(self.forget)
        if not self.tasks:
            self.quiet.set()

    def forget(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if not self.tasks:
            self.quiet.set()

    # Firing rules -----------------------------------------------------------------

    def try_fire(self, node: str) -> None:
        if node in self.running or self.ending is not None:
            return
        spec = self.flow.nodes[node]
        fresh, kept = self.fresh[node], self.kept[node]
        has_fresh = False
        for port in spec.in_ports:
            if fresh[port]:
                has_fresh = True
            elif port not in kept and self.port_live(spec, port):
                return
        if not has_fresh:
            return
        inputs = {}
        for port in spec.in_ports:
            if fresh[port]:
                value, internal = fresh[port].popleft()
                if not internal:
                    kept[port] = value
                inputs[port] = value
            elif port in kept:
                inputs[port] = kept[port]
        self.start_node(node, inputs)

    def port_live(self, spec: NodeSpec, port: str) -> bool:
        key = (spec.id, port)
        if self.unresolved.get(key, 0):
            return True
        return bool(self.flow.port_internal.get(key)) and self.quiescing != spec.component

    def settle(self) -> None:
        """Mark done every queued component that nothing can reach any more."""
        while self.settle_queue:
            index = self.settle_queue.popleft()
            if (
                self.component_done[index]
                or self.component_active[index]
                or self.component_unresolved[index]
                or self.ending is not None
            ):
                continue
            component = self.flow.components[index]
            if component.cyclic:
                # Inside a loop, ports fed only from the loop are dead once it is idle.
                self.quiescing = index
                for node in component.nodes:
                    self.try_fire(node)
                    if self.component_active[index]:
                        break
                self.quiescing = -1
                if self.component_active[index]:
                    continue
            self.component_done[index] = True
            for node in component.nodes:
                if node not in self.started:
                    self.emitter.emit("node_skipped", node=node, iteration=1)
            for target, port in component.leaving:
                self.unresolved[target, port] -= 1
                downstream = self.flow.nodes[target].component
                self.component_unresolved[downstream] -= 1
                self.try_fire(target)
                self.settle_queue.append(downstream)

    # Running nodes ----------------------------------------------------------------

    def start_node(self, node: str, inputs: dict[str, Any]) -> None:
        if node in self.reuse and node in self.started:
            # A reused node reports its recorded (final) output once; firing again would
            # send that output round a loop for ever.
            return
        overrides = self.overrides.get(node)
        if overrides:
            inputs = {**inputs, **overrides}
        spec = self.flow.nodes[node]
        self.iterations[node] += 1
        iteration = self.iterations[node]
        limit = spec.config.max_iterations
        if limit is not None and iteration > limit:
            message = f"exceeded max_iterations={limit}"
            self.emitter.emit("node_failed", node=node, iteration=iteration, error=message)
            self.stop("failed", f"node {node!r} failed: {message}", node)
            return
        self.running.add(node)
        self.started.add(node)
        self.component_active[spec.component] += 1
        self.tasks.add(asyncio.ensure_future(self.run_node(spec, iteration, inputs)))

    def node_done(self, spec: NodeSpec) -> None:
        self.tasks.discard(asyncio.current_task())  # type: ignore[arg-type]
        self.running.discard(spec.id)
        self.component_active[spec.component] -= 1
        self.try_fire(spec.id)
        self.settle_queue.append(spec.component)
        self.settle()
        if not self.tasks:
            self.quiet.set()

    async def run_node(self, spec: NodeSpec, iteration: int, inputs: dict[str, Any]) -> None:
        try:
            recorded = self.reuse.get(spec.id)
            if recorded is not None:
                self.report_recorded(spec, iteration, inputs, recorded)
            else:
                await self.run_node_events(spec, iteration, inputs)
        finally:
            self.node_done(spec)

    async def run_node_events(self, spec: NodeSpec, iteration: int, inputs: dict[str, Any]) -> None:
        began = time.monotonic()
        key = self.cache_key(spec, inputs)
        try:
            if key is not None and self.read_cache:
                entry = await self.cache_get(key)
                if entry is not None:
                    self.report_cached(spec, iteration, inputs, entry, began)
                    return
            success = await self.attempts(spec, iteration, inputs, keep_text=key is not None)
        except asyncio.CancelledError:
            self.report_cancelled(spec, iteration)
            return
        except _Failed as failure:
            self.report_failed(spec, iteration, failure)
            return
        self.report_finished(spec, iteration, success, began)
        self.hand_on(spec, success.outputs)
        if key is not None:
            await self.cache_put(key, spec, success)

    def hand_on(self, spec: NodeSpec, outputs: dict[str, Any]) -> None:
        """What a node produced (or reproduced) becomes run output and flows on."""
        if spec.type.name == "output" and "value" in outputs:
            self.outputs[spec.config.name] = outputs["value"]  # type: ignore[attr-defined]
        self.deliver(spec, outputs)

    def deliver(self, spec: NodeSpec, outputs: dict[str, Any]) -> None:
        for port, value in outputs.items():
            for target in spec.out_edges.get(port, ()):
                self.fresh[target.node][target.port].append((value, target.internal))
                self.try_fire(target.node)

    # Reporting ----------------------------------------------------------------------

    def report_recorded(
        self, spec: NodeSpec, iteration: int, inputs: dict[str, Any], recorded: Recorded
    ) -> None:
        node = spec.id
        self.emitter.emit("node_started", node=node, iteration=iteration, inputs=inputs)
        self.emitter.emit(
            "node_finished",
            node=node,
            iteration=iteration,
            output=recorded.output,
            duration_s=0,
            reused={"source": recorded.source},
        )
        self.hand_on(spec, recorded.output)

    def report_cached(
        self,
        spec: NodeSpec,
        iteration: int,
        inputs: dict[str, Any],
        entry: CachedOutput,
        began: float,
    ) -> None:
        node = spec.id
        self.emitter.emit("node_started", node=node, iteration=iteration, inputs=inputs)
        if entry.text:
            self.emitter.emit("node_delta", node=node, iteration=iteration, text=entry.text)
        finished: dict[str, Any] = {
            "node": node,
            "iteration": iteration,
            "output": entry.output,
            "duration_s": round(time.monotonic() - began, 6),
            "usage": Usage().as_dict(),
        }
        if entry.model is not None:
            finished["model"] = entry.model
        if entry.detail:
            finished["detail"] = entry.detail
        finished["cached"] = {"source": entry.source, "usage": entry.usage.as_dict()}
        self.emitter.emit("node_finished", **finished)
        self.hand_on(spec, entry.output)

    def report_finished(
        self, spec: NodeSpec, iteration: int, success: _Success, began: float
    ) -> None:
        ctx = success.ctx
        self.emitter.flush(spec.id, iteration)
        finished: dict[str, Any] = {
            "node": spec.id,
            "iteration": iteration,
            "output": success.outputs,
            "duration_s": round(time.monotonic() - began, 6),
        }
        if ctx.attempt > 1:
            finished["attempts"] = ctx.attempt
        if ctx.model is not None:
            self.count_usage(ctx)
            finished["usage"] = ctx.usage.as_dict()
            finished["model"] = ctx.model
            if len(ctx.usage_by_model) > 1:  # a map whose items used several models
                finished["usage_by_model"] = {
                    m: u.as_dict() for m, u in sorted(ctx.usage_by_model.items())
                }
        if ctx.detail:
            finished["detail"] = ctx.detail
        self.emitter.emit("node_finished", **finished)

    def report_cancelled(self, spec: NodeSpec, iteration: int) -> None:
        self.emitter.flush(spec.id, iteration)
        self.emitter.emit(
            "node_failed",
            node=spec.id,
            iteration=iteration,
            error=self.cancel_reason(),
            cancelled=True,
        )

    def report_failed(self, spec: NodeSpec, iteration: int, failure: _Failed) -> None:
        node = spec.id
        self.emitter.flush(node, iteration)
        if spec.config.on_error == "continue":
            self.emitter.emit(
                "node_failed", node=node, iteration=iteration, error=failure.message, continued=True
            )
            self.deliver(spec, {"error": failure.message})
        else:
            self.emitter.emit("node_failed", node=node, iteration=iteration, error=failure.message)
            self.stop("failed", f"node {node!r} failed: {failure.message}", node)

    def count_usage(self, ctx: NodeContext) -> None:
        for model, usage in ctx.usage_by_model.items():
            self.usage = self.usage + usage
            self.usage_by_model[model] = self.usage_by_model.get(model, Usage()) + usage

    # The node cache -------------------------------------------------------------------

    def cache_key(self, spec: NodeSpec, inputs: dict[str, Any]) -> str | None:
        if self.cache is None or spec.cache_config is None:
            return None
        return cache_key(
            node_type=spec.type.name,
            version=spec.type.version,
            config=spec.cache_config,
            default_model=self.services.default_model,
            inputs=inputs,
            client=self.services.model_client.name,
        )

    async def cache_get(self, key: str) -> CachedOutput | None:
        assert self.cache is not None
        try:
            return await self.cache.get(key)
        except Exception:
            # The cache only saves work: a lookup that fails is a miss, not a failed node.
            log.warning("node cache lookup failed; running the node", exc_info=True)
            return None

    async def cache_put(self, key: str, spec: NodeSpec, success: _Success) -> None:
        assert self.cache is not None
        ctx = success.ctx
        entry = CachedOutput(
            output=success.outputs,
            text=success.text,
            model=ctx.model,
            usage=ctx.usage,
            detail=ctx.detail,
        )
        try:
            await self.cache.put(key, spec.type.name, entry)
        except Exception:
            log.warning("node cache store failed; the result is not cached", exc_info=True)

    # Attempts -------------------------------------------------------------------------

    async def attempts(
        self, spec: NodeSpec, iteration: int, inputs: dict[str, Any], *, keep_text: bool
    ) -> _Success:
        """Run the node, retrying what is retryable; raises _Failed with the last error."""
        config = spec.config
        for attempt in range(1, config.retries + 2):
            # Only the text of the attempt that succeeds is what a cache hit replays.
            texts: list[str] | None = [] if keep_text else None
            ctx = NodeContext(
                node_id=spec.id,
                iteration=iteration,
                attempt=attempt,
                run_inputs=self.inputs,
                services=self.services,
                prepared=spec.prepared,
                emit_text=self.text_sink(spec.id, iteration, texts),
                emit_progress=lambda done, total: self.emitter.emit(
                    "node_progress", node=spec.id, iteration=iteration, done=done, total=total
                ),
                run_subflow=self.run_subflow,
            )
            try:
                if spec.type.holds_slot:
                    async with self.slots:
                        outputs = await self.attempt(spec, ctx, inputs)
                else:
                    outputs = await self.attempt(spec, ctx, inputs)
                return _Success(ctx, outputs, "".join(texts) if texts else "")
            except NodeError as error:
                self.count_usage(ctx)
                if not error.retryable or attempt > config.retries:
                    suffix = f" (after {attempt} attempts)" if attempt > 1 else ""
                    raise _Failed(f"{error}{suffix}") from None
                delay = self.backoff(attempt, error.retry_after)
                self.emitter.flush(spec.id, iteration)
                self.emitter.emit(
                    "node_retrying",
                    node=spec.id,
                    iteration=iteration,
                    attempt=attempt,
                    error=str(error),
                    delay_s=round(delay, 3),
                )
                await asyncio.sleep(delay)
        raise AssertionError("unreachable: the loop returns or raises")

    def text_sink(
        self, node: str, iteration: int, texts: list[str] | None
    ) -> Callable[[str], None]:
        delta = self.emitter.delta
        if texts is None:
            return lambda text: delta(node, iteration, text)

        def keep(text: str) -> None:
            texts.append(text)
            delta(node, iteration, text)

        return keep

    async def attempt(self, spec: NodeSpec, ctx: NodeContext, inputs: dict[str, Any]) -> dict:
        if ctx.attempt == 1:
            self.emitter.emit("node_started", node=spec.id, iteration=ctx.iteration, inputs=inputs)
        timeout = spec.config.timeout_s
        try:
            if timeout is None:
                return await spec.type.run(ctx, spec.config, inputs)
            async with asyncio.timeout(timeout):
                return await spec.type.run(ctx, spec.config, inputs)
        except TimeoutError:
            raise NodeError(f"timed out after {spec.config.timeout_s:g}s", retryable=True) from None
        except templating.TemplateProblem as problem:
            raise NodeError(str(problem)) from None
        except (NodeError, asyncio.CancelledError):
            raise
        except Exception as exc:
            # A bug in a node type must fail its node, not the whole engine.
            raise NodeError(
                f"internal error in {spec.type.name}: {type(exc).__name__}: {exc}"
            ) from exc

    def backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.services.backoff_max_s)
        ceiling = self.services.backoff_base_s * 2 ** (attempt - 1)
        # Jitter spreads out retries of the many nodes a burst of 429s hits at once.
        return min(ceiling, self.services.backoff_max_s) * random.uniform(0.5, 1.0)  # noqa: S311

    async def run_subflow(self, flow: CompiledFlow, inputs: Mapping[str, Any]) -> RunResult:
        return await flow.run(inputs, slots=self.slots, options=self.subflow_options)

    def cancel_reason(self) -> str:
        if self.ending and self.ending[0] == "failed" and self.ending[2]:
            return f"stopped because node {self.ending[2]!r} failed"
        return "cancelled"
