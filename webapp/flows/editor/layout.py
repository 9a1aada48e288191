"""Auto-layout: layers left to right by ``networkx.topological_generations``.

Cycles (loops guarded by ``max_iterations``) are broken by ignoring their back edges,
found by a depth-first search that starts from the nodes without incoming edges. Within
a layer, nodes are ordered by the average height of their predecessors (one barycentre
sweep, which removes most crossings in flows of this size) and stacked around y = 0.

>>> doc = {"graph": {"name": "chain"}, "nodes": [
...     {"id": "a", "type": "input", "config": {"name": "a"}},
...     {"id": "b", "type": "output", "config": {"name": "b"}}],
...     "edges": [{"source": "a", "target": "b", "source_port": "value", "target_port": "value"}]}
>>> p = positions(doc)
>>> p["a"]["x"] < p["b"]["x"]
True
"""

from __future__ import annotations

from typing import Any

import networkx as nx

import graphs

DEFAULT_SIZE = (200.0, 80.0)
# Room between nodes: a wire routed between two stacked nodes (static/js/canvas/routes.js)
# keeps 22 px from each, so rows are further apart than that; columns leave room for the
# curves and their port labels.
COLUMN_GAP = 90.0
ROW_GAP = 48.0


def positions(
    doc: Any, sizes: dict[str, tuple[float, float]] | None = None
) -> dict[str, dict[str, float]]:
    """Top-left position of every node; FlowInvalid when the document's shape is wrong."""
    graph = graphs.load(doc)
    sizes = sizes or {}
    dag = acyclic(graph)
    key = _order_key(graph)
    layers = [sorted(layer, key=key) for layer in nx.topological_generations(dag)]
    centre: dict[str, float] = {}
    result: dict[str, dict[str, float]] = {}
    x = 0.0
    for index, layer in enumerate(layers):
        if index:
            layer.sort(key=lambda n: (_barycentre(dag, n, centre), key(n)))
        heights = [sizes.get(n, DEFAULT_SIZE)[1] for n in layer]
        total = sum(heights) + ROW_GAP * (len(layer) - 1)
        y = -total / 2
        for node, height in zip(layer, heights, strict=True):
            result[node] = {"x": round(x), "y": round(y)}
            centre[node] = y + height / 2
            y += height + ROW_GAP
        x += max(sizes.get(n, DEFAULT_SIZE)[0] for n in layer) + COLUMN_GAP
    return result


def acyclic(graph: nx.MultiDiGraph) -> nx.DiGraph:
    """The graph without self-loops and without the back edges of a depth-first search."""
    dag = nx.DiGraph()
    dag.add_nodes_from(graph.nodes)
    key = _order_key(graph)
    order = sorted(graph.nodes, key=lambda n: (graph.in_degree(n) > 0, key(n)))
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    for root in order:
        if root in state:
            continue
        state[root] = 1
        stack = [(root, iter(sorted(set(graph.successors(root)), key=key)))]
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
                continue
            if state.get(child) == 1:
                continue  # a back edge: it closes a cycle
            dag.add_edge(node, child)
            if child not in state:
                state[child] = 1
                stack.append((child, iter(sorted(set(graph.successors(child)), key=key))))
    return dag


def _order_key(graph: nx.MultiDiGraph):
    """Keep the user's vertical order where there is one, else the document order."""
    index = {node: i for i, node in enumerate(graph.nodes)}

    def key(node: str) -> tuple[float, int]:
        position = graph.nodes[node].get("position") or {}
        return (position.get("y", 0), index[node])

    return key


def _barycentre(dag: nx.DiGraph, node: str, centre: dict[str, float]) -> float:
    above = [centre[p] for p in dag.predecessors(node) if p in centre]
    return sum(above) / len(above) if above else 0.0
