"""Scheduling as a state machine: which nodes may run, with what, and when the run is over.

A run's scheduling state (``RunState``) is plain data that goes to JSON and back
exactly, so that a run can be driven one step at a time by processes that share
nothing but that JSON (a coordinator holding a database row lock, say). A
``Schedule`` pairs the state with the flow's static ``Plan`` and moves it on, one
step per call: ``begin``, ``node_finished``, ``node_failed``, ``node_cancelled``,
``stop``. Each step returns a ``StepResult``: the nodes that became ready (with
their exact inputs and iteration), the events the step itself emits, and whether
the run is over. Steps do no I/O, read no clock and never touch asyncio: the same
state and the same step always give the same result. Running the nodes, and
stamping the events, is the caller's business (``graphs.executor`` does it in one
process, with ``graphs.runner`` running each node).

>>> from graphs import compile_flow
>>> flow = compile_flow({
...     "graph": {"name": "echo"},
...     "nodes": [
...         {"id": "q", "type": "input", "config": {"name": "q"}},
...         {"id": "out", "type": "output", "config": {"name": "answer"}},
...     ],
...     "edges": [{"source": "q", "target": "out", "source_port": "value", "target_port": "value"}],
... })
>>> schedule = Schedule(flow.plan)
>>> step = schedule.begin({"q": "hi"})
>>> step.ready, [type_ for type_, _ in step.events]
([Ready(node='q', iteration=1, inputs={})], ['run_started'])
>>> saved = schedule.state.to_json()  # what a coordinator would store between steps
>>> schedule = Schedule(flow.plan, RunState.from_json(saved))
>>> schedule.node_finished("q", 1, {"value": "hi"}).ready
[Ready(node='out', iteration=1, inputs={'value': 'hi'})]
>>> step = schedule.node_finished("out", 1, {"value": "hi"})
>>> step.done, step.events[-1]
(True, ('run_finished', {'status': 'succeeded', 'outputs': {'answer': 'hi'}, \
'usage': {'input_tokens': 0, 'output_tokens': 0}, 'usage_by_model': {}}))

How values move. An edge carries what its source emits on ``source_port`` to
its target's ``target_port``. A node fires when it has a fresh value on at
least one port and every other port either holds a value or can no longer
receive one (its sources are done): joins wait only for live branches. Values
that come from outside the node's own cycle stay on the port for later
iterations; values that come round the cycle are used once. A node runs at most
once at a time; what arrives while it runs waits for it.

When nothing more can reach a strongly connected component (a single node,
or a loop), it is done: its nodes that never ran are skipped, and the edges
that leave it can carry nothing more. That is how a route not taken skips
everything only it reaches, in time linear in the size of the flow.

Loops. Inside a loop a port fed from the loop counts as live, so every loop node
waits on what goes round. A loop runs in *activations*: one begins when a loop
node fires, and ends when the loop is idle and nothing outside can reach it any
more (it *quiesces*). Each activation takes one round of outside values: a
node takes its outside values when it first runs in the activation, and later
ones (a loop fed by another loop gets one per iteration of it) wait for the
next activation. When the loop quiesces:

- while an activation is on, a node holding a value that came round the loop
  fires with its other loop ports empty (a join inside the loop whose other
  branch was not taken); when there is none, the activation ends. A node that did
  not run in it lets go of its outside values of that round: they stay what its
  ports hold, but do not fire it. So an evaluator-optimizer whose ``fix`` also
  reads the task ends when the first draft passes (issue 13, B1).
- with no activation on (none yet, or one just ended), the loop starts at one
  node holding an outside value, its loop ports empty: not one that waits on
  another such node to fill a port (the evaluator, that also reads the topic,
  waits for the generator's joke: issue 13, B2), and of the rest the first in
  the loop's stable topological order (``graphs.loops``), never the first by id.

A loop-back edge may say what its port holds before anything comes round
(``initial``): a node whose other ports are all filled from outside then fires
as soon as they are, without waiting for the loop to quiesce, which is how an
author says where a loop starts. With ``append`` the port holds a list
(``initial`` or ``[]``) and each value that comes round is added to it, so a
generator sees every attempt's feedback. Both start again with each activation.
An initial value alone fires nothing.

Reuse and overrides (``RunOptions``). A node named in ``reuse`` does not run:
the first time it fires, the step itself reports the output an earlier run
recorded (``node_started``, then ``node_finished`` with ``reused`` and no usage)
and hands that output on as if it had computed it; it is never ready, so it
takes no worker and no concurrency slot. Later firings of a reused node do
nothing, so a loop whose nodes are all reused passes on its final values once
and then falls idle (a reused loop node that did not get to fire in the
activation reports when the loop quiesces, rather than being skipped), and a
reused router sends its recorded route only, so the route not taken is skipped
again. ``overrides`` replace the values arriving on a node's ports, every time it
fires.

Ending. A failed node (one that does not ``continue``), a node past its
``max_iterations`` or ``stop`` end the run early: nothing fires any more, the
step says ``stopped`` so that the caller cancels what is still running, and
each of those reports back with ``node_cancelled``. The run is over (the step
emits ``run_finished`` and says ``done``) when no node is running any more.
Every node step names the node and its iteration, and one that does not match a
running node is refused (``StepRefused``): that is how a duplicate delivery of
the same result is caught.

Waiting. A running node may park instead of finishing (``node_waiting``, with JSON
saying what it waits for: a person's answer, say). It stays running, so nothing
downstream of it is skipped, but no worker holds it: when every running node waits,
the step says ``waiting`` and the run is parked, not over, its state JSON all there is
of it. ``resume`` answers the wait, once (a second answer is refused), recording
who did (``node_resumed``); the node finishes with the outputs given and the run goes
on as after ``node_finished``. A wait that says ``rerun`` (an agent waiting for a tool
call's approval) is answered differently: ``resume`` makes its node ready again, same
visit and inputs, and the answer goes into ``node_resumed`` for the node to read (see
``graphs.history``). A run that ends (``stop``, a failure elsewhere) cancels its waiting
nodes itself, as it would running ones.

Breakpoints. A run may pause before it starts a node (``RunOptions.breakpoints``,
set only by the editor): the node made ready waits instead of starting, its wait
``{"kind": "breakpoint", "inputs": ...}`` holding what it would run on. ``go_on``
lets it start, on those inputs or edited ones (``node_resumed`` records them), and
with ``step`` pauses before every node that becomes ready afterwards too, until a
``go_on`` without it. A stop cancels a paused node like any waiting one.

>>> flow = compile_flow({
...     "graph": {"name": "ask"},
...     "nodes": [
...         {"id": "q", "type": "input", "config": {"name": "q"}},
...         {"id": "out", "type": "output", "config": {"name": "answer"}},
...     ],
...     "edges": [{"source": "q", "target": "out", "source_port": "value", "target_port": "value"}],
... })
>>> schedule = Schedule(flow.plan)
>>> _ = schedule.begin({})
>>> step = schedule.node_waiting("q", 1, {"kind": "approval", "message": "ok?"})
>>> step.waiting, step.done, step.events
(True, False, [('node_waiting', {'node': 'q', 'iteration': 1, 'wait': {'kind': 'approval', \
'message': 'ok?'}})])
>>> schedule = Schedule(flow.plan, RunState.from_json(schedule.state.to_json()))
>>> step = schedule.resume("q", 1, {"value": "yes"}, by={"user": "bob"})
>>> [type_ for type_, _ in step.events], step.ready
(['node_resumed', 'node_finished'], [Ready(node='out', iteration=1, inputs={'value': 'yes'})])
>>> schedule.resume("q", 1, {"value": "no"}, by={"user": "carol"})
Traceback (most recent call last):
...
graphs.schedule.StepRefused: node 'q' iteration 1 is not waiting: it was resumed already \
(a second answer?), or it never waited
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, NoReturn

import networkx as nx

from graphs.cache import NodeCache
from graphs.events import SCHEMA
from graphs.history import VisitHistory
from graphs.llm.types import Usage
from graphs.loops import loop_order, pick_entry
from graphs.naming import node_names

if TYPE_CHECKING:
    from graphs.tools.mcp import McpSessions

Status = Literal["succeeded", "failed", "cancelled"]
Phase = Literal["new", "running", "finished"]
StepEvent = tuple[str, dict[str, Any]]
"""An event a step emits: its type and its fields (``seq`` and ``ts`` come later)."""

STATE_VERSION = 1
# The kind of wait of a node paused before it starts (see "Breakpoints").
BREAKPOINT = "breakpoint"


class StepRefused(RuntimeError):
    """A step that does not fit the state: a duplicate or stale result, or a run that is over."""


# Options ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recorded:
    """An output recorded by an earlier run, used instead of running the node."""

    output: dict[str, Any]
    source: str | None = None  # e.g. "run 42", echoed in the event


@dataclass(frozen=True)
class RunOptions:
    """How a run may skip work: recorded outputs, edited inputs, the node cache.

    The schedule reads ``reuse`` and ``overrides``; the cache is the node runner's.
    """

    reuse: Mapping[str, Recorded] = field(default_factory=dict)
    # node -> port -> value, replacing what arrives on that port.
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    cache: NodeCache | None = None
    # False ("ignore cache"): run every node, but still store the fresh results.
    read_cache: bool = True
    # Nodes a run started from the editor pauses before (see "Breakpoints").
    breakpoints: frozenset[str] = frozenset()
    # What node visits recorded before they ran again (graphs.history): the runner's.
    history: VisitHistory | None = None
    # "batch": every model call of the run goes on the batch lane (graphs.llm.batch), as a
    # map's items' do with ``latency: batch``: the runner's.
    latency: Literal["stream", "batch"] = "stream"
    # The MCP sessions of the run this one is part of (a map's item shares its map's run's);
    # None: the run opens its own and closes them when it ends: the runner's.
    mcp_sessions: McpSessions | None = None


NO_OPTIONS = RunOptions()


# The static plan ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    node: str
    port: str
    # True when the edge stays inside one cycle: its value is used once, not kept.
    internal: bool
    # The port collects what comes round the loop (``Initial.append``).
    append: bool = False


@dataclass(frozen=True, slots=True)
class NodePlan:
    """What scheduling needs to know of one node: its wiring and its limits."""

    id: str
    in_ports: tuple[str, ...]
    out_edges: Mapping[str, tuple[Target, ...]]
    component: int
    max_iterations: int | None
    output: str | None  # the run output an output node writes, else None


@dataclass(frozen=True)
class Component:
    """A strongly connected component: one node, or the nodes of a loop."""

    nodes: tuple[str, ...]
    cyclic: bool
    external_in: int
    leaving: tuple[tuple[str, str], ...]
    # A loop's nodes in a stable topological order (graphs.loops); else ``nodes``.
    order: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Initial:
    """What a loop-back port holds before anything comes round the loop to it.

    With ``append``, each value that comes round is added to the end of the list the
    port holds, and the node sees the whole list.
    """

    value: Any
    append: bool = False


class Plan:
    """A flow's wiring, worked out once: components, port counts, sources.

    Built from the graph plus each node's ``max_iterations`` and, for output nodes,
    the output's name (``CompiledFlow.plan`` is one).

    >>> graph = nx.MultiDiGraph()
    >>> graph.add_edge("a", "b", source_port="value", target_port="x")
    0
    >>> plan = Plan(graph, outputs={"b": "result"})
    >>> plan.sources, plan.nodes["b"].in_ports, plan.nodes["b"].output
    (('a',), ('x',), 'result')
    """

    def __init__(
        self,
        graph: nx.MultiDiGraph,
        *,
        max_iterations: Mapping[str, int | None] | None = None,
        outputs: Mapping[str, str] | None = None,
    ):
        self.name: str = graph.graph.get("name", "")
        # How run errors name each node: its label, with its key (graphs.naming).
        self.node_names: dict[str, str] = node_names(graph)
        max_iterations = max_iterations or {}
        outputs = outputs or {}
        component_of: dict[str, int] = {}
        members = list(nx.strongly_connected_components(graph))
        for index, nodes in enumerate(members):
            for node in nodes:
                component_of[node] = index
        self.port_external: dict[tuple[str, str], int] = defaultdict(int)
        self.port_internal: dict[tuple[str, str], int] = defaultdict(int)
        # (node, port) -> the nodes of its own loop that feed it.
        self.loop_sources: dict[tuple[str, str], tuple[str, ...]] = {}
        self.initial: dict[tuple[str, str], Initial] = {}
        out_edges: dict[str, dict[str, list[Target]]] = defaultdict(lambda: defaultdict(list))
        in_ports: dict[str, set[str]] = defaultdict(set)
        external_in = [0] * len(members)
        leaving: list[list[tuple[str, str]]] = [[] for _ in members]
        for source, target, data in graph.edges(data=True):
            port = data["target_port"]
            internal = component_of[source] == component_of[target]
            append = internal and bool(data.get("append"))
            out_edges[source][data["source_port"]].append(Target(target, port, internal, append))
            in_ports[target].add(port)
            if internal:
                self.port_internal[target, port] += 1
                feeding = self.loop_sources.get((target, port), ())
                self.loop_sources[target, port] = (*feeding, source)
                if "initial" in data or append:
                    value = data.get("initial", [] if append else None)
                    self.initial[target, port] = Initial(value, append)
            else:
                self.port_external[target, port] += 1
                external_in[component_of[target]] += 1
                leaving[component_of[source]].append((target, port))
        self.external_in = tuple(external_in)
        self.components = []
        for i, nodes in enumerate(members):
            cyclic = len(nodes) > 1 or graph.has_edge(next(iter(nodes)), next(iter(nodes)))
            self.components.append(
                Component(
                    nodes=tuple(sorted(nodes)),
                    cyclic=cyclic,
                    external_in=external_in[i],
                    leaving=tuple(leaving[i]),
                    order=loop_order(graph, nodes) if cyclic else tuple(sorted(nodes)),
                )
            )
        self.nodes: dict[str, NodePlan] = {
            node: NodePlan(
                id=node,
                in_ports=tuple(sorted(in_ports[node])),
                out_edges={port: tuple(ts) for port, ts in out_edges[node].items()},
                component=component_of[node],
                max_iterations=max_iterations.get(node),
                output=outputs.get(node),
            )
            for node in graph.nodes
        }
        self.sources = tuple(n for n in sorted(graph.nodes) if graph.in_degree(n) == 0)


# What steps exchange ------------------------------------------------------------------


@dataclass(slots=True)
class Ready:
    """A node to run now: its iteration (from 1) and the values on its ports."""

    node: str
    iteration: int
    inputs: dict[str, Any]


@dataclass(slots=True)
class StepResult:
    """What one step did: nodes to start, events to emit (in order), whether it ended."""

    ready: list[Ready]
    events: list[StepEvent]
    # The run is over: the events end with run_finished.
    done: bool = False
    # This step ended the run early: whatever is still running should be cancelled.
    stopped: bool = False
    # Nothing runs and nothing is ready, but some node waits to be resumed: the run is
    # parked (not over) until ``resume`` or ``stop``; its driver may let go of it.
    waiting: bool = False


@dataclass(slots=True)
class NodeFinished:
    """A node's result: what it emitted on each port, and the tokens all its attempts used."""

    outputs: dict[str, Any]
    usage: dict[str, Usage] = field(default_factory=dict)


