"""Plan a run that continues an earlier one: which recorded outputs it may reuse.

Both plans read the earlier run's event log and the flow graph, and return the
``reuse`` mapping for ``RunOptions``: node -> ``Recorded`` (the node's last
``node_finished`` output).

>>> flow = {
...     "graph": {"name": "chain"},
...     "nodes": [
...         {"id": "a", "type": "input", "config": {"name": "a"}},
...         {"id": "b", "type": "template", "config": {"template": "{{ x }}"}},
...         {"id": "c", "type": "output", "config": {"name": "c"}},
...     ],
...     "edges": [
...         {"source": "a", "target": "b", "source_port": "value", "target_port": "x"},
...         {"source": "b", "target": "c", "source_port": "text", "target_port": "value"},
...     ],
... }
>>> events = [
...     {"type": "run_started", "inputs": {"a": "hi"}},
...     {"type": "node_started", "node": "a", "iteration": 1},
...     {"type": "node_finished", "node": "a", "iteration": 1, "output": {"value": "hi"}},
...     {"type": "node_started", "node": "b", "iteration": 1},
...     {"type": "node_failed", "node": "b", "iteration": 1, "error": "boom"},
...     {"type": "run_finished", "status": "failed"},
... ]
>>> final_states(events)
{'a': 'done', 'b': 'failed'}
>>> reuse_for_resume(flow, events, source="run 7")
{'a': Recorded(output={'value': 'hi'}, source='run 7')}
>>> sorted(reuse_from_node(flow, events, "a"))
[]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import networkx as nx

from graphs import document
from graphs.executor import Recorded
from graphs.log import RunLog, fold

Events = Iterable[Mapping[str, Any]]


def final_states(events: Events) -> dict[str, str]:
    """Each node's state when the run ended: done, failed, cancelled, skipped or running.

    A node the run never reached is absent. The last event of a node decides, so a loop
    node whose last iteration finished is done. A failure whose error went on down the
    ``error`` port (``continued``) is still a failure.

    >>> final_states([
    ...     {"type": "node_started", "node": "a"},
    ...     {"type": "node_finished", "node": "a"},
    ...     {"type": "node_started", "node": "b"},
    ...     {"type": "node_failed", "node": "b", "cancelled": True},
    ...     {"type": "node_skipped", "node": "c"},
    ...     {"type": "node_started", "node": "d"},
    ... ])
    {'a': 'done', 'b': 'cancelled', 'c': 'skipped', 'd': 'running'}
    """
    return fold(events).final_states()


def reuse_for_resume(
    graph: nx.MultiDiGraph | Mapping[str, Any], events: Events, source: str | None = None
) -> dict[str, Recorded]:
    """What a resumed run may reuse: every node that finished, unless it is downstream
    of one that did not (failed, cancelled, still running, or never reached).

    Skipped nodes neither count as unfinished nor are reused: the reused router that
    skipped them sends its recorded route again, so they are skipped again.

    >>> fan = {
    ...     "graph": {"name": "fan"},
    ...     "nodes": [
    ...         {"id": "q", "type": "input", "config": {"name": "q"}},
    ...         {"id": "left", "type": "template", "config": {"template": "{{ q }}"}},
    ...         {"id": "right", "type": "template", "config": {"template": "{{ q }}"}},
    ...         {"id": "join", "type": "merge", "config": {}},
    ...     ],
    ...     "edges": [
    ...         {"source": "q", "target": "left", "source_port": "value", "target_port": "q"},
    ...         {"source": "q", "target": "right", "source_port": "value", "target_port": "q"},
    ...         {"source": "left", "target": "join", "source_port": "text", "target_port": "l"},
    ...         {"source": "right", "target": "join", "source_port": "text", "target_port": "r"},
    ...     ],
    ... }
    >>> events = [
    ...     {"type": "node_finished", "node": "q", "output": {"value": 1}},
    ...     {"type": "node_finished", "node": "left", "output": {"text": "1"}},
    ...     {"type": "node_failed", "node": "right", "cancelled": True},
    ... ]
    >>> sorted(reuse_for_resume(fan, events))
    ['left', 'q']
    """
    graph = _as_graph(graph)
    log = fold(events)
    states = log.final_states()
    unfinished = [node for node in graph if states.get(node) not in ("done", "skipped")]
    blocked = _reachable(graph, unfinished)
    outputs = _last_outputs(log)
    return {
        node: Recorded(outputs[node], source)
        for node in graph
        if states.get(node) == "done" and node not in blocked and node in outputs
    }


def reuse_from_node(
    graph: nx.MultiDiGraph | Mapping[str, Any],
    events: Events,
    node: str,
    source: str | None = None,
) -> dict[str, Recorded]:
    """What a re-run from ``node`` may reuse: every node that finished, except ``node``
    and everything downstream of it. Raises ValueError when the flow has no ``node``.

    >>> diamond = nx.MultiDiGraph([("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")])
    >>> events = [
    ...     {"type": "node_finished", "node": n, "output": {"value": n}} for n in "abcd"
    ... ]
    >>> sorted(reuse_from_node(diamond, events, "b"))
    ['a', 'c']
    >>> reuse_from_node(diamond, events, "e")
    Traceback (most recent call last):
    ...
    ValueError: the flow has no node 'e'
    """
    graph = _as_graph(graph)
    if node not in graph:
        raise ValueError(f"the flow has no node {node!r}")
    log = fold(events)
    states = log.final_states()
    rerun = nx.descendants(graph, node) | {node}
    outputs = _last_outputs(log)
    return {
        other: Recorded(outputs[other], source)
        for other in graph
        if states.get(other) == "done" and other not in rerun and other in outputs
    }


def _as_graph(graph: nx.MultiDiGraph | Mapping[str, Any]) -> nx.MultiDiGraph:
    return graph if isinstance(graph, nx.Graph) else document.load(graph)


def _reachable(graph: nx.MultiDiGraph, starts: list[str]) -> set[str]:
    """``starts`` and all their descendants, in one breadth-first pass."""
    if not starts:
        return set()
    return {node for layer in nx.bfs_layers(graph, starts) for node in layer}


def _last_outputs(log: RunLog) -> dict[str, dict[str, Any]]:
    """Each node's output from its last visit that finished."""
    outputs = {}
    for node in log.nodes():
        done = [visit for visit in log.visits(node) if visit.status == "done"]
        if done and done[-1].output is not None:
            outputs[node] = done[-1].output
    return outputs
