"""Compiling a flow: validate it once, work out its wiring, then run it as often as you like.

>>> import asyncio
>>> from graphs.settings import default_services
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
... }, default_services())
>>> sorted(flow.inputs), flow.plan.nodes["out"].output
(['who'], 'greeting')
>>> result = asyncio.run(flow.run({"who": "world"}))
>>> result.status, result.outputs
('succeeded', {'greeting': 'Hello world!'})

The services (model, tools, node types) are the caller's: this module sits below the
registry of node types, which a ``map`` node's inline flow compiles through.
``graphs.compile_flow`` is this function with the services from the environment when none
are given.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal

import networkx as nx

from graphs import document, validation
from graphs.errors import FlowInvalid, Problem
from graphs.events import Emitter, EventSink, discard
from graphs.executor import Execution, Run
from graphs.nodes.base import CommonConfig, NodeType, Services
from graphs.schedule import NO_OPTIONS, Plan, RunOptions, RunState
from graphs.spec import InputSpec, NodeSpec, RunResult

__all__ = ["CompiledFlow", "compile_flow"]


def compile_flow(flow: nx.MultiDiGraph | Mapping[str, Any], services: Services) -> CompiledFlow:
    """Validate a flow (graph or document) and prepare it to run; raises FlowInvalid."""
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

    async def resume(
        self,
        state: Mapping[str, Any],
        node: str,
        iteration: int,
        outputs: dict[str, Any],
        by: dict[str, Any],
        sink: EventSink | None = None,
        *,
        seq: int = 0,
        slots: asyncio.Semaphore | None = None,
        options: RunOptions | None = None,
        breakpoint: Literal["continue", "step"] | None = None,
    ) -> RunResult:
        """Go on with a run parked waiting (its ``RunResult.state``): answer ``node`` with
        ``outputs``, recording ``by``, and run to the end or the next wait.

        ``seq`` is the last event number the run sent, so that its events number on;
        ``options`` lends the node cache (reuse and overrides are in the state). Raises
        StepRefused, before any event, when the node does not wait (answered already).

        With ``breakpoint`` the node is paused at a breakpoint and ``outputs`` are the
        inputs it starts on (``Schedule.go_on``); ``"step"`` pauses before the next too.
        """
        saved = RunState.from_json(state)
        execution = Execution(
            self,
            saved.inputs,
            Emitter(sink or discard, seq=seq, commit=_commit_of(sink)),
            slots=slots,
            options=options or NO_OPTIONS,
            state=saved,
        )
        if breakpoint is not None:
            return await execution.go_on(node, iteration, outputs, by, step=breakpoint == "step")
        return await execution.resume(node, iteration, outputs, by)

    async def resume_budget(
        self,
        state: Mapping[str, Any],
        budget_usd: float,
        by: dict[str, Any],
        sink: EventSink | None = None,
        *,
        seq: int = 0,
        slots: asyncio.Semaphore | None = None,
        options: RunOptions | None = None,
    ) -> RunResult:
        """Go on with a run parked because a model call would have exceeded its budget
        (``graphs.budget``), the budget now ``budget_usd``: its paused nodes run again.
        Raises StepRefused, before any event, when no node is paused for the budget."""
        saved = RunState.from_json(state)
        execution = Execution(
            self,
            saved.inputs,
            Emitter(sink or discard, seq=seq),
            slots=slots,
            options=options or NO_OPTIONS,
            state=saved,
        )
        return await execution.resume_budget(budget_usd, by)

    def _execution(
        self,
        inputs: Mapping[str, Any],
        sink: EventSink | None,
        *,
        slots: asyncio.Semaphore | None,
        options: RunOptions | None,
    ) -> Execution:
        resolved = self.resolve_inputs(inputs)
        options = options or NO_OPTIONS
        if problems := self.option_problems(options):
            raise FlowInvalid(problems)
        emitter = Emitter(sink or discard, commit=_commit_of(sink))
        return Execution(self, resolved, emitter, slots=slots, options=options)


def _commit_of(sink: EventSink | None) -> Callable[[], Awaitable[None]] | None:
    """A durable sink's ``commit`` (waits until what it was given is stored), if it has one."""
    return getattr(sink, "commit", None)


def _cache_config(node_type: NodeType, config: CommonConfig, services: Services) -> dict | None:
    wanted = config.cache if config.cache is not None else node_type.cacheable(config, services)
    return config.model_dump(mode="json") if wanted else None