@dataclass(slots=True)
class NodeFailed:
    """A node that failed (already reported); ``continued`` when its error goes on."""

    error: str
    continued: bool = False
    usage: dict[str, Usage] = field(default_factory=dict)


@dataclass(slots=True)
class NodeCancelled:
    """A node stopped because the run ended; ``started`` False when it never began."""

    started: bool = True
    usage: dict[str, Usage] = field(default_factory=dict)


@dataclass(slots=True)
class NodeWaiting:
    """A node that asks to wait for someone (``wait``: JSON saying for what) before it has
    outputs; ``usage``: what it spent getting there."""

    wait: dict[str, Any]
    usage: dict[str, Usage] = field(default_factory=dict)


Outcome = NodeFinished | NodeFailed | NodeCancelled | NodeWaiting


@dataclass(frozen=True, slots=True)
class Ending:
    """Why the run ended early (or, with no error, that it was stopped)."""

    status: Status
    error: str | None = None
    failed_node: str | None = None


# The state ----------------------------------------------------------------------------


_NO_USAGE = Usage()


# What a budget's wait (graphs.budget) and its run_paused event say.
_PAUSED_FIGURES = ("spent_usd", "remaining_usd", "needed_usd", "budget_usd")


def _fresh_ports() -> defaultdict[str, deque[tuple[Any, bool]]]:
    return defaultdict(deque)


