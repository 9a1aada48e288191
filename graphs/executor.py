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
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import defaultdict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import networkx as nx

from graphs import document, templating, validation
from graphs.errors import FlowInvalid, NodeError, Problem
from graphs.events import Emitter, EventSink, discard
from graphs.llm.types import Usage
from graphs.nodes.base import CommonConfig, NodeContext, NodeType, Services

Status = Literal["succeeded", "failed", "cancelled"]


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

    def start(
        self,
        inputs: Mapping[str, Any],
        sink: EventSink | None = None,
        *,
        slots: asyncio.Semaphore | None = None,
    ) -> Run:
        """Check the inputs and start the run as a task; raises FlowInvalid before any event."""
        resolved = self.resolve_inputs(inputs)
        return Run(_Execution(self, resolved, Emitter(sink or discard), slots))

    async def run(
        self,
        inputs: Mapping[str, Any],
        sink: EventSink | None = None,
        *,
        slots: asyncio.Semaphore | None = None,
    ) -> RunResult:
        """Run to the end and return the result (``start`` gives a handle that can cancel).

        Cancelling the task that awaits this cancels the run, records it, and re-raises.
        """
        resolved = self.resolve_inputs(inputs)
        return await _Execution(self, resolved, Emitter(sink or discard), slots).execute()


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


class _Execution:
    """The mutable state of one run and the rules that move values through it."""

    def __init__(
        self,
        flow: CompiledFlow,
        inputs: dict[str, Any],
        emitter: Emitter,
        slots: asyncio.Semaphore | None,
    ):
        self.flow = flow
        self.inputs = inputs
        self.emitter = emitter
        self.services = flow.services
        self.slots = slots or asyncio.Semaphore(flow.services.max_concurrency)
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
        self.ending: tuple[Status, str | None, str | None] | None = None
        self.quiet = asyncio.Event()

    async def execute(self) -> RunResult:
        self.emitter.emit("run_started", flow=self.flow.name, inputs=self.inputs)
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
        result = RunResult(status, self.outputs, self.usage, error, failed_node)
        self.emitter.emit(
            "run_finished",
            status=status,
            outputs=self.outputs,
            usage=self.usage.as_dict(),
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
            await self.run_node_events(spec, iteration, inputs)
        finally:
            self.node_done(spec)

    async def run_node_events(self, spec: NodeSpec, iteration: int, inputs: dict[str, Any]) -> None:
        node = spec.id
        began = time.monotonic()
        attempt = 0
        try:
            ctx, outputs, attempt = await self.attempts(spec, iteration, inputs)
        except asyncio.CancelledError:
            self.emitter.flush(node, iteration)
            self.emitter.emit(
                "node_failed",
                node=node,
                iteration=iteration,
                error=self.cancel_reason(),
                cancelled=True,
            )
            return
        except _Failed as failure:
            self.emitter.flush(node, iteration)
            if spec.config.on_error == "continue":
                self.emitter.emit(
                    "node_failed",
                    node=node,
                    iteration=iteration,
                    error=failure.message,
                    continued=True,
                )
                self.deliver(spec, {"error": failure.message})
            else:
                self.emitter.emit(
                    "node_failed", node=node, iteration=iteration, error=failure.message
                )
                self.stop("failed", f"node {node!r} failed: {failure.message}", node)
            return
        self.emitter.flush(node, iteration)
        finished: dict[str, Any] = {
            "node": node,
            "iteration": iteration,
            "output": outputs,
            "duration_s": round(time.monotonic() - began, 6),
        }
        if attempt > 1:
            finished["attempts"] = attempt
        if ctx.model is not None:
            finished["usage"] = ctx.usage.as_dict()
            finished["model"] = ctx.model
            self.usage = self.usage + ctx.usage
        if ctx.detail:
            finished["detail"] = ctx.detail
        self.emitter.emit("node_finished", **finished)
        if spec.type.name == "output":
            self.outputs[spec.config.name] = outputs["value"]  # type: ignore[attr-defined]
        self.deliver(spec, outputs)

    def deliver(self, spec: NodeSpec, outputs: dict[str, Any]) -> None:
        for port, value in outputs.items():
            for target in spec.out_edges.get(port, ()):
                self.fresh[target.node][target.port].append((value, target.internal))
                self.try_fire(target.node)

    async def attempts(
        self, spec: NodeSpec, iteration: int, inputs: dict[str, Any]
    ) -> tuple[NodeContext, dict[str, Any], int]:
        """Run the node, retrying what is retryable; raises _Failed with the last error."""
        config = spec.config
        for attempt in range(1, config.retries + 2):
            ctx = NodeContext(
                node_id=spec.id,
                iteration=iteration,
                attempt=attempt,
                run_inputs=self.inputs,
                services=self.services,
                prepared=spec.prepared,
                emit_text=lambda text: self.emitter.delta(spec.id, iteration, text),
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
                return ctx, outputs, attempt
            except NodeError as error:
                if ctx.model is not None:
                    self.usage = self.usage + ctx.usage
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
        return await flow.run(inputs, slots=self.slots)

    def cancel_reason(self) -> str:
        if self.ending and self.ending[0] == "failed" and self.ending[2]:
            return f"stopped because node {self.ending[2]!r} failed"
        return "cancelled"
