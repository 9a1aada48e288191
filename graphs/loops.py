"""Where a loop starts: its nodes' stable order, and the rule that picks its first node.

A loop (a strongly connected component of the flow) whose nodes all read something
from inside the loop cannot start by the ordinary firing rule: every node waits on
a port only the loop feeds. When nothing more can reach the loop, the scheduler
starts it at one node, with those ports empty (``graphs.schedule``, "Loops").
Which one is this module's, shared by the scheduler and by ``validate``, which
warns when the choice is not obvious.

>>> import networkx as nx
>>> loop = nx.MultiDiGraph([("gen", "eval"), ("eval", "route"), ("route", "gen")])
>>> loop_order(loop, {"gen", "eval", "route"})
('eval', 'route', 'gen')
>>> # Both gen and eval hold the topic; eval also waits for the joke gen writes.
>>> pick_entry(("eval", "route", "gen"), {"eval": {"gen"}, "gen": {"route"}})
'gen'
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence

import networkx as nx


def loop_order(graph: nx.MultiDiGraph, nodes: Iterable[str]) -> tuple[str, ...]:
    """The loop's nodes in a stable topological order, for ties between starting nodes.

    A depth-first search from the first node, by id, of those that take inputs from
    outside the loop (else of all) finds the edges that close the loop back on itself;
    without them the loop is acyclic, and ``lexicographical_topological_sort`` orders
    it the same way every time. The order depends on the wiring, not on the ids, except
    where the wiring is symmetric.

    >>> ring = nx.MultiDiGraph([("c", "a"), ("a", "b"), ("b", "c"), ("x", "c")])
    >>> loop_order(ring, {"a", "b", "c"})  # c takes the outside input
    ('c', 'a', 'b')
    """
    members = set(nodes)
    inner: nx.DiGraph[str] = nx.DiGraph()
    inner.add_nodes_from(sorted(members))
    inner.add_edges_from(
        sorted({(u, v) for u, v in graph.edges(members) if v in members}),
    )
    entries = sorted(n for n in members if any(u not in members for u in graph.predecessors(n)))
    root = entries[0] if entries else min(members)
    closing: set[tuple[str, str]] = set()
    on_path = {root}
    for source, target, kind in nx.dfs_labeled_edges(inner, source=root):
        if source == target and kind != "nontree":
            continue  # the search's own start and end markers, not edges
        if kind == "forward":
            on_path.add(target)
        elif kind == "reverse":
            on_path.discard(target)
        elif target in on_path:  # an edge back to a node still on the search's path
            closing.add((source, target))
    inner.remove_edges_from(closing)
    return tuple(nx.lexicographical_topological_sort(inner))


def pick_entry(order: Sequence[str], waiting_on: Mapping[str, Collection[str]]) -> str | None:
    """The node a loop starts at, among the candidates ``waiting_on`` names.

    ``waiting_on`` maps each candidate (a loop node holding an outside value) to the
    loop nodes that feed its empty ports. A candidate waiting on another candidate
    would run without what that one is about to give it, so it does not start; of
    the rest the first in ``order`` does. When every candidate waits on another (a
    symmetric loop), the first in ``order`` starts: the flow does not say, and
    ``validate`` warns.

    >>> pick_entry(("a", "b", "c"), {"a": {"c"}, "c": {"b"}})  # a waits on c
    'c'
    >>> pick_entry(("a", "b"), {"a": {"b"}, "b": {"a"}})  # a tie: the order decides
    'a'
    >>> pick_entry(("a", "b"), {}) is None
    True
    """
    candidates = [node for node in order if node in waiting_on]
    if not candidates:
        return None
    for node in candidates:
        if not any(other != node and other in waiting_on for other in waiting_on[node]):
            return node
    return candidates[0]