class RunState:
    """Where one run's scheduling stands, as plain data; ``to_json``/``from_json`` round-trip.

    ``fresh`` holds the values waiting on each port (with whether they came round
    a cycle), ``kept`` the values from outside a node's cycle that stay for later
    iterations, ``unresolved`` how many live sources from outside its component
    each port still has, and the ``component_*`` lists the same per component,
    with how many of its nodes run and whether it is done. ``running`` maps each
    running node to its inputs, ``iterations`` counts each node's firings.

    >>> state = RunState(unresolved={("b", "x"): 1}, component_unresolved=[0, 1])
    >>> state.fresh["b"]["x"].append(([1, 2], False))
    >>> saved = state.to_json()
    >>> saved["unresolved"], saved["fresh"]
    ({'b': {'x': 1}}, {'b': {'x': [[[1, 2], False]]}})
    >>> RunState.from_json(saved).to_json() == saved
    True
    """

    __slots__ = (
        "breakpoints",
        "component_active",
        "component_done",
        "component_unresolved",
        "ending",
        "entered",
        "fresh",
        "held",
        "inputs",
        "iterations",
        "kept",
        "outputs",
        "overrides",
        "phase",
        "reuse",
        "running",
        "started",
        "stepping",
        "unresolved",
        "usage_by_model",
        "waiting",
    )

    def __init__(self, *, unresolved: dict[tuple[str, str], int], component_unresolved: list[int]):
        """A run that has not begun: nothing fresh, kept, running or started yet."""
        count = len(component_unresolved)
        self.unresolved = unresolved
        self.component_unresolved = component_unresolved
        self.component_active: list[int] = [0] * count
        self.component_done: list[bool] = [False] * count
        self.phase: Phase = "new"
        self.inputs: dict[str, Any] = {}
        self.reuse: dict[str, Recorded] = {}
        self.overrides: dict[str, dict[str, Any]] = {}
        self.fresh: defaultdict[str, defaultdict[str, deque[tuple[Any, bool]]]] = defaultdict(
            _fresh_ports
        )
        self.kept: defaultdict[str, dict[str, Any]] = defaultdict(dict)
        # Loop-back ports' initial values (or, with append, the list so far): held until
        # something comes round the loop to them.
        self.held: defaultdict[str, dict[str, Any]] = defaultdict(dict)
        # The loop nodes that started in their loop's current activation.
        self.entered: set[str] = set()
        # node -> the inputs it runs on: enough to run it again should its worker die.
        self.running: dict[str, dict[str, Any]] = {}
        # node -> what it waits for (JSON); a waiting node stays in ``running``, so its
        # component stays active and nothing downstream of it is skipped meanwhile.
        self.waiting: dict[str, dict[str, Any]] = {}
        # The nodes to pause before, and whether the last answer was Step (pause before
        # every node that becomes ready) rather than Continue.
        self.breakpoints: set[str] = set()
        self.stepping = False
        self.started: set[str] = set()
        self.iterations: defaultdict[str, int] = defaultdict(int)
        self.outputs: dict[str, Any] = {}
        self.usage_by_model: dict[str, Usage] = {}
        self.ending: Ending | None = None

    @classmethod
    def initial(cls, plan: Plan) -> RunState:
        """The state of a run of ``plan`` that has not begun."""
        state = cls(
            unresolved=dict(plan.port_external),
            component_unresolved=list(plan.external_in),
        )
        for (node, port), initial in plan.initial.items():
            state.held[node][port] = initial.value
        return state

    @property
    def is_waiting(self) -> bool:
        """Parked: every running node waits for someone, so only a resume can move it."""
        running = self.running
        return self.phase == "running" and bool(running) and all(n in self.waiting for n in running)

    @property
    def usage(self) -> Usage:
        """The tokens of every model together."""
        total = _NO_USAGE
        for usage in self.usage_by_model.values():
            total = total + usage
        return total

    def to_json(self) -> dict[str, Any]:
        """A snapshot as JSON values (pairs as lists, sets sorted, empty entries left out).

        Later steps do not change it; the values on ports are shared, not copied.
        """
        ending = self.ending
        data: dict[str, Any] = {
            "version": STATE_VERSION,
            "phase": self.phase,
            "inputs": dict(self.inputs),
            "reuse": {n: {"output": r.output, "source": r.source} for n, r in self.reuse.items()},
            "overrides": {node: dict(ports) for node, ports in self.overrides.items()},
            "fresh": {
                node: {port: [[v, i] for v, i in queue] for port, queue in ports.items() if queue}
                for node, ports in self.fresh.items()
                if any(ports.values())
            },
            "kept": {node: dict(ports) for node, ports in self.kept.items() if ports},
            "held": {node: dict(ports) for node, ports in self.held.items() if ports},
            "entered": sorted(self.entered),
            "unresolved": _nest(self.unresolved),
            "component_unresolved": self.component_unresolved,
            "component_active": self.component_active,
            "component_done": self.component_done,
            "running": dict(self.running),
            "waiting": dict(self.waiting),
            "started": sorted(self.started),
            "iterations": dict(self.iterations),
            "outputs": dict(self.outputs),
            "usage_by_model": {m: u.as_dict() for m, u in self.usage_by_model.items()},
            "ending": None
            if ending is None
            else {
                "status": ending.status,
                "error": ending.error,
                "failed_node": ending.failed_node,
            },
        }
        # Only runs with breakpoints (from the editor) have these.
        if self.breakpoints:
            data["breakpoints"] = sorted(self.breakpoints)
        if self.stepping:
            data["stepping"] = True
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunState:
        """The state ``to_json`` gave; raises ValueError for another version of the format."""
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"run state version {data.get('version')!r} is not {STATE_VERSION}")
        state = cls(
            unresolved={
                (node, port): count
                for node, ports in data["unresolved"].items()
                for port, count in ports.items()
            },
            component_unresolved=list(data["component_unresolved"]),
        )
        state.component_active = list(data["component_active"])
        state.component_done = list(data["component_done"])
        state.phase = data["phase"]
        state.inputs = dict(data["inputs"])
        state.reuse = {n: Recorded(r["output"], r["source"]) for n, r in data["reuse"].items()}
        state.overrides = {n: dict(ports) for n, ports in data["overrides"].items()}
        state.running = dict(data["running"])
        state.waiting = dict(data.get("waiting", {}))  # states stored before waiting existed
        state.breakpoints = set(data.get("breakpoints", ()))
        state.stepping = bool(data.get("stepping", False))
        state.started = set(data["started"])
        state.outputs = dict(data["outputs"])
        state.usage_by_model = {m: Usage.from_dict(u) for m, u in data["usage_by_model"].items()}
        state.ending = None if data["ending"] is None else Ending(**data["ending"])
        state.iterations.update(data["iterations"])
        for node, ports in data["kept"].items():
            state.kept[node].update(ports)
        # States stored before loops had activations have neither (nor any initial value).
        for node, ports in data.get("held", {}).items():
            state.held[node].update(ports)
        state.entered = set(data.get("entered", ()))
        for node, ports in data["fresh"].items():
            for port, queue in ports.items():
                state.fresh[node][port].extend((value, internal) for value, internal in queue)
        return state


