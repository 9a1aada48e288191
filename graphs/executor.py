"""The executor: compile a flow once, then run it as many times as you like.

>>> import asyncio
>>> from graphs import compile_flow
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

The rules are in ``graphs.schedule``: how values move between ports, when a node
fires, when a branch is skipped, what reuse and overrides do, how a run ends. A
``Schedule`` is a state machine over a serialisable ``RunState``, moved on one
step at a time. This module drives it in one process: it emits each step's
events, starts a task for each node the step made ready (``graphs.runner``'s
``NodeRunner`` runs it: the node cache, attempts, retries, timeout, slots) and
feeds how the node ended back in as the next step. A distributed driver can run
the very same steps, with the state stored between them.

Usage. Every attempt's tokens count, failed ones included, and a map's node
reports those of its items; ``run_finished`` gives the total and the total per
model.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from graphs import document, validation
from graphs.errors import FlowInvalid, Problem
from graphs.events import Emitter, EventSink, discard
from graphs.llm.types import Usage
from graphs.nodes.base import CommonConfig, NodeType, Services
from graphs.runner import NodeRunner
from graphs.schedule import (
    NO_OPTIONS,
    NodeCancelled,
    Outcome,
    Plan,
    Ready,
    Recorded,
    RunOptions,
    Schedule,
    Status,
    StepResult,
)

__all__ = [
    "NO_OPTIONS",
    "CompiledFlow",
    "InputSpec",
    "NodeSpec",
    "Recorded",
    "Run",
    "RunOptions",
    "RunResult",
    "compile_flow",
]


@dataclass(frozen=True)
class NodeSpec:
    """What running one node needs; its wiring is in ``CompiledFlow.plan``."""

    id: str
    type: NodeType
    config: CommonConfig
    prepared: Any
    in_ports: tuple[str, ...]
    # The config as the cache key sees it; None when the node is not cached.
    cache_config: Mapping[str, Any] | None


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


def compile_flow(flow: nx.MultiDiGraph | Mapping[str, Any], services: Services) -> CompiledFlow:
    """Validate a flow (graph or document) and prepare it to run; raises FlowInvalid.

    The services are the caller's: this module sits below the registry of node types,
    which a ``map`` node's inline flow compiles through. ``graphs.compile_flow`` is this
    function with the services from the environment when none are given.
    """
    graph = flow if isinstance(flow, nx.MultiDiGraph) else document.load(flow)
    checked, problems = validation.check(graph, services)
    if problems:
        raise FlowInvalid(problems)
    return CompiledFlow(graph, checked, services)


class CompiledFlow:
    """A validated flow with its wiring worked out (``plan``); ``run`` it with inputs."""

    def __init__(
        self,
        graph: nx.MultiDiGraph,
        checked: Mapping[str, validation.CheckedNode],
        services: Services,
    ):
        self.graph = graph
        self.name: str = graph.graph.get("name", "")
        self.services = services
        self.plan = Plan(
            graph,
            max_iterations={
                node_id: node.config.max_iterations for node_id, node in checked.items()
            },
            outputs={
                node_id: node.config.name  # type: ignore[attr-defined]
                for node_id, node in checked.items()
                if node.type.name == "output"
            },
        )
        self.nodes: dict[str, NodeSpec] = {
            node_id: NodeSpec(
                id=node_id,
                type=node.type,
                config=node.config,
                prepared=node.type.prepare(node.config, services),
                in_ports=self.plan.nodes[node_id].in_ports,
                cache_config=_cache_config(node.type, node.config, services),
            )
            for node_id, node in checked.items()
        }
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


_BROKEN = NodeCancelled(started=False)


class _Execution:
    """One run in this process: a small loop over the schedule's steps.

    Each step's events go out through the emitter, each node it made ready runs as
    a task, and each task feeds how its node ended back in as the next step.
    """

    def __init__(
        self,
        flow: CompiledFlow,
        inputs: dict[str, Any],
        emitter: Emitter,
        *,
        slots: asyncio.Semaphore | None,
        options: RunOptions,
    ):
        self.inputs = inputs
        self.options = options
        self.emitter = emitter
        self.schedule = Schedule(flow.plan)
        self.runner = NodeRunner(
            flow, emitter=emitter, run_inputs=inputs, options=options, slots=slots
        )
        self.tasks: dict[asyncio.Task[None], Ready] = {}
        self.quiet = asyncio.Event()
        self.loop: asyncio.AbstractEventLoop | None = None

    async def execute(self) -> RunResult:
        self.loop = asyncio.get_running_loop()
        self.apply(self.schedule.begin(self.inputs, self.options))
        try:
            if self.tasks:  # else the run is over already
                await self.quiet.wait()
        except asyncio.CancelledError:
            # Whoever awaited the run was cancelled: stop the nodes, record it, pass it on.
            self.stop("cancelled", None)
            if self.tasks:
                await asyncio.wait(list(self.tasks))
            raise
        return self.result()

    def stop(self, status: Status, error: str | None, failed_node: str | None = None) -> None:
        """End the run early: cancel every node still running."""
        self.apply(self.schedule.stop(status, error, failed_node))

    def apply(self, step: StepResult) -> None:
        """Emit a step's events, cancel or start what it says, and note when the run is over."""
        if step.events:
            self.emit(step)
        if step.stopped:
            self.cancel_all()
        if step.ready:
            self.launch(step.ready)
        if step.done:
            self.quiet.set()

    def launch(self, ready_nodes: list[Ready]) -> None:
        schedule = self.schedule
        if schedule.state.ending is not None:
            # A sink stopped the run while this step's events went out: these never start.
            for ready in ready_nodes:
                self.apply(schedule.node_cancelled(ready.node, ready.iteration, started=False))
            return
        create_task = self.loop.create_task  # type: ignore[union-attr]
        for ready in ready_nodes:
            self.tasks[create_task(self.run_node(ready))] = ready

    def emit(self, step: StepResult) -> None:
        emitter = self.emitter
        for type_, fields in step.events:
            if type_ == "run_finished":
                emitter.flush_all()
            emitter.emit(type_, **fields)

    async def run_node(self, ready: Ready) -> None:
        outcome: Outcome | None = None
        try:
            outcome = await self.runner.run(ready)
        finally:
            del self.tasks[asyncio.current_task()]  # type: ignore[arg-type]
            # Should the runner itself break, its node still ends, silently, so the run can.
            self.apply(self.schedule.apply(ready, _BROKEN if outcome is None else outcome))

    def cancel_all(self) -> None:
        for task in self.tasks:
            task.cancel()
            # A task cancelled before its first step never reaches run_node's finally.
            task.add_done_callback(self.forget)

    def forget(self, task: asyncio.Task[None]) -> None:
        ready = self.tasks.pop(task, None)
        if ready is not None:
            self.apply(self.schedule.node_cancelled(ready.node, ready.iteration, started=False))

    def result(self) -> RunResult:
        state = self.schedule.state
        ending = state.ending
        return RunResult(
            "succeeded" if ending is None else ending.status,
            state.outputs,
            state.usage,
            None if ending is None else ending.error,
            None if ending is None else ending.failed_node,
            dict(state.usage_by_model),
        )