def _next(queue: deque[tuple[Any, bool]], loop_only: bool) -> int | None:
    """Where the value a node takes from a port's queue is, if any: the first, or with
    ``loop_only`` the first that came round the loop."""
    if not loop_only:
        return 0 if queue else None
    return next((at for at, (_, internal) in enumerate(queue) if internal), None)


def _nest(pairs: Mapping[tuple[str, str], int]) -> dict[str, dict[str, int]]:
    nested: dict[str, dict[str, int]] = {}
    for (node, port), count in pairs.items():
        nested.setdefault(node, {})[port] = count
    return nested


# The steps ----------------------------------------------------------------------------


class Schedule:
    """A plan and one run's state, moved on one step at a time (see the module docstring).

    Each step changes ``state`` in place and returns what it did; keep a copy with
    ``state.to_json()`` when the state must outlive the step.

    >>> from graphs import compile_flow
    >>> flow = compile_flow({
    ...     "graph": {"name": "two"},
    ...     "nodes": [
    ...         {"id": "a", "type": "input", "config": {"name": "a"}},
    ...         {"id": "b", "type": "input", "config": {"name": "b"}},
    ...     ],
    ...     "edges": [],
    ... })
    >>> schedule = Schedule(flow.plan)
    >>> [ready.node for ready in schedule.begin({"a": 1, "b": 2}).ready]
    ['a', 'b']
    >>> step = schedule.node_failed("a", 1, "boom")
    >>> step.stopped, step.done  # b still runs: cancel it, then say so
    (True, False)
    >>> step = schedule.node_cancelled("b", 1)
    >>> [(type_, fields.get("error")) for type_, fields in step.events]
    [('node_failed', "stopped because node 'a' failed"), ('run_finished', "node 'a' failed: boom")]
    >>> schedule.node_cancelled("b", 1)
    Traceback (most recent call last):
    ...
    graphs.schedule.StepRefused: node 'b' iteration 1: the run is finished
    """

    __slots__ = (
        "_events",
        "_quiescing",
        "_ready",
        "_reused",
        "_settle_queue",
        "_stopped",
        "plan",
        "state",
    )

    def __init__(self, plan: Plan, state: RunState | None = None):
        self.plan = plan
        self.state = state if state is not None else RunState.initial(plan)
        if len(self.state.component_done) != len(plan.components):
            raise ValueError("this run state belongs to another plan")
        self._ready: list[Ready] = []
        self._events: list[StepEvent] = []
        self._reused: deque[Ready] = deque()
        self._settle_queue: deque[int] = deque()
        self._quiescing = -1
        self._stopped = False

    # Public steps ---------------------------------------------------------------------

    def begin(self, inputs: Mapping[str, Any], options: RunOptions | None = None) -> StepResult:
        """Start the run: ``run_started``, then the source nodes are ready."""
        state = self.state
        if state.phase != "new":
            raise StepRefused("the run has begun already")
        self._open()
        state.phase = "running"
        state.inputs = dict(inputs)
        if options is not None and options.reuse:
            state.reuse = dict(options.reuse)
        if options is not None and options.overrides:
            state.overrides = {node: dict(ports) for node, ports in options.overrides.items()}
        if options is not None and options.breakpoints:
            state.breakpoints = set(options.breakpoints)
        self._events.append(
            ("run_started", {"flow": self.plan.name, "inputs": state.inputs, "schema": SCHEMA})
        )
        if state.ending is None:  # a stop may come before the run begins
            for node in self.plan.sources:
                self._fire(node, {})
            self._settle_queue.extend(range(len(self.plan.components)))
            self._settle()
        return self._close()

    def node_finished(
        self,
        node: str,
        iteration: int,
        outputs: dict[str, Any],
        *,
        usage: Mapping[str, Usage] | None = None,
    ) -> StepResult:
        """A running node produced ``outputs`` (port -> value); they flow on."""
        state = self.state
        if (
            node not in state.running
            or state.iterations.get(node) != iteration
            or node in state.waiting
        ):
            self._refuse(node, iteration)
        self._ready, self._events, self._stopped = [], [], False
        if usage:
            self._count(usage)
        spec = self.plan.nodes[node]
        self._hand_on(spec, outputs)
        self._release(spec)
        return self._close()

    def node_failed(
        self,
        node: str,
        iteration: int,
        error: str,
        *,
        continued: bool = False,
        usage: Mapping[str, Usage] | None = None,
    ) -> StepResult:
        """A running node failed: its error goes on (port ``error``) if ``continued``, else
        the run fails. Whoever ran the node has reported the failure itself."""
        self._check_running(node, iteration)
        self._open()
        if usage:
            self._count(usage)
        spec = self.plan.nodes[node]
        if continued:
            self._deliver(spec, {"error": error})
        else:
            self._stop(Ending("failed", f"node {self._named(node)} failed: {error}", node))
        self._release(spec)
        return self._close()

    def node_cancelled(
        self,
        node: str,
        iteration: int,
        *,
        started: bool = True,
        usage: Mapping[str, Usage] | None = None,
    ) -> StepResult:
        """A node stopped because the run is ending; reported as failed, with why, if it began.

        Only an ending run cancels its nodes. A node that stopped while the run goes on
        (its runner broke, say) has no result to hand on, so it fails the run rather than
        let it succeed with the outputs downstream of it missing.
        """
        self._check_running(node, iteration)
        self._open()
        if usage:
            self._count(usage)
        if self.state.ending is None:
            error = "stopped without a result"
            self._events.append(
                ("node_failed", {"node": node, "iteration": iteration, "error": error})
            )
            self._stop(Ending("failed", f"node {self._named(node)} failed: {error}", node))
        elif started:
            self._events.append(
                (
                    "node_failed",
                    {
                        "node": node,
                        "iteration": iteration,
                        "error": self.cancel_reason(),
                        "cancelled": True,
                    },
                )
            )
        self._release(self.plan.nodes[node])
        return self._close()

    def node_waiting(
        self,
        node: str,
        iteration: int,
        wait: dict[str, Any],
        *,
        usage: Mapping[str, Usage] | None = None,
    ) -> StepResult:
        """A running node parks until ``resume`` (see "Waiting"); ``wait`` (JSON) says for
        what: kind, message, fields, actions, timeout_s..."""
        self._check_running(node, iteration)
        self._open()
        if usage:
            self._count(usage)
        self.state.waiting[node] = wait
        self._events.append(("node_waiting", {"node": node, "iteration": iteration, "wait": wait}))
        if wait.get("kind") == "budget":
            # The run's model calls stop here: what it spent, has left and this call needs.
            paused = {key: wait.get(key) for key in _PAUSED_FIGURES}
            self._events.append(("run_paused", {"node": node, "iteration": iteration, **paused}))
        return self._close()

    def resume_budget(self, budget_usd: float, by: dict[str, Any]) -> StepResult:
        """Someone (``by``) raised the run's budget to ``budget_usd``: the nodes parked on
        it (``graphs.budget``) run again from their inputs, as they were before they
        paused; nodes that finished stay finished. Refused when no node waits on a budget,
        so a second raise of the same pause resumes nothing twice."""
        state = self.state
        parked = sorted(n for n, wait in state.waiting.items() if wait.get("kind") == "budget")
        if state.phase != "running" or not parked:
            raise StepRefused("the run is not paused for its budget")
        self._open()
        self._events.append(("run_resumed", {"budget_usd": budget_usd, "by": by, "nodes": parked}))
        for node in parked:
            del state.waiting[node]
            iteration = state.iterations[node]
            self._events.append(("node_resumed", {"node": node, "iteration": iteration, "by": by}))
            self._ready.append(Ready(node, iteration, dict(state.running[node])))
        return self._close()

    def resume(
        self,
        node: str,
        iteration: int,
        outputs: dict[str, Any],
        by: dict[str, Any],
    ) -> StepResult:
        """Someone (``by``: who, JSON) answered a waiting node: it finishes with ``outputs``
        and the run goes on as after ``node_finished``; or, when its wait says ``rerun``,
        it runs again, ``outputs`` being the answer it reads. Refused for a node that is
        not waiting, so a second answer to the same wait changes nothing."""
        state = self.state
        self._check_waiting(node, iteration)
        if state.waiting[node].get("kind") == BREAKPOINT:
            raise StepRefused(f"node {node!r} iteration {iteration} waits at a breakpoint: go_on")
        self._open()
        wait = state.waiting.pop(node)
        if wait.get("rerun"):
            # The node asked to run again with the answer (an agent's tool approval): it
            # is ready once more, its visit and inputs the same, and reads the answer from
            # its visit's history (this event).
            resumed = {"node": node, "iteration": iteration, "by": by, "answer": outputs}
            self._events.append(("node_resumed", resumed))
            self._ready.append(Ready(node, iteration, state.running[node]))
            return self._close()
        self._events.append(("node_resumed", {"node": node, "iteration": iteration, "by": by}))
        # The runner that parked the node is gone, so its finish is reported here, with
        # the question and who answered it as the node's detail.
        finished = {
            "node": node,
            "iteration": iteration,
            "output": outputs,
            "detail": {"wait": wait, "by": by},
        }
        self._events.append(("node_finished", finished))
        spec = self.plan.nodes[node]
        self._hand_on(spec, outputs)
        self._release(spec)
        return self._close()

    def go_on(
        self,
        node: str,
        iteration: int,
        inputs: Mapping[str, Any] | None,
        by: dict[str, Any],
        *,
        step: bool = False,
    ) -> StepResult:
        """Someone (``by``) lets a node paused at a breakpoint start, on ``inputs`` (the
        paused inputs, edited: None keeps them) (see "Breakpoints"). ``step``: pause before
        every node that becomes ready from now on, until a go_on without it. Refused, as
        resume is, for a node that does not wait at a breakpoint; ValueError for an
        input port the node does not have."""
        state = self.state
        self._check_waiting(node, iteration)
        wait = state.waiting[node]
        if wait.get("kind") != BREAKPOINT:
            raise StepRefused(f"node {node!r} iteration {iteration} waits for an answer: resume")
        paused = dict(wait.get("inputs") or {})
        used = paused if inputs is None else dict(inputs)
        ports = set(self.plan.nodes[node].in_ports)
        if unknown := sorted(set(used) - ports - set(paused)):
            raise ValueError(f"node {node!r} has no input port {unknown[0]!r}")
        self._open()
        del state.waiting[node]
        state.stepping = step
        state.running[node] = used
        # What the node gets is recorded here (and in its node_started): replay shows it.
        edited = sorted(p for p in used.keys() | paused.keys() if used.get(p) != paused.get(p))
        resumed = {
            "node": node,
            "iteration": iteration,
            "by": by,
            "action": "step" if step else "continue",
            "inputs": used,
            "edited": edited,
        }
        self._events.append(("node_resumed", resumed))
        self._ready.append(Ready(node, iteration, used))
        return self._close()

    def apply(self, ready: Ready, outcome: Outcome) -> StepResult:
        """The step for how ``ready``'s run ended (``NodeFinished``, ``NodeFailed``...)."""
        node, iteration = ready.node, ready.iteration
        if type(outcome) is NodeFinished:
            return self.node_finished(node, iteration, outcome.outputs, usage=outcome.usage)
        if type(outcome) is NodeFailed:
            return self.node_failed(
                node, iteration, outcome.error, continued=outcome.continued, usage=outcome.usage
            )
        if type(outcome) is NodeWaiting:
            return self.node_waiting(node, iteration, outcome.wait, usage=outcome.usage)
        assert type(outcome) is NodeCancelled
        return self.node_cancelled(node, iteration, started=outcome.started, usage=outcome.usage)

    def stop(
        self, status: Status, error: str | None = None, failed_node: str | None = None
    ) -> StepResult:
        """End the run early (``cancelled``, say); a no-op once it has ended or finished."""
        self._open()
        state = self.state
        if state.phase == "new":
            if state.ending is None:  # begin will end the run at once
                state.ending = Ending(status, error, failed_node)
            return self._close()
        if state.phase == "running":
            self._stop(Ending(status, error, failed_node))
        return self._close()

    def in_flight(self) -> list[Ready]:
        """The nodes running now, as they were made ready (to run again after a lost worker);
        a waiting node runs nowhere, so it is not among them."""
        iterations, waiting = self.state.iterations, self.state.waiting
        return [
            Ready(node, iterations[node], inputs)
            for node, inputs in self.state.running.items()
            if node not in waiting
        ]

    def cancel_reason(self) -> str:
        """What a node stopped by the run's end reports as its error."""
        ending = self.state.ending
        if ending is not None and ending.status == "failed" and ending.failed_node:
            return f"stopped because node {self._named(ending.failed_node)} failed"
        return "cancelled"

    # Step plumbing --------------------------------------------------------------------

    def _named(self, node: str) -> str:
        return self.plan.node_names.get(node, repr(node))

    def _check_running(self, node: str, iteration: int) -> None:
        state = self.state
        if node not in state.running or state.iterations.get(node) != iteration:
            self._refuse(node, iteration)
        if node in state.waiting:
            # Nothing runs a waiting node: only resume (or the run's end) moves it on.
            raise StepRefused(f"node {node!r} iteration {iteration} is waiting: resume it")

    def _check_waiting(self, node: str, iteration: int) -> None:
        state = self.state
        if node not in state.waiting or state.iterations.get(node) != iteration:
            if state.phase != "running":
                raise StepRefused(f"node {node!r} iteration {iteration}: the run is {state.phase}")
            raise StepRefused(
                f"node {node!r} iteration {iteration} is not waiting: it was resumed already "
                "(a second answer?), or it never waited"
            )

    def _refuse(self, node: str, iteration: int) -> NoReturn:
        # Only a running run has running nodes, so the phase need not be checked first.
        phase = self.state.phase
        if phase != "running":
            raise StepRefused(f"node {node!r} iteration {iteration}: the run is {phase}")
        raise StepRefused(
            f"node {node!r} iteration {iteration} is not running: its result was "
            "recorded already (a duplicate delivery?) or it never started"
        )

    def _open(self) -> None:
        self._ready, self._events, self._stopped = [], [], False

    def _close(self) -> StepResult:
        reused = self._reused
        while reused:
            self._report_reused(reused.popleft())
        state = self.state
        if state.ending is not None and state.waiting:
            self._cancel_waiting()
        done = state.phase == "running" and not state.running
        if done:
            self._finish()
        return StepResult(self._ready, self._events, done, self._stopped, state.is_waiting)

    def _count(self, usage: Mapping[str, Usage]) -> None:
        totals = self.state.usage_by_model
        for model, used in usage.items():
            totals[model] = totals[model] + used if model in totals else used

    def _stop(self, ending: Ending) -> None:
        state = self.state
        if state.ending is not None:
            return
        state.ending = ending
        self._stopped = True
        # Nodes made ready by this very step never start: release them here.
        for ready in (*self._ready, *self._reused):
            del state.running[ready.node]
            state.component_active[self.plan.nodes[ready.node].component] -= 1
        self._ready.clear()
        self._reused.clear()

    def _cancel_waiting(self) -> None:
        """An ending run cancels its waiting nodes itself: no task runs them to cancel."""
        state = self.state
        for node in sorted(state.waiting):
            del state.waiting[node]
            fields = {
                "node": node,
                "iteration": state.iterations[node],
                "error": self.cancel_reason(),
                "cancelled": True,
            }
            self._events.append(("node_failed", fields))
            self._release(self.plan.nodes[node])

    def _finish(self) -> None:
        state = self.state
        state.phase = "finished"
        ending = state.ending or Ending("succeeded")
        fields: dict[str, Any] = {
            "status": ending.status,
            "outputs": state.outputs,
            "usage": state.usage.as_dict(),
            "usage_by_model": {m: u.as_dict() for m, u in sorted(state.usage_by_model.items())},
        }
        if ending.error:
            fields["error"] = ending.error
        self._events.append(("run_finished", fields))

    # Firing rules ---------------------------------------------------------------------

    def _try_fire(self, node: str) -> None:
        state = self.state
        if node in state.running or state.ending is not None:
            return
        spec = self.plan.nodes[node]
        fresh, kept = state.fresh[node], state.kept[node]
        held = state.held.get(node, {})
        # Within its loop's activation a node took its outside values when it first ran;
        # those that came later are for the loop's next activation.
        loop_only = node in state.entered
        has_fresh = False
        for port in spec.in_ports:
            if _next(fresh[port], loop_only) is not None:
                has_fresh = True
            elif port not in kept and port not in held and self._port_live(spec, port):
                return
        if not has_fresh:
            return
        inputs = {}
        for port in spec.in_ports:
            queue = fresh[port]
            at = _next(queue, loop_only)
            if at is not None:
                value, internal = queue[at]
                del queue[at]
                if not internal:
                    kept[port] = value
                elif port in held and not self.plan.initial[node, port].append:
                    del held[port]  # what came round the loop replaces the initial value
                inputs[port] = value
            elif port in kept:
                inputs[port] = kept[port]
            elif port in held:
                inputs[port] = held[port]
        self._fire(node, inputs)

    def _port_live(self, spec: NodePlan, port: str) -> bool:
        key = (spec.id, port)
        if self.state.unresolved.get(key, 0):
            return True
        return bool(self.plan.port_internal.get(key)) and self._quiescing != spec.component

    def _fire(self, node: str, inputs: dict[str, Any]) -> None:
        state = self.state
        reused = node in state.reuse
        if reused and node in state.started:
            # A reused node reports its recorded (final) output once; firing again would
            # send that output round a loop for ever.
            return
        overrides = state.overrides.get(node)
        if overrides:
            inputs = {**inputs, **overrides}
        spec = self.plan.nodes[node]
        state.iterations[node] += 1
        iteration = state.iterations[node]
        limit = spec.max_iterations
        if limit is not None and iteration > limit:
            message = f"exceeded max_iterations={limit}"
            self._events.append(
                ("node_failed", {"node": node, "iteration": iteration, "error": message})
            )
            self._stop(Ending("failed", f"node {self._named(node)} failed: {message}", node))
            return
        state.running[node] = inputs
        state.started.add(node)
        if self.plan.components[spec.component].cyclic:
            state.entered.add(node)
        state.component_active[spec.component] += 1
        if not reused and (state.stepping or node in state.breakpoints):
            # Paused before it starts: running (its component stays active) but waiting.
            wait = {"kind": BREAKPOINT, "inputs": inputs}
            state.waiting[node] = wait
            fields = {"node": node, "iteration": iteration, "wait": wait}
            self._events.append(("node_waiting", fields))
            return
        # A reused node is reported at the end of the step, as if it had run.
        (self._reused if reused else self._ready).append(Ready(node, iteration, inputs))

    def _release(self, spec: NodePlan) -> None:
        """The node is no longer running: it may fire again, and its component may be done."""
        state = self.state
        del state.running[spec.id]
        state.component_active[spec.component] -= 1
        self._try_fire(spec.id)
        self._settle_queue.append(spec.component)
        self._settle()

    def _settle(self) -> None:
        """Mark done every queued component that nothing can reach any more."""
        state, plan, queue = self.state, self.plan, self._settle_queue
        while queue:
            index = queue.popleft()
            if (
                state.component_done[index]
                or state.component_active[index]
                or state.component_unresolved[index]
                or state.ending is not None
            ):
                continue
            component = plan.components[index]
            if component.cyclic and not self._quiesce(index, component):
                continue
            state.component_done[index] = True
            for node in component.nodes:
                if node not in state.started:
                    self._events.append(("node_skipped", {"node": node, "iteration": 1}))
            for target, port in component.leaving:
                state.unresolved[target, port] -= 1
                downstream = plan.nodes[target].component
                state.component_unresolved[downstream] -= 1
                self._try_fire(target)
                queue.append(downstream)

    def _quiesce(self, index: int, component: Component) -> bool:
        """Go on with an idle loop that nothing more can reach (see "Loops" in the module
        docstring); True when it stays idle, so it is done."""
        state, active = self.state, self.state.component_active
        # Inside a loop, ports fed only from the loop are dead once it is idle.
        self._quiescing = index
        try:
            if any(node in state.entered for node in component.nodes):
                for node in component.order:
                    if self._holds_loop_value(node) or self._unreported(node):
                        self._try_fire(node)
                        if active[index]:
                            return False
                self._end_activation(index, component)
            entry = self._entry(component)
            if entry is not None:
                self._try_fire(entry)
            return not active[index]
        finally:
            self._quiescing = -1

    def _holds_loop_value(self, node: str) -> bool:
        ports = self.state.fresh.get(node)
        return ports is not None and any(internal for q in ports.values() for _, internal in q)

    def _unreported(self, node: str) -> bool:
        # A reused node that has not reported yet ran in the recorded run: it reports its
        # output (its last) instead of being skipped, and that changes nothing downstream
        # that has reported already.
        state = self.state
        return node in state.reuse and node not in state.started

    def _end_activation(self, index: int, component: Component) -> None:
        """The loop's activation is over. A node that did not run in it lets go of its
        outside values of this round (they stay what its ports hold), and loop-back ports
        hold their initial values again."""
        state = self.state
        for node in component.nodes:
            if node in state.entered:
                state.entered.discard(node)
                continue
            for port, queue in state.fresh.get(node, {}).items():
                if queue and not queue[0][1]:
                    state.kept[node][port] = queue.popleft()[0]
        for (node, port), initial in self.plan.initial.items():
            if self.plan.nodes[node].component == index:
                state.held[node][port] = initial.value

    def _entry(self, component: Component) -> str | None:
        """The node an idle loop starts at, if any holds an outside value (graphs.loops)."""
        state, plan = self.state, self.plan
        waiting_on: dict[str, set[str]] = {}
        for node in component.order:
            ports = state.fresh.get(node)
            if not ports or not any(ports.values()):
                continue
            kept, held = state.kept.get(node, {}), state.held.get(node, {})
            waiting_on[node] = {
                source
                for port in plan.nodes[node].in_ports
                if not ports.get(port) and port not in kept and port not in held
                for source in plan.loop_sources.get((node, port), ())
            }
        return pick_entry(component.order, waiting_on)

    def _hand_on(self, spec: NodePlan, outputs: dict[str, Any]) -> None:
        """What a node produced (or reproduced) becomes run output and flows on."""
        if spec.output is not None and "value" in outputs:
            self.state.outputs[spec.output] = outputs["value"]
        self._deliver(spec, outputs)

    def _deliver(self, spec: NodePlan, outputs: dict[str, Any]) -> None:
        out_edges = spec.out_edges
        fresh, held = self.state.fresh, self.state.held
        for port, value in outputs.items():
            for target in out_edges.get(port, ()):
                carried = value
                if target.append:
                    carried = [*held[target.node][target.port], value]
                    held[target.node][target.port] = carried
                fresh[target.node][target.port].append((carried, target.internal))
                self._try_fire(target.node)

    def _report_reused(self, ready: Ready) -> None:
        node, iteration = ready.node, ready.iteration
        recorded = self.state.reuse[node]
        self._events.append(
            ("node_started", {"node": node, "iteration": iteration, "inputs": ready.inputs})
        )
        self._events.append(
            (
                "node_finished",
                {
                    "node": node,
                    "iteration": iteration,
                    "output": recorded.output,
                    "duration_s": 0,
                    "reused": {"source": recorded.source},
                },
            )
        )
        spec = self.plan.nodes[node]
        self._hand_on(spec, recorded.output)
        self._release(spec)
